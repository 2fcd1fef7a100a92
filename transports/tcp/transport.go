package tcp

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/transports/link"
)

// Transport errors.
var (
	// ErrConfig reports an invalid Config or peer.
	ErrConfig = errors.New("tcp: invalid config")
	// ErrDeadPeer: nothing arrived from the peer, not even a keepalive,
	// for Config.DeadAfter.
	ErrDeadPeer = errors.New("tcp: peer unresponsive")
	// ErrTransportClosed: the transport was closed.
	ErrTransportClosed = errors.New("tcp: transport closed")
)

// Defaults of a zero Config field.
const (
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultKeepalive        = 15 * time.Second
	DefaultWriteTimeout     = 30 * time.Second
	DefaultMaxPending       = 1 << 20
	DefaultMaxHandshakes    = 16
	DefaultMaxInbound       = 64
	DefaultBackoffMin       = time.Second
	DefaultBackoffMax       = time.Minute
)

// Peer is a configured peer: its host:port and, if given, the mesh address
// it must prove.
type Peer struct {
	Addr string
	Want protocol.Address
}

func (p Peer) String() string {
	if p.Want.IsZero() {
		return p.Addr
	}
	return p.Want.String() + "@" + p.Addr
}

// ParsePeer parses "HOST:PORT" or "ADDRESS@HOST:PORT", where ADDRESS is
// the peer's mesh address in hex: the link is then refused unless the peer
// proves that identity.
func ParsePeer(s string) (Peer, error) {
	var p Peer
	hostport := s
	if a, hp, ok := strings.Cut(s, "@"); ok {
		addr, err := protocol.ParseAddress(a)
		if err != nil {
			return p, fmt.Errorf("%w: peer %q: mesh address %q: %v", ErrConfig, s, a, err)
		}
		p.Want, hostport = addr, hp
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil || host == "" || port == "" {
		return p, fmt.Errorf("%w: peer %q: want HOST:PORT or ADDRESS@HOST:PORT", ErrConfig, s)
	}
	p.Addr = hostport
	return p, nil
}

// Config configures a Transport. Identity is required; every other zero
// field takes its default.
type Config struct {
	Identity *protocol.Identity
	// Listen is the address to accept links on ("" accepts none).
	Listen string
	// Peers are dialled and redialled for as long as the transport runs.
	Peers []Peer
	// HandshakeTimeout bounds a handshake, either direction.
	HandshakeTimeout time.Duration
	// Keepalive is how long a link may be quiet before a keepalive goes
	// out; DeadAfter (default 3 x Keepalive) how long without anything
	// from the peer before the link is taken down.
	Keepalive, DeadAfter time.Duration
	// WriteTimeout bounds one write: a peer that stops reading loses its
	// link after it.
	WriteTimeout time.Duration
	// MaxPending bounds the bytes queued per link.
	MaxPending int
	// MaxHandshakes bounds concurrent inbound connections that have not
	// finished their handshake; more are closed at once.
	MaxHandshakes int
	// MaxInbound bounds the inbound links up at once (identities are
	// cheap, so anyone could otherwise open links without end); while
	// that many are up, new connections are closed at once.
	MaxInbound int
	// MaxPerHost bounds the inbound connections from one IP address (an
	// IPv6 /64), shaking hands or up (default half of the smaller of
	// MaxHandshakes and MaxInbound, at least 1): one host with free
	// identities must not take every slot and lock the others out.
	MaxPerHost int
	// BackoffMin and BackoffMax bound the redial delay of a peer; it
	// doubles per failed attempt, with jitter.
	BackoffMin, BackoffMax time.Duration
	Logger                 *slog.Logger
	// Rand supplies ephemeral keys and nonces (default crypto/rand).
	Rand io.Reader
}

func (c *Config) defaults() error {
	if c.Identity == nil {
		return fmt.Errorf("%w: Identity is required", ErrConfig)
	}
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.HandshakeTimeout, DefaultHandshakeTimeout)
	def(&c.Keepalive, DefaultKeepalive)
	def(&c.DeadAfter, 3*c.Keepalive)
	def(&c.WriteTimeout, DefaultWriteTimeout)
	def(&c.BackoffMin, DefaultBackoffMin)
	def(&c.BackoffMax, DefaultBackoffMax)
	if c.MaxPending <= 0 {
		c.MaxPending = DefaultMaxPending
	}
	if c.MaxHandshakes <= 0 {
		c.MaxHandshakes = DefaultMaxHandshakes
	}
	if c.MaxInbound <= 0 {
		c.MaxInbound = DefaultMaxInbound
	}
	if c.MaxPerHost <= 0 {
		c.MaxPerHost = max(1, min(c.MaxHandshakes, c.MaxInbound)/2)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Rand == nil {
		c.Rand = rand.Reader
	}
	if c.DeadAfter <= c.Keepalive {
		return fmt.Errorf("%w: DeadAfter %v must exceed Keepalive %v", ErrConfig, c.DeadAfter, c.Keepalive)
	}
	return nil
}

// Stats are a transport's counters.
type Stats struct {
	// HandshakeFailures counts handshakes that failed, either direction.
	HandshakeFailures uint64
	// Refused counts inbound connections closed because MaxHandshakes
	// were under way, MaxInbound links were up or their host had
	// MaxPerHost.
	Refused uint64
}

// Transport accepts and dials TCP links. It implements link.Transport.
type Transport struct {
	cfg   Config
	ln    net.Listener
	links chan link.Link
	hs    chan struct{} // a slot per inbound handshake under way
	ctx   context.Context
	stop  context.CancelFunc
	wg    sync.WaitGroup

	mu      sync.Mutex
	conns   map[*conn]struct{}
	inbound int                      // inbound links up
	peers   map[string]*link.Waiting // configured peers without a link, by Peer.String()
	perHost map[string]int           // inbound connections (shaking hands or up) per IP

	failures, refused atomic.Uint64
}

// New starts a transport: it listens (if Listen is set) and dials every
// peer in the background.
func New(cfg Config) (*Transport, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	t := &Transport{cfg: cfg, links: make(chan link.Link), hs: make(chan struct{}, cfg.MaxHandshakes), conns: map[*conn]struct{}{},
		peers: map[string]*link.Waiting{}, perHost: map[string]int{}}
	t.ctx, t.stop = context.WithCancel(context.Background())
	if cfg.Listen != "" {
		ln, err := net.Listen("tcp", cfg.Listen)
		if err != nil {
			t.stop()
			return nil, fmt.Errorf("tcp: listening on %s: %w", cfg.Listen, err)
		}
		t.ln = ln
		t.wg.Go(t.acceptLoop)
	}
	for _, p := range cfg.Peers {
		// Listed from the start: a peer is waiting until its link is up.
		t.peers[p.String()] = &link.Waiting{Kind: link.KindTCP, Name: p.Addr, State: "connecting"}
		t.wg.Go(func() { t.dialLoop(p) })
	}
	return t, nil
}

// Links delivers each link once its handshake succeeded; closed by Close.
func (t *Transport) Links() <-chan link.Link { return t.links }

// Addr is the listening address (nil without Listen).
func (t *Transport) Addr() net.Addr {
	if t.ln == nil {
		return nil
	}
	return t.ln.Addr()
}

// Stats returns the transport's counters.
func (t *Transport) Stats() Stats {
	return Stats{HandshakeFailures: t.failures.Load(), Refused: t.refused.Load()}
}

// Close stops listening and dialling and takes every link down.
func (t *Transport) Close() error {
	t.stop()
	var err error
	if t.ln != nil {
		err = t.ln.Close()
	}
	t.mu.Lock()
	conns := t.conns
	t.conns = map[*conn]struct{}{}
	t.mu.Unlock()
	for k := range conns {
		k.Close(ErrTransportClosed)
	}
	t.wg.Wait()
	for k := range conns {
		k.wait()
	}
	close(t.links)
	return err
}

func (t *Transport) acceptLoop() {
	for {
		c, err := t.ln.Accept()
		if err != nil {
			if t.ctx.Err() == nil {
				t.cfg.Logger.Warn("tcp: accept failed; no more inbound links", "err", err)
			}
			return
		}
		if why := t.admitInbound(c.RemoteAddr()); why != "" {
			t.refused.Add(1)
			t.cfg.Logger.Debug("tcp: connection refused", "remote", c.RemoteAddr(), "why", why)
			c.Close()
			continue
		}
		select {
		case t.hs <- struct{}{}:
		default:
			// Too many handshakes under way: refuse rather than let
			// silent connections hold goroutines and sockets.
			t.releaseHost(c.RemoteAddr())
			t.refused.Add(1)
			t.cfg.Logger.Debug("tcp: too many handshakes under way; connection refused", "remote", c.RemoteAddr())
			c.Close()
			continue
		}
		t.wg.Go(func() {
			k, err := t.establish(c, false, protocol.Address{})
			<-t.hs
			if err != nil {
				t.releaseHost(c.RemoteAddr())
				return
			}
			t.deliver(k)
		})
	}
}

// establish runs the handshake on c and makes the link.
func (t *Transport) establish(c net.Conn, outbound bool, want protocol.Address) (*conn, error) {
	stop := context.AfterFunc(t.ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	_ = c.SetDeadline(handshakeDeadline(t.cfg.HandshakeTimeout))
	s, err := handshake(c, t.cfg.Identity, outbound, want, t.cfg.Rand)
	if err == nil && t.ctx.Err() != nil {
		err = ErrTransportClosed
	}
	if err != nil {
		t.failures.Add(1) // counted before the peer can see the close
		c.Close()
		level := slog.LevelInfo
		if t.ctx.Err() != nil {
			level = slog.LevelDebug
		}
		t.cfg.Logger.Log(context.Background(), level, "tcp link handshake failed", "remote", c.RemoteAddr(), "outbound", outbound, "err", err)
		return nil, err
	}
	_ = c.SetDeadline(time.Time{})
	info := link.Info{Kind: link.KindTCP, Name: c.RemoteAddr().String(), MTU: MaxFrameSize, Peer: s.peer, Outbound: outbound}
	k := newConn(c, s, info, limits{keepalive: t.cfg.Keepalive, deadAfter: t.cfg.DeadAfter, writeTimeout: t.cfg.WriteTimeout, maxPending: t.cfg.MaxPending})
	t.mu.Lock()
	if !outbound && t.inbound >= t.cfg.MaxInbound {
		// Links that came up while this one shook hands took the room.
		t.mu.Unlock()
		t.refused.Add(1)
		k.Close(errTooMany)
		k.wait()
		return nil, errTooMany
	}
	t.conns[k] = struct{}{}
	if !outbound {
		t.inbound++
	}
	t.mu.Unlock()
	t.wg.Go(func() {
		<-k.done
		k.wait()
		t.mu.Lock()
		delete(t.conns, k)
		if !outbound {
			t.inbound--
		}
		t.mu.Unlock()
		if !outbound {
			t.releaseHost(c.RemoteAddr())
		}
	})
	return k, nil
}

// errTooMany closes an inbound link over MaxInbound.
var errTooMany = errors.New("tcp: too many inbound links")

// admitInbound takes a per-host slot for a new inbound connection, or
// says why it is refused. releaseHost gives the slot back.
func (t *Transport) admitInbound(remote net.Addr) string {
	h := hostOf(remote)
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.inbound >= t.cfg.MaxInbound:
		return "inbound link limit reached"
	case t.perHost[h] >= t.cfg.MaxPerHost:
		return "per-host limit reached"
	}
	t.perHost[h]++
	return ""
}

func (t *Transport) releaseHost(remote net.Addr) {
	h := hostOf(remote)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.perHost[h]--; t.perHost[h] <= 0 {
		delete(t.perHost, h)
	}
}

// hostOf is the host a remote address belongs to: its IPv4 address, or
// its IPv6 /64 (a host usually holds a whole /64 and can connect from any
// address in it).
func hostOf(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		if ta.IP.To4() == nil && len(ta.IP) == net.IPv6len {
			return ta.IP.Mask(net.CIDRMask(64, 128)).String() + "/64"
		}
		return ta.IP.String()
	}
	h, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return h
}

// deliver hands k to whoever reads Links, or closes it when the transport
// stops first.
func (t *Transport) deliver(k *conn) {
	select {
	case t.links <- k:
		t.cfg.Logger.Info("tcp link up", "remote", k.info.Name, "peer", k.info.Peer.Address(), "outbound", k.info.Outbound)
	case <-t.ctx.Done():
		k.Close(ErrTransportClosed)
	}
}

// dialLoop keeps a link to p up: dial, handshake, run until it ends, wait
// a jittered, doubling, capped delay, again. A link that stayed up longer
// than BackoffMax resets the delay.
func (t *Transport) dialLoop(p Peer) {
	attempt := 0
	for t.ctx.Err() == nil {
		t.setWaiting(p, "connecting", nil, time.Time{})
		k, err := t.dial(p)
		if err == nil {
			t.clearWaiting(p)
			up := time.Now()
			t.deliver(k)
			select {
			case <-k.done:
				t.cfg.Logger.Info("tcp link down", "peer", p, "err", k.Err())
				err = k.Err()
			case <-t.ctx.Done():
				return
			}
			if time.Since(up) > t.cfg.BackoffMax {
				attempt = 0
			}
		} else {
			t.cfg.Logger.Debug("tcp dial failed", "peer", p, "attempt", attempt, "err", err)
		}
		d := backoff(t.cfg.BackoffMin, t.cfg.BackoffMax, attempt)
		attempt++
		t.setWaiting(p, "down", err, time.Now().Add(d))
		select {
		case <-time.After(d):
		case <-t.ctx.Done():
			return
		}
	}
}

// waitingHook, if set (by tests, before transports start), is called
// after a configured peer's state changed.
var waitingHook func()

func (t *Transport) setWaiting(p Peer, state string, err error, retry time.Time) {
	if waitingHook != nil {
		defer waitingHook()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	w := t.peers[p.String()]
	if w == nil {
		w = &link.Waiting{Kind: link.KindTCP, Name: p.Addr}
		t.peers[p.String()] = w
	}
	w.State, w.Retry = state, retry
	if err != nil {
		w.Err = err
	}
}

func (t *Transport) clearWaiting(p Peer) {
	t.mu.Lock()
	delete(t.peers, p.String())
	t.mu.Unlock()
	if waitingHook != nil {
		waitingHook()
	}
}

// Waiting implements link.Reporter: the configured peers without a link,
// with the last error and the time of the next attempt.
func (t *Transport) Waiting() []link.Waiting {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]link.Waiting, 0, len(t.peers))
	for _, w := range t.peers {
		out = append(out, *w)
	}
	slices.SortFunc(out, func(a, b link.Waiting) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func (t *Transport) dial(p Peer) (*conn, error) {
	ctx, cancel := context.WithTimeout(t.ctx, t.cfg.HandshakeTimeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", p.Addr)
	if err != nil {
		return nil, err
	}
	return t.establish(c, true, p.Want)
}

// backoff is min * 2^attempt capped at max, times a random factor in
// [0.5, 1) so that peers that lost a common neighbour do not redial it in
// step.
func backoff(lo, hi time.Duration, attempt int) time.Duration {
	d := hi
	if attempt < 30 && lo<<attempt < hi {
		d = lo << attempt
	}
	return d/2 + time.Duration(mrand.Int64N(int64(d/2)+1))
}
