package routing

import (
	"bytes"
	"cmp"
	"crypto/cipher"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"

	"meshd.dev/meshd/protocol"
)

// link is the engine's state for one link.
type link struct {
	// The fields that a received frame and the Ready after it touch come
	// first (Engine's comment): the ID, the path request bucket, the
	// adverts, the reassembler, the window and the queue.
	info LinkInfo
	// preqIn and preqOut limit the path requests it brings and is sent
	// (pathreq.go).
	preqIn tokenBucket
	// Destinations waiting to be advertised on this link, nearest first.
	adverts []advertReq
	// reasm reassembles a radio's fragments within a budget of its own, so
	// fragments from other links cannot evict them (nil: not yet needed).
	reasm    *protocol.Reassembler
	inflight int
	queue    linkQueue
	// Advertisement budget (token bucket, bytes).
	tokens   float64
	refilled time.Time
	// budget is the share of the duty cycle's hourly airtime left, from
	// LinkBudget (budgetKnown false: never reported, the whole budget).
	budget      float64
	budgetKnown bool
	preqOut     tokenBucket
	// inflightBytes are the bytes of the frames in flight, sizes their
	// lengths, oldest first (only with a WindowBytes; window.go).
	inflightBytes int
	sizes         []int
	// sealedRate limits the sealed-sender envelopes it brings (quota.go).
	sealedRate tokenBucket
	// floodBytes is what its pending rebroadcasts hold (flood.go).
	floodBytes int
	// ackBytes are the envelopes sent on it that wait for their hop ack
	// and are neither queued nor handed (queuebudget.go).
	ackBytes int
	// sessionRate limits the session inits it brings (session.go).
	sessionRate tokenBucket
	// sending lists what a windowed link was handed and has not reported
	// sent (TxDone), oldest first, so a hop-ack timeout starts when its
	// frame is on the air.
	sending []handedItem
}

// handedItem is one queue item handed to a windowed link: how many frames
// it took (fragments), and the hop-ack wait it starts once sent.
type handedItem struct {
	frames int
	key    envKey
	size   int
	ack    bool
}

type advertReq struct {
	dest Address
	hops uint8
	// reply marks an answer to a path request.
	reply bool
	// withKey attaches the destination's KEM key even on a link whose
	// adverts are normally compact (a path request asked for it).
	withKey bool
	// to, for an answer on a shared link, is the one neighbour that
	// passed the request on (hop-wrapped); zero broadcasts.
	to Address
}

// ackWait is an envelope sent on a hop-ack link, waiting for its ack.
type ackWait struct {
	link     LinkID
	to       Address
	frame    []byte
	dest     Address
	tries    int
	deadline time.Time // zero until the frame is handed to the link (windowed: until sent)
	handed   bool      // handed to a windowed link, waiting for its TxDone
	from     owner     // whose envelope it is (quota.go)
	// held is what the queue budget counts for it: its frame's length
	// while it is neither queued nor handed (deadline set), else zero.
	held int
}

// pathOrigin remembers where a forwarded path request came from, so the
// answer can travel back: the first copy passed on, and the copies with
// more hops left passed on again after it (pathreq.go).
type pathOrigin struct {
	id      [protocol.PathRequestIDSize]byte // the order of answers
	target  Address
	wantKey bool
	expires time.Time
	// hasSeq and seq: the request wants sequence number seq or newer.
	hasSeq bool
	seq    uint32
	back   pathBack
	more   []pathBack // with back, at most the hop limit
}

// pathBack is where one copy of a path request came from: its link, and
// on a shared link the neighbour that passed it on (the request's
// forwarder; zero if the request did not say).
type pathBack struct {
	link LinkID
	from Address
}

// pendingFlood is a scheduled rebroadcast of a channel frame on one link.
type pendingFlood struct {
	key   [16]byte
	link  LinkID
	frame []byte
	due   time.Time
	heard int
}

// Engine is the routing engine. It is not safe for concurrent use: the
// daemon drives it from one goroutine, the simulator from its event loop.
type Engine struct {
	// The fields every input touches come first, so that a Step touches
	// few cache lines of an engine that is not in a cache (a simulator
	// runs thousands of engines): the time, the link memo and list, the
	// Ready being built and the collections HasReady and NextWake look at,
	// the path request state (most frames of a busy radio mesh are path
	// requests) and the counters. The rest, the configuration included,
	// follows.
	now time.Time
	// memo is the link link() found last, by ID: next to now, which every
	// input touches first, so that finding the link of a frame touches no
	// other memory. relist clears it.
	memo   *link
	memoID LinkID
	// linkList holds the links of links in ID order. It is replaced, never
	// changed in place, when a link comes or goes, so a loop over it
	// survives a link change.
	linkList []*link

	rd  Ready
	ops []storeOp // record writes and deletes, in order, for the next Ready
	// sessDirty: responder sessions whose state changed since the last
	// Ready, written once each when it is collected (session.go).
	sessDirty []protocol.PathLabel
	post      []envKey // forwarder custody to release at Advance

	sessions  map[protocol.PathLabel]*sessEnd // route sessions (session.go, session_relay.go)
	hopAcks   map[envKey]*ackWait
	passive   map[passiveKey]*passiveWait
	floods    map[[16]byte][]*pendingFlood
	custody   *custodyStore
	reasm     *protocol.Reassembler
	table     *table
	pathReqs  map[uint64]pathOrigin // by pathReqKey
	seen      *seenCache
	floodSeen *floodSeen
	relaySeen *floodSeen // frames of channels not joined (flood.go)
	delivered *deliveredSet
	channels  map[protocol.ChannelID]protocol.ChannelKey
	scoped    map[protocol.ChannelID]bool // channels only members relay (flood.go)

	// deliveredOrder is the order of the latest delivered record
	// (deliveredKey); restored as the greatest found.
	deliveredOrder uint64

	nextAnnounce time.Time
	nextSweep    time.Time
	preq         pathReqState
	counters     Counters

	cfg   Config
	id    *protocol.Identity
	self  Address
	links map[LinkID]*link

	receipts *receiptCache
	echo     tokenBucket // echo requests answered (echo.go)
	stamps   offerStamps // custody offer stamps (offerstamp.go)

	ownSeq      uint32
	ownAnnounce *protocol.Announce

	opLast   map[string]struct{} // collapseOps' scratch: the keys met
	jitBuf   [8]byte             // jitter's draw: a local handed to the random source would escape
	reported Counters

	// restoring holds restored forwarded records until every own one is in.
	restoring     []*custodyRec
	restoringKeys map[envKey]struct{}

	// Route sessions (session.go, session_relay.go).
	byDest     map[Address]protocol.PathLabel // sessions this node started, by destination
	relays     map[protocol.PathLabel]*relayEntry
	resetRetry map[Address]time.Time  // last immediate retry after a reset, by peer
	resetSent  map[resetKey]time.Time // last reset per label and link (resetOnce)
	halfOpen   int
	relayBy    map[owner]relayCount // session_relay.go: per-neighbour shares
	lastNumber uint64
	// reservedNumber: numbers up to it may have been issued (msgnum).
	reservedNumber uint64

	// sessLapsed counts handshakes in a row without accept by peer, and
	// noSessions holds peers whose messages go as envelopes until then
	// (session_compat.go).
	sessLapsed map[Address]lapses
	noSessions map[Address]time.Time
	// schedule2 holds peers that announce key schedule 3 but whose
	// handshakes lapsed: they get inits in modes 1 and 2 until then.
	schedule2 map[Address]time.Time

	// atRest encrypts custody bodies that are not envelopes yet.
	atRest cipher.AEAD
	// frag names fragment groups after their frame (fragrepair.go).
	frag fragMAC

	// held is what the node holds for its links, in bytes: their queues,
	// what windowed links were handed and have not reported done, and the
	// envelopes sent that wait for a hop ack (queuebudget.go).
	held int
	// shedScratch lists the links to shed from (shedOverBudget).
	shedScratch []*link
}

// New creates an engine at time now. Records persisted by an earlier run
// (custody, delivered IDs, the announce sequence) are restored from
// restore; corrupt records are skipped and reported in the error, which is
// informational: the engine is usable whenever it is not nil.
func New(cfg Config, now time.Time, restore []Record) (*Engine, error) {
	if err := cfg.applyDefaults(); err != nil {
		return nil, err
	}
	e := &Engine{
		cfg:       cfg,
		id:        cfg.Identity,
		self:      cfg.Identity.Address(),
		now:       now,
		links:     make(map[LinkID]*link),
		table:     newTable(cfg.MaxRoutes),
		seen:      newSeenCache(cfg.SeenCacheSize),
		floodSeen: newFloodSeen(cfg.SeenCacheSize, now, cfg.FloodMaxAge),
		relaySeen: newFloodSeen(cfg.SeenCacheSize, now, cfg.FloodMaxAge),
		delivered: newDeliveredSet(cfg.MaxDelivered),
		custody:   newCustodyStore(newCustodyQuota(cfg.Identity.Address(), limitsOf(&cfg))),
		reasm:     protocol.NewReassembler(protocol.ReassemblerConfig{}),
		channels:  make(map[protocol.ChannelID]protocol.ChannelKey),
		scoped:    make(map[protocol.ChannelID]bool),
		floods:    make(map[[16]byte][]*pendingFlood),
		pathReqs:  make(map[uint64]pathOrigin),
		hopAcks:   make(map[envKey]*ackWait),
		receipts:  newReceiptCache(receiptCacheSize),
		sessions:  make(map[protocol.PathLabel]*sessEnd),
		byDest:    make(map[Address]protocol.PathLabel),
		relays:    make(map[protocol.PathLabel]*relayEntry),
		relayBy:   make(map[owner]relayCount),
		passive:   make(map[passiveKey]*passiveWait),
		atRest:    atRestKey(cfg.Identity),
		frag:      newFragMAC(cfg.Identity),
		preq:      pathReqState{seen: newIDSet(cfg.Identity)},
	}
	e.table.evicted = e.evicted
	err := e.restore(restore)
	e.newOwnAnnounce()
	e.nextSweep = now.Add(e.sweepInterval())
	return e, err
}

// Address is the node's own mesh address.
func (e *Engine) Address() Address { return e.self }

// Warm reads the parts of the engine that a received frame and the
// Ready after it touch first (its time, its first link's path request
// bucket and queue, the Ready being built, the counters, the path
// request dedup table) and returns a value of no meaning. It changes
// nothing. A simulator that steps thousands of engines, none of them in
// a cache, calls it for all the receivers of a frame before stepping
// any: the loads of all of them then overlap, where each Step would
// wait for its own, one after the other.
func (e *Engine) Warm() uint64 {
	v := uint64(e.memoID) + uint64(len(e.rd.Transmits)) + e.counters.FramesIn + e.counters.PathRequestsIn +
		uint64(len(e.preq.seen.slots)) + uint64(len(e.ops)) + uint64(len(e.sessDirty))
	if l := e.memo; l != nil {
		v += uint64(l.info.MTU) + uint64(len(l.adverts)) + uint64(len(l.queue.q[0]))
		if l.preqIn.primed {
			v++
		}
	}
	return v
}

// Counters returns a copy of the counters.
func (e *Engine) Counters() Counters {
	e.updateGauges()
	return e.counters
}

func (e *Engine) sweepInterval() time.Duration {
	return min(max(e.cfg.RouteTTL/16, 10*time.Second), 5*time.Minute)
}

func (e *Engine) advance(now time.Time) {
	if now.After(e.now) {
		e.now = now
	}
}

// frameReceived handles a FrameReceived (Step takes it by value or, so
// that a caller with many frames need not box each one, by pointer).
func (e *Engine) frameReceived(in *FrameReceived) error {
	l := e.link(in.Link)
	if l == nil {
		return fmt.Errorf("frame on unknown link %d: %w", in.Link, ErrBadInput)
	}
	e.counters.FramesIn++
	e.counters.BytesIn += uint64(len(in.Frame))
	return e.handleFrame(l, in.Frame, in.SNR, in.HasSNR, false)
}

// Step feeds one input to the engine at time now. Bad input (an unknown
// link, a malformed frame) is counted and ignored; the returned error says
// what was wrong, for logging, and never means the engine is unusable.
func (e *Engine) Step(now time.Time, in Input) error {
	e.advance(now)
	switch in := in.(type) {
	case LinkUp:
		return e.linkUp(in.Link)
	case LinkDown:
		return e.linkDown(in.Link)
	case FrameReceived:
		return e.frameReceived(&in)
	case *FrameReceived:
		if in == nil {
			return fmt.Errorf("nil *FrameReceived: %w", ErrBadInput)
		}
		return e.frameReceived(in)
	case TxDone:
		if l := e.link(in.Link); l != nil {
			l.done(max(in.Frames, 1))
			e.sent(l, max(in.Frames, 1))
		}
		return nil
	case LinkBudget:
		return e.linkBudget(in)
	case SendRequest:
		return e.send(in)
	case *SendRequest:
		if in == nil {
			return fmt.Errorf("nil *SendRequest: %w", ErrBadInput)
		}
		return e.send(*in)
	case Broadcast:
		return e.broadcast(in)
	case JoinChannel:
		e.channels[in.Key.ID()] = in.Key
		return nil
	case LeaveChannel:
		delete(e.channels, in.Channel)
		return nil
	case ScopeChannel:
		if in.Scoped {
			e.scoped[in.Channel] = true
		} else {
			delete(e.scoped, in.Channel)
		}
		return nil
	case GossipReceived:
		e.counters.FramesIn++
		e.counters.BytesIn += uint64(len(in.Frame))
		return e.handleChannel(nil, in.Frame, 0, false)
	case Resolved:
		return e.resolved(in)
	case MailboxFound:
		return e.mailboxFound(in)
	case nil:
		return fmt.Errorf("nil input: %w", ErrBadInput)
	}
	return fmt.Errorf("unknown input %T: %w", in, ErrBadInput)
}

// Tick tells the engine that time passed; it re-announces, retries
// custody, expires state and sends scheduled rebroadcasts.
func (e *Engine) Tick(now time.Time) {
	e.advance(now)
	now = e.now
	if !now.Before(e.nextAnnounce) {
		e.newOwnAnnounce()
		for _, l := range e.sortedLinks() {
			e.queueAdvert(l, advertReq{dest: e.self})
		}
	}
	// Hop-ack timeouts first: a failed hop puts its envelope back into
	// custody due now, which the custody pass then handles in this Tick.
	e.tickHopAcks()
	e.tickPassive()
	e.tickCustody()
	e.tickFloods()
	if !now.Before(e.nextSweep) {
		e.sweep()
		e.nextSweep = now.Add(e.sweepInterval())
	}
	e.reasm.Expire(now)
	for _, l := range e.linkList {
		if l.reasm != nil {
			l.reasm.Expire(now)
		}
	}
}

// NextWake returns the earliest time at which Tick has work to do. The
// simulator asks after every input of thousands of engines, so empty
// collections are skipped before ranging over them (starting a map
// iteration costs a random draw and a visit to the map's memory).
func (e *Engine) NextWake() time.Time {
	t := e.nextAnnounce
	earlier := func(u time.Time) {
		if !u.IsZero() && u.Before(t) {
			t = u
		}
	}
	earlier(e.nextSweep)
	earlier(e.custody.nextDue())
	if len(e.hopAcks) > 0 {
		for _, w := range e.hopAcks {
			earlier(w.deadline)
		}
	}
	if len(e.passive) > 0 {
		earlier(e.nextPassive())
	}
	if len(e.floods) > 0 {
		for _, ps := range e.floods {
			for _, p := range ps {
				earlier(p.due)
			}
		}
	}
	if u, ok := e.reasm.NextExpiry(); ok {
		earlier(u)
	}
	for _, l := range e.linkList {
		if l.reasm != nil {
			if u, ok := l.reasm.NextExpiry(); ok {
				earlier(u)
			}
		}
		earlier(e.advertReadyAt(l))
	}
	if t.Before(e.now) {
		return e.now
	}
	return t
}

// Ready returns what the outside must do now (see the Ready type for the
// order). Call Advance when it is done.
func (e *Engine) Ready() Ready {
	if len(e.sessions) > 0 {
		e.flushSessionAcks()
	}
	for _, l := range e.sortedLinks() {
		e.drainAdverts(l)
		e.drainQueue(l)
	}
	e.flushSessionState()
	e.collapseOps()
	rd := e.rd
	e.rd = Ready{}
	e.updateGauges()
	if e.counters != e.reported {
		// The engine's own copy, not a new one: a busy simulation calls
		// Ready millions of times, and the struct is large.
		e.reported = e.counters
		rd.Counters = &e.reported
	}
	return rd
}

// storeOp is one write (or delete, if del) of a persisted record.
type storeOp struct {
	key        string
	val        []byte
	del        bool
	superseded bool // collapseOps: a later op names the same key
}

func (e *Engine) persist(key string, val []byte) { e.ops = append(e.ops, storeOp{key: key, val: val}) }
func (e *Engine) del(key string)                 { e.ops = append(e.ops, storeOp{key: key, del: true}) }

// recordKey is "<kind>/<k in hex>", built in one allocation (a hex string
// and a concatenation took two): a message's custody record is written
// and deleted under it.
func recordKey(kind byte, k envKey) string {
	var b [2 + 2*len(k)]byte
	b[0], b[1] = kind, '/'
	hex.Encode(b[2:], k[:])
	return string(b[:])
}

// collapseOps turns the record operations since the last Ready into
// Persist and Deletes: the last operation on a key wins, so the two lists
// never name the same key and may be applied in any order.
func (e *Engine) collapseOps() {
	if len(e.ops) == 0 {
		return
	}
	if e.opLast == nil {
		e.opLast = map[string]struct{}{}
	}
	seen := e.opLast // scratch, empty between calls
	defer e.dropOpLast()
	// Backwards, so that a key's first op met is its last: one map
	// operation per op (an insert that leaves the map's length as it was
	// found the key), where a forward pass needed three.
	sets, dels := 0, 0
	for i := len(e.ops) - 1; i >= 0; i-- {
		op := &e.ops[i]
		n := len(seen)
		seen[op.key] = struct{}{}
		switch {
		case len(seen) == n:
			op.superseded = true
		case op.del:
			dels++
		default:
			sets++
		}
	}
	e.rd.Deletes = slices.Grow(e.rd.Deletes, dels)
	e.rd.Persist = slices.Grow(e.rd.Persist, sets)
	for _, op := range e.ops {
		if op.superseded {
			continue
		}
		if op.del {
			e.rd.Deletes = append(e.rd.Deletes, op.key)
		} else {
			e.rd.Persist = append(e.rd.Persist, Record{Key: op.key, Value: op.val})
		}
	}
	clear(e.ops)
	e.ops = e.ops[:0]
}

// opLastMax is the most keys collapseOps' scratch map keeps room for:
// clearing a map costs what it once held, so after a bigger batch it is
// dropped rather than cleared, and a big batch does not tax every later
// one.
const opLastMax = 4096

// dropOpLast empties collapseOps' scratch map, or drops it if it grew past
// opLastMax.
func (e *Engine) dropOpLast() {
	if len(e.opLast) > opLastMax {
		e.opLast = nil
		return
	}
	clear(e.opLast)
}

// HasReady reports whether Ready would return anything.
func (e *Engine) HasReady() bool {
	if !e.rd.Empty() || len(e.ops) > 0 || len(e.sessDirty) > 0 {
		return true
	}
	if len(e.sessions) > 0 {
		for _, se := range e.sessions {
			if se.ackDue {
				return true
			}
		}
	}
	for _, l := range e.linkList {
		if (l.queue.len() > 0 && l.fits()) || (len(l.adverts) > 0 && e.advertReadyAt(l).IsZero()) {
			return true
		}
	}
	return false
}

// Advance confirms that the last Ready was carried out.
func (e *Engine) Advance() {
	for _, k := range e.post {
		if r := e.custody.get(k); r != nil && !r.origin && !r.keepsCopy() {
			e.custody.remove(k)
			e.del(custodyKey(k))
			e.counters.CustodyReleased++
		}
	}
	e.post = e.post[:0]
}

func (e *Engine) updateGauges() {
	c := &e.counters
	c.Routes = uint64(e.table.routes)
	c.CustodyCount = uint64(len(e.custody.recs))
	c.CustodyBytes = uint64(e.custody.bytes)
	c.SeenEntries = uint64(e.seen.len() + e.floodSeen.len() + e.relaySeen.len())
	c.PathRequestsPending = uint64(len(e.pathReqs))
	c.QueuedFrames, c.QueuedBytes = 0, 0
	c.QueueHeldBytes = uint64(e.held)
	for _, l := range e.linkList {
		c.QueuedFrames += uint64(l.queue.len())
		c.QueuedBytes += uint64(l.queue.bytes)
	}
}

// sortedLinks returns the links in ID order. The slice is shared: callers
// must not change it.
func (e *Engine) sortedLinks() []*link { return e.linkList }

// link returns link id, or nil. A node has few links: a look through the
// list touches less memory than the map, which matters to a simulator
// running thousands of engines.
func (e *Engine) link(id LinkID) *link {
	if e.memo != nil && e.memoID == id {
		return e.memo
	}
	var found *link
	if len(e.linkList) > 8 {
		found = e.links[id]
	} else {
		for _, l := range e.linkList {
			if l.info.ID == id {
				found = l
				break
			}
		}
	}
	if found != nil {
		e.memo, e.memoID = found, id
	}
	return found
}

// relist rebuilds linkList from links (a new slice: see linkList).
func (e *Engine) relist() {
	out := make([]*link, 0, len(e.links))
	for _, l := range e.links {
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b *link) int { return cmp.Compare(a.info.ID, b.info.ID) })
	e.linkList = out
	e.memo = nil
}

func (e *Engine) linkUp(info LinkInfo) error {
	info.applyDefaults()
	if err := info.validate(); err != nil {
		return err
	}
	l := e.links[info.ID]
	fresh := l == nil
	if fresh {
		l = &link{tokens: float64(e.cfg.AnnounceBurst), refilled: e.now}
		l.queue.total = &e.held
		e.links[info.ID] = l
	}
	if !fresh && info.Window == 0 && l.info.Window > 0 {
		e.windowWithdrawn(l)
	}
	l.info = info
	if fresh {
		e.relist()
	}
	l.queue.limit = info.QueueBytes
	// Announce ourselves on the new link right away.
	e.queueAdvert(l, advertReq{dest: e.self})
	if fresh {
		// Tell the new neighbours what we can reach (nearest first, within
		// the link's budget): announces only travel when they are new, so
		// without this a neighbour would learn our routes only at each
		// destination's next periodic announce.
		for _, d := range e.table.sortedDests() {
			e.propagate(d, l)
		}
	}
	// A known peer is a one-hop route already; its announce will follow.
	if !info.Peer.IsZero() && info.Peer != e.self {
		e.addDirect(l, info.Peer)
	}
	return nil
}

// addDirect installs a route to a neighbour that the transport
// authenticated, until its own announce arrives.
func (e *Engine) addDirect(l *link, peer Address) {
	d := e.table.entry(peer, e.linkCost(l))
	if d == nil {
		return
	}
	c := candidate{
		link: l.info.ID, via: peer, seq: d.seq, adv: 0, metric: e.linkCost(l),
		hops: 1, expires: e.now.Add(e.cfg.RouteTTL), external: true,
	}
	e.routeChanged(d, d.update(c, e.now))
}

func (e *Engine) linkDown(id LinkID) error {
	l := e.links[id]
	if l == nil {
		return fmt.Errorf("link down: unknown link %d: %w", id, ErrBadInput)
	}
	delete(e.links, id)
	e.relist()
	e.counters.QueueDrops += uint64(len(l.queue.clear()))
	l.addInflight(-l.inflightBytes) // no longer the node's to hold
	e.relaysLinkDown(id)            // session_relay.go: resets towards initiators
	for _, d := range e.table.sortedDests() {
		e.routeChanged(d, d.dropLink(id, Address{}, e.now))
	}
	// Envelopes waiting for a hop ack on this link go back to custody.
	for _, id := range sortedIDs(e.hopAcks) {
		// An earlier key's failure may have sent its envelope on at
		// once and displaced this one from another link's queue.
		if w, ok := e.hopAcks[id]; ok && w.link == l.info.ID {
			e.dropWait(id)
			e.ackFailed(id, w)
		}
	}
	for key, ps := range e.floods {
		ps = slices.DeleteFunc(ps, func(p *pendingFlood) bool { return p.link == id })
		if len(ps) == 0 {
			delete(e.floods, key)
		} else {
			e.floods[key] = ps
		}
	}
	return nil
}

// linkCost is the metric one hop over l adds: a fixed hop cost, the time a
// 256-byte frame spends on the link (in units of 10 ms, so LoRa hops cost
// far more than IP hops), and the operator's extra cost.
func (e *Engine) linkCost(l *link) uint16 {
	const hop = 16
	airtime := 256 * 8 * 100 / max(l.info.Bitrate, 1) // 10 ms units
	return satAdd(satAdd(hop, uint16(min(airtime, 4096))), l.info.Cost)
}

func satAdd(a, b uint16) uint16 {
	if a == MetricInfinite || b == MetricInfinite || uint32(a)+uint32(b) >= MetricInfinite {
		return MetricInfinite - 1
	}
	return a + b
}

// emit queues a frame for a link. For a unicast frame on a shared link it
// adds the next-hop header.
func (e *Engine) emit(l *link, to Address, frame []byte, pri Priority) bool {
	if l.info.Shared && !to.IsZero() {
		frame = protocol.AppendHop(make([]byte, 0, 17+len(frame)), to, frame)
	}
	ok := e.enqueue(l, qitem{frame: frame, to: to, pri: pri})
	if !ok {
		e.counters.QueueDrops++
	}
	return ok
}

// drainQueue moves frames from a link's queue into Ready, as far as the
// link's window allows, fragmenting frames over the MTU.
func (e *Engine) drainQueue(l *link) {
	for l.fits() {
		it, ok := l.queue.pop()
		if !ok {
			return
		}
		one := [1][]byte{it.frame} // no allocation for an unfragmented frame
		frames := one[:]
		if len(it.frame) > l.info.MTU {
			var err error
			frames, err = protocol.Split(it.frame, l.info.MTU, e.frag.id(it.frame))
			if err != nil {
				e.counters.QueueDrops++
				continue
			}
			e.counters.Fragments += uint64(len(frames))
		}
		for _, f := range frames {
			e.rd.Transmits = append(e.rd.Transmits, Transmit{Link: l.info.ID, To: it.to, Frame: f, Priority: it.pri})
			e.counters.FramesOut++
			e.counters.BytesOut += uint64(len(f))
		}
		l.handed(frames)
		h := handedItem{frames: len(frames)}
		if it.hasRelease {
			if w := e.hopAcks[it.release]; w != nil && w.link == l.info.ID {
				if l.info.Window > 0 { // the timeout starts at TxDone (sent)
					w.handed = true
					h.key, h.size, h.ack = it.release, len(it.frame), true
				} else {
					e.awaitAck(w, e.now.Add(e.ackTimeout(l, len(it.frame))))
				}
			} else if l.info.Kind != LinkLoRa && !l.info.HopAcks {
				e.post = append(e.post, it.release)
			}
		}
		if l.info.Window > 0 {
			l.sending = append(l.sending, h)
		}
	}
}

// sent takes n frames a windowed link reported sent off its list, oldest
// first, and starts the hop-ack timeout of each envelope now fully on the
// air.
func (e *Engine) sent(l *link, n int) {
	for n > 0 && len(l.sending) > 0 {
		h := &l.sending[0]
		take := min(n, h.frames)
		h.frames -= take
		n -= take
		if h.frames > 0 {
			return
		}
		if w := e.hopAcks[h.key]; h.ack && w != nil && w.link == l.info.ID && w.handed {
			w.handed = false
			e.awaitAck(w, e.now.Add(e.ackTimeout(l, h.size)))
		}
		l.sending[0] = handedItem{}
		l.sending = l.sending[1:]
	}
}

// ackTimeout is how long to wait for a hop ack: the frame's airtime, the
// ack's, and slack for the neighbour's queue.
func (e *Engine) ackTimeout(l *link, n int) time.Duration {
	air := time.Duration(int64(n+64) * 8 * int64(time.Second) / int64(max(l.info.Bitrate, 1)))
	return 2*air + 2*time.Second
}

// randBytes fills b from Config.Rand. It fails closed: when the source
// fails, b is zeroed and the error (wrapping ErrRandom) goes to the caller,
// which must not use b; anything that needs unpredictable bytes (message
// IDs, KEM randomness) then does not happen. A value derived
// from the clock instead would make message IDs predictable, and anyone
// who predicts an ID could squat it or link it.
func (e *Engine) randBytes(b []byte) error {
	if _, err := io.ReadFull(e.cfg.Rand, b); err != nil {
		clear(b)
		e.counters.RandomFailures++
		return fmt.Errorf("%w: %v", ErrRandom, err)
	}
	return nil
}

// jitter returns a duration in [0, d). Jitter only spreads timers; it
// protects nothing, so with a broken source it is 0 (timers stay exact)
// rather than an error for every caller.
func (e *Engine) jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	if e.randBytes(e.jitBuf[:]) != nil {
		return 0
	}
	return time.Duration(binary.BigEndian.Uint64(e.jitBuf[:]) % uint64(d))
}

// sortedIDs returns the keys of m (message IDs or envelope keys) in order.
func sortedIDs[K ~[16]byte, V any](m map[K]V) []K {
	ids := make([]K, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b K) int { return bytes.Compare(a[:], b[:]) })
	return ids
}

// Routes returns the selected route to every reachable destination, in
// address order.
func (e *Engine) Routes() []Route {
	var out []Route
	for _, d := range e.table.sortedDests() {
		c, ok := d.route()
		if !ok {
			continue
		}
		r := Route{
			Dest: d.dest, Link: c.link, Via: c.via, Metric: c.metric, Hops: c.hops,
			Seq: c.seq, Expires: c.expires, External: c.external, HasKey: d.kemKey != nil,
		}
		if d.ann != nil {
			r.Capabilities = d.ann.Capabilities
		}
		out = append(out, r)
	}
	return out
}

func linkSource(id LinkID) string { return "link-" + strconv.FormatUint(uint64(id), 10) }

// linkBudget records what a duty-cycled link has left of its hour.
func (e *Engine) linkBudget(in LinkBudget) error {
	l := e.links[in.Link]
	if l == nil {
		return fmt.Errorf("budget of unknown link %d: %w", in.Link, ErrBadInput)
	}
	if !(in.Remaining >= 0 && in.Remaining <= 1) {
		return fmt.Errorf("link %d: budget %v not in 0..1: %w", in.Link, in.Remaining, ErrBadInput)
	}
	e.refill(l) // tokens earned so far at the old rate
	l.budget, l.budgetKnown = in.Remaining, true
	return nil
}

// lowBudget reports whether l has less than Config.LowBudget of its
// duty-cycle airtime left.
func (e *Engine) lowBudget(l *link) bool {
	return l.budgetKnown && l.budget < e.cfg.LowBudget
}
