package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"

	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/routing"
	"meshd.dev/meshd/transports/p2p"
	"meshd.dev/meshd/transports/tcp"
)

// The guard stands between the links and the node loop. Every link's
// frames are read in a goroutine of their own; the guard vets each frame
// there, before it enters the queue all links share, cheapest check
// first: its size and its kind (the first byte); a frame that fails them
// is a strike. Then the peer's rate: a peer over it is paced, not
// refused: the link's reader waits until the peer's token buckets hold
// the frame, so an honest neighbour that sends fast (a burst from its
// apps) is slowed to the rate by its own link's flow control instead of
// being cut off, and a flooder gets no more of the node loop than the
// rate whatever it sends. Only frames that pass reach the routing engine,
// which parses them, drops duplicates and then checks signatures; a frame
// it refuses for what the peer sent (forged) is a strike too
// (frameRefused).
// A peer that keeps breaking the rules (more than limits.peer_strikes
// strikes within strikeWindow, or maxHandshakeFailures failed
// handshakes within a minute) is
// disconnected and cooled down: for limits.cool_down, its connections and
// links are refused before any handshake. Refusals are counted in metrics
// and logged once per logInterval, not once per frame.

// Guard errors.
var (
	ErrDenied     = errors.New("daemon: peer not allowed to link")
	ErrCoolingOff = errors.New("daemon: peer is cooling down")
	ErrOffender   = errors.New("daemon: peer broke the inbound limits")
	// errDropped drops one refused frame and keeps the link (the peer is
	// not yet an offender).
	errDropped = fmt.Errorf("daemon: frame refused: %w", p2p.ErrDropFrame)
)

const (
	// strikeWindow is the time over which limits.peer_strikes refused
	// frames (or failed handshakes) make a peer an offender.
	strikeWindow = 10 * time.Second
	// maxHandshakeFailures is how many failed handshakes per minute make
	// a peer (or TCP host) an offender.
	maxHandshakeFailures = 10
	// logInterval spaces the guard's summary log lines.
	logInterval = time.Minute
	// maxTracked bounds the peers the guard keeps limiters for; beyond it
	// the idlest are forgotten (they start again with a full bucket).
	maxTracked = 4096
	// maxCooling bounds the cool-down list: peer IDs are free to mint,
	// and each offender stays on it for limits.cool_down. Past it, the
	// entry that ends soonest goes first.
	maxCooling = 4 * maxTracked
)

// guardStats are the guard's counters (metrics).
type guardStats struct {
	framesRefused     [refusalKinds]atomic.Uint64
	framesPaced       atomic.Uint64 // frames a reader waited for (over the rate)
	pacedNanos        atomic.Uint64 // the time it waited
	bytesRefused      atomic.Uint64
	disconnects       atomic.Uint64
	refusedCooling    atomic.Uint64
	refusedDenied     atomic.Uint64
	handshakeFailures atomic.Uint64
	// Inbound libp2p connections refused by their remote address
	// (guard_addr.go), and address blocks cooled down.
	refusedAddrRate, refusedAddrCooling, addrCoolDowns atomic.Uint64
}

// Why a frame was refused (metric label reason).
const (
	refusedSize = iota
	refusedKind
	refusedInvalid // passed the cheap checks, refused by the engine
	refusalKinds
)

var refusalNames = [refusalKinds]string{"size", "kind", "invalid"}

// cooled is one entry of the cool-down list, in coolOrder.
type cooled struct {
	key   string
	until time.Time
}

// peerState is one peer's limiters.
type peerState struct {
	frames, bytes, strikes *rate.Limiter
	handshakes             *rate.Limiter
	from                   netip.Prefix // where a libp2p peer last connected from
}

// guard implements p2p.Guard and tcp.Guard, and vets the frames of
// contract links in their pumps.
type guard struct {
	cfg    LimitsConfig
	access accessLists
	now    func() time.Time
	// sleep waits while a peer over its rate is paced (time.Sleep; tests
	// move their clock instead).
	sleep func(time.Duration)
	log   *slog.Logger
	stats guardStats

	mu      sync.Mutex
	peers   *lruTable[string, *peerState]
	cooling map[string]time.Time // key: until
	// coolOrder holds the cool-downs in the order they were given, which
	// is the order they end (one cool_down for all): expired ones are
	// purged from its front, and the oldest dropped when it is full.
	coolOrder []cooled
	logged    time.Time
	pending   map[string]int // offences since the last summary line, by kind
	addrs     *lruTable[netip.Prefix, *addrState]
	lastAddr  netip.Prefix // the address block cooled down last (for the log)
	// lastPeer and lastPeerKey: the last libp2p peer whose frame was
	// vetted and its key, so that a frame costs no key string built anew.
	lastPeer    peer.ID
	lastPeerKey string
}

func newGuard(cfg LimitsConfig, access accessLists, now func() time.Time, log *slog.Logger) *guard {
	return &guard{cfg: cfg, access: access, now: now, sleep: time.Sleep, log: log,
		peers: newLRU[string, *peerState](maxTracked), cooling: map[string]time.Time{}, pending: map[string]int{},
		addrs: newLRU[netip.Prefix, *addrState](maxTracked)}
}

func p2pKey(p peer.ID) string           { return "p2p:" + string(p) }
func addrKey(a protocol.Address) string { return "addr:" + a.String() }
func remoteHostKey(a net.Addr) string   { return "host:" + hostOfAddr(a) }

// hostOfAddr is the IP of a remote TCP address.
func hostOfAddr(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	h, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return h
}

// coolingLocked reports whether any of keys is cooling down.
func (g *guard) coolingLocked(now time.Time, keys ...string) bool {
	for _, k := range keys {
		if until, ok := g.cooling[k]; ok {
			if now.Before(until) {
				return true
			}
			delete(g.cooling, k)
		}
	}
	return false
}

// AllowPeer implements p2p.Guard.
func (g *guard) AllowPeer(p peer.ID) bool {
	if !g.access.allowsPeerID(p) {
		g.stats.refusedDenied.Add(1)
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.coolingLocked(g.now(), p2pKey(p)) {
		g.stats.refusedCooling.Add(1)
		return false
	}
	return true
}

// AllowLink implements p2p.Guard.
func (g *guard) AllowLink(p peer.ID, a protocol.Address) error {
	if !g.access.allowsLink(p, a) {
		g.stats.refusedDenied.Add(1)
		if p != "" {
			// Refused by its address, known only now: its peer ID is
			// refused from here on (for limits.cool_down) like a denied
			// one, so it gets no connection back for gossip or the DHT.
			g.mu.Lock()
			now := g.now()
			g.coolLocked(now, p2pKey(p), now.Add(time.Duration(g.cfg.CoolDown)))
			g.mu.Unlock()
		}
		return fmt.Errorf("%w: %s", ErrDenied, a)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if now := g.now(); g.coolingLocked(now, p2pKey(p), addrKey(a)) {
		g.stats.refusedCooling.Add(1)
		if st, _ := g.peers.get(p2pKey(p)); st != nil && st.from.IsValid() {
			// A cut-off mesh identity back under a new peer ID.
			g.addrOffenceLocked(now, st.from, 1)
		}
		return fmt.Errorf("%w: %s", ErrCoolingOff, a)
	}
	return nil
}

// Frame implements p2p.Guard.
func (g *guard) Frame(p peer.ID, a protocol.Address, frame []byte) error {
	return g.frame(frame, maxP2PFrame, frameFrom{peer: p, addr: a})
}

// frameFrom says where a vetted frame came from: a libp2p peer, or
// (peer empty) the contract link key names; addr is the peer's mesh
// address.
type frameFrom struct {
	peer peer.ID
	key  string
	addr protocol.Address
}

// keyLocked is the frame's first key, the link's (g.mu held).
func (g *guard) keyLocked(f frameFrom) string {
	if f.peer == "" {
		return f.key
	}
	if f.peer != g.lastPeer || g.lastPeerKey == "" {
		g.lastPeer, g.lastPeerKey = f.peer, p2pKey(f.peer)
	}
	return g.lastPeerKey
}

// tcpGuard is the guard as transports/tcp sees it.
type tcpGuard struct{ g *guard }

func (t tcpGuard) AllowHost(remote net.Addr) bool {
	t.g.mu.Lock()
	defer t.g.mu.Unlock()
	if t.g.coolingLocked(t.g.now(), remoteHostKey(remote)) {
		t.g.stats.refusedCooling.Add(1)
		return false
	}
	return true
}

func (t tcpGuard) AllowLink(a protocol.Address) error { return t.g.AllowLink("", a) }

func (t tcpGuard) HandshakeFailed(remote net.Addr, err error) bool {
	return t.g.offence(remoteHostKey(remote), "handshake")
}

// HandshakeFailed implements p2p.Guard.
func (g *guard) HandshakeFailed(p peer.ID, err error) bool {
	return g.offence(p2pKey(p), "handshake")
}

// frame vets one frame from the peer from names (its keys: the link's,
// then its mesh address's), mtu its link's largest frame, in the link's
// reader: it waits there while the peer is over its rate. errDropped
// (wrapping p2p.ErrDropFrame) drops the frame; another error means:
// disconnect.
func (g *guard) frame(frame []byte, mtu int, from frameFrom) error {
	why := -1
	switch {
	case len(frame) == 0 || len(frame) > mtu:
		why = refusedSize
	case !protocol.Kind(frame[0]).Known():
		why = refusedKind
	}
	g.mu.Lock()
	now := g.now()
	key := g.keyLocked(from)
	st := g.stateLocked(key)
	var wait time.Duration
	if why < 0 {
		var ok bool
		if wait, ok = st.pace(now, len(frame)); !ok {
			why = refusedSize // larger than a whole byte bucket: never fits
		}
	}
	if why >= 0 {
		defer g.mu.Unlock()
		return g.refuseLocked(now, st, why, len(frame), []string{key, addrKey(from.addr)})
	}
	g.mu.Unlock()
	if wait > 0 {
		g.stats.framesPaced.Add(1)
		g.stats.pacedNanos.Add(uint64(wait))
		g.sleep(wait)
	}
	return nil
}

// pace takes the tokens for one frame of n bytes from the peer's buckets
// and returns how long its reader must wait for them (0: at once). A
// frame larger than the byte bucket can never be paced (not ok).
func (st *peerState) pace(now time.Time, n int) (wait time.Duration, ok bool) {
	f, b := st.frames.ReserveN(now, 1), st.bytes.ReserveN(now, n)
	if !f.OK() || !b.OK() {
		f.CancelAt(now)
		b.CancelAt(now)
		return 0, false
	}
	return max(f.DelayFrom(now), b.DelayFrom(now)), true
}

// refuseLocked counts a frame refused for why as a strike against the
// peer and drops it (errDropped); past limits.peer_strikes it cools the
// peer down and returns ErrOffender.
func (g *guard) refuseLocked(now time.Time, st *peerState, why, n int, keys []string) error {
	g.stats.framesRefused[why].Add(1)
	g.stats.bytesRefused.Add(uint64(n))
	if st.strikes.AllowN(now, 1) {
		return errDropped // not yet an offender
	}
	g.kickLocked(now, "frames", keys...)
	return fmt.Errorf("%w: %s frames", ErrOffender, refusalNames[why])
}

// offence counts a failed handshake against key and reports whether it is
// the first in a while (worth a log line of its own).
func (g *guard) offence(key, kind string) bool {
	g.stats.handshakeFailures.Add(1)
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	st := g.stateLocked(key)
	first := st.handshakes.TokensAt(now) >= float64(st.handshakes.Burst())
	if !st.handshakes.AllowN(now, 1) {
		g.kickLocked(now, kind, key)
	}
	return first
}

// kickLocked cools keys down and notes the offence for the summary line.
func (g *guard) kickLocked(now time.Time, kind string, keys ...string) {
	if g.coolingLocked(now, keys...) {
		// Frames read before the first kick: the same offence.
		for _, k := range keys {
			g.forgetPeerLocked(k)
		}
		return
	}
	g.stats.disconnects.Add(1)
	until := now.Add(time.Duration(g.cfg.CoolDown))
	for _, k := range keys {
		if st, _ := g.peers.get(k); st != nil && st.from.IsValid() {
			g.addrOffenceLocked(now, st.from, addrKickCost)
		}
		g.coolLocked(now, k, until)
		g.forgetPeerLocked(k)
	}
	g.pending[kind]++
	g.summaryLocked(now)
}

// summaryLocked logs the offences since the last line, at most once per
// logInterval.
func (g *guard) summaryLocked(now time.Time) {
	if len(g.pending) == 0 || now.Sub(g.logged) < logInterval {
		return
	}
	g.logged = now
	g.log.Warn("peers disconnected and cooled down for breaking the inbound limits",
		"frames", g.pending["frames"], "handshakes", g.pending["handshake"], "cooling", len(g.cooling),
		"addresses_cooled_down", g.pending["address"], "last_address", addrString(g.lastAddr),
		"cool_down", time.Duration(g.cfg.CoolDown).String())
	clear(g.pending)
}

// stateLocked returns key's limiters, making them on first use.
func (g *guard) stateLocked(key string) *peerState {
	return g.peers.touch(key, func() *peerState {
		c := g.cfg
		return &peerState{
			frames:  rate.NewLimiter(rate.Limit(c.PeerFrameRate), c.PeerFrameBurst),
			bytes:   rate.NewLimiter(rate.Limit(c.PeerByteRate), c.PeerByteRate+maxP2PFrame),
			strikes: rate.NewLimiter(rate.Limit(float64(c.PeerStrikes)/strikeWindow.Seconds()), c.PeerStrikes),
			// An honest peer fails a handshake now and then (a dying
			// connection), never dozens of times a minute.
			handshakes: rate.NewLimiter(rate.Every(time.Minute/maxHandshakeFailures), maxHandshakeFailures),
		}
	})
}

// forgetPeerLocked drops key's limiters.
func (g *guard) forgetPeerLocked(key string) { g.peers.remove(key) }

// coolLocked puts key on the cool-down list until then, first purging
// the cool-downs that ended and, if the list is full, the one that ends
// soonest: O(1) amortized, so minted peer IDs cannot make it expensive.
func (g *guard) coolLocked(now time.Time, key string, until time.Time) {
	for len(g.coolOrder) > 0 && (len(g.coolOrder) >= maxCooling || !now.Before(g.coolOrder[0].until)) {
		c := g.coolOrder[0]
		g.coolOrder[0] = cooled{}
		g.coolOrder = g.coolOrder[1:]
		if g.cooling[c.key].Equal(c.until) {
			delete(g.cooling, c.key)
		}
	}
	if len(g.coolOrder) == 0 {
		g.coolOrder = nil // let the old backing array go
	}
	g.cooling[key] = until
	g.coolOrder = append(g.coolOrder, cooled{key, until})
}

// openGuard makes the node's guard and derives the network keys.
func openGuard(cfg Config, log *slog.Logger) (g *guard, psk, tcpKey []byte, err error) {
	acc, err := newAccessLists(cfg.Access)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if psk, tcpKey, err = networkKeys(cfg.Access.NetworkKey); err != nil {
		return nil, nil, nil, fmt.Errorf("%w: access.network_key: %v", ErrConfig, err)
	}
	if psk != nil {
		log.Info("private mesh: only nodes with the network key can link; libp2p runs on TCP only (no QUIC)")
	}
	return newGuard(cfg.Limits, acc, time.Now, log.With("component", "guard")), psk, tcpKey, nil
}

// tcpAccess is what the TCP transport needs of the access settings.
type tcpAccess struct {
	g   *guard
	key []byte
}

func (a tcpAccess) guard() tcp.Guard {
	if a.g == nil {
		return nil
	}
	return tcpGuard{a.g}
}

// vetFrame runs the guard's checks on a frame of a contract link, in the
// link's pump. Shared links (a radio) carry many senders and are never
// cut off.
func (n *Node) vetFrame(l *link, frame []byte) error {
	if n.guard == nil || l.info.Shared || l.info.Peer == nil {
		return nil
	}
	return n.guard.frame(frame, max(l.info.MTU, 1), frameFrom{key: "link:" + strconv.FormatUint(uint64(l.id), 10), addr: l.addr})
}

// forged reports whether the engine refused a frame for what the peer
// sent (malformed, a bad signature, a mismatched address), not for the
// node's state or the clock: only such refusals are strikes. Refusals of
// what only the destination checks (routing.ErrEndToEnd) are not: honest
// forwarders pass such frames on, so they are not the neighbour's doing.
func forged(err error) bool {
	if errors.Is(err, routing.ErrEndToEnd) {
		return false // relayed unchecked: not the neighbour's doing
	}
	for _, e := range []error{protocol.ErrBadSignature, protocol.ErrMalformed, protocol.ErrTruncated, protocol.ErrTrailing,
		protocol.ErrUnknownKind, protocol.ErrAddressMismatch, routing.ErrBadInput} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// strike counts a frame the engine refused against keys; it reports
// whether the peer is now an offender (cooled down: disconnect it).
func (g *guard) strike(keys ...string) bool {
	g.stats.framesRefused[refusedInvalid].Add(1)
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	if g.stateLocked(keys[0]).strikes.AllowN(now, 1) {
		return false
	}
	g.kickLocked(now, "frames", keys...)
	return true
}

// frameRefused runs on the loop after the engine refused a frame from l:
// a peer whose frames keep failing the engine's checks (signatures above
// all, the expensive ones) is disconnected and cooled down like one that
// breaks the rate.
func (n *Node) frameRefused(l *link, err error) {
	if n.guard == nil || !forged(err) || l.info.Shared {
		return
	}
	if l.conn == nil {
		if n.guard.strike(p2pKey(l.peer), addrKey(l.addr)) {
			p := l.peer
			n.bg.Go(func() { _ = n.host.Disconnect(p) })
		}
		return
	}
	if l.info.Peer != nil && n.guard.strike(fmt.Sprintf("link:%d", l.id), addrKey(l.addr)) {
		l.conn.Close(fmt.Errorf("%w: invalid frames", ErrOffender))
	}
}
