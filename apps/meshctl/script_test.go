package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"meshd.dev/meshd/rpcapi"
)

// The scripts in testdata/script run meshctl (this package's Main, in
// process) against real meshd daemons started by the startd command.

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"meshctl": func() { os.Exit(Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) },
	})
}

func TestScripts(t *testing.T) {
	if testing.Short() {
		t.Skip("starts meshd daemons")
	}
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			env.Setenv("MESHD_DATA_DIR", "") // never the developer's own node
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"startd":    cmdStartd,
			"nodeinfo":  cmdNodeinfo,
			"waitinbox": cmdWaitInbox,
			"chanwarm":  cmdChanWarm,
			"waitchan":  cmdWaitChan,
			"outboxid":  cmdOutboxID,
		},
	})
}

var (
	meshdOnce sync.Once
	meshdBin  string
	meshdErr  error
)

// buildMeshd builds the real daemon once per test binary.
func buildMeshd() (string, error) {
	meshdOnce.Do(func() {
		dir, err := os.MkdirTemp("", "meshctl-test-meshd")
		if err != nil {
			meshdErr = err
			return
		}
		meshdBin = filepath.Join(dir, "meshd")
		gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
		out, err := exec.Command(gobin, "build", "-o", meshdBin, "meshd.dev/meshd/daemon/cmd/meshd").CombinedOutput()
		if err != nil {
			meshdErr = fmt.Errorf("go build meshd: %v\n%s", err, out)
		}
	})
	return meshdBin, meshdErr
}

// startd NAME [nowait] starts meshd with data directory $WORK/NAME on
// loopback with mDNS and HTTP off, waits until it runs (unless nowait: the
// script then waits itself, with meshctl status --wait), and stops it when
// the script ends.
func cmdStartd(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 1 || len(args) > 2 || (len(args) == 2 && args[1] != "nowait") {
		ts.Fatalf("usage: startd NAME [nowait]")
	}
	bin, err := buildMeshd()
	if err != nil {
		ts.Fatalf("%v", err)
	}
	dir := ts.MkAbs(args[0])
	cmd := exec.Command(bin, "--data-dir", dir, "--listen", "/ip4/127.0.0.1/tcp/0", "--api", "off", "--no-mdns")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		ts.Fatalf("%v", err)
	}
	if err := cmd.Start(); err != nil {
		ts.Fatalf("%v", err)
	}
	running := make(chan struct{})
	var log strings.Builder
	var mu sync.Mutex
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		sc := bufio.NewScanner(stderr)
		once := sync.Once{}
		for sc.Scan() {
			mu.Lock()
			log.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if strings.Contains(sc.Text(), "meshd running") {
				once.Do(func() { close(running) })
			}
		}
		io.Copy(io.Discard, stderr)
		cmd.Wait()
	}()
	ts.Defer(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	if len(args) == 2 {
		return
	}
	select {
	case <-running:
	case <-exited:
		mu.Lock()
		defer mu.Unlock()
		ts.Fatalf("meshd %s exited during start-up:\n%s", args[0], log.String())
	case <-time.After(60 * time.Second):
		ts.Fatalf("meshd %s did not start within a minute", args[0])
	}
}

// nodeinfo NAME sets NAME_ADDR (mesh address) and NAME_MA (first listen
// multiaddr) from the daemon in $WORK/NAME.
func cmdNodeinfo(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: nodeinfo NAME")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := rpcapi.DialDataDir(ctx, ts.MkAbs(args[0]))
	if err != nil {
		ts.Fatalf("%v", err)
	}
	defer c.Close()
	info, err := c.Info(ctx)
	if err != nil {
		ts.Fatalf("%v", err)
	}
	name := strings.ToUpper(args[0])
	ts.Setenv(name+"_ADDR", info.Address)
	ts.Setenv(name+"_MA", info.ListenAddrs[0])
}

// waitinbox NAME N waits until the daemon in $WORK/NAME holds at least N
// inbox messages, woken by its event subscription.
func cmdWaitInbox(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: waitinbox NAME N")
	}
	want, err := strconv.Atoi(args[1])
	if err != nil {
		ts.Fatalf("waitinbox: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := rpcapi.DialDataDir(ctx, ts.MkAbs(args[0]))
	if err != nil {
		ts.Fatalf("%v", err)
	}
	defer c.Close()
	events, err := c.Subscribe(ctx)
	if err != nil {
		ts.Fatalf("%v", err)
	}
	for {
		info, err := c.Info(ctx)
		if err != nil {
			ts.Fatalf("%v", err)
		}
		if info.Inbox >= want {
			return
		}
		select {
		case <-events:
		case <-ctx.Done():
			ts.Fatalf("waitinbox %s: %d messages after a minute, want %d", args[0], info.Inbox, want)
		}
	}
}

// chanwarm FROM TO CHANNEL publishes numbered warm-up messages on CHANNEL
// from the daemon in $WORK/FROM until one reaches the daemon in $WORK/TO:
// gossip needs a moment after a join before it forwards the topic. Each
// attempt waits for the message's event (up to 3 s), never a sleep.
func cmdChanWarm(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: chanwarm FROM TO CHANNEL")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	from, err := rpcapi.DialDataDir(ctx, ts.MkAbs(args[0]))
	if err != nil {
		ts.Fatalf("%v", err)
	}
	defer from.Close()
	to, err := rpcapi.DialDataDir(ctx, ts.MkAbs(args[1]))
	if err != nil {
		ts.Fatalf("%v", err)
	}
	defer to.Close()
	events, err := to.Subscribe(ctx)
	if err != nil {
		ts.Fatalf("%v", err)
	}
	for i := 0; ctx.Err() == nil; i++ {
		text := fmt.Sprintf("warm-up %d", i)
		if _, err := from.ChannelPublish(ctx, rpcapi.ChannelPublishParams{Channel: args[2], Text: text}); err != nil {
			ts.Fatalf("%v", err)
		}
		attempt, done := context.WithTimeout(ctx, 3*time.Second)
		for attempt.Err() == nil {
			select {
			case ev := <-events:
				if ev.ChannelMessage != nil && ev.ChannelMessage.Text == text {
					done()
					return
				}
			case <-attempt.Done():
			}
		}
		done()
	}
	ts.Fatalf("chanwarm: no message from %s reached %s", args[0], args[1])
}

// waitchan NAME CHANNEL TEXT waits until the channel history of the daemon
// in $WORK/NAME holds a message with TEXT, woken by its events.
func cmdWaitChan(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: waitchan NAME CHANNEL TEXT")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := rpcapi.DialDataDir(ctx, ts.MkAbs(args[0]))
	if err != nil {
		ts.Fatalf("%v", err)
	}
	defer c.Close()
	events, err := c.Subscribe(ctx)
	if err != nil {
		ts.Fatalf("%v", err)
	}
	for {
		page, err := c.ChannelHistory(ctx, rpcapi.ChannelHistoryParams{Channel: args[1], Limit: rpcapi.MaxHistoryLimit})
		if err != nil {
			ts.Fatalf("%v", err)
		}
		for _, m := range page.Messages {
			if m.Text == args[2] {
				return
			}
		}
		select {
		case <-events:
		case <-ctx.Done():
			ts.Fatalf("waitchan %s: no %q on %s after a minute", args[0], args[2], args[1])
		}
	}
}
