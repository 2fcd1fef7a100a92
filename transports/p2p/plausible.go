package p2p

import (
	"net"
	"slices"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// Which addresses of a peer are remembered for redialling (and handed to
// the daemon to persist): a peer may claim any listen addresses in
// identify, and a node that redialled them every backoff period, across
// restarts, would be a port scanner and SSRF helper for anyone who links
// with it once. So only addresses on the IP the connection was seen from
// are kept:
//   - the observed remote address of the connection itself;
//   - each claimed IP address with its IP replaced by the observed one
//     (same IP: unchanged; behind NAT: the public IP with the claimed
//     listen port, the port forward a NATed peer usually has). At worst
//     the node dials the peer's own host on a port it named;
//   - claimed loopback addresses as given when the connection is over
//     loopback (several nodes on one machine);
//   - no names (/dns*: they resolve to anything) and no relay circuits.
// This needs no private/public distinction: a LAN mesh sees its peers on
// private IPs, and those are kept, while a public peer can no longer make
// the node dial 10.0.0.1 or 169.254.169.254. Bootstrap peers are
// configured by the operator and kept as given.

// plausibleAddrs is the rule above for one connection observed on
// observed, with claimed the addresses the peer announced.
func plausibleAddrs(observed ma.Multiaddr, claimed []ma.Multiaddr) []ma.Multiaddr {
	obsIP, _ := splitIP(observed)
	if obsIP == nil || isCircuit(observed) {
		return nil
	}
	ip := net.IP(nil)
	if v, err := manet.ToIP(obsIP); err == nil {
		ip = v
	}
	out := []ma.Multiaddr{observed}
	for _, c := range claimed {
		cIP, cRest := splitIP(c)
		if cIP == nil || cRest == nil || isCircuit(c) {
			continue
		}
		a := obsIP.Encapsulate(cRest)
		if cv, err := manet.ToIP(cIP); err == nil && ip != nil && ip.IsLoopback() && cv.IsLoopback() {
			a = c
		}
		if !slices.ContainsFunc(out, a.Equal) {
			out = append(out, a)
		}
	}
	return out
}

// splitIP splits a into its leading /ip4 or /ip6 component and the rest;
// nil, nil if a does not start with an IP.
func splitIP(a ma.Multiaddr) (ma.Multiaddr, ma.Multiaddr) {
	if len(a) < 2 {
		return nil, nil
	}
	switch a[0].Protocol().Code {
	case ma.P_IP4, ma.P_IP6:
	default:
		return nil, nil
	}
	return ma.Multiaddr{a[0]}, a[1:]
}
