package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"meshd.dev/meshd/rpcapi"
)

// The end-to-end test builds the real meshd and meshctl binaries and runs
// three daemons on 127.0.0.1 with separate data directories and mDNS off:
// A and C connect only to B. It waits on events (log lines, API
// notifications), never on sleeps.

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binaries builds meshd and meshctl once per test binary.
func binaries(t testing.TB) (meshd, meshctl string) {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "meshd-e2e-bin")
		if buildErr != nil {
			return
		}
		gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
		for _, pkg := range []string{"meshd.dev/meshd/daemon/cmd/meshd", "meshd.dev/meshd/apps/meshctl"} {
			out, err := exec.Command(gobin, "build", "-o", binDir, pkg).CombinedOutput()
			if err != nil {
				buildErr = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, "meshd"), filepath.Join(binDir, "meshctl")
}

// endToEnd starts an end-to-end test with real binaries: skipped with
// -short and under -race (see raceEnabled), and run in parallel with the
// other end-to-end tests (each has its own directories and listens on
// port 0, so they share nothing but the binaries).
func endToEnd(t *testing.T, what string) {
	t.Helper()
	if testing.Short() {
		t.Skip(what)
	}
	if raceEnabled {
		t.Skip("the daemons are separate binaries without the race detector; the plain run covers this test")
	}
	t.Parallel()
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

type proc struct {
	t       testing.TB
	name    string
	dir     string
	meshd   string
	meshctl string
	cmd     *exec.Cmd
	exited  chan error
	log     *os.File
	client  *rpcapi.Client
	events  <-chan rpcapi.Event
	info    rpcapi.NodeInfo
	// logLevel is meshd's --log-level (default debug); extra are more
	// flags for meshd run.
	logLevel string
	extra    []string
	// listen replaces the default listen address (127.0.0.1, port 0);
	// netns runs meshd inside that network namespace (ip netns exec).
	listen []string
	netns  string
}

func newProc(t testing.TB, name string) *proc {
	meshd, meshctl := binaries(t)
	return &proc{t: t, name: name, dir: filepath.Join(t.TempDir(), name), meshd: meshd, meshctl: meshctl}
}

// start runs meshd and waits for its "meshd running" log line, then
// connects an API client and subscribes to events.
func (p *proc) start(ctx context.Context) {
	t := p.t
	t.Helper()
	level := p.logLevel
	if level == "" {
		level = "debug"
	}
	args := []string{"run", "--data-dir", p.dir, "--listen", "/ip4/127.0.0.1/tcp/0",
		"--api", "off", "--no-mdns", "--log-level", level, "--log-format", "json"}
	p.cmd = exec.Command(p.meshd, append(args, p.extra...)...)
	if len(p.listen) > 0 || p.netns != "" {
		p.cmd = p.nsCommand(level)
	}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(p.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	p.log, err = os.OpenFile(filepath.Join(p.dir, "meshd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	running := make(chan struct{})
	p.exited = make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		once := sync.Once{}
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(p.log, line)
			if strings.Contains(line, `"msg":"meshd running"`) {
				once.Do(func() { close(running) })
			}
		}
		io.Copy(io.Discard, stderr)
		p.exited <- p.cmd.Wait()
	}()
	select {
	case <-running:
	case err := <-p.exited:
		t.Fatalf("%s: meshd exited during start-up: %v\n%s", p.name, err, p.logText())
	case <-ctx.Done():
		t.Fatalf("%s: meshd did not start: %v\n%s", p.name, ctx.Err(), p.logText())
	}
	p.client, err = rpcapi.DialDataDir(ctx, p.dir)
	if err != nil {
		t.Fatalf("%s: %v", p.name, err)
	}
	p.events, err = p.client.Subscribe(ctx)
	if err != nil {
		t.Fatalf("%s: subscribe: %v", p.name, err)
	}
	p.info, err = p.client.Info(ctx)
	if err != nil {
		t.Fatalf("%s: node.info: %v", p.name, err)
	}
}

func (p *proc) logText() string {
	b, _ := os.ReadFile(filepath.Join(p.dir, "meshd.log"))
	return string(b)
}

// stop sends SIGTERM and requires exit status 0.
func (p *proc) stop(ctx context.Context) {
	p.t.Helper()
	p.client.Close()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatal(err)
	}
	select {
	case err := <-p.exited:
		if err != nil {
			p.t.Fatalf("%s: meshd exited with %v after SIGTERM\n%s", p.name, err, p.logText())
		}
	case <-ctx.Done():
		p.t.Fatalf("%s: meshd did not stop after SIGTERM\n%s", p.name, p.logText())
	}
	p.log.Close()
}

// kill sends SIGKILL.
func (p *proc) kill() {
	p.t.Helper()
	p.client.Close()
	if err := p.cmd.Process.Kill(); err != nil {
		p.t.Fatal(err)
	}
	<-p.exited
	p.log.Close()
}

// ctl runs meshctl against this daemon and returns its standard output.
func (p *proc) ctl(args ...string) string {
	p.t.Helper()
	cmd := exec.Command(p.meshctl, append([]string{"--data-dir", p.dir}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		p.t.Fatalf("%s: meshctl %s: %v\n%s", p.name, strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// waitEvent returns the first event that match accepts.
func (p *proc) waitEvent(ctx context.Context, what string, match func(rpcapi.Event) bool) rpcapi.Event {
	p.t.Helper()
	for {
		select {
		case ev, ok := <-p.events:
			if !ok {
				p.t.Fatalf("%s: event stream closed while waiting for %s", p.name, what)
			}
			if match(ev) {
				return ev
			}
		case <-ctx.Done():
			p.t.Fatalf("%s: no %s: %v\n%s", p.name, what, ctx.Err(), p.logText())
		}
	}
}

func (p *proc) waitMessage(ctx context.Context, text string) rpcapi.Message {
	ev := p.waitEvent(ctx, "message "+text, func(ev rpcapi.Event) bool {
		return ev.Kind == rpcapi.EventMessage && ev.Message != nil && ev.Message.Text == text
	})
	return *ev.Message
}

func (p *proc) waitDelivered(ctx context.Context, id string) {
	p.waitEvent(ctx, "receipt for "+id, func(ev rpcapi.Event) bool {
		return ev.Kind == rpcapi.EventDelivered && ev.ID == id
	})
}

func (p *proc) waitPeer(ctx context.Context, address string) {
	p.waitEvent(ctx, "link to "+address, func(ev rpcapi.Event) bool {
		return ev.Kind == rpcapi.EventPeerUp && ev.Peer != nil && ev.Peer.Address == address
	})
}

func (p *proc) send(to, text string) rpcapi.SendResult {
	p.t.Helper()
	var res rpcapi.SendResult
	out := p.ctl("--json", "send", to, text)
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		p.t.Fatalf("meshctl send --json printed %q: %v", out, err)
	}
	return res
}

// inboxCount counts the messages with the given text in the inbox.
func (p *proc) inboxCount(ctx context.Context, text string) int {
	p.t.Helper()
	n := 0
	var after uint64
	for {
		page, err := p.client.Inbox(ctx, rpcapi.InboxParams{After: after, Limit: 1000})
		if err != nil {
			p.t.Fatal(err)
		}
		for _, m := range page.Messages {
			if m.Text == text {
				n++
			}
		}
		if !page.More {
			return n
		}
		after = page.Next
	}
}

func TestEndToEndThreeDaemons(t *testing.T) {
	endToEnd(t, "builds binaries and runs three daemons")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	step := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, 90*time.Second) }

	a, b, c := newProc(t, "A"), newProc(t, "B"), newProc(t, "C")
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
	bAddr := b.info.ListenAddrs[0]
	a.ctl("connect", bAddr)
	c.ctl("connect", bAddr)
	a.waitPeer(sctx, b.info.Address)
	c.waitPeer(sctx, b.info.Address)
	done()

	// 1. A sends to C through B.
	sctx, done = step()
	res := a.send(c.info.Address, "one")
	t.Logf("send one: %s", res.Status)
	m := c.waitMessage(sctx, "one")
	if m.From != a.info.Address {
		t.Errorf("message from %s, want A %s", m.From, a.info.Address)
	}
	a.waitDelivered(sctx, res.ID)
	if !strings.Contains(a.ctl("routes"), c.info.Address) {
		t.Errorf("A has no route to C after delivery:\n%s", a.ctl("routes"))
	}
	done()

	// 2. C is stopped; A sends; C restarts and receives it exactly once.
	sctx, done = step()
	c.stop(sctx)
	res = a.send(c.info.Address, "two")
	t.Logf("send two while C is down: %s", res.Status)
	c.start(sctx)
	c.ctl("connect", bAddr)
	c.waitMessage(sctx, "two")
	a.waitDelivered(sctx, res.ID)
	if n := c.inboxCount(sctx, "two"); n != 1 {
		t.Errorf("C has %d copies of message two, want 1", n)
	}
	if n := c.inboxCount(sctx, "one"); n != 1 {
		t.Errorf("C has %d copies of message one after its restart, want 1", n)
	}
	done()

	// 3. A is killed with -9 while a message is in its custody; it
	// restarts and the message is still delivered.
	sctx, done = step()
	c.stop(sctx)
	res = a.send(c.info.Address, "three")
	t.Logf("send three while C is down: %s", res.Status)
	a.kill()
	a.start(sctx)
	st, err := a.client.StoreStats(sctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Custody < 1 {
		t.Fatalf("after kill -9 A's store holds %d messages in custody, want the unacknowledged one", st.Custody)
	}
	a.ctl("connect", bAddr)
	a.waitPeer(sctx, b.info.Address)
	c.start(sctx)
	c.ctl("connect", bAddr)
	c.waitMessage(sctx, "three")
	a.waitDelivered(sctx, res.ID)
	for _, text := range []string{"one", "two", "three"} {
		if n := c.inboxCount(sctx, text); n != 1 {
			t.Errorf("C has %d copies of message %q, want 1", n, text)
		}
	}
	done()

	// 4. Session traffic in flight: C is up and reachable, so A's messages
	// go over a route session. A is killed with -9 right after a burst
	// is accepted, before all of it is acknowledged; after the restart
	// (the initiator's session is gone) the rest goes over a new session,
	// and C holds every message exactly once.
	sctx, done = step()
	texts := map[string]bool{}
	ids := map[string]bool{}
	// C is frozen (SIGSTOP): its links stay up, so the route does too and
	// the burst goes out over the session, but nothing is acknowledged.
	if err := c.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		text := fmt.Sprintf("burst %d", i)
		texts[text], ids[a.send(c.info.Address, text).ID] = true, true
	}
	a.kill()
	a.start(sctx)
	// What A holds now is what was not acknowledged before the kill: wait
	// for its acknowledgements (any order), then nothing more can come.
	st, err = a.client.StoreStats(sctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("after kill -9 with a burst in flight: %d of 10 in A's custody", st.Custody)
	if st.Custody == 0 {
		t.Error("the burst was acknowledged although C was frozen")
	}
	if err := c.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	a.ctl("connect", bAddr)
	for left := st.Custody; left > 0; left-- {
		ev := a.waitEvent(sctx, "a receipt for the burst", func(ev rpcapi.Event) bool {
			return ev.Kind == rpcapi.EventDelivered && ids[ev.ID]
		})
		delete(ids, ev.ID)
	}
	for text := range texts {
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
