package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"meshd.dev/meshd/rpcapi"
)

// TestEndToEndTCPLine runs three real daemons in a line A - B - C joined
// only by plain TCP links (no libp2p connections: nobody dials one), sends
// a stream of messages from A to C, kills B with SIGKILL in the middle of
// the stream, restarts it on the same port, and requires every message
// whose msg.send returned (it is in A's custody on disk) to reach C
// exactly once and its receipt to reach A.
func TestEndToEndTCPLine(t *testing.T) {
	endToEnd(t, "builds binaries and runs three daemons")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	step := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, 90*time.Second) }

	a, b, c := newProc(t, "A"), newProc(t, "B"), newProc(t, "C")
	sctx, done := step()
	b.extra = []string{"--tcp-listen", "127.0.0.1:0"}
	b.start(sctx)
	if b.info.TCPListen == "" {
		t.Fatalf("B reports no TCP listen address: %+v", b.info)
	}
	// B comes back on the same port after the kill.
	b.extra = []string{"--tcp-listen", b.info.TCPListen}
	peer := "--tcp-peer=" + b.info.Address + "@" + b.info.TCPListen
	a.extra, c.extra = []string{peer}, []string{peer}
	a.start(sctx)
	c.start(sctx)
	for _, p := range []*proc{a, b, c} {
		defer func(p *proc) {
			if p.cmd.ProcessState == nil {
				p.cmd.Process.Kill()
				<-p.exited
			}
		}(p)
	}
	a.waitLink(sctx, b.info.Address)
	c.waitLink(sctx, b.info.Address)
	links := b.ctl("links")
	if strings.Count(links, " tcp ") != 2 || strings.Contains(links, " ip ") {
		t.Fatalf("B's links, want two TCP links:\n%s", links)
	}
	done()

	// The stream: B is killed after the tenth message and restarted after
	// the twentieth; every send returns only once the message is in A's
	// custody, so every one of them counts as acknowledged.
	sctx, done = step()
	const total = 30
	ids := map[string]string{}
	for i := range total {
		switch i {
		case 10:
			b.kill()
		case 20:
			b.start(sctx)
		}
		text := fmt.Sprintf("line %02d", i)
		res := a.send(c.info.Address, text)
		ids[res.ID] = text
	}
	got := map[string]bool{}
	start := time.Now()
	for len(got) < total {
		ev := c.waitEvent(sctx, "the stream's messages", func(ev rpcapi.Event) bool { return ev.Kind == rpcapi.EventMessage })
		got[ev.Message.Text] = true
		t.Logf("%v: C got %q", time.Since(start).Round(time.Millisecond), ev.Message.Text)
	}
	done()
	// A receipt lost with B comes again when A retries the message
	// (routing.Config.RetryBase, a minute), so receipts get a step of
	// their own.
	sctx, done = step()
	receipts := map[string]bool{}
	for len(receipts) < total {
		ev := a.waitEvent(sctx, "the stream's receipts", func(ev rpcapi.Event) bool {
			return ev.Kind == rpcapi.EventDelivered && ids[ev.ID] != ""
		})
		receipts[ev.ID] = true
	}
	for _, text := range ids {
		if n := c.inboxCount(sctx, text); n != 1 {
			t.Errorf("C has %d copies of %q, want 1", n, text)
		}
	}
	if !strings.Contains(a.ctl("links"), b.info.Address) {
		t.Errorf("A's links do not show B after its restart:\n%s", a.ctl("links"))
	}
	done()

	sctx, done = step()
	defer done()
	for _, p := range []*proc{a, b, c} {
		p.stop(sctx)
	}
}

// waitLink waits until a link to address is up: one listed by node.links
// now (it may have come up before the subscription) or a peer-up event
// after.
func (p *proc) waitLink(ctx context.Context, address string) {
	p.t.Helper()
	links, err := p.client.Links(ctx)
	if err != nil {
		p.t.Fatal(err)
	}
	for _, l := range links {
		if l.Peer == address {
			return
		}
	}
	p.waitPeer(ctx, address)
}
