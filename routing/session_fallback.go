package routing

import (
	"bytes"
	"fmt"

	"meshd.dev/meshd/protocol"
)

// Session messages whose route broke. A session frame travels only along
// its session's path and no mailbox can hold it, so a message whose route
// went away after it was sent (the recipient or a relay went offline)
// would wait in the sender's custody, and reach the recipient only while
// the sender is up. After more than HandOffAfter retries in a row that
// found no route (retries back off, so a route that flaps on a lossy radio
// does not turn session messages into envelopes ten times their size), it
// goes on
// as an envelope instead, as a message does that is sealed when its
// recipient has no route: of type session message, whose payload is the
// session plaintext (number and body), signed and sealed. The recipient
// deduplicates it on the same key as the session frame
// (protocol.SessionMessageKey of the sender it verified), so the message
// is delivered once whichever form arrives, and a mailbox can hold it.

// sessionToEnvelope turns a session record into a sealed envelope of type
// session message for d, moving it (in memory and in storage) to the
// envelope's key; its message ID stays. It fails, leaving the record as
// it was, when sealing fails.
func (e *Engine) sessionToEnvelope(r *custodyRec, d *destEntry) error {
	old := *r
	e.custody.remove(old.key)
	r.typ = protocol.TypeSessionMessage
	if err := e.seal(r, d, r.data); err != nil {
		*r = old
		e.custody.add(r)
		return fmt.Errorf("session message %v as envelope: %w", r.id, err)
	}
	r.session, r.frame, r.label, r.counter = false, nil, protocol.PathLabel{}, 0
	e.del(custodyKey(old.key))
	if !e.custody.add(r) {
		return fmt.Errorf("session message %v as envelope: key %v taken: %w", r.id, r.key, ErrBadInput)
	}
	e.persistCustody(r)
	e.counters.SessionFallbacks++
	return nil
}

// deliverSessionEnvelope delivers a session message that came as an
// envelope (key: the envelope's key), once per session message key, and
// answers it with a receipt even when it is a copy of a message already
// delivered over the session: its sender holds it in custody until then.
func (e *Engine) deliverSessionEnvelope(env *protocol.Envelope, key envKey) error {
	if env.Flags&protocol.FlagSealed == 0 || env.Flags&protocol.FlagSealedSender != 0 {
		return fmt.Errorf("session message envelope not sealed to this node or without sender: %w", ErrBadInput)
	}
	op, err := env.OpenVerified(e.id)
	if err != nil {
		e.counters.OpenFailed++
		return err
	}
	n, body, err := protocol.ParseSessionMessage(op.Body)
	if err != nil {
		return fmt.Errorf("session message envelope: %w", err)
	}
	ent := deliveredEntry{expires: env.Expires}
	if env.Flags&protocol.FlagWantReceipt != 0 {
		ent.from = op.From
	}
	sk := protocol.SessionMessageKey(op.From, n)
	if e.delivered.has(sk) {
		e.counters.Duplicates++
	} else {
		rk := e.markDelivered(sk, MessageID(sk), deliveredEntry{expires: env.Expires})
		e.rd.Deliveries = append(e.rd.Deliveries, Delivery{
			ID: MessageID(sk), Key: sk, Record: rk, Type: protocol.TypeMessage, From: op.From, Sender: op.Sender,
			Body: bytes.Clone(body), Created: env.Created, Expires: env.Expires, Hops: env.HopCount,
		})
		e.counters.Delivered++
	}
	e.markDelivered(key, env.ID, ent)
	if !ent.from.IsZero() {
		e.sendReceipt(key, ent)
	}
	return nil
}
