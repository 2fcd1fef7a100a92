package sim

func (r *Radio) applyReceptionDefaults() {}

func (sc *Scenario) validateReception(pos map[string]string) error { return nil }

// Reception is the [radio.reception] table.
type Reception struct{}
