package lora

import (
	"errors"
	"net"
	"sync"
	"testing"

	"meshd.dev/meshd/transports/lora/kiss"
)

// fakeModem is a scripted RNode: it answers the host protocol as the
// firmware does (RNode_Firmware.ino serial_callback, Utilities.h
// kiss_indicate_*), and each test bends one behaviour.
type fakeModem struct {
	t    *testing.T
	conn net.Conn // the modem's end

	mu       sync.Mutex
	frames   []kiss.Frame // what the host sent, in order
	raw      []byte       // every byte the host sent
	freq, bw uint32
	txp      byte
	sf, cr   byte
	radio    byte
	st, lt   uint16

	// Behaviour knobs, set before the host starts.
	silent     bool                   // answer nothing at all
	detectResp byte                   // answer to DETECT (0x46)
	fw         [2]byte                // firmware version (1.86)
	maxTxp     byte                   // clamp TX power as SX1276 boards do (17)
	override   map[byte]func() []byte // replace the echo of a command with these bytes (raw, already framed)
	ready      func() byte            // answer to READY; nil means 0x01
	onData     func(m *fakeModem, data []byte)
	replyGate  chan struct{} // if set, every answer waits for a token
	stopAfter  int           // stop answering after this many host frames (0: never)
	seenFrames int
}

// newFakeModem returns a modem and the host's end of the "serial line".
func newFakeModem(t *testing.T) (*fakeModem, net.Conn) {
	host, dev := net.Pipe()
	m := &fakeModem{t: t, conn: dev, detectResp: kiss.DetectResp, fw: [2]byte{0x01, 0x56}, maxTxp: 17,
		override: map[byte]func() []byte{}}
	return m, host
}

// run answers the host until the line closes. Call it in a goroutine.
func (m *fakeModem) run() {
	dec := kiss.NewDecoder(rawTap{m}, kiss.MTU)
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
		m.frames = append(m.frames, kiss.Frame{Cmd: f.Cmd, Data: f.Data})
		m.seenFrames++
		quiet := m.silent || (m.stopAfter > 0 && m.seenFrames > m.stopAfter)
		m.mu.Unlock()
		if !quiet {
			m.answer(f)
		}
	}
}

type rawTap struct{ m *fakeModem }

func (r rawTap) Read(p []byte) (int, error) {
	n, err := r.m.conn.Read(p)
	r.m.mu.Lock()
	r.m.raw = append(r.m.raw, p[:n]...)
	r.m.mu.Unlock()
	return n, err
}

// answer replies to one host frame as the firmware does.
func (m *fakeModem) answer(f kiss.Frame) {
	if o, ok := m.override[f.Cmd]; ok {
		m.send(o())
		return
	}
	arg := byte(0)
	if len(f.Data) > 0 {
		arg = f.Data[0]
	}
	m.mu.Lock()
	var out []byte
	switch f.Cmd {
	case kiss.CmdDetect:
		if arg == kiss.DetectReq {
			out = frame(kiss.CmdDetect, m.detectResp)
		}
	case kiss.CmdFWVersion:
		out = frame(kiss.CmdFWVersion, m.fw[0], m.fw[1])
	case kiss.CmdPlatform:
		out = frame(kiss.CmdPlatform, kiss.PlatformESP32)
	case kiss.CmdMCU:
		out = frame(kiss.CmdMCU, 0x81)
	case kiss.CmdFrequency:
		if len(f.Data) == 4 {
			if v := be32(f.Data); v != 0 {
				m.freq = v
			}
			out = frame(kiss.CmdFrequency, kiss.U32(m.freq)...)
		}
	case kiss.CmdBandwidth:
		if len(f.Data) == 4 {
			if v := be32(f.Data); v != 0 {
				m.bw = v
			}
			out = frame(kiss.CmdBandwidth, kiss.U32(m.bw)...)
		}
	case kiss.CmdTxPower:
		if arg != kiss.QueryByte {
			m.txp = min(arg, m.maxTxp)
		}
		out = frame(kiss.CmdTxPower, m.txp)
	case kiss.CmdSF:
		if arg != kiss.QueryByte {
			m.sf = min(max(arg, 5), 12)
		}
		out = frame(kiss.CmdSF, m.sf)
	case kiss.CmdCR:
		if arg != kiss.QueryByte {
			m.cr = min(max(arg, 5), 8)
		}
		out = frame(kiss.CmdCR, m.cr)
	case kiss.CmdSTALock, kiss.CmdLTALock:
		if len(f.Data) == 2 {
			v := uint16(f.Data[0])<<8 | uint16(f.Data[1])
			if f.Cmd == kiss.CmdSTALock {
				m.st = v
			} else {
				m.lt = v
			}
			out = frame(f.Cmd, kiss.U16(v)...)
		}
	case kiss.CmdRadioState:
		if arg == kiss.RadioStateOn || arg == kiss.RadioStateOff {
			m.radio = arg
		}
		out = frame(kiss.CmdRadioState, m.radio)
	case kiss.CmdReady:
		a := byte(kiss.ReadyYes)
		if m.ready != nil {
			a = m.ready()
		}
		out = frame(kiss.CmdReady, a)
	case kiss.CmdData:
		if m.onData != nil {
			cb := m.onData
			m.mu.Unlock()
			cb(m, f.Data)
			m.mu.Lock()
		}
	}
	m.mu.Unlock()
	if out != nil {
		m.send(out)
	}
}

func frame(cmd byte, data ...byte) []byte {
	b, err := kiss.Encode(cmd, data)
	if err != nil {
		panic(err)
	}
	return b
}

// send writes raw bytes to the host; errors mean the host closed.
func (m *fakeModem) send(b []byte) {
	if m.replyGate != nil {
		<-m.replyGate
	}
	_, _ = m.conn.Write(b)
}

// receive makes the modem report a packet heard on air, as the firmware
// does: STAT_RSSI, STAT_SNR, DATA.
func (m *fakeModem) receive(data []byte, rssi int, snr float64) {
	var b []byte
	b = append(b, frame(kiss.CmdStatRSSI, kiss.RSSIByte(rssi))...)
	b = append(b, frame(kiss.CmdStatSNR, kiss.SNRByte(snr))...)
	b = append(b, frame(kiss.CmdData, data...)...)
	m.send(b)
}

func (m *fakeModem) hostFrames() []kiss.Frame {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]kiss.Frame(nil), m.frames...)
}

func (m *fakeModem) hostBytes() []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]byte(nil), m.raw...)
}
