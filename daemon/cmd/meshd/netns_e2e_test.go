package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"meshd.dev/meshd/rpcapi"
)

// A five-daemon line in five network namespaces, joined by veth pairs:
// A-B-C-D-E. A namespace has routes only to its veth neighbours, so no
// shortcut link can form: the line is the topology, not a convention.

// netnsLine holds the namespaces of a line and the veth ends between them.
type netnsLine struct {
	t   *testing.T
	ns  []string
	pid int
}

// linkAddr is node side's (0 or 1) address on the veth between node i
// and node i+1.
func linkAddr(i, side int) string { return fmt.Sprintf("10.213.%d.%d", i, side+1) }

// ip runs ip(8) with args and fails the test on an error.
func (l *netnsLine) ip(args ...string) {
	l.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		l.t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// newNetnsLine creates n namespaces joined in a line, or skips the test
// where network namespaces cannot be made (not root, no ip, no veth).
func newNetnsLine(t *testing.T, n int) *netnsLine {
	t.Helper()
	return newNetnsLineNamed(t, "meshd", n)
}

// newNetnsLineNamed is newNetnsLine with namespaces named prefix-PID-x, so
// that tests running in parallel make distinct namespaces.
func newNetnsLineNamed(t *testing.T, prefix string, n int) *netnsLine {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces (ip netns); CI runs as root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip(8) from iproute2 to create network namespaces")
	}
	l := &netnsLine{t: t, pid: os.Getpid()}
	probe := fmt.Sprintf("%s-probe-%d", prefix, l.pid)
	if out, err := exec.Command("ip", "netns", "add", probe).CombinedOutput(); err != nil {
		t.Skipf("network namespaces unavailable: ip netns add: %v: %s", err, out)
	}
	exec.Command("ip", "netns", "del", probe).Run()
	t.Cleanup(func() {
		for _, ns := range l.ns {
			exec.Command("ip", "netns", "del", ns).Run()
		}
	})
	for i := range n {
		ns := fmt.Sprintf("%s-%d-%c", prefix, l.pid, 'a'+i)
		l.ip("netns", "add", ns)
		l.ns = append(l.ns, ns)
		l.ip("-n", ns, "link", "set", "dev", "lo", "up")
	}
	for i := 0; i+1 < n; i++ {
		left, right := fmt.Sprintf("l%d", i), fmt.Sprintf("r%d", i)
		l.ip("-n", l.ns[i], "link", "add", "name", left, "type", "veth", "peer", "name", right, "netns", l.ns[i+1])
		l.ip("-n", l.ns[i], "addr", "add", linkAddr(i, 0)+"/24", "dev", left)
		l.ip("-n", l.ns[i+1], "addr", "add", linkAddr(i, 1)+"/24", "dev", right)
		l.setLink(i, "up")
	}
	return l
}

// setLink brings both ends of the veth between node i and i+1 up or down.
func (l *netnsLine) setLink(i int, state string) {
	l.ip("-n", l.ns[i], "link", "set", "dev", fmt.Sprintf("l%d", i), state)
	l.ip("-n", l.ns[i+1], "link", "set", "dev", fmt.Sprintf("r%d", i), state)
}

// listenOn returns node i's listen addresses: one per veth it has.
func listenOn(i, n int) []string {
	var ls []string
	if i > 0 {
		ls = append(ls, "/ip4/"+linkAddr(i-1, 1)+"/tcp/0")
	}
	if i+1 < n {
		ls = append(ls, "/ip4/"+linkAddr(i, 0)+"/tcp/0")
	}
	return ls
}

// addrOn returns p's listen address on ip.
func addrOn(t *testing.T, p *proc, ip string) string {
	t.Helper()
	for _, a := range p.info.ListenAddrs {
		if strings.HasPrefix(a, "/ip4/"+ip+"/") {
			return a
		}
	}
	t.Fatalf("%s listens on %v, not on %s", p.name, p.info.ListenAddrs, ip)
	return ""
}

// nsCommand is meshd run with p.listen, inside p.netns if set.
func (p *proc) nsCommand(level string) *exec.Cmd {
	args := []string{"run", "--data-dir", p.dir, "--api", "off", "--no-mdns",
		"--log-level", level, "--log-format", "json"}
	for _, l := range p.listen {
		args = append(args, "--listen", l)
	}
	args = append(args, p.extra...)
	if p.netns == "" {
		return exec.Command(p.meshd, args...)
	}
	// ip netns exec execs meshd in place: the process is meshd itself, so
	// kill -9 reaches it.
	return exec.Command("ip", append([]string{"netns", "exec", p.netns, p.meshd}, args...)...)
}

// assertLine fails unless every node's meshd links are exactly its line
// neighbours (no shortcut link formed).
func assertLine(ctx context.Context, t *testing.T, ps []*proc) {
	t.Helper()
	for i, p := range ps {
		var want []string
		if i > 0 {
			want = append(want, ps[i-1].info.Address)
		}
		if i+1 < len(ps) {
			want = append(want, ps[i+1].info.Address)
		}
		peers, err := p.client.Peers(ctx)
		if err != nil {
			t.Fatalf("%s: peers: %v", p.name, err)
		}
		var got []string
		for _, pe := range peers {
			if pe.Address != "" {
				got = append(got, pe.Address)
			}
		}
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s has meshd peers %v, want only its line neighbours %v", p.name, got, want)
		}
	}
}

// A five-daemon line in network namespaces (mDNS off). 100 messages flow
// from A to E while C is killed with -9 and restarted (on new ports), then
// 100 more while only the C-D veth is down for partitionLength (both ends,
// as a cut cable; A-B-C and D-E stay connected). Each batch is delivered
// exactly once within 30 s of the restart or heal, with no manual step.
func TestEndToEndNetnsLineOneLinkPartition(t *testing.T) {
	endToEnd(t, "builds binaries and runs five daemons in network namespaces")
	line := newNetnsLine(t, 5)
	d := partitionLength(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute+d)
	defer cancel()
	names := []string{"A", "B", "C", "D", "E"}
	ps := make([]*proc, len(names))
	for i, n := range names {
		ps[i] = newProc(t, n)
		ps[i].logLevel = "info"
		ps[i].netns = line.ns[i]
		ps[i].listen = listenOn(i, len(names))
		ps[i].start(ctx)
	}
	defer killAll(ps...)
	defer logTails(ctx, t, ps)
	a, c, dd, e := ps[0], ps[2], ps[3], ps[4]
	for i := 0; i+1 < len(ps); i++ {
		ps[i].ctl("connect", addrOn(t, ps[i+1], linkAddr(i, 1)))
		ps[i].waitPeer(ctx, ps[i+1].info.Address)
	}
	first := a.send(e.info.Address, "warm-up")
	e.waitMessage(ctx, "warm-up")
	a.waitDelivered(ctx, first.ID)
	assertLine(ctx, t, ps)

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

	drain(dd)
	var healed time.Time
	stream = streamTo(ctx, t, a, e.info.Address, "partition", 100, func(i int) {
		if i != 30 {
			return
		}
		line.setLink(2, "down")
		cut := time.Now()
		dd.waitEvent(ctx, "C's link down at D", func(ev rpcapi.Event) bool {
			return ev.Kind == rpcapi.EventPeerDown && ev.Peer != nil && ev.Peer.Address == c.info.Address
		})
		t.Logf("D noticed the cut C-D link after %v", time.Since(cut).Round(100*time.Millisecond))
		time.Sleep(d - time.Since(cut)) // the partition itself, not a wait for something
		line.setLink(2, "up")
		healed = time.Now()
	})
	waitAll(ctx, t, e, stream, healed, fmt.Sprintf("a %v partition of the C-D link", d))
	assertLine(ctx, t, ps)
	for _, p := range ps {
		p.stop(ctx)
	}
}

// logTails logs, when the test failed, each daemon's routes, store
// figures and the end of its log, while the daemons still run (the logs
// are in temporary directories that go with the test).
func logTails(ctx context.Context, t *testing.T, ps []*proc) {
	if !t.Failed() {
		return
	}
	for _, p := range ps {
		routes, err := p.client.Routes(ctx)
		t.Logf("%s: routes %+v (%v)", p.name, routes, err)
		stats, err := p.client.StoreStats(ctx)
		t.Logf("%s: store %+v (%v)", p.name, stats, err)
		lines := strings.Split(strings.TrimSpace(p.logText()), "\n")
		t.Logf("%s: last lines of meshd.log:\n%s", p.name, strings.Join(lines[max(0, len(lines)-60):], "\n"))
	}
}
