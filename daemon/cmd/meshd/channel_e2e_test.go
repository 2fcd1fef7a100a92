package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"meshd.dev/meshd/rpcapi"
)

// waitChannelMessage returns the first channel message with the given text.
func (p *proc) waitChannelMessage(ctx context.Context, text string) rpcapi.ChannelMessage {
	p.t.Helper()
	ev := p.waitEvent(ctx, "channel message "+text, func(ev rpcapi.Event) bool {
		return ev.Kind == rpcapi.EventChannelMessage && ev.ChannelMessage != nil && ev.ChannelMessage.Text == text
	})
	return *ev.ChannelMessage
}

// historyTexts returns the texts of a channel's history, oldest first.
func (p *proc) historyTexts(ctx context.Context, channel string) []string {
	p.t.Helper()
	var out []string
	var after uint64
	for {
		page, err := p.client.ChannelHistory(ctx, rpcapi.ChannelHistoryParams{Channel: channel, After: after, Limit: 2})
		if err != nil {
			p.t.Fatalf("%s: channel.history: %v", p.name, err)
		}
		for _, m := range page.Messages {
			out = append(out, m.Text)
		}
		if !page.More {
			return out
		}
		after = page.Next
	}
}

func count(list []string, s string) int {
	n := 0
	for _, x := range list {
		if x == s {
			n++
		}
	}
	return n
}

// ctlFails runs meshctl, requires exit status 1 and returns its standard
// error.
func (p *proc) ctlFails(args ...string) string {
	p.t.Helper()
	cmd := exec.Command(p.meshctl, append([]string{"--data-dir", p.dir}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		p.t.Fatalf("%s: meshctl %s: %v, want exit status 1\n%s", p.name, strings.Join(args, " "), err, stderr.String())
	}
	return stderr.String()
}

// TestEndToEndChannelFiveDaemons runs five real daemons on loopback with
// mDNS off: A, B and C connected to each other over libp2p, C, D and E a
// second group, bridged by C. A, B, C and E join a channel, D does not.
//
// History semantics: a node's channel history holds what that node
// received while it ran and was a member (and what it published); nobody
// replays what an offline member missed, so B, stopped while A publishes,
// does not have that message after it returns.
func TestEndToEndChannelFiveDaemons(t *testing.T) {
	endToEnd(t, "builds binaries and runs five daemons")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	step := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, 90*time.Second) }

	a, b, c, d, e := newProc(t, "A"), newProc(t, "B"), newProc(t, "C"), newProc(t, "D"), newProc(t, "E")
	all := []*proc{a, b, c, d, e}
	sctx, done := step()
	for _, p := range all {
		p.start(sctx)
		defer func(p *proc) {
			if p.cmd.ProcessState == nil {
				p.cmd.Process.Kill()
				<-p.exited
			}
		}(p)
	}
	connect := func(x, y *proc) {
		x.ctl("connect", y.info.ListenAddrs[0])
		x.waitPeer(sctx, y.info.Address)
		y.waitPeer(sctx, x.info.Address)
	}
	connect(a, b)
	connect(b, c)
	connect(a, c)
	connect(c, d)
	connect(d, e)
	connect(c, e)

	// A creates the channel; B, C and E join it from the share string.
	a.ctl("channel", "create", "ops")
	share := strings.TrimSpace(a.ctl("channel", "share", "ops"))
	for _, p := range []*proc{b, c, e} {
		if out := p.ctl("channel", "join", share); !strings.HasPrefix(out, "joined ") {
			t.Fatalf("%s: channel join printed %q", p.name, out)
		}
	}
	members := []*proc{b, c, e}
	// Gossip needs a heartbeat or two to build its mesh after the
	// subscriptions: publish numbered warm-up messages until one reaches
	// every member.
	for i := 0; ; i++ {
		text := fmt.Sprintf("warm-up %d", i)
		a.ctl("channel", "send", "ops", text)
		wctx, wdone := context.WithTimeout(sctx, 3*time.Second)
		ok := true
		for _, p := range members {
			if !waitChannelText(wctx, p, text) {
				ok = false
				break
			}
		}
		wdone()
		if ok {
			break
		}
		if sctx.Err() != nil {
			t.Fatalf("no warm-up message reached every member: %v", sctx.Err())
		}
	}
	done()

	// 1. A message published on A reaches every member exactly once, signed
	// by A; D, not a member, gets nothing.
	sctx, done = step()
	a.ctl("channel", "send", "--sign", "ops", "hello members")
	for _, p := range members {
		m := p.waitChannelMessage(sctx, "hello members")
		if !m.Signed || m.From != a.info.Address || m.ChannelName != "ops" {
			t.Errorf("%s: message %+v, want signed by A %s", p.name, m, a.info.Address)
		}
	}
	// A fence: once it arrived everywhere, any duplicate of the first
	// message would have too.
	a.ctl("channel", "send", "ops", "fence 1")
	for _, p := range members {
		p.waitChannelMessage(sctx, "fence 1")
		if n := count(p.historyTexts(sctx, "ops"), "hello members"); n != 1 {
			t.Errorf("%s: %d copies of the message in its history, want 1", p.name, n)
		}
	}
	if n := count(a.historyTexts(sctx, "ops"), "hello members"); n != 1 {
		t.Errorf("A: %d copies of its own message in its history, want 1", n)
	}
	if out := d.ctl("channel", "list"); !strings.Contains(out, "no channels") {
		t.Errorf("D: channel list %q", out)
	}
	if stderr := d.ctlFails("channel", "send", "ops", "not a member"); !strings.Contains(stderr, "not joined") {
		t.Errorf("D: publishing to a channel not joined: %q", stderr)
	}
	done()

	// 2. B is offline while A publishes; when it returns, its history has
	// what it received before, not what it missed.
	sctx, done = step()
	b.stop(sctx)
	a.ctl("channel", "send", "ops", "while B is away")
	for _, p := range []*proc{c, e} {
		p.waitChannelMessage(sctx, "while B is away")
	}
	b.start(sctx)
	hist := b.historyTexts(sctx, "ops")
	if count(hist, "hello members") != 1 || count(hist, "while B is away") != 0 {
		t.Errorf("B's history after its return: %q, want hello members once and not the message it missed", hist)
	}
	// B rejoined its channel on start: once linked again it receives.
	connect(b, a)
	for i := 0; ; i++ {
		text := fmt.Sprintf("welcome back %d", i)
		a.ctl("channel", "send", "ops", text)
		wctx, wdone := context.WithTimeout(sctx, 3*time.Second)
		ok := waitChannelText(wctx, b, text)
		wdone()
		if ok {
			break
		}
		if sctx.Err() != nil {
			t.Fatalf("B does not receive after its return: %v", sctx.Err())
		}
	}
	done()

	// 3. D saw no channel message at all.
	for {
		select {
		case ev := <-d.events:
			if ev.Kind == rpcapi.EventChannelMessage {
				t.Errorf("D, not a member, got %+v", ev.ChannelMessage)
			}
			continue
		default:
		}
		break
	}

	sctx, done = step()
	defer done()
	for _, p := range all {
		p.stop(sctx)
	}
	// The channel key is a secret: no daemon logs it (they ran at debug
	// level), in the share string's form or in hex.
	_, key, err := rpcapi.ParseChannelShare(share)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range all {
		log := p.logText()
		if strings.Contains(log, share[strings.LastIndexByte(share, ':')+1:]) || strings.Contains(log, hex.EncodeToString(key[:])) {
			t.Errorf("%s logged the channel key", p.name)
		}
	}
}

// waitChannelText reports whether a channel message with text arrives
// before ctx ends.
func waitChannelText(ctx context.Context, p *proc, text string) bool {
	for {
		select {
		case ev, ok := <-p.events:
			if !ok {
				return false
			}
			if ev.Kind == rpcapi.EventChannelMessage && ev.ChannelMessage != nil && ev.ChannelMessage.Text == text {
				return true
			}
		case <-ctx.Done():
			return false
		}
	}
}
