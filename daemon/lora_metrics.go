package daemon

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"meshd.dev/meshd/transports/lora"
	"meshd.dev/meshd/transports/lora/kiss"
)

// loraCollector exports each LoRa modem's figures, labelled with its
// serial port. Counters are totals over every time the modem came up.
type loraCollector struct {
	n     *Node
	descs map[string]*prometheus.Desc
}

// loraMetrics: name, help, whether a counter, and labels beyond "port".
var loraMetrics = []struct {
	name, help string
	counter    bool
	code       bool
}{
	{"meshd_lora_up", "1 while the modem is configured and its link is up", false, false},
	{"meshd_lora_restarts_total", "times the modem link went down or failed to come up and was reopened", true, false},
	{"meshd_lora_frames_in_total", "frames received over the air", true, false},
	{"meshd_lora_frames_out_total", "frames handed to the modem", true, false},
	{"meshd_lora_bytes_in_total", "bytes received over the air", true, false},
	{"meshd_lora_bytes_out_total", "bytes handed to the modem", true, false},
	{"meshd_lora_rx_dropped_total", "received frames dropped because the node did not take them in time", true, false},
	{"meshd_lora_decode_errors_total", "malformed bytes or frames from the modem", true, false},
	{"meshd_lora_modem_errors_total", "ERROR frames from the modem, by code (1 radio init, 2 TX failed, 3 EEPROM locked, 4 queue full, 5 memory low, 6 modem timeout, 0/7 other)", true, true},
	{"meshd_lora_deferred_total", "frames that waited for the duty cycle", true, false},
	{"meshd_lora_deferred_seconds_total", "time frames waited for the duty cycle", true, false},
	{"meshd_lora_refused_total", "frames refused by the regional rules (dwell time, longer than the hourly budget)", true, false},
	{"meshd_lora_failed_total", "frames lost because the modem failed while sending (custody retries them)", true, false},
	{"meshd_lora_airtime_used_seconds", "airtime used in the last hour", false, false},
	{"meshd_lora_airtime_left_seconds", "airtime the duty cycle still allows in the last hour", false, false},
	{"meshd_lora_rssi_dbm", "RSSI of the last frame received", false, false},
	{"meshd_lora_snr_db", "SNR of the last frame received", false, false},
	{"meshd_lora_channel_load_short_ratio", "channel utilisation the modem measured over its short window (ESP32 and nRF52 modems)", false, false},
	{"meshd_lora_channel_load_long_ratio", "channel utilisation the modem measured over the last hour", false, false},
	{"meshd_lora_noise_floor_dbm", "noise floor the modem measured", false, false},
}

func newLoRaCollector(n *Node) *loraCollector {
	c := &loraCollector{n: n, descs: map[string]*prometheus.Desc{}}
	for _, m := range loraMetrics {
		labels := []string{"port"}
		if m.code {
			labels = append(labels, "code")
		}
		c.descs[m.name] = prometheus.NewDesc(m.name, m.help, labels, nil)
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *loraCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *loraCollector) Collect(ch chan<- prometheus.Metric) {
	for _, t := range c.n.transports {
		if lt, ok := t.(*lora.Transport); ok {
			c.collect(ch, lt)
		}
	}
}

func (c *loraCollector) collect(ch chan<- prometheus.Metric, t *lora.Transport) {
	port := t.Port()
	emit := func(name string, v float64, code ...string) {
		kind := prometheus.GaugeValue
		for _, m := range loraMetrics {
			if m.name == name && m.counter {
				kind = prometheus.CounterValue
			}
		}
		ch <- prometheus.MustNewConstMetric(c.descs[name], kind, v, append([]string{port}, code...)...)
	}
	tc := t.Counters()
	cur := t.Current()
	up := 0.0
	if cur != nil {
		up = 1
	}
	emit("meshd_lora_up", up)
	emit("meshd_lora_restarts_total", float64(t.Service().Restarts()))
	emit("meshd_lora_frames_in_total", float64(tc.FramesIn))
	emit("meshd_lora_frames_out_total", float64(tc.FramesOut))
	emit("meshd_lora_bytes_in_total", float64(tc.BytesIn))
	emit("meshd_lora_bytes_out_total", float64(tc.BytesOut))
	emit("meshd_lora_rx_dropped_total", float64(tc.RxDropped))
	emit("meshd_lora_decode_errors_total", float64(tc.DecodeErrors))
	for code, v := range tc.ModemErrors {
		emit("meshd_lora_modem_errors_total", float64(v), strconv.Itoa(code))
	}
	emit("meshd_lora_deferred_total", float64(tc.Deferred))
	emit("meshd_lora_deferred_seconds_total", tc.DeferredTime.Seconds())
	emit("meshd_lora_refused_total", float64(tc.Refused))
	emit("meshd_lora_failed_total", float64(tc.Failed))
	if cur == nil {
		return
	}
	if ds := cur.Driver().Stats(); ds.HasChannel {
		ch := ds.Channel
		emit("meshd_lora_channel_load_short_ratio", float64(ch.LoadShort)/10000)
		emit("meshd_lora_channel_load_long_ratio", float64(ch.LoadLong)/10000)
		emit("meshd_lora_noise_floor_dbm", float64(kiss.RSSIFromByte(ch.NoiseFloor)))
	}
	s := cur.Stats()
	if r := s.Radio; r != nil {
		emit("meshd_lora_airtime_used_seconds", r.AirtimeUsed.Seconds())
		emit("meshd_lora_airtime_left_seconds", r.AirtimeLeft.Seconds())
		if r.Last != nil {
			emit("meshd_lora_rssi_dbm", r.Last.RSSI)
			emit("meshd_lora_snr_db", r.Last.SNR)
		}
	}
}
