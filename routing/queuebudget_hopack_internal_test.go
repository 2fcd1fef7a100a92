package routing

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
	"time"

	"meshd.dev/meshd/protocol"
)

// heldForLinks is what the engine holds for its links, recomputed from
// what it keeps rather than from its own count: the frames in its queues,
// those handed to windowed links not yet done, and the envelopes that wait
// for a hop ack and are in neither (sent, their timeout running).
func heldForLinks(e *Engine) int {
	sum := 0
	for _, l := range e.links {
		for _, p := range l.queue.q {
			for _, it := range p {
				sum += len(it.frame)
			}
		}
		for _, s := range l.sizes {
			sum += s
		}
	}
	for _, w := range e.hopAcks {
		if !w.deadline.IsZero() {
			sum += len(w.frame)
		}
	}
	return sum
}

// hopAckSink forwards count envelopes of size bytes from one neighbour to
// another, both on windowed hop-ack links that take every frame at once,
// under a queue budget of budget bytes; the sink acknowledges them if
// acks. It returns the engine and the most it held for its links.
func hopAckSink(t *testing.T, budget, size, count int, acks bool) (*Engine, int) {
	rng := rand.NewChaCha8([32]byte{160})
	id, err := protocol.NewIdentity(rng)
	if err != nil {
		t.Fatal(err)
	}
	src, err := protocol.NewIdentity(rng)
	if err != nil {
		t.Fatal(err)
	}
	now := budgetEpoch
	e, err := New(Config{Identity: id, Rand: rng, AnnounceInterval: 24 * time.Hour, QueueBudget: budget}, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	const from, sink LinkID = 1, 2
	sinkPeer := Address{0xe0}
	stepNow := func(in Input) {
		if err := e.Step(now, in); err != nil {
			t.Fatal(err)
		}
	}
	run := func() { // every link takes what it is handed at once
		for e.HasReady() {
			k := map[LinkID]int{}
			var acked [][]byte
			for _, tx := range e.Ready().Transmits {
				k[tx.Link]++
				if env, err := protocol.ParseEnvelope(tx.Frame); acks && tx.Link == sink && err == nil {
					acked = append(acked, protocol.AppendHopAck(nil, protocol.MessageID(env.Key())))
				}
			}
			e.Advance()
			for _, l := range []LinkID{from, sink} {
				if k[l] > 0 {
					stepNow(TxDone{Link: l, Frames: k[l]})
				}
			}
			for _, a := range acked {
				stepNow(FrameReceived{Link: sink, Frame: a})
			}
		}
	}
	step := func(in Input) { stepNow(in); run() }
	for l, peer := range map[LinkID]Address{from: src.Address(), sink: sinkPeer} {
		step(LinkUp{Link: LinkInfo{ID: l, Kind: LinkIP, Peer: peer, Window: 256, WindowBytes: 4 << 20, HopAcks: true}})
	}
	maxHeld := 0
	for i := range count {
		var mid protocol.MessageID
		binary.BigEndian.PutUint32(mid[:], uint32(i+1))
		ts := protocol.TimestampOf(now)
		env, err := protocol.SignEnvelope(src, protocol.Header{Type: protocol.TypeMessage, HopLimit: 8, ID: mid,
			Created: ts, Expires: ts + 3600, Dest: sinkPeer}, make([]byte, size))
		if err != nil {
			t.Fatal(err)
		}
		raw, err := env.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		step(FrameReceived{Link: from, Frame: raw})
		maxHeld = max(maxHeld, heldForLinks(e))
	}
	return e, maxHeld
}

// TestAttackHopAckWaitsPastBudget: a neighbour that takes every frame at
// once (its writer keeps up) but never sends a hop ack makes this node keep
// every envelope forwarded to it for the ack's timeout and its retries
// (about 2 s each on a fast link). Another neighbour (or the same one:
// any node can address envelopes to it) sends it envelopes as fast as its
// link goes. What the node holds for its links must stay within the queue
// budget and a share per link, as for frames it queues or hands to a slow
// link (operations.md section 17). Before, the waiting envelopes were
// counted nowhere: 8 MiB sent in a moment were all held under a budget of
// 1 MiB (32 MiB a second per neighbour at the daemon's peer_byte_rate).
func TestAttackHopAckWaitsPastBudget(t *testing.T) {
	const budget, size, count = 1 << 20, 32 << 10, 256
	e, maxHeld := hopAckSink(t, budget, size, count, false)
	share := max(budget/2, queueShareFloor)
	bound := budget + 2*share + size + 1024
	t.Logf("held at most %d bytes (%.1f MiB) for the links, bound %d; %d envelopes wait for a hop ack; %d refused for the budget, %d in custody",
		maxHeld, float64(maxHeld)/(1<<20), bound, len(e.hopAcks), e.counters.QueueBudgetDrops, len(e.custody.recs))
	if maxHeld > bound {
		t.Errorf("held %d bytes for the links: more than the budget (%d) and a share per link (%d)", maxHeld, budget, share)
	}
	if got := heldForLinks(e); e.held != got {
		t.Errorf("the budget counts %d bytes held, the node holds %d", e.held, got)
	}
}

// TestQueueBudgetHopAcksAnswered: the same traffic to a neighbour that
// acknowledges every envelope it takes is forwarded whole: nothing is
// refused for the budget, and once acknowledged nothing is held.
func TestQueueBudgetHopAcksAnswered(t *testing.T) {
	const budget, size, count = 1 << 20, 32 << 10, 256
	e, maxHeld := hopAckSink(t, budget, size, count, true)
	if c := e.counters; c.QueueBudgetDrops != 0 || c.Forwarded != count || len(e.hopAcks) != 0 || e.held != 0 {
		t.Errorf("%d refused for the budget, %d of %d forwarded, %d still wait for a hop ack, %d bytes held (at most %d)",
			c.QueueBudgetDrops, c.Forwarded, count, len(e.hopAcks), e.held, maxHeld)
	}
}
