package rpcapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/creachadair/jrpc2"
	"github.com/creachadair/jrpc2/channel"
)

// ServerOptions configure NewServer. The zero value serves nothing: set
// SocketPath, HTTPAddr or both.
type ServerOptions struct {
	// SocketPath is the unix socket to serve on, normally
	// SocketPath(dataDir). Empty: no socket. The socket is created with
	// mode 0600; a stale socket file (nothing answering) is replaced, a
	// live one is an error (another daemon owns the data directory).
	SocketPath string
	// HTTPAddr is a loopback host:port for HTTP POST and WebSocket, such as
	// "127.0.0.1:7721" (the daemon's default) or "127.0.0.1:0" (any free
	// port; read it back with Server.HTTPAddr). Empty: no HTTP.
	// Non-loopback addresses are refused.
	HTTPAddr string
	// Token is the bearer token HTTP and WebSocket clients must present
	// (see WriteToken). Required when HTTPAddr is set.
	Token string
	// Logger receives connection errors and the detail of internal errors.
	// Nil discards.
	Logger *slog.Logger
	// Version is reported in the OpenRPC document's info.version.
	Version string
	// Web, when set, is the web page served under /app/ on the HTTP
	// listener, and web.login makes its login links. Nil: no page.
	Web WebApp
}

// Timeouts the server applies.
const (
	// writeTimeout bounds one response or notification write; a client
	// that does not read for this long is disconnected.
	writeTimeout = 30 * time.Second
	// readHeaderTimeout bounds an HTTP request's headers.
	readHeaderTimeout = 10 * time.Second
	// connConcurrency is how many requests of one connection run at once.
	connConcurrency = 16
)

// Server serves a Node over the unix socket and loopback HTTP/WebSocket.
// NewServer starts it; Shutdown or Close stops it. It cannot be restarted:
// make a new one.
type Server struct {
	node     Node
	fapp     FAPPNode // node as a FAPPNode; nil when it is not one
	opts     ServerOptions
	log      *slog.Logger
	discover json.RawMessage // the OpenRPC document, built once

	unixLn   net.Listener
	httpLn   net.Listener
	httpSrv  *http.Server
	httpPort string

	ctx    context.Context // cancelled when the server closes connections
	cancel context.CancelFunc
	failed chan error // a listener failed (buffered; first error wins)

	mu       sync.Mutex
	closing  bool
	conns    map[*conn]struct{}
	wg       sync.WaitGroup // every goroutine the server started
	shutOnce sync.Once
	shutErr  error
	done     chan struct{} // closed when Shutdown finished
}

// conn is one socket or WebSocket connection.
type conn struct {
	ctx    context.Context // ends when the connection ends
	cancel context.CancelFunc
	rpc    *jrpc2.Server
	kind   string

	mu         sync.Mutex
	subscribed bool
	allow      func(method string) bool // nil: every method (see WithMethodFilter)
}

type connKey struct{}

// NewServer validates opts, binds the socket and the HTTP listener and
// starts serving. The caller must call Close or Shutdown.
func NewServer(node Node, opts ServerOptions) (*Server, error) {
	if node == nil {
		return nil, errors.New("rpcapi: NewServer: nil Node")
	}
	if opts.SocketPath == "" && opts.HTTPAddr == "" {
		return nil, errors.New("rpcapi: NewServer: neither SocketPath nor HTTPAddr is set")
	}
	if opts.HTTPAddr != "" && opts.Token == "" {
		return nil, errors.New("rpcapi: NewServer: HTTPAddr needs a Token (see WriteToken)")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	fn, _ := node.(FAPPNode)
	odoc := OpenRPC(opts.Version)
	if fn == nil {
		// A node without FAPP answers no fapp method, so rpc.discover
		// lists none.
		odoc.Methods = slices.DeleteFunc(odoc.Methods, func(m DocMethod) bool { return methodsByName[m.Name].FAPP })
	}
	doc, err := json.Marshal(odoc)
	if err != nil {
		return nil, fmt.Errorf("rpcapi: building the OpenRPC document: %w", err)
	}
	s := &Server{
		node:     node,
		fapp:     fn,
		opts:     opts,
		log:      log,
		discover: doc,
		failed:   make(chan error, 2),
		conns:    map[*conn]struct{}{},
		done:     make(chan struct{}),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())

	if opts.HTTPAddr != "" {
		if err := checkLoopbackAddr(opts.HTTPAddr); err != nil {
			s.cancel()
			return nil, err
		}
		ln, err := net.Listen("tcp", opts.HTTPAddr)
		if err != nil {
			s.cancel()
			return nil, fmt.Errorf("rpcapi: listen on %s: %w", opts.HTTPAddr, err)
		}
		s.httpLn = ln
		_, s.httpPort, _ = net.SplitHostPort(ln.Addr().String())
	}
	if opts.SocketPath != "" {
		ln, err := listenUnix(opts.SocketPath)
		if err != nil {
			if s.httpLn != nil {
				s.httpLn.Close()
			}
			s.cancel()
			return nil, err
		}
		s.unixLn = ln
	}

	if s.unixLn != nil {
		s.wg.Go(s.acceptUnix)
	}
	if s.httpLn != nil {
		s.httpSrv = &http.Server{
			Handler:           s,
			ReadHeaderTimeout: readHeaderTimeout,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
			BaseContext:       func(net.Listener) context.Context { return s.ctx },
		}
		s.wg.Go(func() {
			if err := s.httpSrv.Serve(s.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.fail(fmt.Errorf("rpcapi: HTTP server: %w", err))
			}
		})
	}
	return s, nil
}

// HTTPAddr is the bound HTTP address (host:port), "" without HTTP.
func (s *Server) HTTPAddr() string {
	if s.httpLn == nil {
		return ""
	}
	return s.httpLn.Addr().String()
}

// SocketPath is the unix socket's path, "" without a socket.
func (s *Server) SocketPath() string { return s.opts.SocketPath }

// Serve blocks until ctx ends or a listener fails, then shuts the server
// down (waiting up to five seconds for HTTP requests in flight). It returns
// nil after a clean stop through ctx, Close or Shutdown, else the listener's
// error. It lets a supervisor run the server as a service.
func (s *Server) Serve(ctx context.Context) error {
	var err error
	select {
	case <-ctx.Done():
	case err = <-s.failed:
	case <-s.done:
		return nil
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.Shutdown(sctx)
	return err
}

func (s *Server) fail(err error) {
	s.log.Error("rpcapi: listener failed", "err", err)
	select {
	case s.failed <- err:
	default:
	}
}

// Close stops the server at once: listeners close, connections close and
// requests in flight are cancelled. It waits for every goroutine the server
// started and removes the socket file. Calling it again returns the first
// result.
func (s *Server) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return s.Shutdown(ctx)
}

// Shutdown stops accepting, waits for HTTP POST requests in flight until
// ctx ends, then closes socket and WebSocket connections (cancelling their
// requests and subscriptions) and waits for every goroutine the server
// started. It removes the socket file.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutOnce.Do(func() {
		s.mu.Lock()
		s.closing = true
		s.mu.Unlock()

		var errs []error
		if s.unixLn != nil {
			if err := s.unixLn.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		if s.httpSrv != nil {
			if err := s.httpSrv.Shutdown(ctx); err != nil {
				// ctx ended first: cut the remaining requests.
				s.httpSrv.Close()
			}
		}
		// Connections watch s.ctx and stop their jrpc2 servers.
		s.cancel()
		s.wg.Wait()
		if s.unixLn != nil {
			if err := os.Remove(s.opts.SocketPath); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
		s.shutErr = errors.Join(errs...)
		close(s.done)
	})
	<-s.done
	return s.shutErr
}

// track counts a goroutine the server starts, unless it is closing.
func (s *Server) track() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.wg.Add(1)
	return true
}

func (s *Server) acceptUnix() {
	var delay time.Duration
	for {
		nc, err := s.unixLn.Accept()
		if err != nil {
			if s.ctx.Err() != nil || isClosed(err, s) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				// Out of file descriptors and the like: back off.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.Warn("rpcapi: accept on socket", "err", err, "retry_in", delay)
				t := time.NewTimer(delay)
				select {
				case <-t.C:
				case <-s.ctx.Done():
					t.Stop()
					return
				}
				continue
			}
			s.fail(fmt.Errorf("rpcapi: accept on %s: %w", s.opts.SocketPath, err))
			return
		}
		delay = 0
		if !s.track() {
			nc.Close()
			return
		}
		go func() {
			defer s.wg.Done()
			s.serveConn(newLineChannel(nc, MaxRequestBytes), "socket")
		}()
	}
}

func isClosed(err error, s *Server) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing || errors.Is(err, net.ErrClosed)
}

// isTemporary reports errors after which accepting again may succeed.
func isTemporary(err error) bool {
	var te interface{ Temporary() bool }
	return errors.As(err, &te) && te.Temporary()
}

// serveConn runs one jrpc2 server on ch until the client goes away or the
// server closes. It blocks.
func (s *Server) serveConn(ch channel.Channel, kind string) {
	s.serveConnAllow(ch, kind, nil)
}

// serveConnAllow serves a connection that may call only the methods allow
// accepts (nil: all).
func (s *Server) serveConnAllow(ch channel.Channel, kind string, allow func(string) bool) {
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	c := &conn{ctx: ctx, cancel: cancel, kind: kind, allow: allow}
	base := context.WithValue(ctx, connKey{}, c)
	c.rpc = jrpc2.NewServer(assigner{s}, &jrpc2.ServerOptions{
		AllowPush:      true,
		DisableBuiltin: true, // we answer rpc.discover ourselves
		Concurrency:    connConcurrency,
		NewContext:     func() context.Context { return base },
	})

	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		ch.Close()
		return
	}
	s.conns[c] = struct{}{}
	s.mu.Unlock()

	c.rpc.Start(ch)
	stop := context.AfterFunc(ctx, c.rpc.Stop)
	if err := c.rpc.Wait(); err != nil && !errors.Is(err, errTooLarge) && s.ctx.Err() == nil {
		s.log.Debug("rpcapi: connection ended", "transport", kind, "err", err)
	}
	stop()
	cancel() // ends the subscription, if any

	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// method returns the method called name, nil when there is none or it is
// a fapp method and the node does not implement FAPPNode.
func (s *Server) method(name string) *MethodSpec {
	m := methodsByName[name]
	if m == nil || (m.FAPP && s.fapp == nil) {
		return nil
	}
	return m
}

// assigner dispatches jrpc2 requests through the method table.
type assigner struct{ s *Server }

func (a assigner) Assign(ctx context.Context, method string) jrpc2.Handler {
	m := a.s.method(method)
	if c, _ := ctx.Value(connKey{}).(*conn); m == nil || (c != nil && c.allow != nil && !c.allow(method)) {
		return nil
	}
	return func(ctx context.Context, req *jrpc2.Request) (any, error) {
		var raw json.RawMessage
		if err := req.UnmarshalParams(&raw); err != nil {
			return nil, &jrpc2.Error{Code: jrpc2.InvalidParams, Message: "invalid params: " + err.Error()}
		}
		c, _ := ctx.Value(connKey{}).(*conn)
		res, e := a.s.invoke(ctx, m, &callEnv{srv: a.s, conn: c}, raw)
		if e != nil {
			return nil, &jrpc2.Error{Code: jrpc2.Code(e.Code), Message: e.Message, Data: e.Data}
		}
		return res, nil
	}
}

// Names lists the methods (jrpc2.Namer).
func (a assigner) Names() []string {
	names := make([]string, 0, len(Methods))
	for _, m := range Methods {
		if a.s.method(m.Name) != nil {
			names = append(names, m.Name)
		}
	}
	return names
}

// invoke runs one method: it recovers a panic in the node, maps errors to
// their codes and marshals the result, so a result that cannot be encoded
// is an internal error rather than a broken response.
func (s *Server) invoke(ctx context.Context, m *MethodSpec, env *callEnv, raw json.RawMessage) (res json.RawMessage, e *Error) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("rpcapi: panic in method", "method", m.Name, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			res, e = nil, &Error{Code: CodeInternal, Message: internalMessage}
		}
	}()
	v, err := m.call(ctx, env, raw)
	if err != nil {
		e, unexpected := errorFor(err)
		if unexpected {
			s.log.Error("rpcapi: method failed", "method", m.Name, "err", err)
		}
		return nil, e
	}
	if r, ok := v.(json.RawMessage); ok {
		return r, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		s.log.Error("rpcapi: encoding the result", "method", m.Name, "err", err)
		return nil, &Error{Code: CodeInternal, Message: internalMessage}
	}
	return b, nil
}

// subscribe starts forwarding node events to c as msg.event notifications.
func (s *Server) subscribe(c *conn) (SubscribeResult, error) {
	if c == nil {
		return SubscribeResult{}, &Error{Code: CodeMethodNotFound, Message: ErrPushUnsupported.Error()}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.subscribed {
		return SubscribeResult{Subscribed: true}, nil
	}
	events, cancel, err := s.node.Subscribe(c.ctx)
	if err != nil {
		return SubscribeResult{}, err
	}
	c.subscribed = true
	// The handler runs inside serveConn, which holds a wg count, so this
	// Add cannot race with Shutdown's Wait reaching zero.
	s.wg.Go(func() {
		defer cancel()
		for {
			select {
			case ev, ok := <-events:
				if !ok {
					// The node ended the subscription (it is shutting
					// down): hang up so the client notices.
					if c.ctx.Err() == nil {
						s.log.Debug("rpcapi: node closed a subscription; closing its connection", "transport", c.kind)
					}
					c.rpc.Stop()
					return
				}
				if err := c.rpc.Notify(c.ctx, NotifyEvent, ev); err != nil {
					c.rpc.Stop()
					return
				}
			case <-c.ctx.Done():
				return
			}
		}
	})
	return SubscribeResult{Subscribed: true}, nil
}

// listenUnix creates the socket with mode 0600 whatever the umask: it binds
// in a fresh 0700 directory next to path, chmods, then renames into place.
// A stale socket at path is removed if nothing answers on it.
func listenUnix(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("rpcapi: %s exists and is not a socket; refusing to replace it", path)
		}
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			return nil, fmt.Errorf("rpcapi: %s: another process is serving on this socket (is meshd already running with this data directory?)", path)
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("rpcapi: removing stale socket: %w", err)
		}
	}
	dir, err := os.MkdirTemp(filepath.Dir(path), ".api-sock-")
	if err != nil {
		return nil, fmt.Errorf("rpcapi: creating the socket: %w", err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("rpcapi: creating the socket: %w", err)
	}
	tmp := filepath.Join(dir, "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("rpcapi: listen on %s: %w", path, err)
	}
	// We remove the socket at path ourselves on Close; the listener only
	// knows the temporary name.
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("rpcapi: chmod socket: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		ln.Close()
		return nil, fmt.Errorf("rpcapi: placing the socket at %s: %w", path, err)
	}
	return ln, nil
}

// checkLoopbackAddr refuses HTTP listen addresses that are not loopback.
func checkLoopbackAddr(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("rpcapi: HTTPAddr %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("rpcapi: HTTPAddr %q: the API listens on loopback addresses only (127.0.0.1, [::1] or localhost)", addr)
	}
	return nil
}
