package sim

import (
	"time"

	"meshd.dev/meshd/simulations/radio"
)

// Reception is the [radio.reception] table: how a receiver decides whether
// a frame arrived. The defaults are the hard-threshold model meshsim always
// had (docs/simulations.md, "Radio models").
type Reception struct {
	// Fading is the per-frame fading: none (default), rayleigh or rician.
	Fading string `toml:"fading"`
	// RicianKDB is the Rician K factor in dB (default 6 dB); only with
	// fading = "rician".
	RicianKDB *float64 `toml:"rician_k_db"`
	// ErrorModel is threshold (default: the datasheet's sensitivity and
	// SNR floor) or curve (the SNR-to-packet-error curve).
	ErrorModel string `toml:"error_model"`
	// Interference is single (default: each interferer judged alone) or
	// sum (against the sum of all of them).
	Interference string `toml:"interference"`
	// SFRejection is orthogonal (default), croce or goursaud: the
	// inter-SF rejection matrix.
	SFRejection string `toml:"sf_rejection"`
	// Sensitivity is the datasheet table: sx1272 (default) or sx1276.
	Sensitivity string `toml:"sensitivity"`
	// LaterCapture lets any later frame stronger by capture_db take the
	// receiver over (LoRaSim's and FLoRa's rule).
	LaterCapture bool `toml:"later_capture"`
	// CaptureWindowSymbols lets a later, stronger frame take over only
	// within the first symbols of the earlier frame's preamble (0: never).
	CaptureWindowSymbols float64 `toml:"capture_window_symbols"`
	// Turnaround is how long a radio is deaf after sending (default 0).
	Turnaround Duration `toml:"turnaround"`
	// CADSymbols is how long a channel activity detection listens
	// (radio.carrier_sense = "cad"; 0: the default, 2 symbols).
	CADSymbols float64 `toml:"cad_symbols"`
	// CADThresholdDB is the detection threshold above the receive
	// threshold (default 0 dB).
	CADThresholdDB float64 `toml:"cad_threshold_db"`
}

func (r *Radio) applyReceptionDefaults() {
	rc := &r.Reception
	for _, d := range []struct {
		v   *string
		def string
	}{{&rc.Fading, "none"}, {&rc.ErrorModel, "threshold"}, {&rc.Interference, "single"}, {&rc.SFRejection, "orthogonal"}, {&rc.Sensitivity, "sx1272"}} {
		if *d.v == "" {
			*d.v = d.def
		}
	}
}

// cadSymbols is cad_symbols, 2 when left out (0).
func (rc Reception) cadSymbols() float64 {
	if rc.CADSymbols == 0 {
		return 2
	}
	return rc.CADSymbols
}

// maxTurnaround bounds radio.reception.turnaround: longer than any radio's
// switch, and than a short frame.
const maxTurnaround = 100 * time.Millisecond

// validateReception checks [radio.reception] and the sub-band's power
// limit; pos locates the keys in the scenario text.
func (sc *Scenario) validateReception(pos map[string]keyPos) error {
	r := sc.Radio
	rc := r.Reception
	const f = "radio.reception."
	if _, err := radio.ParseFading(rc.Fading); err != nil {
		return radioBad(pos, f+"fading", "%q is not none, rayleigh or rician", rc.Fading)
	}
	switch {
	case rc.RicianKDB != nil && rc.Fading != "rician":
		return radioBad(pos, f+"rician_k_db", "applies to fading = \"rician\" only, not %q", rc.Fading)
	case rc.RicianKDB != nil && !(*rc.RicianKDB >= -10 && *rc.RicianKDB <= 30):
		return radioBad(pos, f+"rician_k_db", "%v not in -10..30 dB", *rc.RicianKDB)
	case rc.ErrorModel != "threshold" && rc.ErrorModel != "curve":
		return radioBad(pos, f+"error_model", "%q is not threshold or curve", rc.ErrorModel)
	case rc.Interference != "single" && rc.Interference != "sum":
		return radioBad(pos, f+"interference", "%q is not single or sum", rc.Interference)
	case rc.SFRejection != "orthogonal" && rc.SFRejection != "croce" && rc.SFRejection != "goursaud":
		return radioBad(pos, f+"sf_rejection", "%q is not orthogonal, croce or goursaud", rc.SFRejection)
	}
	if _, err := radio.ParseSensitivityTable(rc.Sensitivity); err != nil {
		return radioBad(pos, f+"sensitivity", "%q is not sx1272 or sx1276", rc.Sensitivity)
	}
	switch {
	case rc.ErrorModel == "curve" && rc.Sensitivity != "sx1272":
		return radioBad(pos, f+"sensitivity", "applies to error_model = \"threshold\": the curve replaces the datasheet's table")
	case !(rc.CaptureWindowSymbols >= 0) || rc.CaptureWindowSymbols > float64(r.PreambleSymbols):
		return radioBad(pos, f+"capture_window_symbols", "%v not in 0..%d (radio.preamble_symbols): after the preamble the receiver has synchronised",
			rc.CaptureWindowSymbols, r.PreambleSymbols)
	case rc.LaterCapture && rc.CaptureWindowSymbols > 0:
		return radioBad(pos, f+"capture_window_symbols", "set with later_capture = true, which is an unlimited window: choose one")
	case rc.Turnaround.Duration < 0 || rc.Turnaround.Duration > maxTurnaround:
		return radioBad(pos, f+"turnaround", "%v not in 0..%v", rc.Turnaround.Duration, maxTurnaround)
	case rc.CADSymbols != 0 && !(rc.CADSymbols >= 1 && rc.CADSymbols <= 8):
		return radioBad(pos, f+"cad_symbols", "%v not in 1..8", rc.CADSymbols)
	case !(rc.CADThresholdDB >= 0 && rc.CADThresholdDB <= 20):
		return radioBad(pos, f+"cad_threshold_db", "%v not in 0..20 dB above the receive threshold (a detection is never more sensitive than the demodulator's threshold here)", rc.CADThresholdDB)
	case r.CarrierSense != "cad" && rc.CADSymbols != 0:
		return radioBad(pos, f+"cad_symbols", "applies to radio.carrier_sense = \"cad\" only, not %q", r.CarrierSense)
	case r.CarrierSense != "cad" && rc.CADThresholdDB != 0:
		return radioBad(pos, f+"cad_threshold_db", "applies to radio.carrier_sense = \"cad\" only, not %q", r.CarrierSense)
	}
	if err := sc.validatePowerLimit(pos); err != nil {
		return err
	}
	return sc.validateChannels(pos)
}

// validatePowerLimit refuses, under the EU868 duty cycle, a transmitter
// above its sub-band's e.r.p. limit (ETSI EN 300 220).
func (sc *Scenario) validatePowerLimit(pos map[string]keyPos) error {
	r := sc.Radio
	if r.DutyCycle != "eu868" {
		return nil
	}
	band, err := radio.EU868().Find(r.FrequencyHz, r.BandwidthHz)
	if err != nil {
		return nil // Validate reported it
	}
	if err := band.CheckPower(r.TxPowerDBm, r.Propagation.AntennaGainDBi); err != nil {
		return radioBad(pos, "radio.tx_power_dbm", "%v (set radio.duty_cycle = \"off\" to leave the EU868 rules)", err)
	}
	for i, n := range sc.Nodes {
		if n.GainDBi == nil {
			continue
		}
		if err := band.CheckPower(r.TxPowerDBm, *n.GainDBi); err != nil {
			return radioBad(pos, "nodes."+itoa(i)+".gain_dbi", "node %q: %v", n.Name, err)
		}
	}
	return nil
}

// mediumOptions returns the medium options [radio.reception] asks for.
func (r Radio) mediumOptions() []radio.Option {
	rc := r.Reception
	var opts []radio.Option
	if k, err := radio.ParseFading(rc.Fading); err == nil && k != radio.NoFading {
		kDB := 6.0
		if rc.RicianKDB != nil {
			kDB = *rc.RicianKDB
		}
		opts = append(opts, radio.WithFading(k, kDB))
	}
	if rc.ErrorModel == "curve" {
		opts = append(opts, radio.WithErrorCurve())
	}
	if rc.Interference == "sum" {
		opts = append(opts, radio.WithSummedInterference())
	}
	switch rc.SFRejection {
	case "croce":
		opts = append(opts, radio.WithSFRejection(radio.CroceRejection()))
	case "goursaud":
		opts = append(opts, radio.WithSFRejection(radio.GoursaudRejection()))
	}
	if rc.LaterCapture {
		opts = append(opts, radio.WithLaterCapture())
	}
	if rc.CaptureWindowSymbols > 0 {
		opts = append(opts, radio.WithCaptureWindow(rc.CaptureWindowSymbols))
	}
	if rc.Turnaround.Duration > 0 {
		opts = append(opts, radio.WithTurnaround(rc.Turnaround.Duration))
	}
	return opts
}
