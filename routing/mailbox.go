package routing

import (
	"fmt"

	"meshd.dev/meshd/protocol"
)

// MailboxFound reports, from outside the mesh (the daemon reads it from
// the destination's signed DHT record), that Dest names Mailbox as one of
// its mailbox relays and that the node has, or is opening, a path to
// Mailbox. The engine learns Dest's identity (and KEM key) from Identity,
// so messages waiting for the key can be sealed while Dest is offline,
// and offers every message for Dest it holds and has not handed off to
// Mailbox at once, rather than after HandOffAfter retries to whatever
// mailbox is nearest: the recipient collects only from the mailboxes it
// named.
//
// As with any hand-off, only a signed "accepted" from Mailbox itself
// counts, and the origin keeps its copy until the delivery receipt.
type MailboxFound struct {
	Dest     Address
	Identity *protocol.PublicIdentity
	Mailbox  Address
}

func (MailboxFound) isInput() {}

// mailboxFound carries out a MailboxFound input.
func (e *Engine) mailboxFound(in MailboxFound) error {
	if in.Dest == e.self || in.Mailbox == e.self || in.Mailbox == in.Dest || in.Mailbox.IsZero() {
		return fmt.Errorf("mailbox %v for %v: %w", in.Mailbox, in.Dest, ErrBadInput)
	}
	if in.Identity == nil || in.Identity.Address() != in.Dest {
		return fmt.Errorf("mailbox for %v: identity missing or for another address: %w", in.Dest, ErrBadInput)
	}
	d := e.table.entry(in.Dest, MetricInfinite)
	if d != nil && d.kemKey == nil {
		d.ident, d.known = in.Identity.Compact(), true
		d.kemKey = in.Identity.KEMPublicKey()
		e.keyLearned(d) // seals what waited for the key
	}
	for _, r := range e.custody.forDest(in.Dest) {
		if r.session && d != nil && !e.sessionReachable(d) {
			// An own message to a destination whose key was unknown is
			// a session record (sessionReachable): with the key from
			// the record and no route, it goes on as an envelope now,
			// which the mailbox can hold (session_fallback.go).
			_ = e.sessionToEnvelope(r, d) // on failure it stays a session record
		}
		if r.awaitingKey || r.session || r.handedOff {
			// A session record's data is the session plaintext, not
			// an envelope: it is never offered.
			continue
		}
		if _, err := e.sendControl(in.Mailbox, protocol.TypeControl, protocol.AppendCustodyOffer(nil, r.data), r.expires); err == nil {
			r.offeredTo = in.Mailbox
		}
	}
	return nil
}

// takeMailboxCustody is takeCustody for an envelope accepted through a
// custody offer: the record is marked mailboxed (and persisted so) before
// the first attempt.
func (e *Engine) takeMailboxCustody(env *protocol.Envelope, key envKey, raw []byte, from owner) error {
	if e.custody.get(key) != nil {
		return nil
	}
	r := &custodyRec{
		key: key, id: env.ID, dest: env.Dest, typ: env.Type, created: env.Created, expires: env.Expires,
		sealedSender: env.Flags&protocol.FlagSealedSender != 0, data: raw, mailboxed: true,
	}
	r.chargeTo(from, env)
	if err := e.custody.admit(r); err != nil {
		return fmt.Errorf("mailbox custody for %v: %w", r.dest, err)
	}
	e.custody.add(r)
	e.persistCustody(r)
	e.counters.CustodyAccepted++
	e.attempt(r)
	return nil
}

// toDest says whether route c leads to r's destination itself: over a
// point-to-point link, the link's authenticated peer is the destination;
// over a shared link, the destination is the next hop.
func (e *Engine) toDest(r *custodyRec, c candidate) bool {
	l := e.links[c.link]
	if l == nil || c.via != r.dest {
		return false
	}
	return l.info.Peer == r.dest || (l.info.Shared && c.hops == 1)
}

// keepsCopy says whether a mailbox keeps record r after handing it on: it
// does, retrying with backoff like an origin, until the recipient's
// receipt or the message's expiry, unless it handed it to the recipient
// itself. Routes are only their advertisers' word: a neighbour advertising
// a captured announce of an offline recipient (as the forwarder, or naming
// the recipient as one) would otherwise collect, and could drop, its
// mailbox (TestAttackDrainMailbox). Forwarders' records are released on
// the hand-over as before.
func (r *custodyRec) keepsCopy() bool { return r.mailboxed && !r.toDest }

// offerToRecipient hands a mailboxed record on toward its recipient when
// the route leads through others: as a custody offer from this node to the
// recipient, which answers it with a receipt addressed to this node
// (offeredToSelf). The recipient's ordinary receipt goes to the origin and
// need not pass the mailbox, which kept and re-sent the message until it
// expired. The offer goes only where a route is now: it is never taken
// into custody itself (the record is retried instead).
func (e *Engine) offerToRecipient(r *custodyRec) bool {
	h, err := e.controlHeader(r.dest, protocol.TypeControl, r.expires)
	if err != nil {
		return false
	}
	env, err := protocol.SignEnvelope(e.id, h, protocol.AppendCustodyOffer(nil, r.data))
	if err != nil {
		return false
	}
	raw, err := env.MarshalBinary()
	if err != nil {
		return false
	}
	key := env.Key()
	e.seen.addAt(key, e.now)
	return e.route(env, key, raw, e.custody.ownerOf(r))
}

// offeredToSelf handles a custody offer of an envelope addressed to this
// node (a mailbox handing on what it keeps for it): the envelope is
// delivered like one that came directly (once: a copy counts as a
// duplicate), and the offerer gets a receipt signed by this node naming
// the envelope's key, the proof of delivery on which a mailbox lets its
// copy go. Its origin gets its receipt as usual. Offers are not nested.
func (e *Engine) offeredToSelf(inner *protocol.Envelope, key envKey, l *link, src Address) error {
	if inner.Type == protocol.TypeControl {
		return fmt.Errorf("custody offer of a control envelope to its destination: %w", ErrBadInput)
	}
	if e.delivered.has(key) || e.delivered.hasLegacy(inner.ID) {
		e.counters.Duplicates++
	} else {
		raw, err := inner.MarshalBinary()
		if err != nil {
			return err
		}
		if err := e.verifyOnce(inner, key, raw); err != nil {
			return err
		}
		if err := e.deliver(inner, key, l); err != nil {
			return err
		}
	}
	rc := protocol.NewReceipt(e.id, key, protocol.TimestampOf(e.now))
	payload, err := rc.MarshalBinary()
	if err != nil {
		return err
	}
	_, err = e.sendControl(src, protocol.TypeReceipt, payload, inner.Expires)
	return err
}
