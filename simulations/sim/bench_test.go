package sim

import (
	"testing"
)

// BenchmarkQuickstart runs the quickstart scenario (one simulated hour).
func BenchmarkQuickstart(b *testing.B) {
	sc, err := Load(quickstart, nil)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		s, err := New(sc, nil)
		if err != nil {
			b.Fatal(err)
		}
		s.Run(nil)
	}
}

// BenchmarkLoRa1000 runs 1,000 radio nodes (SF9, 6 km x 6 km) for 10
// simulated minutes without traffic: routing alone.
func BenchmarkLoRa1000(b *testing.B) {
	doc := `seed = 1
duration = "10m"
[radio]
sf = 9
frequency_hz = 869525000
[[topology]]
kind = "random"
n = 1000
prefix = "n"
link = "lora"
width = 6000.0
height = 6000.0
[traffic]
rate = 0.0005
start = "1m"
`
	sc, err := Parse([]byte(doc), nil)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		s, err := New(sc, nil)
		if err != nil {
			b.Fatal(err)
		}
		s.Run(nil)
		b.ReportMetric(float64(s.events), "events/op")
	}
}
