package main

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"meshd.dev/meshd/rpcapi"
	"meshd.dev/meshd/simulations/radio"
	"meshd.dev/meshd/simulations/rnode"
)

// The LoRa end-to-end test runs three real daemons: A with a LoRa modem
// only, B with a LoRa modem and IP, C with IP only. The modems are the
// RNode emulator's (simulations/rnode) on pseudo-terminals, 30 m apart on
// one emulated radio medium. B bridges the radio and the internet.

// loraConfig writes a meshd configuration with one [[lora]] section for
// port: US915 (no duty cycle) at SF7 and 500 kHz, the fastest setting, so
// the test runs in seconds.
func loraConfig(t *testing.T, port string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "lora.toml")
	doc := fmt.Sprintf("[[lora]]\nport = %q\nregion = \"US915\"\nfrequency = 915000000\nbandwidth = 500000\nsf = 7\n", port)
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// waitTexts waits until every text in want has arrived, in any order.
func (p *proc) waitTexts(ctx context.Context, want []string) {
	p.t.Helper()
	left := map[string]bool{}
	for _, w := range want {
		left[w] = true
	}
	for len(left) > 0 {
		select {
		case ev, ok := <-p.events:
			if !ok {
				p.t.Fatalf("%s: event stream closed", p.name)
			}
			if ev.Kind == rpcapi.EventMessage && ev.Message != nil {
				delete(left, ev.Message.Text)
			}
		case <-ctx.Done():
			p.t.Fatalf("%s: still missing %d of %d messages: %v", p.name, len(left), len(want), slices.Sorted(maps.Keys(left)))
		}
	}
}

// waitReceipts waits for the receipts of every message ID in ids.
func (p *proc) waitReceipts(ctx context.Context, ids []string) {
	p.t.Helper()
	left := map[string]bool{}
	for _, id := range ids {
		left[id] = true
	}
	p.waitEvent(ctx, fmt.Sprintf("%d receipts", len(ids)), func(ev rpcapi.Event) bool {
		if ev.Kind == rpcapi.EventDelivered {
			delete(left, ev.ID)
		}
		return len(left) == 0
	})
}

func TestEndToEndLoRaEmulator(t *testing.T) {
	endToEnd(t, "builds binaries and runs three daemons and the modem emulator")
	if _, err := os.Stat("/dev/ptmx"); err != nil {
		t.Skip("no pseudo-terminals (/dev/ptmx)")
	}
	// Messages lost on the air wait for the engine's custody retry (30 s,
	// then 60 s, 120 s...) and a destination's key for its next path
	// request (one a minute): the steps allow a few rounds, and the whole
	// stays within go test's 10 minutes for the package.
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute+30*time.Second)
	defer cancel()
	step := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, 6*time.Minute) }

	model := radio.DefaultModel()
	model.PathLoss.ShadowSigmaDB = 0
	hub, err := rnode.New(rnode.Config{Nodes: []rnode.NodeConfig{{Name: "A"}, {Name: "B", X: 30}}, Seed: 1, Model: &model})
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	ttys := t.TempDir()
	modems := map[string]*rnode.PTY{}
	plug := func(name string) {
		p, err := rnode.ServePTY(hub, name, filepath.Join(ttys, name))
		if err != nil {
			t.Fatal(err)
		}
		modems[name] = p
	}
	plug("A")
	plug("B")
	defer func() {
		for _, p := range modems {
			p.Close()
		}
	}()

	a, b, c := newProc(t, "A"), newProc(t, "B"), newProc(t, "C")
	a.extra = []string{"--config", loraConfig(t, modems["A"].Link)}
	b.extra = []string{"--config", loraConfig(t, modems["B"].Link)}
	sctx, done := step()
	for _, p := range []*proc{a, b, c} {
		p.start(sctx)
		defer func(p *proc) {
			if p.cmd.ProcessState == nil {
				p.cmd.Process.Kill()
				<-p.exited
			}
		}(p)
	}
	t.Cleanup(func() {
		if t.Failed() { // what the other daemons said: waitEvent shows only its own
			for _, p := range []*proc{b, c} {
				lines := strings.Split(strings.TrimSpace(p.logText()), "\n")
				t.Logf("%s's log, last lines:\n%s", p.name, strings.Join(lines[max(0, len(lines)-60):], "\n"))
			}
		}
	})
	c.ctl("connect", b.info.ListenAddrs[0])
	c.waitPeer(sctx, b.info.Address)
	done()

	// 1. A (radio only) to C (internet only) and back, through B.
	sctx, done = step()
	res := a.send(c.info.Address, "a to c")
	c.waitMessage(sctx, "a to c")
	a.waitDelivered(sctx, res.ID)
	t.Logf("C's routes:\n%sB's routes:\n%s", c.ctl("routes"), b.ctl("routes"))
	res = c.send(a.info.Address, "c to a")
	t.Logf("c to a: %s", res.Status)
	a.waitMessage(sctx, "c to a")
	c.waitDelivered(sctx, res.ID)
	for p, text := range map[*proc]string{c: "a to c", a: "c to a"} {
		if n := p.inboxCount(sctx, text); n != 1 {
			t.Errorf("%s has %d copies of %q, want 1", p.name, n, text)
		}
	}
	if links, err := a.client.Links(sctx); err != nil || len(links) != 1 || links[0].Kind != "lora" || links[0].Radio == nil {
		t.Errorf("A's links: %+v, %v; want its radio", links, err)
	}
	if out := a.ctl("links"); !strings.Contains(out, "lora") || !strings.Contains(out, modems["A"].Link) {
		t.Errorf("meshctl links on A does not show its modem:\n%s", out)
	}
	done()

	// 2. A channel message crosses from the radio to the internet and back.
	sctx, done = step()
	a.ctl("channel", "create", "village")
	share := strings.TrimSpace(a.ctl("channel", "share", "village"))
	for _, p := range []*proc{b, c} {
		if out := p.ctl("channel", "join", share); !strings.HasPrefix(out, "joined ") {
			t.Fatalf("%s: channel join printed %q", p.name, out)
		}
	}
	// Gossip between B and C needs a heartbeat after the subscriptions:
	// publish from C until B and A have one.
	for i := 0; ; i++ {
		text := fmt.Sprintf("warm-up %d", i)
		c.ctl("channel", "send", "village", text)
		wctx, wdone := context.WithTimeout(sctx, 5*time.Second)
		ok := waitChannelText(wctx, a, text)
		wdone()
		if ok {
			break
		}
		if sctx.Err() != nil {
			t.Fatalf("no channel message from C reached A: %v", sctx.Err())
		}
	}
	a.ctl("channel", "send", "--sign", "village", "from the radio")
	c.waitChannelMessage(sctx, "from the radio")
	c.ctl("channel", "send", "--sign", "village", "from the internet")
	a.waitChannelMessage(sctx, "from the internet")
	done()

	// 3. B's modem is unplugged in the middle of a stream from A to C and
	// plugged back: every message A accepted arrives once, with a receipt.
	sctx, done = step()
	var texts, ids []string
	for i := range 10 {
		text := fmt.Sprintf("stream %d", i)
		res := a.send(c.info.Address, text)
		t.Logf("%s: %s", text, res.Status)
		texts, ids = append(texts, text), append(ids, res.ID)
		if i == 4 {
			if err := modems["B"].Close(); err != nil {
				t.Fatal(err)
			}
			delete(modems, "B")
		}
	}
	plug("B")
	c.waitTexts(sctx, texts)
	a.waitReceipts(sctx, ids)
	for _, text := range texts {
		if n := c.inboxCount(sctx, text); n != 1 {
			t.Errorf("C has %d copies of %q, want 1", n, text)
		}
	}
	done()

	sctx, done = step()
	defer done()
	for _, p := range []*proc{a, b, c} {
		p.stop(sctx)
	}
}
