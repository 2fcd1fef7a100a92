package daemon

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"meshd.dev/meshd/rpcapi"
)

// startNodeClock is startNode with an injected clock.
func startNodeClock(tb testing.TB, cfg Config, now func() time.Time) (n *Node, stop func()) {
	tb.Helper()
	n, err := Open(context.Background(), cfg, Options{Now: now})
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	return n, func() {
		cancel()
		if err := <-done; err != nil {
			tb.Error(err)
		}
		if err := n.Close(); err != nil {
			tb.Error(err)
		}
	}
}

// TestStoreRecordsExpire is the storage audit's test: everything the
// engine writes that expires leaves the disk once it has (custody of a
// message nobody could take, and the delivered record that suppresses a
// replay). The inbox is the one thing kept without a deadline: it holds
// what apps have not acknowledged yet.
func TestStoreRecordsExpire(t *testing.T) {
	noLeaks(t)
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	a, stopA := startNodeClock(t, testConfig(t), now)
	defer stopA()
	b, stopB := startNodeClock(t, testConfig(t), now)
	defer stopB()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	evB, cancelB, _ := b.Subscribe(ctx)
	defer cancelB()
	evA, cancelA, _ := a.Subscribe(ctx)
	defer cancelA()
	if _, err := a.Connect(ctx, b.host.Addrs()[0]); err != nil {
		t.Fatal(err)
	}
	waitKind(t, ctx, evB, rpcapi.EventPeerUp)
	if _, err := a.Send(ctx, rpcapi.SendParams{To: b.id.Address().String(), Text: "delivered", TTL: 3600}); err != nil {
		t.Fatal(err)
	}
	waitKind(t, ctx, evB, rpcapi.EventMessage)
	waitKind(t, ctx, evA, rpcapi.EventDelivered)
	if _, err := a.Send(ctx, rpcapi.SendParams{To: "00112233445566778899aabbccddeeff", Text: "nobody takes it", TTL: 3600}); err != nil {
		t.Fatal(err)
	}
	sa, _ := a.StoreStats(ctx)
	sb, _ := b.StoreStats(ctx)
	if sa.Custody != 1 || sb.Delivered != 1 || sb.Inbox != 1 {
		t.Fatalf("before expiry: a %+v, b %+v", sa, sb)
	}
	// Past both messages' lifetimes and any grace the engine adds.
	clock.Add(int64(31 * 24 * time.Hour))
	for _, n := range []*Node{a, b} {
		waitSettled(t, ctx, n)
	}
	sa, _ = a.StoreStats(ctx)
	sb, _ = b.StoreStats(ctx)
	if sa.Custody != 0 || sb.Delivered != 0 {
		t.Errorf("after expiry: a custody %d, b delivered %d, want 0", sa.Custody, sb.Delivered)
	}
	if sb.Inbox != 1 {
		t.Errorf("b's inbox %d: an unacknowledged message must stay", sb.Inbox)
	}
}

// waitSettled returns once n's loop has passed its clock (a pass ticks the
// engine) and has nothing left to write: no batch staged or in flight and
// nothing ready in the engine. One batch is in flight at a time, so what a
// tick releases may wait for an earlier batch's sync: ask until settled.
func waitSettled(t *testing.T, ctx context.Context, n *Node) {
	t.Helper()
	// A pass ticks the engine after the call's function has run: the
	// first call makes sure one tick at the current clock has happened
	// before the next call looks.
	if err := n.call(ctx, func() {}); err != nil {
		t.Fatal(err)
	}
	for {
		var settled bool
		if err := n.call(ctx, func() { settled = len(n.staged) == 0 && !n.eng.HasReady() }); err != nil {
			t.Fatal(err)
		}
		if settled {
			return
		}
	}
}
