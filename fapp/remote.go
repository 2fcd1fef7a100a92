package fapp

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"

	"meshd.dev/meshd/protocol"
)

// Remote queries: a node asks a FAPP relay about a region it does not
// follow. The query carries a fresh random ID and a fresh ephemeral reply
// identity and nothing stable about the asker; the relay answers with the
// signed announces (and cached profiles) that match, and the asker re-runs
// the query over them locally (AnswerIndex), so a relay can leave results
// out but cannot forge or alter any.

// Remote query limits.
const (
	// MaxAnswerSize bounds an encoded QueryAnswer: it must fit one sealed
	// envelope (64 KiB with the KEM ciphertext and padding).
	MaxAnswerSize = 60 * 1024
	// MaxAnswerProfiles bounds the profiles of one answer.
	MaxAnswerProfiles = 32
	// QueryIDSize is the size of a QueryID.
	QueryIDSize = 16

	// KindQuery and KindAnswer extend the message kinds of ParseMessage.
	KindQuery  = 4
	KindAnswer = 5

	maxQuerySize = 2 + QueryIDSize + 4 + protocol.PublicIdentitySize + 1 + 5 + 7 + 1 + 1 + 2*MaxSprachen +
		1 + 5*MaxTimeWindows + 4 + 4 + 2
)

// QueryID names one remote query; fresh and random for every query.
type QueryID [QueryIDSize]byte

// String returns the 32-character lowercase hex form.
func (id QueryID) String() string { return hex.EncodeToString(id[:]) }

// RemoteQuery is a query for a relay.
type RemoteQuery struct {
	ID      QueryID
	Created time.Time // whole seconds
	// ReplyTo is a fresh ephemeral identity the answer is sealed to.
	ReplyTo *protocol.PublicIdentity
	Query   Query
}

func (*RemoteQuery) kind() byte { return KindQuery }

// QueryAnswer is a relay's answer: encoded announces and profiles exactly
// as their authors signed them.
type QueryAnswer struct {
	ID        QueryID
	Announces [][]byte
	Profiles  [][]byte
}

func (*QueryAnswer) kind() byte { return KindAnswer }

// MarshalBinary encodes the remote query:
//
//	version 0x01 | kind 0x04 | query ID 16 | created u32 | reply identity 1,249 |
//	PLZ prefix (u8 length, digits) | sets: Verfahren, Kostentraeger, Terminart,
//	Altersgruppe, Setting, Modalitaet, Geschlecht (1 byte each) |
//	flags u8 (0x1 barrier-free entrance, 0x2 WC, 0x4 credentialed only) |
//	languages (u8 count, 2 bytes each) | windows (u8 count; days u8, from u16,
//	to u16 each) | earliest u32 | latest u32 (0: none) | limit u16
func (r *RemoteQuery) MarshalBinary() ([]byte, error) {
	q := &r.Query
	if err := q.Check(); err != nil {
		return nil, err
	}
	if len(q.Sprachen) > MaxSprachen {
		return nil, fmt.Errorf("query: %d languages, limit %d: %w", len(q.Sprachen), MaxSprachen, ErrTooLarge)
	}
	if r.ReplyTo == nil {
		return nil, fmt.Errorf("query: no reply identity: %w", ErrMalformed)
	}
	created, err := unix32("query: created", r.Created)
	if err != nil {
		return nil, err
	}
	from, err1 := optUnix32(q.Fruehestens)
	to, err2 := optUnix32(q.Spaetestens)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("query: start bounds not representable: %w", ErrMalformed)
	}
	b := []byte{messageVersion, KindQuery}
	b = append(b, r.ID[:]...)
	b = binary.BigEndian.AppendUint32(b, created)
	b, _ = r.ReplyTo.AppendBinary(b)
	b = appendStr(b, q.PLZPrefix)
	b = append(b, byte(q.Verfahren), byte(q.Kostentraeger), byte(q.Terminart), byte(q.Altersgruppe),
		byte(q.Setting), byte(q.Modalitaet), byte(q.Geschlecht))
	b = append(b, flagBit(q.BarrierefreiZugang, 1)|flagBit(q.BarrierefreiWC, 2)|flagBit(q.NurZertifiziert, 4))
	b = append(b, byte(len(q.Sprachen)))
	for _, l := range q.Sprachen {
		b = append(b, l[:]...)
	}
	b = append(b, byte(len(q.Zeitfenster)))
	for _, w := range q.Zeitfenster {
		b = append(b, byte(w.Tage))
		b = binary.BigEndian.AppendUint16(b, uint16(w.Von))
		b = binary.BigEndian.AppendUint16(b, uint16(w.Bis))
	}
	b = binary.BigEndian.AppendUint32(b, from)
	b = binary.BigEndian.AppendUint32(b, to)
	return binary.BigEndian.AppendUint16(b, uint16(q.Limit)), nil
}

func optUnix32(t time.Time) (uint32, error) {
	if t.IsZero() {
		return 0, nil
	}
	return unix32("time", t)
}

func optTime(v uint32) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.Unix(int64(v), 0).UTC()
}

func readRemoteQuery(r *reader) (*RemoteQuery, error) {
	r.what = "query"
	rq := &RemoteQuery{}
	q := &rq.Query
	r.copyInto(rq.ID[:], "query ID")
	rq.Created = r.time32("created")
	idBytes := r.take(protocol.PublicIdentitySize, "reply identity")
	q.PLZPrefix = r.str("PLZ prefix", 5)
	sets := r.take(7, "sets")
	flags := r.u8("flags")
	n := int(r.u8("language count"))
	if r.err == nil && n > MaxSprachen {
		return nil, fmt.Errorf("query: %d languages, limit %d: %w", n, MaxSprachen, ErrTooLarge)
	}
	for range n {
		var l Sprache
		r.copyInto(l[:], "language")
		q.Sprachen = append(q.Sprachen, l)
	}
	m := int(r.u8("window count"))
	if r.err == nil && m > MaxTimeWindows {
		return nil, fmt.Errorf("query: %d time windows, limit %d: %w", m, MaxTimeWindows, ErrTooLarge)
	}
	for range m {
		q.Zeitfenster = append(q.Zeitfenster, TimeWindow{Tage: WeekdaySet(r.u8("days")), Von: int(r.u16("from")), Bis: int(r.u16("to"))})
	}
	q.Fruehestens, q.Spaetestens = optTime(r.u32("earliest")), optTime(r.u32("latest"))
	q.Limit = int(r.u16("limit"))
	if err := r.done(); err != nil {
		return nil, err
	}
	if flags&^7 != 0 {
		return nil, fmt.Errorf("query: flags 0x%02x: %w", flags, ErrMalformed)
	}
	q.BarrierefreiZugang, q.BarrierefreiWC, q.NurZertifiziert = flags&1 != 0, flags&2 != 0, flags&4 != 0
	q.Verfahren, q.Kostentraeger, q.Terminart = VerfahrenSet(sets[0]), KostentraegerSet(sets[1]), TerminartSet(sets[2])
	q.Altersgruppe, q.Setting, q.Modalitaet, q.Geschlecht = AltersgruppeSet(sets[3]), SettingSet(sets[4]), ModalitaetSet(sets[5]), GeschlechtSet(sets[6])
	if err := q.Check(); err != nil {
		return nil, err
	}
	var err error
	if rq.ReplyTo, err = protocol.ParsePublicIdentity(idBytes); err != nil {
		return nil, fmt.Errorf("query: reply identity: %w: %w", ErrMalformed, err)
	}
	return rq, nil
}

// MarshalBinary encodes the answer:
//
//	version 0x01 | kind 0x05 | query ID 16 | announce count u16 |
//	(u16 length, announce) x count | profile count u8 | (u16 length, profile) x count
func (a *QueryAnswer) MarshalBinary() ([]byte, error) {
	if len(a.Announces) > MaxQueryLimit || len(a.Profiles) > MaxAnswerProfiles {
		return nil, fmt.Errorf("answer: %d announces, %d profiles: %w", len(a.Announces), len(a.Profiles), ErrTooLarge)
	}
	b := []byte{messageVersion, KindAnswer}
	b = append(b, a.ID[:]...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(a.Announces)))
	for _, x := range a.Announces {
		if len(x) > maxAnnounceSize {
			return nil, fmt.Errorf("answer: announce of %d bytes: %w", len(x), ErrTooLarge)
		}
		b = binary.BigEndian.AppendUint16(b, uint16(len(x)))
		b = append(b, x...)
	}
	b = append(b, byte(len(a.Profiles)))
	for _, x := range a.Profiles {
		if len(x) > maxProfileSize {
			return nil, fmt.Errorf("answer: profile of %d bytes: %w", len(x), ErrTooLarge)
		}
		b = binary.BigEndian.AppendUint16(b, uint16(len(x)))
		b = append(b, x...)
	}
	if len(b) > MaxAnswerSize {
		return nil, fmt.Errorf("answer: %d bytes, limit %d: %w", len(b), MaxAnswerSize, ErrTooLarge)
	}
	return b, nil
}

func readAnswer(r *reader) (*QueryAnswer, error) {
	r.what = "answer"
	a := &QueryAnswer{}
	r.copyInto(a.ID[:], "query ID")
	n := int(r.u16("announce count"))
	if r.err == nil && n > MaxQueryLimit {
		return nil, fmt.Errorf("answer: %d announces, limit %d: %w", n, MaxQueryLimit, ErrTooLarge)
	}
	for range n {
		a.Announces = append(a.Announces, r.blob("announce", maxAnnounceSize))
	}
	m := int(r.u8("profile count"))
	if r.err == nil && m > MaxAnswerProfiles {
		return nil, fmt.Errorf("answer: %d profiles, limit %d: %w", m, MaxAnswerProfiles, ErrTooLarge)
	}
	for range m {
		a.Profiles = append(a.Profiles, r.blob("profile", maxProfileSize))
	}
	if err := r.done(); err != nil {
		return nil, err
	}
	return a, nil
}

// blob reads a u16 length and that many bytes, at most limit.
func (r *reader) blob(field string, limit int) []byte {
	n := int(r.u16(field + " length"))
	if r.err == nil && n > limit {
		r.fail(fmt.Errorf("%s: %s of %d bytes, limit %d: %w", r.what, field, n, limit, ErrTooLarge))
	}
	return r.take(n, field)
}

// Answer runs a remote query on the relay's index and packs the matching
// announces (each therapist once, in result order) and the profiles it has
// for them, as many as fit MaxAnswerSize.
func (x *Index) Answer(rq *RemoteQuery, now time.Time) (*QueryAnswer, error) {
	res, err := x.Query(rq.Query, now)
	if err != nil {
		return nil, err
	}
	a := &QueryAnswer{ID: rq.ID}
	size := 2 + QueryIDSize + 2 + 1
	seen := map[TherapistKey]bool{}
	var profiles []*Profile
	for _, r := range res {
		k := r.Announce.Therapist
		if seen[k] {
			continue
		}
		raw, err := r.Announce.MarshalBinary()
		if err != nil || size+2+len(raw) > MaxAnswerSize {
			continue
		}
		seen[k], size = true, size+2+len(raw)
		a.Announces = append(a.Announces, raw)
		if r.Profile != nil {
			profiles = append(profiles, r.Profile)
		}
	}
	for _, p := range profiles {
		raw, err := p.MarshalBinary()
		if err != nil || len(a.Profiles) == MaxAnswerProfiles || size+2+len(raw) > MaxAnswerSize {
			continue
		}
		size += 2 + len(raw)
		a.Profiles = append(a.Profiles, raw)
	}
	return a, nil
}

// AnswerIndex verifies every announce and profile of an answer (signature,
// format, time; credentials with cfg.Trust) and returns an index holding
// the valid ones, plus the number refused. Querying it with the original
// query gives the results: what the relay sent beyond the query is filtered
// out again, and nothing it sent can be forged.
func AnswerIndex(a *QueryAnswer, cfg IndexConfig, now time.Time) (*Index, int) {
	x := NewIndex(cfg)
	refused := 0
	for _, raw := range a.Profiles {
		p, err := ParseProfile(raw)
		if err != nil || x.AddProfile(p, now) != nil {
			refused++
		}
	}
	for _, raw := range a.Announces {
		an, err := ParseSlotAnnounce(raw, now, cfg.ClockSkew)
		if err != nil || x.Add(an, now) != nil {
			refused++
		}
	}
	return x, refused
}
