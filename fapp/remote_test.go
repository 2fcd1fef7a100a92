package fapp

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"
)

func testRemoteQuery(t testing.TB) *RemoteQuery {
	evenings, _ := ParseTimeWindow("mo-fr 17:00-21:00")
	return &RemoteQuery{ID: QueryID{9, 9}, Created: testNow, ReplyTo: testIdentity(t, 3).Public(), Query: Query{
		PLZPrefix: "1", Verfahren: SetOf(Verhaltenstherapie), Kostentraeger: SetOf(GKV, PKV), Terminart: SetOf(Sprechstunde),
		Altersgruppe: SetOf(Erwachsene), Setting: SetOf(Einzel), Modalitaet: SetOf(Praxis), Geschlecht: SetOf(Weiblich),
		Sprachen: []Sprache{{'t', 'r'}}, BarrierefreiZugang: true, NurZertifiziert: true, Zeitfenster: []TimeWindow{evenings},
		Fruehestens: testNow, Spaetestens: testNow.Add(30 * 24 * time.Hour), Limit: 20,
	}}
}

func TestRemoteQueryRoundTrip(t *testing.T) {
	rq := testRemoteQuery(t)
	raw, err := rq.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	m, err := ParseMessage(raw)
	if err != nil {
		t.Fatal(err)
	}
	got := m.(*RemoteQuery)
	if !got.ReplyTo.Equal(rq.ReplyTo) || got.ID != rq.ID || !reflect.DeepEqual(got.Query, rq.Query) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got.Query, rq.Query)
	}
	t.Logf("remote query: %d bytes", len(raw))
	bad := *rq
	bad.Query.PLZPrefix = "000"
	if _, err := bad.MarshalBinary(); !errors.Is(err, ErrInvalidPLZ) {
		t.Fatalf("bad prefix: %v", err)
	}
}

func TestRemoteAnswer(t *testing.T) {
	x, names := filterWorld(t)
	rq := &RemoteQuery{ID: QueryID{1}, Created: testNow, ReplyTo: testIdentity(t, 3).Public(), Query: Query{PLZPrefix: "1"}}
	// The world's announces are unsigned; sign them as their therapists would.
	for _, seed := range []byte{1, 2, 3, 4} {
		a := x.Get(keyOf(t, seed)).Clone()
		a.Sequence++
		signed(t, seed, a)
		if err := x.Add(a, testNow); err != nil {
			t.Fatal(err)
		}
	}
	p, _ := testProfile(t, testIssuer(t, 50), 1, 1)
	ref, _ := p.Ref()
	if ref != x.Get(keyOf(t, 1)).Profile {
		t.Fatal("world's T1 profile ref changed")
	}
	ans, err := x.Answer(rq, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if len(ans.Announces) != 2 || len(ans.Profiles) != 1 {
		t.Fatalf("answer with %d announces, %d profiles", len(ans.Announces), len(ans.Profiles))
	}
	raw, err := ans.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	m, err := ParseMessage(raw)
	if err != nil {
		t.Fatal(err)
	}
	// A lying relay: it alters one announce and adds one from region 80.
	got := m.(*QueryAnswer)
	got.Announces[1] = bytes.Clone(got.Announces[1])
	got.Announces[1][60] ^= 1
	extra, _ := x.Get(keyOf(t, 3)).MarshalBinary()
	got.Announces = append(got.Announces, extra)
	local, refused := AnswerIndex(got, IndexConfig{Trust: NewTrustStore(testIssuer(t, 50).PublicKey())}, testNow)
	if refused != 1 {
		t.Fatalf("%d refused, want the altered one", refused)
	}
	res, _ := local.Query(rq.Query, testNow)
	var seen []string
	for _, r := range res {
		seen = append(seen, names[r.Announce.Therapist])
	}
	if len(res) != 2 || names[res[0].Announce.Therapist] != "T1" || !res[0].Credentialed {
		t.Fatalf("results at the asker: %v", seen)
	}
}

func TestAnswerLimits(t *testing.T) {
	big := &QueryAnswer{Announces: make([][]byte, MaxQueryLimit+1)}
	if _, err := big.MarshalBinary(); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("too many announces: %v", err)
	}
	huge := &QueryAnswer{}
	for range 40 {
		huge.Profiles = append(huge.Profiles, make([]byte, 1500))
	}
	if _, err := huge.MarshalBinary(); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("too many profiles: %v", err)
	}
	raw, _ := (&QueryAnswer{Announces: [][]byte{{1, 2}}}).MarshalBinary()
	raw[2+QueryIDSize+1] = 200 // claims 200 bytes for the announce
	if _, err := ParseMessage(raw); !errors.Is(err, ErrTruncated) {
		t.Fatalf("lying length: %v", err)
	}
}

// TestLargestAnswerSeals: an answer at MaxAnswerSize still fits one sealed
// envelope.
func TestLargestAnswerSeals(t *testing.T) {
	ann := signed(t, 1, testAnnounce(t, MaxSlots))
	a := &QueryAnswer{}
	for {
		raw, _ := a.MarshalBinary()
		if len(raw)+2+len(ann) > MaxAnswerSize {
			t.Logf("answer of %d bytes, %d announces of %d bytes", len(raw), len(a.Announces), len(ann))
			break
		}
		a.Announces = append(a.Announces, ann)
	}
	raw, err := a.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	relay, asker := testIdentity(t, 5), testIdentity(t, 6)
	sealed, err := SealMessage(seeded(3), relay, asker.Public(), raw, testNow, time.Hour)
	if err != nil {
		t.Fatalf("sealing the largest answer: %v", err)
	}
	m, _, err := OpenMessage(asker, sealed, testNow)
	if err != nil || len(m.(*QueryAnswer).Announces) != len(a.Announces) {
		t.Fatalf("opening it: %v", err)
	}
}
