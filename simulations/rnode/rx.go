package rnode

import (
	"math"

	"meshd.dev/meshd/transports/lora/kiss"
)

// rx is the receive side of the firmware: split-packet reassembly and the
// signal reports.
type rx struct {
	seq        byte // sequence of the split packet being assembled, seqUnset if none
	buf        []byte
	lastRSSI   int
	lastSNRRaw byte
}

// receiveFrame is receive_callback and the ESP32 main loop's hand-off: it
// strips the header, joins the two halves of a split packet, and sends the
// host STAT_RSSI, STAT_SNR and the packet.
func (m *modem) receiveFrame(frame []byte, rssiDBm, snrDB float64) {
	if len(frame) == 0 {
		return
	}
	if m.promisc {
		m.buf = append(m.buf[:0], frame...)
		m.deliverPacket(rssiDBm, snrDB)
		return
	}
	header, data := frame[0], frame[1:]
	sequence, split := header>>4, header&kiss.FlagSplit != 0
	ready := false
	switch {
	case split && m.seq == seqUnset:
		m.buf, m.seq = m.buf[:0], sequence
	case split && m.seq == sequence:
		m.seq, ready = seqUnset, true
	case split:
		m.buf, m.seq = m.buf[:0], sequence // a new split packet
	default:
		if m.seq != seqUnset {
			m.buf, m.seq = m.buf[:0], seqUnset
		}
		ready = true
	}
	m.buf = append(m.buf, data[:min(len(data), kiss.MTU-len(m.buf))]...)
	if ready {
		m.deliverPacket(rssiDBm, snrDB)
	}
}

func (m *modem) deliverPacket(rssiDBm, snrDB float64) {
	defer func() { m.buf = m.buf[:0] }()
	if m.faults.take(FaultMemoryLow) {
		// The ESP32 could not allocate the packet: it is lost, and the
		// main loop reports the shortage.
		m.emit(kiss.CmdError, kiss.ErrorMemoryLow)
		return
	}
	m.lastSNRRaw = snrRaw(snrDB)
	m.lastRSSI = packetRSSI(rssiDBm, snrDB, m.lastSNRRaw)
	m.emitEsc(kiss.CmdStatRSSI, byte(m.lastRSSI+kiss.RSSIOffset))
	m.emitEsc(kiss.CmdStatSNR, m.lastSNRRaw)
	m.emitEsc(kiss.CmdData, m.buf...)
}

// snrRaw is the SX1276 packet SNR register: SNR x 4, a signed byte.
func snrRaw(snrDB float64) byte {
	return byte(int8(max(-128, min(127, math.Round(snrDB*4)))))
}

// packetRSSI is what the firmware reports for a packet received at rssiDBm
// with snrDB: the SX1276 packet RSSI register (datasheet: RSSI = -157 +
// 16/15 reg when SNR >= 0, -157 + reg + SNR/4 below), read back with the
// driver's arithmetic (which applies the 16/15 slope to reg - 157, so strong
// packets read several dB low, as on the real device).
func packetRSSI(rssiDBm, snrDB float64, raw byte) int {
	var reg float64
	if snrDB >= 0 {
		reg = (rssiDBm + kiss.RSSIOffset) * 15 / 16
	} else {
		reg = rssiDBm + kiss.RSSIOffset - snrDB
	}
	r := int(max(0, min(255, math.Round(reg)))) - kiss.RSSIOffset
	snr := int(float64(int8(raw)) * 0.25)
	if snr < 0 {
		return r + snr
	}
	return int(1.066 * float64(r))
}
