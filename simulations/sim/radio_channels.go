package sim

import (
	"time"

	"meshd.dev/meshd/simulations/radio"
)

// radioChan is the channel a radio node sends and listens on.
type radioChan struct {
	p    radio.Params
	freq int64
}

// setupChannels gives each radio node its channel when a [[nodes]] entry
// sets its own sf or frequency_hz; otherwise s.chans stays nil and every
// node uses the radio's (the common case costs nothing).
func (s *Sim) setupChannels() {
	own := map[string]NodeSpec{}
	for _, n := range s.sc.Nodes {
		if n.SF != 0 || n.FrequencyHz != 0 {
			own[n.Name] = n
		}
	}
	if len(own) == 0 {
		return
	}
	s.chans = make([]radioChan, len(s.radioOf))
	for i, n := range s.radioOf {
		c := radioChan{p: s.params, freq: s.radioCfg.FrequencyHz}
		if spec, ok := own[n.name]; ok {
			c = s.sc.Radio.channelOf(spec)
		}
		s.chans[i] = c
	}
}

// channelOf returns the channel of the node spec: the radio's with the
// node's own sf and frequency_hz.
func (r Radio) channelOf(n NodeSpec) radioChan {
	c := radioChan{p: r.Params(), freq: r.FrequencyHz}
	if n.SF != 0 {
		c.p.SF = n.SF
	}
	if n.FrequencyHz != 0 {
		c.freq = n.FrequencyHz
	}
	return c
}

// paramsOf returns the modulation node n sends and listens with.
func (s *Sim) paramsOf(n *node) radio.Params {
	if s.chans == nil || n.radioID < 0 {
		return s.params
	}
	return s.chans[n.radioID].p
}

// freqOf returns the frequency node n sends and listens on.
func (s *Sim) freqOf(n *node) int64 {
	if s.chans == nil || n.radioID < 0 {
		return s.radioCfg.FrequencyHz
	}
	return s.chans[n.radioID].freq
}

// sameChannel reports whether b listens where a sends: same frequency,
// spreading factor and bandwidth (a LoRa receiver demodulates one SF).
func (s *Sim) sameChannel(a, b *node) bool {
	if s.chans == nil {
		return true
	}
	ca, cb := s.chans[a.radioID], s.chans[b.radioID]
	return ca.freq == cb.freq && ca.p.SF == cb.p.SF && ca.p.BandwidthHz == cb.p.BandwidthHz
}

// dutyLimitOf returns the hourly airtime node n's sub-band allows.
func (s *Sim) dutyLimitOf(n *node) time.Duration {
	if s.chans == nil {
		return s.dutyLimit
	}
	if band, err := radio.EU868().Find(s.freqOf(n), s.paramsOf(n).BandwidthHz); err == nil {
		return band.AirtimePerHour()
	}
	return s.dutyLimit
}

// validateChannels checks the nodes' own channels.
func (sc *Scenario) validateChannels(pos map[string]keyPos) error {
	r := sc.Radio
	for i, n := range sc.Nodes {
		if n.SF == 0 && n.FrequencyHz == 0 {
			continue
		}
		f := "nodes." + itoa(i)
		field := f + ".sf"
		if n.SF == 0 {
			field = f + ".frequency_hz"
		}
		if !n.LoRa {
			return radioBad(pos, field, "node %q has a channel but no radio (set lora = true)", n.Name)
		}
		if n.SF != 0 && (n.SF < 7 || n.SF > 12) {
			return radioBad(pos, f+".sf", "%d not in 7..12", n.SF)
		}
		if n.FrequencyHz < 0 {
			return radioBad(pos, f+".frequency_hz", "%d is negative", n.FrequencyHz)
		}
		c := r.channelOf(n)
		if err := c.p.Validate(); err != nil {
			return radioBad(pos, field, "%v", err)
		}
		if r.DutyCycle != "eu868" {
			continue
		}
		band, err := radio.EU868().Find(c.freq, c.p.BandwidthHz)
		if err != nil {
			return radioBad(pos, f+".frequency_hz", "%d: %v (set radio.duty_cycle = \"off\" outside EU868)", c.freq, err)
		}
		gain := r.Propagation.AntennaGainDBi
		if n.GainDBi != nil {
			gain = *n.GainDBi
		}
		if err := band.CheckPower(r.TxPowerDBm, gain); err != nil {
			return radioBad(pos, f+".frequency_hz", "node %q: %v", n.Name, err)
		}
	}
	return nil
}
