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
		Capabilities: e.cfg.Capabilities,
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
// newer request for the same destination replaces a queued one.
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
	if i := slices.IndexFunc(l.adverts, func(x advertReq) bool { return x.dest == r.dest }); i >= 0 {
		r.reply = r.reply || l.adverts[i].reply
		r.withKey = r.withKey || l.adverts[i].withKey
		e.counters.AdvertsReplaced++
		if rank(l.adverts[i]) == rank(r) {
			l.adverts[i] = r // keep its place in the line
			return
		}
		l.adverts = slices.Delete(l.adverts, i, i+1)
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
	return n
}

// headAdvert returns the frame of the first queued advertisement of l,
// dropping requests that have nothing to say.
func (e *Engine) headAdvert(l *link) []byte {
	for len(l.adverts) > 0 {
		if f := e.advertFrame(l, l.adverts[0]); f != nil {
			return f
		}
		l.adverts = l.adverts[1:]
	}
	return nil
}

// drainAdverts moves queued advertisements into the link queue while the
// link's budget allows, nearest destinations first.
func (e *Engine) drainAdverts(l *link) {
	e.refill(l)
	for {
		frame := e.headAdvert(l)
		if frame == nil {
			return
		}
		if l.tokens < float64(len(frame)) {
			e.counters.AdvertsDeferred++
			return
		}
		l.adverts = l.adverts[1:]
		if !e.emit(l, Address{}, frame, PriRouting) {
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
	e.counters.AdvertsIn++
	adv, err := protocol.ParseAdvert(frame)
	if err != nil {
		e.counters.FramesMalformed++
		return err
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
	newSeq := d.ann == nil || a.Sequence > d.seq
	d.ident, d.known = a.Identity, true
	if newSeq {
		d.seq = a.Sequence
		d.ann = a.WithKEMKey(nil)
		d.ann.HopCount = 0
	}
	if a.KEMKey != nil && d.kemKey == nil {
		d.kemKey = bytes.Clone(a.KEMKey)
		e.keyLearned(d)
	}
	c := candidate{
		link: l.info.ID, via: adv.Forwarder, seq: a.Sequence, adv: adv.Metric, metric: metric,
		hops: min(a.HopCount, 254) + 1, expires: e.now.Add(e.cfg.RouteTTL),
	}
	feasible := c.adv == MetricInfinite || d.feasible(c.seq, c.adv)
	cur, had := d.route()
	fromSelected := had && cur.link == c.link && cur.via == c.via
	res := d.update(c, e.now)
	if !feasible {
		e.counters.RoutesInfeasible++
		// Kept, but unselectable. If it came from our next hop, or we have
		// no route at all, only a newer sequence number from the
		// destination gets us a loop-free way in: ask for one (Babel sends
		// a seqno request in this case, RFC 8966 section 3.8.2.2).
		if _, ok := d.route(); !ok || fromSelected {
			e.pathRequest(d, false)
		}
	}
	propagated := e.routeChanged(d, res)
	if newSeq && feasible && !propagated && a.HopCount < e.cfg.MaxAdvertHops {
		// Propagate the new announce on every link, budget permitting.
		e.propagate(d, nil)
	}
	e.answerPathRequests(d)
	return nil
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
				delete(e.table.dests, d.dest)
			}
		}
	}
	for _, id := range e.delivered.expire(protocol.TimestampOf(e.now)) {
		e.del(deliveredKey(id))
	}
	for id, p := range e.pathReqs {
		if !p.expires.After(e.now) {
			delete(e.pathReqs, id)
		}
	}
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

// pathRequest asks the mesh (and the daemon's lookups) for a route to d,
// at most once per PathRequestInterval.
func (e *Engine) pathRequest(d *destEntry, wantKey bool) {
	if !d.lastPathRequest.IsZero() && e.now.Sub(d.lastPathRequest) < e.cfg.PathRequestInterval {
		return
	}
	d.lastPathRequest = e.now
	var pr protocol.PathRequest
	e.randBytes(pr.ID[:])
	pr.Target = d.dest
	pr.HopLimit = e.cfg.PathRequestHops
	pr.WantKEMKey = wantKey
	e.seen.add(pathRequestKey(pr.ID))
	frame := pr.AppendTo(nil)
	for _, l := range e.sortedLinks() {
		e.emitRouting(l, frame)
	}
	e.counters.PathRequestsSent++
	e.rd.Lookups = append(e.rd.Lookups, d.dest)
	e.counters.Lookups++
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

func (e *Engine) handlePathRequest(l *link, frame []byte) error {
	pr, err := protocol.ParsePathRequest(frame)
	if err != nil {
		e.counters.FramesMalformed++
		return err
	}
	e.counters.PathRequestsIn++
	if !e.seen.add(pathRequestKey(pr.ID)) {
		e.counters.Duplicates++
		return nil
	}
	if pr.Target == e.self {
		// Answer with a fresh announce: its new sequence number makes it
		// feasible everywhere, which is what a stuck node needs.
		// At most one new sequence number per 10 s; a request within that
		// time brings the next periodic announce forward to its end, so
		// the requester is not left waiting for a whole interval.
		if e.ownAnnounce == nil || e.now.Sub(e.ownAnnounce.Timestamp.Time()) >= 10*time.Second {
			e.newOwnAnnounce()
			// The new sequence number goes to every neighbour, as a
			// periodic one does: a neighbour that heard it only by a
			// detour would take the detour (newer sequence numbers win).
			for _, ol := range e.sortedLinks() {
				if ol != l {
					e.queueAdvert(ol, advertReq{dest: e.self})
				}
			}
		} else if due := e.ownAnnounce.Timestamp.Time().Add(10 * time.Second); due.Before(e.nextAnnounce) {
			e.nextAnnounce = due
		}
		e.queueAdvert(l, advertReq{dest: e.self, reply: true, withKey: pr.WantKEMKey})
		e.counters.PathRequestsAnswer++
		return nil
	}
	if d := e.table.get(pr.Target); d != nil && d.ann != nil && (!pr.WantKEMKey || d.kemKey != nil) {
		if c, ok := d.route(); ok && (c.link != l.info.ID || l.info.Shared) {
			e.queueAdvert(l, advertReq{dest: pr.Target, hops: c.hops, reply: true, withKey: pr.WantKEMKey})
			e.counters.PathRequestsAnswer++
			// Our answer carries the sequence number we know. A requester
			// whose feasibility condition refuses it (it lost a shorter
			// route) needs a newer one, which only the target can issue:
			// pass the request on along our route so that the target hears
			// it, as Babel forwards a seqno request towards the source.
			if ol := e.links[c.link]; ol != nil {
				fwd := append([]byte(nil), frame...)
				if protocol.IncrementPathRequestHops(fwd) == nil {
					e.emitRoutingTo(ol, c.via, fwd)
				}
			}
			return nil
		}
	}
	fwd := append([]byte(nil), frame...)
	if err := protocol.IncrementPathRequestHops(fwd); err != nil {
		return nil // travelled far enough
	}
	e.pathReqs[pr.ID] = pathOrigin{link: l.info.ID, target: pr.Target, wantKey: pr.WantKEMKey, expires: e.now.Add(30 * time.Second)}
	for _, ol := range e.sortedLinks() {
		if ol == l && !l.info.Shared {
			continue
		}
		e.emitRouting(ol, fwd)
	}
	return nil
}

// answerPathRequests sends the route to d back along path requests that
// passed through this node.
func (e *Engine) answerPathRequests(d *destEntry) {
	c, ok := d.route()
	if !ok {
		return
	}
	var ids [][8]byte
	for id, p := range e.pathReqs {
		if p.target == d.dest && (!p.wantKey || d.kemKey != nil) {
			ids = append(ids, id)
		}
	}
	slices.SortFunc(ids, func(a, b [8]byte) int { return bytes.Compare(a[:], b[:]) })
	for _, id := range ids {
		p := e.pathReqs[id]
		delete(e.pathReqs, id)
		if l := e.links[p.link]; l != nil {
			e.queueAdvert(l, advertReq{dest: d.dest, hops: c.hops, reply: true, withKey: p.wantKey})
			e.counters.PathRequestsAnswer++
		}
	}
}
