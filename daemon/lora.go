package daemon

import (
	"fmt"
	"log/slog"
	"math"
	"time"

	"meshd.dev/meshd/daemon/lorareg"
	"meshd.dev/meshd/routing"
	contract "meshd.dev/meshd/transports/link"
	"meshd.dev/meshd/transports/lora"
)

// LoRaConfig is one [[lora]] section: an RNode-compatible modem on a serial
// port. Fields left out take the defaults of DefaultLoRa.
type LoRaConfig struct {
	// Port is the modem's serial port (/dev/ttyUSB0, /dev/ttyACM0, or a
	// pseudo-terminal of the RNode emulator).
	Port string `toml:"port"`
	// Region is EU868 or US915; it decides the allowed frequencies and
	// powers, the duty cycle and the dwell time.
	Region string `toml:"region"`
	// Frequency is the centre frequency in Hz.
	Frequency int64 `toml:"frequency"`
	// Bandwidth is the LoRa bandwidth in Hz.
	Bandwidth int `toml:"bandwidth"`
	// SF is the spreading factor, 7..12.
	SF int `toml:"sf"`
	// CR is the coding rate denominator, 5..8 for 4/5..4/8.
	CR int `toml:"cr"`
	// TxPower is the transmit power in dBm; it must not exceed the
	// region's (sub-band's) limit.
	TxPower *int `toml:"tx_power"`
}

// LoRa defaults: EU868 sub-band g3 (869.4-869.65 MHz, 10 % duty cycle,
// 500 mW), 125 kHz, SF9, 4/5, 14 dBm.
const (
	DefaultLoRaRegion    = string(lorareg.EU868)
	DefaultLoRaFrequency = 869_525_000
	DefaultLoRaBandwidth = 125_000
	DefaultLoRaSF        = 9
	DefaultLoRaCR        = 5
	DefaultLoRaTxPower   = 14
)

// DefaultLoRa returns the settings `--lora PORT` uses.
func DefaultLoRa(port string) LoRaConfig {
	p := DefaultLoRaTxPower
	return LoRaConfig{Port: port, Region: DefaultLoRaRegion, Frequency: DefaultLoRaFrequency,
		Bandwidth: DefaultLoRaBandwidth, SF: DefaultLoRaSF, CR: DefaultLoRaCR, TxPower: &p}
}

// withDefaults fills the fields a section left out.
func (c LoRaConfig) withDefaults() LoRaConfig {
	d := DefaultLoRa(c.Port)
	if c.Region == "" {
		c.Region = d.Region
	}
	if c.Frequency == 0 {
		c.Frequency = d.Frequency
	}
	if c.Bandwidth == 0 {
		c.Bandwidth = d.Bandwidth
	}
	if c.SF == 0 {
		c.SF = d.SF
	}
	if c.CR == 0 {
		c.CR = d.CR
	}
	if c.TxPower == nil {
		c.TxPower = d.TxPower
	}
	return c
}

// plan checks the section against its region.
func (c LoRaConfig) plan() (lorareg.Plan, error) {
	c = c.withDefaults()
	return lorareg.Check(lorareg.Settings{Region: lorareg.Region(c.Region), FrequencyHz: c.Frequency,
		BandwidthHz: c.Bandwidth, SF: c.SF, CR: c.CR, TxPowerDBm: *c.TxPower})
}

// loraPorts replaces the [[lora]] sections with one per port (from
// --lora or MESHD_LORA): a port that has a section in the file keeps its
// settings, another gets DefaultLoRa.
func loraPorts(file []LoRaConfig, ports []string) []LoRaConfig {
	out := make([]LoRaConfig, 0, len(ports))
	for _, p := range ports {
		c := DefaultLoRa(p)
		for _, f := range file {
			if f.Port == p {
				c = f
				break
			}
		}
		out = append(out, c)
	}
	return out
}

// validateLoRa checks the [[lora]] sections.
func (c *Config) validateLoRa(bad func(field, format string, a ...any) error) error {
	seen := map[string]bool{}
	for i, s := range c.LoRa {
		field := fmt.Sprintf("lora[%d]", i)
		if s.Port == "" {
			return bad(field+".port", "empty (the modem's serial port, e.g. /dev/ttyUSB0)")
		}
		if seen[s.Port] {
			return bad(field+".port", "%q is listed twice", s.Port)
		}
		seen[s.Port] = true
		if _, err := s.plan(); err != nil {
			return bad(field, "port %s: %v", s.Port, err)
		}
	}
	return nil
}

// openLoRa starts one supervised transport per [[lora]] section. Each
// keeps its duty-cycle ledger across replugs of its modem.
func openLoRa(cfg Config, log *slog.Logger) ([]contract.Transport, error) {
	var ts []contract.Transport
	for _, s := range cfg.LoRa {
		t, err := openLoRaPort(s, log, nil)
		if err != nil {
			for _, o := range ts {
				o.Close()
			}
			return nil, err
		}
		ts = append(ts, t)
	}
	return ts, nil
}

// openLoRaPort starts the transport of one section; open replaces the
// serial port in tests.
func openLoRaPort(s LoRaConfig, log *slog.Logger, open lora.Opener) (*lora.Transport, error) {
	p, err := s.plan()
	if err != nil {
		return nil, fmt.Errorf("%w: lora port %s: %v", ErrConfig, s.Port, err)
	}
	reg := lorareg.NewRegulator(p)
	return lora.NewTransport(lora.TransportOptions{
		Port: s.Port,
		Open: open,
		Config: lora.Config{
			FrequencyHz: uint32(p.FrequencyHz), BandwidthHz: uint32(p.BandwidthHz), TxPowerDBm: p.TxPowerDBm,
			SF: p.SF, CR: p.CR, Airtime: p.Airtime, Logger: log, Name: s.Port,
		},
		Gate: reg, Bitrate: p.Bitrate(), DutyCycle: p.DutyCycle, MTU: p.MTU,
	})
}

// budgetInterval is how often a duty-cycled link's remaining airtime is
// reported to the engine (when it changed by a percent or more).
const budgetInterval = 10 * time.Second

// pumpBudget tells the engine, on the loop, what share of its hourly
// airtime a duty-cycled link has left (routing.LinkBudget), so adverts and
// rebroadcasts yield to data as it runs out; at once when the link comes up
// (a replugged modem keeps its ledger), then every budgetInterval.
func (n *Node) pumpBudget(l *link) {
	t := time.NewTicker(budgetInterval)
	defer t.Stop()
	last := -1.0
	for {
		if r := l.conn.Stats().Radio; r != nil {
			rem := 1.0
			if total := r.AirtimeUsed + r.AirtimeLeft; total > 0 {
				rem = float64(r.AirtimeLeft) / float64(total)
			}
			if math.Abs(rem-last) >= 0.01 {
				last = rem
				if !n.enqueue(func() {
					if !l.gone {
						n.step(routing.LinkBudget{Link: l.id, Remaining: rem})
					}
				}) {
					return
				}
			}
		}
		select {
		case <-t.C:
		case <-l.conn.Done():
			return
		case <-n.ctx.Done():
			return
		}
	}
}
