package lora

import (
	"fmt"
	"log/slog"
	"time"
)

// Config is what the driver asks the modem for, and its timings.
type Config struct {
	// FrequencyHz is the centre frequency.
	FrequencyHz uint32
	// BandwidthHz is the LoRa bandwidth (7800 .. 500000; RNode names the
	// narrow ones by their nominal value, 7800 for 7.8 kHz).
	BandwidthHz uint32
	// TxPowerDBm is the transmit power; the firmware clamps it to what the
	// radio supports (17 dBm on SX1276 boards), which the echo check turns
	// into an error.
	TxPowerDBm int
	// SF is the spreading factor, 5..12 (the firmware's range).
	SF int
	// CR is the coding rate denominator, 5..8 for 4/5..4/8, as the RNode
	// CR command takes it.
	CR int
	// STALock and LTALock are the modem's own airtime limits (short window
	// and one hour) in percent x 100 (100 = 1 %), 1..9999; zero leaves them
	// unset. The daemon's duty-cycle ledger is the primary limit; these are
	// a second line in the firmware.
	STALock, LTALock uint16

	// Airtime returns the time on air of a DATA payload of n bytes (the
	// modem adds its 1-byte header; split packets count both frames).
	// Send waits that long before asking READY. Nil means no wait.
	Airtime func(n int) time.Duration

	// DetectTimeout bounds the wait for the detect answer (an ESP32
	// modem reboots when the port opens). Zero means 5 s.
	DetectTimeout time.Duration
	// DetectRetry is how often the detect request is repeated. Zero means
	// 500 ms.
	DetectRetry time.Duration
	// ReplyTimeout bounds the wait for an answer to a command, and a
	// write to the port (a hung modem stops reading). Zero
	// means 2 s.
	ReplyTimeout time.Duration
	// MaxTxBacklog caps what the wait for a READY answer adds to
	// ReplyTimeout for frames the modem may still be sending: the firmware
	// reads no serial while it sends its queue, so the wait grows by the
	// airtime and channel-access time of every frame handed over in the
	// last MaxTxBacklog. Zero means 60 s.
	MaxTxBacklog time.Duration
	// TxTimeout bounds how long one Send waits for READY after the
	// airtime, while the modem says its queue is full. Zero means 30 s.
	TxTimeout time.Duration
	// ReadyPoll is the pause between READY questions while the modem
	// answers 0x00. Zero means 100 ms.
	ReadyPoll time.Duration
	// Keepalive: when no command was answered for this long, the driver
	// asks RADIO_STATE. Zero means 30 s.
	Keepalive time.Duration
	// FrameGap: a frame the modem began and then left unfinished for this
	// long is dropped (as Reticulum's host driver does after 100 ms), so a
	// truncated frame never reaches the daemon as a short packet. Zero
	// means 500 ms (a frame of 508 bytes takes 44 ms at 115200 baud; the
	// rest is slack for USB and pseudo-terminal scheduling).
	FrameGap time.Duration
	// RxQueue is how many received packets wait for the reader of
	// Packets before newer ones are dropped (counted). Zero means 64.
	RxQueue int
	// LogInterval: repeated events (garbage, drops, modem errors) are
	// logged at most once per interval, with a count. Zero means 1 minute.
	LogInterval time.Duration
	// Logger receives the driver's log lines; nil means slog.Default().
	Logger *slog.Logger
	// Name labels log lines (the port path).
	Name string
}

// Limits of the values the firmware accepts (RNode firmware and Reticulum).
const (
	MinFrequencyHz = 137_000_000
	MaxFrequencyHz = 3_000_000_000
	MinSF          = 5
	MaxSF          = 12
	MinCR          = 5
	MaxCR          = 8
	MaxTxPowerDBm  = 37
	maxALock       = 9999 // the firmware disables a lock of 100 % or more
)

// bandwidths the RNode firmware accepts, nominal Hz.
var bandwidths = []uint32{7800, 10400, 15600, 20800, 31250, 41700, 62500, 125000, 250000, 500000}

// Validate checks the radio settings against what the modem protocol can
// carry. Regional rules (bands, power, duty cycle) are the daemon's.
func (c *Config) Validate() error {
	switch {
	case c.FrequencyHz < MinFrequencyHz || c.FrequencyHz > MaxFrequencyHz:
		return fmt.Errorf("%w: frequency %d Hz not in %d..%d", ErrConfig, c.FrequencyHz, MinFrequencyHz, uint32(MaxFrequencyHz))
	case !validBandwidth(c.BandwidthHz):
		return fmt.Errorf("%w: bandwidth %d Hz is not one of %v", ErrConfig, c.BandwidthHz, bandwidths)
	case c.SF < MinSF || c.SF > MaxSF:
		return fmt.Errorf("%w: spreading factor %d not in %d..%d", ErrConfig, c.SF, MinSF, MaxSF)
	case c.CR < MinCR || c.CR > MaxCR:
		return fmt.Errorf("%w: coding rate %d not in %d..%d (4/5..4/8)", ErrConfig, c.CR, MinCR, MaxCR)
	case c.TxPowerDBm < 0 || c.TxPowerDBm > MaxTxPowerDBm:
		return fmt.Errorf("%w: TX power %d dBm not in 0..%d", ErrConfig, c.TxPowerDBm, MaxTxPowerDBm)
	case c.STALock > maxALock || c.LTALock > maxALock:
		return fmt.Errorf("%w: airtime locks %d, %d (percent x 100) not in 0..%d", ErrConfig, c.STALock, c.LTALock, maxALock)
	}
	return nil
}

func validBandwidth(hz uint32) bool {
	for _, b := range bandwidths {
		if b == hz {
			return true
		}
	}
	return false
}

func (c *Config) withDefaults() Config {
	d := *c
	def := func(p *time.Duration, v time.Duration) {
		if *p <= 0 {
			*p = v
		}
	}
	def(&d.DetectTimeout, 5*time.Second)
	def(&d.DetectRetry, 500*time.Millisecond)
	def(&d.ReplyTimeout, 2*time.Second)
	def(&d.MaxTxBacklog, time.Minute)
	def(&d.TxTimeout, 30*time.Second)
	def(&d.ReadyPoll, 100*time.Millisecond)
	def(&d.Keepalive, 30*time.Second)
	def(&d.LogInterval, time.Minute)
	def(&d.FrameGap, 500*time.Millisecond)
	if d.RxQueue <= 0 {
		d.RxQueue = 64
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	return d
}
