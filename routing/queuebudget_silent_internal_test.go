package routing

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
	"time"

	"meshd.dev/meshd/protocol"
)

// silentSinkRun forwards envelopes of 32 KiB from one neighbour to another
// that acknowledges them 16 at a time (its round trip: 512 KiB waiting,
// more than its share of a 1 MiB budget over three links), after, if
// silent, 64 sent to a third that takes every frame and never
// acknowledges. Then time passes and custody retries. It returns how many
// of the acknowledging neighbour's envelopes the budget refused at first,
// and how many distinct ones it acknowledged in the end.
func silentSinkRun(t *testing.T, silent bool) (refused uint64, acked int) {
	rng := rand.NewChaCha8([32]byte{170})
	id, err := protocol.NewIdentity(rng)
	if err != nil {
		t.Fatal(err)
	}
	src, err := protocol.NewIdentity(rng)
	if err != nil {
		t.Fatal(err)
	}
	now := budgetEpoch
	e, err := New(Config{Identity: id, Rand: rng, AnnounceInterval: 24 * time.Hour, QueueBudget: 1 << 20}, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	const from, bad, good LinkID = 1, 2, 3
	badPeer, goodPeer := Address{0xe1}, Address{0xe2}
	var pending [][]byte // the acks the good peer owes
	got := map[envKey]bool{}
	step := func(in Input) {
		if err := e.Step(now, in); err != nil {
			t.Fatal(err)
		}
	}
	run := func() { // every link takes what it is handed at once
		for e.HasReady() {
			k := map[LinkID]int{}
			for _, tx := range e.Ready().Transmits {
				k[tx.Link]++
				if env, err := protocol.ParseEnvelope(tx.Frame); tx.Link == good && err == nil {
					pending = append(pending, protocol.AppendHopAck(nil, protocol.MessageID(env.Key())))
					got[env.Key()] = true
				}
			}
			e.Advance()
			for _, l := range []LinkID{from, bad, good} {
				if k[l] > 0 {
					step(TxDone{Link: l, Frames: k[l]})
				}
			}
		}
	}
	ack := func() {
		for _, a := range pending {
			step(FrameReceived{Link: good, Frame: a})
		}
		pending = nil
		run()
	}
	for _, l := range []LinkID{from, bad, good} {
		peer := map[LinkID]Address{from: src.Address(), bad: badPeer, good: goodPeer}[l]
		step(LinkUp{Link: LinkInfo{ID: l, Kind: LinkIP, Peer: peer, Window: 256, WindowBytes: 4 << 20, HopAcks: true}})
		run()
	}
	seq := uint32(0)
	send := func(dest Address) {
		seq++
		var mid protocol.MessageID
		binary.BigEndian.PutUint32(mid[:], seq)
		ts := protocol.TimestampOf(now)
		env, err := protocol.SignEnvelope(src, protocol.Header{Type: protocol.TypeMessage, HopLimit: 8, ID: mid,
			Created: ts, Expires: ts + 3600, Dest: dest}, make([]byte, 32<<10))
		if err != nil {
			t.Fatal(err)
		}
		raw, err := env.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		step(FrameReceived{Link: from, Frame: raw})
		run()
	}
	if silent {
		for range 64 {
			send(badPeer)
		}
	}
	d0 := e.counters.QueueBudgetDrops
	for i := range 128 {
		send(goodPeer)
		if i%16 == 15 {
			ack()
		}
	}
	refused = e.counters.QueueBudgetDrops - d0
	for range 20 { // custody retries what was refused
		now = now.Add(30 * time.Second)
		e.Tick(now)
		run()
		ack()
	}
	if e.held != 0 || len(e.hopAcks) != 0 {
		t.Errorf("silent=%v: %d bytes held, %d hop-ack waits left once everything was acknowledged or given up", silent, e.held, len(e.hopAcks))
	}
	return refused, len(got)
}

// TestQueueBudgetSilentSinkLiveness: a neighbour that never acknowledges
// fills the budget with envelopes waiting for its hop acks, which cannot be
// shed; an acknowledging neighbour beside it then has only its share, and
// what the budget refuses it waits in custody. It must not wait for ever:
// once the silent neighbour's waits time out, custody sends every refused
// envelope again and the acknowledging neighbour gets all 128. Without the
// silent neighbour none is refused.
func TestQueueBudgetSilentSinkLiveness(t *testing.T) {
	if refused, acked := silentSinkRun(t, false); refused != 0 || acked != 128 {
		t.Errorf("alone: %d refused for the budget, %d of 128 acknowledged", refused, acked)
	}
	refused, acked := silentSinkRun(t, true)
	t.Logf("beside a silent neighbour: %d refused for the budget at first, %d of 128 acknowledged in the end", refused, acked)
	if acked != 128 {
		t.Errorf("beside a silent neighbour: %d of 128 acknowledged in the end", acked)
	}
}
