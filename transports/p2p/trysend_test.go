package p2p

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestTrySend: TrySend queues a frame that arrives like Send's, refuses
// what Send refuses, and once the peer stops reading and the queue is
// full it reports false at once instead of waiting.
func TestTrySend(t *testing.T) {
	ctx := testContext(t)
	a := newTestHost(t, 21, nil)
	b := newTestHost(t, 22, nil)
	if _, err := a.TrySend(b.ID(), []byte("x")); !errors.Is(err, ErrNoLink) {
		t.Fatalf("TrySend without link: %v, want ErrNoLink", err)
	}
	connectPair(t, ctx, a, b)
	if _, err := a.TrySend(b.ID(), make([]byte, MaxFrameSize+1)); !errors.Is(err, ErrFrameSize) {
		t.Fatalf("oversized TrySend: %v, want ErrFrameSize", err)
	}
	if ok, err := a.TrySend(b.ID(), []byte("queued")); !ok || err != nil {
		t.Fatalf("TrySend = %v, %v", ok, err)
	}
	if f := waitEvent[Frame](t, ctx, b); string(f.Data) != "queued" {
		t.Fatalf("got %q", f.Data)
	}
	// b's events are no longer read: Send fills everything up to a's
	// queue and then times out; TrySend then says false without waiting.
	frame := make([]byte, MaxFrameSize)
	sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	var err error
	for err == nil {
		err = a.Send(sctx, b.ID(), frame)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send = %v, want DeadlineExceeded", err)
	}
	if ok, err := a.TrySend(b.ID(), frame); ok || err != nil {
		t.Fatalf("TrySend on a full queue = %v, %v; want false, nil", ok, err)
	}
}
