package protocol

import "testing"

// BenchmarkRatchet3 is one step of a schedule-3 chain: what each end
// spends on the keys of every data frame.
func BenchmarkRatchet3(b *testing.B) {
	var ck [32]byte
	b.ReportAllocs()
	for b.Loop() {
		_, ck = ratchet3(ck)
	}
}
