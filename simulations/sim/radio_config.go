package sim

import (
	"fmt"
	"strconv"

	"meshd.dev/meshd/simulations/radio"
)

// Propagation is the [radio.propagation] table: the path-loss model and
// the antennas. The default is log-distance with LoRaSim's parameters
// (radio.DefaultPathLoss), which gives hundreds of metres; hata with
// environment = "suburban" and 2 m antennas gives the kilometres community
// meshes see outdoors (docs/simulations.md).
type Propagation struct {
	// Model is log-distance (default), free-space, two-ray, hata or
	// cost231.
	Model string `toml:"model"`
	// Environment is the Hata models' terrain: urban, large-city,
	// suburban (default) or rural.
	Environment string `toml:"environment"`
	// AntennaHeightM is every radio node's antenna height above ground
	// (default 2 m); a node's height_m overrides it.
	AntennaHeightM float64 `toml:"antenna_height_m"`
	// AntennaGainDBi is every radio node's antenna gain minus cable loss
	// (default 0 dBi); a node's gain_dbi overrides it.
	AntennaGainDBi float64 `toml:"antenna_gain_dbi"`
	// RefLossDB, RefDistanceM and Exponent override log-distance's
	// parameters (127.41 dB at 40 m, exponent 2.08).
	RefLossDB    *float64 `toml:"ref_loss_db"`
	RefDistanceM *float64 `toml:"ref_distance_m"`
	Exponent     *float64 `toml:"exponent"`
}

// radioBad is bad for a key of the radio models, prefixed with the key's
// line and column when doc has it.
func radioBad(pos map[string]keyPos, field, format string, args ...any) error {
	if at, ok := pos[field]; ok {
		return fmt.Errorf("%w: %s: %s: %s", ErrScenario, at, field, fmt.Sprintf(format, args...))
	}
	return bad(field, format, args...)
}

// applyRadioModelDefaults fills the radio model keys left out.
func (r *Radio) applyRadioModelDefaults() {
	r.Propagation.applyDefaults()
	r.applyReceptionDefaults()
}

func (pr *Propagation) applyDefaults() {
	if pr.Model == "" {
		pr.Model = radio.LogDistance.String()
	}
	if pr.Environment == "" {
		pr.Environment = radio.EnvSuburban.String()
	}
	if pr.AntennaHeightM == 0 {
		pr.AntennaHeightM = radio.DefaultAntennaHeightM
	}
}

// validateRadioModels checks the radio model keys and the nodes' antennas;
// pos locates them in the scenario text.
func (sc *Scenario) validateRadioModels(pos map[string]keyPos) error {
	pr := sc.Radio.Propagation
	if _, err := radio.ParsePathLossKind(pr.Model); err != nil {
		return radioBad(pos, "radio.propagation.model", "%q is not log-distance, free-space, two-ray, hata or cost231", pr.Model)
	}
	if _, err := radio.ParseEnvironment(pr.Environment); err != nil {
		return radioBad(pos, "radio.propagation.environment", "%q is not urban, large-city, suburban or rural", pr.Environment)
	}
	if !(pr.AntennaHeightM > 0 && pr.AntennaHeightM <= 1000) {
		return radioBad(pos, "radio.propagation.antenna_height_m", "%v not in (0, 1000] metres", pr.AntennaHeightM)
	}
	if !(pr.AntennaGainDBi >= -20 && pr.AntennaGainDBi <= 30) {
		return radioBad(pos, "radio.propagation.antenna_gain_dbi", "%v not in -20..30 dBi", pr.AntennaGainDBi)
	}
	for i, n := range sc.Nodes {
		f := fmt.Sprintf("nodes.%d", i)
		if n.HeightM != nil && !(*n.HeightM > 0 && *n.HeightM <= 1000) {
			return radioBad(pos, f+".height_m", "%v not in (0, 1000] metres", *n.HeightM)
		}
		if n.GainDBi != nil && !(*n.GainDBi >= -20 && *n.GainDBi <= 30) {
			return radioBad(pos, f+".gain_dbi", "%v not in -20..30 dBi", *n.GainDBi)
		}
		if (n.HeightM != nil || n.GainDBi != nil) && !n.LoRa {
			return radioBad(pos, f+".height_m", "node %q has an antenna but no radio (set lora = true)", n.Name)
		}
	}
	if _, err := sc.Radio.model(); err != nil {
		if at, ok := pos["radio.propagation.model"]; ok {
			return fmt.Errorf("%w (radio.propagation.model at %s)", err, at)
		}
		return err
	}
	return sc.validateReception(pos)
}

// model returns the propagation and receiver model the keys describe.
func (r Radio) model() (radio.Model, error) {
	m := radio.DefaultModel()
	pl := &m.PathLoss
	pl.ShadowSigmaDB = *r.ShadowSigmaDB
	pr := r.Propagation
	pr.applyDefaults() // a Scenario built in code may skip applyDefaults
	kind, err := radio.ParsePathLossKind(pr.Model)
	if err != nil {
		return m, bad("radio.propagation.model", "%q is not log-distance, free-space, two-ray, hata or cost231", pr.Model)
	}
	env, _ := radio.ParseEnvironment(pr.Environment)
	pl.Kind, pl.Environment = kind, env
	pl.FrequencyMHz = float64(r.FrequencyHz) / 1e6
	pl.DefaultHeightM = pr.AntennaHeightM
	for _, o := range []struct {
		field string
		v     *float64
		dst   *float64
	}{{"ref_loss_db", pr.RefLossDB, &pl.RefLossDB}, {"ref_distance_m", pr.RefDistanceM, &pl.RefDistanceM}, {"exponent", pr.Exponent, &pl.Exponent}} {
		if o.v == nil {
			continue
		}
		if kind != radio.LogDistance {
			return m, bad("radio.propagation."+o.field, "applies to model = \"log-distance\" only, not %q", pr.Model)
		}
		*o.dst = *o.v
	}
	if t, err := radio.ParseSensitivityTable(r.Reception.Sensitivity); err == nil {
		m.Sensitivity = t
	}
	if err := m.Validate(); err != nil {
		return m, bad("radio.propagation", "%v", err)
	}
	return m, nil
}

// devices returns a function giving the radio of the node called name:
// the scenario's power and antenna, with the node's own height and gain if
// it gives them.
func (sc *Scenario) devices() func(name string) radio.Device {
	sc.Radio.Propagation.applyDefaults()
	def := radio.Device{TxPowerDBm: sc.Radio.TxPowerDBm, GainDBi: sc.Radio.Propagation.AntennaGainDBi, HeightM: sc.Radio.Propagation.AntennaHeightM}
	own := map[string]radio.Device{}
	for _, n := range sc.Nodes {
		if n.HeightM == nil && n.GainDBi == nil {
			continue
		}
		d := def
		if n.HeightM != nil {
			d.HeightM = *n.HeightM
		}
		if n.GainDBi != nil {
			d.GainDBi = *n.GainDBi
		}
		own[n.Name] = d
	}
	return func(name string) radio.Device {
		if d, ok := own[name]; ok {
			return d
		}
		return def
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// captureDB is capture_db, 6 dB when left out.
func (r Radio) captureDB() float64 {
	if r.CaptureDB == nil {
		return 6
	}
	return *r.CaptureDB
}
