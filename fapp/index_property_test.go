package fapp

import (
	"errors"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// propWorld is what the property tests share: 8 therapist keys, the first 4
// with cached credentialed profiles, and 3 regions.
type propWorld struct {
	keys  []TherapistKey
	refs  map[TherapistKey]ProfileRef
	plzs  []PLZ
	trust *TrustStore
	profs map[TherapistKey]*Profile
}

func newPropWorld(t *testing.T) *propWorld {
	is := testIssuer(t, 50)
	w := &propWorld{refs: map[TherapistKey]ProfileRef{}, profs: map[TherapistKey]*Profile{}, trust: NewTrustStore(is.PublicKey()),
		plzs: []PLZ{mustPLZ(t, "10437"), mustPLZ(t, "80331"), mustPLZ(t, "01067")}}
	for i := range 8 {
		seed := byte(100 + i)
		if i < 4 {
			p, _ := testProfile(t, is, seed, uint64(seed))
			ref, _ := p.Ref()
			w.refs[p.Therapist()] = ref
			w.profs[p.Therapist()] = p
			w.keys = append(w.keys, p.Therapist())
		} else {
			w.keys = append(w.keys, keyOf(t, seed))
		}
	}
	return w
}

func (w *propWorld) index(cfg IndexConfig) *Index {
	cfg.Trust = w.trust
	return NewIndex(cfg)
}

// add adds a and, when it names a profile, the profile.
func (w *propWorld) add(x *Index, a *SlotAnnounce, now time.Time) error {
	if err := x.Add(a, now); err != nil {
		return err
	}
	if p := w.profs[a.Therapist]; p != nil && a.Profile == w.refs[a.Therapist] {
		if err := x.AddProfile(p, now); err != nil && !errors.Is(err, ErrStale) {
			return err
		}
	}
	return nil
}

// drawAnnounce draws an announce of one of the world's keys issued at now.
func (w *propWorld) drawAnnounce(t *rapid.T, now time.Time) *SlotAnnounce {
	k := rapid.SampledFrom(w.keys).Draw(t, "key")
	a := plainAnnounce(k, rapid.SampledFrom(w.plzs).Draw(t, "plz"), rapid.Uint32Range(0, 12).Draw(t, "seq"),
		now.Add(time.Duration(rapid.IntRange(1, 180).Draw(t, "lifetime"))*time.Minute))
	a.Issued = now
	a.Slots[0].Start = now.Add(time.Duration(rapid.IntRange(0, 240).Draw(t, "start")) * time.Minute).Truncate(time.Minute)
	if rapid.Bool().Draw(t, "credentialed") {
		a.Profile = w.refs[k] // zero for keys without a profile
	}
	if rapid.IntRange(0, 9).Draw(t, "withdraw") == 0 {
		a.Withdrawn, a.Slots = true, nil
	}
	return a
}

type modelEntry struct {
	seq     uint32
	expires time.Time
	region  Region
}

// TestPropertyIndexReplacementAndExpiry: with room to spare, the index
// behaves exactly like a map keeping the highest sequence per therapist
// until expiry.
func TestPropertyIndexReplacementAndExpiry(t *testing.T) {
	w := newPropWorld(t)
	rapid.Check(t, func(t *rapid.T) {
		x := w.index(IndexConfig{})
		model := map[TherapistKey]modelEntry{}
		now := testNow
		for range rapid.IntRange(1, 60).Draw(t, "steps") {
			if rapid.IntRange(0, 3).Draw(t, "op") == 0 {
				now = now.Add(time.Duration(rapid.IntRange(0, 90).Draw(t, "advance")) * time.Minute)
				x.Prune(now)
				for k, m := range model {
					if !now.Before(m.expires) {
						delete(model, k)
					}
				}
			} else {
				a := w.drawAnnounce(t, now)
				old, held := model[a.Therapist]
				err := w.add(x, a, now)
				if held && a.Sequence <= old.seq {
					if !errors.Is(err, ErrStale) {
						t.Fatalf("sequence %d over held %d: %v", a.Sequence, old.seq, err)
					}
				} else if err != nil {
					t.Fatalf("add: %v", err)
				} else {
					model[a.Therapist] = modelEntry{a.Sequence, a.Expires, a.Region()}
				}
			}
			if x.Len() != len(model) {
				t.Fatalf("index holds %d, model %d", x.Len(), len(model))
			}
			for k, m := range model {
				a := x.Get(k)
				if a == nil || a.Sequence != m.seq || !a.Expires.Equal(m.expires) {
					t.Fatalf("key %v: index %+v, model %+v", k, a, m)
				}
			}
		}
	})
}

// TestPropertyIndexBounded: with small limits, memory stays bounded, the
// counts agree, and an uncredentialed announce never displaces a
// credentialed one.
func TestPropertyIndexBounded(t *testing.T) {
	w := newPropWorld(t)
	rapid.Check(t, func(t *rapid.T) {
		maxTotal := rapid.IntRange(1, 6).Draw(t, "max")
		maxRegion := rapid.IntRange(1, maxTotal).Draw(t, "maxRegion")
		x := w.index(IndexConfig{MaxAnnounces: maxTotal, MaxPerRegion: maxRegion})
		now := testNow
		for range rapid.IntRange(1, 80).Draw(t, "steps") {
			if rapid.IntRange(0, 4).Draw(t, "op") == 0 {
				now = now.Add(time.Duration(rapid.IntRange(0, 60).Draw(t, "advance")) * time.Minute)
				x.Prune(now)
			} else {
				a := w.drawAnnounce(t, now)
				before := credentialedKeys(x, w)
				err := w.add(x, a, now)
				if err != nil && !errors.Is(err, ErrStale) && !errors.Is(err, ErrLimit) {
					t.Fatalf("add: %v", err)
				}
				if err == nil && !x.credentialed(a) {
					for k := range before {
						if k != a.Therapist && !credentialedKeys(x, w)[k] {
							t.Fatalf("uncredentialed %v evicted credentialed %v", a.Therapist, k)
						}
					}
				}
			}
			checkBounds(t, x, maxTotal, maxRegion, now)
		}
	})
}

func credentialedKeys(x *Index, w *propWorld) map[TherapistKey]bool {
	out := map[TherapistKey]bool{}
	for _, k := range w.keys {
		if a := x.Get(k); a != nil && x.credentialed(a) {
			out[k] = true
		}
	}
	return out
}

func checkBounds(t *rapid.T, x *Index, maxTotal, maxRegion int, now time.Time) {
	sum, cred := 0, 0
	for r := Region(0); r < 100; r++ {
		n := x.RegionLen(r)
		if n > maxRegion {
			t.Fatalf("region %v holds %d > %d", r, n, maxRegion)
		}
		sum += n
		for _, a := range x.Announces(r) {
			if x.Get(a.Therapist) != a || a.Region() != r {
				t.Fatalf("announce of %v misfiled", a.Therapist)
			}
			if x.credentialed(a) {
				cred++
			}
		}
	}
	if st := x.Stats(); sum != x.Len() || x.Len() > maxTotal || st.Credentialed != cred || st.Profiles > x.Len() {
		t.Fatalf("len %d, regions sum %d, max %d, credentialed %d vs %d", x.Len(), sum, maxTotal, st.Credentialed, cred)
	}
	res, err := x.Query(Query{}, now)
	if err != nil {
		t.Fatal(err)
	}
	live := 0
	for r := Region(0); r < 100; r++ {
		for _, a := range x.Announces(r) {
			if !a.Expired(now) && len(a.Slots) > 0 && !a.Slots[0].Start.Before(now) {
				live++
			}
		}
	}
	if len(res) != live {
		t.Fatalf("query found %d slots, %d are live", len(res), live)
	}
	for _, r := range res {
		if r.Announce.Expired(now) || r.Start.Before(now) {
			t.Fatalf("query returned an expired announce or a started slot")
		}
	}
}
