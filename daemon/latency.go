package daemon

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/routing"
)

// maxLatencyPending bounds the send times kept while waiting for receipts:
// a node that sends faster than receipts come back (or never get any)
// forgets its oldest sends rather than growing without end.
const maxLatencyPending = 4096

// latencyBuckets run from 10 ms (a neighbour on IP) to about 6 h (a
// message that waited in custody for a LoRa path): doubling 22 times
// from 10 ms ends at 0.01*2^21 s = 5.8 h.
var latencyBuckets = prometheus.ExponentialBuckets(0.01, 2, 22)

// deliveryLatency measures, for the node's own messages, the time from
// the engine accepting a send to the recipient's receipt arriving, and the
// hop count that receipt reports. It lives on the node loop (pending is
// not locked); the histograms are safe to collect from any goroutine.
type deliveryLatency struct {
	// pending holds each send's acceptance as the time since epoch (the
	// first event's time): no pointers for the collector to scan, and
	// smaller map slots than a time.Time's.
	pending map[protocol.MessageID]time.Duration
	epoch   time.Time
	started bool // epoch is set
	// order holds the pending IDs in the order they were accepted (and
	// IDs already settled, skipped when met), so that forgetting the
	// oldest is not a scan of the map: with the map full, that scan ran
	// once per send (docs/performance.md).
	order   []protocol.MessageID
	seconds prometheus.Histogram
	hops    prometheus.Histogram
}

func newDeliveryLatency() *deliveryLatency {
	return &deliveryLatency{
		pending: make(map[protocol.MessageID]time.Duration, maxLatencyPending),
		seconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "meshd_delivery_latency_seconds",
			Help:    "time from a send being accepted to the recipient's delivery receipt arriving, for this node's own messages",
			Buckets: latencyBuckets,
		}),
		hops: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "meshd_delivery_hops",
			Help:    "hops between this node and the recipient of its delivered messages (1: a neighbour), as the receipt reports",
			Buckets: prometheus.LinearBuckets(1, 1, 16),
		}),
	}
}

// note follows one engine event. Messages to this node itself are
// delivered at once and would only drag the figures towards zero; a
// receipt whose send time is unknown (sent before a restart, or
// forgotten) is not measured.
func (d *deliveryLatency) note(ev routing.Event, now time.Time) {
	if d == nil { // a Node built by hand in a test
		return
	}
	if !d.started {
		d.epoch, d.started = now, true
	}
	switch ev.Kind {
	case routing.EventAccepted:
		if ev.Status == routing.StatusLocal {
			return
		}
		if _, ok := d.pending[ev.ID]; !ok {
			if len(d.pending) >= maxLatencyPending {
				d.forgetOldest()
			}
			d.remember(ev.ID)
		}
		d.pending[ev.ID] = now.Sub(d.epoch)
	case routing.EventDelivered:
		start, ok := d.pending[ev.ID]
		if !ok {
			return
		}
		delete(d.pending, ev.ID)
		d.seconds.Observe(max(now.Sub(d.epoch)-start, 0).Seconds())
		d.hops.Observe(float64(ev.Hops) + 1)
	case routing.EventExpired, routing.EventCancelled:
		delete(d.pending, ev.ID)
	}
}

// forgetOldest drops the earliest send still pending.
func (d *deliveryLatency) forgetOldest() {
	for len(d.order) > 0 {
		id := d.order[0]
		d.order = d.order[1:]
		if _, ok := d.pending[id]; ok {
			delete(d.pending, id)
			return
		}
	}
}

// remember appends a newly pending ID to order, first dropping the
// settled IDs from it once it holds twice the bound.
func (d *deliveryLatency) remember(id protocol.MessageID) {
	if len(d.order) >= 2*maxLatencyPending {
		kept := make([]protocol.MessageID, 0, len(d.pending)+1)
		for _, o := range d.order {
			if _, ok := d.pending[o]; ok {
				kept = append(kept, o)
			}
		}
		d.order = kept
	}
	d.order = append(d.order, id)
}

// Describe implements prometheus.Collector.
func (d *deliveryLatency) Describe(ch chan<- *prometheus.Desc) {
	d.seconds.Describe(ch)
	d.hops.Describe(ch)
}

// Collect implements prometheus.Collector.
func (d *deliveryLatency) Collect(ch chan<- prometheus.Metric) {
	d.seconds.Collect(ch)
	d.hops.Collect(ch)
}
