package daemon

import (
	"context"
	"errors"
	"testing"
	"time"

	"meshd.dev/meshd/routing"
	"meshd.dev/meshd/rpcapi"
)

// errInjectedSync is the sync failure failNextSync reports.
var errInjectedSync = errors.New("injected sync failure")

// failNextSync makes the loop of n see the first staged batch match
// accepts from now on as failed to sync, when the store reports the sync
// (which itself went well).
func failNextSync(t *testing.T, ctx context.Context, n *Node, match func(*routing.Ready) bool) {
	t.Helper()
	armed := true
	if err := n.call(ctx, func() {
		n.gateSync = func(rd *routing.Ready, done <-chan error) <-chan error {
			if !armed || !match(rd) {
				return done
			}
			armed = false
			failed := make(chan error, 1)
			go func() {
				<-done
				failed <- errInjectedSync
			}()
			return failed
		}
	}); err != nil {
		t.Fatal(err)
	}
}

// runFailing opens a node and runs its loop; the returned channel has
// Run's result.
func runFailing(t *testing.T) (*Node, <-chan error) {
	t.Helper()
	n, err := Open(context.Background(), testConfig(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-n.stopped
		if err := n.Close(); err != nil {
			t.Error(err)
		}
	})
	return n, ran
}

// TestSyncFailureStopsTheNode: a batch whose sync fails is not carried
// out, and the node stops (with the store's error) instead of carrying
// out later batches, whichever path took the report: the loop's select
// (a Send) or drainDurable (msg.cancel).
func TestSyncFailureStopsTheNode(t *testing.T) {
	for _, path := range []string{"send", "cancel"} {
		t.Run(path, func(t *testing.T) {
			n, ran := runFailing(t)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			to := "00112233445566778899aabbccddeeff" // nobody: the message stays in custody
			var id string
			if path == "cancel" {
				res, err := n.Send(ctx, rpcapi.SendParams{To: to, Text: "kept"})
				if err != nil {
					t.Fatal(err)
				}
				id = res.ID
				failNextSync(t, ctx, n, func(rd *routing.Ready) bool { return len(rd.Deletes) > 0 })
				if _, err := n.MsgCancel(ctx, id); err == nil {
					t.Fatal("msg.cancel answered although its deletion failed to sync")
				}
			} else {
				failNextSync(t, ctx, n, func(rd *routing.Ready) bool { return len(rd.Persist) > 0 })
				if res, err := n.Send(ctx, rpcapi.SendParams{To: to, Text: "lost"}); err == nil {
					t.Fatalf("Send answered (%s) although its custody record failed to sync", res.ID)
				}
			}
			select {
			case err := <-ran:
				if !errors.Is(err, errInjectedSync) {
					t.Fatalf("Run returned %v, want the sync failure", err)
				}
			case <-ctx.Done():
				t.Fatal("the node kept running after a sync failure")
			}
			if _, err := n.Send(ctx, rpcapi.SendParams{To: to, Text: "after"}); !errors.Is(err, rpcapi.ErrUnavailable) {
				t.Fatalf("Send after the failure: %v, want ErrUnavailable", err)
			}
		})
	}
}
