package daemon

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"time"

	"meshd.dev/meshd/daemon/store"
	"meshd.dev/meshd/fapp"
	"meshd.dev/meshd/rpcapi"
)

// Slot IDs are never reused by one therapist key. Reservations (the
// therapist's book, the patients' books, signed confirmations) and the
// announces still cached in the mesh name a slot by <therapist key>/<slot
// ID>; a withdrawn slot's ID given to a new slot at another time would
// make an answer, cancel or status change of the old reservation act on
// the new slot. The node keeps a high-water mark, the highest slot ID it
// ever published (stored with the offer, "max_slot_id" in keyOwnOffer, in
// the same write as the slots), and gives new slots IDs above it.

// errSlotIDsUsed is fapp.publish's refusal when every slot ID is used.
var errSlotIDsUsed = fmt.Errorf("%w: all %d slot IDs of this therapist key are used, and slot IDs are never reused "+
	"(a reservation names its slot by ID): more slots need a new therapist key, that is a new node identity "+
	"and a credential for it from the issuer", rpcapi.ErrRefused, math.MaxUint16)

// slotMarkOf is the high-water mark raised to the highest ID in slots.
func slotMarkOf(mark uint16, slots []fapp.Slot) uint16 {
	for _, s := range slots {
		mark = max(mark, s.ID)
	}
	return mark
}

// assignSlotID gives a new slot (id 0) the ID above mark and checks an
// explicit one: an own slot's ID edits that slot, an ID above mark adds a
// slot under it, and any other ID is a withdrawn slot's (or one skipped
// over), which would be reused: refused. It returns the ID and the mark.
func assignSlotID(slots []fapp.Slot, id, mark uint16) (uint16, uint16, error) {
	switch {
	case id == 0 && mark == math.MaxUint16:
		return 0, mark, errSlotIDsUsed
	case id == 0:
		return mark + 1, mark + 1, nil
	case slices.ContainsFunc(slots, func(s fapp.Slot) bool { return s.ID == id }):
		return id, mark, nil
	case id <= mark:
		return 0, mark, fmt.Errorf("%w: slot %d was withdrawn (or skipped), and slot IDs are never reused: "+
			"publish the slot as a new one (ID 0); IDs above %d are free", rpcapi.ErrRefused, id, mark)
	}
	return id, id, nil
}

// offers reports whether slot s (the own slot, or the announced one, now
// under the reservation's ID) has the occurrence the reservation asked
// for: a slot under a reused ID (from an older release, or a malicious
// therapist node) at another time is not the slot reserved.
func offers(s fapp.Slot, start time.Time) bool { return isOccurrence(s, start) }

// restoreSlotMark raises the mark restored with the offer to every
// slot ID the node still knows it published: the offer's slots, the last
// own announce and the reservations of the book that were on offer. A store from before the mark (the upgrade)
// gets it from them; a raised mark is written back at once, since the
// book forgets finished reservations.
func (f *fappNode) restoreSlotMark(now time.Time) error {
	stored := f.slotMark
	mark := slotMarkOf(stored, f.pub.Slots())
	if f.lastRaw != nil {
		if a, err := fapp.ParseSlotAnnounce(f.lastRaw, now, 0); err == nil {
			mark = slotMarkOf(mark, a.Slots)
		}
	}
	for _, r := range f.book.List() {
		// ABGELEHNT may be a refused request for a slot never offered
		// (Book.Refuse records it): anyone could name slot 65535 and use
		// up every ID. Every other state was on offer when it arrived.
		if r.State != fapp.Abgelehnt {
			mark = max(mark, r.Request.Slot.Slot)
		}
	}
	f.slotMark = mark
	if mark == stored {
		return nil
	}
	v, err := f.n.st.FAPPGet(keyOwnOffer)
	if err != nil || v == nil {
		return err
	}
	var o map[string]json.RawMessage
	if err := json.Unmarshal(v, &o); err != nil {
		return nil // damaged: restoreOwn said so; the next publish rewrites it
	}
	o["max_slot_id"], _ = json.Marshal(mark)
	if v, err = json.Marshal(o); err != nil {
		return err
	}
	return f.write(store.FAPPBatch{Put: map[string][]byte{keyOwnOffer: v}})
}
