package radio

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

const nodeC NodeID = 3

// TestMediumReceptionModels extends the collision scene of TestMediumRules
// (R at the origin, A and B 50 m away on either side) with C, 50 m north,
// for the optional reception models.
func TestMediumReceptionModels(t *testing.T) {
	sf12 := NewParams(12, 125000, CR45)
	rAir := 25856 * time.Microsecond // R's empty SF7 frame
	tests := []struct {
		name             string
		powA, powB, powC float64
		opts             []Option
		txs              []sceneTx
		want             map[string]Status
	}{
		// B and C each arrive 7 dB below A: each alone is harmless at a
		// 6 dB capture threshold, together they weigh 4 dB below A.
		{"two interferers judged one at a time", 14, 7, 7, nil,
			[]sceneTx{{node: nodeA, label: "A"}, {node: nodeB, at: ms(10)}, {node: nodeC, at: ms(10)}},
			map[string]Status{"A": Received}},
		{"two interferers summed", 14, 7, 7, []Option{WithSummedInterference()},
			[]sceneTx{{node: nodeA, label: "A"}, {node: nodeB, at: ms(10)}, {node: nodeC, at: ms(10)}},
			map[string]Status{"A": Collision}},
		{"one interferer summed is the old rule", 14, 7, -20, []Option{WithSummedInterference()},
			[]sceneTx{{node: nodeA, label: "A"}, {node: nodeB, at: ms(10)}},
			map[string]Status{"A": Received}},
		{"summed keeps the lock rule", 14, 8, -20, []Option{WithSummedInterference()},
			[]sceneTx{{node: nodeB, label: "B"}, {node: nodeA, at: ms(10), label: "A"}},
			map[string]Status{"A": Collision, "B": Collision}},
		// B sends SF12 10 dB above A's SF7 frame.
		{"SF12 10 dB stronger, orthogonal SFs", 14, 24, -20, nil,
			[]sceneTx{{node: nodeA, label: "A"}, {node: nodeB, at: ms(1), p: sf12, label: "B"}},
			map[string]Status{"A": Received, "B": Received}},
		{"SF12 10 dB stronger, Croce: SF7 needs -9 dB", 14, 24, -20, []Option{WithSFRejection(CroceRejection())},
			[]sceneTx{{node: nodeA, label: "A"}, {node: nodeB, at: ms(1), p: sf12, label: "B"}},
			map[string]Status{"A": Collision, "B": Received}},
		{"SF12 10 dB stronger, Goursaud: SF7 needs -20 dB", 14, 24, -20, []Option{WithSFRejection(GoursaudRejection())},
			[]sceneTx{{node: nodeA, label: "A"}, {node: nodeB, at: ms(1), p: sf12, label: "B"}},
			map[string]Status{"A": Received, "B": Received}},
		{"cross-SF summed", 14, 21, 21, []Option{WithSFRejection(CroceRejection()), WithSummedInterference()},
			[]sceneTx{{node: nodeA, label: "A"}, {node: nodeB, at: ms(1), p: sf12}, {node: nodeC, at: ms(1), p: sf12}},
			map[string]Status{"A": Collision}},
		{"cross-SF one at a time", 14, 21, 21, []Option{WithSFRejection(CroceRejection())},
			[]sceneTx{{node: nodeA, label: "A"}, {node: nodeB, at: ms(1), p: sf12}, {node: nodeC, at: ms(1), p: sf12}},
			map[string]Status{"A": Received}},
		// A, 6 dB stronger, starts 1 ms (< 1 symbol) after B.
		{"stronger frame in B's first symbol, locked", 14, 8, -20, nil,
			[]sceneTx{{node: nodeB, label: "B"}, {node: nodeA, at: ms(1), label: "A"}},
			map[string]Status{"A": Collision, "B": Collision}},
		{"stronger frame in B's first symbol, 3-symbol window", 14, 8, -20, []Option{WithCaptureWindow(3)},
			[]sceneTx{{node: nodeB, label: "B"}, {node: nodeA, at: ms(1), label: "A"}},
			map[string]Status{"A": Received, "B": Collision}},
		{"stronger frame after the window", 14, 8, -20, []Option{WithCaptureWindow(3)},
			[]sceneTx{{node: nodeB, label: "B"}, {node: nodeA, at: ms(3.1), label: "A"}},
			map[string]Status{"A": Collision, "B": Collision}},
		{"window still needs the capture threshold", 14, 8.5, -20, []Option{WithCaptureWindow(3)},
			[]sceneTx{{node: nodeB, label: "B"}, {node: nodeA, at: ms(1), label: "A"}},
			map[string]Status{"A": Collision, "B": Collision}},
		{"no turnaround", 14, 14, -20, nil,
			[]sceneTx{{node: nodeR, size: 0, label: "R"}, {node: nodeA, at: rAir + ms(0.5), label: "A"}},
			map[string]Status{"A": Received}},
		{"1 ms turnaround after sending", 14, 14, -20, []Option{WithTurnaround(time.Millisecond)},
			[]sceneTx{{node: nodeR, size: 0, label: "R"}, {node: nodeA, at: rAir + ms(0.5), label: "A"}},
			map[string]Status{"A": HalfDuplex}},
	}
	for _, tt := range tests {
		for path := range 2 {
			t.Run(fmt.Sprintf("%s/path=%d", tt.name, path), func(t *testing.T) {
				nodes := []Node{
					nodeR: {X: 0, Y: 0, Device: Device{TxPowerDBm: 14}},
					nodeA: {X: 50, Y: 0, Device: Device{TxPowerDBm: tt.powA}},
					nodeB: {X: -50, Y: 0, Device: Device{TxPowerDBm: tt.powB}},
					nodeC: {X: 0, Y: 50, Device: Device{TxPowerDBm: tt.powC}},
				}
				m, err := NewMedium(nodes, nil, append([]Option{WithModel(noShadow())}, tt.opts...)...)
				if err != nil {
					t.Fatal(err)
				}
				m.path = path
				ids := playScene(t, m, tt.txs)
				for label, want := range tt.want {
					got, err := m.Outcome(ids[label], nodeR)
					if err != nil {
						t.Fatal(err)
					}
					if got.Status != want {
						t.Errorf("%s at R: %v (RSSI %.2f dBm, interferer %d), want %v", label, got.Status, got.RSSIDBm, got.Interferer, want)
					}
				}
			})
		}
	}
}

func playScene(t *testing.T, m *Medium, txs []sceneTx) map[string]TxID {
	t.Helper()
	ids := map[string]TxID{}
	for _, tx := range txs {
		p, freq, size := tx.p, tx.freq, tx.size
		if p.SF == 0 {
			p = NewParams(7, 125000, CR45)
		}
		if freq == 0 {
			freq = f1
		}
		if size == 0 && tx.node != nodeR {
			size = 20
		}
		id, _, err := m.StartTx(tx.node, t0.Add(tx.at), freq, p, size)
		if err != nil {
			t.Fatalf("StartTx(%s): %v", tx.label, err)
		}
		ids[tx.label] = id
	}
	return ids
}

// TestPacketErrorRate checks the curve against values worked out from
// Elshabrawy and Robert's formula.
func TestPacketErrorRate(t *testing.T) {
	for _, tc := range []struct {
		sf   int
		snr  float64
		want float64
	}{
		{7, -7.5, 0.0269}, // at the SX1276 floor, 20 bytes
		{7, -8.89, 0.5},   // its 50 % point
		{12, -22.65, 0.5}, // SF12's
		{12, -20, 0.0001}, // SF12 at its floor
		{10, -17.09, 0.5}, // SF10's
		{9, 0, 0},         // far above
		{9, -30, 1},       // far below
	} {
		p := NewParams(tc.sf, 125000, CR45)
		if got := PacketErrorRate(p, 20, tc.snr); !near(got, tc.want, 0.005) {
			t.Errorf("SF%d at %v dB: PER %.4f, want %.4f", tc.sf, tc.snr, got, tc.want)
		}
	}
	for sf := 7; sf <= 12; sf++ {
		p := NewParams(sf, 125000, CR45)
		prev := 1.0
		for snr := -40.0; snr < 10; snr += 0.25 {
			per := PacketErrorRate(p, 20, snr)
			if per > prev+1e-12 || per < 0 || per > 1 {
				t.Fatalf("SF%d: PER %v at %v dB after %v", sf, per, snr, prev)
			}
			prev = per
		}
		// Below the margin the medium drops frames outright: the curve
		// loses nearly all there anyway.
		if per := PacketErrorRate(p, 1, p.SNRFloorDB()-CurveMarginDB); per < 0.985 {
			t.Errorf("SF%d: PER %v at the margin", sf, per)
		}
	}
}

// TestFadingDistribution: Rayleigh and Rician gains have mean power 1 and
// the published tails; the draws do not depend on the order of questions.
func TestFadingDistribution(t *testing.T) {
	nodes := []Node{{}, {X: 10}}
	for _, tc := range []struct {
		kind    Fading
		kDB     float64
		below10 float64 // P(gain < -10 dB)
		tol     float64
	}{
		{Rayleigh, 0, 1 - math.Exp(-0.1), 0.005}, // 9.5 %
		{Rician, 10, 0.0005, 0.0015},             // strong line of sight: rare deep fades
	} {
		m, err := NewMedium(nodes, rand.New(rand.NewPCG(1, 2)), WithFading(tc.kind, tc.kDB))
		if err != nil {
			t.Fatal(err)
		}
		const n = 200000
		sum, below := 0.0, 0
		for id := TxID(1); id <= n; id++ {
			g := m.fadeDB(id, 1)
			sum += math.Pow(10, g/10)
			if g < -10 {
				below++
			}
			if g > FadeClipDB {
				t.Fatalf("gain %v above the clip", g)
			}
		}
		if mean := sum / n; !near(mean, 1, 0.01) {
			t.Errorf("%v: mean power gain %v, want 1", tc.kind, mean)
		}
		if got := float64(below) / n; !near(got, tc.below10, tc.tol) {
			t.Errorf("%v: P(< -10 dB) = %v, want %v", tc.kind, got, tc.below10)
		}
		if m.fadeDB(7, 1) != m.fadeDB(7, 1) || m.fadeDB(7, 1) == m.fadeDB(7, 0) {
			t.Errorf("%v: fade of a frame not a function of frame and receiver", tc.kind)
		}
	}
	if _, err := NewMedium(nodes, nil, WithModel(noShadow()), WithFading(Rayleigh, 0)); err == nil {
		t.Error("fading without a generator accepted")
	}
	if _, err := NewMedium(nodes, nil, WithModel(noShadow()), WithCaptureWindow(-1)); err == nil {
		t.Error("negative capture window accepted")
	}
}

// TestFadingAndCurveAtTheEdge: a link at the edge of the range is
// sometimes received with fading or the curve, never half the time
// without; the same seed gives the same outcomes whatever the order.
func TestFadingAndCurveAtTheEdge(t *testing.T) {
	p := NewParams(9, 125000, CR45)
	dev := Device{TxPowerDBm: 14}
	edge := noShadow().MaxRange(p, dev, dev) * 0.98
	nodes := []Node{{Device: dev}, {X: edge, Device: dev}}
	for _, tc := range []struct {
		name   string
		opts   []Option
		lo, hi float64 // share received
	}{
		{"threshold", nil, 1, 1},
		// The mean is 0.18 dB above the threshold: P(gain > -0.18 dB) =
		// exp(-10^-0.018) = 0.383.
		{"rayleigh", []Option{WithFading(Rayleigh, 0)}, 0.35, 0.42},
		{"curve", []Option{WithErrorCurve()}, 0.98, 1},
		{"rayleigh+curve", []Option{WithFading(Rayleigh, 0), WithErrorCurve()}, 0.38, 0.6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := NewMedium(nodes, rand.New(rand.NewPCG(3, 3)), append([]Option{WithModel(noShadow())}, tc.opts...)...)
			if err != nil {
				t.Fatal(err)
			}
			got := 0
			at := t0
			var first []Status
			for range 2000 {
				id, end, err := m.StartTx(0, at, f1, p, 20)
				if err != nil {
					t.Fatal(err)
				}
				o, err := m.Outcome(id, 1)
				if err != nil {
					t.Fatal(err)
				}
				if o.Status == Received {
					got++
				}
				first = append(first, o.Status)
				at = end.Add(time.Second)
			}
			share := float64(got) / 2000
			if share < tc.lo || share > tc.hi {
				t.Errorf("received %.3f, want %v..%v", share, tc.lo, tc.hi)
			}
			// Same seed, same answers.
			m2, _ := NewMedium(nodes, rand.New(rand.NewPCG(3, 3)), append([]Option{WithModel(noShadow())}, tc.opts...)...)
			at = t0
			for i := range 2000 {
				id, end, _ := m2.StartTx(0, at, f1, p, 20)
				o, _ := m2.Outcome(id, 1)
				if o.Status != first[i] {
					t.Fatalf("rerun differs at frame %d", i)
				}
				at = end.Add(time.Second)
			}
		})
	}
}

// TestPreambleHeard: a channel activity detection sees a frame's preamble,
// not its payload, only on its channel and at its threshold.
func TestPreambleHeard(t *testing.T) {
	p := NewParams(7, 125000, CR45)
	nodes := []Node{{Device: Device{TxPowerDBm: 14}}, {X: 50, Device: Device{TxPowerDBm: 14}}}
	m, err := NewMedium(nodes, nil, WithModel(noShadow()))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.StartTx(1, t0, f1, p, 20); err != nil {
		t.Fatal(err)
	}
	pre := p.PreambleTime() // 12.544 ms
	// Node 0 hears node 1 at -115.43 dBm (TestMediumRules' scene).
	for _, tc := range []struct {
		name     string
		from, to time.Duration
		freq     int64
		p        Params
		th       float64
		want     bool
	}{
		{"during the preamble", ms(2), ms(4), f1, p, -124, true},
		{"the preamble's last 1 ms", pre - ms(1), pre + ms(1), f1, p, -124, true},
		{"payload only", pre, pre + ms(2), f1, p, -124, false},
		{"other frequency", ms(2), ms(4), f2, p, -124, false},
		{"other SF", ms(2), ms(4), f1, NewParams(8, 125000, CR45), -124, false},
		{"threshold above the power", ms(2), ms(4), f1, p, -115, false},
		{"before the frame", -ms(4), 0, f1, p, -124, false},
	} {
		got, err := m.PreambleHeard(0, t0.Add(tc.from), t0.Add(tc.to), tc.freq, tc.p, tc.th)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got != tc.want {
			t.Errorf("%s: heard %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestHears: without fading every candidate hears a frame; with it, those
// the frame's fade lifts over the threshold, as Outcome judges them.
func TestHears(t *testing.T) {
	p := NewParams(9, 125000, CR45)
	dev := Device{TxPowerDBm: 14}
	edge := noShadow().MaxRange(p, dev, dev)
	nodes := []Node{{Device: dev}, {X: edge * 0.98, Device: dev}}
	for _, fading := range []Fading{NoFading, Rayleigh} {
		m, err := NewMedium(nodes, rand.New(rand.NewPCG(5, 5)), WithModel(noShadow()), WithFading(fading, 0))
		if err != nil {
			t.Fatal(err)
		}
		at, heard := t0, 0
		for range 500 {
			id, end, err := m.StartTx(0, at, f1, p, 20)
			if err != nil {
				t.Fatal(err)
			}
			h := m.Hears(id, 1)
			o, _ := m.Outcome(id, 1)
			if h != (o.Status == Received) {
				t.Fatalf("%v: Hears %v, outcome %v", fading, h, o.Status)
			}
			if h {
				heard++
			}
			at = end.Add(time.Second)
		}
		if fading == NoFading && heard != 500 || fading == Rayleigh && (heard < 150 || heard > 230) {
			t.Errorf("%v: heard %d of 500", fading, heard)
		}
	}
}
