package daemon

import (
	"context"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"meshd.dev/meshd/daemon/store"
	"meshd.dev/meshd/rpcapi"
)

// BenchmarkDirectMessages measures end-to-end messages per second between
// two daemons (in one process) on loopback: 256-byte payloads handed to
// node A's Send by 64 concurrent callers, each answered after A's custody
// record is synced, sealed to B, carried by the libp2p link, verified,
// opened and written (synced) to B's inbox. An op is one message delivered
// into B's inbox. Compare with transports/p2p BenchmarkRawStream (the same
// 256 bytes over a bare libp2p stream) in the same run:
//
//	go test -run '^$' -bench 'DirectMessages|RawStream' -benchtime 2000x ./daemon ./transports/p2p
//
// cpu-µs/msg is the process's CPU time (both daemons) over the timed
// part, per message: the process's total also counts the set-up and the
// two stops.
//
// It measures what the daemon can carry, so B's per-peer inbound limits
// are raised out of the way (benchLimits): with the defaults
// (limits.peer_frame_rate 20,000 frames/s, burst 40,000) a run longer than
// about two seconds is paced to 20,000 messages a second.
func BenchmarkDirectMessages(b *testing.B) {
	a, bn, stop := twoNodesWith(b, benchLimits)
	defer stop()
	benchMessages(b, a, bn)
}

// benchLimits raises a node's per-peer inbound limits above what two
// daemons on one machine can send each other.
func benchLimits(c *Config) {
	c.Limits.PeerFrameRate, c.Limits.PeerFrameBurst, c.Limits.PeerByteRate = 1e6, 1e6, 1<<30
}

// BenchmarkDirectMessagesTCP is BenchmarkDirectMessages over a plain TCP
// link (transports/tcp) instead of libp2p.
//
//	go test -run '^$' -bench 'DirectMessages' -benchtime 2000x ./daemon
func BenchmarkDirectMessagesTCP(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, bn, stop := tcpPair(b, ctx)
	defer stop()
	benchMessages(b, a, bn)
}

// benchMessages sends b.N messages from a to bn (see
// BenchmarkDirectMessages).
func benchMessages(b *testing.B, a, bn *Node) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	sub := bn.hub.add(b.N + 1024) // room for every event: none may be dropped
	defer bn.hub.remove(sub)
	to := bn.id.Address().String()
	payload := make([]byte, 256)
	// Warm up: the first message fetches nothing (the link handshake gave
	// B's keys) but builds the route.
	if _, err := a.Send(ctx, rpcapi.SendParams{To: to, Payload: payload}); err != nil {
		b.Fatal(err)
	}
	waitKind(b, ctx, sub.ch, rpcapi.EventMessage)

	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	before := [2]store.ApplierStats{a.st.ApplierStats(), bn.st.ApplierStats()}
	cpu0, cpuOK := processCPU()
	b.ResetTimer()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			// In a CPU profile: node=callers (twoNodesWith labels A and B).
			pprof.SetGoroutineLabels(pprof.WithLabels(ctx, pprof.Labels("node", "callers")))
			for next.Add(1) <= int64(b.N) {
				if _, err := a.Send(ctx, rpcapi.SendParams{To: to, Payload: payload}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	for got := 0; got < b.N; {
		select {
		case ev := <-sub.ch:
			if ev.Kind == rpcapi.EventMessage {
				got++
			}
		case <-ctx.Done():
			b.Fatalf("%d of %d messages delivered", got, b.N)
		}
	}
	b.StopTimer()
	if cpu1, ok := processCPU(); ok && cpuOK {
		// Both daemons' CPU while the messages went, set-up and
		// shutdown left out.
		b.ReportMetric(float64((cpu1-cpu0).Microseconds())/float64(b.N), "cpu-µs/msg")
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	reportApplier(b, before, a, bn)
}

// reportApplier reports what the store's write-ahead log applier wrote
// to badger per message, for the sender and the receiver together: the
// writes the records held (ops-in), the writes badger got after merging
// per key (badger-ops), their bytes, and the records per apply.
func reportApplier(b *testing.B, before [2]store.ApplierStats, a, bn *Node) {
	var d store.ApplierStats
	for i, st := range []store.ApplierStats{a.st.ApplierStats(), bn.st.ApplierStats()} {
		d.Applies += st.Applies - before[i].Applies
		d.Records += st.Records - before[i].Records
		d.OpsIn += st.OpsIn - before[i].OpsIn
		d.OpsOut += st.OpsOut - before[i].OpsOut
		d.BytesOut += st.BytesOut - before[i].BytesOut
	}
	n := float64(b.N)
	b.ReportMetric(float64(d.OpsIn)/n, "ops-in/msg")
	b.ReportMetric(float64(d.OpsOut)/n, "badger-ops/msg")
	b.ReportMetric(float64(d.BytesOut)/n, "badger-B/msg")
	if d.Applies > 0 {
		b.ReportMetric(float64(d.Records)/float64(d.Applies), "recs/apply")
	}
}

// BenchmarkNodeInfoSocket measures node.info over the unix socket against
// the real daemon (Main, as meshd runs), with 1 and 4 client connections,
// reporting requests per second and the 99th percentile latency.
//
//	go test -run '^$' -bench NodeInfoSocket -benchtime 3s ./daemon
func BenchmarkNodeInfoSocket(b *testing.B) {
	for _, conns := range []int{1, 4} {
		b.Run(map[int]string{1: "conns=1", 4: "conns=4"}[conns], func(b *testing.B) {
			cfg := testConfig(b)
			stop := runMain(b, cfg)
			defer stop()
			ctx := context.Background()
			clients := make([]*rpcapi.Client, conns)
			for i := range clients {
				c, err := rpcapi.DialDataDir(ctx, cfg.DataDir)
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				clients[i] = c
			}
			lat := make([][]time.Duration, conns)
			var next atomic.Int64
			b.ResetTimer()
			var wg sync.WaitGroup
			for i, c := range clients {
				wg.Go(func() {
					for next.Add(1) <= int64(b.N) {
						t0 := time.Now()
						if _, err := c.Info(ctx); err != nil {
							b.Error(err)
							return
						}
						lat[i] = append(lat[i], time.Since(t0))
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			all := slices.Concat(lat...)
			slices.Sort(all)
			if len(all) > 0 {
				b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		})
	}
}
