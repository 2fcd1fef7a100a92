package p2p

import (
	"errors"
	"testing"
)

// TestWatchRoom: a link's writer signals Room when it takes a frame off a
// queue WatchRoom asked about, and not for takes nobody asked about;
// WatchRoom says how many frames are queued.
func TestWatchRoom(t *testing.T) {
	ctx := testContext(t)
	a := newTestHost(t, 23, nil)
	b := newTestHost(t, 24, nil)
	if q := a.WatchRoom(b.ID()); q != 0 {
		t.Fatalf("WatchRoom without a link = %d", q)
	}
	connectPair(t, ctx, a, b)
	// b's events are not read for now: its reader stops, a's writer
	// waits for the stream, and a's queue fills.
	frame := make([]byte, MaxFrameSize)
	for {
		ok, err := a.TrySend(b.ID(), frame)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
	}
	select {
	case <-a.Room():
		t.Fatal("Room signalled without WatchRoom")
	default:
	}
	if q := a.WatchRoom(b.ID()); q == 0 || q > SendWindow {
		t.Fatalf("WatchRoom on a full queue = %d, want 1..%d", q, SendWindow)
	}
	// b reads again: a's writer takes frames and signals.
	for {
		select {
		case <-a.Room():
			if q := a.WatchRoom(b.ID()); q >= SendWindow {
				t.Fatalf("after the signal %d frames queued, want fewer than %d", q, SendWindow)
			}
			return
		case ev := <-b.Events():
			if _, ok := ev.(LinkDown); ok {
				t.Fatal(errors.New("link went down"))
			}
		case <-ctx.Done():
			t.Fatal("no signal after the writer took frames")
		}
	}
}

// TestTrySendByteBound: TrySend keeps a link's queue within
// sendQueueBytes: frames of MaxFrameSize stop it long before SendWindow
// frames are queued.
func TestTrySendByteBound(t *testing.T) {
	ctx := testContext(t)
	a := newTestHost(t, 25, nil)
	b := newTestHost(t, 26, nil)
	connectPair(t, ctx, a, b)
	// b's events are not read: its reader stops and a's queue fills.
	frame := make([]byte, MaxFrameSize)
	for {
		ok, err := a.TrySend(b.ID(), frame)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
	}
	q := a.LinkQueue(b.ID())
	if q >= SendWindow || q*MaxFrameSize > sendQueueBytes+MaxFrameSize {
		t.Fatalf("%d frames of %d bytes queued: over the %d-byte bound", q, MaxFrameSize, sendQueueBytes)
	}
}
