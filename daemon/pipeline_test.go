package daemon

import (
	"context"
	"sync"
	"testing"
	"time"

	"meshd.dev/meshd/routing"
	"meshd.dev/meshd/rpcapi"
)

// heldReport is one staged batch's sync report, held by gateReports.
type heldReport struct {
	done <-chan error
	out  chan error
	refs []uint64 // of the Sends the batch accepts
}

// gateReports makes n's loop see the sync reports of its staged batches,
// from the first one match accepts on, only when the test forwards them:
// the store syncs as ever, the loop just does not learn it. It returns
// the held reports in staging order.
func gateReports(t *testing.T, ctx context.Context, n *Node, match func(*routing.Ready) bool) <-chan heldReport {
	t.Helper()
	held := make(chan heldReport, 4096)
	holding := false
	if err := n.call(ctx, func() {
		n.gateSync = func(rd *routing.Ready, done <-chan error) <-chan error {
			if holding = holding || match(rd); !holding {
				return done
			}
			h := heldReport{done: done, out: make(chan error, 1)}
			for _, ev := range rd.Events {
				if ev.Kind == routing.EventAccepted {
					h.refs = append(h.refs, ev.Ref)
				}
			}
			select {
			case held <- h:
			default:
				panic("gateReports: too many held reports")
			}
			return h.out
		}
	}); err != nil {
		t.Fatal(err)
	}
	return held
}

// forward passes the held reports on, in order, until ctx ends.
func forward(ctx context.Context, held <-chan heldReport) {
	for {
		select {
		case h := <-held:
			select {
			case err := <-h.done:
				h.out <- err
			case <-ctx.Done():
				return
			}
		case <-ctx.Done():
			return
		}
	}
}

// linkFramesOut counts the frames n queued on its links so far (on the loop).
func linkFramesOut(n *Node) uint64 {
	var sum uint64
	for _, l := range n.links {
		sum += l.framesOut.Load()
	}
	return sum
}

// TestNothingLeavesBeforeItsSync: the pipelined commit's rule, on both
// ends of a message. While the sender's store has not reported the batch
// with a Send's custody record synced, that Send is not answered and no
// frame leaves; while the recipient's has not reported the batch with a
// message's inbox entry synced, the message is not reported to
// subscribers and no acknowledgement leaves. Once the reports come, every
// Send is answered and every message arrives.
func TestNothingLeavesBeforeItsSync(t *testing.T) {
	t.Run("sender", func(t *testing.T) { testNothingLeavesBeforeSync(t, true) })
	t.Run("recipient", func(t *testing.T) { testNothingLeavesBeforeSync(t, false) })
}

func testNothingLeavesBeforeSync(t *testing.T, gateSender bool) {
	// The held reports are forwarded until the nodes are stopped: a node
	// stopping waits for its staged batches' reports.
	fwdCtx, fwdCancel := context.WithCancel(context.Background())
	defer fwdCancel()
	a, bn, stop := twoNodes(t)
	defer stop()
	var first *heldReport
	var held <-chan heldReport
	release := sync.OnceFunc(func() {
		go func() {
			if first != nil {
				first.out <- <-first.done
			}
			forward(fwdCtx, held)
		}()
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sub := bn.hub.add(1024)
	defer bn.hub.remove(sub)
	to := bn.id.Address().String()
	payload := []byte("held until durable")
	// The first message sets the route session up.
	if _, err := a.Send(ctx, rpcapi.SendParams{To: to, Payload: payload}); err != nil {
		t.Fatal(err)
	}
	waitKind(t, ctx, sub.ch, rpcapi.EventMessage)

	gated, match := bn, func(rd *routing.Ready) bool { return len(rd.Deliveries) > 0 }
	if gateSender {
		gated, match = a, func(rd *routing.Ready) bool { return len(rd.Persist) > 0 && len(rd.Events) > 0 }
	}
	held = gateReports(t, ctx, gated, match)
	defer release()
	var out0 uint64
	if err := gated.call(ctx, func() { out0 = linkFramesOut(gated) }); err != nil {
		t.Fatal(err)
	}
	const sends = 16
	answers := make(chan error, sends)
	for range sends {
		go func() {
			_, err := a.Send(ctx, rpcapi.SendParams{To: to, Payload: payload})
			answers <- err
		}()
	}
	select {
	case h := <-held:
		first = &h
	case <-ctx.Done():
		t.Fatal("no batch with the messages staged")
	}
	// One more turn of the gated node's loop: a loop that carried a batch
	// out before its report would have done so by now.
	var out uint64
	answered, early := 0, 0
	if err := gated.call(ctx, func() {
		out = linkFramesOut(gated)
		for _, ref := range first.refs {
			if gated.waiters[ref] == nil {
				answered++
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	if out != out0 {
		t.Errorf("%d frames left before the batch was reported synced", out-out0)
	}
	if gateSender {
		if len(first.refs) == 0 || answered > 0 {
			t.Errorf("%d of the %d Sends of the held batch answered before its custody records were reported synced", answered, len(first.refs))
		}
		select {
		case err := <-answers:
			t.Fatalf("a Send returned (%v) before its custody record was reported synced", err)
		default:
		}
	} else {
	drained:
		for {
			select {
			case ev := <-sub.ch:
				if ev.Kind == rpcapi.EventMessage {
					early++
					t.Errorf("message %s reported before its inbox entry was reported synced", ev.Message.ID)
				}
			default:
				break drained
			}
		}
	}

	// The reports go through: everything goes out.
	release()
	for range sends {
		select {
		case err := <-answers:
			if err != nil {
				t.Fatal(err)
			}
		case <-ctx.Done():
			t.Fatal("Sends not answered after the syncs were reported")
		}
	}
	for range sends - early {
		waitKind(t, ctx, sub.ch, rpcapi.EventMessage)
	}
}
