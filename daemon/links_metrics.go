package daemon

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"meshd.dev/meshd/routing"
	"meshd.dev/meshd/transports/tcp"
)

// linkTotals keeps the traffic of links that went down, per kind, so that
// the per-kind counters stay monotonic as links come and go.
type linkTotals struct {
	framesIn, framesOut, bytesIn, bytesOut atomic.Uint64
}

// retire adds a link's final counters to its kind's totals (on the loop,
// when the link goes down).
func (n *Node) retire(l *link) {
	t := &n.totals[l.kind]
	s := n.linkOf(l)
	t.framesIn.Add(s.FramesIn)
	t.framesOut.Add(s.FramesOut)
	t.bytesIn.Add(s.BytesIn)
	t.bytesOut.Add(s.BytesOut)
}

var linkKinds = []routing.LinkKind{routing.LinkIP, routing.LinkTCP, routing.LinkLoRa}

// linkCollector exports per-kind link metrics: links up, traffic, queue
// depth, airtime, and the TCP transport's handshake counters.
type linkCollector struct {
	n                                 *Node
	up, framesIn, framesOut, bytesIn  *prometheus.Desc
	bytesOut, queue, airUsed, airLeft *prometheus.Desc
	tcpFailures, tcpRefused           *prometheus.Desc
}

func newLinkCollector(n *Node) *linkCollector {
	kind := []string{"kind"}
	d := func(name, help string, labels []string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &linkCollector{
		n:           n,
		up:          d("meshd_links_up", "links up, by kind (ip: libp2p, tcp, lora)", kind),
		framesIn:    d("meshd_link_frames_in_total", "frames received on links, by kind", kind),
		framesOut:   d("meshd_link_frames_out_total", "frames sent on links, by kind", kind),
		bytesIn:     d("meshd_link_bytes_in_total", "bytes received on links, by kind", kind),
		bytesOut:    d("meshd_link_bytes_out_total", "bytes sent on links, by kind", kind),
		queue:       d("meshd_link_queue_bytes", "bytes waiting in the links' own queues, by kind", kind),
		airUsed:     d("meshd_link_airtime_used_seconds", "airtime the radio links used in the last hour, by kind", kind),
		airLeft:     d("meshd_link_airtime_left_seconds", "airtime the radio links' duty cycle still allows this hour, by kind", kind),
		tcpFailures: d("meshd_tcp_handshake_failures_total", "TCP link handshakes that failed (either direction)", nil),
		tcpRefused:  d("meshd_tcp_connections_refused_total", "inbound TCP connections closed because too many handshakes were under way or too many inbound links were up", nil),
	}
}

// Describe implements prometheus.Collector.
func (c *linkCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.up, c.framesIn, c.framesOut, c.bytesIn, c.bytesOut, c.queue, c.airUsed, c.airLeft, c.tcpFailures, c.tcpRefused} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *linkCollector) Collect(ch chan<- prometheus.Metric) {
	type sums struct {
		up, framesIn, framesOut, bytesIn, bytesOut, queue float64
		airUsed, airLeft                                  float64
	}
	by := map[routing.LinkKind]*sums{}
	for _, k := range linkKinds {
		t := &c.n.totals[k]
		by[k] = &sums{framesIn: float64(t.framesIn.Load()), framesOut: float64(t.framesOut.Load()),
			bytesIn: float64(t.bytesIn.Load()), bytesOut: float64(t.bytesOut.Load())}
	}
	for _, l := range *c.n.linkList.Load() {
		s := by[l.kind]
		if s == nil {
			continue
		}
		r := c.n.linkOf(l)
		s.up++
		s.framesIn += float64(r.FramesIn)
		s.framesOut += float64(r.FramesOut)
		s.bytesIn += float64(r.BytesIn)
		s.bytesOut += float64(r.BytesOut)
		s.queue += float64(r.QueueBytes)
		if r.Radio != nil {
			s.airUsed += float64(r.Radio.AirtimeUsedMS) / 1000
			s.airLeft += float64(r.Radio.AirtimeLeftMS) / 1000
		}
	}
	for _, k := range linkKinds {
		s, lv := by[k], k.String()
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, s.up, lv)
		ch <- prometheus.MustNewConstMetric(c.framesIn, prometheus.CounterValue, s.framesIn, lv)
		ch <- prometheus.MustNewConstMetric(c.framesOut, prometheus.CounterValue, s.framesOut, lv)
		ch <- prometheus.MustNewConstMetric(c.bytesIn, prometheus.CounterValue, s.bytesIn, lv)
		ch <- prometheus.MustNewConstMetric(c.bytesOut, prometheus.CounterValue, s.bytesOut, lv)
		ch <- prometheus.MustNewConstMetric(c.queue, prometheus.GaugeValue, s.queue, lv)
		if k == routing.LinkLoRa {
			ch <- prometheus.MustNewConstMetric(c.airUsed, prometheus.GaugeValue, s.airUsed, lv)
			ch <- prometheus.MustNewConstMetric(c.airLeft, prometheus.GaugeValue, s.airLeft, lv)
		}
	}
	var st tcp.Stats
	for _, t := range c.n.transports {
		if tt, ok := t.(*tcp.Transport); ok {
			st = tt.Stats()
		}
	}
	ch <- prometheus.MustNewConstMetric(c.tcpFailures, prometheus.CounterValue, float64(st.HandshakeFailures))
	ch <- prometheus.MustNewConstMetric(c.tcpRefused, prometheus.CounterValue, float64(st.Refused))
}
