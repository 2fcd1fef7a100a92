package fapp

import (
	"math/rand/v2"
	"runtime"
	"testing"
	"time"
)

// benchIndex fills an index with n announces of 4 slots each, spread over
// the real postal codes, with attributes drawn like a population of
// therapists (every Verfahren, mostly GKV, mostly adults, some languages).
func benchIndex(b *testing.B, n int) *Index {
	b.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	var plzs []PLZ
	for p := PLZ(0); p < 100000; p++ {
		if p.Valid() {
			plzs = append(plzs, p)
		}
	}
	langs := []Sprache{{'a', 'r'}, {'e', 'n'}, {'f', 'a'}, {'p', 'l'}, {'r', 'u'}, {'t', 'r'}}
	x := NewIndex(IndexConfig{MaxAnnounces: n, MaxPerRegion: n})
	for i := range n {
		var k TherapistKey
		for j := range 8 {
			k[j] = byte(r.Uint32())
		}
		k[8], k[9], k[10] = byte(i), byte(i>>8), byte(i>>16)
		v := Verfahren(1 + r.IntN(4))
		a := &SlotAnnounce{Therapist: k, Sequence: 1, Issued: testNow, Expires: testNow.Add(24 * time.Hour),
			PLZ: plzs[r.IntN(len(plzs))], Verfahren: SetOf(v), Kostentraeger: SetOf(GKV),
			Altersgruppen: SetOf(Erwachsene), Geschlecht: Geschlecht(r.IntN(4)), BarrierefreiZugang: r.IntN(3) == 0}
		if r.IntN(4) == 0 {
			a.Kostentraeger = SetOf(PKV, Beihilfe, Selbstzahler)
		}
		if r.IntN(5) == 0 {
			a.Altersgruppen = SetOf(KinderJugendliche)
		}
		a.Sprachen = []Sprache{{'d', 'e'}}
		if r.IntN(3) == 0 {
			a.Sprachen = append(a.Sprachen, langs[r.IntN(len(langs))])
			sortSprachen(a.Sprachen)
		}
		for s := range 4 {
			day := 1 + r.IntN(28)
			hour := 8 + r.IntN(12)
			ta := []Terminart{Sprechstunde, Probatorik, TherapieplatzKZT, TherapieplatzLZT}[r.IntN(4)]
			slot := Slot{ID: uint16(s + 1), Terminart: ta, Verfahren: v, Setting: Einzel, Modalitaet: Modalitaet(1 + r.IntN(2)),
				Voraussetzung: VoraussetzungKeine, Start: BerlinTime(2026, 12, 2+day, hour, 0), Dauer: 50, Status: SlotFrei}
			if r.IntN(4) == 0 {
				slot.Status = SlotVergeben
			}
			a.Slots = append(a.Slots, slot)
		}
		if err := x.Add(a, testNow); err != nil {
			b.Fatal(err)
		}
	}
	return x
}

func sortSprachen(l []Sprache) {
	if len(l) == 2 && l[1].String() < l[0].String() {
		l[0], l[1] = l[1], l[0]
	}
}

// BenchmarkQuery40k: local queries over 40,000 announces (160,000 slots),
// the size of Germany's statutory psychotherapy supply.
func BenchmarkQuery40k(b *testing.B) {
	x := benchIndex(b, 40_000)
	evenings, _ := ParseTimeWindow("mo-fr 17:00-21:00")
	for _, c := range []struct {
		name string
		q    Query
	}{
		{"region_VT_GKV_evenings", Query{PLZPrefix: "10", Verfahren: SetOf(Verhaltenstherapie), Kostentraeger: SetOf(GKV), Zeitfenster: []TimeWindow{evenings}}},
		{"zone_Sprechstunde", Query{PLZPrefix: "1", Terminart: SetOf(Sprechstunde)}},
		{"nationwide_video_tr", Query{Modalitaet: SetOf(Video), Sprachen: []Sprache{{'t', 'r'}}}},
		{"nationwide_everything", Query{}},
	} {
		b.Run(c.name, func(b *testing.B) {
			n := 0
			for b.Loop() {
				res, err := x.Query(c.q, testNow)
				if err != nil {
					b.Fatal(err)
				}
				n = len(res)
			}
			b.ReportMetric(float64(n), "results")
		})
	}
}

// BenchmarkIndexMemory reports the heap an index of 40,000 announces (4
// slots each) holds, per announce, including the announces themselves.
func BenchmarkIndexMemory(b *testing.B) {
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		x := benchIndex(b, 40_000)
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(x.Len()), "B/announce")
		runtime.KeepAlive(x)
	}
}

// BenchmarkBookRestoreFull: a restart of a node whose book a flood filled
// (10,000 live and 10,000 finished reservations) restores them one by one.
func BenchmarkBookRestoreFull(b *testing.B) {
	th, eph := testIdentity(b, 1), testIdentity(b, 9)
	slot := SlotRef{Therapist: keyOf(b, 1), Slot: 1}
	var rs []Reservation
	for i := range 2 * DefaultMaxReservations {
		q := &Request{Slot: slot, Start: testNow.Add(48 * time.Hour), Patient: eph.Public(), Created: testNow}
		q.ID[0], q.ID[1], q.ID[2] = byte(i), byte(i>>8), 0x77
		st := Angefragt
		if i%2 == 1 {
			st = Abgelehnt
		}
		rs = append(rs, Reservation{Request: *q, State: st, Received: testNow, Updated: testNow})
	}
	for b.Loop() {
		book, _ := NewBook(BookConfig{Identity: th})
		for _, r := range rs {
			if err := book.Restore(r); err != nil {
				b.Fatal(err)
			}
		}
	}
}
