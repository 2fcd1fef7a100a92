package routing

import (
	"bytes"
	"container/heap"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"

	"meshd.dev/meshd/protocol"
)

// custodyRec is a message this node has promised to keep until it is
// delivered, handed off or expired.
type custodyRec struct {
	id           MessageID
	dest         Address
	origin       bool // this node sent it and waits for the receipt
	awaitingKey  bool // data is the plaintext body, sealed once the key is known
	sealedSender bool
	handedOff    bool // a mailbox accepted it
	typ          protocol.Type
	ref          uint64
	created      protocol.Timestamp
	expires      protocol.Timestamp
	data         []byte // the encoded envelope, or the plaintext body

	// Quota charges (see quota.go), not persisted: a restored record is
	// charged to its source, its neighbour is gone.
	from    neighbour
	hasFrom bool
	source  Address // the signer of a forwarded envelope; zero if sealed sender
	charged int     // what the record was charged when it was added

	// Volatile.
	attempts int
	nextTry  time.Time // zero: wait for a route
	gen      uint64    // heap entries with another generation are stale
}

func (r *custodyRec) size() int { return cap(r.data) + custodyRecOverhead }

// custodyStore holds the custody records with per-destination accounting and
// a heap of due times (retries and expiries).
type custodyStore struct {
	recs   map[MessageID]*custodyRec
	byDest map[Address]map[MessageID]struct{}
	quota  *custodyQuota
	bytes  int
	due    dueHeap
	gen    uint64
}

func newCustodyStore(quota *custodyQuota) *custodyStore {
	return &custodyStore{
		recs:   make(map[MessageID]*custodyRec),
		byDest: make(map[Address]map[MessageID]struct{}),
		quota:  quota,
	}
}

func (s *custodyStore) get(id MessageID) *custodyRec { return s.recs[id] }

// admit reports whether r fits the quotas (see quota.go).
func (s *custodyStore) admit(r *custodyRec) error { return s.quota.admit(r) }

func (s *custodyStore) add(r *custodyRec) {
	if old := s.recs[r.id]; old != nil {
		s.remove(r.id)
	}
	s.recs[r.id] = r
	if s.byDest[r.dest] == nil {
		s.byDest[r.dest] = make(map[MessageID]struct{})
	}
	s.byDest[r.dest][r.id] = struct{}{}
	s.quota.charge(r)
	s.bytes += r.charged
	s.schedule(r)
}

// schedule (re)inserts r's next due time: its retry or its expiry.
func (s *custodyStore) schedule(r *custodyRec) {
	s.gen++
	r.gen = s.gen
	at := r.expires.Time()
	if !r.nextTry.IsZero() && r.nextTry.Before(at) {
		at = r.nextTry
	}
	heap.Push(&s.due, dueItem{at: at, id: r.id, gen: r.gen})
}

func (s *custodyStore) remove(id MessageID) {
	r := s.recs[id]
	if r == nil {
		return
	}
	delete(s.recs, id)
	delete(s.byDest[r.dest], id)
	if len(s.byDest[r.dest]) == 0 {
		delete(s.byDest, r.dest)
	}
	s.bytes -= r.charged
	s.quota.release(r)
	r.gen = 0 // its heap entries are stale now
}

// forDest returns the records for dest in ID order.
func (s *custodyStore) forDest(dest Address) []*custodyRec {
	ids := make([]MessageID, 0, len(s.byDest[dest]))
	for id := range s.byDest[dest] {
		ids = append(ids, id)
	}
	out := make([]*custodyRec, 0, len(ids))
	for _, id := range sortedIDs(s.byDest[dest]) {
		out = append(out, s.recs[id])
	}
	return out
}

// popDue returns the next record due at or before now, or nil.
func (s *custodyStore) popDue(now time.Time) *custodyRec {
	for s.due.Len() > 0 {
		top := s.due[0]
		r := s.recs[top.id]
		if r == nil || r.gen != top.gen {
			heap.Pop(&s.due)
			continue
		}
		if top.at.After(now) {
			return nil
		}
		heap.Pop(&s.due)
		return r
	}
	return nil
}

func (s *custodyStore) nextDue() time.Time {
	for s.due.Len() > 0 {
		top := s.due[0]
		if r := s.recs[top.id]; r == nil || r.gen != top.gen {
			heap.Pop(&s.due)
			continue
		}
		return top.at
	}
	return time.Time{}
}

type dueItem struct {
	at  time.Time
	id  MessageID
	gen uint64
}

type dueHeap []dueItem

func (h dueHeap) Len() int { return len(h) }
func (h dueHeap) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return bytes.Compare(h[i].id[:], h[j].id[:]) < 0
}
func (h dueHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)   { *h = append(*h, x.(dueItem)) }
func (h *dueHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// Persistence. Keys: "c/<id>" custody, "d/<id>" delivered, "seq" the
// announce sequence number (IDs in hex).

func custodyKey(id MessageID) string   { return "c/" + hex.EncodeToString(id[:]) }
func deliveredKey(id MessageID) string { return "d/" + hex.EncodeToString(id[:]) }

const seqKey = "seq"

const custodyFormat = 1

// Custody record flags.
const (
	crOrigin = 1 << iota
	crAwaitingKey
	crSealedSender
	crHandedOff
	crKnown = crOrigin | crAwaitingKey | crSealedSender | crHandedOff
)

// maxCustodyData bounds a record's data: an envelope, or a body.
const maxCustodyData = protocol.MaxEnvelopeSize

// encodeCustody lays out a custody record:
//
//	0   1   version
//	1   1   flags: origin, awaiting key, sealed sender, handed off
//	2   1   envelope type
//	3   8   application reference
//	11  16  destination
//	27  4   created
//	31  4   expires
//	35  4   data length n
//	39  n   data: the envelope, or the plaintext body while awaiting the key
func encodeCustody(r *custodyRec) []byte {
	b := make([]byte, 0, 39+len(r.data))
	var flags byte
	if r.origin {
		flags |= crOrigin
	}
	if r.awaitingKey {
		flags |= crAwaitingKey
	}
	if r.sealedSender {
		flags |= crSealedSender
	}
	if r.handedOff {
		flags |= crHandedOff
	}
	b = append(b, custodyFormat, flags, byte(r.typ))
	b = binary.BigEndian.AppendUint64(b, r.ref)
	b = append(b, r.dest[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(r.created))
	b = binary.BigEndian.AppendUint32(b, uint32(r.expires))
	b = binary.BigEndian.AppendUint32(b, uint32(len(r.data)))
	return append(b, r.data...)
}

// decodeCustody decodes a record strictly; it checks that the data is a
// well-formed envelope for the record's destination (or a body within limits).
func decodeCustody(id MessageID, b []byte) (*custodyRec, error) {
	if len(b) < 39 {
		return nil, fmt.Errorf("custody record %x: %d bytes: %w", id, len(b), ErrCorruptRecord)
	}
	if b[0] != custodyFormat {
		return nil, fmt.Errorf("custody record %x: version %d: %w", id, b[0], ErrCorruptRecord)
	}
	flags := b[1]
	if flags&^crKnown != 0 {
		return nil, fmt.Errorf("custody record %x: flags 0x%02x: %w", id, flags, ErrCorruptRecord)
	}
	r := &custodyRec{
		id:           id,
		origin:       flags&crOrigin != 0,
		awaitingKey:  flags&crAwaitingKey != 0,
		sealedSender: flags&crSealedSender != 0,
		handedOff:    flags&crHandedOff != 0,
		typ:          protocol.Type(b[2]),
		ref:          binary.BigEndian.Uint64(b[3:]),
		created:      protocol.Timestamp(binary.BigEndian.Uint32(b[27:])),
		expires:      protocol.Timestamp(binary.BigEndian.Uint32(b[31:])),
	}
	copy(r.dest[:], b[11:27])
	n := binary.BigEndian.Uint32(b[35:])
	if uint64(n) != uint64(len(b)-39) || n > maxCustodyData {
		return nil, fmt.Errorf("custody record %x: data length %d of %d: %w", id, n, len(b)-39, ErrCorruptRecord)
	}
	r.data = cloneFrame(b[39:])
	if r.awaitingKey {
		if !r.origin || len(r.data) > protocol.MaxPayloadSize {
			return nil, fmt.Errorf("custody record %x: bad pending body: %w", id, ErrCorruptRecord)
		}
		return r, nil
	}
	env, err := protocol.ParseEnvelope(r.data)
	if err != nil {
		return nil, fmt.Errorf("custody record %x: %w: %v", id, ErrCorruptRecord, err)
	}
	// The engine retries and expires by the record's header: it must be
	// the envelope's own.
	if env.ID != id || env.Dest != r.dest || env.Type != r.typ || env.Created != r.created ||
		env.Expires != r.expires || (env.Flags&protocol.FlagSealedSender != 0) != r.sealedSender {
		return nil, fmt.Errorf("custody record %x: envelope does not match: %w", id, ErrCorruptRecord)
	}
	return r, nil
}

// deliveredSet remembers the IDs of messages delivered to the application
// until they expire, so a retransmission is never delivered twice, even
// across restarts (the set is persisted). It is bounded: past max entries
// the oldest are forgotten.
type deliveredSet struct {
	m     map[MessageID]protocol.Timestamp
	order []MessageID // insertion order, for the bound
	max   int
}

func newDeliveredSet(max int) *deliveredSet {
	return &deliveredSet{m: make(map[MessageID]protocol.Timestamp), max: max}
}

func (d *deliveredSet) has(id MessageID) bool { _, ok := d.m[id]; return ok }

// add records id and returns IDs evicted to stay within the bound.
func (d *deliveredSet) add(id MessageID, expires protocol.Timestamp) []MessageID {
	if _, ok := d.m[id]; ok {
		return nil
	}
	d.m[id] = expires
	d.order = append(d.order, id)
	var evicted []MessageID
	for len(d.m) > d.max && len(d.order) > 0 {
		old := d.order[0]
		d.order = d.order[1:]
		if _, ok := d.m[old]; ok {
			delete(d.m, old)
			evicted = append(evicted, old)
		}
	}
	return evicted
}

// expire forgets entries that expired before now and returns them.
func (d *deliveredSet) expire(now protocol.Timestamp) []MessageID {
	var out []MessageID
	keep := d.order[:0]
	for _, id := range d.order {
		exp, ok := d.m[id]
		switch {
		case !ok:
		case exp < now:
			delete(d.m, id)
			out = append(out, id)
		default:
			keep = append(keep, id)
		}
	}
	clear(d.order[len(keep):])
	d.order = keep
	return out
}
