package routing

import (
	"runtime"
	"testing"
)

// BenchmarkDeliveredMemory reports the heap one delivered-set entry takes
// (key, entry, insertion order), over 200,000 entries.
func BenchmarkDeliveredMemory(b *testing.B) {
	const n = 200_000
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		d := newDeliveredSet(1 << 30)
		for i := range n {
			var k envKey
			k[0], k[1], k[2] = byte(i), byte(i>>8), byte(i>>16)
			d.add(deliveredRef{k: k, order: uint64(i + 1)}, deliveredEntry{expires: 1})
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/n, "B/entry")
		runtime.KeepAlive(d)
	}
}
