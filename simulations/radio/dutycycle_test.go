package radio

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func TestSubBandPower(t *testing.T) {
	plan := EU868()
	g1, _ := plan.Find(868_100_000, 125000)
	g3, _ := plan.Find(869_525_000, 125000)
	for _, tc := range []struct {
		b        SubBand
		tx, gain float64
		ok       bool
	}{
		{g1, 14, 0, true}, {g1, 16, 0, true}, {g1, 16.13, 0, true}, {g1, 17, 0, false},
		{g1, 14, 5, false}, {g1, 14, 2.15, true}, {g3, 27, 2.15, true}, {g3, 30, 0, false},
	} {
		err := tc.b.CheckPower(tc.tx, tc.gain)
		if (err == nil) != tc.ok || err != nil && !errors.Is(err, ErrPowerLimit) {
			t.Errorf("%s %v dBm %v dBi: %v, want ok=%v", tc.b.Name, tc.tx, tc.gain, err, tc.ok)
		}
	}
}

func TestEU868(t *testing.T) {
	plan := EU868()
	tests := []struct {
		name    string
		freq    int64
		bw      int
		band    string // "" for ErrOutsideBand
		perHour time.Duration
	}{
		{"LoRaWAN 868.1", 868_100_000, 125000, "g1", 36 * time.Second},
		{"LoRaWAN 868.5", 868_500_000, 125000, "g1", 36 * time.Second},
		{"868.5 at 250 kHz straddles the edge", 868_500_000, 250000, "", 0},
		{"g1 lower edge exactly", 868_062_500, 125000, "g1", 36 * time.Second},
		{"g1 lower edge 1 Hz out", 868_062_499, 125000, "", 0},
		{"Meshtastic EU 869.525 at 250 kHz fills g3", 869_525_000, 250000, "g3", 360 * time.Second},
		{"869.525 at 500 kHz is too wide", 869_525_000, 500000, "", 0},
		{"RNode 869.5", 869_500_000, 125000, "g3", 360 * time.Second},
		{"g 864.0", 864_000_000, 125000, "g", 3600 * time.Millisecond},
		{"g2 869.0", 869_000_000, 125000, "g2", 3600 * time.Millisecond},
		{"g2 869.1 at 500 kHz", 869_100_000, 500000, "", 0},
		{"h1.4 866.0 (865-868 MHz, 1 %)", 866_000_000, 125000, "h1.4", 36 * time.Second},
		{"h1.4 867.9 at 250 kHz straddles into g1", 867_900_000, 250000, "", 0},
		{"between g1 and g2", 868_650_000, 50000, "", 0},
		{"between g2 and g3", 869_300_000, 125000, "", 0},
		{"g4 869.85 (869.7-870.0 MHz, 25 mW, 1 %)", 869_850_000, 125000, "g4", 36 * time.Second},
		{"between g3 and g4", 869_675_000, 25000, "", 0},
		{"g4 869.9 at 250 kHz passes 870 MHz", 869_900_000, 250000, "", 0},
		{"US915", 915_000_000, 125000, "", 0},
		{"433", 433_175_000, 125000, "", 0},
		{"zero bandwidth at an edge", 865_000_000, 0, "g", 3600 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := plan.Find(tt.freq, tt.bw)
			if tt.band == "" {
				if !errors.Is(err, ErrOutsideBand) {
					t.Fatalf("Find = %+v, %v; want ErrOutsideBand", b, err)
				}
				l := NewLedger(plan)
				if _, _, err := l.CanTransmit(t0, tt.freq, tt.bw, time.Second); !errors.Is(err, ErrOutsideBand) {
					t.Errorf("Ledger.CanTransmit error = %v", err)
				}
				if err := l.Record(t0, tt.freq, tt.bw, time.Second); !errors.Is(err, ErrOutsideBand) {
					t.Errorf("Ledger.Record error = %v", err)
				}
				return
			}
			if err != nil || b.Name != tt.band {
				t.Fatalf("Find = %+v, %v; want %s", b, err, tt.band)
			}
			if got := b.AirtimePerHour(); got != tt.perHour {
				t.Errorf("AirtimePerHour = %v, want %v", got, tt.perHour)
			}
		})
	}
	bands := plan.SubBands()
	if len(bands) != 6 || !near(bands[0].MaxERPDBm(), 13.979, 1e-3) || !near(bands[4].MaxERPDBm(), 26.990, 1e-3) {
		t.Errorf("sub-bands %+v", bands)
	}
	bands[0].DutyCycle = 1 // a copy: the plan does not change
	if b, _ := plan.Find(864_000_000, 125000); b.DutyCycle != 0.001 {
		t.Error("SubBands exposes the plan")
	}
	if _, err := plan.Find(868_100_000, -1); !errors.Is(err, ErrInvalidParams) {
		t.Errorf("negative bandwidth: %v", err)
	}
}

func TestNewBandPlanErrors(t *testing.T) {
	good := SubBand{Name: "x", LowHz: 1000, HighHz: 2000, MaxERPmW: 10, DutyCycle: 0.5}
	tests := []struct {
		name  string
		bands []SubBand
		field string
	}{
		{"no name", []SubBand{{LowHz: 1, HighHz: 2, MaxERPmW: 1, DutyCycle: 1}}, "SubBand.Name"},
		{"empty range", []SubBand{{Name: "a", LowHz: 2, HighHz: 2, MaxERPmW: 1, DutyCycle: 1}}, "SubBand.LowHz"},
		{"zero duty cycle", []SubBand{{Name: "a", LowHz: 1, HighHz: 2, MaxERPmW: 1}}, "SubBand.DutyCycle"},
		{"duty cycle over 1", []SubBand{{Name: "a", LowHz: 1, HighHz: 2, MaxERPmW: 1, DutyCycle: 1.5}}, "SubBand.DutyCycle"},
		{"no power", []SubBand{{Name: "a", LowHz: 1, HighHz: 2, DutyCycle: 1}}, "SubBand.MaxERPmW"},
		{"overlap", []SubBand{good, {Name: "y", LowHz: 1500, HighHz: 2500, MaxERPmW: 1, DutyCycle: 1}}, "overlap"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewBandPlan(tt.bands...)
			if !errors.Is(err, ErrInvalidBand) || !strings.Contains(err.Error(), tt.field) {
				t.Errorf("NewBandPlan = %v, want ErrInvalidBand naming %s", err, tt.field)
			}
		})
	}
	if _, err := NewBandPlan(good, SubBand{Name: "y", LowHz: 2000, HighHz: 3000, MaxERPmW: 1, DutyCycle: 1}); err != nil {
		t.Errorf("adjacent sub-bands: %v", err)
	}
}

// A node that exhausts its hour defers, and resumes exactly when enough old
// airtime has aged out.
func TestDutyCycleExhaustAndResume(t *testing.T) {
	d := NewDutyCycle(36 * time.Second) // 1 %
	// 36 one-second frames back to back: [k s, k+1 s) for k = 0..35.
	for k := range 36 {
		at := t0.Add(time.Duration(k) * time.Second)
		ok, earliest := d.CanTransmit(at, time.Second)
		if !ok || !earliest.Equal(at) {
			t.Fatalf("frame %d refused: %v", k, earliest)
		}
		if err := d.Record(at, time.Second); err != nil {
			t.Fatal(err)
		}
	}
	at := t0.Add(36 * time.Second)
	if got := d.Used(at); got != 36*time.Second {
		t.Errorf("Used = %v, want 36s", got)
	}
	// The 37th second must wait until the hour ending with it, [t, t + 1s)
	// shifted back an hour, holds only 35 s of the past: it starts at
	// 1 s, so the frame starts at 1 s + 1 h - 1 s = 1 h.
	ok, earliest := d.CanTransmit(at, time.Second)
	if ok || !earliest.Equal(t0.Add(time.Hour)) {
		t.Fatalf("CanTransmit = %v, %v; want false, t0+1h", ok, earliest.Sub(t0))
	}
	if ok, _ := d.CanTransmit(earliest.Add(-1), time.Second); ok {
		t.Error("allowed 1 ns before the earliest time")
	}
	if ok, e := d.CanTransmit(earliest, time.Second); !ok || !e.Equal(earliest) {
		t.Errorf("not allowed at the earliest time: %v", e)
	}
	// A half-second frame needs only half a second of old airtime gone:
	// the hour [w, w + 1h) ending with it must start at 0.5 s, so it may
	// start at 0.5 s + 1 h - 0.5 s = 1 h as well; a 2 s frame at 2 s + 1 h
	// - 2 s = 1 h too: back-to-back frames free airtime as fast as the new
	// frame uses it.
	for _, air := range []time.Duration{time.Second / 2, 2 * time.Second} {
		if ok, e := d.CanTransmit(at, air); ok || !e.Equal(t0.Add(time.Hour)) {
			t.Errorf("%v frame: %v, %v", air, ok, e.Sub(t0))
		}
	}
	// Resume: from 1 h on, the node may send one second per second, as
	// the old frames age out one by one.
	for k := range 36 {
		at := t0.Add(time.Hour + time.Duration(k)*time.Second)
		if ok, e := d.CanTransmit(at, time.Second); !ok {
			t.Fatalf("resumed frame %d refused until %v", k, e.Sub(t0))
		}
		if err := d.Record(at, time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if d.recs.len() > 37 {
		t.Errorf("%d records kept; the first hour should be gone", d.recs.len())
	}
}

// Partial ageing: airtime leaves the window continuously, so the earliest
// time can fall inside an old frame.
func TestDutyCycleEarliestInsideFrame(t *testing.T) {
	d := NewDutyCycle(10 * time.Second)
	// One 10 s frame at 0: the limit is used up.
	if err := d.Record(t0, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	// A 3 s frame: the hour ending with it may hold 7 s of the old frame,
	// so it must start at 3 s or later: earliest = 3 s + 1 h - 3 s = 1 h.
	ok, e := d.CanTransmit(t0.Add(time.Minute), 3*time.Second)
	if ok || !e.Equal(t0.Add(time.Hour)) {
		t.Errorf("CanTransmit = %v, %v", ok, e.Sub(t0))
	}
	// With 4 s already used by a later frame at 30 min, a 3 s frame leaves
	// 3 s for the old frame: window start 7 s, earliest 7 s + 1 h - 3 s.
	if err := d.Record(t0.Add(30*time.Minute), 4*time.Second); err != nil {
		t.Fatal(err)
	}
	ok, e = d.CanTransmit(t0.Add(31*time.Minute), 3*time.Second)
	if want := t0.Add(time.Hour + 4*time.Second); ok || !e.Equal(want) {
		t.Errorf("CanTransmit = %v, %v; want %v", ok, e.Sub(t0), want.Sub(t0))
	}
	if got := d.Used(e.Add(3 * time.Second)); got+3*time.Second != 10*time.Second {
		t.Errorf("the hour ending with the deferred frame holds %v of the past, want 7s", got)
	}
	// Longer than the whole limit: never.
	if ok, e := d.CanTransmit(t0.Add(10*time.Hour), 11*time.Second); ok || !e.IsZero() {
		t.Errorf("11 s frame in a 10 s budget: %v, %v", ok, e)
	}
}

// EU868 g1 sub-band: at 1 %, 36 s of airtime per hour, about 27 frames of 20
// bytes at SF12/125 kHz (1318.912 ms each: 27 use 35.61 s).
func TestDutyCycleOnePercentSF12(t *testing.T) {
	plan := EU868()
	l := NewLedger(plan)
	air, _ := NewParams(12, 125000, CR45).TimeOnAir(20)
	at := t0
	sent := 0
	for {
		ok, earliest, err := l.CanTransmit(at, 868_100_000, 125000, air)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			// The 28th frame: the hour ending with it may hold 36 s - air
			// of the past; frames 2..27 hold 26 air, so 36 s - 27 air =
			// 0.389376 s of frame 1 may stay in it. Frame 1 ends at t0 +
			// air, so that hour starts at t0 + air - 0.389376 s and the
			// frame at that + 1 h - air = t0 + 1 h - 0.389376 s.
			if want := t0.Add(time.Hour - (36*time.Second - 27*air)); !earliest.Equal(want) {
				t.Errorf("deferred to %v, want %v", earliest.Sub(t0), want.Sub(t0))
			}
			break
		}
		if err := l.Record(at, 868_100_000, 125000, air); err != nil {
			t.Fatal(err)
		}
		sent++
		at = at.Add(air + time.Second)
	}
	if sent != 27 {
		t.Errorf("%d frames in the hour, want 27", sent)
	}
	// Other sub-bands are accounted separately: g3 has 360 s.
	if ok, _, _ := l.CanTransmit(at, 869_525_000, 250000, air); !ok {
		t.Error("g3 refused because g1 is exhausted")
	}
	if used, _ := l.Used(at, 868_300_000, 125000); used != 27*air {
		t.Errorf("g1 used %v, want %v", used, 27*air)
	}
	if used, _ := l.Used(at, 869_525_000, 125000); used != 0 {
		t.Errorf("g3 used %v", used)
	}
}

// Property: a node that always sends as soon as allowed never exceeds the
// limit in any hour, is never deferred longer than necessary, and its
// ledger stays small.
func TestDutyCycleGreedyProperty(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 0))
		limit := time.Duration(1+rng.IntN(60)) * time.Second
		d := NewDutyCycle(limit)
		type rec struct {
			start time.Time
			air   time.Duration
		}
		var sent []rec
		at := t0
		for range 400 {
			air := time.Duration(rng.Int64N(int64(limit/3))) + time.Millisecond
			ok, e := d.CanTransmit(at, air)
			if !ok {
				if !e.After(at) {
					t.Fatalf("seed %d: refused with earliest %v not after %v", seed, e, at)
				}
				if ok2, _ := d.CanTransmit(e.Add(-time.Nanosecond), air); ok2 {
					t.Fatalf("seed %d: allowed 1 ns before the earliest time", seed)
				}
				at = e
				if ok2, e2 := d.CanTransmit(at, air); !ok2 || !e2.Equal(at) {
					t.Fatalf("seed %d: refused at its own earliest time", seed)
				}
			}
			if err := d.Record(at, air); err != nil {
				t.Fatal(err)
			}
			sent = append(sent, rec{at, air})
			// Every hour ending at a frame's end holds at most the limit.
			end := at.Add(air)
			from := end.Add(-time.Hour)
			var used time.Duration
			for _, r := range sent {
				s, e := r.start, r.start.Add(r.air)
				if s.Before(from) {
					s = from
				}
				if e.After(s) {
					used += e.Sub(s)
				}
			}
			if used > limit {
				t.Fatalf("seed %d: %v in the hour before %v, limit %v", seed, used, end.Sub(t0), limit)
			}
			if got := d.Used(end); got != used {
				t.Fatalf("seed %d: Used = %v, brute force %v", seed, got, used)
			}
			at = end.Add(time.Duration(rng.Int64N(int64(2 * time.Minute))))
			if d.recs.len() > int(time.Hour/time.Millisecond) {
				t.Fatal("unbounded")
			}
		}
		// Only the last hour's records are kept (plus the one straddling).
		oldest := d.recs.at(0)
		if d.end(oldest).Before(sent[len(sent)-1].start.Add(-time.Hour)) {
			t.Errorf("seed %d: a record older than an hour is kept", seed)
		}
	}
}

func TestDutyCycleRecordErrors(t *testing.T) {
	d := NewDutyCycle(time.Minute)
	if err := d.Record(t0, 0); !errors.Is(err, ErrInvalidAirtime) {
		t.Errorf("zero airtime: %v", err)
	}
	if err := d.Record(t0, time.Second); err != nil {
		t.Fatal(err)
	}
	if err := d.Record(t0.Add(time.Second-1), time.Second); !errors.Is(err, ErrTimeOrder) {
		t.Errorf("overlapping record: %v", err)
	}
	if err := d.Record(t0.Add(time.Second), time.Second); err != nil {
		t.Errorf("back-to-back record: %v", err)
	}
	if d.Limit() != time.Minute {
		t.Error("Limit")
	}
}
