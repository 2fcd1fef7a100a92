package rnode

import (
	"time"

	"meshd.dev/meshd/transports/lora/kiss"
)

// Identity is what an emulated modem answers to FW_VERSION, PLATFORM, MCU
// and BOARD.
type Identity struct {
	Major, Minor byte // firmware version
	Platform     byte // 0x80 ESP32, 0x70 nRF52, 0x90 AVR
	MCU          byte // 0x81 ESP32
	Board        byte // 0x41 RNode v2.1 (ESP32 with an SX1276)
}

// DefaultIdentity is firmware 1.86 on an ESP32 RNode with an SX1276 radio,
// the device the emulator models.
func DefaultIdentity() Identity {
	return Identity{Major: 0x01, Minor: 0x56, Platform: 0x80, MCU: 0x81, Board: 0x41}
}

// modem is one emulated RNode: the firmware's state, driven by the hub.
// Every method runs with the hub's lock held.
type modem struct {
	h    *Hub
	idx  int
	name string

	conn   *Conn     // the host's side; nil while unplugged
	bootAt time.Time // millis() counts from here
	faults faultSet

	parser
	settings
	txq
	rx
	air
	csma

	// Host bytes that arrived while the firmware was busy transmitting:
	// the firmware reads its serial port only between transmissions.
	pendingIn []byte
}

// parser is the state of serial_callback.
type parser struct {
	inFrame  bool
	escape   bool // shared by every command and kept across frames, as in the firmware
	command  byte
	frameLen int
	cmdbuf   [cmdL]byte
}

// settings are the radio settings as the host set them and as the radio
// chip holds them.
type settings struct {
	freq      uint32 // lora_freq
	bw        uint32 // lora_bw
	txp       int    // lora_txp, 0xFF unset
	sf        int    // lora_sf, 0 unset
	cr        int    // lora_cr, 5..8
	online    bool   // radio_online
	promisc   bool
	implicitL byte
	stALock   float32 // fraction; 0 no limit
	ltALock   float32

	// The chip's registers: what the radio really uses.
	regFreq  uint32
	regBW    int // Hz, one of the SX1276 bandwidths
	regSF    int // 6..12
	regCR    int // 5..8
	preamble int // lora_preamble_symbols (the register holds 4 less)
	ldro     bool
	phy      phyStats

	listenSince time.Time // the receiver caught no preamble before this
	channel     int64     // the medium's frequency of the channel the radio is on
}

// boot resets the firmware to its power-on state and, if announce, says
// so as an ESP32 RNode does.
func (m *modem) boot(now time.Time, announce bool) {
	m.bootAt = now
	m.parser = parser{command: cmdUnknown}
	m.settings = settings{txp: 0xFF, cr: 5, preamble: 18, regCR: 5, regSF: 7, regBW: 125000}
	m.txq = txq{}
	m.rx = rx{seq: seqUnset, lastRSSI: -292, lastSNRRaw: 0x80}
	m.air = air{cwBand: 1, cwMax: csmaCWPerBandWindows}
	m.csma.reset()
	m.pendingIn = nil
	if announce {
		m.emit(kiss.CmdReset, kiss.ResetByte)
	}
}

// input feeds bytes from the host, or keeps them for later while the
// firmware is busy transmitting.
func (m *modem) input(p []byte) {
	if m.csma.phase == phaseSending {
		m.pendingIn = append(m.pendingIn, p...)
		if over := len(m.pendingIn) - serialBufferSize; over > 0 {
			m.pendingIn = m.pendingIn[:serialBufferSize] // the UART buffer overflows
		}
		return
	}
	for _, b := range p {
		m.serialByte(b)
	}
	m.h.kick(m)
}

// serialBufferSize is the firmware's serial buffer (CONFIG_UART_BUFFER_SIZE).
const serialBufferSize = 6144

// serialByte is the firmware's serial_callback, byte for byte: a FEND ends
// a DATA frame or starts a frame; the first byte of a frame is the command;
// every later byte is handed to the command (so a one-byte command acts on
// each argument byte it gets).
func (m *modem) serialByte(b byte) {
	switch {
	case m.inFrame && b == kiss.FEND && m.command == kiss.CmdData:
		m.inFrame = false
		m.endDataFrame()
	case b == kiss.FEND:
		m.inFrame = true
		m.command = cmdUnknown
		m.frameLen = 0
	case m.inFrame && m.frameLen < kiss.MTU:
		if m.frameLen == 0 && m.command == cmdUnknown {
			m.command = b
			return
		}
		m.commandByte(b)
	}
}

// unescape applies the firmware's escape handling to one argument byte: it
// reports false for FESC (remembered for the next byte).
func (m *modem) unescape(b byte) (byte, bool) {
	if b == kiss.FESC {
		m.escape = true
		return 0, false
	}
	if m.escape {
		switch b {
		case kiss.TFEND:
			b = kiss.FEND
		case kiss.TFESC:
			b = kiss.FESC
		}
		m.escape = false
	}
	return b, true
}

// buffered collects an escaped argument byte and reports whether the
// command has n bytes. Like the firmware it checks after every byte, FESC
// included, so a command gets acted on again when more bytes follow.
func (m *modem) buffered(b byte, n int) bool {
	if v, ok := m.unescape(b); ok && m.frameLen < cmdL {
		m.cmdbuf[m.frameLen] = v
		m.frameLen++
	}
	return m.frameLen == n
}

func (m *modem) be32() uint32 {
	return uint32(m.cmdbuf[0])<<24 | uint32(m.cmdbuf[1])<<16 | uint32(m.cmdbuf[2])<<8 | uint32(m.cmdbuf[3])
}

func (m *modem) be16() uint16 { return uint16(m.cmdbuf[0])<<8 | uint16(m.cmdbuf[1]) }

// commandByte hands one argument byte to the current command.
func (m *modem) commandByte(b byte) {
	switch m.command {
	case kiss.CmdData:
		if v, ok := m.unescape(b); ok {
			m.queueByte(v)
		}
	case kiss.CmdFrequency:
		if m.buffered(b, 4) {
			m.setFrequency(m.be32())
		}
	case kiss.CmdBandwidth:
		if m.buffered(b, 4) {
			m.setBandwidth(m.be32())
		}
	case kiss.CmdSTALock:
		if m.buffered(b, 2) {
			m.stALock = alockFraction(m.be16())
			m.emitEsc(kiss.CmdSTALock, alockBytes(m.stALock)...)
		}
	case kiss.CmdLTALock:
		if m.buffered(b, 2) {
			m.ltALock = alockFraction(m.be16())
			m.emitEsc(kiss.CmdLTALock, alockBytes(m.ltALock)...)
		}
	case cmdROMWrite:
		if m.buffered(b, 2) {
			// The emulated device is provisioned, so its EEPROM is
			// locked: eeprom_write refuses.
			m.emit(kiss.CmdError, kiss.ErrorEEPROMLocked)
		}
	default:
		m.oneByteCommand(b)
	}
}

// oneByteCommand handles the commands that act on each argument byte.
func (m *modem) oneByteCommand(b byte) {
	switch m.command {
	case kiss.CmdTxPower:
		m.setTxPower(b)
	case kiss.CmdSF:
		m.setSF(b)
	case kiss.CmdCR:
		m.setCR(b)
	case kiss.CmdRadioState:
		m.radioState(b)
	default:
		m.queryCommand(b)
	}
}

// queryCommand handles commands that report state.
func (m *modem) queryCommand(b byte) {
	switch m.command {
	case kiss.CmdImplicit:
		m.implicitL = b
		m.emit(kiss.CmdImplicit, m.implicitL)
	case kiss.CmdLeave:
		if b == 0xFF {
			m.lastRSSI, m.lastSNRRaw = -292, 0x80
		}
	case kiss.CmdStatRX, kiss.CmdStatTX:
		// The firmware declares these counters but never counts.
		m.emitEsc(m.command, 0, 0, 0, 0)
	case kiss.CmdStatRSSI:
		m.emitEsc(kiss.CmdStatRSSI, byte(m.lastRSSI+kiss.RSSIOffset))
	case kiss.CmdRadioLock:
		m.emit(kiss.CmdRadioLock, b2u(m.locked()))
	case kiss.CmdRandom:
		m.emit(kiss.CmdRandom, byte(m.h.rng.IntN(0xFF)))
	case kiss.CmdDetect:
		if b == kiss.DetectReq {
			m.emit(kiss.CmdDetect, kiss.DetectResp)
		}
	case kiss.CmdPromisc:
		switch b {
		case 0x01:
			m.promisc = true
		case 0x00:
			m.promisc = false
		}
		m.emit(kiss.CmdPromisc, b2u(m.promisc))
	case kiss.CmdReady:
		m.emit(kiss.CmdReady, b2u(!m.queueFull()))
	case kiss.CmdReset:
		if b == kiss.ResetByte {
			m.hardReset()
		}
	default:
		m.identityCommand()
	}
}

// identityCommand answers the device identity queries; every other command
// (display, Bluetooth, Wi-Fi, EEPROM dumps, firmware update) is ignored.
func (m *modem) identityCommand() {
	id := m.h.identity
	switch m.command {
	case kiss.CmdFWVersion:
		m.emit(kiss.CmdFWVersion, id.Major, id.Minor)
	case kiss.CmdPlatform:
		m.emit(kiss.CmdPlatform, id.Platform)
	case kiss.CmdMCU:
		m.emit(kiss.CmdMCU, id.MCU)
	case kiss.CmdBoard:
		m.emit(kiss.CmdBoard, id.Board)
	}
}

func b2u(v bool) byte {
	if v {
		return 1
	}
	return 0
}

// hardReset reboots the modem (hard_reset): everything the host set is
// gone, and the boot is announced.
func (m *modem) hardReset() {
	m.h.abortTx(m, false)
	m.boot(m.h.now, true)
}

// emit writes a frame whose argument bytes the firmware writes unescaped
// (serial_write): single-byte reports whose values never need escaping.
func (m *modem) emit(cmd byte, args ...byte) {
	buf := make([]byte, 0, len(args)+3)
	buf = append(buf, kiss.FEND, cmd)
	buf = append(buf, args...)
	m.out(append(buf, kiss.FEND))
}

// emitEsc writes a frame whose argument bytes the firmware escapes
// (escaped_serial_write).
func (m *modem) emitEsc(cmd byte, args ...byte) {
	buf := make([]byte, 0, 2*len(args)+3)
	buf = append(buf, kiss.FEND, cmd)
	buf = kiss.AppendEscaped(buf, args)
	m.out(append(buf, kiss.FEND))
}

// out hands bytes to the host, or drops them while no host port exists
// (bytes sent down an unplugged cable go nowhere).
func (m *modem) out(p []byte) {
	if m.conn != nil {
		m.conn.deliver(p)
	}
}
