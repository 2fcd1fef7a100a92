package daemon

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"meshd.dev/meshd/rpcapi"
	"meshd.dev/meshd/transports/p2p"
)

// TestSlowReaderDoesNotHoldTheLoop: a peer that stops reading (here its
// node loop is held, so it takes no more frames off its link) must not
// hold the victim's node loop. The victim's app keeps sending it messages
// until the link is full and more wait; then the victim's API (msg.send to
// an honest peer) and the honest peer's messages to the victim must go
// through with the slow reader still holding its link, and no frame may be
// dropped: what the link cannot take waits in the routing engine, not in
// the loop. Once the slow reader reads again, every message arrives, once.
// It runs over a libp2p link and over a TCP link.
//
// Before, the loop waited up to a second for the full queue, then 10 ms
// per batch, and dropped the frames it gave up on (custody sent them
// again, about 25 s later); a reader that takes one frame now and then,
// just often enough, made every batch wait a second again: every peer,
// every API call and every timer of the node waited with it. Over libp2p
// msg.send took 1.01 s, the honest peer's message 1.06 s, the loop waited
// 100 times and dropped 100 frames (the test failed on those).
func TestSlowReaderDoesNotHoldTheLoop(t *testing.T) {
	t.Run("libp2p", func(t *testing.T) { testSlowReader(t, false, 4<<10, false) })
	t.Run("tcp", func(t *testing.T) { testSlowReader(t, true, 4<<10, false) })
}

// TestSlowReaderLargeMessages is TestSlowReaderDoesNotHoldTheLoop with
// messages near the largest payload, as envelopes (sealed sender; a
// session frame holds at most 16 KiB): a window of p2p.SendWindow such
// frames holds more than the send queue's byte bound, so the link refuses
// frames the engine handed it within its window. Those must wait in the
// engine like the rest, not be dropped (custody would send them again
// only after its retry interval, and a fragment lost loses the message).
func TestSlowReaderLargeMessages(t *testing.T) {
	testSlowReader(t, false, 60<<10, true)
}

// testSlowReader runs TestSlowReaderDoesNotHoldTheLoop with the slow
// reader on a libp2p link or on a TCP link.
func testSlowReader(t *testing.T, overTCP bool, size int, sealed bool) {
	noLeaks(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	victim, honest, slow := slowReaderNodes(t, ctx, overTCP)
	subSlow := slow.hub.add(8192)
	defer slow.hub.remove(subSlow)
	subVictim := victim.hub.add(8192)
	defer victim.hub.remove(subVictim)

	// A first message sets up the victim's session with the slow reader
	// (without one, messages wait for its handshake, not for the link).
	if _, err := victim.Send(ctx, rpcapi.SendParams{To: slow.id.Address().String(), Text: "hello"}); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, subSlow.ch, "hello")

	// The slow reader's loop is held until gate closes: its host's event
	// queue fills and then its link reader reads nothing more.
	gate := make(chan struct{})
	held := make(chan error, 1)
	go func() { held <- slow.call(ctx, func() { <-gate }) }()
	defer func() {
		select {
		case <-gate:
		default:
			close(gate)
		}
	}()

	// The victim's app sends to the slow reader until the link is full
	// (libp2p: its send queue; TCP, whose queue and socket buffers the
	// daemon cannot see: the engine holds frames for it), then 100
	// messages more, which have to wait.
	to := slow.id.Address().String()
	var filled atomic.Bool
	var sent atomic.Int64
	pumpDone := make(chan error, 1)
	go func() {
		body := make([]byte, size)
		_, _ = rand.NewChaCha8([32]byte{1}).Read(body) // incompressible
		// As many more as the engine's link queue (4 MiB) holds: beyond
		// that it defers them to custody, which sends them again later.
		extra, more := 0, min(100, (3<<20)/size)
		for i := 0; i < 4000 && extra < more; i++ {
			copy(body, fmt.Sprintf("m%06d", i))
			if _, err := victim.Send(ctx, rpcapi.SendParams{To: to, Payload: body, SealedSender: sealed}); err != nil {
				pumpDone <- err
				return
			}
			sent.Add(1)
			if filled.Load() {
				extra++
			}
		}
		pumpDone <- nil
	}()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	full := func() bool {
		if overTCP {
			return victim.snap.Load().counters.QueuedFrames > 0
		}
		// Full in frames, or (large frames) about full in bytes.
		q := victim.host.LinkQueue(slow.host.ID())
		return q == p2p.SendWindow || q*size >= p2p.SendWindowBytes
	}
	for !full() {
		select {
		case err := <-pumpDone:
			t.Fatalf("the slow reader's link never filled: %d messages sent (%v)", sent.Load(), err)
		case <-tick.C:
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
	}
	filled.Store(true)

	// The victim's API and the honest peer's traffic go through while
	// the slow reader holds its link.
	start := time.Now()
	if _, err := victim.Send(ctx, rpcapi.SendParams{To: honest.id.Address().String(), Text: "from the victim"}); err != nil {
		t.Fatalf("msg.send with the slow reader holding its link: %v", err)
	}
	apiTook := time.Since(start)
	if _, err := honest.Send(ctx, rpcapi.SendParams{To: victim.id.Address().String(), Text: "from the honest peer"}); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, subVictim.ch, "from the honest peer")
	honestTook := time.Since(start)
	if err := <-pumpDone; err != nil {
		t.Fatal(err)
	}
	var inEngine, dropped uint64
	if err := victim.call(ctx, func() { inEngine, dropped = victim.eng.Counters().QueuedFrames, victim.dropped }); err != nil {
		t.Fatal(err)
	}
	t.Logf("msg.send took %v, the honest peer's message %v; %d messages for the slow reader, %d frames held by the engine, %d dropped",
		apiTook, honestTook, sent.Load(), inEngine, dropped)
	select {
	case <-gate:
		t.Fatal("the slow reader's loop was let go early")
	default:
	}
	// What the link cannot take waits in the engine's link queue, where
	// it costs the loop nothing; none of it is dropped.
	if dropped != 0 {
		t.Errorf("%d frames dropped, want none: the engine holds what the link cannot take yet", dropped)
	}

	// The slow reader reads again: every message for it arrives, none
	// twice.
	close(gate)
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for int64(len(got)) < sent.Load() {
		select {
		case ev := <-subSlow.ch:
			if ev.Kind == rpcapi.EventMessage {
				got[string(ev.Message.Payload[:7])]++
			}
		case <-ctx.Done():
			t.Fatalf("%d of %d messages reached the slow reader once it read again", len(got), sent.Load())
		}
	}
	for m, k := range got {
		if k != 1 {
			t.Errorf("%s arrived %d times", m, k)
		}
	}
}

// slowReaderNodes starts the victim, an honest peer linked to it over
// libp2p, and the slow reader, linked to it over libp2p or TCP; both have
// a session with the victim.
func slowReaderNodes(t *testing.T, ctx context.Context, overTCP bool) (victim, honest, slow *Node) {
	t.Helper()
	cfg := testConfig(t)
	if overTCP {
		cfg.TCP.Listen = "127.0.0.1:0"
	}
	victim, stop := startNode(t, cfg)
	t.Cleanup(stop)
	honest, stop = startNode(t, testConfig(t))
	t.Cleanup(stop)
	linkNodes(t, victim, honest)
	evVictim, cancelVictim, _ := victim.Subscribe(ctx)
	defer cancelVictim()
	cfg = testConfig(t)
	if overTCP {
		cfg.TCP.Peers = []string{victim.id.Address().String() + "@" + victim.tcpAddr()}
	}
	slow, stop = startNode(t, cfg)
	t.Cleanup(stop)
	if overTCP {
		if ev := waitKind(t, ctx, evVictim, rpcapi.EventPeerUp); ev.Peer.Kind != "tcp" {
			t.Fatalf("peer up %+v", ev.Peer)
		}
	} else {
		linkNodes(t, victim, slow)
	}
	return victim, honest, slow
}

// waitText waits for a message event with text s.
func waitText(tb testing.TB, ctx context.Context, ch <-chan rpcapi.Event, s string) {
	tb.Helper()
	for {
		select {
		case ev := <-ch:
			if ev.Kind == rpcapi.EventMessage && ev.Message.Text == s {
				return
			}
		case <-ctx.Done():
			tb.Fatalf("waiting for %q: %v", s, ctx.Err())
		}
	}
}
