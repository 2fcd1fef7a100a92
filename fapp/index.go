package fapp

import (
	"cmp"
	"container/heap"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Index defaults.
const (
	DefaultMaxAnnounces = 100_000
	DefaultMaxPerRegion = 10_000
)

// IndexConfig bounds an Index. Zero fields take the defaults.
type IndexConfig struct {
	// MaxAnnounces bounds the announces held in all regions (withdrawals
	// included: they are kept until they expire, so an older announce
	// cannot come back). Default DefaultMaxAnnounces.
	MaxAnnounces int
	// MaxPerRegion bounds the announces of one PLZ region. Default
	// DefaultMaxPerRegion.
	MaxPerRegion int
	// MaxPendingProfiles bounds the profiles held for therapists whose
	// announce the index does not hold (yet). Default 1,024.
	MaxPendingProfiles int
	// Trust verifies the credentials in profiles; nil trusts no issuer,
	// so no announce counts as credentialed.
	Trust *TrustStore
	// ClockSkew is how far ahead of now an announce or profile may be
	// issued. Default DefaultClockSkew.
	ClockSkew time.Duration
	// OnDrop, when set, is called with the therapist of every announce the
	// index drops (evicted or expired; its profile goes with it), so that
	// whoever persists the index can delete them too.
	OnDrop func(TherapistKey)
}

// Index holds the announces of the regions a node follows and the profiles
// they reference, and answers queries from them. It is not safe for
// concurrent use; the daemon serialises access.
//
// Memory is bounded by IndexConfig. When a region or the whole index is
// full, a new announce evicts, in this order: an announce without a valid
// credential (the one expiring soonest), then, only if the newcomer is
// credentialed itself, the credentialed announce expiring soonest, and only
// if that expires before the newcomer. So an attacker with many keys but no
// credential can displace only other uncredentialed announces, never a
// credentialed therapist.
type Index struct {
	cfg      IndexConfig
	byKey    map[TherapistKey]*entry
	regions  [100]regionState
	total    int
	profiles map[TherapistKey]*profileEntry
	// pending holds profiles that arrived before their announce (or whose
	// announce found no room while uncredentialed), oldest first in
	// pendingOrder; Add promotes a match.
	pending      map[TherapistKey]*profileEntry
	pendingOrder []TherapistKey
	stats        IndexStats
}

// IndexStats counts what the index holds and has done.
type IndexStats struct {
	Announces       int // held, withdrawals included
	Credentialed    int // held with a verified credential
	Profiles        int // cached with their announces
	PendingProfiles int // waiting for their announce
	Evicted         int // announces evicted to make room
	Refused         int // announces refused for lack of room (ErrLimit)
	Expired         int // announces removed by Prune
}

// entry is one held announce.
type entry struct {
	a            *SlotAnnounce
	region       Region
	credentialed bool
	pos          int // in regionState.entries and .recs
	heapIdx      int // in the region's cred or uncred heap
}

// annRec is what queries read of an announce, kept by value in a slice
// parallel to the region's entries: a scan then reads memory in order
// instead of chasing three pointers per announce (which made a query over
// 40,000 announces several times slower).
type annRec struct {
	expires      int64 // Unix seconds
	plz          PLZ
	kost, alter  uint8 // sets
	gender       Geschlecht
	withdrawn    bool
	bfZugang     bool
	bfWC         bool
	credentialed bool
	nlang        uint8
	langs        [MaxSprachen]Sprache
	slots        []slotRec
}

// slotRec is a slot's filter fields, with its Berlin weekday and minute
// computed once at insertion so queries do no time-zone arithmetic.
type slotRec struct {
	start      int64 // Unix seconds
	count      uint16
	minute     uint16
	weekday    time.Weekday
	status     SlotStatus
	verfahren  Verfahren
	terminart  Terminart
	setting    Setting
	modalitaet Modalitaet
}

type regionState struct {
	entries      []*entry
	recs         []annRec
	cred, uncred expiryHeap
}

type profileEntry struct {
	p       *Profile
	ref     ProfileRef
	credErr error
	// sigDone: the credential's signature was checked against a trusted
	// issuer; sigErr is the result, for good (it cannot change).
	sigDone bool
	sigErr  error
}

// NewIndex returns an empty index.
func NewIndex(cfg IndexConfig) *Index {
	if cfg.MaxAnnounces <= 0 {
		cfg.MaxAnnounces = DefaultMaxAnnounces
	}
	if cfg.MaxPerRegion <= 0 {
		cfg.MaxPerRegion = DefaultMaxPerRegion
	}
	if cfg.ClockSkew <= 0 {
		cfg.ClockSkew = DefaultClockSkew
	}
	if cfg.MaxPendingProfiles <= 0 {
		cfg.MaxPendingProfiles = 1024
	}
	return &Index{cfg: cfg, byKey: map[TherapistKey]*entry{}, profiles: map[TherapistKey]*profileEntry{},
		pending: map[TherapistKey]*profileEntry{}}
}

// Add inserts an announce that ParseSlotAnnounce or SignAnnounce returned
// (the index does not verify signatures again). It replaces the
// therapist's held announce only with a higher sequence (ErrStale
// otherwise), refuses an expired one or one from the future, and makes room
// by the eviction policy of Index (ErrLimit when none can be made). A
// withdrawal replaces the announce and stays until it expires. The index
// keeps a, which the caller must not modify afterwards.
func (x *Index) Add(a *SlotAnnounce, now time.Time) error {
	if err := a.checkTime(now, x.cfg.ClockSkew); err != nil {
		return err
	}
	if err := a.validate(); err != nil {
		return err
	}
	old := x.byKey[a.Therapist]
	if old != nil && a.Sequence <= old.a.Sequence {
		return fmt.Errorf("announce of %v: sequence %d, have %d: %w", a.Therapist, a.Sequence, old.a.Sequence, ErrStale)
	}
	pe := x.pending[a.Therapist]
	if pe != nil && pe.ref == a.Profile {
		x.reverify(pe, now)
	} else {
		pe = nil
	}
	e := x.newEntry(a, pe)
	if old != nil {
		x.remove(old)
	}
	if err := x.makeRoom(e); err != nil {
		if old != nil {
			x.insert(old)
		}
		x.stats.Refused++
		return err
	}
	x.insert(e)
	if pe != nil {
		x.profiles[a.Therapist] = pe
		delete(x.pending, a.Therapist)
	}
	return nil
}

// newEntry makes the entry of a; pending is a's profile from the pending
// cache, if any.
func (x *Index) newEntry(a *SlotAnnounce, pending *profileEntry) *entry {
	e := &entry{a: a, region: a.Region()}
	e.credentialed = x.credentialed(a) || (pending != nil && pending.credErr == nil)
	return e
}

// rec returns the query record of e.
func (e *entry) rec() annRec {
	a := e.a
	r := annRec{expires: a.Expires.Unix(), plz: a.PLZ, kost: uint8(a.Kostentraeger), alter: uint8(a.Altersgruppen),
		gender: a.Geschlecht, withdrawn: a.Withdrawn, bfZugang: a.BarrierefreiZugang, bfWC: a.BarrierefreiWC,
		credentialed: e.credentialed, slots: make([]slotRec, len(a.Slots))}
	r.nlang = uint8(copy(r.langs[:], a.Sprachen))
	for i, s := range a.Slots {
		b := InBerlin(s.Start)
		r.slots[i] = slotRec{start: s.Start.Unix(), count: uint16(s.Occurrences()), minute: uint16(b.Hour()*60 + b.Minute()),
			weekday: b.Weekday(), status: s.Status, verfahren: s.Verfahren, terminart: s.Terminart, setting: s.Setting,
			modalitaet: s.Modalitaet}
	}
	return r
}

// credentialed reports whether a's referenced profile is cached and its
// credential verified.
func (x *Index) credentialed(a *SlotAnnounce) bool {
	pe := x.profiles[a.Therapist]
	return pe != nil && pe.ref == a.Profile && pe.credErr == nil
}

// makeRoom evicts announces until e fits, or fails with ErrLimit.
func (x *Index) makeRoom(e *entry) error {
	rs := &x.regions[e.region]
	for len(rs.entries) >= x.cfg.MaxPerRegion {
		v := victim(e, rs)
		if v == nil {
			return fmt.Errorf("announce of %v: region %v full (%d): %w", e.a.Therapist, e.region, len(rs.entries), ErrLimit)
		}
		x.evict(v)
	}
	for x.total >= x.cfg.MaxAnnounces {
		var v *entry
		for r := range x.regions {
			v = better(v, victim(e, &x.regions[r]))
		}
		if v == nil {
			return fmt.Errorf("announce of %v: index full (%d): %w", e.a.Therapist, x.total, ErrLimit)
		}
		x.evict(v)
	}
	return nil
}

// victim returns the announce of rs that e may evict, or nil.
func victim(e *entry, rs *regionState) *entry {
	if len(rs.uncred) > 0 && (e.credentialed || rs.uncred[0].a.Expires.Before(e.a.Expires)) {
		return rs.uncred[0]
	}
	if e.credentialed && len(rs.uncred) == 0 && len(rs.cred) > 0 && rs.cred[0].a.Expires.Before(e.a.Expires) {
		return rs.cred[0]
	}
	return nil
}

// better returns the preferable victim of two: uncredentialed first, then
// the one expiring sooner.
func better(a, b *entry) *entry {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	case a.credentialed != b.credentialed:
		if a.credentialed {
			return b
		}
		return a
	case b.a.Expires.Before(a.a.Expires):
		return b
	}
	return a
}

func (x *Index) evict(v *entry) {
	x.drop(v)
	x.stats.Evicted++
}

// drop removes e and the therapist's profile, so profiles never outnumber
// announces. (Replacement uses remove: the profile stays for the successor.)
func (x *Index) drop(e *entry) {
	x.remove(e)
	delete(x.profiles, e.a.Therapist)
	if x.cfg.OnDrop != nil {
		x.cfg.OnDrop(e.a.Therapist)
	}
}

func (x *Index) insert(e *entry) {
	rs := &x.regions[e.region]
	e.pos = len(rs.entries)
	rs.entries = append(rs.entries, e)
	rs.recs = append(rs.recs, e.rec())
	heap.Push(rs.heapOf(e), e)
	x.byKey[e.a.Therapist] = e
	x.total++
}

func (x *Index) remove(e *entry) {
	rs := &x.regions[e.region]
	heap.Remove(rs.heapOf(e), e.heapIdx)
	n := len(rs.entries) - 1
	last := rs.entries[n]
	rs.entries[e.pos], last.pos = last, e.pos
	rs.recs[e.pos] = rs.recs[n]
	rs.entries[n], rs.recs[n] = nil, annRec{}
	rs.entries, rs.recs = rs.entries[:n], rs.recs[:n]
	delete(x.byKey, e.a.Therapist)
	x.total--
}

func (rs *regionState) heapOf(e *entry) *expiryHeap {
	if e.credentialed {
		return &rs.cred
	}
	return &rs.uncred
}

// setCredentialed moves e between the heaps when its status changes.
func (x *Index) setCredentialed(e *entry, c bool) {
	if e.credentialed == c {
		return
	}
	rs := &x.regions[e.region]
	heap.Remove(rs.heapOf(e), e.heapIdx)
	e.credentialed = c
	rs.recs[e.pos].credentialed = c
	heap.Push(rs.heapOf(e), e)
}

// AddProfile caches a profile that ParseProfile or SignProfile returned and
// verifies its credential with the trust store at now. When the index holds
// the therapist's announce and it names this profile, the profile is
// cached with it (and replaces an older one: the signed, sequenced
// announce says which is current); the same one again is ErrStale.
// Otherwise the profile waits in a small cache (MaxPendingProfiles, unverified out first)
// until its announce comes: that is how a credentialed therapist gets into a
// region full of uncredentialed announces (Add counts the pending profile),
// while a flood of profiles only churns that cache. Profiles held with
// announces never outnumber them: a profile goes when its announce goes.
// A profile whose credential fails is kept all the same (queries show it,
// NurZertifiziert hides it); CredentialStatus says why.
func (x *Index) AddProfile(p *Profile, now time.Time) error {
	if p.Issued.Sub(now) > x.cfg.ClockSkew {
		return fmt.Errorf("profile of %v: issued %v, after %v: %w", p.Therapist(), p.Issued, now, ErrFromFuture)
	}
	ref, err := p.Ref()
	if err != nil {
		return err
	}
	k := p.Therapist()
	pe := &profileEntry{p: p, ref: ref}
	x.reverify(pe, now)
	e := x.byKey[k]
	if e == nil || e.a.Profile != ref {
		x.addPending(k, pe)
		return nil
	}
	if old := x.profiles[k]; old != nil && old.ref == ref {
		return fmt.Errorf("profile %v of %v: %w", ref, k, ErrStale)
	}
	x.profiles[k] = pe
	x.setCredentialed(e, x.credentialed(e.a))
	return nil
}

// addPending puts a profile in the pending cache, evicting the oldest.
func (x *Index) addPending(k TherapistKey, pe *profileEntry) {
	if _, ok := x.pending[k]; !ok {
		x.pendingOrder = append(x.pendingOrder, k)
	}
	x.pending[k] = pe
	for len(x.pending) > x.cfg.MaxPendingProfiles {
		x.evictPending()
	}
	// Keys promoted by Add leave stale places in the order; compact it
	// before it grows beyond twice the bound.
	if len(x.pendingOrder) > 2*x.cfg.MaxPendingProfiles {
		x.pendingOrder = slices.DeleteFunc(x.pendingOrder, func(k TherapistKey) bool { return x.pending[k] == nil })
	}
}

// evictPending drops the oldest pending profile without a verified
// credential, or the oldest of all if every one is verified: a stream of
// junk profiles must not push out a credentialed newcomer's profile, which
// is what lets its announce into a region flooded with uncredentialed ones.
func (x *Index) evictPending() {
	i := slices.IndexFunc(x.pendingOrder, func(k TherapistKey) bool {
		pe := x.pending[k]
		return pe != nil && pe.credErr != nil
	})
	if i < 0 {
		i = slices.IndexFunc(x.pendingOrder, func(k TherapistKey) bool { return x.pending[k] != nil })
	}
	delete(x.pending, x.pendingOrder[i])
	x.pendingOrder = slices.Delete(x.pendingOrder, i, i+1)
}

func (x *Index) verifyCredential(p *Profile, now time.Time) error {
	if x.cfg.Trust == nil {
		return fmt.Errorf("no trusted issuers configured: %w", ErrUntrustedIssuer)
	}
	return x.cfg.Trust.Verify(&p.Credential, now)
}

// reverify sets pe's credential status at now. The signature is checked
// only once (its result cannot change); afterwards only the validity period
// and the revocation list are. Prune runs every second in the daemon, and
// verifying every cached profile's signature each time kept a relay's loop
// busy (an attacker only had to flood profiles naming a trusted issuer with
// a bad signature). An untrusted issuer is looked up again (cheap; the
// operator may trust it later).
func (x *Index) reverify(pe *profileEntry, now time.Time) {
	if pe.sigDone {
		pe.credErr = pe.sigErr
		if pe.sigErr == nil {
			pe.credErr = x.cfg.Trust.status(&pe.p.Credential, now)
		}
		return
	}
	err := x.verifyCredential(pe.p, now)
	pe.credErr = err
	switch {
	case errors.Is(err, ErrUntrustedIssuer):
	case err == nil, errors.Is(err, ErrExpired), errors.Is(err, ErrNotYetValid), errors.Is(err, ErrRevoked):
		pe.sigDone = true
	default:
		pe.sigDone, pe.sigErr = true, err
	}
}

// Profile returns the cached profile of therapist k, or nil.
func (x *Index) Profile(k TherapistKey) *Profile {
	if pe := x.profiles[k]; pe != nil {
		return pe.p
	}
	return nil
}

// CredentialStatus returns nil when therapist k's held announce references
// the cached profile and its credential verified at the last AddProfile or
// Prune, and otherwise the reason (ErrNotFound without a profile).
func (x *Index) CredentialStatus(k TherapistKey) error {
	pe := x.profiles[k]
	switch {
	case pe == nil:
		return fmt.Errorf("profile of %v: %w", k, ErrNotFound)
	case x.byKey[k] != nil && x.byKey[k].a.Profile != pe.ref:
		return fmt.Errorf("profile of %v: announce names %v, cached %v: %w", k, x.byKey[k].a.Profile, pe.ref, ErrMismatch)
	}
	return pe.credErr
}

// MissingProfile names a profile an announce references that the index does
// not hold: the daemon fetches it (see docs/fapp.md).
type MissingProfile struct {
	Therapist TherapistKey
	Ref       ProfileRef
}

// MissingProfiles lists the profiles held announces reference but the
// cache lacks (or holds in an older version), sorted by therapist key.
func (x *Index) MissingProfiles() []MissingProfile {
	var out []MissingProfile
	for k, e := range x.byKey {
		if pe := x.profiles[k]; !e.a.Withdrawn && (pe == nil || pe.ref != e.a.Profile) {
			out = append(out, MissingProfile{Therapist: k, Ref: e.a.Profile})
		}
	}
	slices.SortFunc(out, func(a, b MissingProfile) int { return slices.Compare(a.Therapist[:], b.Therapist[:]) })
	return out
}

// Prune removes expired announces and re-verifies every cached profile's
// credential at now (validity periods end; the trust store may have new
// revocation lists). It returns the number of announces removed. Call it
// periodically and after TrustStore.ApplyRevocation.
func (x *Index) Prune(now time.Time) int {
	n := 0
	for r := range x.regions {
		rs := &x.regions[r]
		for _, h := range []*expiryHeap{&rs.cred, &rs.uncred} {
			for len(*h) > 0 && (*h)[0].a.Expired(now) {
				x.drop((*h)[0])
				n++
			}
		}
	}
	for k, pe := range x.profiles {
		x.reverify(pe, now)
		if e := x.byKey[k]; e != nil {
			x.setCredentialed(e, x.credentialed(e.a))
		}
	}
	x.stats.Expired += n
	return n
}

// DropRegion removes every announce of region r (and the therapists'
// profiles), for a node that stopped following r, and returns how many.
func (x *Index) DropRegion(r Region) int {
	if r > 99 {
		return 0
	}
	rs := &x.regions[r]
	n := len(rs.entries)
	for len(rs.entries) > 0 {
		x.drop(rs.entries[len(rs.entries)-1])
	}
	return n
}

// Get returns therapist k's held announce (a withdrawal included), or nil.
// The result is shared: do not modify it.
func (x *Index) Get(k TherapistKey) *SlotAnnounce {
	if e := x.byKey[k]; e != nil {
		return e.a
	}
	return nil
}

// Announces returns the announces held for region r (for persistence and
// for answering a neighbour), sorted by therapist key. They are shared: do
// not modify them.
func (x *Index) Announces(r Region) []*SlotAnnounce {
	if r > 99 {
		return nil
	}
	out := make([]*SlotAnnounce, 0, len(x.regions[r].entries))
	for _, e := range x.regions[r].entries {
		out = append(out, e.a)
	}
	slices.SortFunc(out, func(a, b *SlotAnnounce) int { return slices.Compare(a.Therapist[:], b.Therapist[:]) })
	return out
}

// Len returns the number of announces held.
func (x *Index) Len() int { return x.total }

// RegionLen returns the number of announces held for region r.
func (x *Index) RegionLen(r Region) int {
	if r > 99 {
		return 0
	}
	return len(x.regions[r].entries)
}

// Stats returns the counters.
func (x *Index) Stats() IndexStats {
	s := x.stats
	s.Announces, s.Profiles, s.PendingProfiles = x.total, len(x.profiles), len(x.pending)
	for r := range x.regions {
		s.Credentialed += len(x.regions[r].cred)
	}
	return s
}

// Result is one matching slot.
type Result struct {
	// Announce is the therapist's announce (shared: do not modify).
	Announce *SlotAnnounce
	Slot     Slot
	// Start is the first occurrence that matches the query.
	Start time.Time
	// Credentialed: the profile is cached and its credential verified.
	Credentialed bool
	// Profile is the cached profile, nil until fetched (shared).
	Profile *Profile
}

// Ref returns the result's slot reference (what a reservation names).
func (r Result) Ref() SlotRef { return r.Slot.Ref(r.Announce.Therapist) }

// Query returns the free slots matching q, at most q.Limit, ordered by
// start (then therapist key and slot ID, so the order is total). Slots that
// start before now (or before q.Fruehestens) match by their next weekly
// occurrence, if any. It scans only the regions the PLZ prefix covers and
// keeps only the best q.Limit candidates while scanning, so a query that
// matches everything costs no more memory than one that matches little.
func (x *Index) Query(q Query, now time.Time) ([]Result, error) {
	if err := q.Check(); err != nil {
		return nil, err
	}
	top := candHeap{limit: cmp.Or(q.Limit, DefaultQueryLimit)}
	from := now
	if q.Fruehestens.After(from) {
		from = q.Fruehestens
	}
	m := q.matcher(now, from)
	for r := Region(m.lo / 1000); r < 100 && PLZ(r)*1000 < m.hi; r++ {
		rs := &x.regions[r]
		for j := range rs.recs {
			rec := &rs.recs[j]
			if !m.announce(rec) {
				continue
			}
			for i := range rec.slots {
				if start, ok := m.slot(&rec.slots[i], rs.entries[j].a, i); ok {
					top.offer(cand{e: rs.entries[j], i: i, start: start})
				}
			}
		}
	}
	slices.SortFunc(top.c, compareCands)
	out := make([]Result, len(top.c))
	for j, c := range top.c {
		out[j] = Result{Announce: c.e.a, Slot: c.e.a.Slots[c.i], Start: time.Unix(c.start, 0).UTC(), Credentialed: c.e.credentialed}
		if pe := x.profiles[c.e.a.Therapist]; pe != nil && pe.ref == c.e.a.Profile {
			out[j].Profile = pe.p
		}
	}
	return out, nil
}

// cand is a matching slot during a query: slot i of entry e.
type cand struct {
	e     *entry
	i     int
	start int64 // Unix seconds
}

func compareCands(a, b cand) int {
	if c := cmp.Compare(a.start, b.start); c != 0 {
		return c
	}
	if c := slices.Compare(a.e.a.Therapist[:], b.e.a.Therapist[:]); c != 0 {
		return c
	}
	return cmp.Compare(a.e.a.Slots[a.i].ID, b.e.a.Slots[b.i].ID)
}

func compareResults(a, b Result) int {
	if c := a.Start.Compare(b.Start); c != 0 {
		return c
	}
	if c := slices.Compare(a.Announce.Therapist[:], b.Announce.Therapist[:]); c != 0 {
		return c
	}
	return cmp.Compare(a.Slot.ID, b.Slot.ID)
}

// candHeap keeps the limit best candidates: a max-heap, its root the worst
// kept, which a better newcomer replaces.
type candHeap struct {
	c     []cand
	limit int
}

func (h *candHeap) Len() int           { return len(h.c) }
func (h *candHeap) Less(i, j int) bool { return compareCands(h.c[i], h.c[j]) > 0 }
func (h *candHeap) Swap(i, j int)      { h.c[i], h.c[j] = h.c[j], h.c[i] }
func (h *candHeap) Push(v any)         { h.c = append(h.c, v.(cand)) }
func (h *candHeap) Pop() any {
	v := h.c[len(h.c)-1]
	h.c = h.c[:len(h.c)-1]
	return v
}

func (h *candHeap) offer(c cand) {
	switch {
	case len(h.c) < h.limit:
		heap.Push(h, c)
	case compareCands(c, h.c[0]) < 0:
		h.c[0] = c
		heap.Fix(h, 0)
	}
}

// expiryHeap is a min-heap of entries by expiry (then therapist key, so
// the order does not depend on insertion).
type expiryHeap []*entry

func (h expiryHeap) Len() int { return len(h) }
func (h expiryHeap) Less(i, j int) bool {
	if c := h[i].a.Expires.Compare(h[j].a.Expires); c != 0 {
		return c < 0
	}
	return slices.Compare(h[i].a.Therapist[:], h[j].a.Therapist[:]) < 0
}
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx, h[j].heapIdx = i, j
}
func (h *expiryHeap) Push(v any) {
	e := v.(*entry)
	e.heapIdx = len(*h)
	*h = append(*h, e)
}
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}
