package p2p

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/grandcat/zeroconf"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// mDNS: each host registers the DNS-SD service _meshd._udp.local with its
// peer ID as the instance name and one TXT string "dnsaddr=<multiaddr>/p2p/<id>"
// per direct IP address (at most mdnsMaxAddrs), and browses for the same
// service, dialling every instance that is not itself and not connected.
// The meshd link then comes up as for any other connection.

// ErrMDNS reports that mDNS could not start.
var ErrMDNS = errors.New("p2p: mDNS")

// dnsaddrPrefix starts each address TXT string.
const dnsaddrPrefix = "dnsaddr="

type mdnsService struct {
	h      *Host
	names  []string // Config.MDNSInterfaces, resolved at each registration
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	dials  chan struct{} // semaphore of concurrent dials
	update chan struct{} // addresses changed

	mu     sync.Mutex
	server *zeroconf.Server
	txt    []string        // what server advertises
	ifaces []net.Interface // those of the last registration; nil: all
}

// multicastInterfaces resolves interface names; each must be up and
// multicast capable.
func multicastInterfaces(names []string) ([]net.Interface, error) {
	var out []net.Interface
	for _, n := range names {
		ifi, err := net.InterfaceByName(n)
		if err != nil {
			return nil, fmt.Errorf("%w: interface %q: %v", ErrMDNS, n, err)
		}
		if ifi.Flags&net.FlagUp == 0 || ifi.Flags&net.FlagMulticast == 0 {
			return nil, fmt.Errorf("%w: interface %q is not up with multicast (flags %v)", ErrMDNS, n, ifi.Flags)
		}
		out = append(out, *ifi)
	}
	return out, nil
}

// startMDNS starts LAN discovery. It never fails: without a usable
// multicast interface (a container, a host whose only interface is
// loopback, a named interface that is not up yet) it logs a warning and
// tries again every mdnsRetry, so a node without LAN discovery still runs.
func startMDNS(h *Host, names []string) *mdnsService {
	ctx, cancel := context.WithCancel(h.ctx)
	m := &mdnsService{
		h:      h,
		names:  names,
		ctx:    ctx,
		cancel: cancel,
		dials:  make(chan struct{}, mdnsMaxDials),
		update: make(chan struct{}, 1),
	}
	m.wg.Add(2)
	go m.announceLoop()
	go m.browseLoop()
	return m
}

// mdnsText returns the TXT strings advertising addrs of self.
func mdnsText(addrs []ma.Multiaddr, self peer.ID) []string {
	var ips []ma.Multiaddr
	lan := false
	for _, a := range addrs {
		first, _ := ma.SplitFirst(a)
		if first == nil || (first.Protocol().Code != ma.P_IP4 && first.Protocol().Code != ma.P_IP6) || isCircuit(a) {
			continue
		}
		ips = append(ips, a)
		lan = lan || !manet.IsIPLoopback(a)
	}
	var txt []string
	for _, a := range ips {
		// Loopback addresses mean nothing to LAN neighbours (they would
		// dial themselves), unless loopback is all there is (tests).
		if lan && manet.IsIPLoopback(a) {
			continue
		}
		if len(txt) == mdnsMaxAddrs {
			break
		}
		txt = append(txt, dnsaddrPrefix+a.String()+"/p2p/"+self.String())
	}
	return txt
}

// mdnsIPs returns the distinct IPs of addrs (at most mdnsMaxAddrs).
func mdnsIPs(addrs []ma.Multiaddr) []string {
	var ips []string
	for _, a := range addrs {
		first, _ := ma.SplitFirst(a)
		if first == nil || (first.Protocol().Code != ma.P_IP4 && first.Protocol().Code != ma.P_IP6) {
			continue
		}
		if v := first.Value(); !slices.Contains(ips, v) && len(ips) < mdnsMaxAddrs {
			ips = append(ips, v)
		}
	}
	return ips
}

// mdnsPort picks the SRV port: the first TCP or UDP port of addrs (the TXT
// strings are what peers dial; the SRV record just needs a real port).
func mdnsPort(addrs []ma.Multiaddr) int {
	for _, code := range []int{ma.P_TCP, ma.P_UDP} {
		for _, a := range addrs {
			if v, err := a.ValueForProtocol(code); err == nil {
				var p int
				if _, err := fmt.Sscanf(v, "%d", &p); err == nil && p > 0 {
					return p
				}
			}
		}
	}
	return 4001
}

// register (re)registers the service with the current addresses.
func (m *mdnsService) register() error {
	ifaces, err := multicastInterfaces(m.names)
	if err != nil {
		return err
	}
	addrs, err := m.h.host.Network().InterfaceListenAddresses()
	if err != nil {
		return fmt.Errorf("%w: listen addresses: %v", ErrMDNS, err)
	}
	txt := mdnsText(addrs, m.h.self)
	if len(txt) == 0 {
		return fmt.Errorf("%w: no IP listen address to advertise", ErrMDNS)
	}
	m.mu.Lock()
	same := m.server != nil && slices.Equal(m.txt, txt)
	m.mu.Unlock()
	if same {
		return nil // observed or relay addresses changed; the LAN ones did not
	}
	// RegisterProxy, not Register: Register leaves out loopback addresses
	// and uses the OS host name; the A/AAAA records here are the IPs the
	// host listens on, under the peer ID as host name. zeroconf's
	// Server.SetText races with its own responders, so an address change
	// replaces the server (the old one sends a goodbye).
	srv, err := zeroconf.RegisterProxy(m.h.self.String(), mdnsServiceType, mdnsDomain, mdnsPort(addrs),
		m.h.self.String(), mdnsIPs(addrs), txt, ifaces)
	if err != nil {
		return fmt.Errorf("%w: register %s: %v", ErrMDNS, mdnsServiceType, err)
	}
	m.mu.Lock()
	old := m.server
	m.server, m.txt, m.ifaces = srv, txt, ifaces
	m.mu.Unlock()
	if old != nil {
		old.Shutdown()
	}
	return nil
}

func (m *mdnsService) addrsChanged() {
	select {
	case m.update <- struct{}{}:
	default:
	}
}

// announceLoop registers the service, again when the addresses change, and
// every mdnsRetry while registering fails.
func (m *mdnsService) announceLoop() {
	defer m.wg.Done()
	failed := 0
	retry := time.NewTimer(0)
	defer retry.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-m.update:
		case <-retry.C:
		}
		err := m.register()
		switch {
		case err == nil:
			if failed > 0 {
				m.h.log.Info("mDNS LAN discovery running", "after_attempts", failed+1)
			}
			failed = 0
			continue
		case failed == 0:
			m.h.log.Warn("mDNS LAN discovery unavailable; running without it and retrying", "retry", mdnsRetry, "err", err)
		default:
			m.h.log.Debug("mDNS still unavailable", "err", err)
		}
		failed++
		retry.Reset(mdnsRetry)
	}
}

// browseLoop runs one browse session after another.
func (m *mdnsService) browseLoop() {
	defer m.wg.Done()
	// Short sessions first: zeroconf stops re-sending its query once any
	// answer arrived (often this host's own), so a neighbour that was not
	// answering yet is found by the next session's query. They grow to
	// mdnsBrowseInterval.
	interval := mdnsFirstBrowse
	for m.ctx.Err() == nil {
		ctx, cancel := context.WithTimeout(m.ctx, interval)
		interval = min(2*interval, mdnsBrowseInterval)
		m.browse(ctx)
		<-ctx.Done() // a failed session waits out its interval
		cancel()
	}
}

// browse runs one session: it returns when ctx ends and zeroconf closed
// the entries channel.
func (m *mdnsService) browse(ctx context.Context) {
	m.mu.Lock()
	ifaces, registered := m.ifaces, m.server != nil
	m.mu.Unlock()
	if !registered {
		return // announceLoop reports the missing interface
	}
	r, err := zeroconf.NewResolver(zeroconf.SelectIfaces(ifaces))
	if err != nil {
		m.h.log.Warn("mDNS browse failed", "err", err)
		return
	}
	entries := make(chan *zeroconf.ServiceEntry, 16)
	if err := r.Browse(ctx, mdnsServiceType, mdnsDomain, entries); err != nil {
		m.h.log.Warn("mDNS browse failed", "err", err)
	}
	// zeroconf closes entries when the session's context ends, also after
	// a failed Browse; it blocks sending until we read, so read to the end.
	for e := range entries {
		m.found(e)
	}
}

// found dials a discovered peer unless it is this host or connected.
func (m *mdnsService) found(e *zeroconf.ServiceEntry) {
	ai, err := parseMDNSEntry(e.Instance, e.Text)
	if err != nil {
		m.h.log.Debug("mDNS entry ignored", "instance", e.Instance, "err", err)
		return
	}
	if ai.ID == m.h.self || m.h.host.Network().Connectedness(ai.ID) == network.Connected {
		return
	}
	select {
	case m.dials <- struct{}{}:
	default:
		return // enough dials in flight; the next session retries
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer func() { <-m.dials }()
		ctx, cancel := context.WithTimeout(m.ctx, mdnsConnectTimeout)
		defer cancel()
		if err := m.h.host.Connect(ctx, ai); err != nil {
			m.h.log.Debug("mDNS peer unreachable", "peer", ai.ID, "err", err)
		}
	}()
}

// parseMDNSEntry reads the peer and its addresses from an mDNS instance
// name and TXT strings (input from the network: bounded, never trusted).
// Addresses naming another peer are skipped.
func parseMDNSEntry(instance string, txt []string) (peer.AddrInfo, error) {
	id, err := peer.Decode(instance)
	if err != nil {
		return peer.AddrInfo{}, fmt.Errorf("%w: instance %q is not a peer ID: %v", ErrMDNS, instance, err)
	}
	ai := peer.AddrInfo{ID: id}
	for i, s := range txt {
		if i == 4*mdnsMaxAddrs || len(ai.Addrs) == mdnsMaxAddrs {
			break
		}
		v, ok := strings.CutPrefix(s, dnsaddrPrefix)
		if !ok {
			continue
		}
		a, err := ma.NewMultiaddr(v)
		if err != nil {
			continue
		}
		transport, p := peer.SplitAddr(a)
		if transport == nil || (p != "" && p != id) {
			continue
		}
		ai.Addrs = append(ai.Addrs, transport)
	}
	if len(ai.Addrs) == 0 {
		return peer.AddrInfo{}, fmt.Errorf("%w: instance %s advertises no usable address", ErrMDNS, id)
	}
	return ai, nil
}

// close stops browsing and advertising and waits for this service's
// goroutines. (zeroconf's own goroutines end shortly after, on their own.)
func (m *mdnsService) close() {
	m.cancel()
	m.wg.Wait()
	m.mu.Lock()
	srv := m.server
	m.server = nil
	m.mu.Unlock()
	if srv != nil {
		srv.Shutdown()
	}
}
