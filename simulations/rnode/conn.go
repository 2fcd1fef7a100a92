package rnode

import (
	"io"
	"sync"
)

// maxPending bounds the bytes a modem holds for a host that does not read:
// past it, output is dropped, as a UART drops what no one reads.
const maxPending = 1 << 20

// Conn is the host's side of a modem's serial line: Write sends bytes to
// the modem, Read returns what the modem sent. Close pulls the cable
// ([Hub.Unplug]). After that, Read returns io.EOF once the bytes already
// sent are read, and Write returns ErrUnplugged.
type Conn struct {
	h *Hub
	m *modem

	mu      sync.Mutex
	buf     []byte
	closed  bool
	dropped int
	ready   chan struct{} // has a value when buf is non-empty or closed
}

func newConn(h *Hub, m *modem) *Conn {
	return &Conn{h: h, m: m, ready: make(chan struct{}, 1)}
}

// Name returns the modem's name.
func (c *Conn) Name() string { return c.m.name }

// Write sends host bytes to the modem.
func (c *Conn) Write(p []byte) (int, error) {
	if err := c.h.input(c, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Read reads bytes the modem sent, waiting for some.
func (c *Conn) Read(p []byte) (int, error) {
	for {
		c.mu.Lock()
		if len(c.buf) > 0 {
			n := copy(p, c.buf)
			c.buf = c.buf[n:]
			if len(c.buf) > 0 || c.closed {
				c.signal()
			}
			c.mu.Unlock()
			return n, nil
		}
		if c.closed {
			c.signal()
			c.mu.Unlock()
			return 0, io.EOF
		}
		c.mu.Unlock()
		<-c.ready
	}
}

// Close unplugs the modem.
func (c *Conn) Close() error { return c.h.Unplug(c.m.name) }

// Dropped returns how many bytes were dropped because the host did not
// read.
func (c *Conn) Dropped() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dropped
}

func (c *Conn) signal() {
	select {
	case c.ready <- struct{}{}:
	default:
	}
}

// deliver queues modem output for the host.
func (c *Conn) deliver(p []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	if len(c.buf)+len(p) > maxPending {
		c.dropped += len(p)
		return
	}
	c.buf = append(c.buf, p...)
	c.signal()
}

func (c *Conn) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	c.signal()
}
