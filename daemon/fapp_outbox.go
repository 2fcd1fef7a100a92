package daemon

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"meshd.dev/meshd/daemon/store"
	"meshd.dev/meshd/fapp"
	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/routing"
)

// The FAPP outbox keeps every reservation message this node sends (a
// request, a response, a cancel) in the store from the write that stores
// what it says until the engine has it in its own stored custody. The
// message is built under mu, but the loop hands it to the engine later and
// the engine's custody is synced later still: a crash in between (kill -9)
// lost it, and the two books disagreed for good (the therapist's said
// BESTAETIGT, the patient's ANGEFRAGT). An entry is written in the same
// batch as the reservation record, handed to the engine with a ref, and
// deleted when the engine reports the send accepted (or refused) in a
// carried-out batch, which is after that batch's sync. At start every
// entry left is sent again: the receiver refuses a duplicate (a replayed
// request, a transition already made), so twice is harmless, never is not.
//
// A refusal (a request for a slot that is not FREI, a rival of a request
// the therapist just held or confirmed) is held until the therapist's next
// epoch boundary: sent at once it told whoever asked the second the slot
// was taken, which the announce tells only at the boundary, and so which
// of the therapist's envelopes at that second was the hold. It keeps that
// time in the store, so a restart does not send it early.
//
//	f/x/<16 hex digits, a counter>   destination address 16 | not before u32 (0: at once) |
//	                                  created u32 | body
const keyOutbox = "f/x/"

const outboxHead = len(protocol.Address{}) + 4 + 4

func outboxKey(seq uint64) string { return fmt.Sprintf("%s%016x", keyOutbox, seq) }

// stageOutLocked stores o in b, the batch that stores what o says, and
// returns it marked with its key; queue it once b is written. Caller
// holds mu.
func (f *fappNode) stageOutLocked(b *store.FAPPBatch, o fappOut, now time.Time) fappOut {
	f.outSeq++
	o.key = outboxKey(f.outSeq)
	v := make([]byte, 0, outboxHead+len(o.body))
	v = append(v, o.dest[:]...)
	var later uint32
	if !o.notBefore.IsZero() {
		later = uint32(o.notBefore.Unix())
	}
	v = binary.BigEndian.AppendUint32(v, later)
	v = binary.BigEndian.AppendUint32(v, uint32(now.Unix()))
	b.Put[o.key] = append(v, o.body...)
	return o
}

// queueLaterLocked seals a refusal (resp, answering request id), stores
// it and holds it until the next epoch boundary (at once on a node without
// an own offer, which has no boundaries and whose refusals reveal
// nothing). The refusal is dated at that boundary, its signed Created and
// its envelope's: dated now, a rival's decline said the second of the hold
// and a refused request's the second the slot was no longer FREI, the very
// time the wait keeps back. Caller holds mu.
func (f *fappNode) queueLaterLocked(b *store.FAPPBatch, dest protocol.Address, id fapp.RequestID, resp *fapp.Response, now time.Time) error {
	o := fappOut{unicast: true, dest: dest, ttl: fapp.DefaultMessageTTL}
	at := now
	if f.pub != nil {
		o.notBefore = f.pub.NextBoundary(now)
		at = o.notBefore
		resp.Created = at.Truncate(time.Second)
		if err := resp.Sign(f.n.id); err != nil {
			return err
		}
	}
	sealed, err := f.book.Seal(randReader, id, resp, at)
	if err != nil {
		return err
	}
	o.body = append([]byte{toPatient}, sealed...)
	f.deferLocked(f.stageOutLocked(b, o, now), now)
	return nil
}

// deferLocked queues o, or holds it while its time has not come.
func (f *fappNode) deferLocked(o fappOut, now time.Time) {
	if now.Before(o.notBefore) {
		f.later = append(f.later, o)
		return
	}
	f.queue(o)
}

// unstageLocked takes back what b, a batch whose write failed, staged in
// the outbox: a message leaves only once what it says is stored. Caller
// holds mu.
func (f *fappNode) unstageLocked(b store.FAPPBatch) {
	staged := func(o fappOut) bool {
		_, ok := b.Put[o.key]
		return o.key != "" && ok
	}
	f.later = slices.DeleteFunc(f.later, staged)
	f.inflight = slices.DeleteFunc(f.inflight, staged)
}

// releaseLaterLocked queues the held refusals whose boundary has come (the
// tick that releases the announce showing the status). Caller holds mu.
func (f *fappNode) releaseLaterLocked(now time.Time) {
	keep := f.later[:0]
	for _, o := range f.later {
		if now.Before(o.notBefore) {
			keep = append(keep, o)
			continue
		}
		f.queue(o)
	}
	clear(f.later[len(keep):])
	f.later = keep
}

// noteSent deletes a stored message once the engine reports its send:
// the report comes in a carried-out batch, after the sync that stored the
// engine's custody of it. The delete is written at the next flush. Loop
// only: outRefs and outDone belong to the loop (flush, which fills and
// empties them, runs there), so every engine event passes without a lock.
func (f *fappNode) noteSent(ev routing.Event) {
	if ev.Kind != routing.EventAccepted && ev.Kind != routing.EventRefused {
		return
	}
	if key, ok := f.outRefs[ev.Ref]; ok {
		delete(f.outRefs, ev.Ref)
		f.outDone = append(f.outDone, key)
	}
}

// recoverOutbox queues again what a crash (or a stop before the engine
// took it) left in the outbox; entries past the message lifetime or
// damaged are deleted. Open only, before recoverInbox.
func (f *fappNode) recoverOutbox() error {
	now := f.n.now()
	var del []string
	err := f.n.st.FAPPScan(keyOutbox, func(k string, v []byte) error {
		seq, err := strconv.ParseUint(strings.TrimPrefix(k, keyOutbox), 16, 64)
		if err == nil {
			f.outSeq = max(f.outSeq, seq)
		}
		var dest protocol.Address
		if err != nil || len(v) <= outboxHead {
			del = append(del, k)
			return nil
		}
		copy(dest[:], v)
		o := fappOut{unicast: true, dest: dest, body: append([]byte(nil), v[outboxHead:]...), key: k}
		if later := binary.BigEndian.Uint32(v[len(dest):]); later != 0 {
			o.notBefore = time.Unix(int64(later), 0)
		}
		created := time.Unix(int64(binary.BigEndian.Uint32(v[len(dest)+4:])), 0)
		if o.ttl = created.Add(fapp.DefaultMessageTTL).Sub(now); o.ttl < time.Second {
			del = append(del, k)
			return nil
		}
		f.deferLocked(o, now)
		return nil
	})
	if err != nil {
		return err
	}
	return f.deleteKeys(del)
}

// A patient's cancel that came before its request is kept by the Book in
// memory; the daemon leaves its inbox entry in place (unacknowledged)
// until the request arrives or the Book lets the cancel go, so a restart in
// between applies it again (recoverInbox) instead of forgetting it.

// keepEarlyLocked leaves the inbox entry of b (one cancel the Book kept
// for a request still to come) in the inbox. A copy that comes once the
// request is in the book (the Book still remembers the early cancel) is
// acknowledged like any refused cancel. Caller holds mu.
func (f *fappNode) keepEarlyLocked(b *store.FAPPBatch, id fapp.RequestID) {
	if _, dup := f.earlySeq[id]; dup || len(b.Ack) != 1 {
		return
	}
	if _, err := f.book.Get(id); err == nil {
		return
	}
	f.earlySeq[id], b.Ack = b.Ack[0], nil
}

// ackEarlyLocked acknowledges, in b, the kept cancel of a request that has
// now arrived. Caller holds mu.
func (f *fappNode) ackEarlyLocked(b *store.FAPPBatch, id fapp.RequestID) {
	if seq, ok := f.earlySeq[id]; ok {
		b.Ack = append(b.Ack, seq)
		delete(f.earlySeq, id)
	}
}

// forgetEarlyLocked acknowledges the kept cancels the Book has let go
// (too old, or pushed out by newer ones). Caller holds mu.
func (f *fappNode) forgetEarlyLocked() {
	var acks []uint64
	for id, seq := range f.earlySeq {
		if !f.book.HasEarly(id) {
			acks = append(acks, seq)
			delete(f.earlySeq, id)
		}
	}
	if len(acks) > 0 {
		f.write(store.FAPPBatch{Ack: acks})
	}
}
