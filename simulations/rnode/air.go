package rnode

import (
	"time"

	"meshd.dev/meshd/transports/lora/kiss"
)

// Airtime accounting of the ESP32 firmware: 480 bins of 7.5 s over an hour,
// in whole milliseconds. The short-term airtime is the mean of the current
// and the previous bin (about the last 15 s), the long-term one the sum of
// all bins over the hour. The airtime locks compare them with the limits
// the host set (ST_ALOCK, LT_ALOCK).
const (
	airtimeBinLenMs   = 7500
	airtimeBins       = 3600 * 1000 / airtimeBinLenMs
	airtimeLongtermMs = 3600 * 1000
	dcdWindow         = 7500 * time.Millisecond // DCD_SAMPLES x STATUS_INTERVAL_MS

	csmaCWBands          = 4
	csmaCWPerBandWindows = 15
	csmaBand1MaxAirtime  = 7
	csmaBandNMinAirtime  = 85
)

type air struct {
	bins        [airtimeBins]uint16
	longBins    [airtimeBins]float32
	airtime     float32 // short-term share of time spent sending
	longAirtime float32
	totalUtil   float32 // channel busy (heard or sent), short term
	longUtil    float32
	cwBand      int
	cwMin       int
	cwMax       int
	heard       []span // what the radio heard in the last DCD window
}

type span struct{ from, to time.Time }

func (a *air) reset() {
	band, lo, hi := a.cwBand, a.cwMin, a.cwMax
	*a = air{cwBand: band, cwMin: lo, cwMax: hi}
}

func (m *modem) bin(now time.Time) (cb, nb int) {
	cb = int(m.millis(now)%airtimeLongtermMs) / airtimeBinLenMs
	return cb, (cb + 1) % airtimeBins
}

// addAirtime is add_airtime: the cost of a frame of written bytes by the
// firmware's own formula (which, unlike Semtech's, has no ceiling on the
// symbol count), added in whole milliseconds to the current bin.
func (m *modem) addAirtime(written int, now time.Time) {
	ldr := 0
	if m.ldro {
		ldr = 1
	}
	symbols := float32(8*written + 16 - 4*m.sf + 8 + 20)
	symbols /= float32(4 * (m.sf - 2*ldr))
	symbols *= float32(m.cr)
	symbols += float32(m.preamble) + 0.25 + 8
	cost := symbols * m.phy.symbolTimeMs
	cb, nb := m.bin(now)
	m.bins[cb] = uint16(float32(m.bins[cb]) + cost)
	m.bins[nb] = 0
}

// airtimeLocked is the firmware's airtime_lock.
func (m *modem) airtimeLocked() bool {
	return m.stALock != 0 && m.airtime >= m.stALock || m.ltALock != 0 && m.longAirtime >= m.ltALock
}

// updateAirtime is update_airtime: recompute the shares, adapt the CSMA
// contention window, report the channel statistics.
func (m *modem) updateAirtime(now time.Time) {
	cb, nb := m.bin(now)
	pb := (cb + airtimeBins - 1) % airtimeBins
	m.bins[nb] = 0
	m.airtime = float32(m.bins[cb]+m.bins[pb]) / (2.0 * airtimeBinLenMs)
	var sum uint32
	var util float32
	for i := range m.bins {
		sum += uint32(m.bins[i])
		util += m.longBins[i]
	}
	m.longAirtime = float32(sum) / float32(airtimeLongtermMs)
	m.longUtil = util / airtimeBins
	m.updateCSMAParameters()
	m.emitChannelStats(now)
}

// checkModemStatus is the once-a-second part of check_modem_status: the
// share of the last 7.5 s in which the radio heard a carrier, plus its own
// airtime, goes into the long-term utilisation.
func (m *modem) checkModemStatus(now time.Time) {
	from := now.Add(-dcdWindow)
	var busy time.Duration
	keep := m.heard[:0]
	for _, s := range m.heard {
		if !s.to.After(from) {
			continue
		}
		keep = append(keep, s)
		busy += minTime(s.to, now).Sub(maxTime(s.from, from))
	}
	m.heard = keep
	m.totalUtil = min(1, float32(busy.Seconds()/dcdWindow.Seconds())+m.airtime)
	cb, nb := m.bin(now)
	m.longBins[cb] = max(m.longBins[cb], m.totalUtil)
	m.longBins[nb] = 0
	m.updateAirtime(now)
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// updateCSMAParameters widens the contention window as the modem's own
// airtime grows (update_csma_parameters), and reports a change.
func (m *modem) updateCSMAParameters() {
	pct := int(m.airtime * 100)
	band := 1
	if pct > csmaBand1MaxAirtime {
		band = arduinoMap(pct+csmaBand1MaxAirtime, csmaBand1MaxAirtime, csmaBandNMinAirtime, 2, csmaCWBands)
	}
	band = min(band, csmaCWBands)
	if band != m.cwBand {
		m.cwBand = band
		m.cwMin = (band - 1) * csmaCWPerBandWindows
		m.cwMax = band*csmaCWPerBandWindows - 1
		m.emitEsc(kiss.CmdStatCSMA, byte(m.cwBand), byte(m.cwMin), byte(m.cwMax))
	}
}

// arduinoMap is Arduino's map() in integer arithmetic.
func arduinoMap(x, inMin, inMax, outMin, outMax int) int {
	return (x-inMin)*(outMax-outMin)/(inMax-inMin) + outMin
}

// emitChannelStats is kiss_indicate_channel_stats.
func (m *modem) emitChannelStats(now time.Time) {
	noise := int(m.h.noiseFloor(m))
	rssi := noise
	if p, ok := m.h.strongestHeard(m, now); ok {
		rssi = int(p)
	}
	ats := uint16(float32(m.airtime*100) * 100)
	atl := uint16(float32(m.longAirtime*100) * 100)
	cls := uint16(float32(m.totalUtil*100) * 100)
	cll := uint16(float32(m.longUtil*100) * 100)
	m.emitEsc(kiss.CmdStatChTm,
		byte(ats>>8), byte(ats), byte(atl>>8), byte(atl),
		byte(cls>>8), byte(cls), byte(cll>>8), byte(cll),
		byte(rssi+kiss.RSSIOffset), byte(noise+kiss.RSSIOffset), 0xFF)
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
