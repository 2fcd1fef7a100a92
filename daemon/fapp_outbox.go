package daemon

import (
	"encoding/binary"
	"fmt"
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
//	f/x/<16 hex digits, a counter>   destination address 16 | created u32 | body
const keyOutbox = "f/x/"

func outboxKey(seq uint64) string { return fmt.Sprintf("%s%016x", keyOutbox, seq) }

// stageOutLocked stores o in b, the batch that stores what o says, and
// returns it marked with its key; queue it once b is written. Caller
// holds mu.
func (f *fappNode) stageOutLocked(b *store.FAPPBatch, o fappOut, now time.Time) fappOut {
	f.outSeq++
	o.key = outboxKey(f.outSeq)
	v := make([]byte, 0, len(o.dest)+4+len(o.body))
	v = append(v, o.dest[:]...)
	v = binary.BigEndian.AppendUint32(v, uint32(now.Unix()))
	b.Put[o.key] = append(v, o.body...)
	return o
}

// queueOutLocked stores and queues a reservation message in one go, for
// handlers whose batch is written after they return (onDirect): if that
// write fails the message still goes, as it did before the outbox. Caller
// holds mu.
func (f *fappNode) queueOutLocked(b *store.FAPPBatch, dest protocol.Address, body []byte, now time.Time) {
	f.queue(f.stageOutLocked(b, fappOut{unicast: true, dest: dest, body: body, ttl: fapp.DefaultMessageTTL}, now))
}

// noteSent deletes a stored message once the engine reports its send:
// the report comes in a carried-out batch, after the sync that stored the
// engine's custody of it. The delete is written at the next flush. Loop
// only.
func (f *fappNode) noteSent(ev routing.Event) {
	if ev.Kind != routing.EventAccepted && ev.Kind != routing.EventRefused {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
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
		if err != nil || len(v) < len(dest)+4+1 {
			del = append(del, k)
			return nil
		}
		copy(dest[:], v)
		created := time.Unix(int64(binary.BigEndian.Uint32(v[len(dest):])), 0)
		ttl := created.Add(fapp.DefaultMessageTTL).Sub(now)
		if ttl < time.Second {
			del = append(del, k)
			return nil
		}
		body := append([]byte(nil), v[len(dest)+4:]...)
		f.queue(fappOut{unicast: true, dest: dest, body: body, ttl: ttl, key: k})
		return nil
	})
	if err != nil {
		return err
	}
	return f.deleteKeys(del)
}
