package daemon

import (
	"context"
	"io"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	contract "meshd.dev/meshd/transports/link"
	"meshd.dev/meshd/transports/lora/kiss"
	"meshd.dev/meshd/transports/lora/loratest"
)

func TestLoRaMetrics(t *testing.T) {
	noLeaks(t)
	var modem *loratest.Modem
	open := loratest.Opener(nil, func(m *loratest.Modem) { modem = m }, nil)
	tr, err := openLoRaPort(DefaultLoRa("/dev/ttyX"), nil, func(context.Context, string) (io.ReadWriteCloser, error) { return open() })
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	l := <-tr.Links()
	ctx := context.Background()
	if err := l.Send(ctx, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	<-l.TxDone()
	modem.Send(loratest.Frame(kiss.CmdError, kiss.ErrorMemoryLow))
	modem.Send(loratest.Frame(kiss.CmdStatChTm, kiss.ChannelStats{LoadShort: 2500, LoadLong: 1200, NoiseFloor: kiss.RSSIByte(-120), Interference: kiss.NoInterference}.Marshal()...))
	modem.Receive([]byte("hi"), -101, -4.25)
	if _, err := l.Recv(ctx); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(newLoRaCollector(&Node{transports: []contract.Transport{tr}}))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, lp := range m.GetLabel() {
				if lp.GetName() != "port" {
					key += "/" + lp.GetValue()
				} else if lp.GetValue() != "/dev/ttyX" {
					t.Errorf("port label %q", lp.GetValue())
				}
			}
			v := m.GetGauge().GetValue()
			if m.GetCounter() != nil {
				v = m.GetCounter().GetValue()
			}
			got[key] = v
		}
	}
	for k, want := range map[string]float64{
		"meshd_lora_up": 1, "meshd_lora_frames_out_total": 1, "meshd_lora_frames_in_total": 1,
		"meshd_lora_modem_errors_total/5": 1, "meshd_lora_modem_errors_total/2": 0,
		"meshd_lora_rssi_dbm": -101, "meshd_lora_snr_db": -4.25, "meshd_lora_restarts_total": 0,
		"meshd_lora_channel_load_short_ratio": 0.25, "meshd_lora_channel_load_long_ratio": 0.12, "meshd_lora_noise_floor_dbm": -120,
	} {
		if v, ok := got[k]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", k, v, ok, want)
		}
	}
	if got["meshd_lora_airtime_used_seconds"] <= 0 || got["meshd_lora_airtime_left_seconds"] >= 360 {
		t.Errorf("airtime used %v left %v", got["meshd_lora_airtime_used_seconds"], got["meshd_lora_airtime_left_seconds"])
	}
}
