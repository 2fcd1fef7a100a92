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

// TestAwaitLoopPrefersAnswer: the loop answers a request (a channel
// publish whose frame is synced, a msg.cancel carried out) and then
// stops. A caller that looks only afterwards finds both the answer and
// the stop; it must take the answer: told "unavailable" for a publish
// that was made, a client publishes again, a second copy. (Go's select
// picks among ready cases at random; 200 rounds miss a wrong pick with
// probability 2^-200.)
func TestAwaitLoopPrefersAnswer(t *testing.T) {
	stopped := make(chan struct{})
	close(stopped)
	for range 200 {
		ch := make(chan publishOutcome, 1)
		ch <- publishOutcome{res: rpcapi.ChannelPublishResult{Seq: 7}}
		out, err := awaitLoop(context.Background(), stopped, ch)
		if err != nil || out.res.Seq != 7 {
			t.Fatalf("answered and stopped: %+v, %v; want the answer", out, err)
		}
		done := make(chan struct{})
		close(done)
		if _, err := awaitLoop(context.Background(), stopped, done); err != nil {
			t.Fatalf("ran and stopped: %v; want the call's success", err)
		}
	}
}
