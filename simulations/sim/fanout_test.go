package sim

import (
	"bytes"
	"encoding/json"
	"testing"
)

// busy is a dense corner of scale10k.toml: 300 radio nodes, about nine
// neighbours each, one broadcast and one unicast message per node per 10
// minutes, so that frames reach several receivers at once and the engines
// share the caches while they run on two goroutines.
const busy = `name = "busy"
seed = 7
duration = "6m"
[radio]
sf = 9
frequency_hz = 869525000
duty_cycle = "eu868"
[traffic]
rate = 0.00166667
broadcast_rate = 0.00166667
start = "1m"
[[topology]]
kind = "random"
n = 300
prefix = "n"
link = "lora"
width = 1600.0
height = 1600.0
`

// TestWorkersSameRun: a run with two workers (the engines' Steps of each
// frame on two goroutines, fanout.go) is the run with one, byte for byte:
// the same trace, summary and cache counts, on scenarios with radio,
// IP, dynamics, churn, channels, baselines and FAPP. Run it under -race
// too: go test -race -run TestWorkersSameRun ./simulations/sim
func TestWorkersSameRun(t *testing.T) {
	cases := []struct {
		name string
		sc   func() *Scenario
	}{
		{"busy", func() *Scenario { return parse(t, busy) }},
		{"quickstart", func() *Scenario { return load(t, quickstart) }},
		{"small", func() *Scenario { return load(t, "testdata/small.toml") }},
		{"restart", func() *Scenario { return load(t, "testdata/restart.toml") }},
		{"partition", func() *Scenario { return load(t, "testdata/partition.toml") }},
		{"dutycycle", func() *Scenario { return load(t, "testdata/dutycycle.toml") }},
		{"flood100", func() *Scenario { return load(t, "../scenarios/flood100.toml", "duration=15m") }},
		{"flood100-naive", func() *Scenario {
			return load(t, "../scenarios/flood100.toml", "duration=15m", "engine.flood_policy=\"naive\"", "radio.carrier_sense=\"off\"")
		}},
		{"baselines50", func() *Scenario { return load(t, "../scenarios/baselines50.toml", "duration=20m") }},
		{"bridged", func() *Scenario { return load(t, "../scenarios/bridged_channels.toml", "duration=10m") }},
		{"fapp_city", func() *Scenario { return load(t, "../scenarios/fapp_city.toml", "duration=10m") }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var tr1, tr2 bytes.Buffer
			one := runWorkers(t, c.sc(), 1, &tr1)
			two := runWorkers(t, c.sc(), 2, &tr2)
			a, b := one.Summary(), two.Summary()
			if a.TraceSHA256 != b.TraceSHA256 || !bytes.Equal(tr1.Bytes(), tr2.Bytes()) {
				t.Fatalf("trace %s with one worker, %s with two", a.TraceSHA256, b.TraceSHA256)
			}
			ja, _ := json.Marshal(a)
			jb, _ := json.Marshal(b)
			if !bytes.Equal(ja, jb) {
				t.Fatalf("summaries differ:\n%s\n%s", ja, jb)
			}
			h1, a1 := one.VerifyCacheStats()
			h2, a2 := two.VerifyCacheStats()
			if h1 != h2 || a1 != a2 {
				t.Fatalf("verify cache %d hits %d adds with one worker, %d and %d with two", h1, a1, h2, a2)
			}
			if a.TraceEvents < 100 {
				t.Fatalf("only %d trace events", a.TraceEvents)
			}
		})
	}
}

func runWorkers(t *testing.T, sc *Scenario, workers int, trace *bytes.Buffer) *Sim {
	t.Helper()
	s, err := NewWith(sc, Options{Trace: NewTracer(trace), Workers: workers})
	if err != nil {
		t.Fatal(err)
	}
	s.fanKeep = true // every frame through the fan-out, however busy the machine
	s.Run(nil)
	return s
}

// TestWorkersFanOut: with two workers the busy scenario's frames do go
// through the fan-out, with several Steps each (else TestWorkersSameRun
// would prove nothing). Which goroutine runs them is timing, logged only.
func TestWorkersFanOut(t *testing.T) {
	s, err := NewWith(parse(t, busy), Options{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	s.fanKeep = true
	s.Run(nil)
	frames, jobs, helper, stalls, idles := s.FanOutStats()
	if frames < 10000 || jobs <= 2*frames {
		t.Fatalf("%d frames, %d jobs through the fan-out (%d stalls, %d idles)", frames, jobs, stalls, idles)
	}
	t.Logf("%d frames, %d jobs, %d run by the helper, %d stalls, %d idles", frames, jobs, helper, stalls, idles)
}
