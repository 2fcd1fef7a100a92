// Package loratest is a scripted RNode modem for tests: it answers the RNode
// host protocol as the firmware does (detect, version, platform, MCU, echo of
// every setting with the firmware's clamping, READY, RSSI and SNR before each
// received DATA frame), and each test bends one behaviour (silence, wrong
// echoes, errors, floods, a vanishing port). Modems can share a fake air, so
// what one transmits the others receive.
package loratest

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"

	"meshd.dev/meshd/transports/lora/kiss"
)

// Modem is a fake RNode on one end of an in-memory serial line.
type Modem struct {
	// Conn is the modem's end of the line; closing it is unplugging.
	Conn net.Conn

	mu     sync.Mutex
	frames []kiss.Frame
	raw    []byte
	freq   uint32
	bw     uint32
	txp    byte
	sf, cr byte
	radio  byte
	seen   int

	// Knobs, set before the host starts.

	// Silent answers nothing at all.
	Silent bool
	// DetectResp answers DETECT (0x46).
	DetectResp byte
	// Firmware is the reported version (1.86).
	Firmware [2]byte
	// MaxTxPower clamps TX power as SX1276 boards do (17 dBm).
	MaxTxPower byte
	// Override replaces the answer to a command with raw bytes (nil: no
	// answer).
	Override map[byte]func() []byte
	// Ready answers READY; nil means 0x01.
	Ready func() byte
	// OnData sees each DATA frame the host sends.
	OnData func(data []byte)
	// StopAfter stops answering after this many host frames (0: never).
	StopAfter int
}

// New returns a modem and the host's end of the line.
func New() (*Modem, net.Conn) {
	host, dev := net.Pipe()
	return &Modem{Conn: dev, DetectResp: kiss.DetectResp, Firmware: [2]byte{0x01, 0x56}, MaxTxPower: 17,
		Override: map[byte]func() []byte{}}, host
}

// Air connects modems: each one's transmissions are received by the others
// at rssi dBm and snr dB. It replaces their OnData.
func Air(rssi int, snr float64, ms ...*Modem) {
	for _, m := range ms {
		others := []*Modem{}
		for _, o := range ms {
			if o != m {
				others = append(others, o)
			}
		}
		m.OnData = func(data []byte) {
			for _, o := range others {
				o.Receive(data, rssi, snr)
			}
		}
	}
}

// Run answers the host until the line closes. Call it in a goroutine.
func (m *Modem) Run() {
	dec := kiss.NewDecoder(tap{m}, kiss.MTU)
	dec.Parser().Lenient = true // as the firmware
	for {
		f, err := dec.Next()
		if err != nil {
			if errors.Is(err, kiss.ErrFrameTooLong) || errors.Is(err, kiss.ErrGarbage) {
				continue
			}
			return
		}
		m.mu.Lock()
		m.frames = append(m.frames, f)
		m.seen++
		quiet := m.Silent || (m.StopAfter > 0 && m.seen > m.StopAfter)
		m.mu.Unlock()
		if !quiet {
			m.answer(f)
		}
	}
}

type tap struct{ m *Modem }

func (t tap) Read(p []byte) (int, error) {
	n, err := t.m.Conn.Read(p)
	t.m.mu.Lock()
	t.m.raw = append(t.m.raw, p[:n]...)
	t.m.mu.Unlock()
	return n, err
}

// answer replies to one host frame as the firmware does.
func (m *Modem) answer(f kiss.Frame) {
	if o, ok := m.Override[f.Cmd]; ok {
		m.Send(o())
		return
	}
	if f.Cmd == kiss.CmdData {
		if m.OnData != nil {
			m.OnData(f.Data)
		}
		return
	}
	m.mu.Lock()
	out := m.reply(f)
	m.mu.Unlock()
	if out != nil {
		m.Send(out)
	}
}

// reply is the firmware's answer to a command; m.mu is held.
func (m *Modem) reply(f kiss.Frame) []byte {
	arg := byte(0)
	if len(f.Data) > 0 {
		arg = f.Data[0]
	}
	switch f.Cmd {
	case kiss.CmdDetect:
		if arg == kiss.DetectReq {
			return Frame(kiss.CmdDetect, m.DetectResp)
		}
	case kiss.CmdFWVersion:
		return Frame(kiss.CmdFWVersion, m.Firmware[0], m.Firmware[1])
	case kiss.CmdPlatform:
		return Frame(kiss.CmdPlatform, kiss.PlatformESP32)
	case kiss.CmdMCU:
		return Frame(kiss.CmdMCU, 0x81)
	case kiss.CmdFrequency, kiss.CmdBandwidth:
		if len(f.Data) == 4 {
			p := &m.freq
			if f.Cmd == kiss.CmdBandwidth {
				p = &m.bw
			}
			if v := binary.BigEndian.Uint32(f.Data); v != 0 {
				*p = v
			}
			return Frame(f.Cmd, kiss.U32(*p)...)
		}
	case kiss.CmdTxPower:
		if arg != kiss.QueryByte {
			m.txp = min(arg, m.MaxTxPower)
		}
		return Frame(kiss.CmdTxPower, m.txp)
	case kiss.CmdSF:
		if arg != kiss.QueryByte {
			m.sf = min(max(arg, 5), 12)
		}
		return Frame(kiss.CmdSF, m.sf)
	case kiss.CmdCR:
		if arg != kiss.QueryByte {
			m.cr = min(max(arg, 5), 8)
		}
		return Frame(kiss.CmdCR, m.cr)
	case kiss.CmdSTALock, kiss.CmdLTALock:
		if len(f.Data) == 2 {
			return Frame(f.Cmd, f.Data...)
		}
	case kiss.CmdRadioState:
		if arg == kiss.RadioStateOn || arg == kiss.RadioStateOff {
			m.radio = arg
		}
		return Frame(kiss.CmdRadioState, m.radio)
	case kiss.CmdReady:
		a := kiss.ReadyYes
		if m.Ready != nil {
			a = m.Ready()
		}
		return Frame(kiss.CmdReady, a)
	}
	return nil
}

// Frame encodes a frame; it panics on FEND or FESC as command (test input).
func Frame(cmd byte, data ...byte) []byte {
	b, err := kiss.Encode(cmd, data)
	if err != nil {
		panic(err)
	}
	return b
}

// Send writes raw bytes to the host; errors (the host closed) are ignored.
func (m *Modem) Send(b []byte) {
	if len(b) > 0 {
		_, _ = m.Conn.Write(b)
	}
}

// Receive reports a packet heard on the air, as the firmware does:
// STAT_RSSI, STAT_SNR, DATA.
func (m *Modem) Receive(data []byte, rssi int, snr float64) {
	var b []byte
	b = append(b, Frame(kiss.CmdStatRSSI, kiss.RSSIByte(rssi))...)
	b = append(b, Frame(kiss.CmdStatSNR, kiss.SNRByte(snr))...)
	b = append(b, Frame(kiss.CmdData, data...)...)
	m.Send(b)
}

// HostFrames returns what the host sent, in order.
func (m *Modem) HostFrames() []kiss.Frame {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]kiss.Frame(nil), m.frames...)
}

// HostBytes returns every byte the host sent.
func (m *Modem) HostBytes() []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]byte(nil), m.raw...)
}

// Opener returns a function that opens a "port": it starts a fresh modem
// for each call, set up by setup, and hands it to got. It fails while fail
// returns true (the port is missing). Wrap it into a lora.Opener.
func Opener(setup func(*Modem), got func(*Modem), fail func() bool) func() (io.ReadWriteCloser, error) {
	return func() (io.ReadWriteCloser, error) {
		if fail != nil && fail() {
			return nil, errors.New("loratest: no such port")
		}
		m, host := New()
		if setup != nil {
			setup(m)
		}
		if got != nil {
			got(m)
		}
		go m.Run()
		return host, nil
	}
}
