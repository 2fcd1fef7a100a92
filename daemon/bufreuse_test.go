package daemon

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"meshd.dev/meshd/rpcapi"
)

// bufPayload is message i of TestDeliveredPayloadsIntact: its number, then
// a pattern, of a length that varies so that a reused buffer would hold a
// longer message's stale tail.
func bufPayload(i int) []byte {
	b := fmt.Appendf(nil, "m%04d|", i)
	for j := range (i * 397) % 3000 {
		b = append(b, byte(i*13+j))
	}
	return b
}

// TestDeliveredPayloadsIntact: a delivered message's body is the session's
// plaintext, not a copy, the node hands a batch's deliveries on without
// copying them, and the store builds inbox entries in reused scratch
// space. Messages sent from several goroutines (batches of several
// deliveries): every payload an event reported is still intact once
// every later batch went through, and the inbox reads back each one.
func TestDeliveredPayloadsIntact(t *testing.T) {
	noLeaks(t)
	a, b, stop := twoNodes(t)
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	evB, cancelB, _ := b.Subscribe(ctx)
	defer cancelB()
	const n = 120
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < n; i += 4 {
				if _, err := a.Send(ctx, rpcapi.SendParams{To: b.id.Address().String(), Payload: bufPayload(i)}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	got := map[string][]byte{} // payload prefix -> the event's payload
	for len(got) < n {
		ev := waitKind(t, ctx, evB, rpcapi.EventMessage)
		p := ev.Message.Payload
		got[string(p[:min(len(p), 6)])] = p
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i := range n {
		want := bufPayload(i)
		if p := got[string(want[:6])]; !bytes.Equal(p, want) {
			t.Fatalf("message %d: event payload of %d bytes, want %d: overwritten", i, len(p), len(want))
		}
	}
	page, err := b.Inbox(ctx, rpcapi.InboxParams{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Messages) != n {
		t.Fatalf("%d messages in the inbox, want %d", len(page.Messages), n)
	}
	for _, m := range page.Messages {
		p := m.Payload
		var i int
		if _, err := fmt.Sscanf(string(p[:min(len(p), 5)]), "m%04d", &i); err != nil || !bytes.Equal(p, bufPayload(i)) {
			t.Fatalf("inbox entry %d: payload of %d bytes is no message sent (%v)", m.Seq, len(p), err)
		}
	}
}
