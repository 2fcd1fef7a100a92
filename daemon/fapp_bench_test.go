package daemon

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"meshd.dev/meshd/fapp"
	"meshd.dev/meshd/rpcapi"
)

// BenchmarkFAPPQueryAPI measures a local fapp.query through the node
// (parsing, the index under the FAPP lock, the API's result form) over
// 40,000 announces of 4 slots each spread over the real postal codes: what
// an app waits for, without the JSON-RPC transport.
func BenchmarkFAPPQueryAPI(b *testing.B) {
	clk := &testClock{}
	cfg := fappConfig(b, newIssuer(b))
	cfg.FAPP.Relay = true
	n, err := Open(context.Background(), cfg, Options{Now: clk.Now})
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close()
	now := clk.Now().Truncate(time.Minute)
	fillIndex(b, n.fapp, 40_000, now)
	ctx := context.Background()
	for _, q := range []struct {
		name string
		p    rpcapi.FAPPQueryParams
	}{
		{"region 10, VT, GKV, weekday evenings", rpcapi.FAPPQueryParams{PLZPrefix: "10", Verfahren: []string{"VERHALTENSTHERAPIE"},
			Kostentraeger: []string{"GKV"}, Zeitfenster: []string{"mo-fr 17:00-21:00"}}},
		{"zone 1, SPRECHSTUNDE", rpcapi.FAPPQueryParams{PLZPrefix: "1", Terminart: []string{"SPRECHSTUNDE"}}},
	} {
		b.Run(q.name, func(b *testing.B) {
			var matches int
			for b.Loop() {
				res, err := n.FAPPQuery(ctx, q.p)
				if err != nil || res.Source != "local" {
					b.Fatal(res.Source, err)
				}
				matches = len(res.Matches)
			}
			b.ReportMetric(float64(matches), "matches")
		})
	}
}

// fillIndex adds n unsigned announces to f's index (Index.Add does not
// verify signatures; the network path does, before it).
func fillIndex(b *testing.B, f *fappNode, n int, now time.Time) {
	r := rand.New(rand.NewPCG(1, 2))
	var plzs []fapp.PLZ
	for p := fapp.PLZ(0); p < 100000; p++ {
		if p.Valid() {
			plzs = append(plzs, p)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range n {
		var k fapp.TherapistKey
		k[0], k[1], k[2], k[3] = byte(i), byte(i>>8), byte(i>>16), byte(r.Uint32())
		v := fapp.Verfahren(1 + r.IntN(4))
		a := &fapp.SlotAnnounce{Therapist: k, Sequence: 1, Issued: now, Expires: now.Add(24 * time.Hour),
			PLZ: plzs[r.IntN(len(plzs))], Verfahren: fapp.SetOf(v), Kostentraeger: fapp.SetOf(fapp.GKV),
			Altersgruppen: fapp.SetOf(fapp.Erwachsene), Sprachen: []fapp.Sprache{{'d', 'e'}}}
		for s := range 4 {
			ta := []fapp.Terminart{fapp.Sprechstunde, fapp.Probatorik, fapp.TherapieplatzKZT, fapp.TherapieplatzLZT}[r.IntN(4)]
			start := now.Add(time.Duration(24+r.IntN(28*24)) * time.Hour)
			slot := fapp.Slot{ID: uint16(s + 1), Terminart: ta, Verfahren: v, Setting: fapp.Einzel, Modalitaet: fapp.Praxis,
				Voraussetzung: fapp.VoraussetzungKeine, Start: start, Dauer: 50, Status: fapp.SlotFrei}
			if r.IntN(4) == 0 {
				slot.Status = fapp.SlotVergeben
			}
			a.Slots = append(a.Slots, slot)
		}
		if err := f.idx.Add(a, now); err != nil {
			b.Fatal(err)
		}
	}
}
