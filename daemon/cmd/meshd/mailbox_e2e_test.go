package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"meshd.dev/meshd/rpcapi"
)

// TestEndToEndMailboxRelay: A sends to C while C is offline and A and C
// share no route (A never met C; it knows only C's address). A finds C's
// DHT record on R, cannot dial C, reads C's mailbox relay (R) from the
// record and hands the sealed message to R, which accepts custody with a
// signed answer. A goes offline, R is killed (SIGKILL) and restarted; C
// comes back, links to its mailbox relay and receives the message exactly
// once.
func TestEndToEndMailboxRelay(t *testing.T) {
	endToEnd(t, "builds binaries and runs three daemons")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	kill := func(p *proc) {
		if p.cmd != nil && p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			<-p.exited
		}
	}
	// R listens on a fixed port too, so that it is found at the same
	// address after its restart.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	r := newProc(t, "R")
	r.extra = []string{"--relay", "--listen", fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port)}
	r.start(ctx)
	defer kill(r)
	boot := fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/p2p/%s", port, r.info.PeerID)

	c := newProc(t, "C")
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf("[mailbox]\nrelays = [%q]\ncollect_interval = \"1s\"\n", r.info.Address)
	if err := os.WriteFile(filepath.Join(c.dir, "config.toml"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	c.extra = []string{"--bootstrap", boot}
	c.start(ctx)
	defer kill(c)
	cAddr := c.info.Address
	// C's record names R as its mailbox; R, the DHT server, holds it
	// once C has published it.
	waitLog(ctx, t, c, `"msg":"address record published","component":"p2p","mailboxes":1`)
	c.stop(ctx)
	r.waitEvent(ctx, "C's link down", func(ev rpcapi.Event) bool {
		return ev.Kind == rpcapi.EventPeerDown && ev.Peer != nil && ev.Peer.Address == cAddr
	})

	a := newProc(t, "A")
	if err := os.MkdirAll(a.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(a.dir, "config.toml"), []byte("[mailbox]\ncollect_interval = \"1s\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a.extra = []string{"--bootstrap", boot}
	a.start(ctx)
	defer kill(a)
	// A names no mailbox relay: it chooses R, the relay it is linked to,
	// and its record names it. (A's DHT routing table holds R once A has
	// published its record.)
	waitLog(ctx, t, a, `"msg":"address record published","component":"p2p","mailboxes":1`)
	res := a.send(cAddr, "kept by the mailbox")
	a.waitEvent(ctx, "hand-off to C's mailbox", func(ev rpcapi.Event) bool {
		return ev.Kind == rpcapi.EventHandedOff && ev.ID == res.ID
	})
	a.stop(ctx)
	// The relay accepted custody durably: a kill -9 and a restart keep
	// the message.
	r.kill()
	r.start(ctx)

	c.start(ctx)
	c.waitMessage(ctx, "kept by the mailbox")
	if n := c.inboxCount(ctx, "kept by the mailbox"); n != 1 {
		t.Fatalf("C holds the message %d times, want once", n)
	}
}

// waitLog waits until p's log has a line containing text (the log is
// written as meshd prints it; there is no event for it).
func waitLog(ctx context.Context, t *testing.T, p *proc, text string) {
	t.Helper()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !strings.Contains(p.logText(), text) {
		select {
		case <-ctx.Done():
			t.Fatalf("%s: no log line %q\n%s", p.name, text, p.logText())
		case <-tick.C:
		}
	}
}
