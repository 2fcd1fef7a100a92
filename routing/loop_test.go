package routing_test

import (
	"container/heap"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/routing"
)

// The loop detector: small random topologies, driven by the real engines
// through link failures, repairs, lost and delayed frames, with the graph of
// selected next hops checked for a cycle after every single event the
// network delivers. A cycle among selected next hops is a routing loop, the
// thing Babel's feasibility condition must make impossible at every
// selection. (The delivery properties of property_test.go cannot see a loop:
// the seen cache drops a looping copy as a duplicate before its hop limit
// runs out.)

// loopSequences is how many random topology/failure sequences
// TestPropertyNoLoops runs (a tenth under the race detector; with -short a
// tenth, which rapid divides by 5 again). Each rapid case runs loopPerCase
// of them, so that rapid's per-case bookkeeping stays small.
const (
	loopSequences = 10_000
	loopPerCase   = 10
)

// loopIdentities are made once: key generation would otherwise dominate a
// case that lives a few simulated minutes.
var loopIdentities = func() []*protocol.Identity {
	var ids []*protocol.Identity
	for i := range loopMaxNodes {
		id, err := protocol.NewIdentity(rand.NewChaCha8(seedBytes(fmt.Sprintf("n%d", i), 0, 1)))
		if err != nil {
			panic(err)
		}
		ids = append(ids, id)
	}
	return ids
}()

const loopMaxNodes = 7

// mapVerifyCache is a routing.VerifyCache for one goroutine: the engines of
// the loop cases one goroutine runs share it, so each announce signature is
// checked once.
type mapVerifyCache map[[32]byte]bool

func (m mapVerifyCache) Verified(d [32]byte) bool { return m[d] }
func (m mapVerifyCache) AddVerified(d [32]byte)   { m[d] = true }

// loopNet is a small network whose every event is followed by a loop check.
type loopNet struct {
	*testNet
	nodes  []*tnode
	links  []*tlink
	byAddr map[routing.Address]*tnode
	// loop describes the first cycle found, "" while there is none.
	loop string
	// next[i][dest] is node i's selected next hop (an index) towards dest,
	// as of changes[i], the sum of its route counters (plus one).
	next    []map[routing.Address]int
	changes []uint64
	index   map[routing.Address]int
}

func newLoopNet(tb testing.TB, seed uint64, n int, interval time.Duration, cache mapVerifyCache) *loopNet {
	ln := &loopNet{testNet: newTestNet(tb, seed), byAddr: map[routing.Address]*tnode{}}
	for i := range n {
		id := loopIdentities[i]
		nd := &tnode{name: fmt.Sprintf("n%d", i), id: id, store: map[string][]byte{}, up: true}
		nd.cfg = routing.Config{
			Identity:         id,
			Rand:             rand.NewChaCha8(seedBytes(nd.name, seed, 2)),
			AnnounceInterval: interval,
			RetryBase:        10 * time.Second,
			RetryMax:         2 * time.Minute,
			VerifyCache:      cache,
		}
		eng, err := routing.New(nd.cfg, ln.now, nil)
		if err != nil {
			tb.Fatal(err)
		}
		nd.eng = eng
		ln.testNet.nodes[nd.name] = nd
		ln.order = append(ln.order, nd)
		ln.nodes = append(ln.nodes, nd)
		ln.byAddr[id.Address()] = nd
		ln.process(nd)
	}
	return ln
}

func (ln *loopNet) link(a, b int, cost uint16, latency time.Duration) {
	l := ln.connect(&tlink{kind: routing.LinkTCP, latency: latency, cost: cost}, ln.nodes[a].name, ln.nodes[b].name)
	ln.links = append(ln.links, l)
	ln.check()
}

// run is testNet.run with a loop check after every event.
func (ln *loopNet) run(d time.Duration) {
	end := ln.now.Add(d)
	for ln.loop == "" && ln.q.Len() > 0 && !ln.q[0].at.After(end) {
		e := heap.Pop(&ln.q).(*event)
		ln.now = e.at
		if !e.node.up {
			continue
		}
		if e.tick {
			if e.gen != e.node.wgen {
				continue
			}
			e.node.wakeAt = time.Time{}
			e.node.eng.Tick(e.node.clock(ln.now))
			ln.process(e.node)
		} else {
			if fr, ok := e.in.(routing.FrameReceived); ok {
				if l := ln.byID[fr.Link]; l == nil || !l.up {
					continue
				}
			}
			ln.step(e.node, e.in)
		}
		ln.check()
	}
	if ln.loop == "" {
		ln.now = end
	}
}

func (ln *loopNet) setLink(i int, up bool) {
	ln.testNet.setLink(ln.links[i], up)
	ln.check()
}

// check looks for a cycle among the selected next hops towards every
// destination and records the first one it finds. A node's table is read
// again only when its route counters moved since the last check.
func (ln *loopNet) check() {
	if ln.loop != "" {
		return
	}
	if ln.next == nil {
		ln.next = make([]map[routing.Address]int, len(ln.nodes))
		ln.changes = make([]uint64, len(ln.nodes))
		ln.index = map[routing.Address]int{}
		for i, nd := range ln.nodes {
			ln.index[nd.id.Address()] = i
		}
	}
	changed := false
	for i, nd := range ln.nodes {
		c := nd.eng.Counters()
		if k := c.RoutesAdded + c.RoutesChanged + c.RoutesRemoved + 1; k != ln.changes[i] {
			ln.changes[i], changed = k, true
			ln.next[i] = map[routing.Address]int{}
			for _, r := range nd.eng.Routes() {
				if j, ok := ln.index[r.Via]; ok {
					ln.next[i][r.Dest] = j
				}
			}
		}
	}
	if !changed {
		return
	}
	on := make([]int, len(ln.nodes)) // the source whose walk passed, plus one
	for d, dst := range ln.nodes {
		clear(on)
		for s := range ln.nodes {
			path := []int{s}
			on[s] = s + 1
			for cur := s; cur != d; {
				nx, ok := ln.next[cur][dst.id.Address()]
				if !ok {
					break
				}
				path = append(path, nx)
				if on[nx] == s+1 {
					ln.loop = fmt.Sprintf("at %v towards %s: %s\n%s", ln.now.Sub(epoch), dst.name, ln.pathNames(path), ln.tablesTo(dst))
					return
				}
				on[nx] = s + 1
				cur = nx
			}
		}
	}
}

func (ln *loopNet) pathNames(p []int) string {
	var s []string
	for _, i := range p {
		s = append(s, ln.nodes[i].name)
	}
	return strings.Join(s, " > ")
}

// tablesTo renders every node's selected route to dst.
func (ln *loopNet) tablesTo(dst *tnode) string {
	var b strings.Builder
	for _, nd := range ln.nodes {
		for _, r := range nd.eng.Routes() {
			if r.Dest == dst.id.Address() {
				fmt.Fprintf(&b, "  %s: via %s metric %d seq %d\n", nd.name, ln.names(r.Via), r.Metric, r.Seq)
			}
		}
	}
	return b.String()
}

// loopStep is one thing that happens to a loop case's network.
type loopStep struct {
	kind string // "down", "up", "loss", "send", "restart", "run"
	link int
	a, b int
	loss float64
	d    time.Duration
}

func (s loopStep) String() string {
	switch s.kind {
	case "down", "up":
		return fmt.Sprintf("%s l%d", s.kind, s.link)
	case "loss":
		return fmt.Sprintf("loss l%d %.1f", s.link, s.loss)
	case "send":
		return fmt.Sprintf("send n%d>n%d", s.a, s.b)
	case "restart":
		return fmt.Sprintf("restart n%d", s.a)
	}
	return fmt.Sprintf("run %v", s.d)
}

// loopCase is a drawn topology and what happens to it.
type loopCase struct {
	// interval is Config.AnnounceInterval; zero means 30 min: the steps
	// of a case fall between periodic announces, and signing is most of a
	// case's cost.
	interval time.Duration
	seed     uint64
	n        int
	edges    [][2]int
	costs    []uint16
	lat      []time.Duration
	// lora lists the members of a LoRa medium, link len(edges); empty
	// for none.
	lora  []int
	steps []loopStep
}

func (c loopCase) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d, announces every %v, %d nodes, links", c.seed, c.interval, c.n)
	for i, e := range c.edges {
		fmt.Fprintf(&b, " l%d=n%d-n%d/cost %d/%v", i, e[0], e[1], c.costs[i], c.lat[i])
	}
	if len(c.lora) > 0 {
		fmt.Fprintf(&b, " l%d=lora%v", len(c.edges), c.lora)
	}
	b.WriteString("; steps")
	for _, s := range c.steps {
		b.WriteString(" " + s.String())
	}
	return b.String()
}

var (
	loopCosts     = []uint16{0, 0, 20, 100}
	loopLatencies = []time.Duration{time.Millisecond, 10 * time.Millisecond, 100 * time.Millisecond, time.Second}
	loopRuns      = []time.Duration{10 * time.Millisecond, 100 * time.Millisecond, time.Second, 15 * time.Second, 2 * time.Minute, 10 * time.Minute}
)

// drawLoopCase draws a connected topology of 3 to 7 nodes (a random tree
// and a few more links, with costs that make detours attractive) and up
// to eight steps: links failing and coming back, frames lost, messages
// (which make nodes without a route ask for one), and time passing.
func drawLoopCase(r *rand.Rand) loopCase {
	c := loopCase{seed: r.Uint64(), n: 3 + r.IntN(loopMaxNodes-2), interval: 30 * time.Minute}
	if r.IntN(4) == 0 {
		// Frequent new sequence numbers: retractions and updates
		// under a newer number than a node's route.
		c.interval = 3 * time.Minute
	}
	linked := map[[2]int]bool{}
	add := func(a, b int) {
		if a > b {
			a, b = b, a
		}
		if a == b || linked[[2]int{a, b}] {
			return
		}
		linked[[2]int{a, b}] = true
		c.edges = append(c.edges, [2]int{a, b})
		c.costs = append(c.costs, loopCosts[r.IntN(len(loopCosts))])
		c.lat = append(c.lat, loopLatencies[r.IntN(len(loopLatencies))])
	}
	for i := 1; i < c.n; i++ {
		add(r.IntN(i), i)
	}
	for range 1 + r.IntN(c.n) {
		add(r.IntN(c.n), r.IntN(c.n))
	}
	links := len(c.edges)
	if r.IntN(5) == 0 {
		// A radio among some of the nodes: no link-down, routes expire,
		// no split horizon, adverts paced by the budget.
		c.lora = r.Perm(c.n)[:2+r.IntN(min(3, c.n-1))]
		links++
	}
	for range 2 + r.IntN(7) {
		s := loopStep{link: r.IntN(links)}
		switch k := r.IntN(11); {
		case k < 4:
			s.kind = "down"
		case k < 5:
			s.kind = "up"
		case k < 6:
			s.kind, s.loss = "loss", []float64{0, 0.3, 1}[r.IntN(3)]
		case k < 7:
			s.kind, s.a, s.b = "send", r.IntN(c.n), r.IntN(c.n)
		case k < 8 && !slices.Contains(c.lora, s.link%c.n):
			// Not a radio member: on a radio a restarted node may
			// briefly select a neighbour that still routes through it
			// (docs/routing.md, section 11).
			s.kind, s.a = "restart", s.link%c.n
		default:
			s.kind, s.d = "run", loopRuns[r.IntN(len(loopRuns))]
		}
		c.steps = append(c.steps, s)
	}
	return c
}

// runLoopCase plays c and returns the first loop found, or "".
func runLoopCase(tb testing.TB, c loopCase, cache mapVerifyCache) string {
	interval := c.interval
	if interval == 0 {
		interval = 30 * time.Minute
	}
	ln := newLoopNet(tb, c.seed, c.n, interval, cache)
	for i, e := range c.edges {
		ln.link(e[0], e[1], c.costs[i], c.lat[i])
	}
	if len(c.lora) > 0 {
		var names []string
		for _, i := range c.lora {
			names = append(names, ln.nodes[i].name)
		}
		ln.links = append(ln.links, ln.connect(&tlink{kind: routing.LinkLoRa}, names...))
		ln.check()
	}
	ln.run(5 * time.Second) // converge
	for _, s := range c.steps {
		switch s.kind {
		case "down", "up":
			ln.setLink(s.link, s.kind == "up")
		case "loss":
			ln.links[s.link].loss = s.loss
		case "send":
			if s.a != s.b {
				ln.testNet.send(ln.nodes[s.a].name, ln.nodes[s.b].name, "x")
				ln.check()
			}
		case "restart":
			// A crash and restart from the persisted records: the
			// routing state (feasibility distances included) is lost;
			// the neighbours see the point-to-point links go and come
			// back. The node stays down longer than the slowest link's
			// latency: a new connection carries no frame of the old one.
			ln.stop(ln.nodes[s.a])
			ln.changes[s.a] = 0
			ln.check()
			ln.run(2 * time.Second)
			ln.start(ln.nodes[s.a])
			ln.changes[s.a] = 0
			ln.check()
		}
		ln.run(max(s.d, 50*time.Millisecond))
		if ln.loop != "" {
			return ln.loop
		}
	}
	ln.run(12 * time.Minute) // what the last steps set in motion
	return ln.loop
}

// TestPropertyNoLoops runs loopSequences random topology/failure sequences
// and fails at the first cycle among selected next hops. Two halves run in
// parallel, each with its own verification cache.
func TestPropertyNoLoops(tt *testing.T) {
	cases := loopSequences / loopPerCase
	if testing.Short() || raceEnabled {
		cases /= 10
	}
	rapidChecks(tt, cases/2)
	for half := range 2 {
		tt.Run(fmt.Sprintf("half%d", half), func(tt *testing.T) {
			tt.Parallel()
			cache := mapVerifyCache{}
			total := 0
			rapid.Check(tt, func(t *rapid.T) {
				seed := rapid.Uint64().Draw(t, "seed")
				r := rand.New(rand.NewPCG(seed, seed>>1))
				for range loopPerCase {
					c := drawLoopCase(r)
					total++
					if loop := runLoopCase(tt, c, cache); loop != "" {
						t.Fatalf("routing loop %s\ncase: %v", loop, c)
					}
				}
			})
			tt.Logf("%d topology/failure sequences without a loop", total)
		})
	}
}

// TestLoopAfterLinkFailure is the first loop TestPropertyNoLoops found in
// the engine before selection checked feasibility (it failed there with
// "n1 > n5 > n1" towards n0, 110 ms after the n0-n2 link failed): when its
// selected route went away, a node fell back on a stored candidate without
// checking it against the feasibility distance of that moment, and the
// candidate's neighbour was routing through it.
func TestLoopAfterLinkFailure(t *testing.T) {
	c := loopCase{
		interval: 10 * time.Minute, // as when it was found
		seed:     4107282207882862730, n: 6,
		edges: [][2]int{{0, 1}, {0, 2}, {2, 3}, {2, 4}, {3, 5}, {1, 3}, {1, 5}},
		costs: []uint16{100, 0, 0, 100, 0, 20, 0},
		lat: []time.Duration{time.Second, 100 * time.Millisecond, 10 * time.Millisecond, 10 * time.Millisecond,
			100 * time.Millisecond, 10 * time.Millisecond, time.Millisecond},
		steps: []loopStep{{kind: "down", link: 1}, {kind: "run", d: 10 * time.Minute}, {kind: "up", link: 3},
			{kind: "down", link: 6}, {kind: "down", link: 2}, {kind: "up", link: 4}, {kind: "down", link: 2}},
	}
	if loop := runLoopCase(t, c, mapVerifyCache{}); loop != "" {
		t.Fatalf("routing loop %s", loop)
	}
}

// TestLoopAfterRestart is a loop TestPropertyNoLoops found once it
// restarted nodes, in the engine that let a retraction carrying a newer
// sequence number replace the announce of a route it still held (it failed
// with "n0 > n1 > n0" towards n3): the node then advertised its old route
// under the newer number, which its neighbours had to take as feasible.
func TestLoopAfterRestart(t *testing.T) {
	c := loopCase{
		interval: 30 * time.Minute,
		seed:     9182343765941511251, n: 6,
		edges: [][2]int{{0, 1}, {0, 2}, {0, 3}, {3, 4}, {0, 5}, {1, 5}, {4, 5}},
		costs: []uint16{100, 0, 20, 0, 100, 100, 100},
		lat: []time.Duration{time.Millisecond, 100 * time.Millisecond, time.Second, 10 * time.Millisecond,
			10 * time.Millisecond, time.Second, time.Second},
		steps: []loopStep{{kind: "restart", a: 0}, {kind: "down", link: 6}, {kind: "up", link: 5},
			{kind: "send", a: 0, b: 2}, {kind: "run", d: 100 * time.Millisecond}},
	}
	if loop := runLoopCase(t, c, mapVerifyCache{}); loop != "" {
		t.Fatalf("routing loop %s", loop)
	}
}
