package daemon

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"meshd.dev/meshd/rpcapi"
)

// embedOpts are the options of a node on loopback in a fresh data
// directory, without mDNS.
func embedOpts(t *testing.T) []Option {
	cfg := DefaultConfig()
	cfg.MDNS = false
	return []Option{WithConfig(cfg), WithDataDir(t.TempDir()), WithListen("/ip4/127.0.0.1/tcp/0")}
}

func startEmbedded(t *testing.T, more ...Option) *Node {
	t.Helper()
	n, err := New(append(embedOpts(t), more...)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		n.Close()
		t.Fatal(err)
	}
	return n
}

// TestEmbedCloseWaits: Close returns only when every goroutine of the node
// (loop, helpers, libp2p, badger) is gone, with messages exchanged before.
func TestEmbedCloseWaits(t *testing.T) {
	noLeaks(t)
	a, b := startEmbedded(t), startEmbedded(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	evB, stopB, err := b.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Connect(ctx, b.host.Addrs()[0]); err != nil {
		t.Fatal(err)
	}
	res, err := a.Send(ctx, rpcapi.SendParams{To: b.id.Address().String(), Text: "hi"})
	if err != nil {
		t.Fatal(err)
	}
	if ev := waitKind(t, ctx, evB, rpcapi.EventMessage); ev.Message.ID != res.ID {
		t.Errorf("received %s, sent %s", ev.Message.ID, res.ID)
	}
	stopB()
	for _, n := range []*Node{a, b} {
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
		select {
		case <-n.Done():
		default:
			t.Error("Close returned before the loop stopped")
		}
	}
}

// TestEmbedCloseTwice: concurrent and repeated Closes all wait for the one
// shutdown and return its result.
func TestEmbedCloseTwice(t *testing.T) {
	noLeaks(t)
	n := startEmbedded(t)
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Go(func() { errs[i] = n.Close() })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Close %d: %v", i, err)
		}
	}
	if err := n.Close(); err != nil {
		t.Errorf("Close after Close: %v", err)
	}
}

// TestEmbedCloseWithoutStart: a node New opened and never ran closes
// cleanly, and cannot start afterwards.
func TestEmbedCloseWithoutStart(t *testing.T) {
	noLeaks(t)
	n, err := New(embedOpts(t)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close: %v, want ErrClosed", err)
	}
	if err := n.Run(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Run after Close: %v, want ErrClosed", err)
	}
}

// TestEmbedCloseStopsRun: Close stops a loop the program drives with Run
// (Run returns nil) and waits for it.
func TestEmbedCloseStopsRun(t *testing.T) {
	noLeaks(t)
	n, err := New(embedOpts(t)...)
	if err != nil {
		t.Fatal(err)
	}
	runErr := make(chan error, 1)
	go func() { runErr <- n.Run(context.Background()) }()
	// A call answered by the loop: Run has begun.
	if _, err := n.Peers(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-runErr:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	default:
		t.Error("Close returned before Run")
	}
}

// TestEmbedRunsOnce: a second Start or Run is refused while the loop runs.
func TestEmbedRunsOnce(t *testing.T) {
	noLeaks(t)
	n := startEmbedded(t)
	defer n.Close()
	if err := n.Start(context.Background()); !errors.Is(err, ErrRunning) {
		t.Errorf("second Start: %v, want ErrRunning", err)
	}
	if err := n.Run(context.Background()); !errors.Is(err, ErrRunning) {
		t.Errorf("Run after Start: %v, want ErrRunning", err)
	}
}

// TestEmbedStartContext: Start gives up when its context ends first; the
// loop still stops at Close.
func TestEmbedStartContext(t *testing.T) {
	noLeaks(t)
	n, err := New(embedOpts(t)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := n.Start(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Start with an ended context: %v", err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestEmbedOptions: bad and conflicting options are refused with an error
// that names them, and nothing is left open.
func TestEmbedOptions(t *testing.T) {
	noLeaks(t)
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	for _, tc := range []struct {
		name string
		opts []Option
		is   error
		says string
	}{
		{"empty data dir", []Option{WithDataDir("")}, ErrOption, "WithDataDir: empty"},
		{"data dir is a file", []Option{WithDataDir(file), WithListen("/ip4/127.0.0.1/tcp/0")}, nil, "data directory"},
		{"data dir twice", []Option{WithDataDir(t.TempDir()), WithDataDir(t.TempDir())}, ErrOption, "WithDataDir given twice"},
		{"config twice", []Option{WithConfig(cfg), WithConfig(cfg)}, ErrOption, "WithConfig given twice"},
		{"no listen address", []Option{WithListen()}, ErrOption, "WithListen: no address"},
		{"bad listen address", []Option{WithDataDir(t.TempDir()), WithListen("tcp:7720")}, nil, "tcp:7720"},
		{"nil logger", []Option{WithLogger(nil)}, ErrOption, "nil logger"},
		{"nil clock", []Option{WithClock(nil)}, ErrOption, "nil clock"},
		{"nil rand", []Option{WithRand(nil)}, ErrOption, "nil reader"},
		{"nil option", []Option{nil}, ErrOption, "nil option"},
		{"API twice", []Option{WithAPI(), WithAPI()}, ErrOption, "WithAPI given twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := New(tc.opts...)
			if err == nil {
				n.Close()
				t.Fatal("accepted")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("%v, want %v", err, tc.is)
			}
			if !strings.Contains(err.Error(), tc.says) {
				t.Errorf("%q does not say %q", err, tc.says)
			}
		})
	}
}

// TestEmbedOverridesWhateverTheOrder: WithDataDir and WithListen win over
// WithConfig's fields before or after it.
func TestEmbedOverridesWhateverTheOrder(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.MDNS = false
	cfg.DataDir = t.TempDir()
	n, err := New(WithDataDir(dir), WithListen("/ip4/127.0.0.1/tcp/0"), WithConfig(cfg))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if n.cfg.DataDir != dir || len(n.cfg.Listen) != 1 {
		t.Errorf("data dir %s listen %v", n.cfg.DataDir, n.cfg.Listen)
	}
}

// TestEmbedWithAPI: WithAPI serves the socket that meshctl uses; without
// it there is none.
func TestEmbedWithAPI(t *testing.T) {
	noLeaks(t)
	cfg := DefaultConfig()
	cfg.MDNS = false
	cfg.API = "" // the unix socket only
	dir := t.TempDir()
	n, err := New(WithConfig(cfg), WithDataDir(dir), WithListen("/ip4/127.0.0.1/tcp/0"), WithAPI())
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(rpcapi.SocketPath(dir)); err != nil {
		t.Errorf("no API socket with WithAPI: %v", err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	m := startEmbedded(t)
	defer m.Close()
	if _, err := os.Stat(rpcapi.SocketPath(m.cfg.DataDir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("API socket without WithAPI: %v", err)
	}
}

// TestEmbedUseAfterClose calls every method of a closed node that takes a
// context (with zero arguments): each returns an error, none panics.
func TestEmbedUseAfterClose(t *testing.T) {
	noLeaks(t)
	n := startEmbedded(t)
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	ctxType := reflect.TypeFor[context.Context]()
	errType := reflect.TypeFor[error]()
	v := reflect.ValueOf(n)
	checked := 0
	for i := range v.NumMethod() {
		m, mt := v.Type().Method(i), v.Method(i).Type()
		if mt.NumIn() == 0 || mt.In(0) != ctxType || mt.Out(mt.NumOut()-1) != errType {
			continue
		}
		args := []reflect.Value{reflect.ValueOf(context.Background())}
		for j := 1; j < mt.NumIn(); j++ {
			args = append(args, reflect.Zero(mt.In(j)))
		}
		checked++
		t.Run(m.Name, func(t *testing.T) {
			out := callNoPanic(t, v.Method(i), args)
			if out == nil {
				return
			}
			err, _ := out[len(out)-1].Interface().(error)
			t.Log(err)
			if err == nil {
				t.Errorf("%s after Close: no error", m.Name)
			}
		})
	}
	if checked < 10 {
		t.Fatalf("only %d methods checked", checked)
	}
}

func callNoPanic(t *testing.T, f reflect.Value, args []reflect.Value) (out []reflect.Value) {
	defer func() {
		if p := recover(); p != nil {
			t.Errorf("panic: %v", p)
			out = nil
		}
	}()
	return f.Call(args)
}

// TestEmbedDoneOnFatal: when the store fails under the loop, the loop
// stops by itself, Done is closed, and Close returns why.
func TestEmbedDoneOnFatal(t *testing.T) {
	noLeaks(t)
	n := startEmbedded(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.st.Close(); err != nil { // the store fails under the loop
		t.Fatal(err)
	}
	// A send makes the loop write (custody), which fails.
	if _, err := n.Send(ctx, rpcapi.SendParams{To: n.id.Address().String(), Text: "x"}); err == nil {
		t.Error("a send on a failed store succeeded")
	}
	select {
	case <-n.Done():
	case <-ctx.Done():
		t.Fatal("the loop did not stop on a failed store")
	}
	if err := n.Close(); err == nil {
		t.Error("Close returned nil after the loop failed")
	}
}

// TestEmbedDoneAfterCloseWithoutStart: Done is closed once Close returns
// even if the loop never ran, so a program that waits for Done after
// Close (or selects on it while it works) is not left waiting for ever.
func TestEmbedDoneAfterCloseWithoutStart(t *testing.T) {
	noLeaks(t)
	n, err := New(embedOpts(t)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-n.Done():
	default:
		t.Fatal("Done still open after Close of a node that never started")
	}
}
