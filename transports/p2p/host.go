package p2p

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"
	"github.com/libp2p/go-libp2p/p2p/host/autorelay"
	bhost "github.com/libp2p/go-libp2p/p2p/host/basic"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	circuitproto "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/proto"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"go.uber.org/fx"

	"meshd.dev/meshd/protocol"
)

// Host errors.
var (
	// ErrClosed reports a call on a closed Host.
	ErrClosed = errors.New("p2p: host closed")
	// ErrNoLink reports a Send to a peer without an up meshd link.
	ErrNoLink = errors.New("p2p: no meshd link to peer")
	// ErrBadMultiaddr reports a multiaddr that does not parse or lacks a
	// required /p2p/ component.
	ErrBadMultiaddr = errors.New("p2p: bad multiaddr")
	// ErrConfig reports an invalid Config.
	ErrConfig = errors.New("p2p: invalid config")
	// errWrongOpener reports a link stream opened by the peer with the
	// larger peer ID.
	errWrongOpener = errors.New("p2p: link stream opened by the larger peer ID (the smaller one opens)")
	// errReplaced ends a link that a newer stream from the same peer
	// replaced.
	errReplaced = errors.New("p2p: link replaced by a newer stream")
	// errTooManyReplacements: a peer replaced its link too often.
	errTooManyReplacements = errors.New("p2p: link replaced too often; keeping the current one")
)

// DefaultListenAddrs are the listen addresses of a zero Config.
var DefaultListenAddrs = []string{
	"/ip4/0.0.0.0/tcp/4001",
	"/ip4/0.0.0.0/udp/4001/quic-v1",
	"/ip6/::/tcp/4001",
	"/ip6/::/udp/4001/quic-v1",
}

// Config configures a Host. Only Identity and HostKey are required; the
// zero value of every other field is a working default.
type Config struct {
	// Identity is the node's mesh identity. It certifies HostKey in every
	// link hello and signs the DHT address records.
	Identity *protocol.Identity
	// HostKey is the libp2p host key (Ed25519): the peer ID is its hash.
	// It must not be Identity's signing key, so that no key signs in two
	// protocols. Keep it across restarts: the peer ID is what others dial.
	HostKey ed25519.PrivateKey
	// ListenAddrs are multiaddrs to listen on (default DefaultListenAddrs).
	ListenAddrs []string
	// Bootstrap are DHT bootstrap peers, multiaddrs with /p2p/<id>.
	Bootstrap []string
	// MDNS turns on LAN discovery (grandcat/zeroconf, service _meshd._udp).
	// When false nothing listens on port 5353.
	MDNS bool
	// SharePort starts the host although another process already listens
	// on one of ListenAddrs' ports (see ErrPortInUse).
	SharePort bool
	// noHopAcks plays a meshd from before hop acks on libp2p links (tests
	// of mixed versions): HopAckProtocol is not registered.
	noHopAcks bool
	// MDNSInterfaces names the interfaces mDNS uses (default: every
	// interface that is up and multicast capable).
	MDNSInterfaces []string
	// DHTMode is "auto" (default: server when AutoNAT finds the host
	// publicly reachable, else client), "client" or "server".
	DHTMode string
	// Relay turns on relay mode: DHT server, circuit relay v2 service with
	// the limits of RelayLimits, AutoNAT service for others, and
	// reachability taken as public (the operator says the host is public).
	Relay bool
	// RelayLimits bound the circuit relay service in relay mode (zero:
	// defaults; see RelayLimits).
	RelayLimits RelayLimits
	// Reachable is "auto" (default: AutoNAT finds out), "private" (the
	// operator says the host is behind NAT: it reserves a slot on a
	// circuit relay at once, without waiting for AutoNAT's verdict, which
	// never comes where every peer sees only a private address) or
	// "public". Relay mode is public.
	Reachable string
	// ConnLow and ConnHigh are the connection manager watermarks (default
	// DefaultConnLow and DefaultConnHigh).
	ConnLow, ConnHigh int
	// AgentVersion is reported in identify (default "meshd"; the daemon
	// sets "meshd/<version>").
	AgentVersion string
	// Logger receives the host's logs (default slog.Default()).
	Logger *slog.Logger
	// Now is the clock of DHT record timestamps and expiry (default
	// time.Now).
	Now func() time.Time
	// Gossip turns on gossipsub for broadcast channels (off when zero).
	Gossip GossipConfig
	// KnownPeers are peers to stay linked to from the start (remembered
	// from an earlier run): they, the bootstrap peers and every peer a
	// link comes up with are redialled with backoff while unlinked.
	KnownPeers []peer.AddrInfo
	// KnownSeen is when a link with each of KnownPeers was last up
	// (absent: now); a peer unreachable for Redial.ForgetAfter since then
	// is forgotten.
	KnownSeen map[peer.ID]time.Time
	// Redial tunes redialling (zero: defaults).
	Redial RedialConfig
	// Timeouts bounds the keepalive, the link handshake, libp2p's dials
	// and redials (zero: defaults; see Timeouts).
	Timeouts Timeouts
	// PSK, if set (32 bytes), makes the host a libp2p private network
	// (pnet): only hosts holding the same key complete a connection.
	// libp2p's QUIC cannot carry a PSK, so the host then runs on TCP only
	// and QUIC listen addresses are left out.
	PSK []byte
	// Guard, if set, vets peers, links and every frame read (see Guard).
	Guard Guard
	// MailboxRelays are the mesh addresses of the mailbox relays where
	// this node collects messages sent while it is offline; the DHT
	// record names them (at most MaxRecordMailboxes) so that senders can
	// hand messages to them. In relay mode the record also says that
	// this node runs a mailbox (RecordFlagMailbox).
	MailboxRelays []protocol.Address
	// StaticRelays are circuit relays (multiaddrs with /p2p/<id>) that
	// AutoRelay uses when the host is not publicly reachable, besides the
	// connected peers that offer the relay service.
	StaticRelays []string
}

// Event is one of LinkUp, LinkDown, Frame.
type Event interface{ isEvent() }

// LinkUp reports a meshd link that completed its handshake: Peer holds the
// host key that Identity certified (see hostCert).
type LinkUp struct {
	Peer     peer.ID
	Address  protocol.Address
	Compact  protocol.CompactIdentity
	Identity *protocol.PublicIdentity
	Outbound bool // this host opened the link stream
	// Addrs are the peer's addresses known when the link came up (the
	// connection's remote address first), without relay addresses: what
	// to remember to redial it after a restart.
	Addrs []ma.Multiaddr
	// HopAcks: both ends acknowledge envelopes hop by hop on this link
	// (the peer listed HopAckProtocol in identify; false also when
	// identify did not finish within identifyWait).
	HopAcks bool
}

// LinkDown reports the end of a link that had a LinkUp. Err says why (nil
// when the peer closed the stream in order).
type LinkDown struct {
	Peer    peer.ID
	Address protocol.Address
	Err     error
}

// Frame is one frame received on a link. Data belongs to the receiver.
type Frame struct {
	Peer    peer.ID
	Address protocol.Address
	Data    []byte
}

func (LinkUp) isEvent()   {}
func (LinkDown) isEvent() {}
func (Frame) isEvent()    {}

// PeerInfo describes a connected libp2p peer.
type PeerInfo struct {
	ID        peer.ID
	Link      bool             // a meshd link is up
	Address   protocol.Address // the mesh address, when Link
	Addrs     []string         // remote multiaddrs of the open connections
	Direction string           // "inbound" or "outbound": of the oldest connection
	Since     time.Time        // when the oldest connection opened
	Relayed   bool             // every connection goes through a relay
}

// Host is meshd's libp2p node: the link protocol, the DHT with address
// records, and mDNS. Its methods are safe for concurrent use.
type Host struct {
	cfg    Config
	log    *slog.Logger
	now    func() time.Time
	host   host.Host
	dht    *dht.IpfsDHT
	self   peer.ID
	events chan Event
	// room holds one signal: a link's writer took frames off a queue
	// WatchRoom asked about (linkroom.go).
	room   chan struct{}
	rt     *rtWatch
	mdns   *mdnsService
	gossip *gossip // nil unless Config.Gossip.Enabled
	// refusedRecords counts DHT records the validator refused;
	// refusedLog rate-limits the log lines about them.
	refusedRecords atomic.Uint64
	refusedLog     refusedLog
	redial         *redialer

	ctx    context.Context
	cancel context.CancelFunc

	republish chan struct{}
	// republishNow asks for a publish without minRepublishGap.
	republishNow chan struct{}
	// mailboxes are the mailbox relays the record names (MailboxRelays,
	// or what SetMailboxRelays chose); under mu.
	mailboxes []protocol.Address

	mu      sync.Mutex
	closing bool
	links   map[peer.ID]*link
	// linkChanged is closed (and replaced) when a link registers.
	linkChanged chan struct{}
	dialing     map[peer.ID]bool
	reopens     map[peer.ID]int
	// replaced holds, per peer, when its link was replaced by a newer
	// stream within replaceWindow.
	replaced map[peer.ID][]time.Time
	// hello is the current link hello; helloRenew is when its host
	// certificate is half spent and a new one is signed.
	helloMu    sync.Mutex
	hello      []byte
	helloRenew time.Time
	// lastIssued is the issue time of the last record published.
	lastIssued protocol.Timestamp
	publishMu  sync.Mutex // serializes PublishRecord
	wg         sync.WaitGroup
	// dials counts this host's own dials in flight (startDial): Close
	// waits for them before it closes the libp2p host.
	dials sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// New starts a host. ctx bounds only the start; Close stops the host.
func New(ctx context.Context, cfg Config) (*Host, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if cfg.Identity == nil {
		return nil, fmt.Errorf("%w: Identity is required", ErrConfig)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if len(cfg.ListenAddrs) == 0 {
		cfg.ListenAddrs = DefaultListenAddrs
	}
	if cfg.ConnLow == 0 && cfg.ConnHigh == 0 {
		cfg.ConnLow, cfg.ConnHigh = DefaultConnLow, DefaultConnHigh
	}
	if cfg.ConnLow < 0 || cfg.ConnHigh <= cfg.ConnLow {
		return nil, fmt.Errorf("%w: connection watermarks low %d, high %d: want 0 <= low < high", ErrConfig, cfg.ConnLow, cfg.ConnHigh)
	}
	mode, err := parseDHTMode(cfg.DHTMode, cfg.Relay)
	if err != nil {
		return nil, err
	}
	if cfg.Gossip.Enabled {
		if cfg.Gossip, err = cfg.Gossip.withDefaults(); err != nil {
			return nil, err
		}
	}
	if cfg.Timeouts, err = cfg.Timeouts.withDefaults(); err != nil {
		return nil, err
	}
	listen := make([]ma.Multiaddr, 0, len(cfg.ListenAddrs))
	for _, s := range cfg.ListenAddrs {
		if len(cfg.PSK) > 0 && isQUIC(s) {
			continue
		}
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("%w: listen address %q: %v", ErrBadMultiaddr, s, err)
		}
		listen = append(listen, a)
	}
	if len(cfg.PSK) > 0 && len(cfg.ListenAddrs) > 0 && len(listen) == 0 {
		// Left out, they would leave a host that listens on nothing.
		return nil, fmt.Errorf("%w: a private network (PSK) runs on TCP only, and every listen address is QUIC or WebTransport: add a /tcp one", ErrConfig)
	}
	if !cfg.SharePort {
		if err := checkPortsFree(listen); err != nil {
			return nil, err
		}
	}
	bootstrap := make([]peer.AddrInfo, 0, len(cfg.Bootstrap))
	for _, s := range cfg.Bootstrap {
		ai, err := parseP2PAddr(s)
		if err != nil {
			return nil, fmt.Errorf("bootstrap peer: %w", err)
		}
		bootstrap = append(bootstrap, ai)
	}
	if err := checkHostKey(cfg.HostKey, cfg.Identity); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	priv, err := crypto.UnmarshalEd25519PrivateKey(cfg.HostKey)
	if err != nil {
		return nil, fmt.Errorf("%w: %w: %w", ErrConfig, ErrHostKey, err)
	}

	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(resourceLimits()))
	if err != nil {
		return nil, fmt.Errorf("p2p: resource manager: %w", err)
	}
	rt := newRTWatch()
	cm, err := connmgr.NewConnManager(cfg.ConnLow, cfg.ConnHigh, connmgr.WithGracePeriod(connGracePeriod))
	if err != nil {
		rm.Close()
		return nil, fmt.Errorf("p2p: connection manager: %w", err)
	}
	opts := []libp2p.Option{
		libp2p.Identity(priv),
		libp2p.UserAgent(cmp.Or(cfg.AgentVersion, "meshd")),
		libp2p.ProtocolVersion(IdentifyProtocolVersion),
		libp2p.ListenAddrs(listen...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Security(libp2ptls.ID, libp2ptls.New),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(rtWatchConnMgr{ConnManager: cm, w: rt}),
		libp2p.EnableRelay(),
		libp2p.EnableHolePunching(),
		libp2p.EnableAutoNATv2(),
		libp2p.SwarmOpts(swarm.WithDialTimeout(cfg.Timeouts.Dial), swarm.WithDialTimeoutLocal(cfg.Timeouts.DialLocal)),
	}
	early := &earlyLink{ready: make(chan struct{})}
	defer early.fail() // New returns an error: streams that came are reset
	opts = append(opts, early.register(cfg.noHopAcks))
	if len(cfg.PSK) > 0 {
		if len(cfg.PSK) != 32 {
			return nil, fmt.Errorf("%w: PSK is %d bytes, want 32", ErrConfig, len(cfg.PSK))
		}
		opts = append(opts, libp2p.PrivateNetwork(pnet.PSK(cfg.PSK)))
	} else {
		opts = append(opts, libp2p.Transport(quic.NewTransport))
	}
	if cfg.Guard != nil {
		opts = append(opts, libp2p.ConnectionGater(gater{cfg.Guard}))
	}
	if !allLoopback(listen) {
		// UPnP / NAT-PMP only make sense on a routable interface.
		opts = append(opts, libp2p.NATPortMap())
	}
	// AutoRelay: when AutoNAT says private, reserve a slot on a connected
	// peer that runs the relay service (a meshd node in relay mode), so
	// others can reach this host through it and hole-punch (DCUtR).
	var hostRef atomic.Pointer[host.Host]
	static, err := parseStaticRelays(cfg.StaticRelays)
	if err != nil {
		rm.Close()
		cm.Close()
		return nil, err
	}
	if !cfg.Relay {
		opts = append(opts, libp2p.EnableAutoRelayWithPeerSource(func(ctx context.Context, num int) <-chan peer.AddrInfo {
			return relayCandidates(hostRef.Load(), static, num)
		},
			// meshd relays are few: one candidate is enough to start, and
			// asking the (local, cheap) peer source often finds a relay
			// soon after connecting to it.
			autorelay.WithMinCandidates(1),
			autorelay.WithMinInterval(10*time.Second),
		))
	}

	reach, err := reachabilityOpts(cfg.Reachable, cfg.Relay)
	if err != nil {
		rm.Close()
		cm.Close()
		return nil, err
	}
	opts = append(opts, reach...)
	if cfg.Relay {
		limits, err := cfg.RelayLimits.withDefaults()
		if err != nil {
			rm.Close()
			cm.Close()
			return nil, err
		}
		opts = append(opts,
			libp2p.EnableRelayService(relayv2.WithResources(relayResources(limits))),
			libp2p.EnableNATService(),
			libp2p.ForceReachabilityPublic(),
		)
	}
	lh, err := libp2p.New(opts...)
	if err != nil {
		rm.Close()
		cm.Close()
		return nil, fmt.Errorf("p2p: libp2p host: %w", err)
	}

	hostRef.Store(&lh)

	hctx, cancel := context.WithCancel(context.Background())
	h := &Host{
		cfg:         cfg,
		log:         cfg.Logger.With("component", "p2p"),
		now:         cfg.Now,
		host:        lh,
		self:        lh.ID(),
		events:      make(chan Event, eventQueueLen),
		room:        make(chan struct{}, 1),
		rt:          rt,
		ctx:         hctx,
		cancel:      cancel,
		republish:   make(chan struct{}, 1),
		links:       make(map[peer.ID]*link),
		linkChanged: make(chan struct{}),
		dialing:     make(map[peer.ID]bool),
		reopens:     make(map[peer.ID]int),
		replaced:    make(map[peer.ID][]time.Time),
	}
	// Before the link handler: a link may come up from here on.
	h.redial = newRedialer(h, cfg.Redial)
	for _, ai := range bootstrap {
		h.redial.add(ai.ID, ai.Addrs, time.Now())
		h.redial.pin(ai.ID)
	}
	for _, ai := range cfg.KnownPeers {
		h.redial.add(ai.ID, ai.Addrs, time.Now())
		h.redial.setLost(ai.ID, cfg.KnownSeen[ai.ID])
	}
	h.republishNow = make(chan struct{}, 1)
	h.mailboxes = slices.Clone(cfg.MailboxRelays)
	fail := func(err error) (*Host, error) {
		cancel()
		if h.gossip != nil {
			h.gossip.close()
		}
		if h.dht != nil {
			h.dht.Close()
		}
		lh.Close()
		return nil, err
	}
	if _, err := h.currentHello(); err != nil {
		return fail(err)
	}

	h.dht, err = dht.New(lh,
		dht.Mode(mode),
		dht.ProtocolPrefix(dhtProtocolPrefix),
		dht.Validator(record.NamespacedValidator{RecordNamespace: recordValidator{now: cfg.Now, refused: h.recordRefused}}),
		dht.BootstrapPeers(bootstrap...),
		dht.DisableProviders(),
		// Records expire after RecordLifetime anyway; do not keep others'
		// PUTs longer than a record can be valid.
		dht.MaxRecordAge(RecordLifetime+MaxRecordClockSkew),
	)
	if err != nil {
		return fail(fmt.Errorf("p2p: DHT: %w", err))
	}
	if cfg.Gossip.Enabled {
		if h.gossip, err = startGossip(h, cfg.Gossip); err != nil {
			return fail(err)
		}
	}

	sub, err := lh.EventBus().Subscribe([]any{
		new(event.EvtPeerIdentificationCompleted),
		new(event.EvtPeerProtocolsUpdated),
		new(event.EvtLocalAddressesUpdated),
	}, eventbus.BufSize(256))
	if err != nil {
		return fail(fmt.Errorf("p2p: event bus: %w", err))
	}
	early.start(h) // the link handler registered in libp2p.New serves from here on

	if cfg.MDNS {
		h.mdns = startMDNS(h, cfg.MDNSInterfaces)
	}

	if !h.redial.cfg.Off {
		h.wg.Add(1)
		go h.redial.loop()
	}
	h.wg.Add(3)
	// Peers identified before the subscription existed (the host listens
	// from libp2p.New on) would otherwise never get a link.
	for _, p := range lh.Network().Peers() {
		if ok, _ := lh.Peerstore().SupportsProtocols(p, LinkProtocol); len(ok) > 0 && h.opensTo(p) {
			h.openLink(p)
		}
	}
	go h.eventLoop(sub)
	go h.bootstrapLoop(bootstrap)
	go h.republishLoop()
	return h, nil
}

// currentHello returns the link hello, signing a new host certificate
// (valid HostCertLifetime from now) when the current one is half spent.
func (h *Host) currentHello() ([]byte, error) {
	now := h.now()
	h.helloMu.Lock()
	defer h.helloMu.Unlock()
	if h.hello != nil && now.Before(h.helloRenew) {
		return h.hello, nil
	}
	issued := protocol.TimestampOf(now)
	cert, err := appendHostCert(nil, h.cfg.Identity, h.cfg.HostKey.Public().(ed25519.PublicKey),
		issued, protocol.TimestampOf(issued.Time().Add(HostCertLifetime)))
	if err != nil {
		return nil, err
	}
	hello, err := appendHello(nil, h.cfg.Identity.Public(), cert)
	if err != nil {
		return nil, err
	}
	h.hello, h.helloRenew = hello, issued.Time().Add(HostCertLifetime/2)
	return hello, nil
}

// parseStaticRelays parses the configured circuit relays.
func parseStaticRelays(addrs []string) ([]peer.AddrInfo, error) {
	var out []peer.AddrInfo
	for _, s := range addrs {
		ai, err := peer.AddrInfoFromString(s)
		if err != nil {
			return nil, fmt.Errorf("%w: static relay %q: %v (want a multiaddr ending in /p2p/<peer ID>)", ErrConfig, s, err)
		}
		out = append(out, *ai)
	}
	return out, nil
}

// relayCandidates lists up to num relays: the configured static ones
// first, then connected peers that offer the circuit relay v2 service.
func relayCandidates(hp *host.Host, static []peer.AddrInfo, num int) <-chan peer.AddrInfo {
	ch := make(chan peer.AddrInfo, max(num, 0))
	defer close(ch)
	for _, ai := range static {
		if len(ch) == cap(ch) {
			return ch
		}
		ch <- ai
	}
	if hp == nil {
		return ch
	}
	h := *hp
	for _, p := range h.Network().Peers() {
		if len(ch) == cap(ch) {
			break
		}
		if ok, _ := h.Peerstore().SupportsProtocols(p, circuitproto.ProtoIDv2Hop); len(ok) > 0 {
			ch <- peer.AddrInfo{ID: p, Addrs: h.Peerstore().Addrs(p)}
		}
	}
	return ch
}

func parseDHTMode(s string, relay bool) (dht.ModeOpt, error) {
	switch s {
	case "", "auto":
		if relay {
			return dht.ModeServer, nil
		}
		return dht.ModeAuto, nil
	case "client":
		if relay {
			return 0, fmt.Errorf("%w: relay mode needs DHT mode server or auto, not client", ErrConfig)
		}
		return dht.ModeClient, nil
	case "server":
		return dht.ModeServer, nil
	}
	return 0, fmt.Errorf("%w: DHT mode %q: want auto, client or server", ErrConfig, s)
}

func allLoopback(addrs []ma.Multiaddr) bool {
	for _, a := range addrs {
		if !manet.IsIPLoopback(a) {
			return false
		}
	}
	return true
}

// parseP2PAddr parses a multiaddr that must end in /p2p/<peer id>.
func parseP2PAddr(s string) (peer.AddrInfo, error) {
	a, err := ma.NewMultiaddr(s)
	if err != nil {
		return peer.AddrInfo{}, fmt.Errorf("%w: %q: %v", ErrBadMultiaddr, s, err)
	}
	ai, err := peer.AddrInfoFromP2pAddr(a)
	if err != nil {
		return peer.AddrInfo{}, fmt.Errorf("%w: %q has no /p2p/<peer id> component: %v", ErrBadMultiaddr, s, err)
	}
	return *ai, nil
}

// Events returns the link events. The channel is closed when Close has
// stopped everything that sends on it. A slow reader slows the links down
// (frames wait in the streams' flow control); it never blocks Close.
func (h *Host) Events() <-chan Event { return h.events }

// emit delivers ev unless the host is closing.
func (h *Host) emit(ev Event) bool {
	select {
	case h.events <- ev:
		return true
	case <-h.ctx.Done():
		return false
	}
}

// ID returns the host's peer ID.
func (h *Host) ID() peer.ID { return h.self }

// Libp2p returns the underlying libp2p host, for protocols of other
// packages (gossipsub). Do not close it: Close does.
func (h *Host) Libp2p() host.Host { return h.host }

// Addrs returns the host's addresses (loopback included), each ending in
// /p2p/<id>.
func (h *Host) Addrs() []string {
	addrs := h.host.Addrs()
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, a.String()+"/p2p/"+h.self.String())
	}
	return out
}

// Reachability returns the AutoNAT verdict: "unknown", "public" or
// "private". In relay mode it is "public" (configured, not measured).
func (h *Host) Reachability() string {
	if h.cfg.Relay {
		return "public"
	}
	r, ok := h.host.(interface{ Reachability() network.Reachability })
	if !ok {
		return "unknown"
	}
	switch r.Reachability() {
	case network.ReachabilityPublic:
		return "public"
	case network.ReachabilityPrivate:
		return "private"
	}
	return "unknown"
}

// DHTMode returns the mode the DHT runs in now: "server" (answers queries)
// or "client". With Config.DHTMode "auto" it follows Reachability.
func (h *Host) DHTMode() string {
	if slices.Contains(h.host.Mux().Protocols(), dhtProtocolPrefix+"/kad/1.0.0") {
		return "server"
	}
	return "client"
}

// Connect dials a multiaddr ending in /p2p/<id> and returns the peer it
// names. The meshd link follows as a LinkUp event when the peer speaks it.
func (h *Host) Connect(ctx context.Context, multiaddr string) (peer.AddrInfo, error) {
	ai, err := parseP2PAddr(multiaddr)
	if err != nil {
		return peer.AddrInfo{}, err
	}
	return ai, h.ConnectInfo(ctx, ai)
}

// ConnectInfo dials a peer at the given addresses (or at addresses the
// peerstore knows).
func (h *Host) ConnectInfo(ctx context.Context, ai peer.AddrInfo) error {
	ctx, done, err := h.startDial(ctx)
	if err != nil {
		return err
	}
	defer done()
	return h.connectInfo(ctx, ai)
}

// connectInfo is ConnectInfo's dial, registered by startDial.
func (h *Host) connectInfo(ctx context.Context, ai peer.AddrInfo) error {
	if ai.ID == h.self {
		return fmt.Errorf("p2p: connect to %s: that is this host", ai.ID)
	}
	if h.hasDirectConn(ai.ID) && len(ai.Addrs) > 0 && !h.connectedVia(ai) {
		// libp2p's Connect returns at once for a connected peer; the
		// caller named an address, so check that it reaches the peer.
		return h.probeAddrs(ctx, ai)
	}
	dctx := h.directOverRelayed(ctx, ai)
	err := h.host.Connect(dctx, ai)
	if err != nil && h.crossedDial(ai.ID, err) {
		err = h.redialCrossed(dctx, ai)
	}
	if err != nil {
		if h.host.Network().Connectedness(ai.ID) == network.Connected {
			// Both sides dialled at once and the peer's connection won
			// (libp2p may fail ours mid-handshake): the peer is connected.
			return nil
		}
		return fmt.Errorf("p2p: connect to %s: %w", ai.ID, err)
	}
	return nil
}

// Disconnect closes every connection to p (its link ends with LinkDown).
func (h *Host) Disconnect(p peer.ID) error {
	return h.host.Network().ClosePeer(p)
}

// Peers lists the connected peers.
func (h *Host) Peers() []PeerInfo {
	h.mu.Lock()
	linked := make(map[peer.ID]protocol.Address, len(h.links))
	for p, l := range h.links {
		if !l.isClosed() {
			linked[p] = l.id.Address()
		}
	}
	h.mu.Unlock()
	var out []PeerInfo
	for _, p := range h.host.Network().Peers() {
		conns := h.host.Network().ConnsToPeer(p)
		if len(conns) == 0 {
			continue
		}
		pi := PeerInfo{ID: p, Relayed: true}
		pi.Address, pi.Link = linked[p]
		for i, c := range conns {
			st := c.Stat()
			pi.Addrs = append(pi.Addrs, c.RemoteMultiaddr().String())
			if i == 0 || st.Opened.Before(pi.Since) {
				pi.Since = st.Opened
				pi.Direction = st.Direction.String()
			}
			if !relayedConn(c) {
				pi.Relayed = false
			}
		}
		pi.Direction = directionName(pi.Direction)
		out = append(out, pi)
	}
	slices.SortFunc(out, func(a, b PeerInfo) int { return compareString(string(a.ID), string(b.ID)) })
	return out
}

func directionName(s string) string {
	switch s {
	case network.DirInbound.String():
		return "inbound"
	case network.DirOutbound.String():
		return "outbound"
	}
	return "unknown"
}

func compareString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// eventLoop opens links when identify finds a meshd peer and republishes
// when the listen addresses change.
func (h *Host) eventLoop(sub event.Subscription) {
	defer h.wg.Done()
	defer sub.Close()
	for {
		select {
		case <-h.ctx.Done():
			return
		case e, ok := <-sub.Out():
			if !ok {
				return
			}
			switch e := e.(type) {
			case event.EvtPeerIdentificationCompleted:
				if !slices.Contains(e.Protocols, LinkProtocol) || !h.opensTo(e.Peer) {
					continue
				}
				// A relayed connection carries a link too while it is
				// the only one; a direct one takes the link over (see
				// relayed.go).
				h.mu.Lock()
				delete(h.reopens, e.Peer)
				h.mu.Unlock()
				h.openLink(e.Peer)
			case event.EvtPeerProtocolsUpdated:
				// A peer that registered the link protocol after identify
				// announces it with an identify push.
				if slices.Contains(e.Added, LinkProtocol) && h.opensTo(e.Peer) {
					h.openLink(e.Peer)
				}
			case event.EvtLocalAddressesUpdated:
				select {
				case h.republish <- struct{}{}:
				default:
				}
				if h.mdns != nil {
					h.mdns.addrsChanged()
				}
			}
		}
	}
}

// bootstrapLoop connects to the bootstrap peers once, then asks the DHT to
// fill its routing table.
func (h *Host) bootstrapLoop(peers []peer.AddrInfo) {
	defer h.wg.Done()
	if len(peers) == 0 {
		return
	}
	var wg sync.WaitGroup
	for _, ai := range peers {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(h.ctx, dhtTimeout)
			defer cancel()
			if err := h.host.Connect(ctx, ai); err != nil {
				h.log.Warn("bootstrap peer unreachable", "peer", ai.ID, "err", err)
			}
		})
	}
	wg.Wait()
	if h.ctx.Err() == nil {
		_ = h.dht.Bootstrap(h.ctx)
	}
}

// Close stops mDNS, the links, gossip, the DHT and the libp2p host, and waits for
// every goroutine of the host. It returns the first error; later calls
// return the same.
func (h *Host) Close() error {
	h.closeOnce.Do(func() {
		h.mu.Lock()
		h.closing = true
		links := make([]*link, 0, len(h.links))
		for _, l := range h.links {
			links = append(links, l)
		}
		h.mu.Unlock()
		h.cancel()
		h.host.RemoveStreamHandler(LinkProtocol)
		if h.mdns != nil {
			h.mdns.close()
		}
		for _, l := range links {
			l.shutdown(ErrClosed)
		}
		// Our dials end (h.ctx is cancelled) before the libp2p host
		// closes: see startDial.
		h.dials.Wait()
		if h.gossip != nil {
			// Before the libp2p host: Deliver stops first, then pubsub.
			h.gossip.close()
		}
		errDHT := h.dht.Close()
		errHost := h.host.Close()
		h.wg.Wait()
		close(h.events)
		h.closeErr = errors.Join(errDHT, errHost)
	})
	return h.closeErr
}

// earlyLink registers the link protocol's handler and the hop-ack marker
// while libp2p builds the host, before it starts. The identify service
// takes the snapshot of the protocols it announces when it starts, and
// learns of later registrations only from an event its own goroutine
// subscribes to after that: a registration in between is lost, and the
// host announced neither protocol until something else (an address
// change) made identify take a new snapshot. Registered after libp2p.New
// returned, as they were, they could miss it on a loaded machine: a peer
// that identified the host then saw no link protocol (it opened no link,
// and Connect could report ErrNotMeshd) or no hop-ack marker (its link
// ran without hop acks for good: peerHopAcks is read once, at link-up;
// TestLinkUpHopAcksOnlyWithPeersThatAck failed so in CI).
type earlyLink struct {
	ready chan struct{} // closed once h is set, or New failed
	h     *Host         // nil if New failed
}

// register returns the libp2p option that registers the handlers.
func (e *earlyLink) register(noHopAcks bool) libp2p.Option {
	return libp2p.WithFxOption(fx.Invoke(func(bh *bhost.BasicHost) {
		bh.SetStreamHandler(LinkProtocol, e.handle)
		if !noHopAcks {
			// A marker only: no one opens streams of it.
			bh.SetStreamHandler(HopAckProtocol, func(s network.Stream) { _ = s.Reset() })
		}
	}))
}

// handle serves a link stream once the Host is up; a stream that came
// before waits for it (New is nearly done: libp2p listens from its start).
func (e *earlyLink) handle(s network.Stream) {
	<-e.ready
	if e.h == nil {
		_ = s.Reset()
		return
	}
	e.h.handleStream(s)
}

// start lets link streams reach h.
func (e *earlyLink) start(h *Host) {
	e.h = h
	close(e.ready)
}

// fail releases the streams that wait when New did not get to start.
func (e *earlyLink) fail() {
	select {
	case <-e.ready:
	default:
		close(e.ready)
	}
}
