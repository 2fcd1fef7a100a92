package lora

import (
	"errors"
	"fmt"

	"meshd.dev/meshd/transports/lora/kiss"
)

// Errors.
var (
	ErrConfig        = errors.New("lora: invalid configuration")
	ErrNotDetected   = errors.New("lora: no RNode answered the detect request")
	ErrFirmware      = errors.New("lora: modem firmware")
	ErrEchoMismatch  = errors.New("lora: modem applied other settings than configured")
	ErrNoAnswer      = errors.New("lora: modem did not answer")
	ErrModem         = errors.New("lora: modem error")
	ErrModemReset    = errors.New("lora: modem reset")
	ErrRadioOff      = errors.New("lora: radio reported off")
	ErrClosed        = errors.New("lora: driver closed")
	ErrPort          = errors.New("lora: serial port")
	ErrFrameSize     = errors.New("lora: frame size")
	ErrQueueFull     = errors.New("lora: modem queue full")
	ErrLinkDown      = errors.New("lora: link down")
	ErrNotConfigured = errors.New("lora: modem not configured")
)

// ModemError is an ERROR frame from the modem.
type ModemError struct{ Code byte }

func (e *ModemError) Error() string {
	return fmt.Sprintf("lora: modem error 0x%02X: %s", e.Code, kiss.ErrorText(e.Code))
}

// Unwrap makes errors.Is(err, ErrModem) true, and ErrQueueFull for code 0x04.
func (e *ModemError) Unwrap() []error {
	if e.Code == kiss.ErrorQueueFull {
		return []error{ErrModem, ErrQueueFull}
	}
	return []error{ErrModem}
}

// fatalModemError reports whether an ERROR code ends the driver (the port
// is reopened and the modem configured again). Reticulum's host driver
// treats the same codes as fatal; after a transmit failure the firmware
// reboots itself.
func fatalModemError(code byte) bool {
	switch code {
	case kiss.ErrorQueueFull, kiss.ErrorMemoryLow, kiss.ErrorModemTimeout:
		return false
	}
	return true
}
