package p2p

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// Zero fields get the defaults; a negative field or a keepalive timeout
// not longer than the interval is refused by New with ErrConfig.
func TestTimeoutsConfig(t *testing.T) {
	got, err := Timeouts{}.withDefaults()
	want := Timeouts{DefaultKeepaliveInterval, DefaultKeepaliveTimeout, DefaultHandshakeTimeout,
		DefaultDialTimeout, DefaultDialTimeoutLocal, DefaultRedialTimeout}
	if err != nil || got != want {
		t.Fatalf("zero Timeouts: %+v, %v; want %+v", got, err, want)
	}
	got, err = Timeouts{KeepaliveTimeout: time.Minute, DialLocal: time.Minute}.withDefaults()
	want.KeepaliveTimeout, want.DialLocal = time.Minute, time.Minute
	if err != nil || got != want {
		t.Fatalf("two fields set: %+v, %v; want %+v", got, err, want)
	}
	for _, bad := range []Timeouts{
		{KeepaliveInterval: -1},
		{KeepaliveTimeout: -time.Second},
		{Handshake: -1},
		{Dial: -1},
		{DialLocal: -1},
		{Redial: -1},
		{KeepaliveInterval: 4 * time.Second}, // timeout (default 4 s) not longer
		{KeepaliveInterval: time.Second, KeepaliveTimeout: time.Second},      // equal
		{KeepaliveInterval: time.Minute, KeepaliveTimeout: 30 * time.Second}, // shorter
	} {
		id := testIdentity(t, 90)
		_, err := New(context.Background(), Config{Identity: id, HostKey: testHostKey(t, id),
			ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, Timeouts: bad})
		if !errors.Is(err, ErrConfig) {
			t.Errorf("New with %+v: %v, want ErrConfig", bad, err)
		}
	}
}

// A KeepaliveTimeout longer than the default is honoured: a link whose
// peer went silent is declared dead only after the configured silence
// (the host logs how long it was; the timer cannot fire early, so the
// bound holds on any machine, however loaded).
func TestKeepaliveTimeoutConfigured(t *testing.T) {
	const timeout = DefaultKeepaliveTimeout + 3*time.Second
	ctx := testContext(t)
	rec := &silenceLog{}
	a := newTestHost(t, 91, func(c *Config) {
		c.Redial.Off = true
		c.Timeouts.KeepaliveTimeout = timeout
		c.Logger = slog.New(rec)
	})
	// B never declares A dead within the test: on a loaded machine its
	// default 4 s could run out before the partition and end the link
	// with B's reset instead.
	b := newTestHost(t, 92, func(c *Config) {
		c.Redial.Off = true
		c.Timeouts.KeepaliveTimeout = 10 * time.Minute
	})
	bh := newBlackhole(t, mustTCPAddr(t, b))
	_, bhPort := splitPort(t, bh.ln.Addr().String())
	if _, err := a.Connect(ctx, "/ip4/127.0.0.1/tcp/"+bhPort+"/p2p/"+b.ID().String()); err != nil {
		t.Fatal(err)
	}
	waitEvent[LinkUp](t, ctx, a)
	waitEvent[LinkUp](t, ctx, b)
	bh.partition()
	if d := waitEvent[LinkDown](t, ctx, a); !errors.Is(d.Err, ErrKeepalive) {
		t.Fatalf("LinkDown: %v, want ErrKeepalive", d.Err)
	}
	silent, ok := rec.silent()
	if !ok {
		t.Fatal("no \"meshd link dead\" log line")
	}
	if silent < timeout {
		t.Errorf("link declared dead after %v of silence, want at least the configured %v", silent, timeout)
	}
}

// A DialLocal longer than libp2p's 5 s is honoured: a connect to a
// loopback address that never completes its security handshake fails only
// after two dials of the configured time each (a failed security handshake
// is dialled once more, see crossedDial; a lower bound: load can only
// lengthen it). With libp2p's 5 s it would fail after about 10 s.
func TestDialTimeoutLocalConfigured(t *testing.T) {
	const timeout = DefaultDialTimeoutLocal + 3*time.Second
	ctx := testContext(t)
	a := newTestHost(t, 93, func(c *Config) {
		c.Redial.Off = true
		c.Timeouts.DialLocal = timeout
	})
	b := newTestHost(t, 94, func(c *Config) { c.Redial.Off = true })
	bh := newBlackhole(t, mustTCPAddr(t, b))
	bh.partition() // the TCP connection opens, nothing passes
	_, bhPort := splitPort(t, bh.ln.Addr().String())
	start := time.Now()
	_, err := a.Connect(ctx, "/ip4/127.0.0.1/tcp/"+bhPort+"/p2p/"+b.ID().String())
	took := time.Since(start)
	if err == nil {
		t.Fatal("dial through a silent proxy succeeded")
	}
	if ctx.Err() != nil {
		t.Fatalf("the test's own bound ran out first: %v", err)
	}
	if took < 2*timeout {
		t.Errorf("connect failed after %v (%v), want at least two dials of the configured %v", took, err, timeout)
	}
	t.Logf("connect failed after %v: %v", took.Round(time.Millisecond), err)
}

func splitPort(t *testing.T, hostport string) (string, string) {
	t.Helper()
	i := strings.LastIndexByte(hostport, ':')
	if i < 0 {
		t.Fatalf("no port in %q", hostport)
	}
	return hostport[:i], hostport[i+1:]
}

// silenceLog is a slog handler that keeps the "silent" duration of the
// host's "meshd link dead" log line.
type silenceLog struct {
	mu  sync.Mutex
	d   time.Duration
	got bool
}

func (*silenceLog) Enabled(context.Context, slog.Level) bool { return true }
func (s *silenceLog) WithAttrs([]slog.Attr) slog.Handler     { return s }
func (s *silenceLog) WithGroup(string) slog.Handler          { return s }

func (s *silenceLog) Handle(_ context.Context, r slog.Record) error {
	if !strings.HasPrefix(r.Message, "meshd link dead") {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "silent" {
			s.mu.Lock()
			s.d, s.got = a.Value.Duration(), true
			s.mu.Unlock()
		}
		return true
	})
	return nil
}

func (s *silenceLog) silent() (time.Duration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.d, s.got
}
