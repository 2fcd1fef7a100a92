package daemon

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	contract "meshd.dev/meshd/transports/link"
	"meshd.dev/meshd/transports/lora/loratest"
)

func TestLoRaConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		args      []string
		want      string
	}{
		{"outside EU868", "[[lora]]\nport = \"/dev/ttyUSB0\"\nfrequency = 867000000\n", nil, "lora[0]: port /dev/ttyUSB0: lorareg: frequency not allowed: 867000000 Hz"},
		{"outside US915", "[[lora]]\nport = \"/dev/ttyUSB0\"\nregion = \"US915\"\nfrequency = 869525000\n", nil, "outside US915"},
		{"sf too high", "[[lora]]\nport = \"/dev/ttyUSB0\"\nsf = 13\n", nil, "sf 13 not in 7..12"},
		{"sf too low", "[[lora]]\nport = \"/dev/ttyUSB0\"\nsf = 6\n", nil, "sf 6 not in 7..12"},
		{"bad bandwidth", "[[lora]]\nport = \"/dev/ttyUSB0\"\nbandwidth = 100000\n", nil, "bandwidth 100000 Hz"},
		{"power over g1", "[[lora]]\nport = \"/dev/ttyUSB0\"\nfrequency = 868100000\ntx_power = 20\n", nil, "tx_power 20 dBm, EU868 sub-band g1 allows at most 14 dBm"},
		{"bad region", "[[lora]]\nport = \"/dev/ttyUSB0\"\nregion = \"CN470\"\n", nil, `unknown region: "CN470"`},
		{"no port", "[[lora]]\nsf = 9\n", nil, "lora[0].port: empty"},
		{"twice", "[[lora]]\nport = \"/dev/a\"\n[[lora]]\nport = \"/dev/a\"\n", nil, `lora[1].port: "/dev/a" is listed twice`},
		{"unknown key", "[[lora]]\nport = \"/dev/a\"\nspreading = 9\n", nil, `unknown field "lora.spreading"`},
		{"flag port with bad file section", "[[lora]]\nport = \"/dev/b\"\nsf = 99\n", []string{"--lora", "/dev/b"}, "sf 99"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeConfig(t, dir, tc.doc)
			_, _, err := loadWith(t, append([]string{"--data-dir", dir}, tc.args...))
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrConfig mentioning %q", err, tc.want)
			}
		})
	}
}

func TestLoRaPortsFromFlagsAndEnv(t *testing.T) {
	dir := t.TempDir()
	writeConfig(t, dir, "[[lora]]\nport = \"/dev/b\"\nsf = 12\nfrequency = 868100000\n[[lora]]\nport = \"/dev/c\"\n")
	c, _, err := loadWith(t, []string{"--data-dir", dir, "--lora", "/dev/a", "--lora", "/dev/b"})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.LoRa) != 2 || c.LoRa[0].Port != "/dev/a" || c.LoRa[0].SF != DefaultLoRaSF || c.LoRa[1].SF != 12 {
		t.Fatalf("flags gave %+v", c.LoRa)
	}
	c, _, err = loadWith(t, []string{"--data-dir", dir}, "MESHD_LORA=/dev/c, /dev/d")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.LoRa) != 2 || c.LoRa[0].Port != "/dev/c" || c.LoRa[1].Port != "/dev/d" {
		t.Fatalf("MESHD_LORA gave %+v", c.LoRa)
	}
	c, _, err = loadWith(t, []string{"--data-dir", dir})
	if err != nil || len(c.LoRa) != 2 {
		t.Fatalf("file alone: %+v %v", c.LoRa, err)
	}
	p, err := c.LoRa[0].plan()
	if err != nil || p.SubBand.Name != "g1" || p.DutyCycle != 0.01 {
		t.Fatalf("file section /dev/b: %+v %v", p, err)
	}
}

// TestLoRaTransportInfo: a modem on the port comes up as a shared link with
// the region's MTU, duty cycle and bitrate, and comes back after a replug.
func TestLoRaTransportInfo(t *testing.T) {
	for _, tc := range []struct {
		name      string
		sec       LoRaConfig
		mtu       int
		duty      float64
		bitrate   int
		airtimeUp bool
	}{
		{"EU868 g3", DefaultLoRa("/dev/pts/9"), 254, 0.1, 1757, true},
		{"US915 SF9", func() LoRaConfig {
			c := DefaultLoRa("/dev/pts/9")
			c.Region, c.Frequency = "US915", 915_000_000
			return c
		}(), 56, 0, 1757, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var mu sync.Mutex
				var modems []*loratest.Modem
				open := loratest.Opener(nil, func(m *loratest.Modem) {
					mu.Lock()
					modems = append(modems, m)
					mu.Unlock()
				}, nil)
				tr, err := openLoRaPort(tc.sec, slog.New(slog.DiscardHandler), func(context.Context, string) (io.ReadWriteCloser, error) { return open() })
				if err != nil {
					t.Fatal(err)
				}
				defer tr.Close()
				l := <-tr.Links()
				in := l.Info()
				if in.Kind != contract.KindLoRa || !in.Shared || in.Window != 1 || !in.HopAcks || in.MTU != tc.mtu ||
					in.DutyCycle != tc.duty || in.Bitrate != tc.bitrate || in.Name != "/dev/pts/9" {
					t.Fatalf("info %+v", in)
				}
				if err := l.Send(context.Background(), make([]byte, in.MTU)); err != nil {
					t.Fatal(err)
				}
				<-l.TxDone()
				s := l.Stats()
				if s.Radio == nil || s.Radio.AirtimeUsed <= 0 {
					t.Fatalf("airtime not charged: %+v", s.Radio)
				}
				if tc.duty > 0 && s.Radio.AirtimeLeft != 360*time.Second-s.Radio.AirtimeUsed {
					t.Fatalf("airtime left %v with %v used of 360 s", s.Radio.AirtimeLeft, s.Radio.AirtimeUsed)
				}
				mu.Lock()
				modems[0].Conn.Close() // unplugged
				mu.Unlock()
				<-l.Done()
				l2 := <-tr.Links() // replugged
				if s2 := l2.Stats(); s2.Radio.AirtimeUsed != s.Radio.AirtimeUsed {
					t.Fatalf("the ledger forgot the hour across the replug: %v, was %v", s2.Radio.AirtimeUsed, s.Radio.AirtimeUsed)
				}
			})
		})
	}
}
