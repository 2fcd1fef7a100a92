package radio

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func TestParamsValidate(t *testing.T) {
	ok := NewParams(9, 125000, CR45)
	mod := func(f func(*Params)) Params {
		p := ok
		f(&p)
		return p
	}
	tests := []struct {
		name  string
		p     Params
		field string // "" for valid
	}{
		{"reference", ok, ""},
		{"SF12 500kHz 4/8", mod(func(p *Params) { p.SF, p.BandwidthHz, p.CodingRate = 12, 500000, CR48 }), ""},
		{"SF6 implicit", mod(func(p *Params) { p.SF, p.ExplicitHeader = 6, false }), ""},
		{"narrow 7.8kHz", mod(func(p *Params) { p.BandwidthHz = 7800 }), ""},
		{"41.7kHz", mod(func(p *Params) { p.BandwidthHz = 41700 }), ""},
		{"LDRO forced on", mod(func(p *Params) { p.LowDataRateOptimize = LowDataRateOn }), ""},
		{"preamble 6", mod(func(p *Params) { p.PreambleSymbols = 6 }), ""},
		{"preamble 65535", mod(func(p *Params) { p.PreambleSymbols = 65535 }), ""},
		{"zero value", Params{}, "Params.SF"},
		{"SF5", mod(func(p *Params) { p.SF = 5 }), "Params.SF"},
		{"SF13", mod(func(p *Params) { p.SF = 13 }), "Params.SF"},
		{"SF6 explicit header", mod(func(p *Params) { p.SF = 6 }), "Params.ExplicitHeader"},
		{"bandwidth in kHz", mod(func(p *Params) { p.BandwidthHz = 125 }), "Params.BandwidthHz"},
		{"bandwidth 200kHz", mod(func(p *Params) { p.BandwidthHz = 200000 }), "Params.BandwidthHz"},
		{"exact 7812.5 is not nominal", mod(func(p *Params) { p.BandwidthHz = 7812 }), "Params.BandwidthHz"},
		{"CR 0", mod(func(p *Params) { p.CodingRate = 0 }), "Params.CodingRate"},
		{"CR 5 (denominator)", mod(func(p *Params) { p.CodingRate = 5 }), "Params.CodingRate"},
		{"CR 8 (denominator)", mod(func(p *Params) { p.CodingRate = 8 }), "Params.CodingRate"},
		{"CR 9", mod(func(p *Params) { p.CodingRate = 9 }), "Params.CodingRate"},
		{"CR -1", mod(func(p *Params) { p.CodingRate = -1 }), "Params.CodingRate"},
		{"preamble 0", mod(func(p *Params) { p.PreambleSymbols = 0 }), "Params.PreambleSymbols"},
		{"preamble 5", mod(func(p *Params) { p.PreambleSymbols = 5 }), "Params.PreambleSymbols"},
		{"preamble 65536", mod(func(p *Params) { p.PreambleSymbols = 65536 }), "Params.PreambleSymbols"},
		{"LDRO 3", mod(func(p *Params) { p.LowDataRateOptimize = 3 }), "Params.LowDataRateOptimize"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidParams) {
				t.Fatalf("Validate() = %v, want ErrInvalidParams", err)
			}
			if !strings.Contains(err.Error(), tt.field) {
				t.Errorf("Validate() = %q, want it to name %s", err, tt.field)
			}
			if _, err := tt.p.TimeOnAir(10); !errors.Is(err, ErrInvalidParams) {
				t.Errorf("TimeOnAir() error = %v, want ErrInvalidParams", err)
			}
		})
	}
}

// A known trap of LoRa tools: a coding rate stored as 5..8 and used as
// 1..4 adds 4 twice. The typed constants carry 1..4; 5..8 is rejected with
// a hint rather than silently producing a longer airtime.
func TestCodingRateTrap(t *testing.T) {
	for d := 5; d <= 8; d++ {
		cr, err := CodingRateFromDenominator(d)
		if err != nil || int(cr) != d-4 || cr.Denominator() != d {
			t.Errorf("CodingRateFromDenominator(%d) = %d, %v; want %d", d, cr, err, d-4)
		}
		p := NewParams(9, 125000, CodingRate(d))
		_, err = p.TimeOnAir(13)
		if !errors.Is(err, ErrInvalidParams) || !strings.Contains(err.Error(), "denominator") {
			t.Errorf("TimeOnAir with CodingRate(%d) = %v, want a denominator hint", d, err)
		}
	}
	for _, d := range []int{0, 1, 4, 9} {
		if _, err := CodingRateFromDenominator(d); !errors.Is(err, ErrInvalidParams) {
			t.Errorf("CodingRateFromDenominator(%d) error = %v, want ErrInvalidParams", d, err)
		}
	}
	if got := CR47.String(); got != "4/7" {
		t.Errorf("CR47.String() = %q", got)
	}
	if got := CodingRate(7).String(); got != "CodingRate(7)" {
		t.Errorf("CodingRate(7).String() = %q", got)
	}
}

// The Semtech reference point (AN1200.13: SF9, 125 kHz, CR 4/5, 8-symbol
// preamble, explicit header, CRC).
func TestTimeOnAirReference(t *testing.T) {
	p := Params{SF: 9, BandwidthHz: 125000, CodingRate: CR45, PreambleSymbols: 8, ExplicitHeader: true, CRC: true}
	got, err := p.TimeOnAir(13)
	if err != nil {
		t.Fatal(err)
	}
	if want := 164864 * time.Microsecond; got != want {
		t.Fatalf("TimeOnAir(13) = %v (%d ns), want %v exactly", got, got.Nanoseconds(), want)
	}
	if p.LowDataRateOn() {
		t.Error("LDRO on at SF9/125kHz")
	}
}

// refTimeOnAirMs is an independent transcription of the formula in floating
// point, as LoRaSim writes it (milliseconds, math.Ceil, DE decided from the
// symbol time in seconds).
func refTimeOnAirMs(sf int, bwHz float64, cr, pl int, implicit, crc bool, npre int, ldro LowDataRate) float64 {
	tsym := math.Pow(2, float64(sf)) / bwHz
	de := 0.0
	if ldro == LowDataRateOn || (ldro == LowDataRateAuto && tsym > 0.016) {
		de = 1
	}
	ih, c := 0.0, 0.0
	if implicit {
		ih = 1
	}
	if crc {
		c = 1
	}
	tpre := (float64(npre) + 4.25) * tsym
	npl := 8 + math.Max(math.Ceil((8*float64(pl)-4*float64(sf)+28+16*c-20*ih)/(4*(float64(sf)-2*de)))*float64(cr+4), 0)
	return (tpre + npl*tsym) * 1000
}

func TestTimeOnAirTable(t *testing.T) {
	// Each row is worked by hand; Tsym = 2^SF/BW, Tpre = (npre + 4.25) Tsym,
	// num = 8 PL - 4 SF + 28 + 16 CRC - 20 IH, den = 4 (SF - 2 DE),
	// n_pl = 8 + max(ceil(num/den) (CR + 4), 0).
	tests := []struct {
		name string
		p    Params
		pl   int
		want time.Duration
	}{
		// Tsym 1.024 ms, Tpre 12.544 ms; num 160-28+28+16 = 176, den 28,
		// ceil 6.29 = 7, n_pl = 8 + 35 = 43 -> 44.032 ms; total 56.576 ms.
		{"SF7 20B", NewParams(7, 125000, CR45), 20, 56576 * time.Microsecond},
		// Tsym 2.048, Tpre 25.088; num 172, den 32, ceil 5.375 = 6, n_pl 38
		// -> 77.824; total 102.912 ms.
		{"SF8 20B", NewParams(8, 125000, CR45), 20, 102912 * time.Microsecond},
		// Tsym 4.096, Tpre 50.176; num 168, den 36, ceil 4.67 = 5, n_pl 33
		// -> 135.168; total 185.344 ms.
		{"SF9 20B", NewParams(9, 125000, CR45), 20, 185344 * time.Microsecond},
		// Tsym 8.192 (DE off: 8.192 <= 16), Tpre 100.352; num 164, den 40,
		// ceil 4.1 = 5, n_pl 33 -> 270.336; total 370.688 ms.
		{"SF10 20B", NewParams(10, 125000, CR45), 20, 370688 * time.Microsecond},
		// Tsym 16.384 > 16 ms so DE = 1; Tpre 200.704; num 160, den 36,
		// ceil 4.44 = 5, n_pl 33 -> 540.672; total 741.376 ms.
		{"SF11 20B auto DE", NewParams(11, 125000, CR45), 20, 741376 * time.Microsecond},
		// The same with DE forced off: den 44, ceil 3.64 = 4, n_pl 28 ->
		// 458.752; total 659.456 ms.
		{"SF11 20B DE off", withLDRO(NewParams(11, 125000, CR45), LowDataRateOff), 20, 659456 * time.Microsecond},
		// Tsym 32.768, DE = 1; Tpre 401.408; num 156, den 40, ceil 3.9 = 4,
		// n_pl 28 -> 917.504; total 1318.912 ms (27 such frames fit the
		// 36 s an hour of a 1 % sub-band).
		{"SF12 20B auto DE", NewParams(12, 125000, CR45), 20, 1318912 * time.Microsecond},
		// LoRaWAN airtime tables (13-byte LoRaWAN overhead + 51-byte
		// application payload = 64 bytes; + 12 = 25 bytes): the well-known
		// 2793.5, 118.0, 1482.8 and 61.7 ms.
		{"SF12 64B LoRaWAN", NewParams(12, 125000, CR45), 64, 2793472 * time.Microsecond},
		{"SF7 64B LoRaWAN", NewParams(7, 125000, CR45), 64, 118016 * time.Microsecond},
		{"SF12 25B LoRaWAN", NewParams(12, 125000, CR45), 25, 1482752 * time.Microsecond},
		{"SF7 25B LoRaWAN", NewParams(7, 125000, CR45), 25, 61696 * time.Microsecond},
		// SF6, implicit header, no CRC, CR 4/8, 6 preamble symbols: Tsym
		// 0.512, Tpre 10.25 x 0.512 = 5.248; num 80-24+28-20 = 64, den 24,
		// ceil 2.67 = 3, n_pl 8 + 24 = 32 -> 16.384; total 21.632 ms.
		{"SF6 implicit 10B", Params{SF: 6, BandwidthHz: 125000, CodingRate: CR48, PreambleSymbols: 6}, 10, 21632 * time.Microsecond},
		// Empty payload, implicit header, no CRC: num -20 < 0, so n_pl = 8:
		// 12.544 + 8.192 = 20.736 ms.
		{"SF7 empty implicit", Params{SF: 7, BandwidthHz: 125000, CodingRate: CR45, PreambleSymbols: 8}, 0, 20736 * time.Microsecond},
		// SF12 at 500 kHz: Tsym 8.192, DE off; Tpre 100.352; 255 bytes at
		// 4/6: num 2040-48+44 = 2036, den 48, ceil 42.4 = 43, n_pl 8 + 258 =
		// 266 -> 2179.072; total 2279.424 ms.
		{"SF12 500kHz 255B 4/6", NewParams(12, 500000, CR46), 255, 2279424 * time.Microsecond},
		// SF12 at 250 kHz: Tsym 16.384 > 16 ms, DE on: same symbols as SF11
		// at 125 kHz with SF12's den 40: num 156, ceil 3.9 = 4, n_pl 28;
		// (12.25 + 28) x 16.384 = 659.456 ms.
		{"SF12 250kHz 20B auto DE", NewParams(12, 250000, CR45), 20, 659456 * time.Microsecond},
		// 7.8 kHz is 7812.5 Hz: Tsym = 4096 / 7812.5 = 524.288 ms; the SF12
		// 125 kHz frame 16 times longer: 21102.592 ms.
		{"SF12 7.8kHz 20B", NewParams(12, 7800, CR45), 20, 21102592 * time.Microsecond},
		// Meshtastic-like: SF10, 4/8, 16 preamble symbols, 255 bytes:
		// Tpre 20.25 x 8.192 = 165.888; num 2040-40+44 = 2044, den 40, ceil
		// 51.1 = 52, n_pl 8 + 416 = 424 -> 3473.408; total 3639.296 ms.
		{"SF10 255B 4/8 pre16", withPreamble(NewParams(10, 125000, CR48), 16), 255, 3639296 * time.Microsecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.p.TimeOnAir(tt.pl)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("TimeOnAir(%d) = %v, want %v", tt.pl, got, tt.want)
			}
			ref := refTimeOnAirMs(tt.p.SF, tt.p.exactBandwidth(), int(tt.p.CodingRate), tt.pl, !tt.p.ExplicitHeader, tt.p.CRC, tt.p.PreambleSymbols, tt.p.LowDataRateOptimize)
			if d := math.Abs(float64(got)/1e6 - ref); d > 1e-6 {
				t.Errorf("TimeOnAir(%d) = %v, float re-derivation %v ms", tt.pl, got, ref)
			}
		})
	}
}

func withLDRO(p Params, l LowDataRate) Params { p.LowDataRateOptimize = l; return p }
func withPreamble(p Params, n int) Params     { p.PreambleSymbols = n; return p }

// Every valid combination against the float re-derivation (to the
// nanosecond), and the exactness the integer arithmetic promises.
func TestTimeOnAirAgainstReference(t *testing.T) {
	n := 0
	for sf := MinSF; sf <= MaxSF; sf++ {
		for _, b := range bandwidths {
			for cr := CR45; cr <= CR48; cr++ {
				for _, explicit := range []bool{false, true} {
					if sf == 6 && explicit {
						continue
					}
					for _, crc := range []bool{false, true} {
						for _, ldro := range []LowDataRate{LowDataRateAuto, LowDataRateOn, LowDataRateOff} {
							for _, npre := range []int{6, 8, 16, 1000} {
								p := Params{SF: sf, BandwidthHz: b.hz, CodingRate: cr, PreambleSymbols: npre, ExplicitHeader: explicit, CRC: crc, LowDataRateOptimize: ldro}
								for pl := 0; pl <= MaxPayload; pl += 7 {
									got, err := p.TimeOnAir(pl)
									if err != nil {
										t.Fatalf("%v: %v", p, err)
									}
									ref := refTimeOnAirMs(sf, p.exactBandwidth(), int(cr), pl, !explicit, crc, npre, ldro) * 1e6
									if math.Abs(float64(got)-ref) > 1+ref*1e-12 {
										t.Fatalf("%v, %d bytes: %d ns, re-derivation %.3f ns", p, pl, got.Nanoseconds(), ref)
									}
									n++
								}
							}
						}
					}
				}
			}
		}
	}
	t.Logf("%d combinations agree", n)
}

func TestLowDataRateRule(t *testing.T) {
	tests := []struct {
		sf, bw int
		want   bool
	}{
		{7, 125000, false}, {10, 125000, false},
		{11, 125000, true}, {12, 125000, true}, // 16.384 and 32.768 ms
		{11, 250000, false}, {12, 250000, true}, // 8.192 and 16.384 ms
		{12, 500000, false},
		{10, 62500, true}, {9, 62500, false},
		{7, 7800, true}, // 128 / 7812.5 Hz = 16.384 ms
	}
	for _, tt := range tests {
		p := NewParams(tt.sf, tt.bw, CR45)
		t.Run(p.String(), func(t *testing.T) {
			if got := p.LowDataRateOn(); got != tt.want {
				t.Errorf("LowDataRateOn() = %v, want %v (Tsym %v)", got, tt.want, p.SymbolTime())
			}
			on, off := withLDRO(p, LowDataRateOn), withLDRO(p, LowDataRateOff)
			if !on.LowDataRateOn() || off.LowDataRateOn() {
				t.Error("forced modes not obeyed")
			}
			auto, _ := p.TimeOnAir(50)
			forced, _ := map[bool]Params{true: on, false: off}[tt.want].TimeOnAir(50)
			if auto != forced {
				t.Errorf("auto %v differs from forced %v", auto, forced)
			}
		})
	}
	// DE makes a difference (SF11, 20 bytes: 741.376 vs 659.456 ms) and is
	// never shorter.
	for sf := 7; sf <= 12; sf++ {
		for pl := 0; pl <= MaxPayload; pl++ {
			on, _ := withLDRO(NewParams(sf, 125000, CR45), LowDataRateOn).TimeOnAir(pl)
			off, _ := withLDRO(NewParams(sf, 125000, CR45), LowDataRateOff).TimeOnAir(pl)
			if on < off {
				t.Fatalf("SF%d %dB: LDRO on %v < off %v", sf, pl, on, off)
			}
		}
	}
}

// Time on air grows with the payload, the spreading factor, the coding
// rate and the preamble, and shrinks with the bandwidth.
func TestTimeOnAirMonotonic(t *testing.T) {
	toa := func(p Params, n int) time.Duration {
		t.Helper()
		d, err := p.TimeOnAir(n)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	for _, b := range bandwidths {
		for cr := CR45; cr <= CR48; cr++ {
			for sf := 7; sf <= MaxSF; sf++ {
				p := NewParams(sf, b.hz, cr)
				for n := 0; n <= MaxPayload; n++ {
					if n > 0 && toa(p, n) < toa(p, n-1) {
						t.Fatalf("%v: %d bytes shorter than %d", p, n, n-1)
					}
					if sf > 7 && toa(p, n) <= toa(NewParams(sf-1, b.hz, cr), n) {
						t.Fatalf("%v: %d bytes not longer than at SF%d", p, n, sf-1)
					}
					if cr > CR45 && toa(p, n) < toa(NewParams(sf, b.hz, cr-1), n) {
						t.Fatalf("%v: %d bytes shorter than at %v", p, n, cr-1)
					}
					if toa(withPreamble(p, 9), n) <= toa(p, n) {
						t.Fatalf("%v: a longer preamble is not longer", p)
					}
				}
			}
		}
	}
	for sf := 7; sf <= MaxSF; sf++ {
		prev := time.Duration(math.MaxInt64)
		for _, b := range bandwidths {
			d := toa(NewParams(sf, b.hz, CR45), 20)
			if d >= prev {
				t.Fatalf("SF%d: %d Hz not faster than a narrower bandwidth", sf, b.hz)
			}
			prev = d
		}
	}
}

func TestTimeOnAirPayloadRange(t *testing.T) {
	p := NewParams(7, 125000, CR45)
	for _, n := range []int{-1, 256, 1000} {
		if _, err := p.TimeOnAir(n); !errors.Is(err, ErrPayloadSize) {
			t.Errorf("TimeOnAir(%d) error = %v, want ErrPayloadSize", n, err)
		}
	}
	for _, n := range []int{0, 255} {
		if _, err := p.TimeOnAir(n); err != nil {
			t.Errorf("TimeOnAir(%d) = %v", n, err)
		}
	}
}

func TestSymbolTimeAndBitrate(t *testing.T) {
	tests := []struct {
		p       Params
		tsym    time.Duration
		tpre    time.Duration
		bitrate float64 // (SF - 2 DE) (4/(4+CR)) BW / 2^SF
	}{
		{NewParams(7, 125000, CR45), 1024 * time.Microsecond, 12544 * time.Microsecond, 7 * 0.8 * 125000 / 128},        // 5468.75
		{NewParams(9, 125000, CR45), 4096 * time.Microsecond, 50176 * time.Microsecond, 9 * 0.8 * 125000 / 512},        // 1757.8125
		{NewParams(12, 125000, CR45), 32768 * time.Microsecond, 401408 * time.Microsecond, 10 * 0.8 * 125000 / 4096},   // 244.14: LDRO carries SF-2 bits per symbol
		{NewParams(12, 125000, CR48), 32768 * time.Microsecond, 401408 * time.Microsecond, 10 * 0.5 * 125000 / 4096},   // 152.6
		{NewParams(7, 500000, CR45), 256 * time.Microsecond, 3136 * time.Microsecond, 7 * 0.8 * 500000 / 128},          // 21875
		{NewParams(12, 7800, CR45), 524288 * time.Microsecond, 6422528 * time.Microsecond, 10 * 0.8 * 7812.5 / 4096},   // 15.3
		{NewParams(8, 41700, CR46), 6144 * time.Microsecond, 75264 * time.Microsecond, 8 * 4.0 / 6 * 125000 / 3 / 256}, // 41666.67 Hz
	}
	for _, tt := range tests {
		t.Run(tt.p.String(), func(t *testing.T) {
			if got := tt.p.SymbolTime(); got != tt.tsym {
				t.Errorf("SymbolTime() = %v, want %v", got, tt.tsym)
			}
			if got := tt.p.PreambleTime(); got != tt.tpre {
				t.Errorf("PreambleTime() = %v, want %v", got, tt.tpre)
			}
			if got := tt.p.Bitrate(); math.Abs(got-tt.bitrate) > 1e-9*tt.bitrate {
				t.Errorf("Bitrate() = %v, want %v", got, tt.bitrate)
			}
		})
	}
	// The bitrate is the slope of the time on air: 240 more payload bytes
	// take 1920 bits / Bitrate more (within one block of symbols).
	for sf := 7; sf <= 12; sf++ {
		for _, bw := range []int{125000, 250000, 500000} {
			p := NewParams(sf, bw, CR45)
			a, _ := p.TimeOnAir(15)
			b, _ := p.TimeOnAir(255)
			slope := 1920 / (b - a).Seconds()
			if math.Abs(slope/p.Bitrate()-1) > 0.03 {
				t.Errorf("%v: time on air gives %.1f bit/s, Bitrate() %.1f", p, slope, p.Bitrate())
			}
		}
	}
	if (Params{}).SymbolTime() != 0 || (Params{}).Bitrate() != 0 || (Params{}).PreambleTime() != 0 {
		t.Error("invalid Params give a non-zero symbol time, preamble or bitrate")
	}
}

func TestBandwidthIndex(t *testing.T) {
	for i, b := range bandwidths {
		if got := bandwidthIndex(b.hz); got != i {
			t.Errorf("bandwidthIndex(%d) = %d, want %d", b.hz, got, i)
		}
		// The nominal bandwidths round the exact ones by up to 0.16 %.
		if p := b.chipNs * int64(b.hz); p < 998_000_000 || p > 1_002_000_000 {
			t.Errorf("%d Hz: chip %d ns is not 1/BW", b.hz, b.chipNs)
		}
	}
	if bandwidthIndex(0) != -1 || bandwidthIndex(125) != -1 {
		t.Error("bandwidthIndex accepts a non-bandwidth")
	}
}

func TestParamsString(t *testing.T) {
	if got, want := NewParams(9, 125000, CR45).String(), "SF9/125kHz/4/5 pre8 explicit crc ldro=auto"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

// FuzzTimeOnAir: any parameters either fail validation or agree with the
// float re-derivation; nothing panics.
func FuzzTimeOnAir(f *testing.F) {
	f.Add(9, 125000, 1, 8, true, true, 0, 13)
	f.Add(12, 125000, 1, 8, true, true, 0, 20)
	f.Add(6, 125000, 4, 6, false, false, 0, 10)
	f.Add(12, 7800, 5, 65535, true, false, 2, 255)
	f.Fuzz(func(t *testing.T, sf, bw, cr, npre int, explicit, crc bool, ldro, n int) {
		p := Params{SF: sf, BandwidthHz: bw, CodingRate: CodingRate(cr), PreambleSymbols: npre,
			ExplicitHeader: explicit, CRC: crc, LowDataRateOptimize: LowDataRate(ldro)}
		got, err := p.TimeOnAir(n)
		if p.Validate() != nil || n < 0 || n > MaxPayload {
			if err == nil {
				t.Fatalf("%v, %d bytes: no error", p, n)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		ref := refTimeOnAirMs(sf, p.exactBandwidth(), cr, n, !explicit, crc, npre, p.LowDataRateOptimize) * 1e6
		if math.Abs(float64(got)-ref) > 1+ref*1e-12 {
			t.Fatalf("%v, %d bytes: %d ns, re-derivation %.3f ns", p, n, got.Nanoseconds(), ref)
		}
	})
}
