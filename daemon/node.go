package daemon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/peer"

	"meshd.dev/meshd/daemon/store"
	"meshd.dev/meshd/internal/version"
	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/routing"
	"meshd.dev/meshd/rpcapi"
	contract "meshd.dev/meshd/transports/link"
	"meshd.dev/meshd/transports/p2p"
)

// Version is meshd's version, from the one source in internal/version
// (a release build stamps it with
// -ldflags "-X meshd.dev/meshd/internal/version.Version=v1.2.3").
var Version = version.String()

// maxBatch bounds how many inputs the node loop takes before it writes and
// transmits what they caused: one synced store write then covers many
// inputs (one fsync per input would cap the node at a few hundred messages
// per second).
const maxBatch = 128

// lookupConcurrency bounds parallel DHT lookups.
const lookupConcurrency = 8

// Node is a running meshd node: the routing engine driven by one goroutine
// (the node loop), the badger store and the libp2p host. It implements
// rpcapi.Node.
type Node struct {
	cfg     Config
	log     *slog.Logger
	id      *protocol.Identity
	st      *store.Store
	host    *p2p.Host
	now     func() time.Time
	started time.Time

	cmds    chan loopCmd  // run on the loop goroutine
	stopped chan struct{} // closed when the loop has exited
	closing atomic.Bool
	ctx     context.Context // ends when the node shuts down
	cancel  context.CancelFunc
	bg      sync.WaitGroup // lookups and other helpers of the loop
	lookSem chan struct{}

	// Owned by the loop goroutine.
	eng        *routing.Engine
	links      map[peer.ID]*link
	byLink     map[routing.LinkID]*link
	nextLink   routing.LinkID
	nextRef    uint64
	waiters    map[uint64]chan sendOutcome
	inflight   map[protocol.Address]bool     // DHT lookups under way
	resolved   map[peer.ID][]pendingResolved // lookups waiting for the peer's link
	dropped    uint64                        // frames the links did not take
	publishing map[uint64]*pendingPublish    // channel.publish calls waiting for the engine

	// transports are the link transports other than libp2p (TCP, LoRa);
	// linkIn carries their links' frames and ends to the loop.
	transports []contract.Transport
	linkIn     chan linkEvent
	linkList   atomic.Pointer[[]*link]  // every link up, for node.links and metrics
	givenUp    map[routing.LinkID]int   // frames windowed links did not take, for TxDone
	queuedOn   map[routing.LinkID]*link // links with frames on their send queue (p2psend.go)
	senders    map[routing.LinkID]*link // contract links with a sender (linksend.go)
	room       chan struct{}            // a contract link's sender took or refused a frame (linksend.go)
	staged     []*committing            // batches staged in the store, not synced yet (pipeline.go)
	syncErr    error                    // the first staged batch's sync failure, for good (pipeline.go)
	// gateSync, if set (tests only, on the loop), stands between a staged
	// batch's sync report and the loop: the loop sees the report when the
	// returned channel delivers it.
	gateSync func(rd *routing.Ready, done <-chan error) <-chan error
	totals   [routing.LinkLoRa + 1]linkTotals

	// Broadcast channels: the registry of joined channels, gossip's
	// validator and queues (safe for concurrent use), and the host's
	// gossip.
	chans  *channels
	gossip channelHost

	// fapp is FAPP's daemon side (fapp.go).
	fapp *fappNode

	// tools is the loop's part of the outbox, ping and path (tools.go);
	// contactsMu serialises contact writes (contacts.go).
	tools      toolsState
	contactsMu sync.Mutex
	// guard vets peers and inbound frames (guard.go).
	guard *guard
	// latency times own messages from acceptance to receipt (latency.go).
	latency *deliveryLatency
	// frIn is the frame input the loop hands the engine (frameIn).
	frIn routing.FrameReceived
	// lastSender is the loop's memory of the last inbox message's sender
	// names (messageOfNamed).
	lastSender senderNames

	// Read by API goroutines.
	snap atomic.Pointer[snapshot]
	hub  hub

	// Store upkeep (upkeep.go); lastDiskCheck is the loop's.
	upkeepStats   upkeepStats
	lastDiskCheck time.Time
	sendSpace     sendSpace // msg.send's probe (upkeep.go)

	// emb is the embedding lifecycle: New's servers, Start, Close once
	// (embed.go).
	emb embedState
}

type link struct {
	id       routing.LinkID
	kind     routing.LinkKind
	peer     peer.ID // libp2p links only
	addr     protocol.Address
	since    time.Time
	outbound bool
	stalled  atomic.Bool // frames waited on it with nothing taken; see noteWindow (read by node.links)
	// queued counts the frames on the link's send queue (libp2p) or
	// sender channel (a contract link without a window of its own) that
	// the engine has not been told were taken (p2psend.go); fullSince is
	// when they last filled its window. Owned by the loop.
	queued    int
	fullSince time.Time
	// out feeds a contract link's sender, which sets refused for every
	// frame Send refused and clears watch when it takes a frame, waking
	// the loop (linksend.go).
	out     chan []byte
	watch   atomic.Bool
	refused atomic.Int64
	// conn is the link of any kind other than libp2p, driven through the
	// link contract (see links.go); nil for libp2p links, which the host
	// drives through its events.
	conn contract.Link
	info contract.Info
	gone bool // down: events its pump still delivers are ignored
	// Counted by the daemon for libp2p links (contract links count
	// themselves); read by API goroutines.
	framesIn, framesOut, bytesIn, bytesOut atomic.Uint64
}

// sendOutcome is the loop's answer to a msg.send: the engine's ID and
// status (the caller writes them out for the API), or why not.
type sendOutcome struct {
	id     protocol.MessageID
	status routing.SendStatus
	err    error
}

// snapshot holds the figures node.info reports, refreshed by the loop after
// every batch so that API reads never wait for the loop.
type snapshot struct {
	routes, custody, links int
	dropped                uint64
	counters               routing.Counters
}

// Options are the parts of a Node that tests replace.
type Options struct {
	Logger *slog.Logger
	// Now is the wall clock (default time.Now).
	Now func() time.Time
	// Rand is the engine's randomness (default crypto/rand).
	Rand io.Reader
}

// Open prepares a node: the data directory, the identity, the store, the
// routing engine restored from the store, and the libp2p host (listening
// from here on). Run starts the loop; Close releases everything.
func Open(ctx context.Context, cfg Config, opt Options) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := opt.Now
	if now == nil {
		now = time.Now
	}
	random := opt.Rand
	if random == nil {
		random = rand.Reader
	}
	// Created durably: the key files and the database inside it are
	// synced, which is worth nothing if the directory itself is lost.
	if err := store.MkdirDurable(cfg.DataDir); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	if err := checkDataDirMode(cfg.DataDir, log); err != nil {
		return nil, err
	}
	// The store's lock comes first: a second meshd on the same data
	// directory stops here, before it touches anything.
	st, err := store.Open(filepath.Join(cfg.DataDir, "db"), store.WithLogger(log), store.WithClock(now), store.WithMinFree(cfg.Store.MinFree))
	if err != nil {
		return nil, err
	}
	id, created, err := LoadOrCreateIdentity(cfg.DataDir, nil)
	if err != nil {
		st.Close()
		return nil, err
	}
	if created {
		log.Info("created a new identity", "address", id.Address(), "file", IdentityFileName)
	}
	hostKey, hostCreated, err := LoadOrCreateHostKey(cfg.DataDir, nil)
	if err != nil {
		st.Close()
		return nil, err
	}
	if hostCreated && !created {
		// A data directory from before the host key was a key of its own:
		// the peer ID was the identity key's and is now the new key's.
		log.Warn("created a libp2p host key of its own: this node's peer ID has changed (the mesh address has not); "+
			"peers that dial it by a multiaddr ending in the old /p2p/ ID, e.g. as a bootstrap peer, need the new one from node.info",
			"file", HostKeyFileName)
	}
	recs, err := st.EngineRecords()
	switch {
	case err != nil && recs != nil && errors.Is(err, store.ErrCorrupt):
		log.Error("some stored records have damaged keys and were skipped", "err", err)
	case err != nil:
		st.Close()
		return nil, err
	}
	var caps protocol.Capabilities
	if cfg.Relay {
		// Relay mode keeps messages for offline nodes and serves the DHT;
		// the announce tells others so they can hand messages to it.
		caps = protocol.CapRelay | protocol.CapMailbox | protocol.CapDHTServer
	}
	eng, err := routing.New(routing.Config{
		Identity:         id,
		Rand:             random,
		Capabilities:     caps,
		Mailbox:          cfg.Relay,
		MailboxStampBits: uint8(cfg.Mailbox.StampBits), // validated: 0..18
		AnnounceInterval: time.Duration(cfg.Routing.AnnounceInterval),
		MessageTTL:       time.Duration(cfg.Routing.MessageTTL),
		CustodyMaxBytes:  cfg.Routing.CustodyMaxBytes,
		QueueBudget:      cfg.Limits.QueueBudget,
		NoSessions:       !cfg.Routing.Sessions,
		// The gossip validator checks freshness with the same bounds.
		FloodMaxAge: floodMaxAge,
		ClockSkew:   clockSkew,
	}, now(), recs)
	switch {
	case err != nil && eng != nil && errors.Is(err, routing.ErrCorruptRecord):
		// Damaged records are skipped, not fatal: a node that cannot start
		// keeps nothing at all. What they held (a message in custody, a
		// delivered mark) is lost; say so loudly.
		log.Error("some stored routing records are damaged and were skipped", "records", len(recs), "err", err)
	case err != nil:
		st.Close()
		return nil, fmt.Errorf("restoring the routing engine from %d records: %w", len(recs), err)
	}
	chans := newChannels(now, cfg.Channels.HistorySize)
	g, psk, tcpKey, err := openGuard(cfg, log)
	if err != nil {
		st.Close()
		return nil, err
	}
	known, knownSeen := knownPeers(st, log, now(), cfg.Bootstrap)
	host, err := p2p.New(ctx, p2p.Config{
		PSK:         psk,
		Guard:       g,
		Identity:    id,
		HostKey:     hostKey,
		ListenAddrs: cfg.Listen,
		Bootstrap:   cfg.Bootstrap,
		MDNS:        cfg.MDNS,
		SharePort:   cfg.SharePort,
		DHTMode:     cfg.DHTMode,
		Relay:       cfg.Relay,
		RelayLimits: cfg.RelayLimits.p2p(),
		Reachable:   cfg.Reachability,
		ConnLow:     cfg.Limits.ConnLow,
		ConnHigh:    cfg.Limits.ConnHigh,
		Logger:      log,
		Now:         now,
		KnownPeers:  known,
		KnownSeen:   knownSeen,
		Gossip: p2p.GossipConfig{Enabled: true, Validate: chans.validate, Deliver: chans.deliver,
			SeenTTL: floodMaxAge + clockSkew}, // gossip remembers a frame as long as it can be accepted
		AgentVersion:  agentVersion(),
		MailboxRelays: cfg.Mailbox.addrs(id.Address()),
		StaticRelays:  cfg.Mailbox.CircuitRelays,
	})
	if err != nil {
		st.Close()
		return nil, err
	}
	transports, err := openTransports(cfg, id, log, tcpAccess{g: g, key: tcpKey})
	if err != nil {
		host.Close()
		st.Close()
		return nil, err
	}
	nctx, cancel := context.WithCancel(context.Background())
	n := &Node{
		cfg: cfg, log: log, id: id, st: st, host: host, now: now, started: now(),
		cmds: make(chan loopCmd, 64), stopped: make(chan struct{}),
		ctx: nctx, cancel: cancel, lookSem: make(chan struct{}, lookupConcurrency),
		eng: eng, links: map[peer.ID]*link{}, byLink: map[routing.LinkID]*link{},
		waiters: map[uint64]chan sendOutcome{}, inflight: map[protocol.Address]bool{},
		resolved: map[peer.ID][]pendingResolved{}, publishing: map[uint64]*pendingPublish{},
		chans: chans, gossip: host, linkIn: make(chan linkEvent, linkInQueue), transports: transports, room: make(chan struct{}, 1),
		guard: g, latency: newDeliveryLatency(),
	}
	n.publishLinks()
	c := eng.Counters()
	n.snap.Store(&snapshot{routes: int(c.Routes), custody: int(c.CustodyCount), counters: c})
	n.hub.subs = map[*subscriber]struct{}{}
	if err := n.restoreChannels(); err != nil {
		cancel()
		n.closeTransports()
		host.Close()
		st.Close()
		return nil, err
	}
	if err := n.openFAPP(); err != nil {
		cancel()
		host.Close()
		st.Close()
		return nil, err
	}
	return n, nil
}

// Run drives the node until ctx ends, Close is called, or a fatal error
// (the store failing: the node cannot keep promises any more) stops it. It
// returns nil after a requested stop, and ErrRunning or ErrClosed when the
// loop already runs or the node was closed.
func (n *Node) Run(ctx context.Context) error {
	ctx, stop, err := n.emb.enterRun(ctx)
	if err != nil {
		return err
	}
	defer stop()
	defer close(n.stopped)
	n.log.Info("meshd running", "address", n.id.Address(), "peer_id", n.host.ID(), "listen", n.host.Addrs(), "tcp_listen", n.tcpAddr())
	// Whatever the restored engine has to do, and the first snapshot for
	// node.info. (The host publishes and refreshes the node's DHT address
	// record itself.)
	n.eng.Tick(n.now())
	if err := n.drain(); err != nil {
		n.shutdownLoop()
		return err
	}
	n.bg.Go(n.runPublisher)
	n.bg.Go(n.fapp.runTicker)
	n.bg.Go(n.runUpkeep)
	n.bg.Go(n.runCollector)
	for _, t := range n.transports {
		n.bg.Go(func() { n.runTransport(t) })
	}
	timer := time.NewTimer(n.eng.NextWake().Sub(n.now()))
	defer timer.Stop()
	events := n.host.Events()
	room := n.host.Room()
	for {
		// Wait for one input, then take whatever else is already waiting,
		// so that one synced write covers the whole batch.
		select {
		case <-ctx.Done():
			// What is staged is carried out once durable, so that
			// nobody waits for an answer the store already backs.
			_ = n.settle(true)
			n.shutdownLoop()
			return nil
		case ev, ok := <-events:
			if !ok {
				n.shutdownLoop()
				return errors.New("libp2p host stopped")
			}
			n.onHostEvent(ev)
		case c := <-n.cmds:
			n.runCmd(c)
		case fr := <-n.chans.in:
			n.step(routing.GossipReceived{Frame: fr})
		case ev := <-n.linkIn:
			n.onLinkEvent(ev)
		case err := <-n.headDone():
			// A synced batch is carried out at once, then the loop
			// yields: the Send callers it answered (and the readers it
			// woke) run and hand in their next requests, which join the
			// next batch instead of waiting a whole sync for the one
			// after it (docs/performance.md, "Where a message's time
			// goes").
			if err = n.headSynced(err); err == nil {
				err = n.settle(false)
			}
			if err != nil {
				n.log.Error("stopping: the store failed, so the node cannot keep what it promises", "err", err)
				n.shutdownLoop()
				return err
			}
			runtime.Gosched()
		case <-room: // reportTaken below
		case <-n.room:
		case <-timer.C:
		}
		n.takeWaiting(events, room, maxBatch-1)
		n.reportTaken()
		n.eng.Tick(n.now())
		if err := n.drain(); err != nil {
			n.log.Error("stopping: the store failed, so the node cannot keep what it promises", "err", err)
			n.shutdownLoop()
			return err
		}
		timer.Reset(max(n.eng.NextWake().Sub(n.now()), 0))
	}
}

// takeWaiting takes the inputs already waiting, at most limit of them
// (give or take one round), without blocking, so that one synced write
// covers them all. It polls each source in turn with a receive that does
// not block: one from an empty channel takes no lock, where a select over
// all of them locked every channel for every input taken. It stops at the
// first round that finds nothing, or at a closed host event channel
// (which the loop's select then sees).
func (n *Node) takeWaiting(events <-chan p2p.Event, room <-chan struct{}, limit int) {
	for limit > 0 {
		before := limit
		select {
		case ev, ok := <-events:
			if !ok {
				return
			}
			n.onHostEvent(ev)
			limit--
		default:
		}
		select {
		case c := <-n.cmds:
			n.runCmd(c)
			limit--
		default:
		}
		select {
		case fr := <-n.chans.in:
			n.step(routing.GossipReceived{Frame: fr})
			limit--
		default:
		}
		select {
		case ev := <-n.linkIn:
			n.onLinkEvent(ev)
			limit--
		default:
		}
		select {
		case <-room:
			limit--
		default:
		}
		select {
		case <-n.room:
			limit--
		default:
		}
		if limit == before {
			return
		}
	}
}

// shutdownLoop answers everyone still waiting on the loop.
func (n *Node) shutdownLoop() {
	n.closing.Store(true)
	n.cancel()
	for ref, w := range n.waiters {
		w <- sendOutcome{err: fmt.Errorf("%w: shutting down", rpcapi.ErrUnavailable)}
		delete(n.waiters, ref)
	}
	for ref, p := range n.publishing {
		p.done <- publishOutcome{err: fmt.Errorf("%w: shutting down", rpcapi.ErrUnavailable)}
		delete(n.publishing, ref)
	}
}

// Close stops the node and waits until everything it started has stopped:
// the API servers, the loop (whether Start or Run drives it; its last
// batch is synced), the helpers, the libp2p host and then the store. A
// second Close waits for the first and returns its result.
func (n *Node) Close() error {
	n.emb.closeOnce.Do(func() { n.emb.closeErr = n.shutdown() })
	return n.emb.closeErr
}

// release closes what Open opened, once the loop has returned (or never
// ran).
func (n *Node) release() error {
	n.closing.Store(true)
	n.cancel()
	errT := n.closeTransports()
	n.bg.Wait()
	n.hub.closeAll()
	// Links up until now: their peers were reachable until now.
	for p := range n.links {
		n.peerGone(p, n.now())
	}
	errH := n.host.Close()
	errS := n.st.Close()
	return errors.Join(errT, errH, errS)
}

// drain stages what the engine has to do, in the order the Ready contract
// sets: persist (synced), then transmit and notify once synced
// (pipeline.go), advance. One batch with records is in flight at a time:
// while it syncs the loop steps new inputs into the engine, and the next
// batch takes them all once the sync is reported.
//
// The synced batches are carried out before the next batch is staged. The
// other order (stage, then carry out, meant to overlap the next sync with
// the carry-out) made the sync start later, not earlier: the carry-out
// wakes every answered Send caller after the store's syncer, and Go's
// scheduler runs the most recently woken goroutine first, so the syncer
// waited about 300 us (median, 2 busy cores) behind the callers and the
// loop before its fdatasync began, against 5 us when the stage comes last
// (docs/performance.md, "Where a message's time goes").
func (n *Node) drain() error {
	// Batches whose sync reported are carried out, oldest first; a batch
	// whose sync failed stops the node, after the durable ones before it
	// were carried out (their callers get their answer).
	if err := n.settle(false); err != nil {
		return err
	}
	for len(n.staged) == 0 && n.eng.HasReady() {
		if err := n.stage(n.eng.Ready()); err != nil {
			return err
		}
		n.eng.Advance()
		// A batch without records is reported at once.
		if err := n.settle(false); err != nil {
			return err
		}
	}
	c := n.eng.Counters()
	n.snap.Store(&snapshot{routes: int(c.Routes), custody: int(c.CustodyCount), links: len(n.byLink), dropped: n.dropped, counters: c})
	return nil
}

// sendStall is how long frames may wait on a link's queue with nothing
// taken before the link counts as stalled (node.links says so and the
// log warns; noteWindow). A healthy link drains far faster; a stalled one
// is torn down by the transport's write timeout (30 s).
const sendStall = time.Second

// transmit hands frames to the links. It never waits: a peer that reads
// slowly (or paces this node with its guard) must not hold the loop, which
// serves every peer, API call and timer. The engine hands a link no more
// frames than its window: a libp2p link's send queue (p2psend.go), a
// contract link's sender channel (linksend.go), so both have room, and
// the engine keeps the rest in its own link queue until the link takes
// frames again. A frame for a link that went is dropped and counted;
// custody sends the envelope again.
func (n *Node) transmit(txs []routing.Transmit) {
	for _, tx := range txs {
		l := n.byLink[tx.Link]
		switch {
		case l == nil:
			n.dropped++
		case l.conn == nil:
			n.sendP2P(l, tx.Frame)
		default:
			n.sendContract(l, tx.Frame)
		}
	}
}

// drains notes that a frame got through to l: it no longer counts as
// stalled.
func (n *Node) drains(l *link) {
	if l.stalled.Load() {
		l.stalled.Store(false)
		n.log.Info("link drains again", "peer", l.label(), "link", l.id)
	}
}

// splitDeliveries separates direct messages from channel broadcasts.
// Without broadcasts (the usual batch) direct is ds itself.
func splitDeliveries(ds []routing.Delivery) (direct, broadcasts []routing.Delivery) {
	if !slices.ContainsFunc(ds, func(d routing.Delivery) bool { return d.Broadcast }) {
		return ds, nil
	}
	for _, d := range ds {
		if d.Broadcast {
			broadcasts = append(broadcasts, d)
		} else {
			direct = append(direct, d)
		}
	}
	return direct, broadcasts
}

func (n *Node) onEngineEvent(ev routing.Event, now time.Time) {
	if (ev.Kind == routing.EventRefused || ev.Kind == routing.EventBroadcast) && n.onPublished(ev) {
		return
	}
	if n.noteEvent(ev, now) {
		return
	}
	n.latency.note(ev, now)
	w := n.waiters[ev.Ref]
	switch ev.Kind {
	case routing.EventAccepted:
		if w != nil {
			delete(n.waiters, ev.Ref)
			w <- sendOutcome{id: ev.ID, status: ev.Status}
		}
	case routing.EventRefused:
		if w != nil {
			delete(n.waiters, ev.Ref)
			w <- sendOutcome{err: fmt.Errorf("%w: %v", rpcapi.ErrRefused, ev.Err)}
		}
	case routing.EventDelivered:
		n.publishID(rpcapi.EventDelivered, ev.ID)
	case routing.EventExpired:
		n.publishID(rpcapi.EventExpired, ev.ID)
	case routing.EventHandedOff:
		n.publishID(rpcapi.EventHandedOff, ev.ID)
	}
}

// publishID publishes an event about message id to the subscribers, if
// there are any (the ID is written out for them only).
func (n *Node) publishID(kind string, id protocol.MessageID) {
	if n.hub.listening() {
		n.hub.publish(rpcapi.Event{Kind: kind, ID: hex.EncodeToString(id[:])})
	}
}

func (n *Node) onHostEvent(ev p2p.Event) {
	now := n.now()
	switch ev := ev.(type) {
	case p2p.LinkUp:
		if old := n.links[ev.Peer]; old != nil {
			n.linkDown(old)
		}
		n.nextLink++
		l := &link{id: n.nextLink, kind: routing.LinkIP, peer: ev.Peer, addr: ev.Address, since: now, outbound: ev.Outbound,
			info: p2pInfo(ev)}
		n.links[ev.Peer] = l
		n.byLink[l.id] = l
		n.publishLinks()
		ri := routingInfo(l.id, l.info)
		ri.Peer = ev.Address                 // the hello's, also when it carried no full identity
		ri.WindowBytes = p2p.SendWindowBytes // its send queue's bytes (p2psend.go)
		n.step(routing.LinkUp{Link: ri})
		if ev.Identity != nil {
			// The neighbour's keys came with the authenticated link
			// handshake: messages to it can be sealed at once.
			n.step(routing.Resolved{Dest: ev.Address, Link: l.id, Identity: ev.Identity})
		}
		for _, p := range n.resolved[ev.Peer] {
			n.stepResolved(l, p.res)
		}
		delete(n.resolved, ev.Peer)
		p := n.peerOf(l)
		n.hub.publish(rpcapi.Event{Kind: rpcapi.EventPeerUp, Peer: &p})
		n.log.Info("link up", "peer", ev.Peer, "address", ev.Address, "link", l.id)
		n.rememberPeer(ev, now)
	case p2p.LinkDown:
		if l := n.links[ev.Peer]; l != nil {
			n.linkDown(l)
		}
		n.peerGone(ev.Peer, now)
	case p2p.Frame:
		l := n.links[ev.Peer]
		if l == nil {
			return
		}
		l.framesIn.Add(1)
		l.bytesIn.Add(uint64(len(ev.Data)))
		if n.refuseFrame(ev.Data) {
			return
		}
		if err := n.eng.Step(now, n.frameIn(l.id, ev.Data)); err != nil {
			n.log.Debug("frame refused", "peer", ev.Peer, "err", err)
			n.frameRefused(l, err)
		}
	}
}

// frameIn is the loop's one FrameReceived, filled for a frame on link:
// the engine takes it by pointer and keeps no pointer to it, so a frame
// costs no input boxed of its own.
func (n *Node) frameIn(link routing.LinkID, frame []byte) *routing.FrameReceived {
	n.frIn = routing.FrameReceived{Link: link, Frame: frame}
	return &n.frIn
}

func (n *Node) linkDown(l *link) {
	if l.conn == nil {
		delete(n.links, l.peer)
	} else {
		l.conn.Close(nil)
	}
	l.gone = true
	n.retire(l)
	delete(n.byLink, l.id)
	n.publishLinks()
	n.step(routing.LinkDown{Link: l.id})
	p := n.peerOf(l)
	n.hub.publish(rpcapi.Event{Kind: rpcapi.EventPeerDown, Peer: &p})
	n.log.Info("link down", "kind", l.kind.String(), "peer", l.label(), "address", l.addr, "link", l.id)
}

func (n *Node) step(in routing.Input) {
	if err := n.eng.Step(n.now(), in); err != nil {
		n.log.Debug("engine refused input", "input", fmt.Sprintf("%T", in), "err", err)
	}
}

// startLookup resolves a mesh address through the DHT in the background,
// connects to the node found and reports the route to the engine once the
// meshd link to it is up.
func (n *Node) startLookup(a protocol.Address) {
	if n.inflight[a] || n.closing.Load() {
		return
	}
	n.inflight[a] = true
	n.bg.Add(1)
	go func() {
		defer n.bg.Done()
		select {
		case n.lookSem <- struct{}{}:
		case <-n.ctx.Done():
			return
		}
		defer func() { <-n.lookSem }()
		ctx, cancel := context.WithTimeout(n.ctx, 30*time.Second)
		defer cancel()
		rec, err := n.host.Lookup(ctx, a)
		if err == nil {
			err = n.host.ConnectInfo(ctx, rec.AddrInfo())
			if err != nil && len(rec.Mailboxes) > 0 {
				n.handToMailboxes(rec) // mailbox.go
			}
		}
		n.enqueue(func() { n.lookupDone(a, rec, err) })
	}()
}

// lookupDone reports a lookup's result to the engine, on the loop: a route
// to a over the link to the peer the record names, once that link is up.
func (n *Node) lookupDone(a protocol.Address, rec *p2p.Record, err error) {
	delete(n.inflight, a)
	if err != nil {
		n.log.Debug("DHT lookup failed", "address", a, "err", err)
		return
	}
	res := routing.Resolved{Dest: a, Identity: rec.Identity}
	if l := n.links[rec.Peer]; l != nil {
		n.stepResolved(l, res)
		return
	}
	n.addResolved(rec.Peer, res)
}

// stepResolved gives the engine a lookup result over l, if l's peer is the
// destination. The engine takes a Resolved for a direct link to it, but a
// record is only its identity's word: any identity may name another node's
// peer, whose hello then proves another address.
func (n *Node) stepResolved(l *link, res routing.Resolved) {
	if l.addr != res.Dest {
		n.log.Debug("DHT record names another node's peer", "address", res.Dest, "peer", l.peer, "peer address", l.addr)
		return
	}
	res.Link = l.id
	n.step(res)
}

// pendingResolved is a lookup result waiting for the meshd link to its
// peer.
type pendingResolved struct {
	res routing.Resolved
	at  time.Time
}

// resolvedWait is how long a lookup result waits for its peer's link.
const resolvedWait = 2 * time.Minute

// addResolved remembers a lookup result until the link to p is up. Results
// for the same destination replace each other, and results whose link never
// came up (the handshake failed, the dial was refused) are forgotten after
// resolvedWait.
func (n *Node) addResolved(p peer.ID, res routing.Resolved) {
	now := n.now()
	for id, list := range n.resolved {
		list = slices.DeleteFunc(list, func(e pendingResolved) bool {
			return now.Sub(e.at) > resolvedWait || (id == p && e.res.Dest == res.Dest)
		})
		if len(list) == 0 {
			delete(n.resolved, id)
		} else {
			n.resolved[id] = list
		}
	}
	n.resolved[p] = append(n.resolved[p], pendingResolved{res: res, at: now})
}

// loopCmd is one request for the loop: a closure, or a msg.send, which
// carries what it needs in its sendReq (no closure per message).
type loopCmd struct {
	f    func()
	send *sendReq
}

// runCmd runs c on the loop.
func (n *Node) runCmd(c loopCmd) {
	if c.send != nil {
		n.stepSend(c.send)
		return
	}
	c.f()
}

// enqueue runs f on the loop; it gives up when the node is stopping.
func (n *Node) enqueue(f func()) bool {
	select {
	case n.cmds <- loopCmd{f: f}:
		return true
	case <-n.ctx.Done():
		return false
	}
}

// call runs f on the loop and waits for it.
func (n *Node) call(ctx context.Context, f func()) error {
	done := make(chan struct{})
	if err := n.submit(ctx, loopCmd{f: func() { f(); close(done) }}); err != nil {
		return err
	}
	_, err := awaitLoop(ctx, n.stopped, done)
	return err
}

// awaitLoop waits for the answer on ch to a request the loop took, until
// ctx ends or the loop stops. The loop answers whatever it ran before it
// stops, so once it has stopped an answer waiting on ch is the truth (a
// publish made, a call run): it is taken rather than "unavailable", which
// a client would take for a failure and repeat (TestAwaitLoopPrefersAnswer).
func awaitLoop[T any](ctx context.Context, stopped <-chan struct{}, ch <-chan T) (T, error) {
	var zero T
	select {
	case v := <-ch:
		return v, nil
	case <-ctx.Done():
		return zero, ctx.Err()
	case <-stopped:
		select {
		case v := <-ch:
			return v, nil
		default:
			return zero, fmt.Errorf("%w: shutting down", rpcapi.ErrUnavailable)
		}
	}
}

// submit hands c to the loop without waiting for it to run: a caller
// that waits for an answer c arranges (Send) wakes once, for the answer,
// not also when c has run. c never runs if the loop stops first. While
// the loop's queue has room c goes in at once, without a select over the
// context and the loop's stop.
func (n *Node) submit(ctx context.Context, c loopCmd) error {
	if n.closing.Load() {
		return fmt.Errorf("%w: shutting down", rpcapi.ErrUnavailable)
	}
	select {
	case n.cmds <- c:
		return nil
	default:
	}
	select {
	case n.cmds <- c:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-n.stopped:
		return fmt.Errorf("%w: shutting down", rpcapi.ErrUnavailable)
	}
}

func (n *Node) peerOf(l *link) rpcapi.Peer {
	p := rpcapi.Peer{PeerID: l.peer.String(), Address: l.addr.String(), Addrs: []string{}, Link: uint32(l.id), Since: l.since.UTC(), Direction: "inbound"}
	if l.conn != nil {
		p.PeerID, p.Addrs, p.Kind = "", []string{l.info.Name}, l.kind.String()
	}
	if l.outbound {
		p.Direction = "outbound"
	}
	return p
}

// messageOf turns an inbox entry into its API form.
func (n *Node) messageOf(e store.InboxEntry) rpcapi.Message {
	return n.messageOfNamed(e, nil)
}

// messageOfNamed is messageOf with the sender's address and fingerprint
// taken from last when the entry comes from the same sender (and kept
// there for the next): a batch of deliveries mostly comes from few
// senders. last is the loop's (nil: no reuse).
func (n *Node) messageOfNamed(e store.InboxEntry, last *senderNames) rpcapi.Message {
	from, fp := last.names(n, e.From, e.Sender)
	m := rpcapi.Message{
		Seq: e.Seq, ID: hex.EncodeToString(e.ID[:]), From: from,
		FromFingerprint: fp,
		Received:        e.Received.UTC(), Created: e.Created.Time(), Expires: e.Expires.Time(),
		Payload: e.Body,
	}
	if m.Payload == nil {
		m.Payload = []byte{}
	}
	if utf8.Valid(e.Body) {
		m.Text = string(e.Body)
	}
	return m
}

// senderNames holds the last sender's address and fingerprint as the API
// writes them.
type senderNames struct {
	ok     bool
	from   protocol.Address
	sender protocol.CompactIdentity
	fromS  string
	fp     string
}

// names returns from's and sender's API strings, from s when they match
// its last ones (s nil: computed).
func (s *senderNames) names(n *Node, from protocol.Address, sender protocol.CompactIdentity) (string, string) {
	if s == nil {
		return from.String(), n.fingerprint(sender)
	}
	if !s.ok || s.from != from || s.sender != sender {
		*s = senderNames{ok: true, from: from, sender: sender, fromS: from.String(), fp: n.fingerprint(sender)}
	}
	return s.fromS, s.fp
}
