package sim

import (
	"bufio"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"meshd.dev/meshd/simulations/radio"
)

// TestCSMASlot: the slot is the RNode firmware's: 12 symbols in whole
// milliseconds within 24..100 ms, 6 ms floor above 30 kbit/s.
func TestCSMASlot(t *testing.T) {
	for _, c := range []struct {
		sf   int
		bw   int
		want time.Duration
	}{
		{7, 125000, 24 * time.Millisecond},  // 12 x 1.024 ms = 12 ms: the floor
		{9, 125000, 49 * time.Millisecond},  // 12 x 4.096 ms
		{10, 125000, 98 * time.Millisecond}, // 12 x 8.192 ms
		{12, 125000, 100 * time.Millisecond},
		{7, 500000, 24 * time.Millisecond}, // 21.9 kbit/s: not fast
		{6, 500000, 6 * time.Millisecond},  // 37.5 kbit/s: fast
	} {
		p := radio.Params{SF: c.sf, BandwidthHz: c.bw, CodingRate: radio.CR45, PreambleSymbols: 8}
		if got := csmaSlot(p); got != c.want {
			t.Errorf("SF%d/%d: slot %v, want %v", c.sf, c.bw, got, c.want)
		}
	}
}

// loraStarts returns the start and end of every LoRa frame of a trace.
func loraStarts(t *testing.T, trace string, p radio.Params) [][2]int64 {
	t.Helper()
	var out [][2]int64
	sc := bufio.NewScanner(strings.NewReader(trace))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e struct {
			T   int64  `json:"t"`
			K   string `json:"k"`
			L   int    `json:"l"`
			Len int    `json:"len"`
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		if e.K != "tx" || e.L != int(loraLinkID) {
			continue
		}
		air, err := p.TimeOnAir(e.Len)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, [2]int64{e.T, e.T + int64(air)})
	}
	slices.SortFunc(out, func(a, b [2]int64) int { return int(a[0] - b[0]) })
	return out
}

// TestCSMADesynchronises is the review's finding ("carrier sense raises
// collisions at light load"): the old csma sent every node that deferred
// during a frame within 0-16 symbols of its end, so hidden nodes among them
// overlapped almost surely: three quarters of the overlapping frame pairs
// of the light-load village began within 16 symbols of each other. The
// RNode's contention window spreads them over 0-14 slots of 12 symbols.
// The simulation is deterministic: a fixed figure over fixed seeds.
func TestCSMADesynchronises(t *testing.T) {
	var pairs, close int
	for seed := 1; seed <= 6; seed++ {
		var b strings.Builder
		s := runScenario(t, load(t, quickstart, fmt.Sprintf("seed=%d", seed)), NewTracer(&b))
		sym := int64(s.params.SymbolTime())
		tx := loraStarts(t, b.String(), s.params)
		for i, a := range tx {
			for _, c := range tx[i+1:] {
				if c[0] >= a[1] {
					break
				}
				pairs++
				if c[0]-a[0] < 16*sym {
					close++
				}
			}
		}
	}
	if pairs == 0 || close*4 > pairs {
		t.Fatalf("%d of %d overlapping frame pairs began within 16 symbols of each other", close, pairs)
	}
	t.Logf("%d of %d overlapping frame pairs began within 16 symbols of each other", close, pairs)
}

// TestCSMADIFS: on a free channel a frame still waits the DIFS (two
// slots) and its window, as the firmware's tx_queue_handler does; the
// first frame of the quickstart does not leave at time 0.
func TestCSMADIFS(t *testing.T) {
	var b strings.Builder
	s := runScenario(t, load(t, quickstart), NewTracer(&b))
	tx := loraStarts(t, b.String(), s.params)
	if len(tx) == 0 || tx[0][0] < int64(2*csmaSlot(s.params)) {
		t.Fatalf("first frame at %v, before a DIFS of %v", time.Duration(tx[0][0]), 2*csmaSlot(s.params))
	}
	var o strings.Builder
	s = runScenario(t, load(t, quickstart, "radio.carrier_sense=\"off\""), NewTracer(&o))
	if tx := loraStarts(t, o.String(), s.params); len(tx) == 0 || tx[0][0] != 0 {
		t.Fatal("without carrier sense the first frame waited")
	}
}

// TestCSMADetect: a frame that begins less than two symbols before a
// radio's window ends goes unnoticed (the radio sends into it, the
// same-slot collision); one that begins earlier freezes the window, and
// the time that passed after the DIFS until it was noticed counts.
func TestCSMADetect(t *testing.T) {
	s, err := New(load(t, quickstart), nil)
	if err != nil {
		t.Fatal(err)
	}
	s.csma = make([]csmaState, len(s.radioOf))
	const r = radio.NodeID(1)
	p := s.paramsOf(s.radioOf[r])
	slot, detect := csmaSlot(p), csmaDetect(p)
	s.now = Epoch.Add(time.Minute)
	from := s.now.Add(-2 * slot) // the DIFS just passed
	for _, c := range []struct {
		left, wantLeft time.Duration
		noticed        bool
	}{
		{detect / 2, detect / 2, false},   // ends before it is noticed
		{3 * slot, 3*slot - detect, true}, // noticed: detect's time counted
	} {
		s.csma[r] = csmaState{gen: s.radioOf[r].gen, active: true, cwLeft: c.left, freeFrom: from}
		s.hearsUntil[r] = time.Time{}
		s.csmaHeard(r)
		st := s.csma[r]
		if st.freeFrom.IsZero() != c.noticed || st.cwLeft != c.wantLeft || st.busyFrom != s.now {
			t.Errorf("window %v: %+v", c.left, st)
		}
	}
}

// TestCSMANoticeLate: a radio whose contention begins just after a frame
// it hears began does not notice the frame yet, but it does two symbols
// after the frame's start; then it waits for the frame's end and a whole
// DIFS and window after it, as the firmware does, even when the frame is
// shorter than the DIFS (it used to send a DIFS and window after its own
// start, the frame missed).
func TestCSMANoticeLate(t *testing.T) {
	s, err := New(load(t, quickstart), nil)
	if err != nil {
		t.Fatal(err)
	}
	s.csma = make([]csmaState, len(s.radioOf))
	const r = radio.NodeID(1)
	n := s.radioOf[r]
	p := s.paramsOf(n)
	slot, detect := csmaSlot(p), csmaDetect(p)
	start := Epoch.Add(time.Minute)
	end := start.Add(slot) // shorter than the DIFS of two slots
	s.now = start
	s.csmaHeard(r)
	s.hearsUntil[r] = end
	for _, c := range []struct {
		now  time.Time
		want func() time.Time
	}{
		{start.Add(p.SymbolTime()), func() time.Time { return start.Add(detect) }},
		{start.Add(detect), func() time.Time { return end }},
		{end, func() time.Time { return end.Add(csmaDIFSSlots*slot + s.csma[r].cwLeft) }},
	} {
		s.now = c.now
		if !s.csmaWait(n) {
			t.Fatalf("at %v: sends", c.now.Sub(start))
		}
		if got := lastPushed(s).at; !got.Equal(c.want()) {
			t.Fatalf("at %v: looks again at %v, want %v", c.now.Sub(start), got.Sub(start), c.want().Sub(start))
		}
	}
}

// lastPushed is the event pushed last.
func lastPushed(s *Sim) *event {
	var last qent
	for _, q := range s.q {
		if q.seq > last.seq {
			last = q
		}
	}
	return last.e
}

// TestCSMATimingPerRadio: the slot and detection latency worked out once
// per radio are each radio's own (a node on SF12 has a longer slot than
// one on the radio's SF9), and the one shared entry matches every radio
// when all use the radio's modulation.
func TestCSMATimingPerRadio(t *testing.T) {
	for _, c := range []struct{ c, d string }{{"", ""}, {"sf = 12", "sf = 7"}} {
		doc := strings.Replace(strings.Replace(channelsDoc, "%s", c.c, 1), "%s", c.d, 1)
		sc, err := Parse([]byte(doc), nil)
		if err != nil {
			t.Fatal(err)
		}
		s, err := New(sc, nil)
		if err != nil {
			t.Fatal(err)
		}
		slots := map[time.Duration]bool{}
		for _, n := range s.radioOf {
			p := s.paramsOf(n)
			want := csmaTiming{slot: csmaSlot(p), detect: csmaDetect(p)}
			if got := s.csmaTimingOf(n); got != want {
				t.Errorf("%q, node %s: %+v, want %+v", c.c, n.name, got, want)
			}
			slots[want.slot] = true
		}
		if wantSlots := map[bool]int{true: 1, false: 3}[c.c == ""]; len(slots) != wantSlots {
			t.Errorf("%q: %d different slots, want %d", c.c, len(slots), wantSlots)
		}
	}
}
