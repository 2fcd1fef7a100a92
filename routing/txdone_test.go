package routing_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/routing"
)

// TestHopAckTimerStartsAtTxDone: on a link with a window (a LoRa modem),
// the hop-ack timeout runs from the transport's TxDone, not from the hand
// over. A frame the transport holds back for the duty cycle is not on the
// air yet; retransmitting it while it waits spends airtime that is already
// short (and the copy then waits behind the original).
func TestHopAckTimerStartsAtTxDone(t *testing.T) {
	rnd := rand.NewChaCha8([32]byte{48})
	f, err := protocol.NewIdentity(rnd)
	if err != nil {
		t.Fatal(err)
	}
	o, b := attacker(t), protocol.Address{0xb1}
	eng, err := routing.New(routing.Config{Identity: f, Rand: rand.NewChaCha8([32]byte{49}), AnnounceInterval: 24 * time.Hour}, epoch, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := epoch
	var handed int
	run := func() {
		for eng.HasReady() {
			for _, tx := range eng.Ready().Transmits {
				if tx.Link == 2 && envelopeOf(tx.Frame) != nil {
					handed++
				}
			}
			eng.Advance()
		}
	}
	step := func(in routing.Input) {
		_ = eng.Step(now, in)
		run()
	}
	step(routing.LinkUp{Link: routing.LinkInfo{ID: 1, Kind: routing.LinkTCP, Bitrate: 1e8, Peer: o.Address()}})
	step(routing.LinkUp{Link: routing.LinkInfo{ID: 2, Kind: routing.LinkLoRa, Bitrate: 5000, Peer: b, HopAcks: true, Window: 1}})
	step(routing.TxDone{Link: 2, Frames: 1}) // the radio's first advert is out
	ts := protocol.TimestampOf(now)
	env, err := protocol.SignEnvelope(o, protocol.Header{Type: protocol.TypeMessage, HopLimit: 8, ID: protocol.MessageID{2},
		Created: ts, Expires: ts + 3600, Dest: b}, []byte("deferred by the duty cycle"))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := env.MarshalBinary()
	step(routing.FrameReceived{Link: 1, Frame: raw})
	if handed != 1 {
		t.Fatalf("envelope handed to the radio %d times, want 1 (%+v)", handed, eng.Counters())
	}
	tick := func(d time.Duration) {
		for end := now.Add(d); now.Before(end); {
			now = now.Add(time.Second)
			eng.Tick(now)
			run()
		}
	}
	// The transport holds the frame for a minute (the ledger is spent):
	// no TxDone, so no hop-ack timeout can have started.
	tick(time.Minute)
	if c := eng.Counters(); c.Retransmits != 0 || c.RetransmitFailed != 0 {
		t.Fatalf("retransmitted while the frame still waited to be sent: %+v", c)
	}
	// Sent: now the timeout runs and, with no ack, the envelope goes again.
	step(routing.TxDone{Link: 2, Frames: 1})
	tick(10 * time.Second)
	if c := eng.Counters(); c.Retransmits != 1 || handed != 2 {
		t.Fatalf("after TxDone and a timeout: %d retransmits, handed %d times; want 1 and 2", c.Retransmits, handed)
	}
}
