package routing

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"meshd.dev/meshd/protocol"
)

// newOwnAnnounce signs a fresh announce with the next sequence number and
// asks for the sequence to be persisted, so a restart never reuses one.
func (e *Engine) newOwnAnnounce() {
	if e.ownSeq < ^uint32(0) { // saturate rather than wrap (only a corrupt store gets here)
		e.ownSeq++
	}
	a, err := protocol.NewAnnounce(e.id, protocol.AnnounceOptions{
		Capabilities: e.ownCapabilities(), // session_compat.go
		Sequence:     e.ownSeq,
		Timestamp:    protocol.TimestampOf(e.now),
	})
	if err != nil {
		return // cannot happen without hints; keep the previous announce
	}
	e.ownAnnounce = a
	e.persist(seqKey, binary.BigEndian.AppendUint32(nil, e.ownSeq))
	e.nextAnnounce = e.now.Add(e.cfg.AnnounceInterval - e.jitter(e.cfg.AnnounceInterval/10))
	e.counters.AnnouncesSent++
}

// queueAdvert asks for dest to be advertised on l, within l's budget. A
// newer request for the same destination replaces a queued one (an answer
// to one neighbour and a broadcast replace only their own kind).
func (e *Engine) queueAdvert(l *link, r advertReq) {
	// Our own announce goes first, then the nearest destinations; among
	// equally near ones the request that waited longest, so that when the
	// budget cannot keep up every destination still gets its turn (in
	// address order, the same few would go every round and the rest never).
	rank := func(x advertReq) int {
		switch {
		case x.dest == e.self:
			return -2
		case x.reply:
			// A path request asked for it and someone waits: on a
			// saturated slow link, nearer destinations' periodic
			// adverts must not starve the answer.
			return -1
		}
		return int(x.hops)
	}
	// An answer to one neighbour (hop-wrapped) and a broadcast of the same
	// destination stay apart. Merged, the answer went out broadcast at the
	// tries that met a periodic advert or a propagation and hop-wrapped at
	// the others: different bytes, so fragment repair could not join the
	// tries' fragments (TestLossyKeySetup), and the neighbour it was for
	// took the broadcast for someone else's answer.
	for {
		i := slices.IndexFunc(l.adverts, func(x advertReq) bool { return x.dest == r.dest && x.to.IsZero() == r.to.IsZero() })
		if i < 0 {
			break
		}
		old := l.adverts[i]
		r.reply = r.reply || old.reply
		r.withKey = r.withKey || old.withKey
		e.counters.AdvertsReplaced++
		if r.to != old.to {
			// Two neighbours want it: broadcast, merged with the
			// broadcast already queued, if any.
			r.to = Address{}
			l.adverts = slices.Delete(l.adverts, i, i+1)
			continue
		}
		if rank(old) == rank(r) {
			l.adverts[i] = r // keep its place in the line
			return
		}
		l.adverts = slices.Delete(l.adverts, i, i+1)
		break
	}
	// After every request of the same rank or better.
	i, _ := slices.BinarySearchFunc(l.adverts, r, func(a, b advertReq) int {
		if rank(a) <= rank(b) {
			return -1
		}
		return 1
	})
	l.adverts = slices.Insert(l.adverts, i, r)
}

// advertRate is the advertisement budget of l in bytes per second:
// AnnounceShare of the link's bitrate, and on a duty-cycled link at most
// DutyCycleAdvertShare of the airtime the duty cycle allows, so adverts can
// never eat a radio's whole legal airtime.
func (e *Engine) advertRate(l *link) float64 {
	rate := e.cfg.AnnounceShare * float64(l.info.Bitrate) / 8
	if d := l.info.DutyCycle; d > 0 {
		rate = min(rate, e.cfg.DutyCycleAdvertShare*d*float64(l.info.Bitrate)/8)
	}
	if l.budgetKnown {
		rate *= l.budget // adverts yield to data as the hour's airtime runs out
	}
	return rate
}

// refill adds the advertisement budget earned since the last refill.
func (e *Engine) refill(l *link) {
	dt := e.now.Sub(l.refilled).Seconds()
	l.refilled = e.now
	if dt <= 0 {
		return
	}
	rate := e.advertRate(l)
	// The bucket holds at least one full advert (with the KEM key), so an
	// answer that carries a key can always go out eventually.
	l.tokens = min(l.tokens+rate*dt, float64(max(e.cfg.AnnounceBurst, protocol.AdvertHeaderSize+protocol.AnnounceCompactSize+protocol.KEMPublicKeySize)))
}

// carriesKEMKey: adverts on IP and TCP links carry the KEM key, so nodes
// there can seal to the destination at once; LoRa adverts stay compact.
func (e *Engine) carriesKEMKey(l *link) bool { return l.info.Kind != LinkLoRa }

// advertFrame builds the advertisement of dest for l, or nil if there is
// nothing to say.
func (e *Engine) advertFrame(l *link, r advertReq) []byte {
	dest := r.dest
	var ann *protocol.Announce
	var metric uint16
	var kem []byte
	if dest == e.self {
		ann, metric, kem = e.ownAnnounce, 0, e.id.Public().KEMPublicKey()
	} else {
		d := e.table.get(dest)
		if d == nil || d.ann == nil {
			return nil
		}
		c, ok := d.route()
		// A route is advertised only under the announce of its own
		// sequence number: under a newer one it would claim more than
		// the feasibility distance allows (handleAdvert keeps the two
		// equal; this is the safety net).
		ok = ok && c.seq == d.ann.Sequence
		if !ok {
			metric = MetricInfinite // a retraction
		} else {
			metric = c.metric
		}
		cp := *d.ann
		cp.HopCount = 0
		if ok {
			cp.HopCount = c.hops
		}
		ann, kem = &cp, d.kemKey
	}
	if (e.carriesKEMKey(l) || r.withKey) && kem != nil {
		ann = ann.WithKEMKey(kem)
	} else {
		ann = ann.WithKEMKey(nil)
	}
	raw, err := ann.MarshalBinary()
	if err != nil {
		return nil
	}
	return protocol.AppendAdvert(make([]byte, 0, 19+len(raw)), e.self, metric, raw)
}

// advertSize is the length of advertFrame(l, r), or 0 if it has nothing to
// say, without building the frame: NextWake and HasReady ask often.
func (e *Engine) advertSize(l *link, r advertReq) int {
	var ann *protocol.Announce
	var kem int
	if r.dest == e.self {
		ann, kem = e.ownAnnounce, protocol.KEMPublicKeySize
	} else if d := e.table.get(r.dest); d != nil {
		ann, kem = d.ann, len(d.kemKey)
	}
	if ann == nil {
		return 0
	}
	n := protocol.AdvertHeaderSize + ann.Size() - len(ann.KEMKey)
	if e.carriesKEMKey(l) || r.withKey {
		n += kem
	}
	if l.info.Shared && !r.to.IsZero() {
		n += protocol.HopHeaderSize
	}
	return n
}

// headAdvert returns the frame of the first queued advertisement of l and
// the neighbour it is for (zero: all), dropping requests that have nothing
// to say.
func (e *Engine) headAdvert(l *link) ([]byte, Address) {
	for len(l.adverts) > 0 {
		if f := e.advertFrame(l, l.adverts[0]); f != nil {
			return f, l.adverts[0].to
		}
		l.adverts = l.adverts[1:]
	}
	return nil, Address{}
}

// drainAdverts moves queued advertisements into the link queue while the
// link's budget allows, nearest destinations first.
func (e *Engine) drainAdverts(l *link) {
	e.refill(l)
	for {
		frame, to := e.headAdvert(l)
		if frame == nil {
			return
		}
		if l.tokens < float64(len(frame)) {
			e.counters.AdvertsDeferred++
			return
		}
		l.adverts = l.adverts[1:]
		if !e.emit(l, to, frame, PriRouting) {
			continue
		}
		l.tokens -= float64(len(frame))
		e.counters.AdvertsOut++
		e.counters.AdvertBytesOut += uint64(len(frame))
	}
}

// advertReadyAt is when l's budget allows its next advertisement, or zero
// if that is now (or nothing waits).
func (e *Engine) advertReadyAt(l *link) time.Time {
	n := 0
	for _, r := range l.adverts {
		if n = e.advertSize(l, r); n > 0 {
			break
		}
	}
	if n == 0 {
		return time.Time{}
	}
	rate := e.advertRate(l)
	tokens := l.tokens + rate*e.now.Sub(l.refilled).Seconds()
	need := float64(n) - tokens
	if need <= 0 {
		return time.Time{}
	}
	// Round up to the next millisecond so the wake-up is never early.
	wait := time.Duration(need/rate*float64(time.Second)) + time.Millisecond
	return e.now.Add(wait.Truncate(time.Millisecond))
}

// handleAdvert processes a route advertisement heard on l.
func (e *Engine) handleAdvert(l *link, frame []byte) error {
	return e.handleAdvertFrom(l, frame, false)
}

// handleAdvertFrom is handleAdvert; addressed says the advert came
// hop-wrapped to this node (an answer to a path request it passed on).
func (e *Engine) handleAdvertFrom(l *link, frame []byte, addressed bool) error {
	e.counters.AdvertsIn++
	adv, err := protocol.ParseAdvert(frame)
	if err != nil {
		e.counters.FramesMalformed++
		return err
	}
	// On a point-to-point link whose peer the transport authenticated,
	// the forwarder can only be that peer: naming others would let one
	// neighbour take every candidate slot of a destination, pushing out
	// the honest neighbours' (radio links cannot tell; see section 11 of
	// docs/routing.md).
	if p := l.info.Peer; !l.info.Shared && !p.IsZero() && adv.Forwarder != p {
		e.counters.AdvertsInvalid++
		return fmt.Errorf("advert forwarded by %v on the link to %v: %w", adv.Forwarder, p, ErrBadInput)
	}
	a := adv.Announce
	origin := a.Address()
	if origin == e.self || adv.Forwarder == e.self {
		return nil
	}
	d := e.table.get(origin)
	// Verify each announce once: an identical signed announce heard again
	// (from another neighbour, with another hop count) is not re-verified.
	if d != nil && d.ann != nil && d.ann.Sequence == a.Sequence && d.ann.SameSigned(a) {
		e.counters.VerifySkipped++
		if a.KEMKey != nil && d.kemKey == nil {
			if err := e.verifyAnnounce(a); err != nil {
				e.counters.AdvertsInvalid++
				return err
			}
		}
	} else {
		if d != nil && a.Sequence < d.seq {
			e.counters.AdvertsStale++
			e.staleAdvert(d, l, adv.Forwarder)
			return nil
		}
		if err := e.verifyAnnounce(a); err != nil {
			e.counters.AdvertsInvalid++
			return err
		}
	}
	metric := uint16(MetricInfinite)
	if adv.Metric != MetricInfinite {
		metric = satAdd(adv.Metric, e.linkCost(l))
	}
	if d == nil {
		d = e.table.entry(origin, metric)
		if d == nil {
			return nil // table full of nearer destinations
		}
	}
	// A newer sequence number becomes the destination's announce, which
	// is what this node advertises its route under; but not from a
	// retraction while this node still has a route (of an older sequence
	// number): advertising that route under the newer number would claim
	// a route this node does not have and break loop freedom.
	_, routed := d.route()
	newSeq := d.ann == nil || (a.Sequence > d.seq && (adv.Metric != MetricInfinite || !routed))
	d.ident, d.known = a.Identity, true
	if newSeq {
		d.seq = a.Sequence
		d.ann = a.WithKEMKey(nil)
		d.ann.HopCount = 0
	}
	if a.KEMKey != nil && d.kemKey == nil {
		d.kemKey = bytes.Clone(a.KEMKey)
		d.pathAnswered()
		e.keyLearned(d)
	}
	c := candidate{
		link: l.info.ID, via: adv.Forwarder, seq: a.Sequence, adv: adv.Metric, metric: metric,
		hops: min(a.HopCount, 254) + 1, expires: e.now.Add(e.cfg.RouteTTL),
	}
	feasible := c.adv == MetricInfinite || d.feasible(c.seq, c.adv)
	res := d.update(c, e.now)
	if !feasible {
		e.counters.RoutesInfeasible++
		// Kept, but unselectable. With no feasible route left, only a
		// newer sequence number from the destination gets us a loop-free
		// way in: ask for one (a Babel seqno request, RFC 8966 section
		// 3.8.2.2; pathRequest asks for one more than the feasibility
		// distance's).
		if _, ok := d.route(); !ok {
			e.pathRequest(d, false)
		}
	}
	propagated := e.routeChanged(d, res)
	if newSeq && feasible && !propagated && a.HopCount < e.cfg.MaxAdvertHops {
		// Propagate the new announce on every link, budget permitting.
		e.propagate(d, nil)
	}
	e.answerPathRequests(d, l, addressed)
	return nil
}

// staleAdvert handles an advert with an older sequence number than the
// destination's newest: if it comes from a neighbour whose candidate is
// stored, that candidate no longer says what the neighbour offers, so it
// goes (as a retraction would), rather than staying with its old metric.
func (e *Engine) staleAdvert(d *destEntry, l *link, via Address) {
	if !slices.ContainsFunc(d.cands, func(c candidate) bool { return c.link == l.info.ID && c.via == via }) {
		return
	}
	e.routeChanged(d, d.update(candidate{link: l.info.ID, via: via, adv: MetricInfinite}, e.now))
}

// propagate queues the advertisement of d's selected route on every link,
// or only on l if it is not nil.
func (e *Engine) propagate(d *destEntry, l *link) {
	cur, ok := d.route()
	if !ok || d.ann == nil || cur.hops > e.cfg.MaxAdvertHops {
		return
	}
	for _, ol := range e.sortedLinks() {
		if l != nil && ol != l {
			continue
		}
		// Split horizon: a point-to-point link does not need the
		// route back to where it came from.
		if ol.info.ID == cur.link && !ol.info.Shared {
			continue
		}
		// On IP, announces travel only IPAdvertRadius hops: beyond
		// that the daemon's DHT finds destinations, so announces
		// never flood the internet.
		if ol.info.Kind == LinkIP && cur.hops >= e.cfg.IPAdvertRadius {
			continue
		}
		e.queueAdvert(ol, advertReq{dest: d.dest, hops: cur.hops})
	}
}

// routeChanged reacts to a change in the selected route to d. It reports
// whether it queued the new route's advertisement.
func (e *Engine) routeChanged(d *destEntry, res updateResult) (propagated bool) {
	switch res {
	case updAdded:
		e.table.routes++
		e.counters.RoutesAdded++
		d.pathAnswered()
		// Neighbours may have heard our retraction, or never heard of
		// the destination from us (its announce was not new): tell them.
		e.propagate(d, nil)
		e.retryDest(d.dest)
		return true
	case updChanged:
		e.counters.RoutesChanged++
		// A route as good as any we had for this sequence number (a
		// newer one, or a link that came back) is news for the
		// neighbours: without it they would keep a worse way until the
		// destination's next announce.
		if c, ok := d.route(); ok && !c.external && d.fdValid && c.seq == d.fdSeq && c.metric <= d.fdMetric {
			e.propagate(d, nil)
			propagated = true
		}
		e.retryDest(d.dest)
	case updRemoved:
		e.table.routes--
		e.counters.RoutesRemoved++
		// Tell neighbours quickly that the route is gone.
		for _, l := range e.sortedLinks() {
			e.queueAdvert(l, advertReq{dest: d.dest, hops: 255})
		}
	}
	return propagated
}

// evicted retracts the route to d, which the full table is evicting for a
// nearer destination, on every link: neighbours routing through this node
// would otherwise keep doing so until their route expires (a black hole),
// and could offer it back to this node, which no longer has the
// feasibility distance that would refuse it (a loop). The queue cannot
// carry it (it builds adverts from the table), so it goes out now,
// charged to each link's budget.
func (e *Engine) evicted(d *destEntry) {
	if _, ok := d.route(); !ok || d.ann == nil {
		return // nothing advertised, nothing to retract
	}
	e.counters.RoutesRemoved++
	a := d.ann.WithKEMKey(nil)
	a.HopCount = 0
	raw, err := a.MarshalBinary()
	if err != nil {
		return
	}
	frame := protocol.AppendAdvert(nil, e.self, MetricInfinite, raw)
	for _, l := range e.sortedLinks() {
		e.emitRouting(l, frame)
	}
}

// sweep expires routes, delivered IDs and path request state.
func (e *Engine) sweep() {
	for _, d := range e.table.sortedDests() {
		e.routeChanged(d, d.expire(e.now))
		// Forget a destination with no route and nothing waiting for it
		// once its announce is too old to be accepted again (keeping the
		// feasibility distance until then), or, if it never announced,
		// once nobody asked for it for a while.
		if len(d.cands) == 0 && e.custody.byDest[d.dest] == nil {
			stale := d.ann != nil && d.ann.Timestamp.Time().Add(protocol.DefaultAnnounceMaxAge).Before(e.now)
			unknown := d.ann == nil && e.now.Sub(d.lastPathRequest) > 10*e.cfg.PathRequestInterval
			if stale || unknown {
				e.table.remove(d)
			}
		}
	}
	for _, r := range e.delivered.expire(protocol.TimestampOf(e.now)) {
		e.del(r.recordKey())
	}
	e.sweepPathRequests()
	e.sweepSessions()
}

// resolved installs the result of an outside lookup.
func (e *Engine) resolved(in Resolved) error {
	l := e.links[in.Link]
	if l == nil {
		return fmt.Errorf("resolved %v: unknown link %d: %w", in.Dest, in.Link, ErrBadInput)
	}
	if in.Dest == e.self {
		return nil
	}
	if in.Identity != nil && in.Identity.Address() != in.Dest {
		return fmt.Errorf("resolved %v: identity is for %v: %w", in.Dest, in.Identity.Address(), ErrBadInput)
	}
	ttl := in.TTL
	if ttl <= 0 {
		ttl = e.cfg.RouteTTL
	}
	metric := satAdd(e.linkCost(l), 64) // an outside path: a little worse than a known one
	d := e.table.entry(in.Dest, metric)
	if d == nil {
		return fmt.Errorf("resolved %v: %w", in.Dest, ErrNoRoute)
	}
	if in.Identity != nil && d.kemKey == nil {
		d.ident, d.known = in.Identity.Compact(), true
		d.kemKey = in.Identity.KEMPublicKey()
		defer e.keyLearned(d)
	}
	via := l.info.Peer
	if via.IsZero() {
		via = in.Dest
	}
	c := candidate{link: l.info.ID, via: via, seq: d.seq, metric: metric, hops: 1, expires: e.now.Add(ttl), external: true}
	e.routeChanged(d, d.update(c, e.now))
	return nil
}

// emitRouting queues a small routing frame and charges it to the link's
// advertisement budget (which may go negative, delaying later adverts).
func (e *Engine) emitRouting(l *link, frame []byte) { e.emitRoutingTo(l, Address{}, frame) }

// emitRoutingTo is emitRouting for one neighbour (hop-wrapped on a shared
// link).
func (e *Engine) emitRoutingTo(l *link, to Address, frame []byte) {
	e.refill(l)
	if e.emit(l, to, frame, PriRouting) {
		l.tokens -= float64(len(frame))
		e.counters.AdvertBytesOut += uint64(len(frame))
	}
}
