package daemon

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"meshd.dev/meshd/rpcapi"
)

// TestSendReuseAfterGivingUp: msg.send reuses its request (sendReqs). A
// caller whose context has ended still hands its request to the loop
// (submit's plain send) and gives up at once, while the loop goes on to
// step it and answer it. That request must not be reused: a send right
// after it, on the same goroutine (where the pool hands back what was put
// last), would otherwise take the abandoned message's answer (its ID) or
// a second answer. Each kept send's ID must be that of its own message in
// the inbox (messages to the node itself are delivered at once).
func TestSendReuseAfterGivingUp(t *testing.T) {
	n, stop := startNode(t, testConfig(t))
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	gone, give := context.WithCancel(ctx)
	give()
	self := n.id.Address().String()
	const workers, rounds = 4, 40
	var mu sync.Mutex
	ids := map[string]string{} // kept message's text -> the ID Send returned
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range rounds {
				_, err := n.Send(gone, rpcapi.SendParams{To: self, Text: fmt.Sprintf("abandoned %d %d", w, i)})
				if err != nil && !errors.Is(err, context.Canceled) {
					errs <- fmt.Errorf("abandoned send: %v", err)
					return
				}
				text := fmt.Sprintf("kept %d %d", w, i)
				res, err := n.Send(ctx, rpcapi.SendParams{To: self, Text: text})
				if err != nil {
					errs <- fmt.Errorf("kept send %q: %v", text, err)
					return
				}
				mu.Lock()
				ids[text] = res.ID
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	byText := inboxIDs(ctx, t, n)
	for text, id := range ids {
		if byText[text] != id {
			t.Errorf("Send of %q answered ID %s; the inbox has it as %s", text, id, byText[text])
		}
	}
}

// inboxIDs reads n's whole inbox: each message's ID by its text.
func inboxIDs(ctx context.Context, t *testing.T, n *Node) map[string]string {
	t.Helper()
	out := map[string]string{}
	after := uint64(0)
	for {
		page, err := n.Inbox(ctx, rpcapi.InboxParams{After: after, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range page.Messages {
			out[m.Text] = m.ID
		}
		if len(page.Messages) == 0 {
			return out
		}
		after = page.Next
	}
}
