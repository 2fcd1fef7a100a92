package routing_test

import (
	"cmp"
	"container/heap"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/routing"
)

// testNet wires engines together through an event queue with latency and
// loss, on virtual time. It is the harness of the scenario and property
// tests: no goroutines, no wall clock, the same seed gives the same run.

var epoch = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

type tnode struct {
	name   string
	id     *protocol.Identity
	cfg    routing.Config
	eng    *routing.Engine
	store  map[string][]byte // durable records
	inbox  []routing.Delivery
	events []routing.Event
	up     bool
	wakeAt time.Time
	wgen   uint64
	// skew is how far the node's clock is ahead of the network's (behind if
	// negative): the engine sees now+skew.
	skew time.Duration
}

// clock is the node's idea of the time.
func (nd *tnode) clock(now time.Time) time.Time { return now.Add(nd.skew) }

type tlink struct {
	id      routing.LinkID
	name    string
	kind    routing.LinkKind
	nodes   []*tnode // two for point-to-point, more for a shared medium
	latency time.Duration
	loss    float64
	up      bool
	bitrate int
	cost    uint16
	// frames and bytes sent on this link, in total and per sender
	frames, bytes int
	sent          map[*tnode]*txStats
}

// txStats counts what one node transmitted on one link.
type txStats struct {
	frames, bytes int
	// routingBytes are the bytes of frames the engine queued with
	// PriRouting: advertisements and path requests, the traffic the
	// announce budget caps.
	routingBytes int
}

// traceItem is a delivery or an event one node reported through Ready.
type traceItem struct {
	at   time.Time
	node *tnode
	del  *routing.Delivery
	ev   *routing.Event
}

type event struct {
	at   time.Time
	seq  uint64
	node *tnode
	gen  uint64 // for ticks
	in   routing.Input
	tick bool
}

type eventQueue []*event

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if c := q[i].at.Compare(q[j].at); c != 0 {
		return c < 0
	}
	return q[i].seq < q[j].seq
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(*event)) }
func (q *eventQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}

type testNet struct {
	t      testing.TB
	now    time.Time
	seed   uint64
	rng    *rand.Rand
	nodes  map[string]*tnode
	order  []*tnode
	links  []*tlink
	byID   map[routing.LinkID]*tlink
	q      eventQueue
	seq    uint64
	cfg    func(*routing.Config)
	log    []string
	errors int
	// trace collects every delivery and event, in order.
	trace []traceItem
	// drop, if set, decides to lose a frame a node transmits on a link
	// (fault injection by the scenario scripts).
	drop func(from *tnode, l *tlink, tx routing.Transmit) bool
	// deaf, if set, says that node to does not hear node from on the
	// shared link l (out of range).
	deaf func(from, to *tnode, l *tlink) bool
	// scribble, if set, overwrites every received frame once the engine
	// stepped it and its Ready was carried out, as a link that reuses
	// its read buffer would: nothing kept may alias the frame.
	scribble bool
	// gossipLatency is how long a gossip message takes to reach the other
	// nodes of the IP side.
	gossipLatency time.Duration
	// kinds counts the frames transmitted, by their first byte.
	kinds [256]int
	// records counts record writes and deletes, batches the Ready batches
	// that had any.
	records, batches int
	// reid maps, per node, a link's id here to the node's own id for it:
	// a link the node reopened under a new id, as the daemon gives a
	// reopened modem (reopen).
	reid map[*tnode]map[routing.LinkID]routing.LinkID
}

func newTestNet(t testing.TB, seed uint64) *testNet {
	return &testNet{
		t: t, now: epoch, seed: seed, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		nodes: map[string]*tnode{}, byID: map[routing.LinkID]*tlink{},
		gossipLatency: 20 * time.Millisecond,
	}
}

func seedBytes(name string, seed uint64, salt byte) [32]byte {
	var s [32]byte
	copy(s[:], name)
	for i := 0; i < 8; i++ {
		s[24+i] = byte(seed >> (8 * i))
	}
	s[23] = salt
	return s
}

func (n *testNet) addNode(name string) *tnode {
	id, err := protocol.NewIdentity(rand.NewChaCha8(seedBytes(name, 0, 1)))
	if err != nil {
		n.t.Fatal(err)
	}
	nd := &tnode{name: name, id: id, store: map[string][]byte{}, up: true}
	nd.cfg = routing.Config{
		Identity: id,
		Rand:     rand.NewChaCha8(seedBytes(name, n.seed, 2)),
		// Fast defaults for tests.
		AnnounceInterval: 10 * time.Minute,
		RetryBase:        10 * time.Second,
		RetryMax:         2 * time.Minute,
	}
	if n.cfg != nil {
		n.cfg(&nd.cfg)
	}
	eng, err := routing.New(nd.cfg, n.now, nil)
	if err != nil {
		n.t.Fatal(err)
	}
	nd.eng = eng
	n.nodes[name] = nd
	n.order = append(n.order, nd)
	n.process(nd)
	return nd
}

func (n *testNet) node(name string) *tnode {
	nd := n.nodes[name]
	if nd == nil {
		n.t.Fatalf("no node %q", name)
	}
	return nd
}

// addLink connects nodes with a link of kind; two nodes for IP/TCP, any
// number for a LoRa medium.
func (n *testNet) addLink(kind routing.LinkKind, latency time.Duration, loss float64, names ...string) *tlink {
	return n.connect(&tlink{kind: kind, latency: latency, loss: loss}, names...)
}

// connect adds l (kind, latency, loss, bitrate and cost filled in) between
// the named nodes and brings it up.
func (n *testNet) connect(l *tlink, names ...string) *tlink {
	l.id = routing.LinkID(len(n.links) + 1)
	l.up = true
	l.sent = map[*tnode]*txStats{}
	if l.name == "" {
		l.name = strings.Join(names, "-")
	}
	for _, nm := range names {
		l.nodes = append(l.nodes, n.node(nm))
	}
	n.links = append(n.links, l)
	n.byID[l.id] = l
	for _, nd := range l.nodes {
		n.linkUp(l, nd)
	}
	return l
}

func (n *testNet) linkInfo(l *tlink, nd *tnode) routing.LinkInfo {
	info := routing.LinkInfo{ID: n.localID(nd, l.id), Kind: l.kind, Bitrate: l.bitrate, Cost: l.cost}
	if l.kind == routing.LinkLoRa {
		info.Window = 1
	}
	if len(l.nodes) == 2 && l.kind != routing.LinkLoRa {
		for _, o := range l.nodes {
			if o != nd {
				info.Peer = o.id.Address()
			}
		}
	}
	return info
}

func (n *testNet) linkUp(l *tlink, nd *tnode) {
	if l.kind != routing.LinkLoRa {
		// A point-to-point link is up only while both ends are.
		for _, o := range l.nodes {
			if !o.up {
				return
			}
		}
	}
	if nd.up && l.up {
		n.step(nd, routing.LinkUp{Link: n.linkInfo(l, nd)})
	}
}

func (n *testNet) push(e *event) {
	n.seq++
	e.seq = n.seq
	heap.Push(&n.q, e)
}

func (n *testNet) step(nd *tnode, in routing.Input) {
	if !nd.up {
		return
	}
	in = n.toLocal(nd, in)
	if err := nd.eng.Step(nd.clock(n.now), in); err != nil {
		n.errors++
	}
	n.process(nd)
	if fr, ok := in.(routing.FrameReceived); ok && n.scribble {
		for i := range fr.Frame {
			fr.Frame[i] = 0xff
		}
	}
}

// process carries out the node's Ready: persist, transmit, deliver.
func (n *testNet) process(nd *tnode) {
	for nd.eng.HasReady() {
		rd := nd.eng.Ready()
		n.records += len(rd.Persist) + len(rd.Deletes)
		if len(rd.Persist)+len(rd.Deletes) > 0 {
			n.batches++
		}
		for _, r := range rd.Persist {
			nd.store[r.Key] = append([]byte(nil), r.Value...)
		}
		for _, k := range rd.Deletes {
			delete(nd.store, k)
		}
		for _, tx := range rd.Transmits {
			n.transmit(nd, tx)
		}
		for _, p := range rd.Publish {
			n.gossip(nd, p)
		}
		for i := range rd.Deliveries {
			n.trace = append(n.trace, traceItem{at: n.now, node: nd, del: &rd.Deliveries[i]})
		}
		for i := range rd.Events {
			n.trace = append(n.trace, traceItem{at: n.now, node: nd, ev: &rd.Events[i]})
		}
		nd.inbox = append(nd.inbox, rd.Deliveries...)
		nd.events = append(nd.events, rd.Events...)
		nd.eng.Advance()
	}
	n.scheduleTick(nd)
}

func (n *testNet) scheduleTick(nd *tnode) {
	w := nd.eng.NextWake().Add(-nd.skew)
	if !nd.wakeAt.IsZero() && !w.Before(nd.wakeAt) && nd.wakeAt.After(n.now) {
		return
	}
	if w.Before(n.now) {
		w = n.now
	}
	nd.wgen++
	nd.wakeAt = w
	n.push(&event{at: w, node: nd, tick: true, gen: nd.wgen})
}

func (n *testNet) airtime(l *tlink, size int) time.Duration {
	if l.kind != routing.LinkLoRa {
		return 0
	}
	br := l.bitrate
	if br == 0 {
		br = 1760
	}
	return time.Duration(int64(size) * 8 * int64(time.Second) / int64(br))
}

func (n *testNet) transmit(from *tnode, tx routing.Transmit) {
	l := n.byID[n.netID(from, tx.Link)]
	if l == nil || !l.up {
		return
	}
	l.frames++
	l.bytes += len(tx.Frame)
	if len(tx.Frame) > 0 {
		n.kinds[tx.Frame[0]]++
	}
	st := l.sent[from]
	if st == nil {
		st = &txStats{}
		l.sent[from] = st
	}
	st.frames++
	st.bytes += len(tx.Frame)
	if tx.Priority == routing.PriRouting {
		st.routingBytes += len(tx.Frame)
	}
	air := n.airtime(l, len(tx.Frame))
	if l.kind == routing.LinkLoRa {
		n.push(&event{at: n.now.Add(air), node: from, in: routing.TxDone{Link: l.id, Frames: 1}})
	}
	if n.drop != nil && n.drop(from, l, tx) {
		return
	}
	for _, to := range l.nodes {
		if to == from || !to.up {
			continue
		}
		if l.kind != routing.LinkLoRa && !from.up {
			continue
		}
		if l.loss > 0 && n.rng.Float64() < l.loss {
			continue
		}
		if n.deaf != nil && n.deaf(from, to, l) {
			continue
		}
		frame := append([]byte(nil), tx.Frame...)
		n.push(&event{at: n.now.Add(air + l.latency), node: to, in: routing.FrameReceived{Link: l.id, Frame: frame}})
	}
}

// gossip carries a published channel frame to every other node of the
// publisher's IP side (the nodes it reaches over IP links that are up), as
// gossipsub would.
func (n *testNet) gossip(from *tnode, p routing.Publish) {
	reached := map[*tnode]bool{from: true}
	todo := []*tnode{from}
	for len(todo) > 0 {
		nd := todo[0]
		todo = todo[1:]
		for _, l := range n.links {
			if l.kind != routing.LinkIP || !l.up || !slices.Contains(l.nodes, nd) {
				continue
			}
			for _, o := range l.nodes {
				if !reached[o] && o.up {
					reached[o] = true
					todo = append(todo, o)
				}
			}
		}
	}
	for _, nd := range n.order {
		if nd != from && reached[nd] {
			frame := append([]byte(nil), p.Frame...)
			n.push(&event{at: n.now.Add(n.gossipLatency), node: nd, in: routing.GossipReceived{Frame: frame}})
		}
	}
}

// run processes events until the virtual clock reaches now+d.
func (n *testNet) run(d time.Duration) {
	end := n.now.Add(d)
	for n.q.Len() > 0 && !n.q[0].at.After(end) {
		e := heap.Pop(&n.q).(*event)
		n.now = e.at
		if !e.node.up {
			continue
		}
		if e.tick {
			if e.gen != e.node.wgen {
				continue
			}
			e.node.wakeAt = time.Time{}
			e.node.eng.Tick(e.node.clock(n.now))
			n.process(e.node)
			continue
		}
		if fr, ok := e.in.(routing.FrameReceived); ok {
			if l := n.byID[fr.Link]; l == nil || !l.up {
				continue
			}
		}
		n.step(e.node, e.in)
	}
	n.now = end
}

// stop takes a node down (its store survives); start brings it back from the
// store, as a restart after a crash.
func (n *testNet) stop(nd *tnode) {
	nd.up = false
	// Point-to-point links die with the node: the neighbours notice.
	for _, l := range n.links {
		if l.kind != routing.LinkLoRa && l.up && slices.Contains(l.nodes, nd) {
			for _, o := range l.nodes {
				if o != nd {
					n.step(o, routing.LinkDown{Link: l.id})
				}
			}
		}
	}
}

func (n *testNet) start(nd *tnode) {
	var recs []routing.Record
	keys := make([]string, 0, len(nd.store))
	for k := range nd.store {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		recs = append(recs, routing.Record{Key: k, Value: nd.store[k]})
	}
	nd.cfg.Rand = rand.NewChaCha8(seedBytes(nd.name, n.seed+uint64(n.now.Unix()), 3))
	eng, err := routing.New(nd.cfg, nd.clock(n.now), recs)
	if err != nil {
		n.t.Fatalf("restart %s: %v", nd.name, err)
	}
	nd.eng = eng
	nd.up = true
	nd.wakeAt = time.Time{}
	for _, l := range n.links {
		if slices.Contains(l.nodes, nd) {
			n.linkUp(l, nd)
			// The neighbours see the link come back too.
			for _, o := range l.nodes {
				if o != nd && l.kind != routing.LinkLoRa {
					n.linkUp(l, o)
				}
			}
		}
	}
	n.process(nd)
}

func (n *testNet) setLink(l *tlink, up bool) {
	if l.up == up {
		return
	}
	l.up = up
	for _, nd := range l.nodes {
		if up {
			n.linkUp(l, nd)
		} else if nd.up {
			n.step(nd, routing.LinkDown{Link: l.id})
		}
	}
}

// reopen brings link l, which node nd alone took down, back there under
// the id local, as a daemon does when a modem is unplugged and plugged in
// again; the other nodes kept their link.
func (n *testNet) reopen(nd *tnode, l *tlink, local routing.LinkID) {
	if n.reid == nil {
		n.reid = map[*tnode]map[routing.LinkID]routing.LinkID{}
	}
	if n.reid[nd] == nil {
		n.reid[nd] = map[routing.LinkID]routing.LinkID{}
	}
	n.reid[nd][l.id] = local
	n.linkUp(l, nd)
}

// localID is node nd's id for link id.
func (n *testNet) localID(nd *tnode, id routing.LinkID) routing.LinkID {
	if v, ok := n.reid[nd][id]; ok {
		return v
	}
	return id
}

// netID is the link that node nd calls local.
func (n *testNet) netID(nd *tnode, local routing.LinkID) routing.LinkID {
	for id, v := range n.reid[nd] {
		if v == local {
			return id
		}
	}
	return local
}

// toLocal gives an input that names a link node nd's id for it.
func (n *testNet) toLocal(nd *tnode, in routing.Input) routing.Input {
	if n.reid[nd] == nil {
		return in
	}
	switch v := in.(type) {
	case routing.FrameReceived:
		v.Link = n.localID(nd, v.Link)
		return v
	case routing.TxDone:
		v.Link = n.localID(nd, v.Link)
		return v
	case routing.LinkDown:
		v.Link = n.localID(nd, v.Link)
		return v
	}
	return in
}

func (n *testNet) send(from, to string, body string) {
	n.step(n.node(from), routing.SendRequest{Ref: uint64(len(n.log) + 1), Dest: n.node(to).id.Address(), Body: []byte(body)})
}

func (n *testNet) names(a routing.Address) string {
	for _, nd := range n.order {
		if nd.id.Address() == a {
			return nd.name
		}
	}
	return a.String()[:8]
}

// routesOf renders a node's table.
func (n *testNet) routesOf(nd *tnode) string {
	var lines []string
	for _, r := range nd.eng.Routes() {
		lines = append(lines, fmt.Sprintf("%s via %s link %d metric %d hops %d", n.names(r.Dest), n.names(r.Via), r.Link, r.Metric, r.Hops))
	}
	slices.SortFunc(lines, cmp.Compare)
	return strings.Join(lines, "\n")
}

func TestSmokeTwoNodes(t *testing.T) {
	n := newTestNet(t, 1)
	n.addNode("a")
	n.addNode("b")
	n.addLink(routing.LinkIP, 5*time.Millisecond, 0, "a", "b")
	n.run(time.Second)
	n.send("a", "b", "hello")
	n.run(10 * time.Second)
	b := n.node("b")
	if len(b.inbox) != 1 || string(b.inbox[0].Body) != "hello" {
		t.Fatalf("b inbox: %+v\nroutes a:\n%s", b.inbox, n.routesOf(n.node("a")))
	}
	a := n.node("a")
	var delivered bool
	for _, ev := range a.events {
		if ev.Kind == routing.EventDelivered {
			delivered = true
		}
	}
	if !delivered {
		t.Fatalf("a events: %+v", a.events)
	}
}
