package routing

import (
	"encoding/binary"
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
		return e.handleAdvert(l, frame)
	case protocol.KindPathRequest:
		return e.handlePathRequest(l, frame)
	case protocol.KindHopAck:
		id, err := protocol.ParseHopAck(frame)
		if err != nil {
			e.counters.FramesMalformed++
			return err
		}
		e.hopAcked(id)
		return nil
	case protocol.KindChannel, protocol.KindChannelSigned:
		return e.handleChannel(l, frame, snr, hasSNR)
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
		obj, err := e.reasm.Add(e.now, linkSource(l.info.ID), frame)
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

// handleEnvelope verifies (once), deduplicates, delivers or forwards an
// envelope.
func (e *Engine) handleEnvelope(l *link, raw []byte) error {
	e.counters.EnvelopesIn++
	id, err := protocol.EnvelopeID(raw)
	if err != nil {
		e.counters.FramesMalformed++
		return err
	}
	var key [16]byte = id
	delivered := e.delivered.has(id)
	if at, seen := e.seen.seenAt(key); delivered || (seen && e.now.Sub(at) < e.dupWindow()) {
		// A duplicate: a copy over another path, or a hop-level
		// retransmission. Copies older than the window are end-to-end
		// retries (the receipt has not reached the origin) and go through
		// again below.
		e.counters.Duplicates++
		if l.info.HopAcks {
			e.sendHopAck(l, id) // our first ack may have been lost
		}
		if delivered {
			// The sender did not get our receipt: send it again.
			if env, err := protocol.ParseEnvelope(raw); err == nil && env.Dest == e.self {
				e.counters.DuplicateDelivered++
				e.resendReceipt(env)
			}
		}
		return nil
	}
	env, err := protocol.ParseEnvelope(raw)
	if err != nil {
		e.counters.FramesMalformed++
		return err
	}
	if e.seen.wasVerified(key, raw) {
		// An end-to-end retry of an envelope verified before: only its
		// times need checking again.
		e.counters.EnvelopeVerifySkipped++
		if err := env.CheckTime(e.now, e.cfg.ClockSkew); err != nil {
			e.counters.EnvelopesInvalid++
			return err
		}
	} else if err := env.Verify(e.now, e.cfg.ClockSkew); err != nil {
		e.counters.EnvelopesInvalid++
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
		e.sendHopAck(l, id)
	}
	if env.Dest == e.self {
		return e.deliver(env, l)
	}
	if env.Type == protocol.TypeReceipt {
		e.receiptPassing(env)
	}
	fwd := cloneFrame(raw)
	if err := protocol.IncrementHopCount(fwd); err != nil {
		e.counters.HopLimitDrops++
		return nil
	}
	e.forward(env, fwd, ownerOf(l))
	return nil
}

// dupWindow is how long a forwarded envelope's ID suppresses copies: half
// the custody retry base, so an origin's end-to-end retry is never mistaken
// for a duplicate.
func (e *Engine) dupWindow() time.Duration { return e.cfg.RetryBase / 2 }

func (e *Engine) sendHopAck(l *link, id MessageID) {
	if e.emit(l, Address{}, protocol.AppendHopAck(nil, id), PriControl) {
		e.counters.HopAcksSent++
	}
}

// deliver handles an envelope addressed to this node, from link l.
func (e *Engine) deliver(env *protocol.Envelope, l *link) error {
	switch env.Type {
	case protocol.TypeReceipt:
		e.handleReceipt(env)
		e.markDelivered(env)
		return nil
	case protocol.TypeControl:
		err := e.handleControl(env, l)
		e.markDelivered(env)
		return err
	}
	d := Delivery{ID: env.ID, Type: env.Type, Created: env.Created, Expires: env.Expires, Hops: env.HopCount}
	if env.Flags&protocol.FlagSealed != 0 {
		op, err := env.Open(e.id)
		if err != nil {
			e.counters.OpenFailed++
			return err
		}
		d.From, d.Sender, d.Body = op.From, op.Sender, op.Body
	} else {
		d.From, d.Sender, d.Body = env.Sender.Address(), env.Sender, env.Payload
	}
	e.markDelivered(env)
	e.rd.Deliveries = append(e.rd.Deliveries, d)
	e.counters.Delivered++
	if env.Flags&protocol.FlagWantReceipt != 0 {
		e.sendReceipt(env, d.From)
	}
	return nil
}

func (e *Engine) markDelivered(env *protocol.Envelope) {
	for _, old := range e.delivered.add(env.ID, env.Expires) {
		e.del(deliveredKey(old))
	}
	e.persist(deliveredKey(env.ID), binary.BigEndian.AppendUint32(nil, uint32(env.Expires)))
}

// sendReceipt signs a receipt for env and sends it to from in a clear,
// signed envelope that lives as long as the message did.
func (e *Engine) sendReceipt(env *protocol.Envelope, from Address) {
	rc := protocol.NewReceipt(e.id, env.ID, protocol.TimestampOf(e.now))
	payload, _ := rc.MarshalBinary()
	e.sendControl(from, protocol.TypeReceipt, payload, env.Expires)
	e.counters.ReceiptsSent++
}

func (e *Engine) resendReceipt(env *protocol.Envelope) {
	if env.Flags&protocol.FlagWantReceipt == 0 {
		return
	}
	from, ok := env.Source()
	if !ok {
		// Sealed sender: only opening tells who sent it.
		op, err := env.Open(e.id)
		if err != nil {
			return
		}
		from = op.From
	}
	e.sendReceipt(env, from)
}

// sendControl sends a clear, signed envelope of our own (receipts, custody
// control) to dest, with custody if there is no route.
func (e *Engine) sendControl(dest Address, typ protocol.Type, payload []byte, expires protocol.Timestamp) {
	now := protocol.TimestampOf(e.now)
	if expires <= now {
		expires = now + 60
	}
	var id MessageID
	e.randBytes(id[:])
	h := protocol.Header{Type: typ, HopLimit: e.cfg.HopLimit, ID: id, Created: now, Expires: expires, Dest: dest}
	env, err := protocol.SignEnvelope(e.id, h, payload)
	if err != nil {
		return
	}
	raw, err := env.MarshalBinary()
	if err != nil {
		return
	}
	e.seen.addAt(id, e.now)
	e.forward(env, raw, owner{})
}

// handleReceipt clears custody of the message a receipt confirms.
func (e *Engine) handleReceipt(env *protocol.Envelope) {
	e.counters.ReceiptsIn++
	rc, err := e.checkReceipt(env)
	if err != nil {
		e.counters.ReceiptsInvalid++
		return
	}
	r := e.custody.get(rc.ID)
	if r == nil || r.dest != rc.Recipient {
		return
	}
	e.dropCustody(r)
	e.counters.CustodyCleared++
	if r.origin {
		e.rd.Events = append(e.rd.Events, Event{Kind: EventDelivered, Ref: r.ref, ID: r.id, Dest: r.dest})
	}
}

// receiptPassing lets a custodian on the way clear its copy of a message
// whose receipt it forwards.
func (e *Engine) receiptPassing(env *protocol.Envelope) {
	rc, err := e.checkReceipt(env)
	if err != nil {
		return
	}
	if r := e.custody.get(rc.ID); r != nil && !r.origin && r.dest == rc.Recipient {
		e.dropCustody(r)
		e.counters.CustodyCleared++
	}
}

// checkReceipt verifies a receipt envelope: the envelope's signer must be the
// recipient the receipt names.
func (e *Engine) checkReceipt(env *protocol.Envelope) (*protocol.Receipt, error) {
	src, ok := env.Source()
	if !ok {
		return nil, fmt.Errorf("receipt in a sealed-sender envelope: %w", ErrBadInput)
	}
	rc, err := protocol.ParseReceipt(env.Payload)
	if err != nil {
		return nil, err
	}
	if rc.Recipient != src {
		return nil, fmt.Errorf("receipt for %v signed by %v: %w", rc.Recipient, src, ErrBadInput)
	}
	if err := rc.Verify(env.Sender); err != nil {
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
		status := e.acceptOffer(inner, l)
		e.sendControl(src, protocol.TypeControl, protocol.AppendCustodyAccept(nil, inner.ID, status), env.Expires)
		return nil
	case protocol.KindCustodyAccept:
		id, status, err := protocol.ParseCustodyAccept(env.Payload)
		if err != nil {
			return err
		}
		e.offerAnswered(id, src, status)
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
		if r := e.custody.get(id); r != nil && r.origin && !r.expires.Time().After(e.now.Add(e.cfg.ClockSkew)) {
			e.dropCustody(r)
			e.counters.CustodyExpired++
			e.rd.Events = append(e.rd.Events, Event{Kind: EventExpired, Ref: r.ref, ID: id, Dest: r.dest,
				Err: fmt.Errorf("custodian %v gave up on it", src)})
		}
		return nil
	}
	return fmt.Errorf("control payload of kind %v: %w", protocol.Kind(env.Payload[0]), ErrBadInput)
}

// acceptOffer decides on a custody offer from another node that came over
// link l: the offer is charged to that neighbour's share.
func (e *Engine) acceptOffer(inner *protocol.Envelope, l *link) protocol.CustodyStatus {
	if !e.cfg.Mailbox {
		return protocol.CustodyRefusedPolicy
	}
	if err := inner.Verify(e.now, e.cfg.ClockSkew); err != nil {
		return protocol.CustodyRefusedPolicy
	}
	raw, err := inner.MarshalBinary()
	if err != nil {
		return protocol.CustodyRefusedPolicy
	}
	if e.custody.get(inner.ID) != nil {
		return protocol.CustodyAccepted
	}
	if err := e.takeCustody(inner, raw, ownerOf(l)); err != nil {
		if errors.Is(err, ErrCustodyFull) {
			return protocol.CustodyRefusedQuota
		}
		return protocol.CustodyRefusedPolicy
	}
	e.seen.addAt(inner.ID, e.now)
	return protocol.CustodyAccepted
}
