package rnode

import (
	"time"

	"meshd.dev/meshd/transports/lora/kiss"
)

// phase is where a modem's transmit handler stands.
type phase int

const (
	phaseIdle     phase = iota // nothing to send, radio off, or airtime locked
	phaseWaitFree              // the radio hears a carrier
	phaseDIFS                  // waiting the DIFS (two slots) on a free channel
	phaseCW                    // counting down the contention window
	phaseSending               // sending the queue (no serial input is read)
)

// csma is the state of tx_queue_handler (the ESP32 firmware's channel
// access: wait for a free channel, a DIFS, then a random number of slots,
// then send the whole queue, or one packet above 14 kbit/s) and of the
// transmission in progress.
type csma struct {
	phase      phase
	cw         int           // slots drawn, -1 when none
	cwPassed   time.Duration // contention window already waited
	stageStart time.Time
	gen        uint64 // invalidates scheduled DIFS and CW ends

	packetsLeft int       // packets of this channel access not yet popped
	flush       bool      // send the whole queue (else one packet)
	frames      [][]byte  // frames of the packet being sent
	cur         *flight   // the frame on the air
	airUntil    time.Time // the radio is busy until then (a frame cut short still occupies it)
	tickGen     uint64    // invalidates status ticks
	txGen       uint64    // invalidates frame ends after a reboot
}

func (c *csma) reset() {
	tick, tx, until := c.tickGen, c.txGen, c.airUntil
	*c = csma{cw: -1, tickGen: tick + 1, txGen: tx + 1, airUntil: until}
}

// kick is tx_queue_handler's decision: start channel access when there is
// something to send, the radio is on and the airtime lock is open; pause
// it otherwise.
func (h *Hub) kick(m *modem) {
	if m.phase == phaseSending {
		return
	}
	if m.conn == nil || !m.online || m.airtimeLocked() || m.queueHeight == 0 {
		m.phase = phaseIdle
		m.gen++
		return
	}
	if m.phase != phaseIdle {
		return
	}
	if m.cw < 0 {
		m.cw = m.cwMin + m.h.rng.IntN(max(1, m.cwMax-m.cwMin))
	}
	h.waitOrDIFS(m)
}

func (m *modem) slot() time.Duration { return time.Duration(m.phy.csmaSlotMs) * time.Millisecond }

func (h *Hub) waitOrDIFS(m *modem) {
	if h.busy(m) {
		m.phase = phaseWaitFree
		m.gen++
		return
	}
	m.phase = phaseDIFS
	m.stageStart = h.now
	m.gen++
	gen := m.gen
	h.schedule(h.now.Add(time.Duration(m.phy.difsMs)*time.Millisecond), func() {
		if m.gen == gen && m.phase == phaseDIFS {
			h.startCW(m)
		}
	})
}

func (h *Hub) startCW(m *modem) {
	m.phase = phaseCW
	m.stageStart = h.now
	m.gen++
	gen := m.gen
	left := time.Duration(m.cw)*m.slot() - m.cwPassed
	h.schedule(h.now.Add(max(0, left)), func() {
		if m.gen == gen && m.phase == phaseCW {
			h.access(m)
		}
	})
}

// heard pauses channel access when the radio starts hearing a carrier; the
// part of the contention window already waited counts.
func (h *Hub) heard(m *modem) {
	switch m.phase {
	case phaseCW:
		m.cwPassed += h.now.Sub(m.stageStart)
		fallthrough
	case phaseDIFS:
		m.phase = phaseWaitFree
		m.gen++
	}
}

// access sends: the whole queue (flush_queue) or, at high bit rates, one
// packet (pop_queue).
func (h *Hub) access(m *modem) {
	m.cw, m.cwPassed = -1, 0
	m.phase = phaseSending
	m.flush = !m.phy.limitRate && !m.phy.guardRate
	m.packetsLeft = 1
	if m.flush {
		m.packetsLeft = len(m.fifo)
	}
	h.sendNext(m)
}

// sendNext puts the next frame on the air, or ends the channel access.
func (h *Hub) sendNext(m *modem) {
	for len(m.frames) == 0 && m.packetsLeft > 0 && len(m.fifo) > 0 {
		m.packetsLeft--
		pkt, n, ok := m.pop()
		if !m.flush {
			m.queueHeight--
			m.queuedBytes = int(uint16(m.queuedBytes - n))
		}
		if ok {
			m.frames = m.loraFrames(pkt)
		}
	}
	if len(m.frames) == 0 {
		h.endAccess(m)
		return
	}
	if h.now.Before(m.airUntil) {
		// A frame cut short by a reboot still holds the radio.
		gen := m.txGen
		h.schedule(m.airUntil, func() {
			if m.txGen == gen {
				h.sendNext(m)
			}
		})
		return
	}
	if m.faults.take(FaultTxTimeout) {
		// endPacket timed out: the firmware reports it and reboots.
		m.emit(kiss.CmdError, kiss.ErrorModemTimeout)
		m.emit(kiss.CmdError, kiss.ErrorTxFailed)
		m.hardReset()
		return
	}
	frame := m.frames[0]
	m.frames = m.frames[1:]
	h.startTx(m, frame)
}

// endAccess is the end of flush_queue or pop_queue: back to receiving,
// airtime reported, and the serial input that waited is read.
func (h *Hub) endAccess(m *modem) {
	if m.flush {
		m.queueHeight, m.queuedBytes = 0, 0
	}
	m.phase = phaseIdle
	m.updateAirtime(h.now)
	pending := m.pendingIn
	m.pendingIn = nil
	m.input(pending)
}

// abortTx stops whatever the modem is sending. cut says the frame on the
// air is cut short (power lost): no receiver gets it.
func (h *Hub) abortTx(m *modem, cut bool) {
	if m.cur != nil && cut {
		m.cur.aborted = true
	}
	m.cur = nil
	m.frames = nil
	m.txGen++
	m.phase = phaseIdle
	m.gen++
}
