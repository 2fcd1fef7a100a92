package p2p

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"

	ma "github.com/multiformats/go-multiaddr"
)

// ErrPortInUse reports a listen address whose port another process
// already listens on. libp2p binds its TCP and QUIC sockets with
// SO_REUSEPORT, so a second meshd on the same port would bind silently and
// the kernel would hand each incoming connection to either node: dials
// would reach the wrong node. Config.SharePort skips the check.
var ErrPortInUse = errors.New("p2p: port already in use (another meshd? set share_port to start anyway)")

// checkPortsFree binds each fixed-port TCP and UDP listen address once,
// without SO_REUSEPORT, and releases it: that bind fails exactly when some
// socket holds the port, whether or not it set SO_REUSEPORT.
func checkPortsFree(listen []ma.Multiaddr) error {
	for _, a := range listen {
		na := socketAddr(a)
		if na == nil {
			continue
		}
		if err := probePort(na); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrPortInUse, a, err)
		}
	}
	return nil
}

// socketAddr is the IP and TCP or UDP port a listen address binds (QUIC
// binds the UDP port under /quic-v1), or nil.
func socketAddr(a ma.Multiaddr) net.Addr {
	ipS, err := a.ValueForProtocol(ma.P_IP4)
	if err != nil {
		if ipS, err = a.ValueForProtocol(ma.P_IP6); err != nil {
			return nil
		}
	}
	ip := net.ParseIP(ipS)
	if p, err := a.ValueForProtocol(ma.P_TCP); err == nil {
		port, _ := strconv.Atoi(p)
		return &net.TCPAddr{IP: ip, Port: port}
	}
	if p, err := a.ValueForProtocol(ma.P_UDP); err == nil {
		port, _ := strconv.Atoi(p)
		return &net.UDPAddr{IP: ip, Port: port}
	}
	return nil
}

func probePort(na net.Addr) error {
	switch na := na.(type) {
	case *net.TCPAddr:
		if na.Port == 0 {
			return nil
		}
		ln, err := net.ListenTCP(tcpNet(na.IP), na)
		if err != nil {
			return inUse(err)
		}
		return ln.Close()
	case *net.UDPAddr:
		if na.Port == 0 {
			return nil
		}
		c, err := net.ListenUDP(udpNet(na.IP), na)
		if err != nil {
			return inUse(err)
		}
		return c.Close()
	}
	return nil
}

// inUse keeps only "address in use": any other bind failure (an address
// not on this host, say) is libp2p's to report, as before.
func inUse(err error) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return err
	}
	return nil
}

func tcpNet(ip net.IP) string {
	if ip.To4() != nil {
		return "tcp4"
	}
	return "tcp6"
}

func udpNet(ip net.IP) string {
	if ip.To4() != nil {
		return "udp4"
	}
	return "udp6"
}
