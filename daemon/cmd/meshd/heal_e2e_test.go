package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"meshd.dev/meshd/rpcapi"
)

// The mesh heals by itself (mDNS off, no meshctl connect after the first
// one): restarts on new ports, kill -9 of a forwarder, and a partition.

// killAll kills the daemons still running at the end of a test.
func killAll(ps ...*proc) {
	for _, p := range ps {
		if p.cmd != nil && p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			<-p.exited
		}
	}
}

// Both sides restart, each on a new port (the listen port is 0), with a
// message in custody each time; it drains with no manual step. Today's
// meshd dials nobody after a restart: the message waits for meshctl
// connect.
func TestEndToEndRestartNewPorts(t *testing.T) {
	endToEnd(t, "builds binaries and runs two daemons")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a, b := newProc(t, "A"), newProc(t, "B")
	a.start(ctx)
	b.start(ctx)
	defer killAll(a, b)
	a.ctl("connect", b.info.ListenAddrs[0])
	a.waitPeer(ctx, b.info.Address)

	// B goes; A sends; B comes back on another port and dials A.
	b.stop(ctx)
	res := a.send(b.info.Address, "while B was down")
	oldAddrs := b.info.ListenAddrs
	b.start(ctx)
	if b.info.ListenAddrs[0] == oldAddrs[0] {
		t.Fatalf("B restarted on the same address %s", oldAddrs[0])
	}
	b.waitMessage(ctx, "while B was down")
	a.waitDelivered(ctx, res.ID)

	// A goes; B sends; A comes back on another port and dials B's new
	// address, which it learned when B dialled it.
	a.stop(ctx)
	res = b.send(a.info.Address, "while A was down")
	a.start(ctx)
	a.waitMessage(ctx, "while A was down")
	b.waitDelivered(ctx, res.ID)
	a.stop(ctx)
	b.stop(ctx)
}

// partitionLength is how long TestEndToEndLineHeals silences the middle
// node: E2E_PARTITION_SECONDS seconds (the figure is 60; the
// default of 10 keeps CI short; the heal path is the same).
func partitionLength(t *testing.T) time.Duration {
	if s := os.Getenv("E2E_PARTITION_SECONDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("E2E_PARTITION_SECONDS=%q: want whole seconds", s)
		}
		return time.Duration(n) * time.Second
	}
	return 10 * time.Second
}

// A five-daemon line A-B-C-D-E (loopback, mDNS off). 100 messages flow
// from A to E while the middle node C is killed with -9 and restarted (on a
// new port), then 100 more while C is cut off (SIGSTOP: its peers see a
// silent node, as in a partition) and comes back; each batch is delivered
// exactly once within 30 s of the restart or heal, with no manual step.
func TestEndToEndLineHeals(t *testing.T) {
	endToEnd(t, "builds binaries and runs five daemons")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	names := []string{"A", "B", "C", "D", "E"}
	ps := make([]*proc, len(names))
	for i, n := range names {
		ps[i] = newProc(t, n)
		ps[i].logLevel = "info"
		ps[i].start(ctx)
	}
	defer killAll(ps...)
	a, c, e := ps[0], ps[2], ps[4]
	for i := 0; i+1 < len(ps); i++ {
		ps[i].ctl("connect", ps[i+1].info.ListenAddrs[0])
		ps[i].waitPeer(ctx, ps[i+1].info.Address)
	}
	first := a.send(e.info.Address, "warm-up")
	e.waitMessage(ctx, "warm-up")
	a.waitDelivered(ctx, first.ID)

	// kill -9 of C in the middle of the stream, restart after a pause.
	var back time.Time
	stream := streamTo(ctx, t, a, e.info.Address, "kill", 100, func(i int) {
		if i == 30 {
			c.kill()
		}
		if i == 60 {
			c.start(ctx)
			back = time.Now()
		}
	})
	waitAll(ctx, t, e, stream, back, "kill -9 and restart of C")

	// Partition: C silent for partitionLength while the stream flows.
	d := partitionLength(t)
	b := ps[1]
	drain(b)
	var healed time.Time
	stream = streamTo(ctx, t, a, e.info.Address, "partition", 100, func(i int) {
		if i != 30 {
			return
		}
		if err := c.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		cut := time.Now()
		b.waitEvent(ctx, "C's link down", func(ev rpcapi.Event) bool {
			return ev.Kind == rpcapi.EventPeerDown && ev.Peer != nil && ev.Peer.Address == c.info.Address
		})
		t.Logf("B noticed the silent C after %v", time.Since(cut).Round(100*time.Millisecond))
		time.Sleep(d - time.Since(cut)) // the partition itself, not a wait for something
		if err := c.cmd.Process.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		healed = time.Now()
	})
	waitAll(ctx, t, e, stream, healed, fmt.Sprintf("a %v partition of C", d))
	for _, p := range ps {
		p.stop(ctx)
	}
}

// drain discards the events p has received so far.
func drain(p *proc) {
	for {
		select {
		case <-p.events:
		default:
			return
		}
	}
}

// streamTo sends n messages "<tag> <i>" from p to dest, calling at(i)
// before message i, and returns their texts.
func streamTo(ctx context.Context, t *testing.T, p *proc, dest, tag string, n int, at func(int)) []string {
	t.Helper()
	var texts []string
	for i := range n {
		at(i)
		text := fmt.Sprintf("%s %d", tag, i)
		if _, err := p.client.Send(ctx, rpcapi.SendParams{To: dest, Text: text}); err != nil {
			t.Fatalf("send %q: %v", text, err)
		}
		texts = append(texts, text)
	}
	return texts
}

// waitAll waits until e holds every text exactly once and logs how long
// after since that took; more than 30 s fails.
func waitAll(ctx context.Context, t *testing.T, e *proc, texts []string, since time.Time, what string) {
	t.Helper()
	wctx, cancel := context.WithDeadline(ctx, since.Add(30*time.Second))
	defer cancel()
	want := map[string]bool{}
	for _, s := range texts {
		want[s] = true
	}
	got := map[string]bool{}
	defer func() {
		if t.Failed() {
			var missing []string
			for _, s := range texts {
				if !got[s] {
					missing = append(missing, s)
				}
			}
			t.Logf("after %s, E lacks %q", what, missing)
		}
	}()
	// Some arrived before since: count the inbox first, then events.
	for s := range want {
		if e.inboxCount(wctx, s) > 0 {
			got[s] = true
		}
	}
	for len(got) < len(want) {
		e.waitEvent(wctx, fmt.Sprintf("all messages after %s (%d of %d)", what, len(got), len(want)), func(ev rpcapi.Event) bool {
			if ev.Kind == rpcapi.EventMessage && ev.Message != nil && want[ev.Message.Text] {
				got[ev.Message.Text] = true
				return true
			}
			return false
		})
	}
	t.Logf("after %s: all %d delivered %v later", what, len(texts), time.Since(since).Round(100*time.Millisecond))
	for _, s := range texts {
		if n := e.inboxCount(ctx, s); n != 1 {
			t.Errorf("E has %d copies of %q, want 1", n, s)
		}
	}
}
