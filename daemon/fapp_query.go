package daemon

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"meshd.dev/meshd/fapp"
	"meshd.dev/meshd/rpcapi"
)

// Remote queries travel on one public channel that FAPP relays and nodes
// using FAPP join (docs/fapp.md, "Remote queries"):
//
//	0x91 | query ID 16 | reply key 32 | query      a query (broadcast)
//	0x92 | query ID 16 | answer key 32 | sealed    an answer (broadcast)
//
// The query ID is fresh and random, the reply key a fresh X25519 key,
// both made for this one query; nothing in it names the node that asks,
// and the answer is a broadcast too, so nobody learns which node asked.
// A relay seals its answer to the reply key: a fresh X25519 key of its
// own (the answer key), HKDF-SHA256 over the shared secret (salt: query ID
// || answer key || reply key, info "meshd fapp answer v1") and AES-256-GCM
// with a zero nonce (the key is used once), the query ID as associated
// data. The plaintext is padded to a size bucket so the answer's length
// does not tell how many slots matched:
//
//	count u16 | count x (kind u8: 1 announce, 2 profile | length u16 | bytes) | zeros
//
// Announces and profiles stay signed by their therapists, so a relay can
// leave things out but cannot forge them; the asking node verifies each
// and runs the query again on what it got.
const (
	queryMsg       = 0x91
	answerMsg      = 0x92
	queryIDSize    = 16
	x25519Size     = 32
	answerInfo     = "meshd fapp answer v1"
	itemAnnounce   = 1
	itemProfile    = 2
	maxQueryItems  = 4096 // items kept per pending query, over all answers
	queryVersion   = 1
	maxQueryBytes  = 1 + 1 + 5 + 8 + 1 + 2*16 + 1 + fapp.MaxTimeWindows*5 + 4 + 4 + 2
	defaultWaitFor = 3 * time.Second
)

// answerBuckets are the padded plaintext sizes of an answer.
var answerBuckets = []int{1 << 10, 4 << 10, 16 << 10, 48 << 10}

type queryID [queryIDSize]byte

// pendingQuery is a remote query waiting for answers.
type pendingQuery struct {
	key       *ecdh.PrivateKey
	announces []*fapp.SlotAnnounce
	profiles  []*fapp.Profile
	answers   int
	got       chan struct{} // signalled (non-blocking) per answer
}

var errQueryMalformed = fmt.Errorf("query: %w", fapp.ErrMalformed)

// encodeQuery encodes q for the query channel (layout in docs/fapp.md).
func encodeQuery(q *fapp.Query) ([]byte, error) {
	if err := q.Check(); err != nil {
		return nil, err
	}
	if len(q.Sprachen) > 16 {
		return nil, fmt.Errorf("query: %d languages, limit 16: %w", len(q.Sprachen), fapp.ErrTooLarge)
	}
	b := []byte{queryVersion, byte(len(q.PLZPrefix))}
	b = append(b, q.PLZPrefix...)
	b = append(b, byte(q.Verfahren), byte(q.Kostentraeger), byte(q.Terminart), byte(q.Altersgruppe),
		byte(q.Setting), byte(q.Modalitaet), byte(q.Geschlecht))
	var flags byte
	if q.BarrierefreiZugang {
		flags |= 1
	}
	if q.BarrierefreiWC {
		flags |= 2
	}
	if q.NurZertifiziert {
		flags |= 4
	}
	b = append(b, flags, byte(len(q.Sprachen)))
	for _, l := range q.Sprachen {
		b = append(b, l[:]...)
	}
	b = append(b, byte(len(q.Zeitfenster)))
	for _, w := range q.Zeitfenster {
		b = append(b, byte(w.Tage))
		b = binary.BigEndian.AppendUint16(b, uint16(w.Von))
		b = binary.BigEndian.AppendUint16(b, uint16(w.Bis))
	}
	b = binary.BigEndian.AppendUint32(b, unixOrZero(q.Fruehestens))
	b = binary.BigEndian.AppendUint32(b, unixOrZero(q.Spaetestens))
	return binary.BigEndian.AppendUint16(b, uint16(q.Limit)), nil
}

func unixOrZero(t time.Time) uint32 {
	if t.IsZero() || t.Unix() < 0 || t.Unix() > 1<<32-1 {
		return 0
	}
	return uint32(t.Unix())
}

func timeOrZero(v uint32) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.Unix(int64(v), 0).UTC()
}

// decodeQuery decodes a query strictly and checks it.
func decodeQuery(b []byte) (fapp.Query, error) {
	var q fapp.Query
	if len(b) > maxQueryBytes {
		return q, fmt.Errorf("query of %d bytes: %w", len(b), fapp.ErrTooLarge)
	}
	r := &byteReader{b: b}
	if v := r.u8(); v != queryVersion {
		return q, fmt.Errorf("query version %d: %w", v, fapp.ErrUnknownVersion)
	}
	q.PLZPrefix = string(r.take(int(r.u8())))
	q.Verfahren, q.Kostentraeger = fapp.VerfahrenSet(r.u8()), fapp.KostentraegerSet(r.u8())
	q.Terminart, q.Altersgruppe = fapp.TerminartSet(r.u8()), fapp.AltersgruppeSet(r.u8())
	q.Setting, q.Modalitaet, q.Geschlecht = fapp.SettingSet(r.u8()), fapp.ModalitaetSet(r.u8()), fapp.GeschlechtSet(r.u8())
	flags := r.u8()
	q.BarrierefreiZugang, q.BarrierefreiWC, q.NurZertifiziert = flags&1 != 0, flags&2 != 0, flags&4 != 0
	for range r.u8() {
		var l fapp.Sprache
		copy(l[:], r.take(2))
		q.Sprachen = append(q.Sprachen, l)
	}
	for range r.u8() {
		q.Zeitfenster = append(q.Zeitfenster, fapp.TimeWindow{Tage: fapp.WeekdaySet(r.u8()), Von: int(r.u16()), Bis: int(r.u16())})
	}
	q.Fruehestens, q.Spaetestens = timeOrZero(r.u32()), timeOrZero(r.u32())
	q.Limit = int(r.u16())
	switch {
	case r.short:
		return fapp.Query{}, fmt.Errorf("query: %w", fapp.ErrTruncated)
	case r.off != len(b):
		return fapp.Query{}, fmt.Errorf("query: %d bytes left over: %w", len(b)-r.off, fapp.ErrTrailing)
	case flags&^7 != 0:
		return fapp.Query{}, errQueryMalformed
	}
	if err := q.Check(); err != nil {
		return fapp.Query{}, err
	}
	return q, nil
}

// byteReader reads big-endian fields; past the end it yields zeros and
// sets short.
type byteReader struct {
	b     []byte
	off   int
	short bool
}

func (r *byteReader) take(n int) []byte {
	if r.off+n > len(r.b) {
		r.short, r.off = true, len(r.b)
		return make([]byte, n)
	}
	v := r.b[r.off : r.off+n]
	r.off += n
	return v
}
func (r *byteReader) u8() uint8   { return r.take(1)[0] }
func (r *byteReader) u16() uint16 { return binary.BigEndian.Uint16(r.take(2)) }
func (r *byteReader) u32() uint32 { return binary.BigEndian.Uint32(r.take(4)) }

// answerKey derives the AES key of an answer.
func answerKey(shared []byte, id queryID, answerPub, replyPub []byte) ([]byte, error) {
	salt := slices.Concat(id[:], answerPub, replyPub)
	return hkdf.Key(sha256.New, shared, salt, answerInfo, 32)
}

func gcmOf(key []byte) (cipher.AEAD, error) {
	blk, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(blk)
}

// sealAnswer seals a padded answer plaintext to the query's reply key.
func sealAnswer(rnd io.Reader, id queryID, replyPub, plain []byte) ([]byte, error) {
	peer, err := ecdh.X25519().NewPublicKey(replyPub)
	if err != nil {
		return nil, fmt.Errorf("reply key: %w: %v", fapp.ErrMalformed, err)
	}
	eph, err := ecdh.X25519().GenerateKey(rnd)
	if err != nil {
		return nil, err
	}
	shared, err := eph.ECDH(peer)
	if err != nil {
		return nil, fmt.Errorf("reply key: %w: %v", fapp.ErrMalformed, err)
	}
	pub := eph.PublicKey().Bytes()
	key, err := answerKey(shared, id, pub, replyPub)
	if err != nil {
		return nil, err
	}
	aead, err := gcmOf(key)
	if err != nil {
		return nil, err
	}
	out := slices.Concat([]byte{answerMsg}, id[:], pub)
	return aead.Seal(out, make([]byte, aead.NonceSize()), plain, id[:]), nil
}

// openAnswer opens an answer's sealed part with the query's key.
func openAnswer(priv *ecdh.PrivateKey, id queryID, answerPub, sealed []byte) ([]byte, error) {
	peer, err := ecdh.X25519().NewPublicKey(answerPub)
	if err != nil {
		return nil, fmt.Errorf("answer key: %w", fapp.ErrMalformed)
	}
	shared, err := priv.ECDH(peer)
	if err != nil {
		return nil, fmt.Errorf("answer key: %w", fapp.ErrMalformed)
	}
	key, err := answerKey(shared, id, answerPub, priv.PublicKey().Bytes())
	if err != nil {
		return nil, err
	}
	aead, err := gcmOf(key)
	if err != nil {
		return nil, err
	}
	plain, err := aead.Open(nil, make([]byte, aead.NonceSize()), sealed, id[:])
	if err != nil {
		return nil, fmt.Errorf("answer: %w", fapp.ErrBadSignature)
	}
	return plain, nil
}

// answerItem is one signed object in an answer.
type answerItem struct {
	kind byte
	raw  []byte
}

// padAnswer lays out items (as many as fit the largest bucket, in order)
// and pads them to the smallest bucket that holds them.
func padAnswer(items []answerItem) []byte {
	limit := answerBuckets[len(answerBuckets)-1]
	b := []byte{0, 0}
	n := 0
	for _, it := range items {
		if len(b)+3+len(it.raw) > limit || len(it.raw) > 0xffff {
			continue
		}
		b = append(b, it.kind)
		b = binary.BigEndian.AppendUint16(b, uint16(len(it.raw)))
		b = append(b, it.raw...)
		n++
	}
	binary.BigEndian.PutUint16(b, uint16(n))
	for _, size := range answerBuckets {
		if len(b) <= size {
			return append(b, make([]byte, size-len(b))...)
		}
	}
	return b
}

// parseAnswer splits a padded answer into its items; the padding must be
// zeros.
func parseAnswer(b []byte) ([]answerItem, error) {
	if !slices.Contains(answerBuckets, len(b)) {
		return nil, fmt.Errorf("answer of %d bytes, not a bucket size: %w", len(b), fapp.ErrMalformed)
	}
	r := &byteReader{b: b}
	n := int(r.u16())
	var out []answerItem
	for range n {
		kind := r.u8()
		raw := r.take(int(r.u16()))
		if r.short {
			return nil, fmt.Errorf("answer: %w", fapp.ErrTruncated)
		}
		if kind != itemAnnounce && kind != itemProfile {
			return nil, fmt.Errorf("answer item kind %d: %w", kind, fapp.ErrUnknownVersion)
		}
		out = append(out, answerItem{kind: kind, raw: raw})
	}
	for _, c := range b[r.off:] {
		if c != 0 {
			return nil, fmt.Errorf("answer: padding not zero: %w", fapp.ErrMalformed)
		}
	}
	return out, nil
}

// onQueryFrame handles a message of the query channel. Loop only.
func (f *fappNode) onQueryFrame(body []byte, now time.Time) {
	if len(body) < 1+queryIDSize+x25519Size {
		f.drop("query", fapp.ErrTruncated)
		return
	}
	var id queryID
	copy(id[:], body[1:])
	pub := body[1+queryIDSize : 1+queryIDSize+x25519Size]
	rest := body[1+queryIDSize+x25519Size:]
	f.mu.Lock()
	defer f.mu.Unlock()
	switch body[0] {
	case queryMsg:
		if f.relay && f.queries[id] == nil {
			f.answerLocked(id, pub, rest, now)
		}
	case answerMsg:
		if pq := f.queries[id]; pq != nil {
			f.takeAnswerLocked(pq, id, pub, rest, now)
		}
	default:
		f.drop("query", fapp.ErrUnknownVersion)
	}
}

// answerLocked answers a remote query from the index. Relays only.
func (f *fappNode) answerLocked(id queryID, replyPub, raw []byte, now time.Time) {
	q, err := decodeQuery(raw)
	if err != nil {
		f.drop("query", err)
		return
	}
	res, err := f.idx.Query(q, now)
	if err != nil {
		f.drop("query", err)
		return
	}
	var items, profs []answerItem
	seen := map[fapp.TherapistKey]bool{}
	for _, r := range res {
		k := r.Announce.Therapist
		if seen[k] {
			continue
		}
		seen[k] = true
		if a, err := r.Announce.MarshalBinary(); err == nil {
			items = append(items, answerItem{itemAnnounce, a})
		}
		if r.Profile != nil {
			if p, err := r.Profile.MarshalBinary(); err == nil {
				profs = append(profs, answerItem{itemProfile, p})
			}
		}
	}
	sealed, err := sealAnswer(randReader, id, replyPub, padAnswer(append(items, profs...)))
	if err != nil {
		f.drop("query", err)
		return
	}
	f.stats.add("queries_answered", 1)
	f.queue(fappOut{channel: queriesKey(), body: sealed})
}

// takeAnswerLocked opens an answer to a pending query and keeps what
// verifies.
func (f *fappNode) takeAnswerLocked(pq *pendingQuery, id queryID, answerPub, sealed []byte, now time.Time) {
	plain, err := openAnswer(pq.key, id, answerPub, sealed)
	if err != nil {
		f.drop("answer", err)
		return
	}
	items, err := parseAnswer(plain)
	if err != nil {
		f.drop("answer", err)
		return
	}
	for _, it := range items {
		if len(pq.announces)+len(pq.profiles) >= maxQueryItems {
			break
		}
		switch it.kind {
		case itemAnnounce:
			a, err := fapp.ParseSlotAnnounce(it.raw, now, clockSkew)
			if err != nil {
				f.drop("answer_announce", err)
				continue
			}
			pq.announces = append(pq.announces, a)
		case itemProfile:
			p, err := fapp.ParseProfile(it.raw)
			if err != nil {
				f.drop("answer_profile", err)
				continue
			}
			pq.profiles = append(pq.profiles, p)
		}
	}
	pq.answers++
	select {
	case pq.got <- struct{}{}:
	default:
	}
}

// remoteQuery sends q to the relays and collects answers for wait (or
// until ctx ends), then runs q over the verified announces.
func (f *fappNode) remoteQuery(ctx context.Context, q fapp.Query, wait time.Duration) ([]fapp.Result, int, error) {
	body, err := encodeQuery(&q)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %v", rpcapi.ErrInvalidParams, err)
	}
	var id queryID
	if _, err := io.ReadFull(randReader, id[:]); err != nil {
		return nil, 0, err
	}
	key, err := ecdh.X25519().GenerateKey(randReader)
	if err != nil {
		return nil, 0, err
	}
	msg := slices.Concat([]byte{queryMsg}, id[:], key.PublicKey().Bytes(), body)
	pq := &pendingQuery{key: key, got: make(chan struct{}, 1)}
	f.mu.Lock()
	f.queries[id] = pq
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.queries, id)
		f.mu.Unlock()
	}()
	if err := f.n.call(ctx, func() {
		f.syncChannels()
		f.n.sendFAPP(fappOut{channel: queriesKey(), body: msg})
	}); err != nil {
		return nil, 0, err
	}
	if wait <= 0 {
		wait = defaultWaitFor
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	res, err := f.resultsLocked(pq, q, f.n.now())
	return res, pq.answers, err
}

// resultsLocked keeps what answers brought in the remote cache and runs
// q over it.
func (f *fappNode) resultsLocked(pq *pendingQuery, q fapp.Query, now time.Time) ([]fapp.Result, error) {
	tmp := fapp.NewIndex(fapp.IndexConfig{Trust: f.trust, ClockSkew: clockSkew})
	for _, a := range pq.announces {
		if err := tmp.Add(a, now); err != nil && !errors.Is(err, fapp.ErrStale) {
			f.drop("answer_announce", err)
		}
	}
	for _, p := range pq.profiles {
		if tmp.Get(p.Therapist()) != nil {
			tmp.AddProfile(p, now)
		}
	}
	for _, r := range regionsOfPrefix(q.PLZPrefix) {
		for _, a := range tmp.Announces(r) {
			f.rememberLocked(a, tmp.Profile(a.Therapist), now)
		}
	}
	return tmp.Query(q, now)
}

// rememberLocked keeps a remote announce and profile (bounded: the least
// recently touched entry goes first).
func (f *fappNode) rememberLocked(a *fapp.SlotAnnounce, p *fapp.Profile, now time.Time) {
	e := f.remote[a.Therapist]
	if e == nil {
		if len(f.remote) >= fappRemoteCache {
			var oldest fapp.TherapistKey
			first := true
			for k, v := range f.remote {
				if first || v.touched.Before(f.remote[oldest].touched) {
					oldest, first = k, false
				}
			}
			delete(f.remote, oldest)
		}
		e = &remoteEntry{}
		f.remote[a.Therapist] = e
	}
	if e.a == nil || a.Sequence >= e.a.Sequence {
		e.a = a
	}
	if p != nil {
		e.p = p
	}
	e.touched = now
}

// pruneRemoteLocked forgets expired remote announces.
func (f *fappNode) pruneRemoteLocked(now time.Time) {
	for k, e := range f.remote {
		if e.a.Expired(now) {
			delete(f.remote, k)
		}
	}
}
