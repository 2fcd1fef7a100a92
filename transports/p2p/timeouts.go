package p2p

import (
	"fmt"
	"time"
)

// Defaults of Timeouts.
const (
	// DefaultKeepaliveInterval is the ping period on a link's connection;
	// DefaultKeepaliveTimeout without an answer takes the link down and
	// closes the connection. Together they bound dead-link detection on IP
	// to the timeout (under 5 s).
	DefaultKeepaliveInterval = time.Second
	DefaultKeepaliveTimeout  = 4 * time.Second
	// DefaultHandshakeTimeout bounds opening a link stream and the hello
	// exchange.
	DefaultHandshakeTimeout = 15 * time.Second
	// DefaultDialTimeout and DefaultDialTimeoutLocal bound one libp2p dial
	// (connection, security and muxer handshakes) to a public address and
	// to a private or loopback one: go-libp2p's own defaults.
	DefaultDialTimeout      = 15 * time.Second
	DefaultDialTimeoutLocal = 5 * time.Second
	// DefaultRedialTimeout bounds one redial of a known peer: the direct
	// dial and, if that fails, the dial through a circuit relay.
	DefaultRedialTimeout = 10 * time.Second
)

// Timeouts bounds the host's waits on its peers. The zero value is the
// defaults; so is any zero field. A negative field, or a KeepaliveTimeout
// not longer than KeepaliveInterval, is an ErrConfig from New.
//
// The defaults suit a node: a dead link is noticed within seconds. Raise
// them where a healthy peer can stay silent longer: a machine so starved
// of CPU that pings go unanswered for seconds (many hosts in one process
// under the race detector), or a very slow or lossy path. A longer
// KeepaliveTimeout is a longer time frames go into a dead connection.
type Timeouts struct {
	// KeepaliveInterval is the ping period on a link's connection
	// (default DefaultKeepaliveInterval).
	KeepaliveInterval time.Duration
	// KeepaliveTimeout without a ping answer takes the link down and
	// closes the connection (default DefaultKeepaliveTimeout).
	KeepaliveTimeout time.Duration
	// Handshake bounds opening a link stream and the hello exchange
	// (default DefaultHandshakeTimeout).
	Handshake time.Duration
	// Dial bounds one libp2p dial to a public address, DialLocal one to a
	// private or loopback address (defaults DefaultDialTimeout and
	// DefaultDialTimeoutLocal); a dial to a private address is bounded by
	// the shorter of the two.
	Dial, DialLocal time.Duration
	// Redial bounds one redial of a known peer, direct and then through a
	// relay (default DefaultRedialTimeout); it cuts a longer Dial short.
	Redial time.Duration
}

// withDefaults fills in the zero fields and checks the rest.
func (t Timeouts) withDefaults() (Timeouts, error) {
	fields := []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"KeepaliveInterval", &t.KeepaliveInterval, DefaultKeepaliveInterval},
		{"KeepaliveTimeout", &t.KeepaliveTimeout, DefaultKeepaliveTimeout},
		{"Handshake", &t.Handshake, DefaultHandshakeTimeout},
		{"Dial", &t.Dial, DefaultDialTimeout},
		{"DialLocal", &t.DialLocal, DefaultDialTimeoutLocal},
		{"Redial", &t.Redial, DefaultRedialTimeout},
	}
	for _, f := range fields {
		if *f.v < 0 {
			return t, fmt.Errorf("%w: timeout %s is negative (%v); zero means the default %v", ErrConfig, f.name, *f.v, f.def)
		}
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	if t.KeepaliveTimeout <= t.KeepaliveInterval {
		return t, fmt.Errorf("%w: keepalive timeout %v must be longer than the keepalive interval %v", ErrConfig, t.KeepaliveTimeout, t.KeepaliveInterval)
	}
	return t, nil
}
