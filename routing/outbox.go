package routing

import (
	"bytes"
	"fmt"
	"slices"
	"time"

	"meshd.dev/meshd/protocol"
)

// Pending is one of this node's own messages in custody, as Outbox lists
// it: sent by the application and waiting for its receipt or expiry.
type Pending struct {
	ID   MessageID
	Ref  uint64
	Dest Address
	Type protocol.Type
	// State is "awaiting-key" (the destination's key is being asked for),
	// "custody" (no route: waiting for one), "sent" (transmitted at least
	// once, waiting for the receipt) or "handed-off" (a mailbox holds it).
	State    string
	Attempts int
	// NextTry is when the engine tries again; zero while it waits for a
	// route or key.
	NextTry          time.Time
	Created, Expires protocol.Timestamp
}

// Outbox lists this node's own messages in custody (not the copies it keeps
// for others, nor its receipts), oldest first.
func (e *Engine) Outbox() []Pending {
	var out []Pending
	for _, r := range e.custody.recs {
		if !r.origin || r.typ == protocol.TypeReceipt || r.typ == protocol.TypeControl || r.typ == protocol.TypeEcho {
			continue
		}
		out = append(out, Pending{
			ID: r.id, Ref: r.ref, Dest: r.dest, Type: r.typ, State: pendingState(r), Attempts: r.attempts,
			NextTry: r.nextTry, Created: r.created, Expires: r.expires,
		})
	}
	slices.SortFunc(out, func(a, b Pending) int {
		if a.Created != b.Created {
			return int(a.Created) - int(b.Created)
		}
		return bytes.Compare(a.ID[:], b.ID[:])
	})
	return out
}

func pendingState(r *custodyRec) string {
	switch {
	case r.handedOff:
		return "handed-off"
	case r.awaitingKey:
		return "awaiting-key"
	case r.attempts > 0:
		return "sent"
	}
	return "custody"
}

// Cancel removes this node's own messages with id from custody, as expiry
// would: the records are deleted from storage (Ready.Deletes) and never
// sent again, and an EventCancelled reports each. It refuses an id that
// names only messages this node keeps for others (ErrNotOwn) and reports
// ErrUnknownMessage for an id it does not hold at all. A copy already on
// its way may still arrive: cancelling stops retries, it cannot recall.
func (e *Engine) Cancel(now time.Time, id MessageID) (int, error) {
	e.advance(now)
	var own, other []*custodyRec
	for _, r := range e.custody.recs {
		if r.id != id {
			continue
		}
		if r.origin && r.typ != protocol.TypeReceipt && r.typ != protocol.TypeControl {
			own = append(own, r)
		} else {
			other = append(other, r)
		}
	}
	switch {
	case len(own) == 0 && len(other) > 0:
		return 0, fmt.Errorf("cancel %v: %w", id, ErrNotOwn)
	case len(own) == 0:
		return 0, fmt.Errorf("cancel %v: %w", id, ErrUnknownMessage)
	}
	for _, r := range own {
		e.dropCustody(r)
		e.counters.CustodyCancelled++
		e.rd.Events = append(e.rd.Events, Event{Kind: EventCancelled, Ref: r.ref, ID: r.id, Dest: r.dest})
	}
	return len(own), nil
}
