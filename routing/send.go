package routing

import (
	"encoding/binary"
	"fmt"
	"time"

	"meshd.dev/meshd/protocol"
)

// send handles an application's SendRequest.
func (e *Engine) send(in SendRequest) error {
	refuse := func(err error) error {
		e.counters.SendRefused++
		e.rd.Events = append(e.rd.Events, Event{Kind: EventRefused, Ref: in.Ref, Dest: in.Dest, Err: err})
		return err
	}
	if in.Type == 0 {
		in.Type = protocol.TypeMessage
	}
	if in.Type != protocol.TypeMessage && in.Type != protocol.TypeFAPP {
		return refuse(fmt.Errorf("send: type %v is reserved for the engine: %w", in.Type, ErrBadInput))
	}
	if len(in.Body) > protocol.MaxPayloadSize-protocol.SealOverhead-256 {
		return refuse(fmt.Errorf("send: %d bytes: %w", len(in.Body), ErrTooLarge))
	}
	ttl := in.TTL
	if ttl <= 0 {
		ttl = e.cfg.MessageTTL
	}
	ttl = min(ttl, protocol.MaxLifetime)
	var id MessageID
	e.randBytes(id[:])
	now := protocol.TimestampOf(e.now)
	r := &custodyRec{
		id: id, dest: in.Dest, origin: true, sealedSender: in.SealedSender, typ: in.Type, ref: in.Ref,
		created: now, expires: now + protocol.Timestamp(max(ttl/time.Second, 1)),
	}
	if in.Dest == e.self {
		e.rd.Deliveries = append(e.rd.Deliveries, Delivery{
			ID: id, Type: in.Type, From: e.self, Sender: e.id.Compact(), Body: in.Body,
			Created: r.created, Expires: r.expires,
		})
		e.counters.Sent++
		e.rd.Events = append(e.rd.Events, Event{Kind: EventAccepted, Ref: in.Ref, ID: id, Dest: in.Dest, Status: StatusLocal})
		return nil
	}
	d := e.table.get(in.Dest)
	if d == nil || d.kemKey == nil || !d.known {
		r.awaitingKey = true
		r.data = append([]byte(nil), in.Body...)
	} else if err := e.seal(r, d, in.Body); err != nil {
		return refuse(err)
	}
	// The node's own messages count against the total quota only: the
	// other quotas protect against other nodes' traffic (quota.go).
	if e.custody.admit(r) != nil {
		return refuse(fmt.Errorf("send to %v: %w", in.Dest, ErrCustodyFull))
	}
	e.seen.addAt(id, e.now)
	e.counters.Sent++
	e.custody.add(r)
	e.persistCustody(r)
	status := e.attempt(r)
	e.rd.Events = append(e.rd.Events, Event{Kind: EventAccepted, Ref: in.Ref, ID: id, Dest: in.Dest, Status: status})
	return nil
}

// seal turns a pending body into a sealed envelope for d.
func (e *Engine) seal(r *custodyRec, d *destEntry, body []byte) error {
	if !d.known || d.kemKey == nil {
		return fmt.Errorf("seal for %v: key unknown: %w", r.dest, ErrBadInput)
	}
	enc := make([]byte, 0, protocol.PublicIdentitySize)
	enc = append(append(append(enc, 1), d.ident.SigningKey[:]...), d.kemKey...)
	pub, err := protocol.ParsePublicIdentity(enc)
	if err != nil || pub.Address() != r.dest {
		return fmt.Errorf("seal for %v: bad key: %w", r.dest, ErrBadInput)
	}
	h := protocol.Header{
		Type: r.typ, HopLimit: e.cfg.HopLimit, ID: r.id, Created: r.created, Expires: r.expires,
		Dest: r.dest, WantReceipt: true,
	}
	env, err := protocol.SealEnvelope(e.cfg.Rand, e.id, pub, h, body,
		protocol.SealOptions{SealedSender: r.sealedSender, Padding: e.cfg.Padding})
	if err != nil {
		return err
	}
	raw, err := env.MarshalBinary()
	if err != nil {
		return err
	}
	r.data, r.awaitingKey = raw, false
	return nil
}

func (e *Engine) persistCustody(r *custodyRec) {
	e.persist(custodyKey(r.id), encodeCustody(r))
}

// attempt tries to move a custody record forward now: seal it if its key is
// known, send it if there is a route, otherwise ask for a route. It sets the
// next retry and reports where the message stands.
func (e *Engine) attempt(r *custodyRec) SendStatus {
	d := e.table.get(r.dest)
	if r.awaitingKey {
		if d != nil && d.kemKey != nil && d.known {
			body := r.data
			if err := e.seal(r, d, body); err == nil {
				e.custody.recharge(r)
				e.persistCustody(r)
			}
		}
		if r.awaitingKey {
			if d == nil {
				d = e.table.entry(r.dest, MetricInfinite)
			}
			if d != nil {
				e.pathRequest(d, true)
			}
			e.backoff(r)
			return StatusAwaitingKey
		}
	}
	if d != nil {
		if c, ok := d.route(); ok {
			if l := e.links[c.link]; l != nil && e.transmitEnvelope(l, c.via, r.data, r.dest, r.id, e.custody.ownerOf(r)) {
				r.attempts++
				e.counters.CustodyRetries++
				if r.origin {
					e.backoff(r)
				} else {
					r.nextTry = time.Time{}
					e.custody.schedule(r)
				}
				return StatusRouted
			}
			e.counters.QueueDeferred++
		}
	}
	if d == nil {
		d = e.table.entry(r.dest, MetricInfinite)
	}
	if d != nil {
		e.pathRequest(d, false)
	}
	r.attempts++
	if r.attempts > e.cfg.HandOffAfter && !r.handedOff {
		e.handOff(r)
	}
	e.backoff(r)
	return StatusCustody
}

// backoff schedules the next retry: RetryBase doubling per attempt up to
// RetryMax, minus up to 10 % jitter so retries of many nodes spread out. A
// message a mailbox accepted waits for a route instead.
func (e *Engine) backoff(r *custodyRec) {
	if r.handedOff {
		r.nextTry = time.Time{}
	} else {
		d := e.cfg.RetryBase << min(max(r.attempts-1, 0), 20)
		d = min(d, e.cfg.RetryMax)
		r.nextTry = e.now.Add(d - e.jitter(d/10))
	}
	e.custody.schedule(r)
}

// transmitEnvelope queues an envelope for the next hop, with a hop-ack wait
// on links that want one. Once the frame is handed to a reliable link,
// forwarder custody of it is released (at Advance); on a hop-ack link, when
// the ack arrives. from says whose envelope it is: a neighbour's may take
// only its share of the queue (quota.go).
func (e *Engine) transmitEnvelope(l *link, via Address, raw []byte, dest Address, id MessageID, from owner) bool {
	pri := PriData
	if k, err := protocol.PeekKind(raw); err == nil && k == protocol.KindEnvelope && len(raw) > 1 &&
		(protocol.Type(raw[1]) == protocol.TypeReceipt || protocol.Type(raw[1]) == protocol.TypeControl) {
		pri = PriControl
	}
	frame := raw
	if l.info.Shared && !via.IsZero() {
		frame = protocol.AppendHop(make([]byte, 0, 17+len(raw)), via, raw)
	}
	dropped, ok := l.queue.push(qitem{frame: frame, to: via, pri: pri, release: id, hasRelease: true, owner: from})
	e.queueDropped(l, dropped)
	if !ok {
		return false
	}
	if l.info.HopAcks {
		if w := e.hopAcks[id]; w == nil {
			e.hopAcks[id] = &ackWait{link: l.info.ID, to: via, frame: frame, dest: dest, from: from}
		}
	}
	return true
}

// forward sends an envelope towards its destination, or takes custody of
// it. from says whose it is: the neighbour it came from, or our own.
func (e *Engine) forward(env *protocol.Envelope, raw []byte, from owner) {
	if d := e.table.get(env.Dest); d != nil {
		if c, ok := d.route(); ok {
			if l := e.links[c.link]; l != nil && e.transmitEnvelope(l, c.via, raw, env.Dest, env.ID, from) {
				if src, ok := env.Source(); !ok || src != e.self {
					e.counters.Forwarded++ // not our own receipts and control messages
				}
				return
			}
		}
	}
	if err := e.takeCustody(env, raw, from); err != nil {
		e.counters.CustodyRefused++
	}
}

// takeCustody keeps an envelope for an unreachable destination, within the
// quotas, and asks for a route. from is the neighbour it came from (zero
// for our own), whose share it is charged to.
func (e *Engine) takeCustody(env *protocol.Envelope, raw []byte, from owner) error {
	r := &custodyRec{
		id: env.ID, dest: env.Dest, typ: env.Type, created: env.Created, expires: env.Expires,
		sealedSender: env.Flags&protocol.FlagSealedSender != 0, data: raw,
	}
	r.chargeTo(from, env)
	if err := e.custody.admit(r); err != nil {
		return fmt.Errorf("custody for %v: %w", r.dest, err)
	}
	e.custody.add(r)
	e.persistCustody(r)
	e.counters.CustodyAccepted++
	e.attempt(r)
	return nil
}

// dropCustody forgets a record and deletes it from storage.
func (e *Engine) dropCustody(r *custodyRec) {
	e.custody.remove(r.id)
	e.del(custodyKey(r.id))
	delete(e.hopAcks, r.id)
}

// tickCustody retries and expires custody records that are due.
func (e *Engine) tickCustody() {
	ts := protocol.TimestampOf(e.now)
	for {
		r := e.custody.popDue(e.now)
		if r == nil {
			return
		}
		if r.expires <= ts {
			e.expireCustody(r)
			continue
		}
		e.attempt(r)
	}
}

func (e *Engine) expireCustody(r *custodyRec) {
	e.dropCustody(r)
	e.counters.CustodyExpired++
	if r.origin {
		e.rd.Events = append(e.rd.Events, Event{Kind: EventExpired, Ref: r.ref, ID: r.id, Dest: r.dest})
		return
	}
	// Tell the sender, where we know who it is.
	if env, err := protocol.ParseEnvelope(r.data); err == nil {
		if src, ok := env.Source(); ok {
			e.sendControl(src, protocol.TypeControl, protocol.AppendExpiryNotice(nil, r.id),
				protocol.TimestampOf(e.now.Add(24*time.Hour)))
			e.counters.ExpiryNoticesSent++
		}
	}
}

// retryDest retries every record for dest now (a route appeared).
func (e *Engine) retryDest(dest Address) {
	for _, r := range e.custody.forDest(dest) {
		e.attempt(r)
	}
}

// keyLearned seals messages that waited for d's key.
func (e *Engine) keyLearned(d *destEntry) {
	for _, r := range e.custody.forDest(d.dest) {
		if r.awaitingKey {
			e.attempt(r)
		}
	}
}

// handOff offers a message to the nearest mailbox.
func (e *Engine) handOff(r *custodyRec) {
	if r.awaitingKey {
		return
	}
	var best *destEntry
	var bestMetric uint16 = MetricInfinite
	for _, d := range e.table.sortedDests() {
		if d.ann == nil || d.ann.Capabilities&protocol.CapMailbox == 0 || d.dest == r.dest {
			continue
		}
		if c, ok := d.route(); ok && c.metric < bestMetric {
			best, bestMetric = d, c.metric
		}
	}
	if best == nil {
		return
	}
	e.sendControl(best.dest, protocol.TypeControl, protocol.AppendCustodyOffer(nil, r.data), r.expires)
}

// offerAnswered handles a mailbox's answer to a custody offer.
func (e *Engine) offerAnswered(id MessageID, mailbox Address, status protocol.CustodyStatus) {
	r := e.custody.get(id)
	if r == nil || status != protocol.CustodyAccepted {
		return
	}
	e.counters.CustodyHandedOff++
	if !r.origin {
		e.dropCustody(r)
		return
	}
	r.handedOff = true
	e.persistCustody(r)
	e.backoff(r)
	e.rd.Events = append(e.rd.Events, Event{Kind: EventHandedOff, Ref: r.ref, ID: id, Dest: r.dest})
}

// hopAcked handles a hop ack from a neighbour.
func (e *Engine) hopAcked(id MessageID) {
	e.counters.HopAcksIn++
	if _, ok := e.hopAcks[id]; !ok {
		return
	}
	delete(e.hopAcks, id)
	if r := e.custody.get(id); r != nil && !r.origin {
		e.dropCustody(r)
		e.counters.CustodyReleased++
	}
}

// tickHopAcks retransmits envelopes whose hop ack is overdue.
func (e *Engine) tickHopAcks() {
	for _, id := range sortedIDs(e.hopAcks) {
		w := e.hopAcks[id]
		if w.deadline.IsZero() || w.deadline.After(e.now) {
			continue
		}
		l := e.links[w.link]
		if l == nil || w.tries >= e.cfg.HopAckRetries {
			delete(e.hopAcks, id)
			e.counters.RetransmitFailed++
			e.ackFailed(id, w)
			continue
		}
		w.tries++
		w.deadline = time.Time{}
		if _, ok := l.queue.push(qitem{frame: w.frame, to: w.to, pri: PriData, release: id, hasRelease: true}); ok {
			e.counters.Retransmits++
		}
	}
}

// ackFailed treats a next hop that never acknowledged as unreachable: its
// routes to the destination are dropped and the envelope goes to custody.
func (e *Engine) ackFailed(id MessageID, w *ackWait) {
	if d := e.table.get(w.dest); d != nil {
		e.routeChanged(d, d.dropLink(w.link, w.to, e.now))
	}
	if r := e.custody.get(id); r != nil {
		r.nextTry = e.now
		e.custody.schedule(r)
		return
	}
	raw := w.frame
	if k, _ := protocol.PeekKind(raw); k == protocol.KindHop {
		if _, inner, err := protocol.ParseHop(raw); err == nil {
			raw = inner
		}
	}
	if env, err := protocol.ParseEnvelope(raw); err == nil {
		if err := e.takeCustody(env, raw, w.from); err != nil {
			e.counters.CustodyRefused++
		}
	}
}

// restore loads persisted records.
func (e *Engine) restore(recs []Record) error {
	var bad int
	var first error
	ts := protocol.TimestampOf(e.now)
	for _, rec := range recs {
		err := e.restoreOne(rec, ts)
		if err != nil {
			bad++
			if first == nil {
				first = err
			}
		}
	}
	e.finishRestore()
	if bad > 0 {
		return fmt.Errorf("restore: %d of %d records skipped, first: %w", bad, len(recs), first)
	}
	return nil
}

func (e *Engine) restoreOne(rec Record, now protocol.Timestamp) error {
	switch {
	case rec.Key == seqKey:
		if len(rec.Value) != 4 {
			return fmt.Errorf("sequence record: %w", ErrCorruptRecord)
		}
		e.ownSeq = max(e.ownSeq, binary.BigEndian.Uint32(rec.Value))
		return nil
	case len(rec.Key) == 34 && rec.Key[:2] == "c/":
		id, err := parseID(rec.Key[2:])
		if err != nil {
			return err
		}
		r, err := decodeCustody(id, rec.Value)
		if err != nil {
			return err
		}
		if r.expires <= now {
			e.del(rec.Key)
			return nil
		}
		r.nextTry = e.now // retry soon after a restart
		e.restoreCustody(r)
		e.seen.addAt(id, e.now)
		return nil
	case len(rec.Key) == 34 && rec.Key[:2] == "d/":
		id, err := parseID(rec.Key[2:])
		if err != nil {
			return err
		}
		if len(rec.Value) != 4 {
			return fmt.Errorf("delivered record %s: %w", rec.Key, ErrCorruptRecord)
		}
		if exp := protocol.Timestamp(binary.BigEndian.Uint32(rec.Value)); exp > now {
			e.delivered.add(id, exp)
		} else {
			e.del(rec.Key)
		}
		return nil
	}
	return fmt.Errorf("record %q: unknown key: %w", rec.Key, ErrCorruptRecord)
}

func parseID(s string) (MessageID, error) {
	a, err := protocol.ParseAddress(s)
	if err != nil {
		return MessageID{}, fmt.Errorf("record key %q: %w", s, ErrCorruptRecord)
	}
	return MessageID(a), nil
}
