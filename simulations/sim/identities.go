package sim

import (
	"math/rand/v2"
	"runtime"
	"sync"

	"meshd.dev/meshd/protocol"
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
