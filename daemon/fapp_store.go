package daemon

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"meshd.dev/meshd/daemon/store"
	"meshd.dev/meshd/fapp"
	"meshd.dev/meshd/protocol"
)

// restore rebuilds the FAPP state from the store (keys in store/fapp.go).
// Records that do not decode or no longer hold (an expired announce) are
// skipped, and the expired ones deleted; none stops the node.
func (f *fappNode) restore(now time.Time) error {
	st := f.n.st
	var del []string
	bad := 0
	scan := func(prefix string, fn func(k string, v []byte) error) error {
		return st.FAPPScan(prefix, func(k string, v []byte) error {
			if err := fn(k, v); err != nil {
				if !errors.Is(err, fapp.ErrExpired) {
					bad++
				}
				del = append(del, k)
			}
			return nil
		})
	}
	steps := []struct {
		prefix string
		fn     func(k string, v []byte) error
	}{
		{"f/v/", func(_ string, v []byte) error {
			r, err := fapp.ParseRevocation(v)
			if err == nil {
				err = f.trust.ApplyRevocation(r)
			}
			return err
		}},
		{"f/g/", func(k string, _ []byte) error {
			if k == keyQueriesUsed {
				f.queriesUsed = true
				return nil
			}
			r, err := fapp.ParseRegion(strings.TrimPrefix(k, "f/g/"))
			if err == nil {
				f.followAPI[r] = true
			}
			return err
		}},
		// Announces before profiles: a profile then joins its announce
		// directly instead of the pending cache, which holds only 1,024.
		{"f/a/", func(_ string, v []byte) error {
			a, err := fapp.ParseSlotAnnounce(v, now, clockSkew)
			if err == nil {
				err = f.idx.Add(a, now)
			}
			return err
		}},
		{"f/p/", func(_ string, v []byte) error {
			p, err := fapp.ParseProfile(v)
			if err == nil && f.idx.Get(p.Therapist()) == nil {
				// Its announce expired: the profile goes with it.
				return fmt.Errorf("profile without announce: %w", fapp.ErrExpired)
			}
			if err == nil {
				err = f.idx.AddProfile(p, now)
			}
			return err
		}},
	}
	for _, s := range steps {
		if err := scan(s.prefix, s.fn); err != nil {
			return err
		}
	}
	if err := f.restoreOwn(now); err != nil {
		return err
	}
	if err := f.restoreReservations(&bad); err != nil {
		return err
	}
	if err := f.restoreSlotMark(now); err != nil {
		return err
	}
	if bad > 0 {
		f.n.log.Error("some stored FAPP records are damaged and were skipped", "records", bad)
	}
	return f.deleteKeys(del)
}

// deleteKeys deletes keys in batches small enough for one transaction
// (after a long downtime every stored announce may have expired).
func (f *fappNode) deleteKeys(keys []string) error {
	const chunk = 1000
	for len(keys) > 0 {
		n := min(chunk, len(keys))
		if err := f.write(store.FAPPBatch{Delete: keys[:n]}); err != nil {
			return err
		}
		keys = keys[n:]
	}
	return nil
}

// restoreOwn restores the therapist's own offer and the publisher, which
// continues above the stored sequence number.
func (f *fappNode) restoreOwn(now time.Time) error {
	st := f.n.st
	var seq uint32
	if v, err := st.FAPPGet(keyOwnSeq); err != nil {
		return err
	} else if len(v) == 4 {
		seq = binary.BigEndian.Uint32(v)
	}
	if err := f.newPublisher(seq); err != nil {
		return err
	}
	if v, _ := st.FAPPGet(keyOwnCredential); v != nil {
		if c, err := fapp.ParseCredential(v); err == nil {
			f.credential = c
		}
	}
	if v, _ := st.FAPPGet(keyOwnProfile); v != nil {
		if p, err := fapp.ParseProfile(v); err == nil {
			f.profile, f.profileRaw = p, v
		}
	}
	if v, _ := st.FAPPGet(keyOwnAnnounce); v != nil {
		f.lastRaw = v
	}
	v, err := st.FAPPGet(keyOwnOffer)
	if err != nil || v == nil {
		return err
	}
	var o ownOffer
	if err := jsonUnmarshal(v, &o); err != nil {
		f.n.log.Error("the stored own FAPP offer is damaged; publish it again", "err", err)
		return nil
	}
	t, err := o.template()
	if err != nil {
		f.n.log.Error("the stored own FAPP offer is damaged; publish it again", "err", err)
		return nil
	}
	t.Therapist = fapp.TherapistKeyOf(f.n.id.Compact())
	f.template, f.slotMark = t, o.MaxSlotID
	f.pub.SetProfile(*t, now)
	if o.Withdrawn {
		f.pub.Withdraw(now)
	} else {
		f.pub.SetSlots(o.slots(), now)
	}
	// A restart is no edit: what changed since the last announce (a
	// reservation's status) waits for the boundary.
	var last *fapp.SlotAnnounce
	if f.lastRaw != nil {
		last, _ = fapp.ParseSlotAnnounce(f.lastRaw, now, 0)
	}
	f.pub.Restored(last)
	return nil
}

func (f *fappNode) restoreReservations(bad *int) error {
	if v, err := f.n.st.FAPPGet(keyForgotUntil); err != nil {
		return err
	} else if len(v) == 8 {
		f.book.RestoreForgotUntil(time.Unix(int64(binary.BigEndian.Uint64(v)), 0).UTC())
	}
	err := f.n.st.FAPPScan("f/t/", func(_ string, v []byte) error {
		r, to, err := decodeTherapistRes(v)
		if err == nil {
			err = f.book.Restore(r)
		}
		if err != nil {
			*bad++
			return nil
		}
		if !to.IsZero() {
			f.replyTo[r.Request.ID] = to
		}
		return nil
	})
	if err != nil {
		return err
	}
	return f.n.st.FAPPScan("f/r/", func(_ string, v []byte) error {
		r, err := decodePatientRes(v)
		if err == nil {
			err = f.patient.Restore(r)
		}
		if err != nil {
			*bad++
		}
		return nil
	})
}

// recoverInbox processes FAPP messages a crash left in the inbox (they
// were delivered, but what they caused was not yet written). Start-up only.
func (f *fappNode) recoverInbox() error {
	var after uint64
	for {
		entries, next, err := f.n.st.Inbox(after, 100)
		var ce *store.CorruptEntryError
		if errors.As(err, &ce) {
			after = ce.Seq
			continue
		}
		if err != nil {
			return err
		}
		for _, e := range entries {
			if e.Type == protocol.TypeFAPP {
				f.onDirect(e.From, e.Body, e.Seq)
			}
		}
		if len(entries) == 0 {
			return nil
		}
		after = next
	}
}
