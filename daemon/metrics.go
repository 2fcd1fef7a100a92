package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"meshd.dev/meshd/routing"
)

// gaugeCounters are the routing.Counters fields that go up and down.
var gaugeCounters = map[string]bool{
	"Routes": true, "CustodyCount": true, "CustodyBytes": true,
	"SeenEntries": true, "QueuedFrames": true, "QueuedBytes": true, "QueueHeldBytes": true,
	"PathRequestsPending": true,
}

// snakeCase turns a Go field name into a metric name part:
// "CustodyHandedOff" becomes "custody_handed_off".
func snakeCase(s string) string {
	var b strings.Builder
	rs := []rune(s)
	for i, r := range rs {
		if unicode.IsUpper(r) {
			if i > 0 && (unicode.IsLower(rs[i-1]) || (i+1 < len(rs) && unicode.IsLower(rs[i+1]))) {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// collector exports the node's figures as Prometheus metrics, read from
// the snapshot the node loop keeps (never from the engine itself).
type collector struct {
	n        *Node
	descs    map[string]*prometheus.Desc
	peers    *prometheus.Desc
	inbox    *prometheus.Desc
	dropped  *prometheus.Desc
	channels map[string]*prometheus.Desc
	joined   *prometheus.Desc
}

func newCollector(n *Node) *collector {
	c := &collector{n: n, descs: map[string]*prometheus.Desc{}}
	var zero routing.Counters
	zero.Each(func(name string, _ uint64) {
		metric := "meshd_routing_" + snakeCase(name)
		if !gaugeCounters[name] {
			metric += "_total"
		}
		c.descs[name] = prometheus.NewDesc(metric, "routing engine counter "+name+" (see routing.Counters)", nil, nil)
	})
	c.peers = prometheus.NewDesc("meshd_links", "meshd links up, of every kind (libp2p peers that finished the meshd handshake, TCP, LoRa; by kind: meshd_links_up)", nil, nil)
	c.dropped = prometheus.NewDesc("meshd_link_frames_dropped_total", "frames a link did not take (it went down or was replaced as they were sent); a link that cannot take more leaves them in the routing engine's queue", nil, nil)
	c.channels = map[string]*prometheus.Desc{}
	for _, m := range channelMetrics {
		c.channels[m.name] = prometheus.NewDesc(m.name, m.help, nil, nil)
	}
	c.inbox = prometheus.NewDesc("meshd_inbox_messages", "delivered messages not yet acknowledged by an app", nil, nil)
	c.joined = prometheus.NewDesc("meshd_channels_joined", "broadcast channels this node has joined", nil, nil)
	return c
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
	ch <- c.peers
	ch <- c.inbox
	ch <- c.dropped
	ch <- c.joined
	for _, d := range c.channels {
		ch <- d
	}
	ch <- fappDropped
	ch <- fappEvents
	ch <- fappIndexed
	ch <- dhtRefused
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.n.snap.Load()
	s.counters.Each(func(name string, v uint64) {
		kind := prometheus.CounterValue
		if gaugeCounters[name] {
			kind = prometheus.GaugeValue
		}
		ch <- prometheus.MustNewConstMetric(c.descs[name], kind, float64(v))
	})
	ch <- prometheus.MustNewConstMetric(c.peers, prometheus.GaugeValue, float64(s.links))
	ch <- prometheus.MustNewConstMetric(c.inbox, prometheus.GaugeValue, float64(c.n.st.InboxLen()))
	ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(s.dropped))
	for _, m := range channelMetrics {
		ch <- prometheus.MustNewConstMetric(c.channels[m.name], prometheus.CounterValue, float64(m.get(&c.n.chans.stats)))
	}
	ch <- prometheus.MustNewConstMetric(c.joined, prometheus.GaugeValue, float64(len(c.n.chans.list())))
	c.collectFAPP(ch)
	ch <- prometheus.MustNewConstMetric(dhtRefused, prometheus.CounterValue, float64(c.n.host.RecordsRefused()))
}

// dhtRefused counts DHT records the address-record validator refused.
var dhtRefused = prometheus.NewDesc("meshd_dht_records_refused_total",
	"DHT records (peers' PUTs, query answers) the address-record validator refused", nil, nil)

// FAPP metrics: what the node dropped from the network, by object and
// reason, what it did, and what its index holds.
var (
	fappDropped = prometheus.NewDesc("meshd_fapp_dropped_total",
		"FAPP objects from the network dropped, by object (announce, profile, revocation, query, answer, reservation, ...) and reason",
		[]string{"object", "reason"}, nil)
	fappEvents = prometheus.NewDesc("meshd_fapp_events_total",
		"FAPP events: announces_accepted, profiles_accepted, queries_answered, reservations_received, own_announces_released, ...",
		[]string{"event"}, nil)
	fappIndexed = prometheus.NewDesc("meshd_fapp_index_announces", "therapists' announces held in the FAPP index", nil, nil)
)

func (c *collector) collectFAPP(ch chan<- prometheus.Metric) {
	f := c.n.fapp
	if f == nil {
		return
	}
	for k, v := range f.stats.snapshotDrops() {
		ch <- prometheus.MustNewConstMetric(fappDropped, prometheus.CounterValue, float64(v), k[0], k[1])
	}
	f.stats.mu.Lock()
	for k, v := range f.stats.m {
		ch <- prometheus.MustNewConstMetric(fappEvents, prometheus.CounterValue, float64(v), k)
	}
	f.stats.mu.Unlock()
	f.mu.Lock()
	n := f.idx.Len()
	f.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(fappIndexed, prometheus.GaugeValue, float64(n))
}

// channelMetrics are the broadcast channel counters. None carries a
// channel ID or key: they are totals over all channels.
var channelMetrics = []struct {
	name, help string
	get        func(s *chanStats) uint64
}{
	{"meshd_gossip_published_total", "channel frames published on gossip", func(s *chanStats) uint64 { return s.published.Load() }},
	{"meshd_gossip_publish_failed_total", "channel frames gossip refused to publish", func(s *chanStats) uint64 { return s.publishFailed.Load() }},
	{"meshd_gossip_publish_dropped_total", "channel frames dropped because the publish queue was full", func(s *chanStats) uint64 { return s.outDropped.Load() }},
	{"meshd_gossip_received_dropped_total", "validated gossip frames dropped because the node loop's queue was full", func(s *chanStats) uint64 { return s.inDropped.Load() }},
	{"meshd_gossip_rejected_malformed_total", "gossip frames rejected: not a well-formed channel frame", func(s *chanStats) uint64 { return s.malformed.Load() }},
	{"meshd_gossip_rejected_stale_total", "gossip frames rejected: too old or from the future", func(s *chanStats) uint64 { return s.stale.Load() }},
	{"meshd_gossip_rejected_unknown_total", "gossip frames of channels this node has not joined", func(s *chanStats) uint64 { return s.unknown.Load() }},
	{"meshd_gossip_rejected_forged_total", "gossip frames whose MAC or signature does not verify", func(s *chanStats) uint64 { return s.forged.Load() }},
	{"meshd_gossip_rejected_rate_limited_total", "gossip frames over a sender's or channel's rate limit", func(s *chanStats) uint64 { return s.limited.Load() }},
	{"meshd_channel_messages_delivered_total", "channel messages delivered to this node's history and subscribers", func(s *chanStats) uint64 { return s.delivered.Load() }},
}

// metricsServer serves /metrics: meshd's own metrics and those go-libp2p
// registers with the default Prometheus registry (swarm, resource manager,
// identify, relay, hole punching).
type metricsServer struct {
	srv *http.Server
	ln  net.Listener
	wg  sync.WaitGroup
}

func startMetrics(n *Node, addr string, log *slog.Logger) (*metricsServer, error) {
	return startMetricsAuth(n, addr, "", log)
}

// startMetricsAuth is startMetrics with /metrics behind token (none when
// empty).
func startMetricsAuth(n *Node, addr, token string, log *slog.Logger) (*metricsServer, error) {
	reg := prometheus.NewRegistry()
	if err := reg.Register(newCollector(n)); err != nil {
		return nil, err
	}
	if err := reg.Register(newLinkCollector(n)); err != nil {
		return nil, err
	}
	if err := reg.Register(newLoRaCollector(n)); err != nil {
		return nil, err
	}
	if err := reg.Register(upkeepCollector{n}); err != nil {
		return nil, err
	}
	if err := reg.Register(n.latency); err != nil {
		return nil, err
	}
	if n.guard != nil {
		if err := reg.Register(newGuardCollector(n.guard)); err != nil {
			return nil, err
		}
	}
	mux := http.NewServeMux()
	var h http.Handler = promhttp.HandlerFor(prometheus.Gatherers{reg, prometheus.DefaultGatherer},
		promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn), ErrorHandling: promhttp.ContinueOnError})
	if token != "" {
		h = requireToken(token, h)
	}
	mux.Handle("GET /metrics", h)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	m := &metricsServer{ln: ln, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}}
	m.wg.Go(func() {
		if err := m.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "err", err)
		}
	})
	return m, nil
}

// Addr is the bound address.
func (m *metricsServer) Addr() string { return m.ln.Addr().String() }

func (m *metricsServer) shutdown(ctx context.Context) error {
	err := m.srv.Shutdown(ctx)
	m.wg.Wait()
	return err
}
