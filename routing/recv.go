package routing

import (
	"errors"
	"fmt"
	"time"

	"meshd.dev/meshd/protocol"
)

// handleFrame dispatches one frame from a link. inner is set for frames
// unwrapped from a hop frame or reassembled from fragments.
func (e *Engine) handleFrame(l *link, frame []byte, snr float64, hasSNR, inner bool) error {
	kind, err := protocol.PeekKind(frame)
	if err != nil {
		e.counters.FramesMalformed++
		return err
	}
	switch kind {
	case protocol.KindEnvelope:
		return e.handleEnvelope(l, frame)
	case protocol.KindAdvert:
		return e.handleAdvertFrom(l, frame, inner)
	case protocol.KindPathRequest:
		return e.handlePathRequest(l, frame)
	case protocol.KindHopAck:
		id, err := protocol.ParseHopAck(frame)
		if err != nil {
			e.counters.FramesMalformed++
			return err
		}
		e.hopAcked(l, envKey(id))
		return nil
	case protocol.KindChannel, protocol.KindChannelSigned:
		return e.handleChannel(l, frame, snr, hasSNR)
	case protocol.KindSessionInit:
		return e.handleSessionInit(l, frame)
	case protocol.KindSessionAccept:
		return e.handleSessionAccept(l, frame)
	case protocol.KindSessionData:
		return e.handleSessionData(l, frame)
	case protocol.KindSessionReset:
		return e.handleSessionReset(l, frame)
	case protocol.KindHop:
		if inner {
			e.counters.FramesMalformed++
			return fmt.Errorf("nested hop frame: %w", ErrBadInput)
		}
		next, in, err := protocol.ParseHop(frame)
		if err != nil {
			e.counters.FramesMalformed++
			return err
		}
		if next != e.self {
			e.counters.FramesNotForUs++
			return nil
		}
		return e.handleFrame(l, in, snr, hasSNR, true)
	case protocol.KindFragment:
		if inner {
			e.counters.FramesMalformed++
			return fmt.Errorf("fragment inside a fragment: %w", ErrBadInput)
		}
		obj, err := e.reassembler(l).Add(e.now, linkSource(l.info.ID), frame)
		if err != nil {
			e.counters.FramesMalformed++
			return err
		}
		if obj == nil {
			return nil
		}
		e.counters.Reassembled++
		return e.handleFrame(l, obj, snr, hasSNR, false)
	}
	e.counters.FramesUnknown++
	return fmt.Errorf("frame of kind %v: %w", kind, ErrBadInput)
}

// reassembler returns the reassembler for fragments from l: a radio's own,
// or the one the point-to-point links share (they rarely fragment: only
// envelopes over their 64 KiB MTU). A radio carries every envelope in
// fragments, and its groups take seconds to complete: with one budget for
// all, a fast neighbour's first fragments would evict them.
func (e *Engine) reassembler(l *link) *protocol.Reassembler {
	if !l.info.Shared {
		return e.reasm
	}
	if l.reasm == nil {
		l.reasm = newRadioReassembler()
	}
	return l.reasm
}

// handleEnvelope verifies (once), deduplicates, delivers or forwards an
// envelope. Everything is keyed on the envelope key (protocol.EnvelopeKey),
// which no forwarder can give to another envelope: reusing a message's ID
// makes a different message, not a duplicate.
func (e *Engine) handleEnvelope(l *link, raw []byte) error {
	e.counters.EnvelopesIn++
	key, err := protocol.EnvelopeKeyOf(raw)
	if err != nil {
		e.counters.FramesMalformed++
		return err
	}
	if e.delivered.has(key) {
		// Delivered here before: the sender did not get our receipt (or
		// a copy took another path). Answer from what we kept, without
		// opening or verifying the copy.
		e.duplicate(l, key)
		e.counters.DuplicateDelivered++
		e.resendReceipt(key)
		return nil
	}
	env, err := protocol.ParseEnvelope(raw)
	if err != nil {
		e.counters.FramesMalformed++
		return err
	}
	if env.Dest == e.self {
		return e.handleOwn(l, env, key, raw)
	}
	if at, seen := e.seen.seenAt(key); seen && e.now.Sub(at) < e.dupWindow() {
		// A duplicate: a copy over another path, or a hop-level
		// retransmission. Copies older than the window are end-to-end
		// retries (the receipt has not reached the origin) and go through
		// again below.
		e.duplicate(l, key)
		return nil
	}
	if r := e.custody.get(key); r != nil && r.origin {
		// Our own envelope come back (a neighbour echoing it, a routing
		// loop): we retry it ourselves, never as its forwarder. The seen
		// cache above stops only those sealed at send, within the
		// window, not those sealed later (once the recipient's key came,
		// a session message gone on as an envelope): TestAttackEchoOwnFrames.
		e.duplicate(l, key)
		return nil
	}
	if err := e.verifyOnce(env, key, raw); err != nil {
		return err
	}
	if err := e.admitSealed(l, env, len(raw)); err != nil {
		return err // before the seen cache and the hop ack: a later copy may pass
	}
	if !e.seen.addAt(key, e.now) {
		e.seen.touch(key, e.now)
	}
	e.seen.markVerified(key, raw)
	if l.info.HopAcks {
		e.sendHopAck(l, key)
	}
	if env.Type == protocol.TypeReceipt {
		e.receiptPassing(env)
	}
	fwd := cloneFrame(raw)
	if err := protocol.IncrementHopCount(fwd); err != nil {
		e.counters.HopLimitDrops++
		return nil
	}
	e.forward(env, key, fwd, ownerOf(l))
	return nil
}

// handleOwn handles an envelope addressed to this node that was not
// delivered before. The delivered set, not the seen cache, suppresses its
// copies: a copy that fails (say a sealed-sender envelope under a rewritten
// header, which has the genuine one's key and does not open) must not make
// the genuine one a duplicate.
func (e *Engine) handleOwn(l *link, env *protocol.Envelope, key envKey, raw []byte) error {
	if e.delivered.hasLegacy(env.ID) {
		// Delivered before an upgrade from format 1, which recorded
		// only the message ID.
		e.duplicate(l, key)
		return nil
	}
	if err := e.verifyOnce(env, key, raw); err != nil {
		return err
	}
	if l.info.HopAcks {
		e.sendHopAck(l, key)
	}
	if err := e.deliver(env, key, l); err != nil {
		// Past the checks a forwarder makes: the neighbour is not to
		// blame (the daemon's guard strikes only what it is).
		return fmt.Errorf("%w: %w", ErrEndToEnd, err)
	}
	return nil
}

// verifyOnce checks an envelope's times, and its signature unless this node
// verified this very envelope (same key, same bytes) before.
func (e *Engine) verifyOnce(env *protocol.Envelope, key envKey, raw []byte) error {
	if e.seen.wasVerified(key, raw) {
		// An end-to-end retry of an envelope verified before: only its
		// times need checking again.
		e.counters.EnvelopeVerifySkipped++
		if err := env.CheckTime(e.now, e.cfg.ClockSkew); err != nil {
			e.counters.EnvelopesInvalid++
			return err
		}
		return nil
	}
	if err := env.Verify(e.now, e.cfg.ClockSkew); err != nil {
		e.counters.EnvelopesInvalid++
		return err
	}
	return nil
}

// duplicate counts a suppressed copy and acknowledges it again on a hop-ack
// link (our first ack may have been lost).
func (e *Engine) duplicate(l *link, key envKey) {
	e.counters.Duplicates++
	if l.info.HopAcks {
		e.sendHopAck(l, key)
	}
}

// dupWindow is how long a forwarded envelope's key suppresses copies: half
// the custody retry base, so an origin's end-to-end retry is never mistaken
// for a duplicate.
func (e *Engine) dupWindow() time.Duration { return e.cfg.RetryBase / 2 }

// sendHopAck acknowledges an envelope to the neighbour that sent it. The
// ack names the envelope key: the 16-byte field that held the message ID.
func (e *Engine) sendHopAck(l *link, key envKey) {
	if e.emit(l, Address{}, protocol.AppendHopAck(nil, MessageID(key)), PriControl) {
		e.counters.HopAcksSent++
	}
}

// deliver handles an envelope addressed to this node, from link l, verified
// by handleEnvelope: opening it does not check the outer signature again.
func (e *Engine) deliver(env *protocol.Envelope, key envKey, l *link) error {
	switch env.Type {
	case protocol.TypeReceipt:
		e.handleReceipt(env)
		e.markDelivered(key, env.ID, deliveredEntry{expires: env.Expires})
		return nil
	case protocol.TypeControl:
		err := e.handleControl(env, l)
		e.markDelivered(key, env.ID, deliveredEntry{expires: env.Expires})
		return err
	case protocol.TypeSessionMessage:
		return e.deliverSessionEnvelope(env, key)
	case protocol.TypeEcho:
		return e.answerEcho(env, key)
	}
	d := Delivery{ID: env.ID, Key: key, Type: env.Type, Created: env.Created, Expires: env.Expires, Hops: env.HopCount}
	if env.Flags&protocol.FlagSealed != 0 {
		op, err := env.OpenVerified(e.id)
		if err != nil {
			e.counters.OpenFailed++
			return err
		}
		d.From, d.Sender, d.Body = op.From, op.Sender, op.Body
	} else {
		d.From, d.Sender, d.Body = env.Sender.Address(), env.Sender, env.Payload
	}
	ent := deliveredEntry{expires: env.Expires}
	if env.Flags&protocol.FlagWantReceipt != 0 {
		ent.from, ent.sealed = d.From, env.Flags&protocol.FlagSealedSender != 0
	}
	d.Record = e.markDelivered(key, env.ID, ent)
	e.rd.Deliveries = append(e.rd.Deliveries, d)
	e.counters.Delivered++
	if !ent.from.IsZero() {
		e.sendReceipt(key, ent)
	}
	return nil
}

// markDelivered records the delivery of the envelope with key and returns
// the key of its delivered record (Delivery.Record).
func (e *Engine) markDelivered(key envKey, id MessageID, ent deliveredEntry) string {
	e.deliveredOrder++
	r := deliveredRef{k: key, order: e.deliveredOrder}
	// Callers deliver only what the set does not hold; were key in it
	// (a legacy entry under the same 16 bytes), the new record would be
	// an extra one, which the next restore deletes (addRestored).
	evicted, _ := e.delivered.add(r, ent)
	for _, old := range evicted {
		e.del(old.recordKey())
		e.receipts.forget(old.k)
	}
	rk := r.recordKey()
	e.persist(rk, encodeDelivered(ent, id, key, r.order))
	return rk
}

// sendReceipt signs a receipt for the envelope with key and sends it to its
// sender; the envelope carrying it lives as long as the message did. The
// receipt envelope is kept (bounded) so copies of the message are answered
// without new cryptography.
//
// For an ordinary message it is a clear envelope signed by this node: every
// forwarder can see who confirms what to whom, as they saw the message.
// For a sealed-sender message it is sealed to the sender with sealed
// sender, under a fresh random ID: forwarders see an envelope for the
// sender and nothing of who sends it or which message it confirms. That
// needs the sender's KEM key; without it the receipt waits in custody, like
// an application message awaiting a key, while a path request asks for the
// key (see sendSealedReceipt).
func (e *Engine) sendReceipt(key envKey, ent deliveredEntry) {
	e.delivered.receiptSent(key, protocol.TimestampOf(e.now))
	rc := protocol.NewReceipt(e.id, key, protocol.TimestampOf(e.now))
	payload, _ := rc.MarshalBinary()
	var raw []byte
	var err error
	if ent.sealed {
		raw, err = e.sendSealedReceipt(key, ent.from, payload, ent.expires)
	} else {
		raw, err = e.sendControl(ent.from, protocol.TypeReceipt, payload, ent.expires)
	}
	if err != nil {
		return
	}
	// raw is nil for a sealed receipt waiting in custody for the origin's
	// key: kept as such, so copies do not queue more of them.
	e.receipts.put(key, raw)
	e.counters.ReceiptsSent++
}

// sendSealedReceipt seals a receipt to its origin with sealed sender. If
// the origin's KEM key is unknown, the receipt waits for it in a pending
// custody record (nil envelope, no error), sealed when the key arrives. The
// path request that asks for the key tells the nodes it reaches that this
// node wants the origin's key (not which message it received, nor that the
// request follows one): the price of a receipt the sender can rely on. The
// alternative, no receipt, would leave the sender retrying to expiry and
// reporting a delivered message as expired.
func (e *Engine) sendSealedReceipt(msg envKey, to Address, payload []byte, expires protocol.Timestamp) ([]byte, error) {
	h, err := e.controlHeader(to, protocol.TypeReceipt, sealedReceiptExpiry(protocol.TimestampOf(e.now), expires))
	if err != nil {
		return nil, err
	}
	pub, err := publicOf(e.table.get(to))
	if err != nil {
		return nil, e.pendingReceipt(msg, h, payload)
	}
	env, err := protocol.SealEnvelope(e.cfg.Rand, e.id, pub, h, payload,
		protocol.SealOptions{SealedSender: true, Padding: e.cfg.Padding})
	if err != nil {
		return nil, err
	}
	return e.sendOwn(env)
}

// sealedReceiptExpiry is when a sealed receipt for a message expiring at
// msg expires: the message's remaining lifetime rounded up to a power of
// two hours (at most protocol.MaxLifetime). Not the message's expiry, which
// would show anyone who saw both envelopes which message the receipt
// confirms; not earlier, so the kept receipt answers every copy.
func sealedReceiptExpiry(now, msg protocol.Timestamp) protocol.Timestamp {
	maxLife := protocol.Timestamp(protocol.MaxLifetime / time.Second)
	life := protocol.Timestamp(3600)
	for now+life < msg && life < maxLife {
		life *= 2
	}
	return now + min(life, maxLife)
}

// pendingReceipt keeps a sealed receipt whose origin's key is unknown. The
// record is marked origin (it is the only kind that may wait for a key) but
// reports no events, and the quotas charge it as forwarded traffic (see
// custodyQuota.isOwn); once sealed it is an ordinary forwarder record,
// released on hand-over (see sealStored).
func (e *Engine) pendingReceipt(msg envKey, h protocol.Header, payload []byte) error {
	r := &custodyRec{
		key: pendingKey(h.ID), id: h.ID, dest: h.Dest, origin: true, awaitingKey: true, sealedSender: true,
		typ: protocol.TypeReceipt, created: h.Created, expires: h.Expires, data: payload, receiptFor: msg,
	}
	if e.custody.admit(r) != nil || !e.custody.add(r) {
		e.counters.ReceiptsWithheld++
		return fmt.Errorf("receipt for %v: %w", h.Dest, ErrCustodyFull)
	}
	e.persistCustody(r)
	e.attempt(r)
	return nil
}

// receiptInterval bounds how often copies of one delivered message are
// answered: once per duplicate window, which is at most once per origin
// retry (retries are at least RetryBase apart).
func (e *Engine) receiptInterval() time.Duration { return e.dupWindow() }

// resendReceipt answers a copy of a delivered message: the kept receipt
// envelope again, or (evicted, or after a restart) a new one, at most once
// per interval. Never by opening the copy.
func (e *Engine) resendReceipt(key envKey) {
	ent, ok := e.delivered.get(key)
	if !ok || ent.from.IsZero() {
		return
	}
	now := protocol.TimestampOf(e.now)
	if ent.lastReceipt != 0 && int64(now)-int64(ent.lastReceipt) < int64(e.receiptInterval()/time.Second) {
		e.counters.ReceiptsThrottled++
		return
	}
	raw, ok := e.receipts.get(key)
	if !ok {
		e.sendReceipt(key, ent)
		return
	}
	if raw == nil {
		e.counters.ReceiptsThrottled++ // still waiting in custody for the key
		return
	}
	env, err := protocol.ParseEnvelope(raw)
	if err != nil {
		return
	}
	e.delivered.receiptSent(key, now)
	e.sendOwnRaw(env, env.Key(), raw)
	e.counters.ReceiptsSent++
}

// controlHeader is the header of an envelope of the engine's own (receipts,
// custody control), with a fresh random ID.
func (e *Engine) controlHeader(dest Address, typ protocol.Type, expires protocol.Timestamp) (protocol.Header, error) {
	now := protocol.TimestampOf(e.now)
	if expires <= now {
		expires = now + 60
	}
	var id MessageID
	if err := e.randBytes(id[:]); err != nil {
		return protocol.Header{}, err
	}
	return protocol.Header{Type: typ, HopLimit: e.cfg.HopLimit, ID: id, Created: now, Expires: expires, Dest: dest}, nil
}

// sendControl sends a clear, signed envelope of our own (receipts, custody
// control) to dest, with custody if there is no route, and returns it.
func (e *Engine) sendControl(dest Address, typ protocol.Type, payload []byte, expires protocol.Timestamp) ([]byte, error) {
	h, err := e.controlHeader(dest, typ, expires)
	if err != nil {
		return nil, err
	}
	env, err := protocol.SignEnvelope(e.id, h, payload)
	if err != nil {
		return nil, err
	}
	return e.sendOwn(env)
}

// sendOwn sends an envelope of the engine's own.
func (e *Engine) sendOwn(env *protocol.Envelope) ([]byte, error) {
	raw, err := env.MarshalBinary()
	if err != nil {
		return nil, err
	}
	key := env.Key()
	e.seen.addAt(key, e.now)
	e.sendOwnRaw(env, key, raw)
	return raw, nil
}

// handleReceipt clears custody of the envelope a receipt names.
func (e *Engine) handleReceipt(env *protocol.Envelope) {
	e.counters.ReceiptsIn++
	rc, err := e.checkReceipt(env)
	if err != nil {
		e.counters.ReceiptsInvalid++
		return
	}
	r := e.custody.get(rc.Key)
	if r == nil || r.dest != rc.Recipient {
		return
	}
	e.dropCustody(r)
	e.counters.CustodyCleared++
	if r.origin {
		e.rd.Events = append(e.rd.Events, Event{Kind: EventDelivered, Ref: r.ref, ID: r.id, Dest: r.dest, Hops: env.HopCount})
	}
}

// receiptPassing lets a custodian on the way clear its copy of a message
// whose clear receipt it forwards. A sealed receipt shows forwarders
// nothing to clear on: their copies go on hop acks and hand-offs.
func (e *Engine) receiptPassing(env *protocol.Envelope) {
	if env.Flags&protocol.FlagSealed != 0 {
		return
	}
	rc, err := e.checkReceipt(env)
	if err != nil {
		return
	}
	if r := e.custody.get(rc.Key); r != nil && !r.origin && r.dest == rc.Recipient {
		e.dropCustody(r)
		e.counters.CustodyCleared++
	}
}

// checkReceipt verifies a receipt envelope: whoever signed it (the outer
// signature, or the inner one of a sealed receipt, opened here) must be the
// recipient the receipt names.
func (e *Engine) checkReceipt(env *protocol.Envelope) (*protocol.Receipt, error) {
	signer, payload := env.Sender, env.Payload
	if env.Flags&protocol.FlagSealed != 0 {
		op, err := env.OpenVerified(e.id)
		if err != nil {
			return nil, err
		}
		signer, payload = op.Sender, op.Body
	}
	rc, err := protocol.ParseReceipt(payload)
	if err != nil {
		return nil, err
	}
	if rc.Recipient != signer.Address() {
		return nil, fmt.Errorf("receipt for %v signed by %v: %w", rc.Recipient, signer.Address(), ErrBadInput)
	}
	if err := rc.Verify(signer); err != nil {
		return nil, err
	}
	return rc, nil
}

// handleControl handles custody offers, custody answers and expiry notices
// sent to this node, from link l.
func (e *Engine) handleControl(env *protocol.Envelope, l *link) error {
	src, ok := env.Source()
	if !ok || len(env.Payload) == 0 {
		return fmt.Errorf("control envelope without a sender: %w", ErrBadInput)
	}
	switch protocol.Kind(env.Payload[0]) {
	case protocol.KindCustodyOffer:
		inner, err := protocol.ParseCustodyOffer(env.Payload)
		if err != nil {
			return err
		}
		key := inner.Key()
		if inner.Dest == e.self {
			return e.offeredToSelf(inner, key, l, src) // mailbox.go
		}
		if e.stampWanted(src) {
			return e.askStamp(src, key, env.Expires)
		}
		status := e.acceptOffer(inner, key, l)
		// The answer names the envelope key, which the offerer's
		// record is keyed on.
		_, err = e.sendControl(src, protocol.TypeControl, protocol.AppendCustodyAccept(nil, MessageID(key), status), env.Expires)
		return err
	case protocol.KindCustodyOfferStamped:
		return e.stampedOffer(env, src, l)
	case protocol.KindCustodyAccept:
		id, status, bits, err := protocol.ParseCustodyAnswer(env.Payload)
		if err != nil {
			return err
		}
		if status == protocol.CustodyRefusedStamp {
			return e.stampAsked(envKey(id), src, bits)
		}
		e.offerAnswered(envKey(id), src, status)
		return nil
	case protocol.KindExpiryNotice:
		id, err := protocol.ParseExpiryNotice(env.Payload)
		if err != nil {
			return err
		}
		// Believe a notice only for a message that has expired by our
		// clock too, give or take the tolerated skew: anyone who saw the
		// message go by could send one. Then the message is over here as
		// well; keeping it would report it expired a second time (or
		// delivered after expired).
		if r := e.custody.get(envKey(id)); r != nil && r.origin && !r.expires.Time().After(e.now.Add(e.cfg.ClockSkew)) {
			e.dropCustody(r)
			e.counters.CustodyExpired++
			e.rd.Events = append(e.rd.Events, Event{Kind: EventExpired, Ref: r.ref, ID: r.id, Dest: r.dest,
				Err: fmt.Errorf("custodian %v gave up on it", src)})
		}
		return nil
	}
	return fmt.Errorf("control payload of kind %v: %w", protocol.Kind(env.Payload[0]), ErrBadInput)
}

// acceptOffer decides on a custody offer from another node that came over
// link l: the offer is charged to that neighbour's share. Holding the
// envelope already is acceptance; a record is never replaced.
func (e *Engine) acceptOffer(inner *protocol.Envelope, key envKey, l *link) protocol.CustodyStatus {
	if !e.cfg.Mailbox || inner.Dest == e.self {
		// An offer to its destination is handled before (offeredToSelf);
		// kept, it would wait for a route to this node until it expired.
		return protocol.CustodyRefusedPolicy
	}
	if err := inner.Verify(e.now, e.cfg.ClockSkew); err != nil {
		return protocol.CustodyRefusedPolicy
	}
	raw, err := inner.MarshalBinary()
	if err != nil {
		return protocol.CustodyRefusedPolicy
	}
	if e.custody.get(key) != nil {
		return protocol.CustodyAccepted
	}
	if err := e.takeMailboxCustody(inner, key, raw, ownerOf(l)); err != nil {
		if errors.Is(err, ErrCustodyFull) {
			return protocol.CustodyRefusedQuota
		}
		return protocol.CustodyRefusedPolicy
	}
	e.seen.addAt(key, e.now)
	return protocol.CustodyAccepted
}

// receiptCacheSize bounds the receipt envelopes kept to answer copies of
// delivered messages (a sealed one is about 1.3 KiB: some 5 MiB at most).
const receiptCacheSize = 4096

// receiptCache keeps the receipt envelopes last sent, by the key of the
// message they confirm, forgetting the oldest when full.
type receiptCache struct {
	m    map[envKey][]byte
	ring []envKey
	next int
	size int
}

func newReceiptCache(size int) *receiptCache {
	return &receiptCache{m: make(map[envKey][]byte), size: size}
}

// get returns the receipt envelope kept for k; nil with ok if the receipt
// waits in custody for its origin's key.
func (c *receiptCache) get(k envKey) (raw []byte, ok bool) {
	raw, ok = c.m[k]
	return raw, ok
}

func (c *receiptCache) forget(k envKey) { delete(c.m, k) }

func (c *receiptCache) put(k envKey, raw []byte) {
	if _, ok := c.m[k]; !ok {
		if len(c.ring) < c.size {
			c.ring = append(c.ring, k)
		} else {
			delete(c.m, c.ring[c.next])
			c.ring[c.next] = k
			c.next = (c.next + 1) % len(c.ring)
		}
	}
	c.m[k] = raw
}
