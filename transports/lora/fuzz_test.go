package lora

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"meshd.dev/meshd/transports/lora/kiss"
	"meshd.dev/meshd/transports/lora/loratest"
)

type nopPort struct{ io.Reader }

func (nopPort) Write(p []byte) (int, error) { return len(p), nil }
func (nopPort) Close() error                { return nil }

// configuredDriver is a driver past start-up, without its goroutines, for
// feeding frames straight into handle.
func configuredDriver() *Driver {
	c := testConfig()
	c.RxQueue = 4
	c = c.withDefaults()
	d := &Driver{
		cfg: c, port: nopPort{}, log: c.Logger, lim: newLogLimiter(time.Minute, slog.New(slog.DiscardHandler)),
		changed: make(chan struct{}, 1), ready: make(chan byte, 1), txErr: make(chan error, 1),
		packets: make(chan Packet, c.RxQueue), done: make(chan struct{}), configured: true, wq: make(chan writeReq),
	}
	d.rep = reported{frequency: c.FrequencyHz, bw: c.BandwidthHz, txPower: byte(c.TxPowerDBm), sf: byte(c.SF), cr: byte(c.CR), radioState: 1}
	return d
}

// FuzzDriverFrames feeds whatever a modem might send to a configured
// driver: it must never panic, never queue more than RxQueue packets, and
// end (rather than carry on) only with one of its own errors.
func FuzzDriverFrames(f *testing.F) {
	var seed []byte
	seed = append(seed, loratest.Frame(kiss.CmdStatRSSI, 60)...)
	seed = append(seed, loratest.Frame(kiss.CmdStatSNR, 0xF0)...)
	seed = append(seed, loratest.Frame(kiss.CmdData, 1, 2, 3)...)
	f.Add(seed)
	f.Add(loratest.Frame(kiss.CmdError, kiss.ErrorTxFailed))
	f.Add(loratest.Frame(kiss.CmdStatChTm, kiss.ChannelStats{AirtimeShort: 5}.Marshal()...))
	f.Add(loratest.Frame(kiss.CmdFrequency, 0, 0, 0))
	f.Add(loratest.Frame(kiss.CmdSF, 9))
	f.Add(loratest.Frame(kiss.CmdReady, 1, 1))
	f.Add(loratest.Frame(kiss.CmdReset, kiss.ResetByte))
	f.Add(bytes.Repeat([]byte{kiss.FEND, kiss.CmdData, 0xAA}, 20))
	f.Fuzz(func(t *testing.T, in []byte) {
		d := configuredDriver()
		dec := kiss.NewDecoder(bytes.NewReader(in), kiss.MaxHostFrame)
		for {
			fr, err := dec.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				continue
			}
			d.handle(fr)
		}
		if len(d.packets) > cap(d.packets) || cap(d.packets) != 4 {
			t.Fatalf("packets %d of %d", len(d.packets), cap(d.packets))
		}
		if err := d.Err(); err != nil {
			var me *ModemError
			if !errors.As(err, &me) && !errors.Is(err, ErrEchoMismatch) && !errors.Is(err, ErrModemReset) && !errors.Is(err, ErrRadioOff) {
				t.Fatalf("ended with %v", err)
			}
		}
	})
}
