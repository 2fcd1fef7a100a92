package daemon

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/routing"
	contract "meshd.dev/meshd/transports/link"
)

// fullLink is a contract link whose queue stays full: Send waits until
// its context ends (a peer that paces this node far below what it sends,
// limits.peer_frame_rate on the far side, or stops reading). It counts
// the Sends that waited.
type fullLink struct {
	contract.Link
	waits   atomic.Int64
	waiting chan struct{} // a Send waits (cap 1)
}

func (l *fullLink) Send(ctx context.Context, _ []byte) error {
	l.waits.Add(1)
	select {
	case l.waiting <- struct{}{}:
	default: // only the first wait is looked for
	}
	<-ctx.Done()
	return ctx.Err()
}
func (l *fullLink) Done() <-chan struct{} { return nil }
func (l *fullLink) TxDone() <-chan int    { return nil }

// takeLink takes every frame at once.
type takeLink struct {
	contract.Link
	frames chan []byte
}

func (l *takeLink) Send(_ context.Context, f []byte) error { l.frames <- f; return nil }
func (l *takeLink) Done() <-chan struct{}                  { return nil }
func (l *takeLink) TxDone() <-chan int                     { return nil }

// TestTransmitNeverWaits: a contract link whose queue stays full never
// makes the loop wait: its sender goroutine waits in Send, the loop hands
// it up to its window (the engine hands no more) without waiting, and the
// other links' frames go out. Since the guard paces a peer over its rate
// instead of cutting it off, an honest node that sends faster than a
// neighbour's limits meets such a link (its reader waits). Before, the
// loop waited a second for such a link once per batch (10 ms while it
// counted as stalled), during which the node took nothing from its other
// peers or its API (TestSlowReaderDoesNotHoldTheLoop).
func TestTransmitNeverWaits(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	full := &fullLink{waiting: make(chan struct{}, 1)}
	other := &takeLink{frames: make(chan []byte, 1)}
	n := &Node{ctx: ctx, log: slog.New(slog.DiscardHandler), room: make(chan struct{}, 1), byLink: map[routing.LinkID]*link{
		1: {id: 1, conn: full, info: contract.Info{Name: "paced"}},
		2: {id: 2, conn: other, info: contract.Info{Name: "other"}},
	}}
	defer func() { cancel(); n.bg.Wait() }()
	n.startSender(n.byLink[1])
	n.startSender(n.byLink[2])
	batch := func(k int) []routing.Transmit {
		var txs []routing.Transmit
		for range k {
			txs = append(txs, routing.Transmit{Link: 1, Frame: []byte{1}})
		}
		return append(txs, routing.Transmit{Link: 2, Frame: []byte{2}})
	}
	// A window's worth: the sender takes one and waits in Send, the rest
	// wait in its channel; nothing is dropped.
	n.transmit(batch(contractWindow))
	<-full.waiting
	if f := <-other.frames; f[0] != 2 {
		t.Fatalf("the other link got %v", f)
	}
	if n.dropped != 0 || n.byLink[1].queued != contractWindow {
		t.Fatalf("after a window's worth: %d dropped, %d queued, want 0 and %d", n.dropped, n.byLink[1].queued, contractWindow)
	}
	// More than the channel holds (the engine never hands that many):
	// the loop still does not wait; what fits is queued (one more: the
	// sender took one), the rest is dropped and counted.
	n.transmit(batch(cap(n.byLink[1].out) - contractWindow + 10))
	if f := <-other.frames; f[0] != 2 {
		t.Fatalf("the other link got %v", f)
	}
	if n.dropped != 9 {
		t.Errorf("%d frames dropped, want 9", n.dropped)
	}
	if w := full.waits.Load(); w != 1 {
		t.Errorf("%d Sends waited on the full link, want the sender's one", w)
	}
}

// windowLink is a contract link with a window of its own (a LoRa modem):
// Send takes every frame, TxDone would report them.
type windowLink struct {
	contract.Link
	frames chan []byte
	txDone chan int
}

func (l *windowLink) Send(_ context.Context, f []byte) error { l.frames <- f; return nil }
func (l *windowLink) Done() <-chan struct{}                  { return nil }
func (l *windowLink) TxDone() <-chan int                     { return l.txDone }

// TestTransmitFragmentedItemOnWindowOne: with nothing in flight the engine
// hands a link one whole item, all its fragments, whatever its window (a
// LoRa modem's is 1; a 16 KiB session message is about 70 fragments at
// its MTU, an envelope up to protocol.MaxFragments). The sender's channel
// must hold them all: it held max(window, 64) and the rest were dropped.
func TestTransmitFragmentedItemOnWindowOne(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	wl := &windowLink{frames: make(chan []byte), txDone: make(chan int)}
	n := &Node{ctx: ctx, log: slog.New(slog.DiscardHandler), room: make(chan struct{}, 1), byLink: map[routing.LinkID]*link{
		1: {id: 1, conn: wl, info: contract.Info{Name: "lora", Window: 1}},
	}}
	defer func() { cancel(); n.bg.Wait() }()
	n.startSender(n.byLink[1])
	var txs []routing.Transmit
	for i := range protocol.MaxFragments {
		txs = append(txs, routing.Transmit{Link: 1, Frame: []byte{byte(i)}})
	}
	n.transmit(txs) // the sender waits in its first Send meanwhile
	if n.dropped != 0 {
		t.Fatalf("%d of %d fragments dropped", n.dropped, len(txs))
	}
	for i := range protocol.MaxFragments {
		if f := <-wl.frames; f[0] != byte(i) {
			t.Fatalf("fragment %d: got %d", i, f[0])
		}
	}
}
