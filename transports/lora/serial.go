package lora

import (
	"context"
	"fmt"
	"io"

	"go.bug.st/serial"
)

// Baud is the RNode host protocol's line speed.
const Baud = 115200

// OpenSerial opens a serial port (or a pseudo-terminal) at 115200 baud, 8N1,
// as the RNode firmware expects. Reads block until data arrives or the
// port is closed; an unplugged USB modem makes them fail.
func OpenSerial(_ context.Context, path string) (io.ReadWriteCloser, error) {
	p, err := serial.Open(path, &serial.Mode{BaudRate: Baud, DataBits: 8, Parity: serial.NoParity, StopBits: serial.OneStopBit})
	if err != nil {
		return nil, fmt.Errorf("%w: open %s: %w", ErrPort, path, err)
	}
	return p, nil
}
