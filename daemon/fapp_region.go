package daemon

import (
	"errors"
	"maps"
	"sync"
	"time"

	"meshd.dev/meshd/daemon/store"
	"meshd.dev/meshd/fapp"
)

// Region channel messages: fapp's broadcast body (a kind byte and the
// encoded object: fapp.AppendBroadcast, fapp.ParseBroadcast), plus one kind
// of the daemon's own, the profile request:
//
//	0x01 | announce                  a signed SlotAnnounce
//	0x02 | profile                   a signed Profile
//	0x03 | revocation                an issuer's signed revocation list (national channel)
//	0x83 | therapist key 32 | ref 8  a request for a therapist's profile
const (
	regionAnnounce   = fapp.BroadcastAnnounce
	regionProfile    = fapp.BroadcastProfile
	regionRevocation = fapp.BroadcastRevocation
	regionProfileReq = 0x83
	profileReqSize   = 1 + 32 + fapp.ProfileRefSize
)

// fappStats counts what FAPP did (events) and dropped (by object and
// reason), for metrics and tests.
type fappStats struct {
	mu    sync.Mutex
	m     map[string]uint64
	drops map[[2]string]uint64
}

func (s *fappStats) init() { s.m, s.drops = map[string]uint64{}, map[[2]string]uint64{} }

func (s *fappStats) add(k string, v uint64) {
	s.mu.Lock()
	s.m[k] += v
	s.mu.Unlock()
}

// snapshot returns the events and the drops, the latter under
// "dropped_<object>_<reason>".
func (s *fappStats) snapshot() map[string]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := maps.Clone(s.m)
	for k, v := range s.drops {
		out["dropped_"+k[0]+"_"+k[1]] = v
	}
	return out
}

func (s *fappStats) snapshotDrops() map[[2]string]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.drops)
}

// dropReason names the reason a network object was refused, for the
// drop counters.
func dropReason(err error) string {
	for _, c := range []struct {
		err    error
		reason string
	}{
		{fapp.ErrBadSignature, "bad_signature"}, {fapp.ErrStale, "stale"}, {fapp.ErrExpired, "expired"},
		{fapp.ErrFromFuture, "future"}, {fapp.ErrUntrustedIssuer, "untrusted_issuer"}, {fapp.ErrRevoked, "revoked"},
		{fapp.ErrLimit, "limit"}, {fapp.ErrReplay, "replay"}, {fapp.ErrStamp, "stamp"}, {fapp.ErrMismatch, "mismatch"},
		{fapp.ErrTransition, "transition"}, {fapp.ErrNotFound, "not_found"}, {fapp.ErrImpossible, "impossible"},
		{fapp.ErrInvalidPLZ, "invalid_plz"}, {fapp.ErrInPast, "in_past"}, {fapp.ErrTooLarge, "too_large"},
		{fapp.ErrUnknownVersion, "unknown_kind"},
	} {
		if errors.Is(err, c.err) {
			return c.reason
		}
	}
	return "malformed"
}

func (f *fappNode) drop(what string, err error) {
	f.stats.mu.Lock()
	f.stats.drops[[2]string{what, dropReason(err)}]++
	f.stats.mu.Unlock()
}

// onRegionFrame handles one message from region r's channel (or, r
// ignored, the national channel's revocation lists). Loop only.
func (f *fappNode) onRegionFrame(r fapp.Region, body []byte, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(body) > 0 && body[0] == regionProfileReq {
		f.onProfileRequestLocked(r, body, now)
		return
	}
	kind, payload, err := fapp.ParseBroadcast(body)
	if err != nil {
		f.drop("region", err)
		return
	}
	switch kind {
	case regionAnnounce:
		f.onAnnounceLocked(r, payload, now)
	case regionProfile:
		f.onProfileLocked(payload, now)
	case regionRevocation:
		f.onRevocationLocked(payload, now)
	}
}

func (f *fappNode) onAnnounceLocked(r fapp.Region, raw []byte, now time.Time) {
	a, err := fapp.ParseSlotAnnounce(raw, now, clockSkew)
	if err != nil {
		f.drop("announce", err)
		return
	}
	if a.Region() != r {
		// Sent on the wrong region's channel: nodes following the right
		// region would never see it, so it is not taken here either.
		f.drop("announce", fapp.ErrMismatch)
		return
	}
	had := f.idx.Profile(a.Therapist)
	if err := f.idx.Add(a, now); err != nil {
		f.drop("announce", err)
		return
	}
	f.stats.add("announces_accepted", 1)
	f.signal()
	f.indexEvent(r)
	put := map[string][]byte{announceKey(a.Therapist): raw}
	if p := f.idx.Profile(a.Therapist); p != nil && p != had {
		// A profile that waited in the pending cache is held now: store it.
		if praw, err := p.MarshalBinary(); err == nil {
			put[profileKey(a.Therapist)] = praw
		}
	}
	f.write(store.FAPPBatch{Put: put})
	if p := f.idx.Profile(a.Therapist); !a.Withdrawn && (p == nil || mustRef(p) != a.Profile) {
		f.askProfileLocked(r, a.Therapist, a.Profile, now)
	}
}

// askProfileLocked asks region r for a therapist's profile, at most once
// per fappProfileRequestEvery per therapist.
func (f *fappNode) askProfileLocked(r fapp.Region, k fapp.TherapistKey, ref fapp.ProfileRef, now time.Time) {
	if last, ok := f.profAsk[k]; ok && now.Sub(last) < fappProfileRequestEvery {
		return
	}
	f.profAsk[k] = now
	b := make([]byte, 0, profileReqSize)
	b = append(b, regionProfileReq)
	b = append(b, k[:]...)
	b = append(b, ref[:]...)
	f.queue(fappOut{channel: regionKey(r), body: b})
	f.stats.add("profile_requests_sent", 1)
}

func (f *fappNode) onProfileLocked(raw []byte, now time.Time) {
	p, err := fapp.ParseProfile(raw)
	if err != nil {
		f.drop("profile", err)
		return
	}
	if err := f.idx.AddProfile(p, now); err != nil {
		f.drop("profile", err)
		return
	}
	f.stats.add("profiles_accepted", 1)
	f.signal()
	f.profileIndexEvent(p.Therapist())
	// Only a profile held with its announce is stored; one in the pending
	// cache is stored when its announce comes (onAnnounceLocked). Storing
	// every profile that arrives let a flood of keys fill the disk.
	if f.idx.Profile(p.Therapist()) == p {
		f.write(store.FAPPBatch{Put: map[string][]byte{profileKey(p.Therapist()): raw}})
	}
}

func (f *fappNode) onRevocationLocked(raw []byte, now time.Time) {
	rv, err := fapp.ParseRevocation(raw)
	if err != nil {
		f.drop("revocation", err)
		return
	}
	if err := f.trust.ApplyRevocation(rv); err != nil {
		f.drop("revocation", err)
		return
	}
	f.idx.Prune(now)
	f.stats.add("revocations_accepted", 1)
	f.write(store.FAPPBatch{Put: map[string][]byte{revocationKey(rv.Issuer): raw}})
}

// onProfileRequestLocked answers a profile request with the profile, if
// this node is the therapist or a FAPP relay holding it, at most once per
// fappProfileRequestEvery per therapist (a request is a broadcast: many
// nodes may ask at once).
func (f *fappNode) onProfileRequestLocked(r fapp.Region, b []byte, now time.Time) {
	if len(b) != profileReqSize {
		f.drop("profile_request", fapp.ErrMalformed)
		return
	}
	var k fapp.TherapistKey
	var ref fapp.ProfileRef
	copy(k[:], b[1:])
	copy(ref[:], b[1+32:])
	var raw []byte
	switch {
	case f.profile != nil && k == f.profile.Therapist():
		raw = f.profileRaw
	case f.relay:
		if p := f.idx.Profile(k); p != nil {
			raw, _ = p.MarshalBinary()
		}
	}
	if raw == nil {
		return
	}
	if got, err := fapp.ParseProfile(raw); err != nil || mustRef(got) != ref {
		return
	}
	// Answered recently: the answer is on its way already.
	if last, ok := f.profSent[k]; ok && now.Sub(last) < fappProfileRequestEvery {
		return
	}
	f.profSent[k] = now
	f.queue(fappOut{channel: regionKey(r), body: fapp.AppendBroadcast(nil, regionProfile, raw)})
	f.stats.add("profiles_sent", 1)
}

func mustRef(p *fapp.Profile) fapp.ProfileRef {
	r, _ := p.Ref()
	return r
}

// Store keys (store/fapp.go lists them).
func announceKey(k fapp.TherapistKey) string   { return "f/a/" + k.String() }
func profileKey(k fapp.TherapistKey) string    { return "f/p/" + k.String() }
func revocationKey(id fapp.IssuerKeyID) string { return "f/v/" + id.String() }
func followKey(r fapp.Region) string           { return "f/g/" + r.String() }
func therapistResKey(id fapp.RequestID) string { return "f/t/" + id.String() }
func patientResKey(id fapp.RequestID) string   { return "f/r/" + id.String() }

// regionsOfPrefix returns the regions a PLZ prefix covers: all for "",
// ten for one digit, one for two digits or more.
func regionsOfPrefix(prefix string) []fapp.Region {
	var out []fapp.Region
	for _, r := range fapp.Regions() {
		s := r.String()
		if len(prefix) >= 2 && s == prefix[:2] || len(prefix) < 2 && s[:len(prefix)] == prefix {
			out = append(out, r)
		}
	}
	return out
}
