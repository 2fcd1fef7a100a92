package rnode

import (
	"bytes"
	"math"
	"sync"
	"testing"
	"time"

	"meshd.dev/meshd/simulations/radio"
	"meshd.dev/meshd/transports/lora/kiss"
)

// A test host: it reads everything its modem sends, decodes the frames
// with the host driver's strict KISS parser (a frame the modem mangles is a
// test failure) and notes when each arrived.

type rxFrame struct {
	kiss.Frame
	at time.Time
}

type host struct {
	t      *testing.T
	c      *Conn
	frames chan rxFrame
	raw    bytes.Buffer // everything read, for byte-exact checks
	done   chan struct{}
	mu     sync.Mutex
	chtm   []byte // the latest STAT_CHTM
}

// channelStats returns the latest channel statistics the modem sent.
func (hs *host) channelStats() kiss.ChannelStats {
	hs.t.Helper()
	hs.mu.Lock()
	defer hs.mu.Unlock()
	st, err := kiss.ParseChannelStats(hs.chtm)
	if err != nil {
		hs.t.Fatalf("modem %s: channel statistics % X: %v", hs.c.Name(), hs.chtm, err)
	}
	return st
}

func plug(t *testing.T, h *Hub, name string) *host {
	t.Helper()
	c, err := h.Plug(name)
	if err != nil {
		t.Fatal(err)
	}
	hs := &host{t: t, c: c, frames: make(chan rxFrame, 4096), done: make(chan struct{})}
	go hs.read()
	return hs
}

func (hs *host) read() {
	defer close(hs.done)
	p := kiss.NewParser(kiss.MTU)
	buf := make([]byte, 512)
	for {
		n, err := hs.c.Read(buf)
		for _, b := range buf[:n] {
			hs.raw.WriteByte(b)
			f, ok, perr := p.Push(b)
			if perr != nil {
				hs.t.Errorf("modem %s sent a frame the host parser refuses: %v", hs.c.Name(), perr)
			}
			switch {
			case ok && f.Cmd == kiss.CmdStatChTm:
				// Sent every second: kept aside, or hours of virtual time
				// would fill the channel.
				hs.mu.Lock()
				hs.chtm = append(hs.chtm[:0], f.Data...)
				hs.mu.Unlock()
			case ok:
				hs.frames <- rxFrame{Frame: kiss.Frame{Cmd: f.Cmd, Data: bytes.Clone(f.Data)}, at: time.Now()}
			}
		}
		if err != nil {
			close(hs.frames)
			return
		}
	}
}

func (hs *host) send(p ...byte) {
	hs.t.Helper()
	if _, err := hs.c.Write(p); err != nil {
		hs.t.Fatal(err)
	}
}

func (hs *host) cmd(cmd byte, data ...byte) {
	hs.t.Helper()
	b, err := kiss.Encode(cmd, data)
	if err != nil {
		hs.t.Fatal(err)
	}
	hs.send(b...)
}

// noise are the reports a modem sends on its own.
func noise(f kiss.Frame) bool {
	return f.Cmd == kiss.CmdStatChTm || f.Cmd == kiss.CmdStatPhyPrm || f.Cmd == kiss.CmdStatCSMA
}

// next returns the next frame that is not noise.
func (hs *host) next() rxFrame {
	hs.t.Helper()
	// Virtual time: the deadline costs nothing when the frame comes, and
	// ends the test quickly when it does not.
	deadline := time.After(time.Hour)
	for {
		select {
		case f, ok := <-hs.frames:
			if !ok {
				hs.t.Fatalf("modem %s: connection ended", hs.c.Name())
			}
			if !noise(f.Frame) {
				return f
			}
		case <-deadline:
			hs.t.Fatalf("modem %s: no frame within an hour", hs.c.Name())
		}
	}
}

// expect checks the next frames, noise skipped.
func (hs *host) expect(want ...kiss.Frame) {
	hs.t.Helper()
	for _, w := range want {
		got := hs.next()
		if got.Cmd != w.Cmd || !bytes.Equal(got.Data, w.Data) {
			hs.t.Fatalf("modem %s: got frame %02X % X, want %02X % X", hs.c.Name(), got.Cmd, got.Data, w.Cmd, w.Data)
		}
	}
}

// pending returns the frames received so far that are not noise, without
// waiting.
func (hs *host) pending() []rxFrame {
	var out []rxFrame
	for {
		select {
		case f, ok := <-hs.frames:
			if !ok {
				return out
			}
			if !noise(f.Frame) {
				out = append(out, f)
			}
		default:
			return out
		}
	}
}

func fr(cmd byte, data ...byte) kiss.Frame { return kiss.Frame{Cmd: cmd, Data: data} }

// Radio settings used by the tests: 869.525 MHz (EU868 g3), 125 kHz.
const (
	testFreq = 869525000
	testBW   = 125000
)

// configure runs the host start-up of meshd's and Reticulum's drivers.
func (hs *host) configure(sf, cr byte) {
	hs.t.Helper()
	hs.cmd(kiss.CmdFrequency, kiss.U32(testFreq)...)
	hs.cmd(kiss.CmdBandwidth, kiss.U32(testBW)...)
	hs.cmd(kiss.CmdTxPower, 14)
	hs.cmd(kiss.CmdSF, sf)
	hs.cmd(kiss.CmdCR, cr)
	hs.cmd(kiss.CmdRadioState, kiss.RadioStateOn)
	hs.expect(fr(kiss.CmdFrequency, kiss.U32(testFreq)...), fr(kiss.CmdBandwidth, kiss.U32(testBW)...),
		fr(kiss.CmdTxPower, 14), fr(kiss.CmdSF, sf), fr(kiss.CmdCR, cr),
		fr(kiss.CmdRadioState, 1), fr(kiss.CmdRadioState, 1))
}

func (hs *host) close() {
	hs.c.Close()
	<-hs.done
}

// newHub builds a hub without shadowing, so that ranges are exact.
func newHub(t *testing.T, nodes ...NodeConfig) *Hub {
	t.Helper()
	m := radio.DefaultModel()
	m.PathLoss.ShadowSigmaDB = 0
	h, err := New(Config{Nodes: nodes, Seed: 1, Model: &m})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

// rangeM is the mean reach of a 17 dBm modem at sf, 125 kHz.
func rangeM(sf int) float64 {
	m := radio.DefaultModel()
	d := radio.Device{TxPowerDBm: 17}
	return m.MaxRange(radio.NewParams(sf, testBW, radio.CR45), d, d)
}

// airtime is the emulated modem's time on air for a LoRa frame of n bytes
// (header included) at 125 kHz: a preamble of at least 18 symbols and 24
// ms, the register holding 4 less; LDRO only at SF12.
func airtime(t *testing.T, sf, n int) time.Duration {
	t.Helper()
	p := radio.NewParams(sf, testBW, radio.CR45)
	pre := int(math.Ceil(float64(24*time.Millisecond) / float64(p.SymbolTime())))
	p.PreambleSymbols = max(18, pre) - 4
	p.LowDataRateOptimize = radio.LowDataRateOff
	if sf == 12 {
		p.LowDataRateOptimize = radio.LowDataRateOn
	}
	d, err := p.TimeOnAir(n)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// packet returns the next packet the modem received, checking that
// STAT_RSSI and STAT_SNR came just before it.
func (hs *host) packet() rxFrame {
	hs.t.Helper()
	r, s, d := hs.next(), hs.next(), hs.next()
	if r.Cmd != kiss.CmdStatRSSI || s.Cmd != kiss.CmdStatSNR || d.Cmd != kiss.CmdData {
		hs.t.Fatalf("modem %s: got %02X %02X %02X, want STAT_RSSI, STAT_SNR, DATA", hs.c.Name(), r.Cmd, s.Cmd, d.Cmd)
	}
	return d
}
