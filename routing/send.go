package routing

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strconv"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

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
	if in.Type != protocol.TypeMessage && in.Type != protocol.TypeFAPP && in.Type != protocol.TypeEcho {
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
	now := protocol.TimestampOf(e.now)
	r := &custodyRec{
		dest: in.Dest, origin: true, sealedSender: in.SealedSender, typ: in.Type, ref: in.Ref,
		created: now, expires: now + protocol.Timestamp(max(ttl/time.Second, 1)),
	}
	// Drawn into the record, which is on the heap anyway: a local array
	// handed to the random source (an interface) would escape, one more
	// allocation per message.
	if err := e.randBytes(r.id[:]); err != nil {
		return refuse(fmt.Errorf("send: message ID: %w", err))
	}
	id := r.id
	if in.Dest == e.self {
		// The body is copied, as on every other path: a caller may reuse
		// its buffer before the Ready is carried out (TestSendRequestBodyReused).
		e.rd.Deliveries = append(e.rd.Deliveries, Delivery{
			ID: id, Type: in.Type, From: e.self, Sender: e.id.Compact(), Body: append([]byte(nil), in.Body...),
			Created: r.created, Expires: r.expires,
		})
		e.counters.Sent++
		e.rd.Events = append(e.rd.Events, Event{Kind: EventAccepted, Ref: in.Ref, ID: id, Dest: in.Dest, Status: StatusLocal})
		return nil
	}
	d := e.table.get(in.Dest)
	switch {
	case !e.cfg.NoSessions && !in.SealedSender && in.Type == protocol.TypeMessage && fitsSession(in.Body) && e.sessionReachable(d) && !e.sessionsOff(in.Dest):
		// Session frames carry no type: other types keep envelopes, and
		// so do bodies larger than a session frame holds. A
		// session message whose route breaks goes on as an envelope of
		// type session message, which the recipient deduplicates on the
		// session message key (session_fallback.go).
		e.sessionMessage(r, in.Body)
		id = r.id
	case d == nil || d.kemKey == nil || !d.known:
		r.key, r.awaitingKey = pendingKey(id), true
		r.data = append([]byte(nil), in.Body...)
	default:
		if err := e.seal(r, d, in.Body); err != nil {
			return refuse(err)
		}
	}
	// The node's own messages count against the total quota only: the
	// other quotas protect against other nodes' traffic (quota.go).
	if e.custody.admit(r) != nil {
		return refuse(fmt.Errorf("send to %v: %w", in.Dest, ErrCustodyFull))
	}
	if !r.session {
		// A session message's key is never an envelope's, the only
		// keys the cache is asked about (TestSessionMessagesLeaveSeenCache).
		e.seen.addAt(r.key, e.now)
	}
	if !e.custody.add(r) {
		// Only a repeated draw of the same ID or envelope could get here.
		return refuse(fmt.Errorf("send to %v: message %v already in custody: %w", in.Dest, id, ErrBadInput))
	}
	e.counters.Sent++
	e.persistCustody(r)
	status := e.attempt(r)
	e.rd.Events = append(e.rd.Events, Event{Kind: EventAccepted, Ref: in.Ref, ID: id, Dest: in.Dest, Status: status})
	return nil
}

// fitsSession reports whether body fits one session frame's plaintext
// (protocol.MaxSessionPlaintext, 16 KiB); a larger one, up to the
// envelope's limit, goes as an envelope.
func fitsSession(body []byte) bool {
	return len(body)+protocol.SessionNumberSize <= protocol.MaxSessionPlaintext
}

// publicOf returns d's public identity, if its KEM key is known.
func publicOf(d *destEntry) (*protocol.PublicIdentity, error) {
	if d == nil || !d.known || d.kemKey == nil {
		return nil, fmt.Errorf("key unknown: %w", ErrBadInput)
	}
	enc := make([]byte, 0, protocol.PublicIdentitySize)
	enc = append(append(append(enc, 1), d.ident.SigningKey[:]...), d.kemKey...)
	pub, err := protocol.ParsePublicIdentity(enc)
	if err != nil || pub.Address() != d.dest {
		return nil, fmt.Errorf("bad key: %w", ErrBadInput)
	}
	return pub, nil
}

// seal turns a pending body into a sealed envelope for d. The record then
// has its envelope's key; a caller whose record is already stored re-keys
// it (see sealStored).
func (e *Engine) seal(r *custodyRec, d *destEntry, body []byte) error {
	pub, err := publicOf(d)
	if err != nil {
		return fmt.Errorf("seal for %v: %w", r.dest, err)
	}
	h := protocol.Header{
		Type: r.typ, HopLimit: e.cfg.HopLimit, ID: r.id, Created: r.created, Expires: r.expires,
		Dest: r.dest, WantReceipt: r.typ != protocol.TypeReceipt,
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
	r.data, r.awaitingKey, r.key = raw, false, env.Key()
	if r.typ == protocol.TypeReceipt {
		// A sealed receipt wants no receipt: from now on it is held
		// like any forwarded envelope.
		r.origin = false
	}
	return nil
}

// sealStored seals a stored pending record and moves it (in memory and in
// storage) from its pending key to its envelope's key.
func (e *Engine) sealStored(r *custodyRec, d *destEntry) error {
	old := r.key
	// Release the record's charge before sealing changes what it is (its
	// size, and for a sealed receipt whether it counts as the node's own).
	e.custody.remove(old)
	if err := e.seal(r, d, r.data); err != nil {
		e.custody.add(r)
		return err
	}
	e.del(custodyKey(old))
	if !e.custody.add(r) {
		return fmt.Errorf("seal for %v: envelope key %v taken: %w", r.dest, r.key, ErrBadInput)
	}
	e.persistCustody(r)
	if r.typ == protocol.TypeReceipt && r.receiptFor != (envKey{}) {
		// Copies of the message it confirms are answered with it now.
		e.receipts.put(r.receiptFor, r.data)
	}
	return nil
}

// sessionReachable says whether a message to d travels over a route
// session. Not when d's key is known but d has no route now (it is
// probably offline): such a message is sealed into an envelope, which a
// mailbox can hold (handOff); a session frame cannot be handed off. A
// destination whose key is unknown is looked up first either way (an
// envelope needs the key too), and then reached over a session.
func (e *Engine) sessionReachable(d *destEntry) bool {
	if d == nil || !d.known || d.kemKey == nil {
		return true
	}
	c, ok := d.route()
	return ok && e.links[c.link] != nil
}

// persistCustody writes a record. A body that is not an envelope yet (a
// message waiting for its recipient's key, a session message) is the
// application's plaintext: it is stored encrypted under the node's
// at-rest key, never in the clear (TestAttackCustodyBodyOnDisk).
func (e *Engine) persistCustody(r *custodyRec) {
	if !r.awaitingKey && !r.session {
		e.persist(custodyKey(r.key), encodeCustody(r))
		return
	}
	n := len(r.data) + atRestOverhead
	b := appendCustodyHead(make([]byte, 0, custodyHeader+n), r, true, n)
	e.persist(custodyKey(r.key), e.atRest.Seal(b, r.key[:chacha20poly1305.NonceSize], r.data, r.key[:]))
}

// openAtRest decrypts a body persistCustody sealed. The record key is both
// nonce and associated data: a record's body never changes under its key,
// and a body moved under another key does not open.
func (e *Engine) openAtRest(r *custodyRec) error {
	if !r.bodySealed {
		return nil
	}
	pt, err := e.atRest.Open(nil, r.key[:chacha20poly1305.NonceSize], r.data, r.key[:])
	if err != nil {
		return fmt.Errorf("custody record %x: body does not open: %w", r.key, ErrCorruptRecord)
	}
	r.data, r.bodySealed = pt, false
	return nil
}

// atRestKey derives the key custody bodies are encrypted under from the
// identity's signing seed: only the node itself can read them, and a
// store copied without the identity key file reveals no message.
func atRestKey(id *protocol.Identity) cipher.AEAD {
	k, err := hkdf.Key(sha256.New, id.SigningKey().Seed(), nil, "meshd/custody-at-rest/v1", chacha20poly1305.KeySize)
	if err != nil {
		panic("routing: hkdf: " + err.Error())
	}
	a, err := chacha20poly1305.New(k)
	if err != nil {
		panic("routing: chacha20poly1305: " + err.Error())
	}
	return a
}

// attempt tries to move a custody record forward now: seal it if its key is
// known, send it if there is a route, otherwise ask for a route. It sets the
// next retry and reports where the message stands.
func (e *Engine) attempt(r *custodyRec) SendStatus {
	if r.session {
		return e.attemptSession(r)
	}
	d := e.table.get(r.dest)
	if r.awaitingKey {
		if d != nil && d.kemKey != nil && d.known {
			_ = e.sealStored(r, d) // on failure it stays pending and is retried
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
			if r.mailboxed && !e.toDest(r, c) && e.offerToRecipient(r) { // mailbox.go
				r.attempts++
				e.counters.CustodyRetries++
				r.toDest = false
				e.backoff(r)
				return StatusRouted
			}
			if l := e.links[c.link]; l != nil && e.transmitEnvelope(l, c.via, r.data, r.dest, r.key, e.custody.ownerOf(r)) {
				r.attempts++
				e.counters.CustodyRetries++
				r.toDest = e.toDest(r, c) // mailbox.go
				if r.origin || r.keepsCopy() {
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
	return e.awaitRoute(r, d)
}

// awaitRoute is what becomes of a record attempt could not send (d is its
// destination's entry, if any): it asks for a route, is offered to a
// mailbox after enough attempts, and waits for its next retry.
func (e *Engine) awaitRoute(r *custodyRec, d *destEntry) SendStatus {
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
func (e *Engine) transmitEnvelope(l *link, via Address, raw []byte, dest Address, key envKey, from owner) bool {
	pri := PriData
	if k, err := protocol.PeekKind(raw); err == nil && k == protocol.KindEnvelope && len(raw) > 1 &&
		(protocol.Type(raw[1]) == protocol.TypeReceipt || protocol.Type(raw[1]) == protocol.TypeControl) {
		pri = PriControl
	}
	frame := raw
	if l.info.Shared && !via.IsZero() {
		frame = protocol.AppendHop(make([]byte, 0, 17+len(raw)), via, raw)
	}
	if !e.enqueue(l, qitem{frame: frame, to: via, pri: pri, release: key, hasRelease: true, owner: from}) {
		return false
	}
	if l.info.HopAcks {
		if w := e.hopAcks[key]; w == nil {
			e.hopAcks[key] = &ackWait{link: l.info.ID, to: via, frame: frame, dest: dest, from: from}
		}
	}
	return true
}

// forward sends an envelope that is not ours towards its destination, or
// takes custody of it. from is the neighbour it came from, whose share of
// queues and custody it is charged to.
func (e *Engine) forward(env *protocol.Envelope, key envKey, raw []byte, from owner) {
	if e.routeOrKeep(env, key, raw, from) {
		e.counters.Forwarded++
	}
}

// sendOwnRaw sends an encoded envelope of the engine's own (receipts,
// custody control) like forward, without counting it as forwarded (a sealed
// receipt has no sender block to tell it from others' envelopes).
func (e *Engine) sendOwnRaw(env *protocol.Envelope, key envKey, raw []byte) {
	e.routeOrKeep(env, key, raw, owner{})
}

// routeOrKeep queues an envelope for its next hop, or takes custody of it,
// and reports whether it was queued.
func (e *Engine) routeOrKeep(env *protocol.Envelope, key envKey, raw []byte, from owner) bool {
	var err error
	switch e.routeWhy(env, key, raw, from) {
	case routeQueued:
		return true
	case routeRefused:
		err = e.keepRefused(env, key, raw, from)
	default:
		err = e.takeCustody(env, key, raw, from)
	}
	if err != nil {
		e.counters.CustodyRefused++
	}
	return false
}

// route queues an envelope for its selected next hop, if there is one.
func (e *Engine) route(env *protocol.Envelope, key envKey, raw []byte, from owner) bool {
	return e.routeWhy(env, key, raw, from) == routeQueued
}

// routeResult is what routeWhy did with an envelope.
type routeResult int

const (
	routeNone    routeResult = iota // no next hop
	routeQueued                     // queued for its next hop
	routeRefused                    // its next hop's queue refused it
)

// routeWhy queues an envelope for its selected next hop, if there is one,
// and says whether it was queued, refused by that hop's queue, or had no
// next hop.
func (e *Engine) routeWhy(env *protocol.Envelope, key envKey, raw []byte, from owner) routeResult {
	if d := e.table.get(env.Dest); d != nil {
		if c, ok := d.route(); ok {
			if l := e.links[c.link]; l != nil {
				if e.transmitEnvelope(l, c.via, raw, env.Dest, key, from) {
					return routeQueued
				}
				return routeRefused
			}
		}
	}
	return routeNone
}

// keepRefused takes custody of an envelope its next hop's queue refused,
// as takeCustody does, but without sending it again at once unless the
// record may displace more than the frame just refused: the same queue, in
// the same state, would refuse it again, and a refusal for the queue
// budget would be counted twice (QueueBudgetDrops). It waits for a route
// change or its first retry, as a record whose attempt was refused does.
func (e *Engine) keepRefused(env *protocol.Envelope, key envKey, raw []byte, from owner) error {
	if e.custody.get(key) != nil {
		return nil
	}
	r, err := e.admitCustody(env, key, raw, from)
	if err != nil {
		return err
	}
	if from.fwd && !e.custody.ownerOf(r).fwd {
		// The node's own envelope come back from a neighbour: as its
		// own it displaces what a neighbour's frame may not.
		e.attempt(r)
		return nil
	}
	e.counters.QueueDeferred++
	e.awaitRoute(r, e.table.get(r.dest))
	return nil
}

// takeCustody keeps an envelope for an unreachable destination, within the
// quotas, and asks for a route. from is the neighbour it came from (zero
// for our own), whose share it is charged to. Holding the envelope already
// (its key) is success: a record is never replaced, so a copy can neither
// demote the origin's own record nor reset another's retries.
func (e *Engine) takeCustody(env *protocol.Envelope, key envKey, raw []byte, from owner) error {
	if e.custody.get(key) != nil {
		return nil
	}
	r, err := e.admitCustody(env, key, raw, from)
	if err != nil {
		return err
	}
	e.attempt(r)
	return nil
}

// admitCustody keeps an envelope no record holds yet, within the quotas,
// without trying to send it.
func (e *Engine) admitCustody(env *protocol.Envelope, key envKey, raw []byte, from owner) (*custodyRec, error) {
	r := &custodyRec{
		key: key, id: env.ID, dest: env.Dest, typ: env.Type, created: env.Created, expires: env.Expires,
		sealedSender: env.Flags&protocol.FlagSealedSender != 0, data: raw,
	}
	r.chargeTo(from, env)
	if err := e.custody.admit(r); err != nil {
		return nil, fmt.Errorf("custody for %v: %w", r.dest, err)
	}
	e.custody.add(r)
	e.persistCustody(r)
	e.counters.CustodyAccepted++
	return r, nil
}

// dropCustody forgets a record and deletes it from storage.
func (e *Engine) dropCustody(r *custodyRec) {
	e.custody.remove(r.key)
	e.del(custodyKey(r.key))
	e.dropWait(r.key)
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
	if r.origin && r.typ == protocol.TypeReceipt {
		return // a receipt that never learned its origin's key: no application event
	}
	if r.origin {
		e.rd.Events = append(e.rd.Events, Event{Kind: EventExpired, Ref: r.ref, ID: r.id, Dest: r.dest})
		return
	}
	// Tell the sender, where we know who it is and it is not this node (a
	// notice to itself would wait in custody, expire and send the next).
	if env, err := protocol.ParseEnvelope(r.data); err == nil {
		if src, ok := env.Source(); ok && src != e.self {
			// The notice names the envelope key, which the origin's
			// record is keyed on.
			if _, err := e.sendControl(src, protocol.TypeControl, protocol.AppendExpiryNotice(nil, MessageID(r.key)),
				protocol.TimestampOf(e.now.Add(24*time.Hour))); err == nil {
				e.counters.ExpiryNoticesSent++
			}
		}
	}
}

// retryDest retries every record for dest now (a route appeared).
func (e *Engine) retryDest(dest Address) {
	for _, r := range e.custody.forDest(dest) {
		e.attempt(r)
	}
}

// keyLearned sends the messages that waited for d's key: it seals the
// envelopes, and starts the session of the session messages (never sent:
// attemptSession asks for the key before anything else), which would
// otherwise wait for their next retry (RetryBase).
func (e *Engine) keyLearned(d *destEntry) {
	for _, r := range e.custody.forDest(d.dest) {
		if r.awaitingKey || r.session && r.frame == nil {
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
	if _, err := e.sendControl(best.dest, protocol.TypeControl, protocol.AppendCustodyOffer(nil, r.data), r.expires); err == nil {
		r.offeredTo = best.dest
	}
}

// offerAnswered handles a mailbox's answer to a custody offer; the answer
// names the offered envelope's key. Only the mailbox it was offered to is
// believed: anyone who saw the envelope knows its key, and a stranger's
// "accepted" would stop the origin's retries or drop a forwarder's copy.
func (e *Engine) offerAnswered(key envKey, mailbox Address, status protocol.CustodyStatus) {
	r := e.custody.get(key)
	if r == nil || status != protocol.CustodyAccepted || r.offeredTo.IsZero() || r.offeredTo != mailbox {
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
	e.rd.Events = append(e.rd.Events, Event{Kind: EventHandedOff, Ref: r.ref, ID: r.id, Dest: r.dest})
}

// hopAcked handles a hop ack from a neighbour on l; it names the envelope
// key. Only an ack on the link the envelope waits on counts: a neighbour on
// another link may know the key too.
func (e *Engine) hopAcked(l *link, key envKey) {
	e.counters.HopAcksIn++
	if w, ok := e.hopAcks[key]; !ok || w.link != l.info.ID {
		return
	}
	e.dropWait(key)
	if r := e.custody.get(key); r != nil && !r.origin && !r.keepsCopy() {
		e.dropCustody(r)
		e.counters.CustodyReleased++
	}
}

// tickHopAcks retransmits envelopes whose hop ack is overdue.
func (e *Engine) tickHopAcks() {
	for _, key := range sortedIDs(e.hopAcks) {
		w, ok := e.hopAcks[key]
		if !ok {
			// An earlier key's retransmission displaced it from its
			// queue, or its failure dropped it: no longer waiting.
			continue
		}
		if w.deadline.IsZero() || w.deadline.After(e.now) {
			continue
		}
		l := e.links[w.link]
		if l == nil || w.tries >= e.cfg.HopAckRetries {
			e.dropWait(key)
			e.counters.RetransmitFailed++
			e.ackFailed(key, w)
			continue
		}
		w.tries++
		e.unholdAck(w) // queued again: the queue holds it
		w.deadline = time.Time{}
		// Still the neighbour's frame (w.from): it takes only its share
		// and does not displace other neighbours' envelopes as ours would.
		if !e.enqueue(l, qitem{frame: w.frame, to: w.to, pri: PriData, release: key, hasRelease: true, owner: w.from}) {
			// Refused: try again after another timeout rather than wait
			// with no deadline for ever.
			e.counters.QueueDrops++
			e.awaitAck(w, e.now.Add(e.ackTimeout(l, len(w.frame))))
			continue
		}
		e.counters.Retransmits++
	}
}

// ackFailed treats a next hop that never acknowledged as unreachable: its
// routes to the destination are dropped and the envelope goes to custody.
func (e *Engine) ackFailed(key envKey, w *ackWait) {
	if d := e.table.get(w.dest); d != nil {
		e.routeChanged(d, d.dropLink(w.link, w.to, e.now))
	}
	if r := e.custody.get(key); r != nil {
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
		if err := e.takeCustody(env, key, raw, w.from); err != nil {
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
	case rec.Key == numberKey:
		if len(rec.Value) != 8 {
			return fmt.Errorf("message number record: %w", ErrCorruptRecord)
		}
		e.lastNumber = max(e.lastNumber, binary.BigEndian.Uint64(rec.Value))
		e.reservedNumber = e.lastNumber
		return nil
	case len(rec.Key) == 10 && rec.Key[:2] == "s/":
		return e.restoreSession(rec)
	case len(rec.Key) == 34 && rec.Key[:2] == "c/":
		k, err := parseID(rec.Key[2:])
		if err != nil {
			return err
		}
		return e.restoreCustody(rec, k, now)
	case len(rec.Key) == deliveredOldKeyLen && rec.Key[:2] == "d/":
		k, err := parseID(rec.Key[2:])
		if err != nil {
			return err
		}
		return e.restoreDeliveredOld(rec, k, now)
	case len(rec.Key) == deliveredOrderKeyLen && rec.Key[:2] == "d/":
		return e.restoreDelivered(rec, now)
	}
	return fmt.Errorf("record %q: unknown key: %w", rec.Key, ErrCorruptRecord)
}

// restoreDeliveredOld loads a delivered record of format 1 or 2, keyed on
// the message ID or the envelope key k: it stays under that key until it
// expires.
func (e *Engine) restoreDeliveredOld(rec Record, k [16]byte, now protocol.Timestamp) error {
	ent, err := decodeDelivered(k, rec.Value)
	if err != nil {
		return err
	}
	if ent.expires <= now {
		e.del(rec.Key)
		return nil
	}
	if e.addRestored(rec.Key, deliveredRef{k: envKey(k)}, ent) && len(rec.Value) == 4 {
		// Format 1 (keyed on the message ID): kept as a legacy
		// entry, rewritten in format 2 under the same key (the
		// envelope key was never recorded).
		e.persist(rec.Key, encodeDelivered(ent, MessageID(k), envKey(k), 0))
	}
	return nil
}

// restoreDelivered loads a delivered record of format 3, keyed on its
// delivery order.
func (e *Engine) restoreDelivered(rec Record, now protocol.Timestamp) error {
	order, err := strconv.ParseUint(rec.Key[2:], 16, 64)
	if err != nil || order == 0 || deliveredKey(envKey{}, order) != rec.Key {
		return fmt.Errorf("delivered record %q: key: %w", rec.Key, ErrCorruptRecord)
	}
	ent, k, err := decodeDeliveredV3(rec.Value)
	if err != nil {
		return fmt.Errorf("delivered record %q: %w", rec.Key, err)
	}
	e.deliveredOrder = max(e.deliveredOrder, order)
	if ent.expires <= now {
		e.del(rec.Key)
		return nil
	}
	e.addRestored(rec.Key, deliveredRef{k: k, order: order}, ent)
	return nil
}

// addRestored adds a restored delivered entry stored under key. A second
// record of one envelope, or a record evicted to stay within the bound,
// is deleted. It reports whether the entry was added.
func (e *Engine) addRestored(key string, r deliveredRef, ent deliveredEntry) bool {
	evicted, ok := e.delivered.add(r, ent)
	if !ok {
		e.del(key)
	}
	for _, old := range evicted {
		e.del(old.recordKey())
	}
	return ok
}

// restoreCustody loads a custody record; one in format 1 (keyed on the
// message ID) moves to its envelope key: persisted anew, the old deleted.
func (e *Engine) restoreCustody(rec Record, k [16]byte, now protocol.Timestamp) error {
	r, err := decodeCustody(k, rec.Value)
	if err != nil {
		return err
	}
	if err := e.openAtRest(r); err != nil {
		return err
	}
	if r.session {
		if n, _, err := protocol.ParseSessionMessage(r.data); err != nil || protocol.SessionMessageKey(e.self, n) != r.key || rec.Key != custodyKey(r.key) {
			return fmt.Errorf("custody record %x: session message key: %w", k, ErrCorruptRecord)
		}
	}
	if r.expires <= now {
		e.del(rec.Key)
		return nil
	}
	r.nextTry = e.now // retry soon after a restart
	if e.custody.get(r.key) != nil || e.isRestoring(r.key) {
		// Two old records of one envelope: the first stays, under the
		// envelope key; that may be this record's own key (the first was
		// in format 1 and was rewritten there), which must not be deleted.
		if rec.Key != custodyKey(r.key) {
			e.del(rec.Key)
		}
		return nil
	}
	if key := custodyKey(r.key); key != rec.Key {
		e.del(rec.Key)
		e.persistCustody(r)
	}
	e.restoreCharged(r) // the quotas decide, once every own record is in
	if !r.session && !r.awaitingKey {
		// Only an envelope's key: the others are never looked up
		// (TestRestoredSessionMessagesLeaveSeenCache).
		e.seen.addAt(r.key, e.now)
	}
	return nil
}

func parseID(s string) ([16]byte, error) {
	a, err := protocol.ParseAddress(s)
	if err != nil {
		return [16]byte{}, fmt.Errorf("record key %q: %w", s, ErrCorruptRecord)
	}
	return a, nil
}
