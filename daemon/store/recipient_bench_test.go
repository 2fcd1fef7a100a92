//go:build unix

package store

import (
	"crypto/rand"
	"encoding/hex"
	"syscall"
	"testing"
	"time"

	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/routing"
)

// BenchmarkRecipientBatches writes what a recipient's store writes in
// BenchmarkDirectMessages (package daemon), without the network and the
// engine: batches of 32 deliveries of 256 bytes, each with its delivered
// record (a random envelope key, made before the timer starts), two batches in flight as the node loop
// pipelines them. An op is one delivered message. cpu-µs/msg is the
// process's CPU over the timed part (the store's goroutines and badger's
// background work: memtable flushes, compactions), which is what badger's
// options and the store's log change:
//
//	go test -run '^$' -bench RecipientBatches -benchtime 100000x ./daemon/store
func BenchmarkRecipientBatches(b *testing.B) {
	s, err := Open(b.TempDir(), quiet)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	body := make([]byte, 256)
	batch := func(n int) *routing.Ready {
		rd := &routing.Ready{}
		for range n {
			var k protocol.EnvelopeKey
			rand.Read(k[:])
			d := routing.Delivery{Key: k, Type: protocol.TypeMessage, Body: body, Created: 1, Expires: 1 << 30}
			rand.Read(d.ID[:])
			rd.Deliveries = append(rd.Deliveries, d)
			rd.Persist = append(rd.Persist, routing.Record{Key: "d/" + hex.EncodeToString(k[:]), Value: make([]byte, 38)})
		}
		return rd
	}
	var batches []*routing.Ready
	for done := 0; done < b.N; done += 32 {
		batches = append(batches, batch(min(32, b.N-done)))
	}
	before := s.ApplierStats()
	cpu0 := rusageCPU()
	b.ResetTimer()
	var inflight []<-chan error
	for _, rd := range batches {
		_, ch, err := s.ApplyAsync(rd)
		if err != nil {
			b.Fatal(err)
		}
		inflight = append(inflight, ch)
		if len(inflight) == 2 {
			if err := <-inflight[0]; err != nil {
				b.Fatal(err)
			}
			inflight = inflight[1:]
		}
	}
	for _, ch := range inflight {
		if err := <-ch; err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64((rusageCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/msg")
	st := s.ApplierStats()
	b.ReportMetric(float64(st.OpsOut-before.OpsOut)/float64(b.N), "badger-ops/msg")
}

// rusageCPU is the process's user and system CPU time so far.
func rusageCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
