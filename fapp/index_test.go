package fapp

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// keyOf returns the therapist key of the test identity of seed.
func keyOf(t testing.TB, seed byte) TherapistKey {
	return TherapistKeyOf(testIdentity(t, seed).Compact())
}

func slotAt(id uint16, ta Terminart, v Verfahren, st Setting, m Modalitaet, start time.Time, dauer uint8, status SlotStatus) Slot {
	return Slot{ID: id, Terminart: ta, Verfahren: v, Setting: st, Modalitaet: m, Voraussetzung: VoraussetzungKeine,
		Start: start, Dauer: dauer, Status: status}
}

// filterWorld is four therapists with distinct attributes (see the test).
func filterWorld(t *testing.T) (*Index, map[TherapistKey]string) {
	t.Helper()
	is := testIssuer(t, 50)
	x := NewIndex(IndexConfig{Trust: NewTrustStore(is.PublicKey())})
	names := map[TherapistKey]string{}
	add := func(seed byte, a *SlotAnnounce) {
		a.Therapist, a.Sequence, a.Issued, a.Expires = keyOf(t, seed), 1, testNow, testNow.Add(30*24*time.Hour)
		names[a.Therapist] = fmt.Sprintf("T%d", seed)
		if err := x.Add(a, testNow); err != nil {
			t.Fatalf("T%d: %v", seed, err)
		}
	}
	b := BerlinTime
	t2weekly := slotAt(1, TherapieplatzKZT, TiefenpsychologischFundiert, Einzel, Praxis, b(2026, 12, 7, 8, 0), 50, SlotFrei)
	t2weekly.Woechentlich, t2weekly.Bis = true, b(2027, 1, 4, 8, 0)
	t2group := slotAt(2, Gruppentherapie, TiefenpsychologischFundiert, Gruppe, Praxis, b(2026, 12, 9, 19, 0), 100, SlotFrei)
	t2group.Plaetze = 6
	add(1, &SlotAnnounce{PLZ: mustPLZ(t, "10437"), Verfahren: SetOf(Verhaltenstherapie, Systemisch), Kostentraeger: SetOf(GKV),
		Altersgruppen: SetOf(Erwachsene), Sprachen: []Sprache{{'d', 'e'}, {'t', 'r'}}, Geschlecht: Weiblich, BarrierefreiZugang: true,
		Slots: []Slot{
			slotAt(1, Sprechstunde, Verhaltenstherapie, Einzel, Praxis, b(2026, 12, 3, 18, 0), 50, SlotFrei),
			slotAt(2, Probatorik, Verhaltenstherapie, Einzel, Video, b(2026, 12, 5, 10, 0), 50, SlotFrei),
		}})
	add(2, &SlotAnnounce{PLZ: mustPLZ(t, "10115"), Verfahren: SetOf(TiefenpsychologischFundiert), Kostentraeger: SetOf(PKV, Beihilfe),
		Altersgruppen: SetOf(KinderJugendliche), Sprachen: []Sprache{{'d', 'e'}, {'e', 'n'}}, Geschlecht: Maennlich, BarrierefreiWC: true,
		Slots: []Slot{t2weekly, t2group}})
	add(3, &SlotAnnounce{PLZ: mustPLZ(t, "80331"), Verfahren: SetOf(Systemisch), Kostentraeger: SetOf(Selbstzahler),
		Altersgruppen: SetOf(Erwachsene), Sprachen: []Sprache{{'a', 'r'}, {'d', 'e'}}, Geschlecht: Divers,
		Slots: []Slot{
			slotAt(1, Akutbehandlung, Systemisch, Mehrpersonen, Praxis, b(2026, 12, 11, 12, 0), 50, SlotFrei),
			slotAt(2, Sprechstunde, Systemisch, Einzel, Video, b(2026, 12, 14, 9, 0), 50, SlotVergeben),
		}})
	add(4, &SlotAnnounce{PLZ: mustPLZ(t, "01067"), Verfahren: SetOf(Analytisch), Kostentraeger: SetOf(GKV),
		Altersgruppen: SetOf(Erwachsene),
		Slots: []Slot{
			slotAt(1, TherapieplatzLZT, Analytisch, Einzel, Praxis, b(2026, 12, 8, 19, 30), 50, SlotGehalten),
			slotAt(2, Sprechstunde, Analytisch, Einzel, Praxis, b(2026, 12, 8, 17, 0), 25, SlotFrei),
		}})
	// Only T1 has a cached profile with a trusted credential.
	p, _ := testProfile(t, is, 1, 1)
	ref, _ := p.Ref()
	a1 := x.Get(keyOf(t, 1)).Clone()
	a1.Profile, a1.Sequence = ref, 2
	if err := x.Add(a1, testNow); err != nil {
		t.Fatal(err)
	}
	if err := x.AddProfile(p, testNow); err != nil {
		t.Fatal(err)
	}
	return x, names
}

func TestQueryFilters(t *testing.T) {
	x, names := filterWorld(t)
	b := BerlinTime
	evenings, _ := ParseTimeWindow("mo-fr 17:00-21:00")
	saturday, _ := ParseTimeWindow("sa 09:00-12:00")
	cases := []struct {
		name string
		q    Query
		now  time.Time
		want string
	}{
		{"everything free, by start", Query{}, testNow, "T1/1 T1/2 T2/1 T4/2 T2/2 T3/1"},
		{"PLZ zone 1", Query{PLZPrefix: "1"}, testNow, "T1/1 T1/2 T2/1 T2/2"},
		{"PLZ zone 0", Query{PLZPrefix: "0"}, testNow, "T4/2"},
		{"PLZ region 80", Query{PLZPrefix: "80"}, testNow, "T3/1"},
		{"PLZ prefix 104", Query{PLZPrefix: "104"}, testNow, "T1/1 T1/2"},
		{"PLZ prefix 1011", Query{PLZPrefix: "1011"}, testNow, "T2/1 T2/2"},
		{"full PLZ", Query{PLZPrefix: "01067"}, testNow, "T4/2"},
		{"Verfahren VT", Query{Verfahren: SetOf(Verhaltenstherapie)}, testNow, "T1/1 T1/2"},
		{"Verfahren TP or AN", Query{Verfahren: SetOf(TiefenpsychologischFundiert, Analytisch)}, testNow, "T2/1 T4/2 T2/2"},
		{"Verfahren ST", Query{Verfahren: SetOf(Systemisch)}, testNow, "T3/1"},
		{"Kostentraeger GKV", Query{Kostentraeger: SetOf(GKV)}, testNow, "T1/1 T1/2 T4/2"},
		{"Kostentraeger Beihilfe", Query{Kostentraeger: SetOf(Beihilfe)}, testNow, "T2/1 T2/2"},
		{"Kostentraeger Kostenerstattung", Query{Kostentraeger: SetOf(Kostenerstattung)}, testNow, ""},
		{"Terminart Sprechstunde", Query{Terminart: SetOf(Sprechstunde)}, testNow, "T1/1 T4/2"},
		{"Terminart Akut", Query{Terminart: SetOf(Akutbehandlung)}, testNow, "T3/1"},
		{"Terminart group therapy", Query{Terminart: SetOf(Gruppentherapie)}, testNow, "T2/2"},
		{"Terminart KZT", Query{Terminart: SetOf(TherapieplatzKZT)}, testNow, "T2/1"},
		{"Altersgruppe children", Query{Altersgruppe: SetOf(KinderJugendliche)}, testNow, "T2/1 T2/2"},
		{"Setting Gruppe", Query{Setting: SetOf(Gruppe)}, testNow, "T2/2"},
		{"Setting Mehrpersonen", Query{Setting: SetOf(Mehrpersonen)}, testNow, "T3/1"},
		{"Setting Einzel", Query{Setting: SetOf(Einzel)}, testNow, "T1/1 T1/2 T2/1 T4/2"},
		{"Modalitaet Video", Query{Modalitaet: SetOf(Video)}, testNow, "T1/2"},
		{"Modalitaet Praxis and VT", Query{Modalitaet: SetOf(Praxis), Verfahren: SetOf(Verhaltenstherapie)}, testNow, "T1/1"},
		{"language tr", Query{Sprachen: []Sprache{{'t', 'r'}}}, testNow, "T1/1 T1/2"},
		{"language en or ar", Query{Sprachen: []Sprache{{'e', 'n'}, {'a', 'r'}}}, testNow, "T2/1 T2/2 T3/1"},
		{"language fr", Query{Sprachen: []Sprache{{'f', 'r'}}}, testNow, ""},
		{"gender female", Query{Geschlecht: SetOf(Weiblich)}, testNow, "T1/1 T1/2"},
		{"gender male or diverse", Query{Geschlecht: SetOf(Maennlich, Divers)}, testNow, "T2/1 T2/2 T3/1"},
		{"barrier-free entrance", Query{BarrierefreiZugang: true}, testNow, "T1/1 T1/2"},
		{"barrier-free WC", Query{BarrierefreiWC: true}, testNow, "T2/1 T2/2"},
		{"weekday evenings", Query{Zeitfenster: []TimeWindow{evenings}}, testNow, "T1/1 T4/2 T2/2"},
		{"Saturday morning", Query{Zeitfenster: []TimeWindow{saturday}}, testNow, "T1/2"},
		{"either window", Query{Zeitfenster: []TimeWindow{saturday, evenings}}, testNow, "T1/1 T1/2 T4/2 T2/2"},
		{"earliest start moves the weekly place", Query{Fruehestens: b(2026, 12, 8, 0, 0)}, testNow, "T4/2 T2/2 T3/1 T2/1"},
		{"latest start", Query{Spaetestens: b(2026, 12, 5, 23, 59)}, testNow, "T1/1 T1/2"},
		{"earliest on the last weekly date", Query{Fruehestens: b(2027, 1, 4, 0, 0)}, testNow, "T2/1"},
		{"earliest after the last weekly date", Query{Fruehestens: b(2027, 1, 5, 0, 0)}, testNow, ""},
		{"started slots drop out", Query{}, b(2026, 12, 4, 0, 0), "T1/2 T2/1 T4/2 T2/2 T3/1"},
		{"credentialed only", Query{NurZertifiziert: true}, testNow, "T1/1 T1/2"},
		{"limit", Query{Limit: 2}, testNow, "T1/1 T1/2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err := x.Query(c.q, c.now)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range res {
				got = append(got, fmt.Sprintf("%s/%d", names[r.Announce.Therapist], r.Slot.ID))
			}
			if g := strings.Join(got, " "); g != c.want {
				t.Fatalf("got %q, want %q", g, c.want)
			}
			if !slices.IsSortedFunc(res, compareResults) {
				t.Fatal("results not ordered by start")
			}
		})
	}
}

func TestQueryResultDetails(t *testing.T) {
	x, _ := filterWorld(t)
	res, _ := x.Query(Query{Fruehestens: BerlinTime(2026, 12, 20, 0, 0)}, testNow)
	if len(res) != 1 || !res[0].Start.Equal(BerlinTime(2026, 12, 21, 8, 0)) || res[0].Credentialed || res[0].Profile != nil {
		t.Fatalf("weekly place after Dec 20: %+v", res)
	}
	res, _ = x.Query(Query{PLZPrefix: "104"}, testNow)
	if len(res) != 2 || !res[0].Credentialed || res[0].Profile == nil || res[0].Ref().Therapist != keyOf(t, 1) {
		t.Fatalf("credentialed result: %+v", res)
	}
}

func TestQueryRejectsBadQueries(t *testing.T) {
	x := NewIndex(IndexConfig{})
	for _, q := range []Query{
		{PLZPrefix: "000"}, {PLZPrefix: "1a"}, {PLZPrefix: "123456"},
		{Verfahren: 1}, {Kostentraeger: 1 << 7}, {Sprachen: []Sprache{{'1', 'x'}}},
		{Zeitfenster: []TimeWindow{{Von: 600, Bis: 500}}},
		{Fruehestens: testNow.Add(time.Hour), Spaetestens: testNow},
		{Limit: MaxQueryLimit + 1}, {Limit: -1},
	} {
		if _, err := x.Query(q, testNow); err == nil {
			t.Fatalf("query %+v accepted", q)
		}
	}
}

func TestParseTimeWindow(t *testing.T) {
	for s, want := range map[string]TimeWindow{
		"mo-fr 17:00-21:00": {Tage: Werktage, Von: 1020, Bis: 1260},
		"sa,so 09:00-12:30": {Tage: Wochenende, Von: 540, Bis: 750},
		"fr-mo 08:00-24:00": {Tage: 1<<time.Friday | Wochenende | 1<<time.Monday, Von: 480, Bis: 1440},
		"00:00-06:00":       {Von: 0, Bis: 360},
	} {
		got, err := ParseTimeWindow(s)
		if err != nil || got != want {
			t.Fatalf("%q: %+v %v, want %+v", s, got, err, want)
		}
	}
	for _, bad := range []string{"", "mo", "xx 10:00-11:00", "10:00", "11:00-10:00", "25:00-26:00", "mo-fr 10:00-11:00 x", "10:60-11:00"} {
		if _, err := ParseTimeWindow(bad); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%q: %v", bad, err)
		}
	}
}

// plainAnnounce returns a valid unsigned announce for key k in PLZ plz.
func plainAnnounce(k TherapistKey, plz PLZ, seq uint32, expires time.Time) *SlotAnnounce {
	return &SlotAnnounce{Therapist: k, Sequence: seq, Issued: testNow, Expires: expires, PLZ: plz,
		Verfahren: SetOf(Verhaltenstherapie), Kostentraeger: SetOf(GKV), Altersgruppen: SetOf(Erwachsene), Slots: testSlots(1)}
}

func TestIndexReplacement(t *testing.T) {
	x := NewIndex(IndexConfig{})
	k := keyOf(t, 1)
	plz := mustPLZ(t, "10437")
	if err := x.Add(plainAnnounce(k, plz, 5, testNow.Add(time.Hour)), testNow); err != nil {
		t.Fatal(err)
	}
	for _, seq := range []uint32{4, 5} {
		if err := x.Add(plainAnnounce(k, plz, seq, testNow.Add(2*time.Hour)), testNow); !errors.Is(err, ErrStale) {
			t.Fatalf("sequence %d: %v", seq, err)
		}
	}
	// A higher sequence replaces, even in another region.
	moved := plainAnnounce(k, mustPLZ(t, "80331"), 6, testNow.Add(time.Hour))
	if err := x.Add(moved, testNow); err != nil {
		t.Fatal(err)
	}
	if x.Len() != 1 || x.RegionLen(10) != 0 || x.RegionLen(80) != 1 || x.Get(k).Sequence != 6 {
		t.Fatalf("after move: len %d, region 10 %d, region 80 %d", x.Len(), x.RegionLen(10), x.RegionLen(80))
	}
	// A withdrawal hides the therapist and blocks older announces.
	w := plainAnnounce(k, plz, 7, testNow.Add(time.Hour))
	w.Withdrawn, w.Slots = true, nil
	if err := x.Add(w, testNow); err != nil {
		t.Fatal(err)
	}
	if res, _ := x.Query(Query{}, testNow); len(res) != 0 {
		t.Fatalf("withdrawn therapist found: %+v", res)
	}
	if err := x.Add(plainAnnounce(k, plz, 6, testNow.Add(time.Hour)), testNow); !errors.Is(err, ErrStale) {
		t.Fatalf("older announce after withdrawal: %v", err)
	}
	// Expiry.
	if err := x.Add(plainAnnounce(k, plz, 8, testNow.Add(time.Hour)), testNow.Add(time.Hour)); !errors.Is(err, ErrExpired) {
		t.Fatalf("expired announce: %v", err)
	}
	if n := x.Prune(testNow.Add(time.Hour)); n != 1 || x.Len() != 0 {
		t.Fatalf("prune removed %d, %d left", n, x.Len())
	}
}

// credentialedAnnounces makes n therapists (identity seeds from 100) with
// credentials from is, adds their profiles and announces in PLZ plz.
func credentialedAnnounces(t *testing.T, x *Index, is *Issuer, n int, plz PLZ) []TherapistKey {
	t.Helper()
	var keys []TherapistKey
	for i := range n {
		seed := byte(100 + i)
		p, _ := testProfile(t, is, seed, uint64(seed))
		ref, _ := p.Ref()
		a := plainAnnounce(keyOf(t, seed), plz, 1, testNow.Add(time.Hour))
		a.Profile = ref
		if i%2 == 0 { // the profile first (it waits for the announce)
			if err := x.AddProfile(p, testNow); err != nil {
				t.Fatal(err)
			}
		}
		if err := x.Add(a, testNow); err != nil {
			t.Fatal(err)
		}
		if i%2 == 1 {
			if err := x.AddProfile(p, testNow); err != nil {
				t.Fatal(err)
			}
		}
		if !x.credentialed(a) {
			t.Fatalf("therapist %d not credentialed", i)
		}
		keys = append(keys, a.Therapist)
	}
	return keys
}

// TestAttackFloodCannotEvictCredentialed: an attacker with many keys and no
// credential floods a region and the whole index; the credentialed
// therapists stay, and memory stays bounded.
func TestAttackFloodCannotEvictCredentialed(t *testing.T) {
	is := testIssuer(t, 50)
	x := NewIndex(IndexConfig{MaxAnnounces: 40, MaxPerRegion: 10, Trust: NewTrustStore(is.PublicKey())})
	plz := mustPLZ(t, "10437")
	keys := credentialedAnnounces(t, x, is, 5, plz)
	flood := func(i int, plz PLZ) error {
		var k TherapistKey
		k[0], k[1], k[2] = 0xee, byte(i>>8), byte(i)
		// Longer-lived than the credentialed ones: expiry alone must not decide.
		return x.Add(plainAnnounce(k, plz, 1, testNow.Add(20*time.Hour)), testNow)
	}
	refused := 0
	for i := range 1000 {
		if err := flood(i, []PLZ{plz, mustPLZ(t, "80331"), mustPLZ(t, "01067"), mustPLZ(t, "20095"), mustPLZ(t, "50667")}[i%5]); errors.Is(err, ErrLimit) {
			refused++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range keys {
		if x.Get(k) == nil {
			t.Fatalf("credentialed therapist %v evicted by the flood", k)
		}
	}
	if x.Len() > 40 || x.RegionLen(10) > 10 {
		t.Fatalf("memory not bounded: %d announces, %d in region 10", x.Len(), x.RegionLen(10))
	}
	if st := x.Stats(); st.Credentialed != 5 || st.Refused != refused || refused == 0 {
		t.Fatalf("stats %+v (refused %d)", st, refused)
	}
	res, _ := x.Query(Query{PLZPrefix: "10", NurZertifiziert: true}, testNow)
	if len(res) != 5 {
		t.Fatalf("%d credentialed results after the flood", len(res))
	}
}

// TestIndexCredentialLifecycle: a profile arriving after the announce
// credentials it; a revocation or the credential's end uncredentials it at
// the next Prune.
func TestIndexCredentialLifecycle(t *testing.T) {
	is := testIssuer(t, 50)
	trust := NewTrustStore(is.PublicKey())
	x := NewIndex(IndexConfig{Trust: trust})
	p, _ := testProfile(t, is, 1, 77)
	ref, _ := p.Ref()
	a := plainAnnounce(keyOf(t, 1), mustPLZ(t, "10437"), 1, testNow.Add(time.Hour))
	a.Profile = ref
	if err := x.Add(a, testNow); err != nil {
		t.Fatal(err)
	}
	if m := x.MissingProfiles(); len(m) != 1 || m[0].Ref != ref || x.Stats().Credentialed != 0 {
		t.Fatalf("missing %+v", m)
	}
	if err := x.AddProfile(p, testNow); err != nil {
		t.Fatal(err)
	}
	if x.Stats().Credentialed != 1 || len(x.MissingProfiles()) != 0 || x.CredentialStatus(a.Therapist) != nil {
		t.Fatalf("after profile: %+v", x.Stats())
	}
	if err := x.AddProfile(p, testNow); !errors.Is(err, ErrStale) {
		t.Fatalf("same profile again: %v", err)
	}
	r, _ := is.Revoke(1, testNow, []uint64{77})
	if err := trust.ApplyRevocation(r); err != nil {
		t.Fatal(err)
	}
	x.Prune(testNow)
	if x.Stats().Credentialed != 0 || !errors.Is(x.CredentialStatus(a.Therapist), ErrRevoked) {
		t.Fatalf("after revocation: %+v %v", x.Stats(), x.CredentialStatus(a.Therapist))
	}
	// A profile whose credential is from an untrusted issuer is cached but
	// does not count.
	p2, _ := testProfile(t, testIssuer(t, 51), 2, 1)
	a2 := plainAnnounce(keyOf(t, 2), mustPLZ(t, "10437"), 1, testNow.Add(time.Hour))
	a2.Profile, _ = p2.Ref()
	if err := x.Add(a2, testNow); err != nil {
		t.Fatal(err)
	}
	if err := x.AddProfile(p2, testNow); err != nil || !errors.Is(x.CredentialStatus(keyOf(t, 2)), ErrUntrustedIssuer) {
		t.Fatalf("untrusted profile: %v %v", err, x.CredentialStatus(keyOf(t, 2)))
	}
}

// TestAttackProfileFlood: profiles for keys without a held announce wait in
// a bounded cache, and a therapist's profile goes with its announce, so
// profiles never outnumber announces plus that bound.
func TestAttackProfileFlood(t *testing.T) {
	is := testIssuer(t, 50)
	x := NewIndex(IndexConfig{MaxAnnounces: 2, MaxPendingProfiles: 2, Trust: NewTrustStore(is.PublicKey())})
	keys := credentialedAnnounces(t, x, is, 2, mustPLZ(t, "10437"))
	for seed := byte(3); seed < 8; seed++ {
		p, _ := testProfile(t, is, seed, uint64(seed))
		if err := x.AddProfile(p, testNow); err != nil {
			t.Fatal(err)
		}
	}
	if st := x.Stats(); st.Profiles != 2 || st.PendingProfiles != 2 {
		t.Fatalf("after the flood: %+v", st)
	}
	// A profile the held announce does not name (an old one replayed)
	// does not replace the current one.
	old, _ := testProfile(t, is, 100, 999)
	x.AddProfile(old, testNow)
	if x.CredentialStatus(keys[0]) != nil || x.Profile(keys[0]).Credential.Serial == 999 {
		t.Fatal("a replayed profile replaced the current one")
	}
	x.Prune(testNow.Add(time.Hour))
	if st := x.Stats(); st.Announces != 0 || st.Profiles != 0 || x.Profile(keys[0]) != nil {
		t.Fatalf("after expiry: %+v", st)
	}
}

// TestAttackFloodLocksOutNewcomer: a region full of long-lived
// uncredentialed announces refuses a new therapist's announce while it is
// uncredentialed; once its profile arrives (it waits in the pending cache),
// the announce gets in, displacing an uncredentialed one.
func TestAttackFloodLocksOutNewcomer(t *testing.T) {
	is := testIssuer(t, 50)
	x := NewIndex(IndexConfig{MaxPerRegion: 5, Trust: NewTrustStore(is.PublicKey())})
	plz := mustPLZ(t, "10437")
	for i := range 5 {
		if err := x.Add(plainAnnounce(TherapistKey{0xee, byte(i)}, plz, 1, testNow.Add(20*time.Hour)), testNow); err != nil {
			t.Fatal(err)
		}
	}
	p, _ := testProfile(t, is, 100, 1)
	a := plainAnnounce(keyOf(t, 100), plz, 1, testNow.Add(time.Hour))
	a.Profile, _ = p.Ref()
	if err := x.Add(a, testNow); !errors.Is(err, ErrLimit) {
		t.Fatalf("uncredentialed newcomer into a full region: %v", err)
	}
	if err := x.AddProfile(p, testNow); err != nil {
		t.Fatal(err)
	}
	if err := x.Add(a, testNow); err != nil {
		t.Fatalf("credentialed newcomer: %v", err)
	}
	if x.RegionLen(10) != 5 || x.Stats().Credentialed != 1 || x.Stats().PendingProfiles != 0 || x.Profile(a.Therapist) == nil {
		t.Fatalf("after: %+v", x.Stats())
	}
}
