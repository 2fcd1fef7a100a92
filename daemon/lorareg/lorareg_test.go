package lorareg

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func eu(freq int64, sf, power int) Settings {
	return Settings{Region: EU868, FrequencyHz: freq, BandwidthHz: 125_000, SF: sf, CR: 5, TxPowerDBm: power}
}

func mustPlan(t *testing.T, s Settings) Plan {
	t.Helper()
	p, err := Check(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// The Semtech reference point: 13 bytes, SF9, 125 kHz, 4/5, explicit
// header, CRC on, 8 preamble symbols: 164.864 ms.
func TestAirtimeReference(t *testing.T) {
	p := mustPlan(t, eu(868_100_000, 9, 14))
	ref := p.Params
	ref.PreambleSymbols = 8
	if got, err := ref.TimeOnAir(13); err != nil || got != 164864*time.Microsecond {
		t.Fatalf("reference airtime = %v %v, want 164.864ms", got, err)
	}
	// What the ledger charges for a 12-byte link frame: the RNode's header
	// makes it 13 bytes, and its preamble is 18 symbols (24 ms is less
	// than 18 symbols of 4.096 ms), 10 more than the reference.
	if p.Params.PreambleSymbols != 18 {
		t.Fatalf("RNode preamble at SF9/125 kHz = %d symbols, want 18", p.Params.PreambleSymbols)
	}
	if got, want := p.Airtime(12), 164864*time.Microsecond+10*4096*time.Microsecond; got != want {
		t.Fatalf("Airtime(12) = %v, want %v", got, want)
	}
}

// LowDataRateOptimize is on at SF11 and SF12 at 125 kHz (symbols over
// 16 ms) and changes the count: 30 bytes at SF12 take 38 payload symbols
// with it, 33 without.
func TestAirtimeLowDataRateOptimize(t *testing.T) {
	for sf, want := range map[int]bool{9: false, 10: false, 11: true, 12: true} {
		p := mustPlan(t, eu(869_525_000, sf, 14))
		if got := p.Params.LowDataRateOn(); got != want {
			t.Errorf("SF%d/125 kHz LDRO = %v, want %v", sf, got, want)
		}
	}
	p := mustPlan(t, eu(869_525_000, 12, 14)).Params
	p.PreambleSymbols = 8
	if got, _ := p.TimeOnAir(30); got != 1646592*time.Microsecond {
		t.Fatalf("SF12 30 bytes = %v, want 1646.592ms", got)
	}
}

func TestRNodePreamble(t *testing.T) {
	cases := []struct {
		sf, bw, want int
	}{
		{7, 125_000, 24},  // 24 ms / 1.024 ms = 23.4 -> 24
		{9, 125_000, 18},  // 5.9 symbols: the minimum, 18
		{12, 125_000, 18}, // the minimum
		{7, 500_000, 94},  // 21.9 kbit/s is not "fast": 24 ms / 0.256 ms = 93.75 -> 94
	}
	for _, c := range cases {
		s := eu(863_500_000, c.sf, 14)
		s.BandwidthHz = c.bw
		if got := mustPlan(t, s).Params.PreambleSymbols; got != c.want {
			t.Errorf("SF%d/%d Hz preamble %d, want %d", c.sf, c.bw, got, c.want)
		}
	}
}

func TestCheckErrors(t *testing.T) {
	cases := []struct {
		s    Settings
		err  error
		text string
	}{
		{eu(867_000_000, 9, 14), ErrFrequency, "867000000 Hz with 125000 Hz bandwidth lies in no EU868 sub-band"},
		{eu(868_550_000, 9, 14), ErrFrequency, "no EU868 sub-band"}, // straddles g1's upper edge
		{eu(915_000_000, 9, 14), ErrFrequency, "no EU868 sub-band"},
		{eu(868_100_000, 6, 14), ErrSF, "sf 6 not in 7..12"},
		{eu(868_100_000, 13, 14), ErrSF, "sf 13 not in 7..12"},
		{eu(868_100_000, 9, 20), ErrPower, "tx_power 20 dBm, EU868 sub-band g1 allows at most 14 dBm"},
		{eu(869_525_000, 9, 28), ErrPower, "g3 allows at most 27 dBm"},
		{Settings{Region: "AS923", FrequencyHz: 923_200_000, BandwidthHz: 125_000, SF: 9, CR: 5}, ErrRegion, `"AS923"`},
		{Settings{Region: EU868, FrequencyHz: 868_100_000, BandwidthHz: 100_000, SF: 9, CR: 5}, ErrBandwidth, "100000"},
		{Settings{Region: EU868, FrequencyHz: 868_100_000, BandwidthHz: 125_000, SF: 9, CR: 4}, ErrCodingRate, "cr 4"},
		{Settings{Region: US915, FrequencyHz: 868_100_000, BandwidthHz: 125_000, SF: 9, CR: 5}, ErrFrequency, "outside US915"},
		{Settings{Region: US915, FrequencyHz: 915_000_000, BandwidthHz: 125_000, SF: 9, CR: 5, TxPowerDBm: 31}, ErrPower, "at most 30 dBm"},
		{Settings{Region: US915, FrequencyHz: 915_000_000, BandwidthHz: 125_000, SF: 12, CR: 5}, ErrDwell, "dwell time"},
	}
	for _, c := range cases {
		_, err := Check(c.s)
		if !errors.Is(err, c.err) || !strings.Contains(err.Error(), c.text) {
			t.Errorf("Check(%+v) = %v, want %v containing %q", c.s, err, c.err, c.text)
		}
	}
	if p := mustPlan(t, eu(869_525_000, 9, 27)); p.DutyCycle != 0.1 || p.SubBand.Name != "g3" || p.MTU != MaxMTU {
		t.Fatalf("g3 plan %+v", p)
	}
}

// TestUS915Dwell: the MTU shrinks to what fits in 400 ms, and a longer
// frame is refused (never deferred: waiting would not make it shorter).
func TestUS915Dwell(t *testing.T) {
	p := mustPlan(t, Settings{Region: US915, FrequencyHz: 915_000_000, BandwidthHz: 125_000, SF: 9, CR: 5, TxPowerDBm: 20})
	if p.MTU >= MaxMTU || p.Airtime(p.MTU) > USDwell || p.Airtime(p.MTU+1) <= USDwell {
		t.Fatalf("MTU %d: airtime %v, next %v", p.MTU, p.Airtime(p.MTU), p.Airtime(p.MTU+1))
	}
	r := NewRegulator(p)
	now := time.Unix(1e9, 0)
	if at, err := r.Admit(now, p.MTU); err != nil || !at.Equal(now) {
		t.Fatalf("Admit(MTU) = %v %v", at, err)
	}
	if _, err := r.Admit(now, p.MTU+1); !errors.Is(err, ErrDwell) {
		t.Fatalf("Admit(MTU+1) = %v, want ErrDwell", err)
	}
	// No duty cycle: back to back frames all go at once.
	for i := range 1000 {
		at, err := r.Admit(now, p.MTU)
		if err != nil || !at.Equal(now) {
			t.Fatalf("frame %d: %v %v", i, at, err)
		}
		if err := r.Record(now, p.MTU); err != nil {
			t.Fatal(err)
		}
		now = now.Add(p.Airtime(p.MTU))
	}
}

// TestLedgerDefersAtBudget: in g1 (1 %, 36 s per hour) SF12 frames of 254
// bytes fill the hour; the next is deferred to the exact instant enough
// airtime has aged out, not dropped.
func TestLedgerDefersAtBudget(t *testing.T) {
	p := mustPlan(t, eu(868_300_000, 12, 14))
	r := NewRegulator(p)
	air := p.Airtime(MaxMTU)
	t0 := time.Unix(1e9, 0)
	now := t0
	sent := 0
	for {
		at, err := r.Admit(now, MaxMTU)
		if err != nil {
			t.Fatal(err)
		}
		if at.After(now) {
			break
		}
		if err := r.Record(now, MaxMTU); err != nil {
			t.Fatal(err)
		}
		sent++
		now = now.Add(air)
	}
	if want := int(36 * time.Second / air); sent != want {
		t.Fatalf("sent %d frames of %v in the budget, want %d", sent, air, want)
	}
	used, left := r.Budget(now)
	if used != time.Duration(sent)*air || left != 36*time.Second-used {
		t.Fatalf("budget used %v left %v", used, left)
	}
	at, _ := r.Admit(now, MaxMTU)
	// The hour ending with the new frame's end may hold 36 s - air of the
	// past: with r = 36 s - sent*air unused, that hour starts air - r after
	// t0, so the frame starts at t0 + 1 h - r.
	r36 := 36*time.Second - time.Duration(sent)*air
	if want := t0.Add(time.Hour - r36); !at.Equal(want) {
		t.Fatalf("deferred to %v after start, want %v", at.Sub(t0), want.Sub(t0))
	}
	if at2, _ := r.Admit(at, MaxMTU); !at2.Equal(at) {
		t.Fatalf("not admitted at the promised time: %v", at2.Sub(t0))
	}
	if err := r.Record(at, MaxMTU); err != nil {
		t.Fatal(err)
	}
	if used, _ := r.Budget(at.Add(air)); used > 36*time.Second {
		t.Fatalf("hour holds %v after the deferred frame, over 36 s", used)
	}
	if rem := r.Remaining(t0.Add(3 * time.Hour)); rem != 1 {
		t.Fatalf("remaining after the hour %v, want 1", rem)
	}
}

func TestLedgerRefusesFrameOverWholeBudget(t *testing.T) {
	// g (0.1 %) allows 3.6 s an hour; one SF12 254-byte frame lasts longer.
	p := mustPlan(t, eu(863_500_000, 12, 14))
	if air := p.Airtime(MaxMTU); air <= 3600*time.Millisecond {
		t.Fatalf("premise: SF12 254 bytes is %v", air)
	}
	if _, err := NewRegulator(p).Admit(time.Unix(1e9, 0), MaxMTU); !errors.Is(err, ErrBudget) {
		t.Fatalf("err = %v, want ErrBudget", err)
	}
}

// TestCheckMTUFitsTheHourBudget: slow settings in a 0.1 % or 1 % sub-band
// make a full 254-byte frame last longer than the hour's whole budget
// (SF12 at 125 kHz: 9.3 s, g allows 3.6 s). Check must not accept a plan
// whose MTU-sized frames the ledger refuses for ever: it lowers the MTU,
// or refuses the settings when not even MinMTU fits.
func TestCheckMTUFitsTheHourBudget(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	for _, s := range []Settings{
		eu(864_000_000, 12, 14), // g, 0.1 %
		eu(868_900_000, 11, 14), // g2, 0.1 %
		{Region: EU868, FrequencyHz: 868_300_000, BandwidthHz: 62_500, SF: 12, CR: 5, TxPowerDBm: 14},
		{Region: EU868, FrequencyHz: 868_300_000, BandwidthHz: 7_800, SF: 12, CR: 8, TxPowerDBm: 14},
	} {
		p, err := Check(s)
		if err != nil {
			if !errors.Is(err, ErrBudget) {
				t.Errorf("%+v: %v, want ErrBudget if refused", s, err)
			}
			continue
		}
		if _, err := NewRegulator(p).Admit(now, p.MTU); err != nil {
			t.Errorf("%+v: MTU %d accepted, but an MTU frame is refused on an empty ledger: %v", s, p.MTU, err)
		}
	}
	// Fast settings keep the full MTU.
	if p := mustPlan(t, eu(864_000_000, 7, 14)); p.MTU != MaxMTU {
		t.Errorf("SF7 in g: MTU %d, want %d", p.MTU, MaxMTU)
	}
}
