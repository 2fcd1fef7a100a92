package routing_test

import (
	"encoding/binary"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/routing"
)

// budgetNet is one engine with fake windowed links (a libp2p link's
// window: 256 frames, 4 MiB): slow links whose transport takes one frame
// a second, an honest link that takes everything at once, and the
// attacker's link, on which envelopes for the others arrive.
type budgetNet struct {
	t       *testing.T
	eng     *routing.Engine
	now     time.Time
	src     *protocol.Identity
	peers   map[routing.LinkID]routing.Address
	waiting map[routing.LinkID][]int  // frames handed, not yet taken (sizes)
	handed  map[routing.LinkID]int    // envelopes handed, all told
	ids     map[routing.MessageID]int // times each envelope was handed
	maxHeld int
	seq     uint32
}

const (
	budgetAttackLink routing.LinkID = 1
	budgetHonestLink routing.LinkID = 2
	budgetFirstSlow  routing.LinkID = 10
)

func newBudgetNet(t *testing.T, slow int, cfg routing.Config) *budgetNet {
	id, err := protocol.NewIdentity(rand.NewChaCha8([32]byte{140}))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Identity, cfg.Rand, cfg.AnnounceInterval = id, rand.NewChaCha8([32]byte{141}), 24*time.Hour
	eng, err := routing.New(cfg, epoch, nil)
	if err != nil {
		t.Fatal(err)
	}
	n := &budgetNet{t: t, eng: eng, now: epoch, src: attacker(t),
		peers: map[routing.LinkID]routing.Address{}, waiting: map[routing.LinkID][]int{}, handed: map[routing.LinkID]int{}, ids: map[routing.MessageID]int{}}
	n.up(budgetAttackLink, n.src.Address(), 256)
	n.up(budgetHonestLink, protocol.Address{0xb0}, 256)
	for i := range slow {
		n.up(budgetFirstSlow+routing.LinkID(i), slowPeer(i), 256)
	}
	return n
}

func slowPeer(i int) routing.Address { return protocol.Address{0xc0, byte(i)} }

func (n *budgetNet) up(id routing.LinkID, peer routing.Address, window int) {
	n.peers[id] = peer
	n.step(routing.LinkUp{Link: routing.LinkInfo{ID: id, Kind: routing.LinkIP, Peer: peer, Window: window, WindowBytes: 4 << 20}})
}

func (n *budgetNet) step(in routing.Input) {
	if err := n.eng.Step(n.now, in); err != nil {
		n.t.Fatal(err)
	}
	n.run()
}

// run carries out what the engine has ready: the honest link takes its
// frames at once, the others keep them waiting.
func (n *budgetNet) run() {
	for n.eng.HasReady() {
		for _, tx := range n.eng.Ready().Transmits {
			if env := envelopeOf(tx.Frame); env != nil {
				n.handed[tx.Link]++
				n.ids[env.ID]++
			}
			n.waiting[tx.Link] = append(n.waiting[tx.Link], len(tx.Frame))
		}
		n.eng.Advance()
		n.take(budgetHonestLink, len(n.waiting[budgetHonestLink]))
		n.take(budgetAttackLink, len(n.waiting[budgetAttackLink]))
		n.note()
	}
	n.note()
}

// take lets link id's transport take k frames.
func (n *budgetNet) take(id routing.LinkID, k int) {
	k = min(k, len(n.waiting[id]))
	if k == 0 {
		return
	}
	n.waiting[id] = n.waiting[id][k:]
	if err := n.eng.Step(n.now, routing.TxDone{Link: id, Frames: k}); err != nil {
		n.t.Fatal(err)
	}
}

// held is what the node holds for its links: the engine's queues and what
// the links were handed and have not taken.
func (n *budgetNet) held() int {
	h := int(n.eng.Counters().QueuedBytes)
	for _, w := range n.waiting {
		for _, s := range w {
			h += s
		}
	}
	return h
}

func (n *budgetNet) note() { n.maxHeld = max(n.maxHeld, n.held()) }

// envelope is the attacker's next envelope for dest, of about size bytes.
func (n *budgetNet) envelope(dest routing.Address, size int) []byte {
	n.seq++
	var mid protocol.MessageID
	binary.BigEndian.PutUint32(mid[:], n.seq)
	ts := protocol.TimestampOf(n.now)
	env, err := protocol.SignEnvelope(n.src, protocol.Header{Type: protocol.TypeMessage, HopLimit: 8, ID: mid,
		Created: ts, Expires: ts + 3600, Dest: dest}, make([]byte, size))
	if err != nil {
		n.t.Fatal(err)
	}
	raw, err := env.MarshalBinary()
	if err != nil {
		n.t.Fatal(err)
	}
	return raw
}

// second pumps one second of the attack: perSlow envelopes for every slow
// peer and perHonest for the honest one; then every slow link takes one
// frame.
func (n *budgetNet) second(perSlow, perHonest, size int) {
	for _, id := range slices.Sorted(maps.Keys(n.peers)) {
		peer, k := n.peers[id], perSlow
		switch id {
		case budgetAttackLink:
			continue
		case budgetHonestLink:
			k = perHonest
		}
		for range k {
			n.step(routing.FrameReceived{Link: budgetAttackLink, Frame: n.envelope(peer, size)})
		}
	}
	n.now = n.now.Add(time.Second)
	n.eng.Tick(n.now)
	n.run()
	for id := range n.peers {
		if id >= budgetFirstSlow {
			n.take(id, 1)
		}
	}
	n.run()
}

// TestAttackSlowReadersExhaustMemory: twelve neighbours that take one
// frame a second are sent envelopes by an attacker (any node can address
// envelopes to them): each can hold the link's window (4 MiB) and its
// share of the engine's queue for it. The node must stay within its queue
// budget (32 MiB by default; one frame of slack), and an honest fast
// neighbour gets every envelope sent to it meanwhile. Before, the node held
// 12 x 6 MiB = 72 MiB (4 MiB window, 2 MiB of one neighbour's forwarded
// frames in the queue) and there was no bound across links.
func TestAttackSlowReadersExhaustMemory(t *testing.T) {
	const size = 32 << 10
	n := newBudgetNet(t, 12, routing.Config{})
	const seconds, perHonest = 30, 20
	for range seconds {
		n.second(10, perHonest, size)
	}
	budget := 32 << 20
	c := n.eng.Counters()
	t.Logf("held at most %d bytes (%.1f MiB), now %d; engine queues %d bytes; %d queue drops, %d for the budget; honest link handed %d envelopes",
		n.maxHeld, float64(n.maxHeld)/(1<<20), n.held(), c.QueuedBytes, c.QueueDrops, c.QueueBudgetDrops, n.handed[budgetHonestLink])
	if n.maxHeld > budget+size+1024 {
		t.Errorf("held %d bytes for slow links, budget %d", n.maxHeld, budget)
	}
	if got, want := n.handed[budgetHonestLink], seconds*perHonest; got != want {
		t.Errorf("honest link handed %d envelopes, want all %d", got, want)
	}
	if c.QueueBudgetDrops == 0 {
		t.Error("no frame refused or shed for the budget")
	}
}

// TestQueueBudgetUntouchedWithinIt: a node within its budget queues and
// hands out exactly what it did without one (here: the same traffic under
// a budget far above it and under one set just above what it holds).
func TestQueueBudgetUntouchedWithinIt(t *testing.T) {
	const size = 32 << 10
	var held [2]int
	var counters [2]routing.Counters
	for i, budget := range []int{1 << 30, 0} {
		n := newBudgetNet(t, 3, routing.Config{QueueBudget: budget})
		for range 20 {
			n.second(10, 5, size)
		}
		held[i], counters[i] = n.maxHeld, n.eng.Counters()
	}
	if held[0] != held[1] || counters[0] != counters[1] || counters[1].QueueBudgetDrops != 0 {
		t.Fatalf("held %d vs %d bytes; counters\n%+v\n%+v", held[0], held[1], counters[0], counters[1])
	}
}

// TestQueueBudgetShedKeepsCustody: frames shed for the budget lose no
// message the node keeps. Two slow links hold envelopes the node keeps in
// custody (they came while the links were down); a frame for the honest
// link then takes the node past its budget, and the slow links' newest
// frames are shed. Their records stay in custody, and once the links
// read again every envelope is handed to its link, once.
func TestQueueBudgetShedKeepsCustody(t *testing.T) {
	const size, each = 33000, 15
	n := newBudgetNet(t, 0, routing.Config{QueueBudget: 1 << 20})
	for i := range 2 * each {
		n.step(routing.FrameReceived{Link: budgetAttackLink, Frame: n.envelope(slowPeer(i%2), size)})
	}
	if c := n.eng.Counters(); c.CustodyCount != 2*each {
		t.Fatalf("%d envelopes in custody, want %d", c.CustodyCount, 2*each)
	}
	// The slow links come up with a window of 8 frames: 8 envelopes each
	// are handed, 7 wait in their queues (custody keeps those).
	for i := range 2 {
		n.up(budgetFirstSlow+routing.LinkID(i), slowPeer(i), 8)
	}
	n.now = n.now.Add(time.Second)
	n.eng.Tick(n.now)
	n.run()
	before := n.eng.Counters()
	if before.QueueBudgetDrops != 0 || before.QueuedFrames == 0 {
		t.Fatalf("before the honest frame: %d budget drops, %d frames queued", before.QueueBudgetDrops, before.QueuedFrames)
	}
	n.step(routing.FrameReceived{Link: budgetAttackLink, Frame: n.envelope(n.peers[budgetHonestLink], 60<<10)})
	after := n.eng.Counters()
	if after.QueueBudgetDrops == 0 || n.handed[budgetHonestLink] != 1 {
		t.Fatalf("the honest frame: %d budget drops, handed %d times (held %d of %d)", after.QueueBudgetDrops, n.handed[budgetHonestLink], n.held(), 1<<20)
	}
	if n.held() > 1<<20 {
		t.Errorf("held %d bytes, budget %d", n.held(), 1<<20)
	}
	// The slow links read again: custody sends what was shed.
	for range 600 {
		n.now = n.now.Add(time.Second)
		n.eng.Tick(n.now)
		n.run()
		for i := range 2 {
			n.take(budgetFirstSlow+routing.LinkID(i), 8)
		}
		n.run()
	}
	got := n.handed[budgetFirstSlow] + n.handed[budgetFirstSlow+1]
	twice := 0
	for _, k := range n.ids {
		twice += max(k-1, 0)
	}
	t.Logf("%d frames shed for the budget; then %d envelopes handed to the slow links (%d again), %d left in custody",
		after.QueueBudgetDrops, got, twice, n.eng.Counters().CustodyCount)
	if got-twice != 2*each || twice != 0 {
		t.Errorf("%d distinct envelopes handed to the slow links (%d twice), want all %d once", got-twice, twice, 2*each)
	}
}

// TestQueueBudgetWindowGrantedLater: a link announced without a window
// and announced again with one (LinkUp: new properties of a known link)
// is handed its frames. Before, the frames handed while it had no window
// stayed counted in flight, for ever (no TxDone comes for them): its
// window stayed shut, and what waited in its queue was held against the
// node's queue budget for ever.
func TestQueueBudgetWindowGrantedLater(t *testing.T) {
	n := newBudgetNet(t, 0, routing.Config{})
	const id = budgetFirstSlow
	n.up(id, slowPeer(0), 0)
	n.step(routing.FrameReceived{Link: budgetAttackLink, Frame: n.envelope(slowPeer(0), 100)})
	n.up(id, slowPeer(0), 1)
	n.step(routing.FrameReceived{Link: budgetAttackLink, Frame: n.envelope(slowPeer(0), 100)})
	if got := n.handed[id]; got != 2 {
		t.Errorf("handed %d envelopes to the link, want 2", got)
	}
	n.take(id, len(n.waiting[id]))
	if c := n.eng.Counters(); c.QueueHeldBytes != 0 {
		t.Errorf("the link took all it was handed: %d bytes still held (%d queued)", c.QueueHeldBytes, c.QueuedBytes)
	}
}

// TestQueueBudgetWindowWithdrawn: a link announced again without a window
// reports no more TxDone; what it was handed under its window is no longer
// held for it. Before, those bytes stayed counted against the node's queue
// budget for as long as the link was up.
func TestQueueBudgetWindowWithdrawn(t *testing.T) {
	n := newBudgetNet(t, 0, routing.Config{})
	const id = budgetFirstSlow
	n.up(id, slowPeer(0), 4)
	n.step(routing.FrameReceived{Link: budgetAttackLink, Frame: n.envelope(slowPeer(0), 100)})
	if got := n.eng.Counters().QueueHeldBytes; got == 0 || n.handed[id] != 1 {
		t.Fatalf("handed %d envelopes, %d bytes held", n.handed[id], got)
	}
	n.up(id, slowPeer(0), 0)
	if c := n.eng.Counters(); c.QueueHeldBytes != 0 {
		t.Errorf("the link has no window now: %d bytes still held for it (%d queued)", c.QueueHeldBytes, c.QueuedBytes)
	}
}

// TestQueueBudgetSequentialFill: the slow links are filled one after the
// other, so the first ones fill their whole windows (4 MiB each) while the
// node is still within its budget; what a link was handed cannot be taken
// back, and every later link still gets its share. The node then holds
// more than its budget, by at most a share per link (routing.md section
// 7). With slow, budget = 126, 32 << 20 (the daemon's 128 connections,
// its default budget) it held 59.3 MiB (go test ./routing -run
// TestQueueBudgetSequentialFill -v).
func TestQueueBudgetSequentialFill(t *testing.T) {
	const size, slow, budget = 60 << 10, 16, 4 << 20
	n := newBudgetNet(t, slow, routing.Config{QueueBudget: budget})
	links := slow + 2
	share := max(budget/links, 256<<10)
	for i := range slow {
		k := share/size + 2
		if i < budget/(4<<20) {
			k = 4<<20/size + 1 // a whole window, within the budget
		}
		for range k {
			n.step(routing.FrameReceived{Link: budgetAttackLink, Frame: n.envelope(slowPeer(i), size)})
		}
	}
	t.Logf("%d links, held at most %d bytes (%.1f MiB), budget %d, share %d", links, n.maxHeld, float64(n.maxHeld)/(1<<20), budget, share)
	if n.maxHeld > budget+links*share+size+1024 {
		t.Errorf("held %d bytes, more than the budget and a share per link (%d)", n.maxHeld, budget+links*share)
	}
	if n.maxHeld <= budget+(slow-1)*share/2 {
		t.Errorf("held %d bytes: the later links did not get their shares", n.maxHeld)
	}
}

// TestQueueBudgetShedKeepsAcknowledged: envelopes forwarded straight
// through (no custody record: their next hop was up) from a neighbour
// that asks for hop acks were acknowledged on arrival, so that neighbour
// forgot them. Shed for the budget, they must not be lost here: the node
// keeps them in custody and sends them again once the slow link reads.
// Before, the shed ones were gone from the mesh but for the origin's
// end-to-end retry.
func TestQueueBudgetShedKeepsAcknowledged(t *testing.T) {
	const size, each = 33000, 30
	n := newBudgetNet(t, 0, routing.Config{QueueBudget: 1 << 20})
	n.step(routing.LinkUp{Link: routing.LinkInfo{ID: budgetAttackLink, Kind: routing.LinkIP, Peer: n.src.Address(),
		Window: 256, WindowBytes: 4 << 20, HopAcks: true}})
	n.up(budgetFirstSlow, slowPeer(0), 8)
	for range each {
		n.step(routing.FrameReceived{Link: budgetAttackLink, Frame: n.envelope(slowPeer(0), size)})
	}
	before := n.eng.Counters()
	if before.CustodyCount != 0 || before.HopAcksSent < each || before.QueueBudgetDrops != 0 {
		t.Fatalf("before: %d in custody, %d hop acks sent, %d budget drops", before.CustodyCount, before.HopAcksSent, before.QueueBudgetDrops)
	}
	n.step(routing.FrameReceived{Link: budgetAttackLink, Frame: n.envelope(n.peers[budgetHonestLink], 60<<10)})
	shed := n.eng.Counters().QueueBudgetDrops
	if shed == 0 {
		t.Fatal("nothing shed for the budget")
	}
	for range 600 {
		n.now = n.now.Add(time.Second)
		n.eng.Tick(n.now)
		n.run()
		n.take(budgetFirstSlow, 8)
		n.run()
	}
	got, twice := n.handed[budgetFirstSlow], 0
	for _, k := range n.ids {
		twice += max(k-1, 0)
	}
	t.Logf("%d frames shed; %d envelopes handed to the slow link (%d again), %d left in custody", shed, got, twice, n.eng.Counters().CustodyCount)
	if got-twice != each {
		t.Errorf("%d distinct envelopes handed to the slow link, want all %d", got-twice, each)
	}
}

// TestQueueBudgetHopAckToBusyLink: while the budget is held by slow
// links, a busy honest neighbour with more than its share in flight (its
// writer has not caught up) sends an envelope; the node must still
// acknowledge it. Before, the ack was refused with everything else over
// the link's share: the neighbour sent the envelope again and, after its
// retries, dropped its routes through this node.
func TestQueueBudgetHopAckToBusyLink(t *testing.T) {
	const size, budget = 32 << 10, 1 << 20
	n := newBudgetNet(t, 2, routing.Config{QueueBudget: budget})
	const busy routing.LinkID = 3
	busyPeer := protocol.Address{0xb1}
	n.peers[busy] = busyPeer
	n.step(routing.LinkUp{Link: routing.LinkInfo{ID: busy, Kind: routing.LinkIP, Peer: busyPeer, Window: 256, WindowBytes: 4 << 20, HopAcks: true}})
	for range 12 { // 384 KiB in flight, more than a share (256 KiB)
		n.step(routing.FrameReceived{Link: budgetAttackLink, Frame: n.envelope(busyPeer, size)})
	}
	// One slow link holds the rest of the budget; the other its share.
	for i, k := range []int{budget / size, 8} {
		for range k {
			n.step(routing.FrameReceived{Link: budgetAttackLink, Frame: n.envelope(slowPeer(i), size)})
		}
	}
	before := n.eng.Counters()
	if int(before.QueueHeldBytes) <= budget {
		t.Fatalf("held %d bytes, budget %d", before.QueueHeldBytes, budget)
	}
	handed := len(n.waiting[busy])
	n.step(routing.FrameReceived{Link: busy, Frame: n.envelope(n.peers[budgetHonestLink], 100)})
	if got := n.eng.Counters().HopAcksSent - before.HopAcksSent; got != 1 {
		t.Errorf("%d hop acks sent to the busy neighbour, want 1", got)
	}
	if got := len(n.waiting[busy]) - handed; got != 1 {
		t.Errorf("%d frames handed to the busy neighbour, want its hop ack", got)
	}
}

// TestQueueBudgetRefusedCountedOnce: an envelope forwarded to a link over
// its share while the budget is tight is refused once, counted once in
// QueueBudgetDrops, and kept in custody. Before, custody tried it again
// at once on the same queue, which refused it again, and every such
// envelope counted two frames refused for the budget.
func TestQueueBudgetRefusedCountedOnce(t *testing.T) {
	const size, budget, more = 32 << 10, 1 << 20, 5
	n := newBudgetNet(t, 1, routing.Config{QueueBudget: budget})
	for range budget/size + 8 { // the slow link takes nothing: tight
		n.step(routing.FrameReceived{Link: budgetAttackLink, Frame: n.envelope(slowPeer(0), size)})
	}
	before, handed := n.eng.Counters(), n.handed[budgetFirstSlow]
	if before.QueueBudgetDrops == 0 {
		t.Fatalf("held %d bytes, budget %d: nothing refused yet", before.QueueHeldBytes, budget)
	}
	for range more {
		n.step(routing.FrameReceived{Link: budgetAttackLink, Frame: n.envelope(slowPeer(0), size)})
	}
	after := n.eng.Counters()
	if got := after.QueueBudgetDrops - before.QueueBudgetDrops; got != more {
		t.Errorf("%d envelopes refused, %d counted in QueueBudgetDrops", more, got)
	}
	if got := after.CustodyCount - before.CustodyCount; got != more || n.handed[budgetFirstSlow] != handed {
		t.Errorf("%d of %d refused envelopes in custody, %d handed", got, more, n.handed[budgetFirstSlow]-handed)
	}
}
