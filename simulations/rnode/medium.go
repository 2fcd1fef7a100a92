package rnode

import (
	"slices"
	"time"

	"meshd.dev/meshd/simulations/radio"
	"meshd.dev/meshd/transports/lora/kiss"
)

// flight is a LoRa frame on the shared medium.
type flight struct {
	id         radio.TxID
	from       *modem
	frame      []byte
	freq       int64
	p          radio.Params
	start, end time.Time
	hearers    []radio.NodeID // nodes whose received power reaches the threshold
	aborted    bool
}

// startTx puts frame on the air from m now; the medium decides at its end
// who received it.
func (h *Hub) startTx(m *modem, frame []byte) {
	p := m.params()
	id, end, err := h.med.StartTx(radio.NodeID(m.idx), h.now, m.channel, p, len(frame))
	if err != nil {
		// The settings the firmware accepts are all valid radio
		// parameters, so this is a bug in the emulator: report a
		// failed transmission rather than stall.
		m.emit(kiss.CmdError, kiss.ErrorTxFailed)
		h.endAccess(m)
		return
	}
	cands, _ := h.med.Candidates(id)
	f := &flight{id: id, from: m, frame: frame, freq: m.channel, p: p, start: h.now, end: end, hearers: slices.Clone(cands)}
	h.flights = append(h.flights, f)
	m.cur = f
	m.airUntil = end
	for _, r := range f.hearers {
		if to := h.modems[r]; to.tunedTo(f) {
			to.heard = append(to.heard, span{f.start, f.end})
			h.heard(to)
		}
	}
	gen := m.txGen
	h.schedule(end, func() { h.txEnd(f, gen) })
}

// txEnd delivers a finished frame to every modem that received it, lets the
// sender go on, and lets modems that waited for a free channel proceed.
func (h *Hub) txEnd(f *flight, gen uint64) {
	h.flights = slices.DeleteFunc(h.flights, func(x *flight) bool { return x == f })
	var err error
	h.rxBuf, err = h.med.Outcomes(f.id, h.rxBuf[:0])
	if err == nil && !f.aborted {
		for _, r := range h.rxBuf {
			if to := h.modems[r.Receiver]; r.Status == radio.Received && to.listening(f) {
				to.receiveFrame(f.frame, r.RSSIDBm, r.SNRDB)
			}
		}
	}
	if m := f.from; m.txGen == gen && m.cur == f {
		m.cur = nil
		m.addAirtime(len(f.frame), h.now)
		h.sendNext(m)
	}
	for _, m := range h.modems {
		if m.phase == phaseWaitFree && !h.busy(m) {
			h.waitOrDIFS(m)
		}
	}
}

// tunedTo reports whether m's radio is on and tuned to f's channel.
func (m *modem) tunedTo(f *flight) bool {
	return m.conn != nil && m.online && m.channel == f.freq && m.regSF == f.p.SF && m.regBW == f.p.BandwidthHz
}

// channelOf returns the medium's frequency for a radio tuned to freq with
// bandwidth bw: the first channel seen within a quarter of the bandwidth
// (a LoRa receiver's tolerance), or freq itself as a new channel. The
// firmware reads the synthesizer back into its setting and writes it again
// at every radio start, losing one 61 Hz step each time, so two modems
// set alike drift apart by a few steps; real receivers do not notice, and
// neither does the medium.
func (h *Hub) channelOf(freq uint32, bw int) int64 {
	f := int64(freq)
	for _, c := range h.channels {
		if d := c - f; d <= int64(bw)/4 && d >= -int64(bw)/4 {
			return c
		}
	}
	h.channels = append(h.channels, f)
	return f
}

// listening reports whether m could receive f: tuned to its channel for
// the whole frame (half-duplex is the medium's business).
func (m *modem) listening(f *flight) bool {
	return m != f.from && m.tunedTo(f) && !m.listenSince.After(f.start)
}

// busy reports whether m hears a carrier: a frame on its channel, from
// another modem, strong enough to be received.
func (h *Hub) busy(m *modem) bool {
	for _, f := range h.flights {
		if f.from != m && !f.aborted && f.end.After(h.now) && m.tunedTo(f) && slices.Contains(f.hearers, radio.NodeID(m.idx)) {
			return true
		}
	}
	return false
}

// strongestHeard returns the power of the strongest frame m hears now.
func (h *Hub) strongestHeard(m *modem, now time.Time) (float64, bool) {
	best, ok := 0.0, false
	for _, f := range h.flights {
		if f.from == m || !f.end.After(now) || !m.tunedTo(f) {
			continue
		}
		if p, err := h.med.RxPowerDBm(radio.NodeID(f.from.idx), radio.NodeID(m.idx)); err == nil && (!ok || p > best) {
			best, ok = p, true
		}
	}
	return best, ok
}

// noiseFloor is the thermal noise floor in m's bandwidth.
func (h *Hub) noiseFloor(m *modem) float64 { return h.model.NoiseFloorDBm(m.params()) }
