package tcp

import (
	"errors"
	"net"

	"meshd.dev/meshd/protocol"
)

// ErrRefusedPeer reports a peer the Guard refused after the handshake.
var ErrRefusedPeer = errors.New("tcp: refused by the guard")

// Guard vets inbound hosts and the peers of links: the daemon implements
// it with its allow and deny lists and its cool-down list. Its methods are
// called from many goroutines at once.
type Guard interface {
	// AllowHost reports whether an inbound connection from remote may
	// shake hands (cool-down of hosts that failed handshakes).
	AllowHost(remote net.Addr) bool
	// AllowLink reports whether the peer a handshake proved may have a
	// link; an error refuses it.
	AllowLink(a protocol.Address) error
	// HandshakeFailed reports a failed handshake with remote; it reports
	// whether to log it (repeat offenders are logged by the guard once per
	// interval).
	HandshakeFailed(remote net.Addr, err error) bool
}
