package sim

import (
	"math"
	"time"

	"meshd.dev/meshd/simulations/radio"
)

// Carrier sense as the RNode firmware does it (radio.carrier_sense =
// "csma"; markqvist/RNode_Firmware at d39339f, RNode_Firmware.ino
// tx_queue_handler, lines 1623-1654, and Config.h lines 101-127). For
// each frame the radio draws a contention window of csmaCWSlots slots
// (random(cw_min, cw_max) with band 1's 0..15: 0 to 14 slots), then
// waits until the channel is free, then for a DIFS of two slots of free
// channel, then for the contention window's slots of free channel. A
// frame it hears during the DIFS restarts the DIFS once the channel is
// free again; during the contention window the count freezes and resumes
// after the next DIFS (the window's time passed is kept). The slot is 12
// symbols, at least 24 ms (6 ms above 30 kbit/s) and at most 100 ms
// (Utilities.h updateBitrate, lines 1244-1252).
//
// Not modelled: the higher contention bands the firmware moves to when
// its own airtime of the last bins exceeds 7 % (update_csma_parameters,
// lines 1603-1621: windows 15-29, 30-44, 45-59 slots), and the
// firmware's sending of all queued frames at once after one window
// (flush_queue): here every frame contends for itself.
const (
	csmaSlotSymbols = 12                    // CSMA_SLOT_SYMBOLS
	csmaSlotMin     = 24 * time.Millisecond // CSMA_SLOT_MIN_MS
	csmaSlotMinFast = 6 * time.Millisecond  // CSMA_SLOT_MIN_MS - CSMA_SLOT_MIN_FAST_DELTA
	csmaSlotMax     = 100 * time.Millisecond
	csmaDIFSSlots   = 2    // difs_ms = CSMA_SIFS_MS (0) + 2*csma_slot_ms
	csmaCWSlots     = 15   // random(0, 15): 0..14 slots
	csmaFastBitrate = 30e3 // LORA_FAST_THRESHOLD_BPS
	// csmaDetectSymbols is how long a radio needs to notice a frame
	// that began: the firmware's medium_free reads the modem's signal
	// detect flag, which needs preamble chirps, as CAD needs about one
	// symbol plus processing (SX1276 datasheet, 4.1.6). Two radios whose
	// windows end within it both send: the slotted contention's
	// same-slot collision.
	csmaDetectSymbols = 2
)

// csmaState is one radio's contention for its next frame.
type csmaState struct {
	gen      uint64        // the node's gen when the contention began
	active   bool          // a frame is contending
	cwLeft   time.Duration // what is left of its contention window
	freeFrom time.Time     // since when the channel is free (zero: busy)
	busyFrom time.Time     // when the frame that made the channel busy began
}

// csmaSlot is the RNode's slot time for p: 12 symbols in whole
// milliseconds, clamped to 24..100 ms (above 30 kbit/s the floor is 6 ms).
func csmaSlot(p radio.Params) time.Duration {
	ms := math.Floor(float64(csmaSlotSymbols*p.SymbolTime()) / float64(time.Millisecond))
	slot := time.Duration(ms) * time.Millisecond
	if slot > csmaSlotMax {
		return csmaSlotMax
	}
	if slot < csmaSlotMin {
		// The firmware's bit rate leaves out the low-data-rate
		// optimisation: SF x 4/(4+CR) x BW / 2^SF.
		rate := float64(p.SF) * 4 / float64(4+int(p.CodingRate)) * float64(p.BandwidthHz) / math.Exp2(float64(p.SF))
		if rate > csmaFastBitrate {
			return csmaSlotMinFast
		}
		return csmaSlotMin
	}
	return slot
}

// csmaTiming is a radio's slot and detection latency: fixed by its
// modulation, so worked out once per radio, not at every look at the
// channel (a large run looks millions of times).
type csmaTiming struct {
	slot, detect time.Duration
}

// csmaTimingOf returns n's csmaTiming, working out every radio's at the
// first call (one entry for all when every radio has the same modulation).
func (s *Sim) csmaTimingOf(n *node) csmaTiming {
	if s.csmaT == nil {
		k := len(s.radioOf)
		if s.chans == nil {
			k = 1
		}
		s.csmaT = make([]csmaTiming, k)
		for i := range s.csmaT {
			p := s.paramsOf(s.radioOf[i])
			s.csmaT[i] = csmaTiming{slot: csmaSlot(p), detect: csmaDetect(p)}
		}
	}
	if len(s.csmaT) == 1 {
		return s.csmaT[0]
	}
	return s.csmaT[n.radioID]
}

// csmaWait runs the contention for n's next frame and reports whether the
// frame must wait; when it must, an evCarrier brings the node back.
func (s *Sim) csmaWait(n *node) bool {
	if s.csma == nil {
		s.csma = make([]csmaState, len(s.radioOf))
	}
	st := &s.csma[n.radioID]
	t := s.csmaTimingOf(n)
	busyUntil, busy := s.channelBusy(n)
	if busy && s.now.Sub(st.busyFrom) < t.detect {
		busy = false // began too recently to be noticed
	}
	if !st.active || st.gen != n.gen {
		*st = csmaState{gen: n.gen, active: true, cwLeft: time.Duration(n.mac.Int64N(csmaCWSlots)) * t.slot, busyFrom: st.busyFrom}
		if !busy {
			st.freeFrom = s.now
		}
	}
	n.sensing = true
	if busy {
		n.stats.CarrierWaits++
		st.freeFrom = time.Time{}
		s.push(event{at: busyUntil, kind: evCarrier, node: n, gen: n.gen})
		return true
	}
	if st.freeFrom.IsZero() {
		// The channel went free when the last frame the node heard
		// ended (or, if one it has yet to notice began since, now).
		st.freeFrom = busyUntil
		if busyUntil.After(s.now) {
			st.freeFrom = s.now
		}
	}
	if at := st.freeFrom.Add(csmaDIFSSlots*t.slot + st.cwLeft); at.After(s.now) {
		if seen := st.busyFrom.Add(t.detect); busyUntil.After(s.now) && seen.Before(at) {
			at = seen // look again once the frame is noticed
		}
		s.push(event{at: at, kind: evCarrier, node: n, gen: n.gen})
		return true
	}
	n.sensing = false
	st.active = false
	return false
}

// csmaDetect is the time a radio needs to notice a frame that began.
func csmaDetect(p radio.Params) time.Duration { return csmaDetectSymbols * p.SymbolTime() }

// csmaHeard tells radio r's contention that it hears a frame begin at
// now on a free channel (it runs before hearsUntil takes the frame). The
// radio notices it csmaDetect later: if its window ends before that, it
// sends regardless; otherwise the window's time that passed after the
// DIFS until then counts and the rest waits for the channel to be free
// again.
func (s *Sim) csmaHeard(r radio.NodeID) {
	if s.hearsUntil[r].After(s.now) {
		return // already busy: the earlier frame's start counts
	}
	if s.csma == nil {
		s.csma = make([]csmaState, len(s.radioOf))
	}
	st := &s.csma[r]
	st.busyFrom = s.now
	n := s.radioOf[r]
	if !st.active || st.freeFrom.IsZero() || st.gen != n.gen {
		return
	}
	t := s.csmaTimingOf(n)
	slot, seen := t.slot, s.now.Add(t.detect)
	if st.freeFrom.Add(csmaDIFSSlots*slot + st.cwLeft).Before(seen) {
		return
	}
	if passed := seen.Sub(st.freeFrom) - csmaDIFSSlots*slot; passed > 0 {
		st.cwLeft -= min(passed, st.cwLeft)
	}
	st.freeFrom = time.Time{}
}

// mtCarrierWait is the scenario's "csma" for a baseline frame: Meshtastic
// runs its own contention (baseline.go) and, when its radio then finds
// the channel busy, waits getTxDelayMsec and looks again (firmware
// RadioLibInterface.cpp: startTransmitTimer after isChannelActive;
// Meshtasticator's batchSim.py transmit: the same loop). getTxDelayMsec
// is random(0, 2^CWsize) slots with CWsize = map(channel utilisation, 0,
// 100, CWmin, CWmax): CWmin below 20 % utilisation, which this takes.
func (s *Sim) mtCarrierWait(n *node) bool {
	if _, busy := s.channelBusy(n); !busy {
		return false
	}
	pr := s.profile()
	n.sensing = true
	n.stats.CarrierWaits++
	d := time.Duration(n.mac.Int64N(int64(1)<<pr.cwMin)) * pr.slot(s.paramsOf(n))
	s.push(event{at: s.now.Add(d), kind: evCarrier, node: n, gen: n.gen})
	return true
}
