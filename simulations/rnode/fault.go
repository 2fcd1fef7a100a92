package rnode

import (
	"fmt"
	"strings"
)

// Fault is a failure an emulated modem can be made to have, once.
type Fault int

// The faults, each with the error report of the firmware.
const (
	// FaultInitRadio: the next RADIO_STATE on fails (ERROR_INITRADIO).
	FaultInitRadio Fault = iota + 1
	// FaultTxTimeout: the next frame times out in the radio
	// (ERROR_MODEM_TIMEOUT, ERROR_TXFAILED, then the modem reboots).
	FaultTxTimeout
	// FaultMemoryLow: the next received packet is dropped
	// (ERROR_MEMORY_LOW).
	FaultMemoryLow
	faultCount
)

var faultNames = [...]string{FaultInitRadio: "init-radio", FaultTxTimeout: "tx-timeout", FaultMemoryLow: "memory-low"}

// String returns the fault's name.
func (f Fault) String() string {
	if f > 0 && f < faultCount {
		return faultNames[f]
	}
	return fmt.Sprintf("Fault(%d)", int(f))
}

// ParseFault parses a fault name: init-radio, tx-timeout or memory-low.
func ParseFault(s string) (Fault, error) {
	for f := FaultInitRadio; f < faultCount; f++ {
		if faultNames[f] == s {
			return f, nil
		}
	}
	return 0, fmt.Errorf("%w: unknown fault %q (one of %s)", ErrConfig, s, strings.Join(faultNames[1:], ", "))
}

// faultSet counts pending faults of each kind.
type faultSet [faultCount]int

func (s *faultSet) add(f Fault) error {
	if f <= 0 || f >= faultCount {
		return fmt.Errorf("%w: unknown fault %d", ErrConfig, int(f))
	}
	s[f]++
	return nil
}

func (s *faultSet) take(f Fault) bool {
	if s[f] == 0 {
		return false
	}
	s[f]--
	return true
}
