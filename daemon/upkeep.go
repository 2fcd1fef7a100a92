package daemon

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"meshd.dev/meshd/daemon/store"
	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/rpcapi"
)

// upkeepStats are the store upkeep's figures, for metrics.
type upkeepStats struct {
	gcRuns, gcRewrites, gcReclaimed, gcErrors atomic.Uint64
	// diskLow is set while the free space is below store.min_free;
	// refused counts what the node did not take meanwhile (sends and
	// envelopes from neighbours).
	diskLow atomic.Bool
	refused atomic.Uint64
}

// runUpkeep runs the store's value log GC and checks the free space every
// store.gc_interval until the node stops. The GC runs beside the node loop
// (badger allows it during writes); Close waits for it before closing the
// store.
func (n *Node) runUpkeep() {
	t := time.NewTicker(time.Duration(n.cfg.Store.GCInterval))
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		n.upkeep()
	}
}

// upkeep is one round of runUpkeep.
func (n *Node) upkeep() {
	n.checkDisk()
	res, err := n.st.GC()
	n.upkeepStats.gcRuns.Add(1)
	if err != nil {
		if !errors.Is(err, store.ErrClosed) {
			n.upkeepStats.gcErrors.Add(1)
			n.log.Warn("store upkeep: value log GC failed", "err", err)
		}
		return
	}
	n.upkeepStats.gcRewrites.Add(uint64(res.Rewrites))
	n.upkeepStats.gcReclaimed.Add(uint64(res.Reclaimed()))
	n.log.Debug("store upkeep", "vlog_rewrites", res.Rewrites, "bytes_before", res.Before, "bytes_after", res.After)
}

// checkDisk asks the store whether the free space is above the reserve,
// remembers the answer for the frame path and logs when it changes. It
// returns the store's error (wrapping store.ErrDiskFull) or nil.
func (n *Node) checkDisk() error {
	err := n.st.CheckSpace()
	low := errors.Is(err, store.ErrDiskFull)
	if low != n.upkeepStats.diskLow.Swap(low) {
		if low {
			n.log.Error("disk full: taking no new custody until space is freed (msg.send refused, envelopes from neighbours dropped)", "err", err)
		} else {
			n.log.Info("disk space back above the reserve: taking custody again")
		}
	}
	if err != nil && !low {
		// The probe itself failed: say so, but do not refuse on a guess.
		n.log.Warn("store upkeep: cannot read the free disk space", "err", err)
		return nil
	}
	return err
}

// refuseSend returns an error wrapping rpcapi.ErrDiskFull when the disk
// is below its reserve; msg.send calls it before the engine sees the
// message, so a refused send leaves nothing behind. A probe that found
// room answers for the sends of the next sendProbeReuse.
func (n *Node) refuseSend() error {
	now := time.Since(probeEpoch)
	if !n.upkeepStats.diskLow.Load() && !n.sendSpace.mustProbe(now) {
		return nil
	}
	err := n.checkDisk()
	n.sendSpace.probed(err == nil, now)
	if err != nil {
		n.upkeepStats.refused.Add(1)
		return fmt.Errorf("%w: the node takes no new messages until space is freed (%v)", rpcapi.ErrDiskFull, err)
	}
	return nil
}

// sendProbeReuse is how long a free-space probe that found room answers
// for the sends after it. Under load a statfs per msg.send cost about 5 %
// of the node's CPU (docs/performance.md); reusing a good answer for a
// millisecond leaves one probe per millisecond, while a send after a
// pause, and every send once the disk was found low, still probes.
const sendProbeReuse = time.Millisecond

// sendSpace remembers when msg.send's last probe found room (monotonic
// nanoseconds since probeEpoch; 0: never, or the disk was low). API
// goroutines share it.
type sendSpace struct{ okAt atomic.Int64 }

// probeEpoch is the origin of sendSpace's monotonic stamps.
var probeEpoch = time.Now()

// fresh reports whether a probe that found room answers for a send at
// now (time since probeEpoch).
func (s *sendSpace) fresh(now time.Duration) bool {
	return freshAt(s.okAt.Load(), now)
}

// freshAt reports whether a good probe stamped at answers at now.
func freshAt(at int64, now time.Duration) bool {
	return at != 0 && now >= time.Duration(at) && now-time.Duration(at) < sendProbeReuse
}

// mustProbe reports whether a send at now probes: not while a probe that
// found room is fresh, nor when another send took the probe of a stale
// one (it moved the stamp to now: the sends meanwhile go on the last
// answer, one probe's time older), so that the callers waiting together
// make one probe, not one each.
func (s *sendSpace) mustProbe(now time.Duration) bool {
	at := s.okAt.Load()
	switch {
	case at == 0:
		return true // never probed, or the disk was low: every send probes
	case freshAt(at, now):
		return false
	}
	return s.okAt.CompareAndSwap(at, max(int64(now), 1))
}

// probed records a probe's outcome at now.
func (s *sendSpace) probed(ok bool, now time.Duration) {
	if !ok {
		s.okAt.Store(0)
		return
	}
	s.okAt.Store(max(int64(now), 1))
}

// refuseFrame reports whether an incoming frame is dropped because the
// disk is below its reserve: frames that can put a message into custody
// (envelopes, and the wrappers and fragments that carry them). Receipts,
// acks and routing frames still pass: they free space or cost none. The
// sender keeps custody of what was dropped and retries. Such frames
// recheck the free space at most once a second (a node filled by its
// neighbours alone notices within a second, and a flood costs one statfs
// a second, not one a frame). Loop only.
func (n *Node) refuseFrame(frame []byte) bool {
	k, err := protocol.PeekKind(frame)
	if err != nil {
		return false // the engine refuses it with the reason
	}
	switch k {
	case protocol.KindEnvelope, protocol.KindHop, protocol.KindFragment, protocol.KindCustodyOffer,
		protocol.KindLiteInit, protocol.KindLiteData:
	default:
		return false
	}
	if now := n.now(); now.Sub(n.lastDiskCheck) >= time.Second || now.Before(n.lastDiskCheck) {
		n.lastDiskCheck = now
		n.checkDisk()
	}
	if !n.upkeepStats.diskLow.Load() {
		return false
	}
	n.upkeepStats.refused.Add(1)
	return true
}

// Store upkeep metrics.
var (
	upkeepGCRuns = prometheus.NewDesc("meshd_store_gc_runs_total",
		"store upkeep rounds (value log GC and free-space check, every store.gc_interval)", nil, nil)
	upkeepGCRewrites = prometheus.NewDesc("meshd_store_gc_vlog_rewrites_total",
		"badger value log files the GC rewrote", nil, nil)
	upkeepGCReclaimed = prometheus.NewDesc("meshd_store_gc_reclaimed_bytes_total",
		"bytes the store's files shrank by across GC rounds", nil, nil)
	upkeepGCErrors = prometheus.NewDesc("meshd_store_gc_errors_total",
		"store upkeep rounds that failed (logged)", nil, nil)
	upkeepDiskLow = prometheus.NewDesc("meshd_store_disk_low",
		"1 while the free disk space is below store.min_free (no new custody taken)", nil, nil)
	upkeepRefused = prometheus.NewDesc("meshd_store_disk_full_refused_total",
		"sends and incoming envelopes refused because the disk was below store.min_free", nil, nil)
	upkeepDiskBytes = prometheus.NewDesc("meshd_store_disk_bytes",
		"bytes the store's files occupy on disk", nil, nil)
)

// upkeepCollector exports the upkeep figures.
type upkeepCollector struct{ n *Node }

func (c upkeepCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{upkeepGCRuns, upkeepGCRewrites, upkeepGCReclaimed, upkeepGCErrors, upkeepDiskLow, upkeepRefused, upkeepDiskBytes} {
		ch <- d
	}
}

func (c upkeepCollector) Collect(ch chan<- prometheus.Metric) {
	s := &c.n.upkeepStats
	ch <- prometheus.MustNewConstMetric(upkeepGCRuns, prometheus.CounterValue, float64(s.gcRuns.Load()))
	ch <- prometheus.MustNewConstMetric(upkeepGCRewrites, prometheus.CounterValue, float64(s.gcRewrites.Load()))
	ch <- prometheus.MustNewConstMetric(upkeepGCReclaimed, prometheus.CounterValue, float64(s.gcReclaimed.Load()))
	ch <- prometheus.MustNewConstMetric(upkeepGCErrors, prometheus.CounterValue, float64(s.gcErrors.Load()))
	low := 0.0
	if s.diskLow.Load() {
		low = 1
	}
	ch <- prometheus.MustNewConstMetric(upkeepDiskLow, prometheus.GaugeValue, low)
	ch <- prometheus.MustNewConstMetric(upkeepRefused, prometheus.CounterValue, float64(s.refused.Load()))
	if b, err := c.n.st.DiskUsage(); err == nil {
		ch <- prometheus.MustNewConstMetric(upkeepDiskBytes, prometheus.GaugeValue, float64(b))
	}
}
