package routing

import (
	"bytes"
	"fmt"
	"slices"
	"time"

	"meshd.dev/meshd/protocol"
)

// newOwnAnnounce signs a fresh announce with the next sequence number and
// asks for the sequence to be persisted, so a restart never reuses one.
func (e *Engine) newOwnAnnounce() {
	e.ownSeq++
	a, err := protocol.NewAnnounce(e.id, protocol.AnnounceOptions{
		Capabilities: e.cfg.Capabilities,
		Sequence:     e.ownSeq,
		Timestamp:    protocol.TimestampOf(e.now),
	})
	if err != nil {
		return // cannot happen without hints; keep the previous announce
	}
	e.ownAnnounce = a
	e.rd.Persist = append(e.rd.Persist, Record{Key: seqKey, Value: be32(nil, e.ownSeq)})
	e.nextAnnounce = e.now.Add(e.cfg.AnnounceInterval - e.jitter(e.cfg.AnnounceInterval/10))
	e.counters.AnnouncesSent++
}

// queueAdvert asks for dest to be advertised on l, within l's budget. A
// newer request for the same destination replaces a queued one.
func (e *Engine) queueAdvert(l *link, r advertReq) {
	if i := slices.IndexFunc(l.adverts, func(x advertReq) bool { return x.dest == r.dest }); i >= 0 {
		r.reply = r.reply || l.adverts[i].reply
		r.withKey = r.withKey || l.adverts[i].withKey
		l.adverts = slices.Delete(l.adverts, i, i+1)
		e.counters.AdvertsReplaced++
	}
	i, _ := slices.BinarySearchFunc(l.adverts, r, func(a, b advertReq) int {
		if a.dest == e.self || b.dest == e.self {
			// Our own announce goes first.
			switch {
			case a.dest == b.dest:
				return 0
			case a.dest == e.self:
				return -1
			}
			return 1
		}
		if a.hops != b.hops {
			return int(a.hops) - int(b.hops)
		}
		return bytes.Compare(a.dest[:], b.dest[:])
	})
	l.adverts = slices.Insert(l.adverts, i, r)
}

// refill adds the advertisement budget earned since the last refill.
func (e *Engine) refill(l *link) {
	dt := e.now.Sub(l.refilled).Seconds()
	l.refilled = e.now
	if dt <= 0 {
		return
	}
	rate := e.cfg.AnnounceShare * float64(l.info.Bitrate) / 8
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
	frame := e.headAdvert(l)
	if frame == nil {
		return time.Time{}
	}
	rate := e.cfg.AnnounceShare * float64(l.info.Bitrate) / 8
	tokens := l.tokens + rate*e.now.Sub(l.refilled).Seconds()
	need := float64(len(frame)) - tokens
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
			if err := a.Verify(e.now, protocol.AnnouncePolicy{MaxSkew: e.cfg.ClockSkew}); err != nil {
				e.counters.AdvertsInvalid++
				return err
			}
		}
	} else {
		if d != nil && a.Sequence < d.seq {
			e.counters.AdvertsStale++
			return nil
		}
		if err := a.Verify(e.now, protocol.AnnouncePolicy{MaxSkew: e.cfg.ClockSkew}); err != nil {
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
	res := d.update(c, e.now)
	if res == updInfeasible {
		e.counters.RoutesInfeasible++
		// No loop-free way in with what we have: ask the destination for a
		// fresh sequence number.
		if _, ok := d.route(); !ok {
			e.pathRequest(d, false)
		}
	}
	e.routeChanged(d, res)
	if newSeq && res != updInfeasible && a.HopCount < e.cfg.MaxAdvertHops {
		// Propagate the new announce on every link, budget permitting.
		if cur, ok := d.route(); ok {
			for _, ol := range e.sortedLinks() {
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
				e.queueAdvert(ol, advertReq{dest: origin, hops: cur.hops})
			}
		}
	}
	e.answerPathRequests(d)
	return nil
}

// routeChanged reacts to a change in the selected route to d.
func (e *Engine) routeChanged(d *destEntry, res updateResult) {
	switch res {
	case updAdded:
		e.counters.RoutesAdded++
		e.retryDest(d.dest)
	case updChanged:
		e.counters.RoutesChanged++
		e.retryDest(d.dest)
	case updRemoved:
		e.counters.RoutesRemoved++
		// Tell neighbours quickly that the route is gone.
		for _, l := range e.sortedLinks() {
			e.queueAdvert(l, advertReq{dest: d.dest, hops: 255})
		}
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
				delete(e.table.dests, d.dest)
			}
		}
	}
	for _, id := range e.delivered.expire(protocol.TimestampOf(e.now)) {
		e.rd.Deletes = append(e.rd.Deletes, deliveredKey(id))
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
func (e *Engine) emitRouting(l *link, frame []byte) {
	e.refill(l)
	if e.emit(l, Address{}, frame, PriRouting) {
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
		if e.ownAnnounce == nil || e.now.Sub(e.ownAnnounce.Timestamp.Time()) >= 10*time.Second {
			e.newOwnAnnounce()
		}
		e.queueAdvert(l, advertReq{dest: e.self, reply: true, withKey: pr.WantKEMKey})
		e.counters.PathRequestsAnswer++
		return nil
	}
	if d := e.table.get(pr.Target); d != nil && d.ann != nil && (!pr.WantKEMKey || d.kemKey != nil) {
		if c, ok := d.route(); ok && (c.link != l.info.ID || l.info.Shared) {
			e.queueAdvert(l, advertReq{dest: pr.Target, hops: c.hops, reply: true, withKey: pr.WantKEMKey})
			e.counters.PathRequestsAnswer++
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
