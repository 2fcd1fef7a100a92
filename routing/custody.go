package routing

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"meshd.dev/meshd/protocol"
)

// envKey names an envelope by content (protocol.EnvelopeKey): custody,
// the delivered set, the seen cache, hop acks and receipts are keyed on it,
// never on the message ID a sender chooses and anyone on the path can reuse.
type envKey = protocol.EnvelopeKey

// pendingKey is the key of an origin's record that waits for the
// destination's KEM key: its envelope does not exist yet, so it has no
// envelope key. The digest of the message ID under its own label cannot
// equal any envelope's key (a different domain), and the ID is this node's
// own fresh random draw. Sealing re-keys the record to its envelope's key.
func pendingKey(id MessageID) envKey {
	const label = "meshd/pending-custody/v1\x00"
	var b [len(label) + len(id)]byte
	copy(b[copy(b[:], label):], id[:])
	h := sha256.Sum256(b[:]) // no hash object: nothing allocated
	return envKey(h[:16])
}

// custodyRec is a message this node has promised to keep until it is
// delivered, handed off or expired.
type custodyRec struct {
	key          envKey    // the envelope's key, or pendingKey(id) while awaiting the key
	id           MessageID // reported in events; not unique
	dest         Address
	origin       bool // this node sent it and waits for the receipt
	awaitingKey  bool // data is the plaintext body, sealed once the key is known
	sealedSender bool
	handedOff    bool // a mailbox accepted it
	mailboxed    bool // accepted as a mailbox: handed only to the destination itself (mailbox.go)
	typ          protocol.Type
	ref          uint64
	created      protocol.Timestamp
	expires      protocol.Timestamp
	data         []byte // the encoded envelope, or the plaintext body
	// session: an own message carried over a route session (session.go);
	// data is its number and body, key its session message key.
	session bool
	// bodySealed: data is the body encrypted at rest (only as stored:
	// persistCustody seals a copy, restoreCustody opens it).
	bodySealed bool

	// Quota charges (see quota.go), not persisted: a restored record is
	// charged to its source, its neighbour is gone.
	from    neighbour
	hasFrom bool
	source  Address // the signer of a forwarded envelope; zero if sealed sender
	charged int     // what the record was charged when it was added

	// Volatile.
	receiptFor envKey // a pending sealed receipt: the message it confirms
	frame      []byte // session: the data frame that carries it, resent as is
	label      protocol.PathLabel
	counter    uint32
	attempts   int
	noRoute    int       // session: attempts in a row that found no route (session_fallback.go)
	nextTry    time.Time // zero: wait for a route
	gen        uint64    // heap entries with another generation are stale
	// seq is the order the store took the record in (volatile; restored
	// records take it in the order of their creation time): forDest goes
	// by it, so that messages to one destination go out in the order
	// they were sent.
	seq uint64

	// toDest: the last transmission went to the destination itself, over
	// a link whose peer it is (volatile; see keepsCopy).
	toDest bool

	// offeredTo is the mailbox it was last offered to (volatile): only
	// that mailbox's answer counts.
	offeredTo Address
}

func (r *custodyRec) size() int { return cap(r.data) + custodyRecOverhead }

// custodyStore holds the custody records with per-destination accounting and
// a heap of due times (retries and expiries).
type custodyStore struct {
	recs   map[envKey]*custodyRec
	byDest map[Address]map[envKey]struct{}
	quota  *custodyQuota
	bytes  int
	due    dueHeap
	gen    uint64
	seq    uint64 // the last record's seq
}

func newCustodyStore(quota *custodyQuota) *custodyStore {
	return &custodyStore{
		recs:   make(map[envKey]*custodyRec),
		byDest: make(map[Address]map[envKey]struct{}),
		quota:  quota,
	}
}

func (s *custodyStore) get(k envKey) *custodyRec { return s.recs[k] }

// admit reports whether r fits the quotas (see quota.go).
func (s *custodyStore) admit(r *custodyRec) error { return s.quota.admit(r) }

// add stores r and reports whether it did. It never replaces a record: a
// record with r's key holds the same envelope already (and may be the
// origin's own, which a copy from the network must not demote).
func (s *custodyStore) add(r *custodyRec) bool {
	if s.recs[r.key] != nil {
		return false
	}
	s.recs[r.key] = r
	if r.seq == 0 { // a record re-keyed (sealed) keeps its place
		s.seq++
		r.seq = s.seq
	}
	if s.byDest[r.dest] == nil {
		s.byDest[r.dest] = make(map[envKey]struct{})
	}
	s.byDest[r.dest][r.key] = struct{}{}
	s.quota.charge(r)
	s.bytes += r.charged
	s.schedule(r)
	return true
}

// schedule (re)inserts r's next due time: its retry or its expiry.
func (s *custodyStore) schedule(r *custodyRec) {
	s.gen++
	r.gen = s.gen
	at := r.expires.Time()
	if !r.nextTry.IsZero() && r.nextTry.Before(at) {
		at = r.nextTry
	}
	s.due.push(dueItem{at: at, key: r.key, gen: r.gen})
	if len(s.due) > 2*len(s.recs)+dueSlack {
		s.compactDue()
	}
}

// dueSlack is how many stale entries the due heap may hold beyond twice
// the live records before compactDue.
const dueSlack = 1024

// compactDue drops the heap's stale entries (records removed or scheduled
// again since). Entries go stale by the million otherwise: every message
// is scheduled when it is taken in and again when it is sent, and one
// acknowledged a moment later leaves both entries until their due time
// comes up, RetryBase (30 s) later; at 25,000 messages a second that was
// over a million entries, 48 bytes each, and every push and pop paid for
// a deeper heap. It runs after at least len(recs)+dueSlack pushes and
// costs one pass, so it is amortized O(1) per push.
func (s *custodyStore) compactDue() {
	live := s.due[:0]
	for _, it := range s.due {
		if r := s.recs[it.key]; r != nil && r.gen == it.gen {
			live = append(live, it)
		}
	}
	clear(s.due[len(live):])
	s.due = live
	for i := len(live)/2 - 1; i >= 0; i-- {
		s.due.down(i)
	}
}

func (s *custodyStore) remove(k envKey) {
	r := s.recs[k]
	if r == nil {
		return
	}
	delete(s.recs, k)
	delete(s.byDest[r.dest], k)
	if len(s.byDest[r.dest]) == 0 {
		delete(s.byDest, r.dest)
	}
	s.bytes -= r.charged
	s.quota.release(r)
	r.gen = 0 // its heap entries are stale now
}

// forDest returns the records for dest in the order they were sent: by
// creation time (whole seconds), then by the order the store took them.
func (s *custodyStore) forDest(dest Address) []*custodyRec {
	out := make([]*custodyRec, 0, len(s.byDest[dest]))
	for k := range s.byDest[dest] {
		out = append(out, s.recs[k])
	}
	slices.SortFunc(out, func(a, b *custodyRec) int {
		if c := cmp.Compare(a.created, b.created); c != 0 {
			return c
		}
		return cmp.Compare(a.seq, b.seq)
	})
	return out
}

// popDue returns the next record due at or before now, or nil.
func (s *custodyStore) popDue(now time.Time) *custodyRec {
	for s.due.Len() > 0 {
		top := s.due[0]
		r := s.recs[top.key]
		if r == nil || r.gen != top.gen {
			s.due.pop()
			continue
		}
		if top.at.After(now) {
			return nil
		}
		s.due.pop()
		return r
	}
	return nil
}

func (s *custodyStore) nextDue() time.Time {
	for s.due.Len() > 0 {
		top := s.due[0]
		if r := s.recs[top.key]; r == nil || r.gen != top.gen {
			s.due.pop()
			continue
		}
		return top.at
	}
	return time.Time{}
}

type dueItem struct {
	at  time.Time
	key envKey
	gen uint64
}

type dueHeap []dueItem

func (h dueHeap) Len() int { return len(h) }
func (h dueHeap) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return bytes.Compare(h[i].key[:], h[j].key[:]) < 0
}
func (h dueHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }

// push and pop are container/heap's algorithm without its interface,
// whose any arguments cost an allocation per message scheduled and taken.
func (h *dueHeap) push(it dueItem) {
	*h = append(*h, it)
	for j := len(*h) - 1; j > 0; {
		i := (j - 1) / 2
		if !h.Less(j, i) {
			break
		}
		h.Swap(i, j)
		j = i
	}
}

// pop removes the earliest item.
func (h *dueHeap) pop() {
	n := len(*h) - 1
	h.Swap(0, n)
	*h = (*h)[:n]
	h.down(0)
}

// down moves item i down to its place.
func (h dueHeap) down(i int) {
	for n := len(h); ; {
		j := 2*i + 1
		if j >= n {
			return
		}
		if k := j + 1; k < n && h.Less(k, j) {
			j = k
		}
		if !h.Less(j, i) {
			return
		}
		h.Swap(i, j)
		i = j
	}
}

// Persistence. Keys: "c/<key>" custody, "d/<order>" delivered, "seq" the
// announce sequence number, with the envelope key in hex (for a pending
// origin record, pendingKey). Format 1 keyed both on the message ID.
//
// A delivered record's key is its delivery order: 16 hex digits of a
// 64-bit number that grows by one per delivery (format 3; the envelope key
// is in the value). Keys in delivery order land at the end of the store's
// in-memory table, where the envelope key, random, made every insert a
// walk through cold memory. Records of formats 1 and 2 keep their
// old key, "d/<32 hex digits>" (the message ID, the envelope key) until
// they expire: see restoreOne.

func custodyKey(k envKey) string { return recordKey('c', k) }

// deliveredKey is the key of the delivered record of the envelope with key
// k: by its delivery order (format 3), or, for a record restored in an
// older format (order 0), by k.
func deliveredKey(k envKey, order uint64) string {
	if order == 0 {
		return recordKey('d', k)
	}
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], order)
	var b [deliveredOrderKeyLen]byte
	copy(b[:], "d/")
	hex.Encode(b[2:], n[:])
	return string(b[:])
}

// Delivered record key lengths: by order (format 3), by key (1 and 2).
const (
	deliveredOrderKeyLen = 2 + 16
	deliveredOldKeyLen   = 2 + 32
)

const seqKey = "seq"

// Custody record formats: 1 was keyed on the message ID (read for
// migration only), 2 is keyed on the envelope key and carries the ID.
const (
	custodyFormatV1 = 1
	custodyFormat   = 2
)

// Custody record flags.
const (
	crOrigin = 1 << iota
	crAwaitingKey
	crSealedSender
	crHandedOff
	crSession
	crBodySealed
	crMailboxed
	crKnown = crOrigin | crAwaitingKey | crSealedSender | crHandedOff | crSession | crBodySealed | crMailboxed
)

// maxCustodyData bounds a record's data: an envelope, or a body.
const maxCustodyData = protocol.MaxEnvelopeSize

// atRestOverhead is what encrypting a body at rest adds (the AEAD tag).
const atRestOverhead = chacha20poly1305.Overhead

// custodyHeaderV1 and custodyHeader are the sizes before the data.
const (
	custodyHeaderV1 = 39
	custodyHeader   = 55
)

// encodeCustody lays out a custody record (format 2):
//
//	0   1   version 2
//	1   1   flags: origin, awaiting key, sealed sender, handed off, mailboxed
//	2   1   envelope type
//	3   8   application reference
//	11  16  destination
//	27  4   created
//	31  4   expires
//	35  16  message ID
//	51  4   data length n
//	55  n   data: the envelope, or the plaintext body while awaiting the key
//
// Format 1 was the same without the message ID (data length at 35, data
// at 39); its key was the message ID.
func encodeCustody(r *custodyRec) []byte {
	b := appendCustodyHead(make([]byte, 0, custodyHeader+len(r.data)), r, r.bodySealed, len(r.data))
	return append(b, r.data...)
}

// appendCustodyHead appends a record's header, up to its data, for data of
// n bytes, sealed at rest or not: persistCustody seals a body straight
// after it, into the one buffer.
func appendCustodyHead(b []byte, r *custodyRec, bodySealed bool, n int) []byte {
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
	if r.session {
		flags |= crSession
	}
	if bodySealed {
		flags |= crBodySealed
	}
	if r.mailboxed {
		flags |= crMailboxed
	}
	b = append(b, custodyFormat, flags, byte(r.typ))
	b = binary.BigEndian.AppendUint64(b, r.ref)
	b = append(b, r.dest[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(r.created))
	b = binary.BigEndian.AppendUint32(b, uint32(r.expires))
	b = append(b, r.id[:]...)
	return binary.BigEndian.AppendUint32(b, uint32(n))
}

// decodeCustody decodes a record stored under key k strictly, in either
// format; it checks that the data is a well-formed envelope for the
// record's destination whose key is the record's (or a body within limits).
// For format 1, k is the message ID; the record gets its format 2 key.
func decodeCustody(k [16]byte, b []byte) (*custodyRec, error) {
	if len(b) < 1 || (b[0] != custodyFormat && b[0] != custodyFormatV1) {
		return nil, fmt.Errorf("custody record %x: bad version: %w", k, ErrCorruptRecord)
	}
	hdr := custodyHeader
	if b[0] == custodyFormatV1 {
		hdr = custodyHeaderV1
	}
	if len(b) < hdr {
		return nil, fmt.Errorf("custody record %x: %d bytes: %w", k, len(b), ErrCorruptRecord)
	}
	flags := b[1]
	if flags&^crKnown != 0 {
		return nil, fmt.Errorf("custody record %x: flags 0x%02x: %w", k, flags, ErrCorruptRecord)
	}
	r := &custodyRec{
		origin:       flags&crOrigin != 0,
		awaitingKey:  flags&crAwaitingKey != 0,
		sealedSender: flags&crSealedSender != 0,
		handedOff:    flags&crHandedOff != 0,
		session:      flags&crSession != 0,
		bodySealed:   flags&crBodySealed != 0,
		mailboxed:    flags&crMailboxed != 0,
		typ:          protocol.Type(b[2]),
		ref:          binary.BigEndian.Uint64(b[3:]),
		created:      protocol.Timestamp(binary.BigEndian.Uint32(b[27:])),
		expires:      protocol.Timestamp(binary.BigEndian.Uint32(b[31:])),
	}
	copy(r.dest[:], b[11:27])
	if b[0] == custodyFormatV1 {
		r.id = MessageID(k)
	} else {
		copy(r.id[:], b[35:51])
	}
	n := binary.BigEndian.Uint32(b[hdr-4:])
	if uint64(n) != uint64(len(b)-hdr) || n > maxCustodyData {
		return nil, fmt.Errorf("custody record %x: data length %d of %d: %w", k, n, len(b)-hdr, ErrCorruptRecord)
	}
	r.data = cloneFrame(b[hdr:])
	if r.session {
		// The key is the sender's own digest of its number; the engine
		// checks it (restoreCustody), which knows the sender.
		r.key = envKey(k)
	}
	if err := r.checkData(); err != nil {
		return nil, fmt.Errorf("custody record %x: %w: %v", k, ErrCorruptRecord, err)
	}
	if b[0] == custodyFormat && r.key != envKey(k) {
		return nil, fmt.Errorf("custody record %x: stored under another key: %w", k, ErrCorruptRecord)
	}
	return r, nil
}

// checkData checks the record's data against its header and sets its key.
func (r *custodyRec) checkData() error {
	sealed := 0
	if r.bodySealed {
		if !r.session && !r.awaitingKey {
			return errors.New("an envelope sealed at rest")
		}
		sealed = atRestOverhead
	}
	if r.session {
		if !r.origin || r.awaitingKey || r.typ != protocol.TypeMessage || len(r.data) < protocol.SessionNumberSize+sealed || len(r.data) > protocol.MaxSessionPlaintext+sealed {
			return errors.New("bad session message")
		}
		return nil
	}
	if r.awaitingKey {
		if !r.origin || len(r.data) < sealed || len(r.data) > protocol.MaxPayloadSize+sealed {
			return errors.New("bad pending body")
		}
		r.key = pendingKey(r.id)
		return nil
	}
	env, err := protocol.ParseEnvelope(r.data)
	if err != nil {
		return err
	}
	// The engine retries and expires by the record's header: it must be
	// the envelope's own.
	if env.ID != r.id || env.Dest != r.dest || env.Type != r.typ || env.Created != r.created ||
		env.Expires != r.expires || (env.Flags&protocol.FlagSealedSender != 0) != r.sealedSender {
		return errors.New("envelope does not match")
	}
	r.key = env.Key()
	return nil
}

// deliveredEntry is what the node keeps about a message it delivered: enough
// to suppress copies and to answer them with a receipt without opening or
// verifying the copy again.
type deliveredEntry struct {
	expires protocol.Timestamp
	// lastReceipt is when a receipt was last sent (not persisted): copies
	// are answered at most once per interval.
	lastReceipt protocol.Timestamp
	// from is where the receipt goes (zero: none was asked for); sealed
	// says it goes sealed with sealed sender (the message was).
	from   Address
	sealed bool
	// legacy marks an entry restored from format 1, keyed on the message
	// ID: it suppresses any envelope to this node with that ID until it
	// expires (format 1 did not record the envelope key).
	legacy bool
}

// Delivered record flags (formats 2 and 3).
const (
	drLegacy = 1 << iota
	drSealed
	drKnown = drLegacy | drSealed
)

// Delivered record formats: 2 is keyed on the envelope key, 3 on the
// delivery order (deliveredKey) and carries the envelope key.
const (
	deliveredFormatV2 = 2
	deliveredFormat   = 3
)

// Delivered record sizes: format 2, format 3.
const (
	deliveredLenV2 = 38
	deliveredLen   = 54
)

// encodeDelivered lays out a delivered record of the envelope with key k
// (format 3; format 2 for an entry kept under its old key, order 0):
//
//	0   1   version 3 (2)
//	1   1   flags: legacy (keyed on the message ID), sealed receipt
//	2   4   expires
//	6   16  message ID
//	22  16  receipt destination (zero: no receipt)
//	38  16  envelope key (format 3 only)
//
// Format 1 was the 4-byte expiry alone, keyed on the message ID.
func encodeDelivered(d deliveredEntry, id MessageID, k envKey, order uint64) []byte {
	var flags byte
	if d.legacy {
		flags |= drLegacy
	}
	if d.sealed {
		flags |= drSealed
	}
	version, n := byte(deliveredFormat), deliveredLen
	if order == 0 {
		version, n = deliveredFormatV2, deliveredLenV2
	}
	b := append(make([]byte, 0, n), version, flags)
	b = binary.BigEndian.AppendUint32(b, uint32(d.expires))
	b = append(b, id[:]...)
	b = append(b, d.from[:]...)
	if order != 0 {
		b = append(b, k[:]...)
	}
	return b
}

// decodeDelivered decodes a delivered record stored under key k, in format
// 1 or 2 (a format 1 record becomes a legacy entry).
// The message ID is persisted (for the record's reader) but not kept in
// memory, which holds up to MaxDelivered entries.
func decodeDelivered(k [16]byte, b []byte) (deliveredEntry, error) {
	if len(b) == 4 {
		return deliveredEntry{expires: protocol.Timestamp(binary.BigEndian.Uint32(b)), legacy: true}, nil
	}
	if len(b) != deliveredLenV2 || b[0] != deliveredFormatV2 {
		return deliveredEntry{}, fmt.Errorf("delivered record %x: %w", k, ErrCorruptRecord)
	}
	d, err := decodeDeliveredFields(b)
	if err != nil {
		return deliveredEntry{}, fmt.Errorf("delivered record %x: %w", k, err)
	}
	if d.legacy && MessageID(b[6:22]) != MessageID(k) {
		return deliveredEntry{}, fmt.Errorf("delivered record %x: legacy entry for another ID: %w", k, ErrCorruptRecord)
	}
	return d, nil
}

// decodeDeliveredV3 decodes a delivered record in format 3 and returns
// the envelope key it names. A legacy entry has no envelope key: format 3
// never holds one.
func decodeDeliveredV3(b []byte) (deliveredEntry, envKey, error) {
	if len(b) != deliveredLen || b[0] != deliveredFormat {
		return deliveredEntry{}, envKey{}, ErrCorruptRecord
	}
	d, err := decodeDeliveredFields(b)
	if err != nil || d.legacy {
		return deliveredEntry{}, envKey{}, ErrCorruptRecord
	}
	return d, envKey(b[38:54]), nil
}

// decodeDeliveredFields decodes the fields formats 2 and 3 share.
func decodeDeliveredFields(b []byte) (deliveredEntry, error) {
	if b[1]&^drKnown != 0 {
		return deliveredEntry{}, ErrCorruptRecord
	}
	d := deliveredEntry{legacy: b[1]&drLegacy != 0, sealed: b[1]&drSealed != 0,
		expires: protocol.Timestamp(binary.BigEndian.Uint32(b[2:]))}
	copy(d.from[:], b[22:38])
	return d, nil
}

// deliveredSet remembers the envelopes delivered to the application until
// they expire, so a retransmission is never delivered twice, even across
// restarts (the set is persisted). It is bounded: past max entries the
// oldest are forgotten.
type deliveredSet struct {
	m     map[envKey]deliveredEntry
	order []deliveredRef // insertion order, for the bound
	max   int
}

// deliveredRef names an entry and its record: the record's key is
// deliveredKey(k, order).
type deliveredRef struct {
	k     envKey
	order uint64
}

func (r deliveredRef) recordKey() string { return deliveredKey(r.k, r.order) }

func newDeliveredSet(max int) *deliveredSet {
	return &deliveredSet{m: make(map[envKey]deliveredEntry), max: max}
}

// get returns the entry of the envelope with key k.
func (d *deliveredSet) get(k envKey) (deliveredEntry, bool) {
	ent, ok := d.m[k]
	return ent, ok && !ent.legacy
}

func (d *deliveredSet) has(k envKey) bool { _, ok := d.get(k); return ok }

// receiptSent records that a receipt for k went out at t.
func (d *deliveredSet) receiptSent(k envKey, t protocol.Timestamp) {
	if ent, ok := d.m[k]; ok {
		ent.lastReceipt = t
		d.m[k] = ent
	}
}

// hasLegacy reports whether a format 1 record names message id.
func (d *deliveredSet) hasLegacy(id MessageID) bool {
	ent, ok := d.m[envKey(id)]
	return ok && ent.legacy
}

// add records ent under r.k, its record under r's key, and returns the
// entries evicted to stay within the bound. It reports false, and records
// nothing, if k is already in the set.
func (d *deliveredSet) add(r deliveredRef, ent deliveredEntry) ([]deliveredRef, bool) {
	if _, ok := d.m[r.k]; ok {
		return nil, false
	}
	d.m[r.k] = ent
	d.order = append(d.order, r)
	var evicted []deliveredRef
	for len(d.m) > d.max && len(d.order) > 0 {
		old := d.order[0]
		d.order = d.order[1:]
		if _, ok := d.m[old.k]; ok {
			delete(d.m, old.k)
			evicted = append(evicted, old)
		}
	}
	return evicted, true
}

// expire forgets entries that expired before now and returns them.
func (d *deliveredSet) expire(now protocol.Timestamp) []deliveredRef {
	var out []deliveredRef
	keep := d.order[:0]
	for _, r := range d.order {
		ent, ok := d.m[r.k]
		switch {
		case !ok:
		case ent.expires < now:
			delete(d.m, r.k)
			out = append(out, r)
		default:
			keep = append(keep, r)
		}
	}
	clear(d.order[len(keep):])
	d.order = keep
	return out
}
