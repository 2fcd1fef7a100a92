package daemon

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"meshd.dev/meshd/rpcapi"
)

// TestSendQueuedWhenLoopStops: msg.send hands its closure to the loop
// without waiting for it to run (submit). A closure still queued when the
// loop stops never runs: the caller must be told the node is unavailable
// (not hang, not be told "accepted"), and the message must not be in the
// store after a restart. The node is opened and never run, so the closure
// stays queued until Close stops the loop for good.
func TestSendQueuedWhenLoopStops(t *testing.T) {
	cfg := testConfig(t)
	n, err := Open(context.Background(), cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	type result struct {
		res rpcapi.SendResult
		err error
	}
	got := make(chan result, 1)
	go func() {
		res, err := n.Send(ctx, rpcapi.SendParams{To: "00112233445566778899aabbccddeeff", Text: "queued"})
		got <- result{res, err}
	}()
	for len(n.cmds) == 0 { // the closure is queued: Send waits for its answer
		select {
		case r := <-got:
			t.Fatalf("Send returned before the loop ran: %+v, %v", r.res, r.err)
		case <-ctx.Done():
			t.Fatal("Send never queued its closure")
		default:
			runtime.Gosched()
		}
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-got:
		if !errors.Is(r.err, rpcapi.ErrUnavailable) {
			t.Fatalf("Send whose closure never ran: %+v, %v; want ErrUnavailable", r.res, r.err)
		}
	case <-ctx.Done():
		t.Fatal("Send still waits after the loop stopped")
	}
	m, stop := startNode(t, cfg)
	defer stop()
	st, err := m.StoreStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Custody != 0 {
		t.Fatalf("after the restart the store holds %d messages in custody, want none", st.Custody)
	}
}
