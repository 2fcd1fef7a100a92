package daemon

import (
	"bytes"
	"context"
	"testing"
	"time"

	"meshd.dev/meshd/rpcapi"
)

// TestSessionMessageOverSessionPlaintext: a message body larger than a
// session frame's plaintext (16 KiB) but within the envelope limit must
// reach its recipient intact. sessionMessage ignored AppendSessionMessage's
// error, so such a body became an empty session frame.
func TestSessionMessageOverSessionPlaintext(t *testing.T) {
	noLeaks(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, stop := startNode(t, testConfig(t))
	t.Cleanup(stop)
	b, stop := startNode(t, testConfig(t))
	t.Cleanup(stop)
	linkNodes(t, a, b)
	sub := b.hub.add(64)
	defer b.hub.remove(sub)
	if _, err := a.Send(ctx, rpcapi.SendParams{To: b.id.Address().String(), Text: "hello"}); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, sub.ch, "hello")
	body := bytes.Repeat([]byte("x"), 20<<10)
	if _, err := a.Send(ctx, rpcapi.SendParams{To: b.id.Address().String(), Payload: body}); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case ev := <-sub.ch:
			if ev.Kind == rpcapi.EventMessage {
				if !bytes.Equal(ev.Message.Payload, body) {
					t.Fatalf("got a message of %d bytes, want %d", len(ev.Message.Payload), len(body))
				}
				return
			}
		case <-ctx.Done():
			t.Fatal("the 20 KiB message never arrived")
		}
	}
}
