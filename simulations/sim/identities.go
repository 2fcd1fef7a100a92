package sim

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"

	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/routing"
)

// identities holds node identities made ahead of addNode, by index.
type identities struct {
	ids  []*protocol.Identity
	errs []error
}

// makeIdentities makes the identities of nodes 0 to n-1 on every core. A
// node's identity depends on nothing but the seed and its index, so the
// result is the same however the work is split; building the 10,000 X-Wing
// identities of the large scenarios is about half of their build time.
func makeIdentities(seed uint64, n int) identities {
	out := identities{ids: make([]*protocol.Identity, n), errs: make([]error, n)}
	workers := min(runtime.GOMAXPROCS(0), max(n/64, 1))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				out.ids[i], out.errs[i] = newNodeIdentity(seed, i)
			}
		}()
	}
	wg.Wait()
	return out
}

// makeEngines makes the nodes' engines on every core. An engine's start
// (its own signed announce, its tables) reads nothing but its node's
// config, whose random source is the node's own, so the engines are the
// same however the work is split; the error is the first node's by index,
// as when they were made one after the other.
func (s *Sim) makeEngines() error {
	errs := make([]error, len(s.nodes))
	workers := min(runtime.GOMAXPROCS(0), max(len(s.nodes)/64, 1))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(s.nodes); i += workers {
				n := s.nodes[i]
				n.eng, errs[i] = routing.New(n.cfg, s.now, nil)
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("node %s: %w", s.nodes[i].name, err)
		}
	}
	return nil
}

func newNodeIdentity(seed uint64, i int) (*protocol.Identity, error) {
	return protocol.NewIdentity(rand.NewChaCha8(seedBytes(seed, i, seedIdentity)))
}

// take returns node i's identity, made now if it was not made ahead.
func (p *identities) take(seed uint64, i int) (*protocol.Identity, error) {
	if i < len(p.ids) {
		id, err := p.ids[i], p.errs[i]
		p.ids[i], p.errs[i] = nil, nil // the node keeps it; no second owner
		if id != nil || err != nil {
			return id, err
		}
	}
	return newNodeIdentity(seed, i)
}
