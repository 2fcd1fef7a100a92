package sim

import (
	"time"
)

// Channel activity detection (radio.carrier_sense = "cad"): before each
// frame the radio listens for reception.cad_symbols symbols and sends only
// if it detected no preamble on its channel at cad_threshold_db above its
// receive threshold or more; otherwise it backs off a DIFS and a random
// contention window of slots as the RNode contends (radio_csma.go) and
// detects again. Unlike "csma" it takes time, sees only preambles (a frame
// in its payload goes unnoticed, as the SX127x's CAD) and has its own
// threshold.

// cadWait runs the detection for n's next frame and reports whether the
// frame must wait (a detection or a backoff is under way).
func (s *Sim) cadWait(n *node) bool {
	if s.cadFrom == nil {
		s.cadFrom = make([]time.Time, len(s.radioOf))
	}
	p := s.paramsOf(n)
	dur := time.Duration(s.radioCfg.Reception.cadSymbols() * float64(p.SymbolTime()))
	from := s.cadFrom[n.radioID]
	if from.IsZero() || !s.now.Equal(from.Add(dur)) {
		// Start a detection; evCarrier brings the node back when it is
		// over.
		s.cadFrom[n.radioID] = s.now
		n.sensing = true
		s.push(event{at: s.now.Add(dur), kind: evCarrier, node: n, gen: n.gen})
		return true
	}
	s.cadFrom[n.radioID] = time.Time{}
	th, err := s.medium.ThresholdDBm(p)
	if err != nil {
		s.errs++
		return false
	}
	busy, err := s.medium.PreambleHeard(n.radioID, from, s.now, s.freqOf(n), p, th+s.radioCfg.Reception.CADThresholdDB)
	if err != nil {
		s.errs++
		return false
	}
	if !busy {
		return false
	}
	n.sensing = true
	n.stats.CarrierWaits++
	// Back off as the RNode contends (radio_csma.go): a DIFS and a random
	// window of 0-14 slots of 12 symbols, longer than most frames, so that
	// the nodes that detected the same preamble do not detect again, and
	// send, within a few symbols of each other.
	slot := csmaSlot(p)
	backoff := csmaDIFSSlots*slot + time.Duration(n.mac.Int64N(csmaCWSlots))*slot
	s.push(event{at: s.now.Add(backoff), kind: evCarrier, node: n, gen: n.gen})
	return true
}
