package rnode

import (
	"math"
	"time"

	"meshd.dev/meshd/simulations/radio"
	"meshd.dev/meshd/transports/lora/kiss"
)

// phyStats are the values updateBitrate computes and STAT_PHYPRM reports.
type phyStats struct {
	bitrate        uint32
	symbolRate     float32
	symbolTimeMs   float32
	limitRate      bool // above 60 kbit/s: one packet per channel access
	guardRate      bool // above 14 kbit/s: the same
	csmaSlotMs     int
	difsMs         int
	preambleTimeMs int
}

// The SX1276 LoRa bandwidths as getSignalBandwidth reports them, and the
// largest value setSignalBandwidth maps to each.
var sx1276Bandwidths = [...]uint32{7800, 10400, 15600, 20800, 31250, 41700, 62500, 125000, 250000, 500000}

// chipBandwidth is the bandwidth the chip uses when asked for bw: the
// smallest one at or above it (500 kHz above that), as setSignalBandwidth
// rounds.
func chipBandwidth(bw uint32) int {
	for _, b := range sx1276Bandwidths {
		if bw <= b {
			return int(b)
		}
	}
	return 500000
}

// chipFrequency is the frequency the chip tunes to for freq: its
// synthesizer has steps of 32 MHz / 2^19 (about 61 Hz), and getFrequency
// reads the register back.
func chipFrequency(freq uint32) uint32 {
	frf := uint32((uint64(freq) << 19) / 32000000)
	return uint32((uint64(frf) * 32000000) >> 19)
}

func (m *modem) setFrequency(freq uint32) {
	if freq != 0 {
		m.freq = freq
		if m.online {
			m.regFreq = chipFrequency(freq)
			m.freq = m.regFreq
			m.retune()
		}
	}
	m.emitEsc(kiss.CmdFrequency, byte(m.freq>>24), byte(m.freq>>16), byte(m.freq>>8), byte(m.freq))
}

func (m *modem) setBandwidth(bw uint32) {
	if bw != 0 {
		m.bw = bw
		if m.online {
			m.regBW = chipBandwidth(bw)
			m.bw = uint32(m.regBW)
			m.handleLowDataRate()
			m.updateBitrate()
			m.retune()
		}
	}
	m.emitEsc(kiss.CmdBandwidth, byte(m.bw>>24), byte(m.bw>>16), byte(m.bw>>8), byte(m.bw))
}

func (m *modem) setTxPower(b byte) {
	if b != 0xFF {
		// The SX1276 build clamps to 17 dBm.
		m.txp = min(int(b), 17)
	}
	m.emit(kiss.CmdTxPower, byte(m.txp))
}

func (m *modem) setSF(b byte) {
	if b != 0xFF {
		m.sf = max(5, min(int(b), 12))
		m.applySF()
	}
	m.emit(kiss.CmdSF, byte(m.sf))
}

func (m *modem) applySF() {
	if m.online {
		m.regSF = max(6, min(m.sf, 12))
		m.handleLowDataRate()
		m.retune()
	}
	m.updateBitrate()
}

func (m *modem) setCR(b byte) {
	if b != 0xFF {
		m.cr = max(5, min(int(b), 8))
		if m.online {
			m.regCR = m.cr
		}
		m.updateBitrate()
	}
	m.emit(kiss.CmdCR, byte(m.cr))
}

// retune restarts reception (a frame whose preamble began before cannot be
// caught) and finds the channel the radio is on.
func (m *modem) retune() {
	m.listenSince = m.h.now
	m.channel = m.h.channelOf(m.regFreq, m.regBW)
}

// handleLowDataRate is the driver's rule, with its integer arithmetic:
// on when 2^SF / (BW/1000) > 16, so SF11 at 125 kHz (2048/125 = 16) runs
// without it, unlike Semtech's 16 ms rule.
func (m *modem) handleLowDataRate() {
	m.ldro = (1<<m.regSF)/(m.regBW/1000) > 16
}

func (m *modem) locked() bool {
	return m.freq == 0 || m.bw == 0 || m.txp == 0xFF || m.sf == 0
}

func (m *modem) radioState(b byte) {
	switch b {
	case 0xFF:
	case kiss.RadioStateOff:
		m.stopRadio()
	case kiss.RadioStateOn:
		m.startRadio()
	default:
		return
	}
	m.emit(kiss.CmdRadioState, b2u(m.online))
}

// startRadio is the firmware's startRadio: a locked radio (a setting
// missing) stays off; a radio that fails to start reports ERROR_INITRADIO.
func (m *modem) startRadio() {
	if m.online || m.locked() {
		m.emit(kiss.CmdRadioState, b2u(m.online))
		return
	}
	if m.faults.take(FaultInitRadio) {
		m.emit(kiss.CmdError, kiss.ErrorInitRadio)
		return
	}
	m.online = true
	m.air.reset()
	m.regFreq = chipFrequency(m.freq)
	m.regBW = chipBandwidth(m.bw)
	m.bw = uint32(m.regBW)
	m.handleLowDataRate()
	m.updateBitrate() // setBandwidth
	m.regSF = max(6, min(m.sf, 12))
	m.handleLowDataRate()
	m.updateBitrate() // setSpreadingFactor
	m.regCR = m.cr
	m.updateBitrate() // setCodingRate
	m.freq = m.regFreq
	m.retune()
	m.emit(kiss.CmdRadioState, b2u(m.online))
	m.h.startTicks(m)
}

func (m *modem) stopRadio() {
	m.online = false
	m.h.stopTicks(m)
}

// updateBitrate recomputes the rate, the CSMA slot and the preamble as the
// firmware does (in its float and integer arithmetic), and reports them.
func (m *modem) updateBitrate() {
	if !m.online {
		m.phy.bitrate = 0
		return
	}
	p := &m.phy
	pow := math.Pow(2, float64(m.sf))
	p.symbolRate = float32(m.bw) / float32(pow)
	p.symbolTimeMs = float32((1.0 / float64(p.symbolRate)) * 1000.0)
	p.bitrate = uint32(float64(m.sf) * ((4.0 / float64(float32(m.cr))) / (float64(float32(pow)) / (float64(float32(m.bw)) / 1000.0))) * 1000.0)
	fast := p.bitrate > 30000
	p.limitRate = p.bitrate > 60000
	p.guardRate = !p.limitRate && p.bitrate > 14000
	slotMin, target := 24, float32(24)
	if fast {
		slotMin, target = 24-18, 24-18
	}
	p.csmaSlotMs = int(p.symbolTimeMs * 12)
	if p.csmaSlotMs > 100 {
		p.csmaSlotMs = 100
	}
	if p.csmaSlotMs < 24 {
		p.csmaSlotMs = slotMin
	}
	p.difsMs = 2 * p.csmaSlotMs
	symbols := target / p.symbolTimeMs
	if symbols < 18 {
		symbols = 18
	} else {
		symbols = float32(math.Ceil(float64(symbols)))
	}
	m.preamble = int(symbols)
	m.emitPhyStats() // setPreamble reports before the preamble time is updated
	p.preambleTimeMs = int(math.Ceil(float64(float32(m.preamble) * p.symbolTimeMs)))
}

func (m *modem) emitPhyStats() {
	p := &m.phy
	lst := uint16(p.symbolTimeMs * 1000)
	lsr := uint16(p.symbolRate)
	vals := [6]uint16{lst, lsr, uint16(m.preamble), uint16(p.preambleTimeMs), uint16(p.csmaSlotMs), uint16(p.difsMs)}
	var args [12]byte
	for i, v := range vals {
		args[2*i], args[2*i+1] = byte(v>>8), byte(v)
	}
	m.emitEsc(kiss.CmdStatPhyPrm, args[:]...)
}

// alockFraction converts an airtime limit in percent x 100 to the fraction
// the firmware stores (100 % or more means no limit).
func alockFraction(at uint16) float32 {
	if at == 0 {
		return 0
	}
	f := float32(float64(at) / (100.0 * 100.0))
	if f >= 1.0 {
		return 0
	}
	return f
}

// alockBytes is the echo of a limit, computed in float as the firmware
// does (so it can come back one lower than sent).
func alockBytes(f float32) []byte {
	at := uint16(float32(f*100) * 100)
	return []byte{byte(at >> 8), byte(at)}
}

// params are the radio's modulation settings as the medium needs them.
// The register holds the preamble length minus 4; the chip adds 4.25
// symbols of sync word and delimiter. SF6 works only with an implicit
// header on the SX1276.
func (m *modem) params() radio.Params {
	p := radio.NewParams(m.regSF, m.regBW, radio.CodingRate(m.regCR-4))
	p.PreambleSymbols = m.preamble - 4
	p.ExplicitHeader = m.regSF > 6
	p.LowDataRateOptimize = radio.LowDataRateOff
	if m.ldro {
		p.LowDataRateOptimize = radio.LowDataRateOn
	}
	return p
}

// millis is the firmware's uptime clock.
func (m *modem) millis(now time.Time) int64 { return int64(now.Sub(m.bootAt) / time.Millisecond) }
