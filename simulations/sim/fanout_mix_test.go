package sim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// mixed is a scenario that combines, in one run, what the fan-out must
// keep identical with two workers: nodes on their own spreading factors
// and frequencies, churn (crashes and restarts mid-frame), IP links next
// to the radio, the eu868 duty cycle, fading, the error curve and capture
// rules; %s is the carrier sense, %s the interference model and %s the
// inter-SF rejection (the medium's scan and rivals paths).
const mixed = `name = "mixed"
seed = %d
duration = "12m"
[radio]
sf = 8
frequency_hz = 868100000
duty_cycle = "eu868"
carrier_sense = "%s"
[radio.reception]
fading = "rayleigh"
error_model = "curve"
interference = "%s"
sf_rejection = "%s"
%s
[engine]
announce_interval = "4m"
[traffic]
rate = 0.004
broadcast_rate = 0.003
start = "30s"
[churn]
mtbf = "5m"
mttr = "1m"
[[topology]]
kind = "random"
n = 110
prefix = "n"
link = "lora"
width = 800.0
height = 800.0
[[topology]]
kind = "random"
n = 16
prefix = "i"
link = "ip"
width = 800.0
height = 800.0
reach = 350.0
`

// mixedNodes are radio nodes on three spreading factors and two
// frequencies.
func mixedNodes() string {
	var b strings.Builder
	for i := range 18 {
		fmt.Fprintf(&b, "[[nodes]]\nname = \"c%d\"\nlora = true\nx = %.1f\ny = %.1f\nsf = %d\nfrequency_hz = %d\n",
			i, float64(i*43%800), float64(i*97%800), 7+i%3, 868100000+200000*(i%2))
	}
	return b.String()
}

// TestWorkersSameRunMixed: TestWorkersSameRun on scenarios that mix
// channels, spreading factors, churn, IP links, carrier sense (csma, cad,
// off), fading, the error curve, capture rules and both interference
// models, over several seeds.
func TestWorkersSameRunMixed(t *testing.T) {
	cases := []struct {
		seed                     int
		cs, interf, rej, capture string
	}{
		{1, "cad", "sum", "croce", "later_capture = true\nturnaround = \"1ms\""},
		{2, "csma", "single", "orthogonal", "capture_window_symbols = 3.0"},
		{3, "off", "single", "orthogonal", ""},
		{4, "csma", "single", "goursaud", "later_capture = true"},
		{5, "cad", "sum", "orthogonal", ""},
	}
	for _, c := range cases {
		name := fmt.Sprintf("%d-%s-%s-%s", c.seed, c.cs, c.interf, c.rej)
		t.Run(name, func(t *testing.T) {
			doc := fmt.Sprintf(mixed, c.seed, c.cs, c.interf, c.rej, c.capture) + mixedNodes()
			var tr1, tr2 bytes.Buffer
			one := runWorkers(t, parse(t, doc), 1, &tr1)
			two := runWorkers(t, parse(t, doc), 2, &tr2)
			a, b := one.Summary(), two.Summary()
			if a.TraceSHA256 != b.TraceSHA256 || !bytes.Equal(tr1.Bytes(), tr2.Bytes()) {
				t.Fatalf("trace %s with one worker, %s with two", a.TraceSHA256, b.TraceSHA256)
			}
			ja, _ := json.Marshal(a)
			jb, _ := json.Marshal(b)
			if !bytes.Equal(ja, jb) {
				t.Fatalf("summaries differ:\n%s\n%s", ja, jb)
			}
			frames, jobs, _, _, _ := two.FanOutStats()
			if frames < 1000 || jobs <= frames {
				t.Fatalf("%d frames, %d jobs through the fan-out", frames, jobs)
			}
			if a.TraceEvents < 1000 {
				t.Fatalf("only %d trace events", a.TraceEvents)
			}
		})
	}
}
