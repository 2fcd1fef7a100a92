package radio

import (
	"container/heap"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

const (
	f1 = 868_100_000
	f2 = 868_300_000
)

func ms(x float64) time.Duration { return time.Duration(x * float64(time.Millisecond)) }

// noShadow is the default model without shadowing, so that received powers
// follow from geometry alone.
func noShadow() Model {
	m := DefaultModel()
	m.PathLoss.ShadowSigmaDB = 0
	return m
}

// The collision scene: receiver R at the origin, A and B 50 m away on
// either side. At 50 m the mean loss is 127.41 + 20.8 log10(1.25) =
// 129.426 dB, so a 14 dBm frame arrives at -115.43 dBm, 8.6 dB above the
// SF7 threshold (-124 dBm); transmit powers set the differences exactly.
const (
	nodeR NodeID = 0
	nodeA NodeID = 1
	nodeB NodeID = 2
)

type sceneTx struct {
	node  NodeID
	at    time.Duration // after t0
	p     Params
	freq  int64
	size  int
	label string
}

func TestMediumRules(t *testing.T) {
	sf7 := NewParams(7, 125000, CR45)
	air := 56576 * time.Microsecond // SF7, 20 bytes
	cs := 3 * 1024 * time.Microsecond
	// R's empty frame: n_pl = 8 + 5 = 13 symbols, (12.25 + 13) x 1.024 ms.
	rAir := 25856 * time.Microsecond
	tests := []struct {
		name       string
		powA, powB float64
		opts       []Option
		txs        []sceneTx
		want       map[string]Status
	}{
		{"alone", 14, 14, nil,
			[]sceneTx{{node: nodeA, label: "A"}},
			map[string]Status{"A": Received}},
		{"first frame 6 dB stronger captures", 14, 8, nil,
			[]sceneTx{{node: nodeA, label: "A"}, {node: nodeB, at: ms(10), label: "B"}},
			map[string]Status{"A": Received, "B": Collision}},
		{"first frame 5.9 dB stronger: both lost", 14, 8.1, nil,
			[]sceneTx{{node: nodeA, label: "A"}, {node: nodeB, at: ms(10), label: "B"}},
			map[string]Status{"A": Collision, "B": Collision}},
		{"later stronger frame: receiver stays locked", 14, 8, nil,
			[]sceneTx{{node: nodeB, label: "B"}, {node: nodeA, at: ms(10), label: "A"}},
			map[string]Status{"A": Collision, "B": Collision}},
		{"later stronger frame with later capture", 14, 8, []Option{WithLaterCapture()},
			[]sceneTx{{node: nodeB, label: "B"}, {node: nodeA, at: ms(10), label: "A"}},
			map[string]Status{"A": Received, "B": Collision}},
		{"later capture still needs the capture threshold", 14, 8.5, []Option{WithLaterCapture()},
			[]sceneTx{{node: nodeB, label: "B"}, {node: nodeA, at: ms(10), label: "A"}},
			map[string]Status{"A": Collision, "B": Collision}},
		// B arrives at -125.43 dBm, below the threshold: R never locked on
		// it, and A is 10 dB above it.
		{"earlier undetectable frame does not lock", 14, 4, nil,
			[]sceneTx{{node: nodeB, label: "B"}, {node: nodeA, at: ms(10), label: "A"}},
			map[string]Status{"A": Received, "B": BelowSensitivity}},
		// A at -120.43 dBm, B at -125.43: B is not receivable, but within
		// the capture threshold of A.
		{"weak interferer below threshold still destroys", 9, 4, nil,
			[]sceneTx{{node: nodeA, label: "A"}, {node: nodeB, at: ms(10), label: "B"}},
			map[string]Status{"A": Collision, "B": BelowSensitivity}},
		{"interferer ends at the critical section", 14, 14, nil,
			[]sceneTx{{node: nodeB, label: "B"}, {node: nodeA, at: air - cs, label: "A"}},
			map[string]Status{"A": Received, "B": Collision}},
		{"interferer ends 1 ns into the critical section", 14, 14, nil,
			[]sceneTx{{node: nodeB, label: "B"}, {node: nodeA, at: air - cs - 1, label: "A"}},
			map[string]Status{"A": Collision, "B": Collision}},
		{"stronger interferer ending early is harmless", 14, 20, nil,
			[]sceneTx{{node: nodeB, label: "B"}, {node: nodeA, at: air - cs, label: "A"}},
			map[string]Status{"A": Received, "B": Received}}, // B is 6 dB stronger than A
		{"same start, equal power", 14, 14, nil,
			[]sceneTx{{node: nodeA, label: "A"}, {node: nodeB, label: "B"}},
			map[string]Status{"A": Collision, "B": Collision}},
		{"same start, 6 dB apart", 14, 8, nil,
			[]sceneTx{{node: nodeA, label: "A"}, {node: nodeB, label: "B"}},
			map[string]Status{"A": Received, "B": Collision}},
		{"back to back", 14, 14, nil,
			[]sceneTx{{node: nodeB, label: "B"}, {node: nodeA, at: air, label: "A"}},
			map[string]Status{"A": Received, "B": Received}},
		{"different SF is orthogonal", 14, 14, nil,
			[]sceneTx{{node: nodeA, label: "A"}, {node: nodeB, at: ms(1), p: NewParams(8, 125000, CR45), label: "B"}},
			map[string]Status{"A": Received, "B": Received}},
		{"different bandwidth is orthogonal", 14, 14, nil,
			[]sceneTx{{node: nodeA, label: "A"}, {node: nodeB, at: ms(1), p: NewParams(7, 250000, CR45), label: "B"}},
			map[string]Status{"A": Received, "B": Received}},
		{"different frequency never collides", 14, 14, nil,
			[]sceneTx{{node: nodeA, label: "A"}, {node: nodeB, at: ms(1), freq: f2, label: "B"}},
			map[string]Status{"A": Received, "B": Received}},
		{"different coding rate still collides", 14, 14, nil,
			[]sceneTx{{node: nodeA, label: "A"}, {node: nodeB, at: ms(1), p: NewParams(7, 125000, CR48), label: "B"}},
			map[string]Status{"A": Collision, "B": Collision}},
		{"capture threshold 1 dB (FLoRa)", 14, 12, []Option{WithCaptureThreshold(1)},
			[]sceneTx{{node: nodeA, label: "A"}, {node: nodeB, at: ms(10), label: "B"}},
			map[string]Status{"A": Received, "B": Collision}},
		{"receiver transmits during the frame", 14, 14, nil,
			[]sceneTx{{node: nodeA, label: "A"}, {node: nodeR, at: ms(30), size: 0, label: "R"}},
			map[string]Status{"A": HalfDuplex}},
		{"receiver transmitted just before", 14, 14, nil,
			[]sceneTx{{node: nodeR, size: 0, label: "R"}, {node: nodeA, at: rAir, label: "A"}},
			map[string]Status{"A": Received}},
		{"receiver transmitting on another channel is still deaf", 14, 14, nil,
			[]sceneTx{{node: nodeA, label: "A"}, {node: nodeR, at: ms(30), freq: f2, p: NewParams(9, 125000, CR45), label: "R"}},
			map[string]Status{"A": HalfDuplex}},
		// R sends during B's preamble, so it never locked on B; A, 6 dB
		// above B, arrives after R finished and wins.
		{"no lock on a frame whose preamble the receiver missed", 14, 8, nil,
			[]sceneTx{{node: nodeR, size: 0, label: "R"}, {node: nodeB, at: ms(1), label: "B"}, {node: nodeA, at: ms(30), label: "A"}},
			map[string]Status{"A": Received, "B": HalfDuplex}},
	}
	for _, tt := range tests {
		for path := range 3 { // the medium's choice, then each search alone
			t.Run(fmt.Sprintf("%s/path=%d", tt.name, path), func(t *testing.T) {
				nodes := []Node{
					nodeR: {X: 0, Y: 0, Device: Device{TxPowerDBm: 14}},
					nodeA: {X: 50, Y: 0, Device: Device{TxPowerDBm: tt.powA}},
					nodeB: {X: -50, Y: 0, Device: Device{TxPowerDBm: tt.powB}},
				}
				m, err := NewMedium(nodes, nil, append([]Option{WithModel(noShadow())}, tt.opts...)...)
				if err != nil {
					t.Fatal(err)
				}
				m.path = path
				ids := map[string]TxID{}
				for _, tx := range tt.txs {
					p, freq, size := tx.p, tx.freq, tx.size
					if p.SF == 0 {
						p = sf7
					}
					if freq == 0 {
						freq = f1
					}
					if size == 0 && tx.node != nodeR {
						size = 20
					}
					id, end, err := m.StartTx(tx.node, t0.Add(tx.at), freq, p, size)
					if err != nil {
						t.Fatalf("StartTx(%s): %v", tx.label, err)
					}
					if want, _ := p.TimeOnAir(size); !end.Equal(t0.Add(tx.at + want)) {
						t.Fatalf("StartTx(%s) ends %v, want %v", tx.label, end, t0.Add(tx.at+want))
					}
					ids[tx.label] = id
				}
				for label, want := range tt.want {
					got, err := m.Outcome(ids[label], nodeR)
					if err != nil {
						t.Fatal(err)
					}
					if got.Status != want {
						t.Errorf("%s at R: %v (RSSI %.2f dBm, interferer %d), want %v", label, got.Status, got.RSSIDBm, got.Interferer, want)
					}
					if (got.Status == Collision) != (got.Interferer != 0) {
						t.Errorf("%s at R: status %v with interferer %d", label, got.Status, got.Interferer)
					}
				}
			})
		}
	}
}

func TestMediumRSSIAndSNR(t *testing.T) {
	nodes := []Node{
		{X: 0, Y: 0, Device: Device{TxPowerDBm: 14, GainDBi: 2}},
		{X: 300, Y: 400, Device: Device{TxPowerDBm: 20, GainDBi: 3}},
	}
	rng := rand.New(rand.NewPCG(7, 7))
	m, err := NewMedium(nodes, rng)
	if err != nil {
		t.Fatal(err)
	}
	p := NewParams(12, 125000, CR45)
	id, _, err := m.StartTx(1, t0, f1, p, 10)
	if err != nil {
		t.Fatal(err)
	}
	got, err := m.Outcome(id, 0)
	if err != nil {
		t.Fatal(err)
	}
	// 500 m: 127.41 + 20.8 log10(12.5) = 150.225 dB mean loss; 20 + 3 + 2
	// dBm/dBi in; the link's own shadowing on top.
	sh := m.Shadowing().DB(0, 1)
	want := 25 - (127.41 + 20.8*math.Log10(12.5)) - sh
	if !near(got.RSSIDBm, want, 1e-9) {
		t.Errorf("RSSI = %v, want %v", got.RSSIDBm, want)
	}
	if !near(got.SNRDB, want-m.Model().NoiseFloorDBm(p), 1e-9) {
		t.Errorf("SNR = %v", got.SNRDB)
	}
	if sh == 0 || sh != m.Shadowing().DB(1, 0) {
		t.Errorf("link shadowing %v", sh)
	}
	wantStatus := Received
	if want < -137 {
		wantStatus = BelowSensitivity
	}
	if got.Status != wantStatus {
		t.Errorf("status %v at %v dBm", got.Status, got.RSSIDBm)
	}
	if pw, _ := m.RxPowerDBm(1, 0); pw != got.RSSIDBm {
		t.Errorf("RxPowerDBm = %v, Outcome RSSI %v", pw, got.RSSIDBm)
	}
}

func TestMediumSensitivity(t *testing.T) {
	// Nodes on a line, 14 dBm, no shadowing: SF7 reaches 129.1 m, SF12
	// 544.7 m (TestMaxRange).
	var nodes []Node
	for _, x := range []float64{0, 100, 150, 500, 600} {
		nodes = append(nodes, Node{X: x, Device: Device{TxPowerDBm: 14}})
	}
	m, err := NewMedium(nodes, nil, WithModel(noShadow()))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		p    Params
		want []NodeID
	}{
		{NewParams(7, 125000, CR45), []NodeID{1}},
		{NewParams(12, 125000, CR45), []NodeID{1, 2, 3}},
		{NewParams(12, 500000, CR45), []NodeID{1, 2}}, // 6 dB less sensitive: 40 x 10^((145 - 127.41)/20.8) = 280 m
		// SF6 (implicit header): -118 dBm, 40 x 10^((132 - 127.41)/20.8) = 66.5 m.
		{Params{SF: 6, BandwidthHz: 125000, CodingRate: CR45, PreambleSymbols: 8}, nil},
	}
	at := t0
	for _, tt := range tests {
		t.Run(tt.p.String(), func(t *testing.T) {
			id, end, err := m.StartTx(0, at, f1, tt.p, 20)
			if err != nil {
				t.Fatal(err)
			}
			at = end
			cands, err := m.Candidates(id)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(cands, tt.want) {
				t.Errorf("Candidates = %v, want %v", cands, tt.want)
			}
			nb, _ := m.Neighbours(0, tt.p)
			if !slices.Equal(nb, tt.want) {
				t.Errorf("Neighbours = %v, want %v", nb, tt.want)
			}
			for r := NodeID(1); r < 5; r++ {
				o, _ := m.Outcome(id, r)
				want := BelowSensitivity
				if slices.Contains(tt.want, r) {
					want = Received
				}
				if o.Status != want {
					t.Errorf("node %d: %v at %.2f dBm, want %v", r, o.Status, o.RSSIDBm, want)
				}
			}
			all, err := m.Outcomes(id, nil)
			if err != nil || len(all) != len(tt.want) {
				t.Fatalf("Outcomes = %v, %v", all, err)
			}
			for i, o := range all {
				if o.Receiver != tt.want[i] || o.Status != Received {
					t.Errorf("Outcomes[%d] = %+v", i, o)
				}
			}
		})
	}
}

func TestMediumErrors(t *testing.T) {
	// 10 m apart at 20 dBm: received whatever the shadowing (-107.41 dBm
	// mean, at most 14.28 dB less).
	nodes := []Node{{X: 0, Device: Device{TxPowerDBm: 20}}, {X: 10, Device: Device{TxPowerDBm: 20}}}
	m, err := NewMedium(nodes, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	p := NewParams(7, 125000, CR45)
	id, end, err := m.StartTx(0, t0, f1, p, 10)
	if err != nil {
		t.Fatal(err)
	}
	check := func(name string, err, want error) {
		t.Helper()
		if !errors.Is(err, want) {
			t.Errorf("%s: error %v, want %v", name, err, want)
		}
	}
	_, _, err = m.StartTx(0, end.Add(-1), f1, p, 10)
	check("start while sending", err, ErrBusy)
	_, _, err = m.StartTx(1, t0.Add(-1), f1, p, 10)
	check("start in the past", err, ErrTimeOrder)
	_, _, err = m.StartTx(2, t0, f1, p, 10)
	check("unknown sender", err, ErrUnknownNode)
	_, _, err = m.StartTx(-1, t0, f1, p, 10)
	check("negative sender", err, ErrUnknownNode)
	_, _, err = m.StartTx(1, t0, f1, NewParams(7, 125000, 5), 10)
	check("coding rate 5", err, ErrInvalidParams)
	_, _, err = m.StartTx(1, t0, 0, p, 10)
	check("zero frequency", err, ErrInvalidParams)
	_, _, err = m.StartTx(1, t0, f1, p, 256)
	check("256 bytes", err, ErrPayloadSize)
	_, err = m.Outcome(id, 0)
	check("outcome at sender", err, ErrSameNode)
	_, err = m.Outcome(id, 5)
	check("outcome at unknown node", err, ErrUnknownNode)
	_, err = m.Outcome(0, 1)
	check("tx 0", err, ErrUnknownTx)
	_, err = m.Outcome(id+1, 1)
	check("tx not issued", err, ErrUnknownTx)
	_, err = m.Candidates(id + 1)
	check("candidates of unknown tx", err, ErrUnknownTx)
	_, err = m.Outcomes(id+1, nil)
	check("outcomes of unknown tx", err, ErrUnknownTx)
	_, err = m.Neighbours(0, Params{})
	check("neighbours with invalid params", err, ErrInvalidParams)
	_, err = m.Neighbours(3, p)
	check("neighbours of unknown node", err, ErrUnknownNode)
	_, err = m.RxPowerDBm(0, 9)
	check("power to unknown node", err, ErrUnknownNode)
	_, err = m.Node(9)
	check("unknown node", err, ErrUnknownNode)
	check("advance backwards", m.Advance(t0.Add(-time.Second)), ErrTimeOrder)
	// The failed calls changed nothing.
	if o, err := m.Outcome(id, 1); err != nil || o.Status != Received {
		t.Errorf("Outcome after failed calls: %+v, %v", o, err)
	}
	tx, err := m.Transmission(id)
	if err != nil || tx.Node != 0 || tx.Size != 10 || tx.FrequencyHz != f1 || tx.Params != p || !tx.Start.Equal(t0) || !tx.End.Equal(end) {
		t.Errorf("Transmission = %+v, %v", tx, err)
	}

	bad := []struct {
		name  string
		nodes []Node
		rng   *rand.Rand
		opts  []Option
		want  error
		field string
	}{
		{"NaN position", []Node{{X: math.NaN()}}, nil, []Option{WithModel(noShadow())}, ErrInvalidNode, "node 0"},
		{"infinite power", []Node{{}, {Device: Device{TxPowerDBm: math.Inf(1)}}}, nil, []Option{WithModel(noShadow())}, ErrInvalidNode, "node 1"},
		{"shadowing without rng", []Node{{}}, nil, nil, ErrNoRand, "sigma"},
		{"negative capture", []Node{{}}, nil, []Option{WithModel(noShadow()), WithCaptureThreshold(-1)}, ErrInvalidModel, "capture"},
		{"negative retention", []Node{{}}, nil, []Option{WithModel(noShadow()), WithRetention(-1)}, ErrInvalidModel, "retention"},
		{"bad model", []Node{{}}, nil, []Option{WithModel(Model{})}, ErrInvalidModel, "PathLoss.RefDistanceM"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewMedium(tt.nodes, tt.rng, tt.opts...)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.field) {
				t.Errorf("NewMedium = %v, want %v naming %q", err, tt.want, tt.field)
			}
		})
	}
}

// A long run keeps memory bounded: the medium forgets frames a couple of
// airtimes after they end, and outcomes stay available at the frame's end.
func TestMediumForgets(t *testing.T) {
	nodes := []Node{{X: 0}, {X: 20}, {X: 40}}
	m, err := NewMedium(nodes, nil, WithModel(noShadow()))
	if err != nil {
		t.Fatal(err)
	}
	p := NewParams(9, 125000, CR45)
	at := t0
	var first TxID
	maxRetained := 0
	for i := range 20000 {
		node := NodeID(i % 3)
		id, end, err := m.StartTx(node, at, f1, p, 13)
		if err != nil {
			t.Fatal(err)
		}
		if first == 0 {
			first = id
		}
		// The next node starts on another channel just before the end,
		// and the outcomes are asked for at the end.
		if _, _, err := m.StartTx((node+1)%3, end.Add(-time.Millisecond), f2, p, 13); err != nil {
			t.Fatal(err)
		}
		if err := m.Advance(end); err != nil {
			t.Fatal(err)
		}
		if o, err := m.Outcome(id, (node+2)%3); err != nil || o.Status != Received {
			t.Fatalf("frame %d: %+v, %v", i, o, err)
		}
		if o, err := m.Outcome(id, (node+1)%3); err != nil || o.Status != HalfDuplex {
			t.Fatalf("frame %d at the next sender: %+v, %v", i, o, err)
		}
		at = end.Add(200 * time.Millisecond)
		maxRetained = max(maxRetained, m.Retained())
	}
	// Each round spans 2 airtimes; frames live 2 airtimes after their end.
	if maxRetained > 8 {
		t.Errorf("retained up to %d transmissions", maxRetained)
	}
	if _, err := m.Outcome(first, 1); !errors.Is(err, ErrUnknownTx) {
		t.Errorf("first frame still known: %v", err)
	}
	if err := m.Advance(at.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if m.Retained() != 0 {
		t.Errorf("%d transmissions retained an hour later", m.Retained())
	}
	for _, lt := range m.last {
		if m.rec(lt.id) != nil {
			t.Error("a node still holds transmissions")
		}
	}
}

func TestMediumRetention(t *testing.T) {
	nodes := []Node{{X: 0}, {X: 20}}
	p := NewParams(7, 125000, CR45)
	for _, keep := range []time.Duration{0, time.Minute} {
		t.Run(keep.String(), func(t *testing.T) {
			m, _ := NewMedium(nodes, nil, WithModel(noShadow()), WithRetention(keep))
			id, end, _ := m.StartTx(0, t0, f1, p, 10)
			air := end.Sub(t0)
			// Outcomes until the retention after the end.
			if err := m.Advance(end.Add(keep)); err != nil {
				t.Fatal(err)
			}
			if _, err := m.Outcome(id, 1); err != nil {
				t.Errorf("outcome at the end of the retention: %v", err)
			}
			if err := m.Advance(end.Add(keep + 1)); err != nil {
				t.Fatal(err)
			}
			if _, err := m.Outcome(id, 1); !errors.Is(err, ErrUnknownTx) {
				t.Errorf("outcome after the retention: %v", err)
			}
			if _, err := m.Outcomes(id, nil); !errors.Is(err, ErrUnknownTx) {
				t.Errorf("outcomes after the retention: %v", err)
			}
			// The transmission itself is kept 2 airtimes longer, for the
			// frames that overlapped it.
			if _, err := m.Transmission(id); err != nil {
				t.Errorf("forgotten too early: %v", err)
			}
			if err := m.Advance(end.Add(2*air + keep + 1)); err != nil {
				t.Fatal(err)
			}
			if _, err := m.Transmission(id); !errors.Is(err, ErrUnknownTx) || m.Retained() != 0 {
				t.Errorf("not forgotten: %v", err)
			}
		})
	}
}

// refTx is a transmission as the brute-force reference sees it.
type refTx struct {
	id         TxID
	node       NodeID
	start, end time.Time
	freq       int64
	p          Params
}

// refOutcome applies the reception rules of Medium's documentation the
// slow way: every transmission against every other, no reach lists, no
// forgetting.
func refOutcome(m *Medium, all []refTx, f refTx, r NodeID, capture float64, later bool) Status {
	model := m.Model()
	pw := func(s NodeID) float64 { x, _ := m.RxPowerDBm(s, r); return x }
	overlaps := func(s1, e1, s2, e2 time.Time) bool { return s1.Before(e2) && s2.Before(e1) }
	sendingDuring := func(from, to time.Time) bool {
		for _, x := range all {
			if x.node == r && overlaps(x.start, x.end, from, to) {
				return true
			}
		}
		return false
	}
	if sendingDuring(f.start, f.end) {
		return HalfDuplex
	}
	th := model.ThresholdDBm(f.p)
	rssi := pw(f.node)
	if rssi < th {
		return BelowSensitivity
	}
	tsym := f.p.SymbolTime()
	cs := f.start.Add(time.Duration(f.p.PreambleSymbols-5) * tsym)
	for _, x := range all {
		if x.id == f.id || x.node == r || !overlaps(x.start, x.end, f.start, f.end) ||
			x.freq != f.freq || x.p.SF != f.p.SF || x.p.BandwidthHz != f.p.BandwidthHz {
			continue
		}
		if !x.end.After(cs) {
			continue
		}
		px := pw(x.node)
		if !later && x.start.Before(f.start) && px >= th && !sendingDuring(x.start, x.start.Add(x.p.PreambleTime())) {
			return Collision
		}
		if rssi-px < capture {
			return Collision
		}
	}
	return Received
}

type endEvent struct {
	at time.Time
	id TxID
}

type endHeap []endEvent

func (h endHeap) Len() int { return len(h) }
func (h endHeap) Less(i, j int) bool {
	return h[i].at.Before(h[j].at) || h[i].at.Equal(h[j].at) && h[i].id < h[j].id
}
func (h endHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *endHeap) Push(x any)   { *h = append(*h, x.(endEvent)) }
func (h *endHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// randomScene is a random network: nodes in a square, mixed powers and
// gains.
func randomScene(seed uint64, n int, side float64) []Node {
	rng := rand.New(rand.NewPCG(seed, 99))
	nodes := make([]Node, n)
	for i := range nodes {
		nodes[i] = Node{
			X: rng.Float64() * side, Y: rng.Float64() * side,
			Device: Device{TxPowerDBm: []float64{8, 14, 20}[rng.IntN(3)], GainDBi: []float64{0, 2}[rng.IntN(2)]},
		}
	}
	return nodes
}

// runScene drives m like a scheduler: frames start at random times (two
// frequencies; SF7, SF8 and some SF12, whose long frames stress the
// forgetting; one in ten at 250 kHz), and at each frame's end visit is
// called with it, delay later. It returns the transmissions.
func runScene(t testing.TB, m *Medium, seed uint64, frames int, meanGap, delay time.Duration, visit func(refTx)) []refTx {
	rng := rand.New(rand.NewPCG(seed, 5))
	var all []refTx
	var ends endHeap
	byID := map[TxID]refTx{}
	at := t0
	n := m.Len()
	for len(all) < frames {
		at = at.Add(time.Duration(rng.ExpFloat64() * float64(meanGap)))
		for len(ends) > 0 && !ends[0].at.Add(delay).After(at) {
			e := heap.Pop(&ends).(endEvent)
			if err := m.Advance(e.at.Add(delay)); err != nil {
				t.Fatal(err)
			}
			visit(byID[e.id])
		}
		p := NewParams([]int{7, 8, 7, 8, 12}[rng.IntN(5)], 125000, CR45)
		if rng.IntN(10) == 0 {
			p.BandwidthHz = 250000
		}
		freq := int64([]int{f1, f2}[rng.IntN(2)])
		node := NodeID(rng.IntN(n))
		id, end, err := m.StartTx(node, at, freq, p, rng.IntN(60))
		if errors.Is(err, ErrBusy) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		x := refTx{id: id, node: node, start: at, end: end, freq: freq, p: p}
		all = append(all, x)
		byID[id] = x
		heap.Push(&ends, endEvent{end, id})
	}
	for len(ends) > 0 {
		e := heap.Pop(&ends).(endEvent)
		if err := m.Advance(e.at.Add(delay)); err != nil {
			t.Fatal(err)
		}
		visit(byID[e.id])
	}
	return all
}

// The medium, with its reach lists and its forgetting, decides exactly as
// the brute-force reading of its rules, for every frame at every node.
func TestMediumMatchesBruteForce(t *testing.T) {
	for _, tc := range []struct {
		later bool
		path  int
		delay time.Duration // outcomes asked for this long after the end, with as much retention
	}{{false, 0, 0}, {true, 0, 0}, {false, 1, 0}, {false, 2, 0}, {true, 1, 0}, {true, 2, 0}, {false, 0, 700 * time.Millisecond}} {
		later := tc.later
		t.Run(fmt.Sprintf("laterCapture=%v/path=%d/delay=%v", later, tc.path, tc.delay), func(t *testing.T) {
			nodes := randomScene(1, 120, 1500)
			opts := []Option{WithRetention(tc.delay)}
			if later {
				opts = append(opts, WithLaterCapture())
			}
			m, err := NewMedium(nodes, rand.New(rand.NewPCG(2, 2)), opts...)
			if err != nil {
				t.Fatal(err)
			}
			counts := map[Status]int{}
			checked := 0
			// A first run lists every transmission; the second, identical
			// (same seeds), is checked against that complete list.
			full := runScene(t, m, 3, 1000, 8*time.Millisecond, tc.delay, func(refTx) {})
			m2, _ := NewMedium(nodes, rand.New(rand.NewPCG(2, 2)), opts...)
			m2.path = tc.path // 0: the medium's choice; 1 and 2: each search alone
			runScene(t, m2, 3, 1000, 8*time.Millisecond, tc.delay, func(f refTx) {
				cands, err := m2.Candidates(f.id)
				if err != nil {
					t.Fatal(err)
				}
				var wantCands []NodeID
				th := m2.Model().ThresholdDBm(f.p)
				for r := range NodeID(len(nodes)) {
					if r == f.node {
						continue
					}
					got, err := m2.Outcome(f.id, r)
					if err != nil {
						t.Fatal(err)
					}
					want := refOutcome(m2, full, f, r, 6, later)
					if got.Status != want {
						t.Fatalf("tx %d (node %d %v) at node %d: %v, reference %v", f.id, f.node, f.p, r, got.Status, want)
					}
					if pw, _ := m2.RxPowerDBm(f.node, r); pw >= th {
						wantCands = append(wantCands, r)
					}
					counts[got.Status]++
					checked++
				}
				if !slices.Equal(cands, wantCands) {
					t.Fatalf("tx %d: candidates %v, want %v", f.id, cands, wantCands)
				}
			})
			t.Logf("%d outcomes checked: %v", checked, counts)
			for _, s := range []Status{Received, BelowSensitivity, Collision, HalfDuplex} {
				if counts[s] == 0 {
					t.Errorf("the scene produced no %v outcome; it tests too little", s)
				}
			}
		})
	}
}

// traceHash runs a random scene and hashes every outcome at every
// candidate.
func traceHash(t *testing.T, shadowSeed, trafficSeed uint64) uint64 {
	nodes := randomScene(4, 300, 3000)
	m, err := NewMedium(nodes, rand.New(rand.NewPCG(shadowSeed, 1)))
	if err != nil {
		t.Fatal(err)
	}
	h := fnv.New64a()
	var buf []Reception
	runScene(t, m, trafficSeed, 2000, 2*time.Millisecond, 0, func(f refTx) {
		buf, err = m.Outcomes(f.id, buf[:0])
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range buf {
			fmt.Fprintf(h, "%d %d %d %x %d\n", f.id, o.Receiver, o.Status, math.Float64bits(o.RSSIDBm), o.Interferer)
		}
	})
	return h.Sum64()
}

func TestMediumDeterministic(t *testing.T) {
	a, b := traceHash(t, 1, 1), traceHash(t, 1, 1)
	if a != b {
		t.Fatalf("same seeds, different traces: %x %x", a, b)
	}
	if c := traceHash(t, 2, 1); c == a {
		t.Error("another shadowing seed gives the same trace")
	}
	if c := traceHash(t, 1, 2); c == a {
		t.Error("other traffic gives the same trace")
	}
}

// With equal radios, reach is symmetric (shadowing is per link), and
// Neighbours agrees with the link budget computed by hand.
func TestMediumNeighbours(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	var nodes []Node
	for range 400 {
		nodes = append(nodes, Node{X: rng.Float64() * 4000, Y: rng.Float64() * 4000, Device: Device{TxPowerDBm: 14, GainDBi: 2}})
	}
	m, err := NewMedium(nodes, rng)
	if err != nil {
		t.Fatal(err)
	}
	model := m.Model()
	for _, p := range []Params{NewParams(7, 125000, CR45), NewParams(12, 125000, CR45), NewParams(10, 250000, CR46)} {
		total := 0
		for a := range NodeID(len(nodes)) {
			nb, err := m.Neighbours(a, p)
			if err != nil {
				t.Fatal(err)
			}
			total += len(nb)
			for b := range NodeID(len(nodes)) {
				if a == b {
					continue
				}
				na, nbb := nodes[a], nodes[b]
				d := math.Sqrt((na.X-nbb.X)*(na.X-nbb.X) + (na.Y-nbb.Y)*(na.Y-nbb.Y))
				want := model.Reachable(p, na.Device, nbb.Device, d, m.Shadowing().DB(a, b))
				if got := slices.Contains(nb, b); got != want {
					t.Fatalf("%v: %d -> %d at %.1f m: neighbour %v, budget says %v", p, a, b, d, got, want)
				}
				back, _ := m.Neighbours(b, p)
				if want != slices.Contains(back, a) {
					t.Fatalf("%v: link %d-%d not symmetric", p, a, b)
				}
			}
		}
		t.Logf("%v: %.1f neighbours per node", p, float64(total)/float64(len(nodes)))
	}
}
