package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"meshd.dev/meshd/rpcapi"
	"meshd.dev/meshd/rpcapi/web"
)

// Errors of the embedding API. ErrClosed wraps rpcapi.ErrUnavailable, the
// error every other method of a closed Node returns.
var (
	// ErrOption marks a bad or conflicting option given to New.
	ErrOption = errors.New("daemon: option")
	// ErrClosed: the node was closed; it cannot start or run again.
	ErrClosed = fmt.Errorf("%w: daemon: node closed", rpcapi.ErrUnavailable)
	// ErrRunning: the node's loop already runs (Start or Run was called).
	ErrRunning = errors.New("daemon: node already running")
)

// An Option configures a node made by New. Options may come in any order;
// each may be given once.
type Option func(*builder) error

// builder collects New's options.
type builder struct {
	set     map[string]bool
	cfg     Config
	dataDir string
	listen  []string
	opt     Options
	api     bool
}

// once reports an option given a second time.
func (b *builder) once(name string) error {
	if b.set[name] {
		return fmt.Errorf("%w: %s given twice", ErrOption, name)
	}
	b.set[name] = true
	return nil
}

// WithConfig makes cfg the node's configuration (default DefaultConfig(),
// the configuration meshd runs on without a config file). WithDataDir and
// WithListen override its fields whatever the order of the options.
func WithConfig(cfg Config) Option {
	return func(b *builder) error {
		if err := b.once("WithConfig"); err != nil {
			return err
		}
		b.cfg = cfg
		return nil
	}
}

// WithDataDir sets the data directory: identity, message store, API socket
// (default: the configuration's data_dir). It is created (mode 0700) if
// missing.
func WithDataDir(dir string) Option {
	return func(b *builder) error {
		if err := b.once("WithDataDir"); err != nil {
			return err
		}
		if dir == "" {
			return fmt.Errorf("%w: WithDataDir: empty directory", ErrOption)
		}
		b.dataDir = dir
		return nil
	}
}

// WithListen sets the libp2p listen multiaddrs (default: the
// configuration's listen, port 7720 on every interface), e.g.
// "/ip4/127.0.0.1/tcp/0" for a port the system picks on loopback.
func WithListen(addrs ...string) Option {
	return func(b *builder) error {
		if err := b.once("WithListen"); err != nil {
			return err
		}
		if len(addrs) == 0 {
			return fmt.Errorf("%w: WithListen: no address", ErrOption)
		}
		b.listen = append([]string(nil), addrs...)
		return nil
	}
}

// WithLogger sets the logger (default: log nothing).
func WithLogger(log *slog.Logger) Option {
	return func(b *builder) error {
		if err := b.once("WithLogger"); err != nil {
			return err
		}
		if log == nil {
			return fmt.Errorf("%w: WithLogger: nil logger", ErrOption)
		}
		b.opt.Logger = log
		return nil
	}
}

// WithClock sets the wall clock (default time.Now).
func WithClock(now func() time.Time) Option {
	return func(b *builder) error {
		if err := b.once("WithClock"); err != nil {
			return err
		}
		if now == nil {
			return fmt.Errorf("%w: WithClock: nil clock", ErrOption)
		}
		b.opt.Now = now
		return nil
	}
}

// WithRand sets the routing engine's randomness (default crypto/rand).
func WithRand(r io.Reader) Option {
	return func(b *builder) error {
		if err := b.once("WithRand"); err != nil {
			return err
		}
		if r == nil {
			return fmt.Errorf("%w: WithRand: nil reader", ErrOption)
		}
		b.opt.Rand = r
		return nil
	}
}

// WithAPI serves the JSON-RPC API as meshd does: on the unix socket in the
// data directory, with the token file next to it, and over HTTP (with the
// web UI) on the configuration's api address unless that is empty.
// Default: no API; the embedding program calls the Node's methods.
func WithAPI() Option {
	return func(b *builder) error {
		if err := b.once("WithAPI"); err != nil {
			return err
		}
		b.api = true
		return nil
	}
}

// New opens a node to embed in a Go program, as meshd itself does: the data
// directory, identity, store and routing engine, and the libp2p host
// (listening from here on). Nothing runs until Start or Run: API requests
// that need the node loop wait for it until then.
//
// Defaults: the configuration is DefaultConfig() (listen on port 7720 on
// every interface, mDNS on, DHT mode auto, no bootstrap peers, the data
// directory of DefaultConfig); logs go nowhere; the clock is time.Now and
// the randomness crypto/rand; no JSON-RPC API is served (WithAPI). The
// Prometheus endpoint is served only if the configuration's metrics
// address is set. New does not set the process's memory limit: the
// embedding program owns its process.
//
// The node's methods (Send, Inbox, Ack, Subscribe, Info, Connect, ...; see
// rpcapi.Node) work in process, without JSON-RPC. Close releases
// everything New opened and stops what Start started.
func New(opts ...Option) (*Node, error) {
	b := &builder{set: map[string]bool{}, cfg: DefaultConfig()}
	for _, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("%w: nil option", ErrOption)
		}
		if err := o(b); err != nil {
			return nil, err
		}
	}
	cfg := b.cfg
	if b.dataDir != "" {
		cfg.DataDir = b.dataDir
	}
	if b.listen != nil {
		cfg.Listen = b.listen
	}
	// The host's start is bounded by its own timeouts; Close stops it.
	n, err := Open(context.Background(), cfg, b.opt)
	if err != nil {
		return nil, err
	}
	if err := n.serve(b.api); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

// serve starts the API server (when asked) and the metrics endpoint (when
// configured).
func (n *Node) serve(api bool) error {
	if api {
		if err := n.serveAPI(); err != nil {
			return err
		}
	}
	if n.cfg.Metrics == "" {
		return nil
	}
	metricsToken := ""
	if !isLoopbackHostPort(n.cfg.Metrics) {
		// metrics_public: served behind the API token.
		t, err := apiToken(rpcapi.TokenPath(n.cfg.DataDir))
		if err != nil {
			return fmt.Errorf("writing the API token: %w", err)
		}
		metricsToken = t
	}
	m, err := startMetricsAuth(n, n.cfg.Metrics, metricsToken, n.log)
	if err != nil {
		return err
	}
	n.emb.metrics = m
	n.log.Info("metrics listening", "url", "http://"+m.Addr()+"/metrics")
	return nil
}

func (n *Node) serveAPI() error {
	token, err := apiToken(rpcapi.TokenPath(n.cfg.DataDir))
	if err != nil {
		return fmt.Errorf("writing the API token: %w", err)
	}
	srv, err := rpcapi.NewServer(n, rpcapi.ServerOptions{
		SocketPath: rpcapi.SocketPath(n.cfg.DataDir),
		HTTPAddr:   n.cfg.API,
		Token:      token,
		Logger:     n.log,
		Version:    Version,
		Web:        web.New(web.Options{Token: token}),
	})
	if err != nil {
		return err
	}
	n.emb.srv = srv
	n.log.Info("API listening", "socket", srv.SocketPath(), "http", srv.HTTPAddr(), "token_file", rpcapi.TokenPath(n.cfg.DataDir))
	return nil
}

// embedState is the Node's lifecycle: the servers New started, the loop
// Start or Run drives, and Close's result.
type embedState struct {
	srv     *rpcapi.Server
	metrics *metricsServer

	mu       sync.Mutex
	closed   bool
	entered  bool               // Run began (by itself or from Start)
	stopLoop context.CancelFunc // ends Run's context
	started  bool               // Start was called
	loopErr  chan error         // Start's Run result

	closeOnce sync.Once
	closeErr  error
	gone      atomic.Bool // Close has stopped the loop and servers
}

// closed is ErrClosed once Close has stopped the loop: methods that answer
// without the loop (from snapshots) check it, so a closed node never
// answers with stale figures. (Requests in flight while Close stops the
// servers are still answered.)
func (n *Node) closed() error {
	if n.emb.gone.Load() {
		return ErrClosed
	}
	return nil
}

// shutdown is Close's one run: the embedding's parts, then what Open
// opened.
func (n *Node) shutdown() error {
	errEmb := n.stopEmbedded()
	n.emb.gone.Store(true)
	return errors.Join(errEmb, n.release())
}

// admitted marks the context of the Run that Start admitted already.
type admitted struct{}

// enterRun admits one Run and gives it a context Close can end.
func (e *embedState) enterRun(ctx context.Context) (context.Context, context.CancelFunc, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if a, _ := ctx.Value(admitted{}).(*embedState); a == e {
		return ctx, e.stopLoop, nil
	}
	switch {
	case e.closed:
		return nil, nil, ErrClosed
	case e.entered:
		return nil, nil, ErrRunning
	}
	e.entered = true
	ctx, e.stopLoop = context.WithCancel(ctx)
	return ctx, e.stopLoop, nil
}

// Start runs the node's loop in the background until Close, and returns
// once the loop has taken its first turn (the restored engine's work is
// done and written). ctx bounds only the start: when it ends first, Start
// returns its error and the loop keeps running until Close.
func (n *Node) Start(ctx context.Context) error {
	// Admitted here, not in the goroutine, so that a Close right after
	// Start finds the loop entered and waits for it.
	loopCtx, _, err := n.emb.enterRun(context.Background())
	if err != nil {
		return err
	}
	loopCtx = context.WithValue(loopCtx, admitted{}, &n.emb)
	n.emb.mu.Lock()
	n.emb.started = true
	n.emb.loopErr = make(chan error, 1)
	n.emb.mu.Unlock()
	go func() { n.emb.loopErr <- n.Run(loopCtx) }()
	// A no-op on the loop: it runs after Run's first tick and drain.
	return n.call(ctx, func() {})
}

// Done is closed when the node's loop has stopped: by Close (also when
// the loop never ran), or by itself on a fatal error (the store failing),
// which Close then returns.
func (n *Node) Done() <-chan struct{} { return n.stopped }

// stopEmbedded stops, in this order, the API and metrics servers (requests
// in flight get half the shutdown timeout), and the loop (its last batch
// is synced before Run returns). It returns the loop's error if Start ran
// it.
func (n *Node) stopEmbedded() error {
	n.emb.mu.Lock()
	n.emb.closed = true
	entered, stop, started := n.emb.entered, n.emb.stopLoop, n.emb.started
	n.emb.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(n.cfg.Limits.ShutdownTimeout)/2)
	defer cancel()
	var errs []error
	if n.emb.srv != nil {
		errs = append(errs, n.emb.srv.Shutdown(ctx))
	}
	if n.emb.metrics != nil {
		errs = append(errs, n.emb.metrics.shutdown(ctx))
	}
	if entered {
		stop()
		<-n.stopped
	} else {
		// No Run can enter any more (closed is set): Done closes here,
		// as it would when the loop stops.
		close(n.stopped)
	}
	if started {
		errs = append(errs, <-n.emb.loopErr)
	}
	return errors.Join(errs...)
}
