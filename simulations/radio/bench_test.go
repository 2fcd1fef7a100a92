package radio

import (
	"container/heap"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

func BenchmarkAirtime(b *testing.B) {
	var ps []Params
	for sf := 7; sf <= 12; sf++ {
		for _, bw := range []int{125000, 250000, 500000} {
			for cr := CR45; cr <= CR48; cr++ {
				ps = append(ps, NewParams(sf, bw, cr))
			}
		}
	}
	var sink time.Duration
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		d, err := ps[i%len(ps)].TimeOnAir(i & 0xff)
		if err != nil {
			b.Fatal(err)
		}
		sink += d
	}
	_ = sink
}

// benchNodes places n nodes uniformly in a square sized so that each node
// has about neighbours mean-range neighbours at parameters p (shadowing adds
// some), with 14 dBm and 2 dBi antennas.
func benchNodes(n int, p Params, neighbours float64) []Node {
	dev := Device{TxPowerDBm: 14, GainDBi: 2}
	r := DefaultModel().MaxRange(p, dev, dev)
	side := math.Sqrt(float64(n) * math.Pi * r * r / neighbours)
	rng := rand.New(rand.NewPCG(42, 42))
	nodes := make([]Node, n)
	for i := range nodes {
		nodes[i] = Node{X: rng.Float64() * side, Y: rng.Float64() * side, Device: dev}
	}
	return nodes
}

// BenchmarkMediumBuild measures the first use of a spreading factor: the
// reach lists of 10,000 nodes.
func BenchmarkMediumBuild(b *testing.B) {
	for _, sf := range []int{7, 9, 12} {
		p := NewParams(sf, 125000, CR45)
		nodes := benchNodes(10000, NewParams(9, 125000, CR45), 20)
		b.Run(fmt.Sprintf("SF%d/10000nodes", sf), func(b *testing.B) {
			var m *Medium
			for b.Loop() {
				var err error
				m, err = NewMedium(nodes, rand.New(rand.NewPCG(1, 1)))
				if err != nil {
					b.Fatal(err)
				}
				if _, err := m.Neighbours(0, p); err != nil {
					b.Fatal(err)
				}
			}
			// Reach list sizes: receivers and potential interferers per node.
			c := m.class(classIndex(p))
			out, in := 0, 0
			for i := range c.out {
				out += len(c.out[i])
				in += int(c.inOff[i+1] - c.inOff[i])
			}
			b.ReportMetric(float64(out)/float64(len(nodes)), "rx/node")
			b.ReportMetric(float64(in)/float64(len(nodes)), "int/node")
		})
	}
}

// BenchmarkMedium drives a 10,000-node medium like the scheduler would: one
// op is one frame (StartTx, then at its end Outcomes at every candidate),
// with frames from random nodes arriving as a Poisson process. x-realtime
// is simulated time per wall time for this load, counting the medium only.
func BenchmarkMedium(b *testing.B) {
	cases := []struct {
		name     string
		p        Params
		size     int
		perNode  time.Duration // mean interval between one node's frames
		neighbrs float64       // mean-range neighbours per node
		opts     []Option      // reception models beyond the defaults
	}{
		// 10,000 nodes, one frame per node per minute: 167 frames/s.
		{"SF9/20nb/1perMin", NewParams(9, 125000, CR45), 40, time.Minute, 20, nil},
		// Long frames, crowded: SF12 (1.6 s frames, ~1.5 % airtime per
		// node), 20 neighbours: many overlaps.
		{"SF12/20nb/1perMin", NewParams(12, 125000, CR45), 40, time.Minute, 20, nil},
		{"SF7/50nb/1per10s", NewParams(7, 125000, CR45), 60, 10 * time.Second, 50, nil},
		// The optional reception models on the first case: fading and the
		// error curve widen the reach lists; summed interference and the
		// inter-SF matrix judge every rival by its power.
		{"rayleigh+curve/SF9/20nb/1perMin", NewParams(9, 125000, CR45), 40, time.Minute, 20,
			[]Option{WithFading(Rayleigh, 0), WithErrorCurve()}},
		{"sum+croce/SF9/20nb/1perMin", NewParams(9, 125000, CR45), 40, time.Minute, 20,
			[]Option{WithSummedInterference(), WithSFRejection(CroceRejection())}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			const n = 10000
			nodes := benchNodes(n, c.p, c.neighbrs)
			m, err := NewMedium(nodes, rand.New(rand.NewPCG(1, 1)), c.opts...)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := m.Neighbours(0, c.p); err != nil { // build outside the timing
				b.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(2, 2))
			gap := c.perNode / n
			at := t0
			var ends endHeap
			var buf []Reception
			outcomes, collisions, received := 0, 0, 0
			finish := func(e endEvent) {
				var err error
				buf, err = m.Outcomes(e.id, buf[:0])
				if err != nil {
					b.Fatal(err)
				}
				outcomes += len(buf)
				for _, o := range buf {
					switch o.Status {
					case Collision:
						collisions++
					case Received:
						received++
					}
				}
			}
			b.ReportAllocs()
			start := time.Now()
			for b.Loop() {
				at = at.Add(time.Duration(rng.ExpFloat64() * float64(gap)))
				for len(ends) > 0 && !ends[0].at.After(at) {
					finish(heap.Pop(&ends).(endEvent))
				}
				id, end, err := m.StartTx(NodeID(rng.IntN(n)), at, f1, c.p, c.size)
				if err != nil {
					continue // busy
				}
				heap.Push(&ends, endEvent{end, id})
			}
			elapsed := time.Since(start)
			b.ReportMetric(float64(outcomes)/float64(b.N), "rx/frame")
			if outcomes > 0 {
				b.ReportMetric(float64(collisions)/float64(outcomes), "collided")
				b.ReportMetric(float64(received)/float64(outcomes), "received")
			}
			b.ReportMetric(at.Sub(t0).Seconds()/elapsed.Seconds(), "x-realtime")
			b.ReportMetric(float64(m.Retained()), "retained")
		})
	}
}
