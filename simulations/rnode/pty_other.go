//go:build !linux

package rnode

import (
	"errors"
	"fmt"
)

// PTY is a modem plugged into a pseudo-terminal; only Linux is supported.
type PTY struct {
	Name, Path, Link string
}

// ServePTY is not supported on this system.
func ServePTY(h *Hub, name, link string) (*PTY, error) {
	return nil, fmt.Errorf("%w: pseudo-terminals are supported on Linux only", errors.ErrUnsupported)
}

// Close does nothing.
func (p *PTY) Close() error { return nil }

// Done is closed.
func (p *PTY) Done() <-chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}
