package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"meshd.dev/meshd/rpcapi"
)

// TestEndToEndNetnsRelayedLink: A and B sit in network namespaces that
// reach only R's: A-R and R-B are veth pairs, R forwards no IP packets,
// so A and B cannot dial each other (as two nodes behind NAT). R runs in
// relay mode; A and B name it as bootstrap peer and circuit relay and say
// they are behind NAT (reachability = "private"), so A reserves a slot on
// it. B connects to A through R's circuit (a limited
// libp2p connection, /p2p-circuit address), a meshd link A-B forms over
// it, and a message from A reaches B over that link: A's route to B goes
// straight to B, not through R.
func TestEndToEndNetnsRelayedLink(t *testing.T) {
	endToEnd(t, "builds binaries and runs three daemons in network namespaces")
	line := newNetnsLineNamed(t, "mrelay", 3)
	line.ip("netns", "exec", line.ns[1], "sh", "-c", "echo 0 > /proc/sys/net/ipv4/ip_forward")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	r := newProc(t, "R")
	r.logLevel, r.netns, r.listen, r.extra = "info", line.ns[1], listenOn(1, 3), []string{"--relay"}
	r.start(ctx)
	defer killAll(r)
	rForA, rForB := addrOn(t, r, linkAddr(0, 1)), addrOn(t, r, linkAddr(1, 0))
	natted := func(name string, i int, relay string) *proc {
		p := newProc(t, name)
		p.logLevel, p.netns, p.listen = "info", line.ns[i], listenOn(i, 3)
		writeNodeConfig(t, p.dir, fmt.Sprintf("reachability = \"private\"\nbootstrap = [%q]\n[mailbox]\ncircuit_relays = [%q]\n", relay, relay))
		p.start(ctx)
		return p
	}
	a := natted("A", 0, rForA)
	defer killAll(a)
	b := natted("B", 2, rForB)
	defer killAll(b)
	defer func() {
		// The test's context may be spent: the logs get a fresh one.
		lctx, lcancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer lcancel()
		logTails(lctx, t, []*proc{a, r, b})
	}()

	if out, err := b.tryCtl("connect", addrOn(t, a, linkAddr(0, 0))); err == nil {
		t.Fatalf("B dialled A's own address directly; the namespaces should keep them apart: %s", out)
	}
	connectThrough(ctx, t, b, rForB+"/p2p-circuit/p2p/"+a.info.PeerID)
	b.waitPeer(ctx, a.info.Address)

	pa := peerOf(ctx, t, b, a.info.Address)
	if !pa.Relayed || pa.Link == 0 || !strings.Contains(strings.Join(pa.Addrs, " "), "/p2p-circuit") {
		t.Fatalf("B's peer A: %+v; want a meshd link over a relayed (/p2p-circuit) connection", pa)
	}
	a.waitPeer(ctx, b.info.Address) // A's side of the link may come up a little after B's
	link := peerOf(ctx, t, a, b.info.Address).Link
	waitDirectRoute(ctx, t, a, b.info.Address, link)

	sent := a.send(b.info.Address, "through the circuit")
	b.waitMessage(ctx, "through the circuit")
	a.waitDelivered(ctx, sent.ID)
	waitDirectRoute(ctx, t, a, b.info.Address, link)
	if pa := peerOf(ctx, t, b, a.info.Address); !pa.Relayed {
		t.Errorf("B's link to A no longer relayed (%+v): a direct connection between A and B should be impossible", pa)
	}
	for _, p := range []*proc{a, b, r} {
		p.stop(ctx)
	}
}

// writeNodeConfig writes a node's config.toml into its data directory
// before it starts.
func writeNodeConfig(t *testing.T, dir, doc string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
}

// tryCtl runs meshctl and returns its output and error.
func (p *proc) tryCtl(args ...string) (string, error) {
	out, err := exec.Command(p.meshctl, append([]string{"--data-dir", p.dir}, args...)...).CombinedOutput()
	return string(out), err
}

// connectThrough has p connect to circuit, a /p2p-circuit address, once
// the relay holds the target's reservation: until then the relay refuses
// the circuit (NO_RESERVATION), so p tries again. (The target does not
// list the circuit among its addresses: libp2p announces circuits only
// through relays with public addresses.)
func connectThrough(ctx context.Context, t *testing.T, p *proc, circuit string) {
	t.Helper()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		out, err := p.tryCtl("connect", circuit)
		if err == nil {
			return
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("%s: connect %s: %v\n%s", p.name, circuit, err, out)
		}
	}
}

// peerOf returns p's peer entry for the mesh address addr.
func peerOf(ctx context.Context, t *testing.T, p *proc, addr string) rpcapi.Peer {
	t.Helper()
	peers, err := p.client.Peers(ctx)
	if err != nil {
		t.Fatalf("%s: peers: %v", p.name, err)
	}
	for _, pe := range peers {
		if pe.Address == addr {
			return pe
		}
	}
	t.Fatalf("%s has no meshd peer %s: %+v", p.name, addr, peers)
	return rpcapi.Peer{}
}

// waitDirectRoute waits until p's route to dest goes over link straight
// to dest (one hop, not through the relay). It polls the routing table:
// the route follows the link's first advertisement.
func waitDirectRoute(ctx context.Context, t *testing.T, p *proc, dest string, link uint32) {
	t.Helper()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		routes, err := p.client.Routes(ctx)
		if err != nil {
			t.Fatalf("%s: routes: %v", p.name, err)
		}
		for _, r := range routes {
			if r.Dest == dest && r.NextHop == dest && r.Link == link && r.Hops == 1 {
				return
			}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("%s: no direct route to %s over link %d: %+v", p.name, dest, link, routes)
		}
	}
}
