package daemon

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"go.uber.org/goleak"

	"meshd.dev/meshd/rpcapi"
)

// noLeaks checks, when the test ends, that every goroutine the daemon
// started is gone. (Not in TestMain: a failed libp2p.New leaves some of
// libp2p's goroutines behind, which TestMainBadListenAddress provokes; the
// process exits after a failed start anyway.)
func noLeaks(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
}

func testConfig(t testing.TB) Config {
	c := DefaultConfig()
	c.DataDir = t.TempDir()
	c.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	c.API = "127.0.0.1:0"
	c.MDNS = false
	return c
}

// signalHandler is a slog handler that closes a channel when a record with
// the given message is logged.
type signalHandler struct {
	slog.Handler
	msg   string
	once  *sync.Once
	ch    chan struct{}
	attrs *sync.Map // "message/key" -> value of every record
}

func (h signalHandler) Handle(ctx context.Context, r slog.Record) error {
	if h.attrs != nil {
		r.Attrs(func(a slog.Attr) bool {
			h.attrs.Store(r.Message+"/"+a.Key, a.Value.String())
			return true
		})
	}
	if r.Message == h.msg {
		h.once.Do(func() { close(h.ch) })
	}
	return nil
}
func (h signalHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h signalHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h signalHandler) WithGroup(string) slog.Handler            { return h }

// runMain runs Main in the background and returns once the node runs.
func runMain(t testing.TB, cfg Config) (stop func() error) {
	t.Helper()
	stop, _ = runMainLog(t, cfg)
	return stop
}

// runMainLog is runMain that also returns the attributes Main logged, by
// "message/key".
func runMainLog(t testing.TB, cfg Config) (stop func() error, logged *sync.Map) {
	t.Helper()
	logged = &sync.Map{}
	h := signalHandler{Handler: slog.DiscardHandler, msg: "meshd running", once: &sync.Once{}, ch: make(chan struct{}), attrs: logged}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Main(ctx, cfg, slog.New(h)) }()
	select {
	case <-h.ch:
	case err := <-done:
		cancel()
		t.Fatalf("Main returned during start-up: %v", err)
	case <-time.After(time.Minute):
		cancel()
		t.Fatal("node did not start within a minute")
	}
	return func() error { cancel(); return <-done }, logged
}

// TestMainStartStop runs the whole daemon in process, uses its API, stops
// it through the context (as SIGTERM does) and checks that every goroutine
// is gone (goleak in TestMain) and the data directory is as documented.
func TestMainStartStop(t *testing.T) {
	noLeaks(t)
	cfg := testConfig(t)
	stop := runMain(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := rpcapi.DialDataDir(ctx, cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Address) != 32 || !strings.HasPrefix(info.PeerID, "12D3KooW") || len(info.ListenAddrs) == 0 {
		t.Errorf("node.info: %+v", info)
	}
	// A message to oneself is delivered locally, synced before the answer.
	res, err := c.Send(ctx, rpcapi.SendParams{To: info.Address, Text: "note to self"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != "local" {
		t.Errorf("send to self: status %q", res.Status)
	}
	page, err := c.Inbox(ctx, rpcapi.InboxParams{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Messages) != 1 || page.Messages[0].Text != "note to self" || page.Messages[0].From != info.Address {
		t.Errorf("inbox: %+v", page)
	}
	// A message to an unknown address is kept in custody, and send says so.
	res, err = c.Send(ctx, rpcapi.SendParams{To: "0123456789abcdef0123456789abcdef", Text: "later"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != "custody" && res.Status != "awaiting-key" {
		t.Errorf("send to an unknown address: status %q", res.Status)
	}
	c.Close()
	if err := stop(); err != nil {
		t.Fatalf("Main: %v", err)
	}
	for name, mode := range map[string]os.FileMode{IdentityFileName: 0o600, HostKeyFileName: 0o600, rpcapi.TokenFile: 0o600} {
		st, err := os.Stat(filepath.Join(cfg.DataDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", name, st.Mode().Perm(), mode)
		}
	}
	if _, err := os.Stat(rpcapi.SocketPath(cfg.DataDir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left behind after a clean stop: %v", err)
	}

	// Restart: same identity, the inbox and the custody record survive,
	// and the API token is kept.
	tok, _ := os.ReadFile(filepath.Join(cfg.DataDir, rpcapi.TokenFile))
	stop = runMain(t, cfg)
	c, err = rpcapi.DialDataDir(ctx, cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	info2, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info2.Address != info.Address || info2.PeerID != info.PeerID {
		t.Errorf("identity changed across restarts: %s/%s, then %s/%s", info.Address, info.PeerID, info2.Address, info2.PeerID)
	}
	if info2.Inbox != 1 || info2.Custody != 1 {
		t.Errorf("after restart: inbox %d custody %d, want 1 and 1", info2.Inbox, info2.Custody)
	}
	tok2, _ := os.ReadFile(filepath.Join(cfg.DataDir, rpcapi.TokenFile))
	if string(tok) != string(tok2) {
		t.Error("API token changed across restarts")
	}
	c.Close()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestMainRefusesALockedDataDirectory(t *testing.T) {
	noLeaks(t)
	cfg := testConfig(t)
	stop := runMain(t, cfg)
	defer stop()
	cfg2 := cfg
	err := Main(context.Background(), cfg2, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "locked") {
		t.Fatalf("second daemon on one data directory: %v", err)
	}
}

func TestMainBadListenAddress(t *testing.T) {
	cfg := testConfig(t)
	cfg.Listen = []string{"/ip4/127.0.0.1/udp/0/utp"} // a multiaddr libp2p has no transport for
	err := Main(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err == nil {
		t.Fatal("started without any usable listen address")
	}
	t.Logf("error: %v", err)
}

// startNode opens a node with cfg and runs its loop (no API server); stop
// ends the loop and closes the node.
func startNode(tb testing.TB, cfg Config) (n *Node, stop func()) {
	tb.Helper()
	return startNodeClock(tb, cfg, nil) // nil: Open's default clock
}

// twoNodes starts two connected nodes in process (Open + Run, no API
// server) and returns them once their link is up in both directions.
func twoNodes(tb testing.TB) (a, b *Node, stop func()) {
	tb.Helper()
	return twoNodesWith(tb, func(*Config) {})
}

// twoNodesWith is twoNodes with both configurations changed by edit.
// Everything each node starts (its loop, store, badger and libp2p
// goroutines) carries the pprof label node=A or node=B, so a CPU profile
// of a benchmark splits by node: go tool pprof -top -tagfocus node=A.
func twoNodesWith(tb testing.TB, edit func(*Config)) (a, b *Node, stop func()) {
	tb.Helper()
	var nodes []*Node
	var stops []func()
	for i := range 2 {
		cfg := testConfig(tb)
		edit(&cfg)
		var n *Node
		var stop func()
		pprof.Do(context.Background(), pprof.Labels("node", []string{"A", "B"}[i]), func(context.Context) {
			n, stop = startNode(tb, cfg)
		})
		nodes = append(nodes, n)
		stops = append(stops, stop)
	}
	a, b = nodes[0], nodes[1]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	evA, cancelA, _ := a.Subscribe(ctx)
	defer cancelA()
	evB, cancelB, _ := b.Subscribe(ctx)
	defer cancelB()
	pprof.Do(ctx, pprof.Labels("node", "A"), func(ctx context.Context) {
		if _, err := a.Connect(ctx, b.host.Addrs()[0]); err != nil {
			tb.Fatal(err)
		}
	})
	for _, ev := range []<-chan rpcapi.Event{evA, evB} {
		waitKind(tb, ctx, ev, rpcapi.EventPeerUp)
	}
	return a, b, func() {
		for _, s := range stops {
			s()
		}
	}
}

func waitKind(tb testing.TB, ctx context.Context, ch <-chan rpcapi.Event, kind string) rpcapi.Event {
	tb.Helper()
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				tb.Fatalf("event stream closed waiting for %s", kind)
			}
			if ev.Kind == kind {
				return ev
			}
		case <-ctx.Done():
			tb.Fatalf("no %s event: %v", kind, ctx.Err())
		}
	}
}

func TestTwoNodesExchange(t *testing.T) {
	noLeaks(t)
	a, b, stop := twoNodes(t)
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	evB, cancelB, _ := b.Subscribe(ctx)
	defer cancelB()
	evA, cancelA, _ := a.Subscribe(ctx)
	defer cancelA()
	res, err := a.Send(ctx, rpcapi.SendParams{To: b.id.Address().String(), Payload: []byte{0, 1, 2, 0xff}})
	if err != nil {
		t.Fatal(err)
	}
	ev := waitKind(t, ctx, evB, rpcapi.EventMessage)
	if ev.Message.ID != res.ID || string(ev.Message.Payload) != "\x00\x01\x02\xff" || ev.Message.Text != "" {
		t.Errorf("delivered %+v for %+v", ev.Message, res)
	}
	if got := waitKind(t, ctx, evA, rpcapi.EventDelivered); got.ID != res.ID {
		t.Errorf("receipt for %s, want %s", got.ID, res.ID)
	}
	peers, err := a.Peers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(peers) != 1 || peers[0].Address != b.id.Address().String() || peers[0].Link == 0 {
		t.Errorf("peers: %+v", peers)
	}
	routes, err := a.Routes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(routes) != 1 || routes[0].Dest != b.id.Address().String() || routes[0].Hops != 1 {
		t.Errorf("routes: %+v", routes)
	}
	st, err := a.StoreStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Custody != 0 {
		t.Errorf("custody after the receipt: %d", st.Custody)
	}
	if _, err := a.Send(ctx, rpcapi.SendParams{To: "zz", Text: "x"}); !errors.Is(err, rpcapi.ErrInvalidParams) {
		t.Errorf("bad address: %v", err)
	}
	big := make([]byte, 70<<10)
	if _, err := a.Send(ctx, rpcapi.SendParams{To: b.id.Address().String(), Payload: big}); !errors.Is(err, rpcapi.ErrRefused) {
		t.Errorf("oversized payload: %v", err)
	}
	if _, err := a.Connect(ctx, "/ip4/127.0.0.1/tcp/1"); !errors.Is(err, rpcapi.ErrInvalidParams) {
		t.Errorf("multiaddr without /p2p: %v", err)
	}
	if _, err := a.Connect(ctx, a.host.Addrs()[0]); !errors.Is(err, rpcapi.ErrInvalidParams) {
		t.Errorf("connect to itself: %v", err)
	}
}

// TestInboxSkipsDamagedEntries: an inbox entry damaged on disk must not
// block msg.inbox; it is reported in Corrupt and msg.ack removes it.
func TestInboxSkipsDamagedEntries(t *testing.T) {
	noLeaks(t)
	cfg := testConfig(t)
	ctx := context.Background()
	stop := runMain(t, cfg)
	c, err := rpcapi.DialDataDir(ctx, cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{"one", "two", "three"} {
		if _, err := c.Send(ctx, rpcapi.SendParams{To: info.Address, Text: text}); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	damageDB(t, cfg.DataDir, map[string]string{
		string(append([]byte("i/"), 0, 0, 0, 0, 0, 0, 0, 2)): "garbage",
	})

	stop = runMain(t, cfg)
	defer stop()
	c, err = rpcapi.DialDataDir(ctx, cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	page, err := c.Inbox(ctx, rpcapi.InboxParams{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Messages) != 2 || page.Messages[0].Text != "one" || page.Messages[1].Text != "three" ||
		len(page.Corrupt) != 1 || page.Corrupt[0] != 2 || page.Next != 3 || page.More {
		t.Fatalf("page %+v", page)
	}
	page, err = c.Inbox(ctx, rpcapi.InboxParams{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Messages) != 1 || page.Next != 2 || !page.More {
		t.Fatalf("first page of one: %+v", page)
	}
	page, err = c.Inbox(ctx, rpcapi.InboxParams{After: page.Next, Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Messages) != 1 || page.Messages[0].Text != "three" {
		t.Fatalf("second page of one: %+v", page)
	}
	// The damaged entry is there to acknowledge; 9 never was.
	if ack, err := c.Ack(ctx, []uint64{2, 9}); err != nil || !slices.Equal(ack.Unknown, []uint64{9}) {
		t.Fatalf("ack of the damaged entry and an unknown one: %+v, %v", ack, err)
	}
	page, err = c.Inbox(ctx, rpcapi.InboxParams{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Messages) != 2 || len(page.Corrupt) != 0 {
		t.Fatalf("after ack: %+v", page)
	}
}

// TestHTTPAPIUsesTheTokenFile checks the daemon's wiring of the HTTP API:
// the token in <data-dir>/api.token opens it, anything else gets 401, and a
// foreign Host header 403.
func TestHTTPAPIUsesTheTokenFile(t *testing.T) {
	noLeaks(t)
	cfg := testConfig(t)
	stop, logged := runMainLog(t, cfg)
	defer stop()
	v, ok := logged.Load("API listening/http")
	if !ok || v.(string) == "" {
		t.Fatal("no HTTP address logged")
	}
	url := "http://" + v.(string) + "/"
	tok, err := rpcapi.ReadToken(rpcapi.TokenPath(cfg.DataDir))
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	call := func(token, host string) (int, string) {
		req, _ := http.NewRequest("POST", url, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"node.info"}`))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if host != "" {
			req.Host = host
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := call(tok, ""); code != 200 || !strings.Contains(body, `"peer_id":"12D3KooW`) {
		t.Errorf("with the token: %d %s", code, body)
	}
	if code, _ := call("", ""); code != 401 {
		t.Errorf("without a token: %d, want 401", code)
	}
	if code, _ := call(strings.Repeat("0", 64), ""); code != 401 {
		t.Errorf("wrong token: %d, want 401", code)
	}
	if code, _ := call(tok, "evil.example"); code != 403 {
		t.Errorf("foreign Host: %d, want 403", code)
	}
}

// TestDamagedEngineRecordsDoNotStopStartUp: a damaged custody record (or
// key) is skipped with an error in the log; the node still starts and keeps
// the rest.
func TestDamagedEngineRecordsDoNotStopStartUp(t *testing.T) {
	noLeaks(t)
	cfg := testConfig(t)
	ctx := context.Background()
	stop := runMain(t, cfg)
	c, err := rpcapi.DialDataDir(ctx, cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Send(ctx, rpcapi.SendParams{To: "0123456789abcdef0123456789abcdef", Text: "kept"}); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	damageDB(t, cfg.DataDir, map[string]string{
		"e/c/00112233445566778899aabbccddeeff": "not a custody record",
		"e/zz":                                 "unknown key",
	})
	stop, logged := runMainLog(t, cfg)
	defer stop()
	if _, ok := logged.Load("some stored routing records are damaged and were skipped/err"); !ok {
		t.Error("the damaged records were not reported")
	}
	c, err = rpcapi.DialDataDir(ctx, cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Custody != 1 {
		t.Errorf("custody %d after restart, want the one good record", info.Custody)
	}
}

// damageDB writes raw key/value pairs into a stopped node's badger
// database, bypassing the store's encoders, as a failing disk might.
func damageDB(t *testing.T, dataDir string, kv map[string]string) {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(filepath.Join(dataDir, "db")).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(txn *badger.Txn) error {
		for k, v := range kv {
			if err := txn.Set([]byte(k), []byte(v)); err != nil {
				return err
			}
		}
		return nil
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
}
