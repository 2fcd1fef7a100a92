package daemon

import "github.com/prometheus/client_golang/prometheus"

// guardCollector exports the guard's counters (guard.go).
type guardCollector struct {
	g                                               *guard
	refused, bytes, disconnects, denied, handshakes *prometheus.Desc
	addrCooled, paced, pacedSeconds                 *prometheus.Desc
}

func newGuardCollector(g *guard) *guardCollector {
	return &guardCollector{g: g,
		refused:      prometheus.NewDesc("meshd_inbound_frames_refused_total", "frames from peers dropped before the node loop, by reason (size, kind; invalid: refused by the routing engine as malformed or forged)", []string{"reason"}, nil),
		bytes:        prometheus.NewDesc("meshd_inbound_bytes_refused_total", "bytes of the frames dropped before the node loop", nil, nil),
		disconnects:  prometheus.NewDesc("meshd_peers_cooled_down_total", "peers disconnected and cooled down for breaking the inbound limits", nil, nil),
		denied:       prometheus.NewDesc("meshd_peers_refused_total", "connections, streams and links refused, by reason (cooling: a peer cooling down; denied: access lists; addr_rate, addr_cooling: inbound libp2p connections refused before the security handshake by their remote address, over its rate or cooling down)", []string{"reason"}, nil),
		handshakes:   prometheus.NewDesc("meshd_link_handshake_failures_total", "link handshakes peers failed (libp2p and TCP)", nil, nil),
		paced:        prometheus.NewDesc("meshd_inbound_frames_paced_total", "frames from peers over their rate (limits.peer_frame_rate, peer_byte_rate) that their link's reader waited for instead of reading on", nil, nil),
		pacedSeconds: prometheus.NewDesc("meshd_inbound_paced_seconds_total", "time links' readers waited pacing peers over their rate", nil, nil),
		addrCooled:   prometheus.NewDesc("meshd_addresses_cooled_down_total", "remote addresses (IPv4, IPv6 /64) cooled down for a minute because peers from them were cut off or came back while cooling down", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *guardCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.refused, c.bytes, c.disconnects, c.denied, c.handshakes, c.addrCooled, c.paced, c.pacedSeconds} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *guardCollector) Collect(ch chan<- prometheus.Metric) {
	s := &c.g.stats
	for i, name := range refusalNames {
		ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, float64(s.framesRefused[i].Load()), name)
	}
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.CounterValue, float64(s.bytesRefused.Load()))
	ch <- prometheus.MustNewConstMetric(c.disconnects, prometheus.CounterValue, float64(s.disconnects.Load()))
	ch <- prometheus.MustNewConstMetric(c.denied, prometheus.CounterValue, float64(s.refusedCooling.Load()), "cooling")
	ch <- prometheus.MustNewConstMetric(c.denied, prometheus.CounterValue, float64(s.refusedDenied.Load()), "denied")
	ch <- prometheus.MustNewConstMetric(c.handshakes, prometheus.CounterValue, float64(s.handshakeFailures.Load()))
	ch <- prometheus.MustNewConstMetric(c.denied, prometheus.CounterValue, float64(s.refusedAddrRate.Load()), "addr_rate")
	ch <- prometheus.MustNewConstMetric(c.denied, prometheus.CounterValue, float64(s.refusedAddrCooling.Load()), "addr_cooling")
	ch <- prometheus.MustNewConstMetric(c.addrCooled, prometheus.CounterValue, float64(s.addrCoolDowns.Load()))
	ch <- prometheus.MustNewConstMetric(c.paced, prometheus.CounterValue, float64(s.framesPaced.Load()))
	ch <- prometheus.MustNewConstMetric(c.pacedSeconds, prometheus.CounterValue, float64(s.pacedNanos.Load())/1e9)
}
