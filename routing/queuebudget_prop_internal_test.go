package routing

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"pgregory.net/rapid"

	"meshd.dev/meshd/protocol"
)

// budgetModel drives one engine with random link events and traffic and
// plays the transports: a windowed link holds what it was handed until the
// test reports it done (TxDone); a link without a window takes frames at
// once and reports nothing.
type budgetModel struct {
	e    *Engine
	now  time.Time
	src  *protocol.Identity
	seq  uint32
	held map[LinkID][]int // frames handed to a windowed link, not yet done

	steps, frames, maxHeld, acked int // for the log
}

func (m *budgetModel) step(t *rapid.T, in Input) {
	_ = m.e.Step(m.now, in) // unknown links are refused, as they should be
	m.steps++
	m.run()
	m.check(t)
}

// run carries out what the engine has ready.
func (m *budgetModel) run() {
	for m.e.HasReady() {
		for _, tx := range m.e.Ready().Transmits {
			m.frames++
			if l := m.e.links[tx.Link]; l != nil && l.info.Window > 0 {
				m.held[tx.Link] = append(m.held[tx.Link], len(tx.Frame))
			}
		}
		m.e.Advance()
	}
}

// check recomputes what the engine holds for its links from its queues,
// windows and hop-ack waits, and compares it with the engine's running
// count.
func (m *budgetModel) check(t *rapid.T) {
	sum := 0
	acks := map[LinkID]int{}
	for _, w := range m.e.hopAcks {
		if !w.deadline.IsZero() { // sent, neither queued nor handed
			acks[w.link] += len(w.frame)
			sum += len(w.frame)
		}
	}
	for id, l := range m.e.links {
		if acks[id] != l.ackBytes {
			t.Fatalf("link %d: hop-ack waits count %d bytes, hold %d", id, l.ackBytes, acks[id])
		}
		q := 0
		for _, p := range l.queue.q {
			for _, it := range p {
				q += len(it.frame)
			}
		}
		w := 0
		for _, s := range l.sizes {
			w += s
		}
		if q != l.queue.bytes || w != l.inflightBytes {
			t.Fatalf("link %d: queue counts %d bytes, holds %d; window counts %d bytes, holds %d", id, l.queue.bytes, q, l.inflightBytes, w)
		}
		sum += q + w
	}
	m.maxHeld = max(m.maxHeld, sum)
	if m.e.held != sum || m.e.held < 0 {
		t.Fatalf("engine holds %d bytes for its links by its count, %d by its queues and windows", m.e.held, sum)
	}
	if c := m.e.Counters(); c.QueueHeldBytes != uint64(sum) {
		t.Fatalf("QueueHeldBytes %d, held %d", c.QueueHeldBytes, sum)
	}
}

var budgetEpoch = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func budgetPeer(id LinkID) Address { return Address{0xd0, byte(id)} }

// envelope is a signed envelope from m.src for dest with a body of size.
func (m *budgetModel) envelope(t *rapid.T, dest Address, size int) []byte {
	m.seq++
	var mid protocol.MessageID
	binary.BigEndian.PutUint32(mid[:], m.seq)
	ts := protocol.TimestampOf(m.now)
	env, err := protocol.SignEnvelope(m.src, protocol.Header{Type: protocol.TypeMessage, HopLimit: 8, ID: mid,
		Created: ts, Expires: ts + 3600, Dest: dest}, make([]byte, size))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := env.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// done reports k of the frames handed to link id taken.
func (m *budgetModel) done(t *rapid.T, id LinkID, k int) {
	k = min(k, len(m.held[id]))
	if k == 0 {
		return
	}
	m.held[id] = m.held[id][k:]
	m.step(t, TxDone{Link: id, Frames: k})
}

// flush lets every windowed link take all it was handed until the engine
// hands nothing more.
func (m *budgetModel) flush(t *rapid.T) {
	for range 1000 {
		more := false
		for id := range m.held {
			if len(m.held[id]) > 0 {
				more = true
				m.done(t, id, len(m.held[id]))
			}
		}
		if !more {
			return
		}
	}
	t.Fatal("the links never stop being handed frames")
}

// TestQueueBudgetAccountingProperty: whatever links come, go, come back
// under the same ID or change their window, queue size and MTU, and
// whatever the traffic (envelopes forwarded whole or in fragments, hop
// acks, custody retries, frames shed for a small budget), the engine's
// count of what it holds for its links (Engine.held) is the sum of its
// queues, windows and hop-ack waits, never negative; and once every link has taken
// everything, or gone down, it is zero: nothing leaks that would leave
// the budget full for ever.
func TestQueueBudgetAccountingProperty(t *testing.T) {
	var steps, shed, maxHeld, frames, acked int
	defer func() {
		t.Logf("%d steps, %d frames handed, %d shed or refused for the budget, held at most %d bytes, %d waits ended by an ack", steps, frames, shed, maxHeld, acked)
	}()
	rapid.Check(t, func(t *rapid.T) {
		rng := rand.NewChaCha8([32]byte{byte(rapid.IntRange(0, 255).Draw(t, "seed"))})
		id, err := protocol.NewIdentity(rng)
		if err != nil {
			t.Fatal(err)
		}
		src, err := protocol.NewIdentity(rng)
		if err != nil {
			t.Fatal(err)
		}
		budget := rapid.SampledFrom([]int{64 << 10, 256 << 10, 1 << 20}).Draw(t, "budget")
		e, err := New(Config{Identity: id, Rand: rng, AnnounceInterval: 24 * time.Hour, QueueBudget: budget}, budgetEpoch, nil)
		if err != nil {
			t.Fatal(err)
		}
		m := &budgetModel{e: e, now: budgetEpoch, src: src, held: map[LinkID][]int{}}
		linkID := rapid.Custom(func(t *rapid.T) LinkID { return LinkID(rapid.IntRange(1, 6).Draw(t, "link")) })
		t.Repeat(map[string]func(*rapid.T){
			"up": func(t *rapid.T) {
				info := LinkInfo{ID: linkID.Draw(t, "id"), Kind: LinkIP,
					Window:      rapid.SampledFrom([]int{0, 1, 8, 256}).Draw(t, "window"),
					WindowBytes: rapid.SampledFrom([]int{0, 64 << 10, 4 << 20}).Draw(t, "windowBytes"),
					QueueBytes:  rapid.SampledFrom([]int{0, 16 << 10, 1 << 20}).Draw(t, "queueBytes"),
					MTU:         rapid.SampledFrom([]int{0, 600}).Draw(t, "mtu"),
					HopAcks:     rapid.Bool().Draw(t, "hopAcks"),
				}
				info.Peer = budgetPeer(info.ID)
				if info.Window == 0 {
					info.WindowBytes = 0
					delete(m.held, info.ID) // no TxDone comes without a window
				}
				m.step(t, LinkUp{Link: info})
			},
			"down": func(t *rapid.T) {
				id := linkID.Draw(t, "id")
				if m.e.links[id] == nil {
					return
				}
				delete(m.held, id)
				m.step(t, LinkDown{Link: id})
			},
			"receive": func(t *rapid.T) {
				from, to := linkID.Draw(t, "from"), linkID.Draw(t, "to")
				if m.e.links[from] == nil {
					return
				}
				size := rapid.IntRange(10, 40000).Draw(t, "size")
				for range rapid.IntRange(1, 40).Draw(t, "burst") {
					m.step(t, FrameReceived{Link: from, Frame: m.envelope(t, budgetPeer(to), size)})
				}
			},
			"ack": func(t *rapid.T) {
				// A neighbour acknowledges an envelope waiting for a hop
				// ack: on its link or another, once or twice, or one
				// nothing waits for (already acked, or never sent to it).
				keys := sortedIDs(m.e.hopAcks)
				if len(keys) == 0 {
					return
				}
				key := keys[rapid.IntRange(0, len(keys)-1).Draw(t, "wait")]
				on := m.e.hopAcks[key].link
				if rapid.Bool().Draw(t, "otherLink") {
					on = linkID.Draw(t, "on")
				}
				if m.e.links[on] == nil {
					return
				}
				for range rapid.IntRange(1, 2).Draw(t, "times") {
					m.step(t, FrameReceived{Link: on, Frame: protocol.AppendHopAck(nil, protocol.MessageID(key))})
				}
				if m.e.hopAcks[key] == nil {
					m.acked++
				}
			},
			"done": func(t *rapid.T) {
				m.done(t, linkID.Draw(t, "id"), rapid.IntRange(1, 20).Draw(t, "k"))
			},
			"tick": func(t *rapid.T) {
				m.now = m.now.Add(time.Duration(rapid.IntRange(1, 120).Draw(t, "seconds")) * time.Second)
				m.e.Tick(m.now)
				m.run()
				m.check(t)
			},
		})
		// Every link takes all it holds, again and again, while custody
		// and hop acks send more.
		for range 200 {
			m.now = m.now.Add(30 * time.Second)
			m.e.Tick(m.now)
			m.run()
			m.flush(t)
		}
		steps += m.steps
		frames += m.frames
		acked += m.acked
		shed += int(m.e.counters.QueueBudgetDrops)
		maxHeld = max(maxHeld, m.maxHeld)
		if m.e.held != 0 {
			var desc string
			for id, l := range m.e.links {
				desc += fmt.Sprintf(" link %d: %d queued, %d in flight (window %d), %d awaiting hop acks;", id, l.queue.bytes, l.inflightBytes, l.info.Window, l.ackBytes)
			}
			t.Fatalf("every link took everything, and the engine still holds %d bytes for them:%s", m.e.held, desc)
		}
	})
}

// TestQueueBudgetShedOutranked: a frame within its link's share takes the
// node past its budget; the links over their share shed only frames it
// outranks or equals, as a queue displaces only what a new frame
// outranks. A flood relay (bulk) for one link must not cost another link
// its envelopes (data); an envelope may.
func TestQueueBudgetShedOutranked(t *testing.T) {
	id, err := protocol.NewIdentity(rand.NewChaCha8([32]byte{150}))
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(Config{Identity: id, Rand: rand.NewChaCha8([32]byte{151}), AnnounceInterval: 24 * time.Hour, QueueBudget: 1 << 20}, budgetEpoch, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []LinkID{1, 2} {
		if err := e.Step(budgetEpoch, LinkUp{Link: LinkInfo{ID: l, Kind: LinkIP}}); err != nil {
			t.Fatal(err)
		}
	}
	slow, fast := e.links[1], e.links[2]
	slow.queue.clear()
	fast.queue.clear()
	const size = 32 << 10
	for range 31 {
		if !e.enqueue(slow, qitem{frame: make([]byte, size), pri: PriData}) {
			t.Fatal("refused within the budget")
		}
	}
	if !e.enqueue(fast, qitem{frame: make([]byte, 3*size), pri: PriBulk}) {
		t.Fatal("a frame within its link's share refused")
	}
	if c := e.counters.QueueBudgetDrops; c != 0 {
		t.Errorf("a bulk frame cost %d envelopes of another link", c)
	}
	if !e.enqueue(fast, qitem{frame: make([]byte, size), pri: PriData}) {
		t.Fatal("a frame within its link's share refused")
	}
	if c := e.counters.QueueBudgetDrops; c == 0 || e.held > e.cfg.QueueBudget+3*size {
		t.Errorf("an envelope within its share shed %d frames; %d bytes held", c, e.held)
	}
}
