package radio

import (
	"bufio"
	"flag"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// loraSimCSV holds the DER values LoRaSim itself produced for Bor et al.'s
// single-sink experiments, loraSimRuleCSV those of LoRaSim changed to
// meshsim's timing rule (their headers say how they were made).
const (
	loraSimCSV     = "testdata/lorasim_der.csv"
	loraSimRuleCSV = "testdata/lorasim_meshrule_der.csv"
)

var (
	loraSimFull = flag.Bool("lorasim.full", false, "TestLoRaSimReproduction: run every node count of the CSV with more frames and log the table of docs/simulations.md")
	loraSimPlot = flag.String("lorasim.plot", "", "TestLoRaSimReproduction: write the curves (LoRaSim and meshsim DER against nodes) to this SVG file")
)

// loraSimRuns reads a CSV of LoRaSim runs: DER per seed, keyed by
// experiment and node count.
func loraSimRuns(tb testing.TB, path string) map[[2]int][]float64 {
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	runs := map[[2]int][]float64{}
	sc := bufio.NewScanner(f)
	header := true
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		if header { // experiment,nodes,seed,simtime_ms,sent,collisions,received,der
			header = false
			continue
		}
		col := strings.Split(s, ",")
		if len(col) != 8 {
			tb.Fatalf("%s:%d: %d columns, want 8", path, line, len(col))
		}
		exp, err1 := strconv.Atoi(col[0])
		n, err2 := strconv.Atoi(col[1])
		sent, err3 := strconv.Atoi(col[4])
		got, err4 := strconv.Atoi(col[6])
		if err1 != nil || err2 != nil || err3 != nil || err4 != nil || sent <= 0 {
			tb.Fatalf("%s:%d: bad row %q", path, line, s)
		}
		k := [2]int{exp, n}
		runs[k] = append(runs[k], float64(got)/float64(sent))
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return runs
}

func mean(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

// loraSimModel is LoRaSim's propagation: the log-distance law of
// DefaultPathLoss without shadowing, but extrapolated below d0 = 40 m
// (LoRaSim computes 127.41 + 20.8 log10(d/40) at any distance, so a node
// 5 m from the sink is 19 dB louder than one at 40 m), where meshsim's
// log-distance model keeps PL(d0), as ns-3 does. Moving d0 to 1 m with
// PL(1 m) = 127.41 - 20.8 log10(40) gives the same law for every node
// beyond 1 m (0.01 % of LoRaSim's disc).
func loraSimModel() Model {
	m := noShadow()
	m.PathLoss.RefDistanceM = 1
	m.PathLoss.RefLossDB = 127.41 - 10*2.08*math.Log10(40)
	return m
}

// loraSimParams are the radio settings of LoRaSim's experiments 0 (Bor et
// al.'s SN1: SF12, 125 kHz, CR 4/8) and 4 (LoRaWAN's SF12, 125 kHz,
// CR 4/5), both one frequency, one sink, 14 dBm, the disc of borRadius.
var loraSimParams = map[int]Params{
	0: NewParams(12, 125000, CR48),
	4: NewParams(12, 125000, CR45),
}

// loraSimDER is meshsim's DER for a LoRaSim experiment: the mean over
// seeds of borDER with LoRaSim's propagation and its capture rule (a later
// frame 6 dB stronger wins: WithLaterCapture).
func loraSimDER(tb testing.TB, exp, n, frames, seeds int) float64 {
	ders := make([]float64, seeds)
	for s := range ders {
		ders[s] = borDER(tb, n, frames, loraSimParams[exp], uint64(1000*exp+n+s), WithModel(loraSimModel()), WithLaterCapture())
	}
	return mean(ders)
}

// loraSimBelow and loraSimAbove bound meshsim's DER against LoRaSim's
// mean at the node counts the test runs. meshsim's timing rule is the
// stricter one (LoRaSim ignores an interferer that starts during the last
// 3 symbols of a frame, meshsim does not: a vulnerable window 3 to 4 %
// longer, worth 0.003 to 0.015 of DER by the closed forms; see
// docs/simulations.md), so meshsim may be lower by that plus sampling
// noise (measured: at most 0.018 lower) but higher only by noise
// (measured: never higher; the standard deviation of the test's mean is
// about 0.003).
// meshsim's default path loss or a receiver locked on the first frame
// are 0.05 lower (TestLoRaSimToleranceDiscriminates).
const (
	loraSimBelow = 0.025
	loraSimAbove = 0.01
)

// loraSimRuleTolerance bounds meshsim's DER against LoRaSim changed to
// meshsim's timing rule (experiment 0): the models then agree and only
// the sampling noise of both is left (measured: at most 0.010 at 50
// nodes, where one placement's DER varies most; 0.007 with ten times the
// frames).
const loraSimRuleTolerance = 0.015

// TestLoRaSimReproduction checks meshsim's medium against the DER values
// LoRaSim (Bor et al.'s own simulator) produced for its experiments 0 and
// 4 (testdata/lorasim_der.csv). With -lorasim.full it runs every node
// count with more frames and logs the table of docs/simulations.md:
//
//	go test ./simulations/radio -run TestLoRaSimReproduction -v -lorasim.full
func TestLoRaSimReproduction(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("runs 400,000 frames in one goroutine (skipped with -short and -race)")
	}
	runs, ruled := loraSimRuns(t, loraSimCSV), loraSimRuns(t, loraSimRuleCSV)
	// Many placements with few frames each: the spread between
	// placements is larger than the sampling noise of one.
	counts, frames, seeds := []int{50, 200, 500, 1000}, 48_000, 16
	if *loraSimFull {
		counts, frames = nil, 400_000
		for k := range runs {
			if !slices.Contains(counts, k[1]) {
				counts = append(counts, k[1])
			}
		}
		slices.Sort(counts)
	}
	t.Logf("%4s %6s %8s %8s %8s %12s", "exp", "nodes", "LoRaSim", "meshsim", "diff", "LoRaSim/rule")
	curves := map[string]plotter.XYs{}
	for _, exp := range []int{0, 4} {
		for _, n := range counts {
			want, got := loraSimCompare(t, exp, n, max(8, frames/(n*seeds)), seeds, runs, ruled)
			for name, y := range map[string]float64{"LoRaSim": want, "meshsim": got} {
				k := fmt.Sprintf("%s, experiment %d", name, exp)
				curves[k] = append(curves[k], plotter.XY{X: float64(n), Y: y})
			}
		}
	}
	if *loraSimPlot != "" {
		if err := writeLoRaSimPlot(*loraSimPlot, curves); err != nil {
			t.Fatal(err)
		}
	}
}

// loraSimCompare runs meshsim for one point, logs it beside LoRaSim's
// means (plain and changed to meshsim's timing rule, if run) and checks
// the tolerances.
func loraSimCompare(t *testing.T, exp, n, frames, seeds int, runs, ruled map[[2]int][]float64) (want, got float64) {
	ref, ok := runs[[2]int{exp, n}]
	if !ok {
		t.Fatalf("%s has no runs of experiment %d at %d nodes", loraSimCSV, exp, n)
	}
	want, got = mean(ref), loraSimDER(t, exp, n, frames, seeds)
	if got < want-loraSimBelow || got > want+loraSimAbove {
		t.Errorf("experiment %d, %d nodes: meshsim DER %.3f, LoRaSim %.3f (allowed: %.3f lower, %.3f higher)", exp, n, got, want, loraSimBelow, loraSimAbove)
	}
	rule := math.NaN()
	if r, ok := ruled[[2]int{exp, n}]; ok {
		rule = mean(r)
		if math.Abs(got-rule) > loraSimRuleTolerance {
			t.Errorf("experiment %d, %d nodes: meshsim DER %.3f, LoRaSim with meshsim's timing rule %.3f (tolerance %.3f)", exp, n, got, rule, loraSimRuleTolerance)
		}
	}
	t.Logf("%4d %6d %8.3f %8.3f %+8.3f %12.3f", exp, n, want, got, got-want, rule)
	return want, got
}

// writeLoRaSimPlot draws DER against the number of nodes: LoRaSim's
// values as points, meshsim's as lines.
func writeLoRaSimPlot(path string, curves map[string]plotter.XYs) error {
	p := plot.New()
	p.Title.Text = "Bor et al. 2016, one sink: LoRaSim and meshsim"
	p.X.Label.Text = "nodes"
	p.Y.Label.Text = "data extraction rate"
	p.Y.Min, p.Y.Max = 0, 1
	p.Add(plotter.NewGrid())
	names := make([]string, 0, len(curves))
	for name := range curves {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		exp4 := strings.HasSuffix(name, "4")
		if strings.HasPrefix(name, "LoRaSim") {
			sc, err := plotter.NewScatter(curves[name])
			if err != nil {
				return err
			}
			sc.GlyphStyle.Radius = vg.Points(3)
			sc.GlyphStyle.Shape = draw.CircleGlyph{}
			if exp4 {
				sc.GlyphStyle.Shape = draw.BoxGlyph{}
			}
			p.Add(sc)
			p.Legend.Add(name, sc)
			continue
		}
		l, err := plotter.NewLine(curves[name])
		if err != nil {
			return err
		}
		if exp4 {
			l.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
		}
		p.Add(l)
		p.Legend.Add(name, l)
	}
	p.Legend.Top = true
	return p.Save(7*vg.Inch, 4.5*vg.Inch, path)
}

// TestLoRaSimModel checks the propagation the reproduction uses: LoRaSim's
// received power at the distances it places nodes, below d0 included.
func TestLoRaSimModel(t *testing.T) {
	m := loraSimModel()
	for _, d := range []float64{2, 10, 40, 98.95} {
		want := 127.41 + 10*2.08*math.Log10(d/40) // LoRaSim's Lpl
		if got := m.PathLoss.MeanLossDB(d); math.Abs(got-want) > 1e-9 {
			t.Errorf("loss at %v m: %v dB, LoRaSim %v dB", d, got, want)
		}
	}
	if got := fmt.Sprintf("%.2f", borRadius); got != "98.95" {
		t.Errorf("placement radius %s m, LoRaSim 98.95 m", got)
	}
}

// TestLoRaSimToleranceDiscriminates shows that loraSimBelow is not
// trivially wide: at 1000 nodes, meshsim with its default path loss
// (PL(d0) kept below 40 m) or with the receiver locked on the first frame
// (no later capture) is further below LoRaSim than loraSimBelow.
func TestLoRaSimToleranceDiscriminates(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("runs 64,000 frames in one goroutine (skipped with -short and -race)")
	}
	const n, seeds = 1000, 4
	want := mean(loraSimRuns(t, loraSimCSV)[[2]int{0, n}])
	for _, c := range []struct {
		name string
		opts []Option
	}{
		{"default path loss", []Option{WithLaterCapture()}},
		{"locked receiver", []Option{WithModel(loraSimModel())}},
	} {
		ders := make([]float64, seeds)
		for s := range ders {
			ders[s] = borDER(t, n, 8, loraSimParams[0], uint64(n+s), c.opts...)
		}
		got := mean(ders)
		t.Logf("%s: DER %.3f, LoRaSim %.3f", c.name, got, want)
		if got >= want-loraSimBelow {
			t.Errorf("%s: DER %.3f is within %.3f of LoRaSim's %.3f: the tolerance does not tell the models apart", c.name, got, loraSimBelow, want)
		}
	}
}
