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
	if d := e.table.entry(in.Dest, MetricInfinite); d != nil && d.kemKey == nil {
		d.ident, d.known = in.Identity.Compact(), true
		d.kemKey = in.Identity.KEMPublicKey()
		e.keyLearned(d) // seals what waited for the key
	}
	for _, r := range e.custody.forDest(in.Dest) {
		if r.awaitingKey || r.handedOff {
			continue
		}
		if _, err := e.sendControl(in.Mailbox, protocol.TypeControl, protocol.AppendCustodyOffer(nil, r.data), r.expires); err == nil {
			r.offeredTo = in.Mailbox
		}
	}
	return nil
}
