package daemon

import (
	"context"
	"slices"
	"time"

	"github.com/multiformats/go-multiaddr"

	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/routing"
	"meshd.dev/meshd/transports/p2p"
)

// Mailbox relays across the internet.
//
// A node names its mailbox relays (nodes in relay mode) in its signed DHT
// record and keeps a link to each of them, so whatever they hold for it
// reaches it when it comes back: the link is a route, and a relay's
// routing engine retries the messages it keeps for a destination as soon
// as a route to it appears. A sender that looks the recipient up in the
// DHT and cannot reach it reads the mailbox relays from the same record,
// connects to them and tells its engine (routing.MailboxFound), which
// seals the message with the key from the record and offers it to the
// recipient's mailbox in a signed custody offer. The relay keeps it in
// custody (quotas per destination, source and neighbour, expiry with the
// message, synced before it answers) until it hands it to the recipient
// itself or the recipient's receipt passes it (routing/mailbox.go), and
// the sender believes only that relay's signed acceptance; the origin
// keeps its own copy until the receipt anyway.

// DefaultCollectInterval is how often a node checks that it has a link to
// each of its mailbox relays and dials those it lacks.
const DefaultCollectInterval = 30 * time.Second

// MailboxConfig is the [mailbox] section.
type MailboxConfig struct {
	// Relays are the mesh addresses (32 hex digits) of this node's
	// mailbox relays, at most p2p.MaxRecordMailboxes. The node's DHT
	// record names them, and the node keeps a link to each.
	Relays []string `toml:"relays"`
	// CircuitRelays are libp2p circuit relays (multiaddrs with
	// /p2p/<peer ID>) that AutoRelay reserves a slot on when the host is
	// not publicly reachable, besides connected relay-mode peers.
	CircuitRelays []string `toml:"circuit_relays"`
	// CollectInterval is how often the node dials the mailbox relays it
	// has no link to.
	CollectInterval Duration `toml:"collect_interval"`
	// StampBits is the proof-of-work stamp, in leading zero bits, that a
	// relay-mode node asks of custody offers from offerers it does not know
	// (docs/routing.md section on mailboxes): default 16, 0 asks none, at
	// most 18 (what senders mint).
	StampBits int `toml:"stamp_bits"`
}

// DefaultStampBits is [mailbox] stamp_bits' default: some 20 ms of one
// server core per message for a sender, one hash for the relay
// (docs/performance.md).
const DefaultStampBits = 16

// maxStampBits is the most senders mint (routing's maxMintStampBits).
const maxStampBits = 18

// validate checks the [mailbox] section.
func (m *MailboxConfig) validate(bad func(field, format string, a ...any) error) error {
	if len(m.Relays) > p2p.MaxRecordMailboxes {
		return bad("mailbox.relays", "%d relays, at most %d", len(m.Relays), p2p.MaxRecordMailboxes)
	}
	for _, r := range m.Relays {
		if _, err := protocol.ParseAddress(r); err != nil {
			return bad("mailbox.relays", "%q is not a mesh address (32 hex digits): %v", r, err)
		}
	}
	if err := validatePeerAddrs("mailbox.circuit_relays", m.CircuitRelays, bad); err != nil {
		return err
	}
	if m.StampBits < 0 || m.StampBits > maxStampBits {
		return bad("mailbox.stamp_bits", "%d is not between 0 and %d (the most senders mint)", m.StampBits, maxStampBits)
	}
	if m.CollectInterval < Duration(time.Second) {
		return bad("mailbox.collect_interval", "%v is below one second", time.Duration(m.CollectInterval))
	}
	return nil
}

// validatePeerAddrs checks that each of addrs is a multiaddr naming its
// peer (/p2p/<peer ID>), as libp2p needs to dial and authenticate it.
func validatePeerAddrs(field string, addrs []string, bad func(field, format string, a ...any) error) error {
	for _, s := range addrs {
		a, err := multiaddr.NewMultiaddr(s)
		if err != nil {
			return bad(field, "%q is not a multiaddr: %v", s, err)
		}
		if _, err := a.ValueForProtocol(multiaddr.P_P2P); err != nil {
			return bad(field, "%q has no /p2p/<peer ID> part", s)
		}
	}
	return nil
}

// addrs returns the configured relays (validated already) but self: a
// list shared by several nodes may name the relays among them.
func (m *MailboxConfig) addrs(self protocol.Address) []protocol.Address {
	var out []protocol.Address
	for _, r := range m.Relays {
		if a, err := protocol.ParseAddress(r); err == nil && a != self {
			out = append(out, a)
		}
	}
	return out
}

// autoMailboxes is how many mailbox relays a node without configured ones
// chooses from the relays it is linked to.
const autoMailboxes = 2

// runCollector keeps a link to each mailbox relay: at start and every
// CollectInterval it dials those it has no link to. What a relay holds
// for this node then comes by the ordinary route. A node that configures
// none (and is no relay itself) chooses up to autoMailboxes of its
// neighbours that announce the mailbox capability, and keeps them.
func (n *Node) runCollector() {
	relays := n.cfg.Mailbox.addrs(n.id.Address())
	auto := len(relays) == 0 && !n.cfg.Relay
	if len(relays) == 0 && !auto {
		return
	}
	t := time.NewTicker(time.Duration(n.cfg.Mailbox.CollectInterval))
	defer t.Stop()
	for {
		type view struct {
			linked map[protocol.Address]bool
			offer  []protocol.Address
		}
		got := make(chan view, 1)
		if !n.enqueue(func() { got <- view{n.linkedAddrs(), n.mailboxNeighbours()} }) {
			return
		}
		var v view
		select {
		case v = <-got:
		case <-n.ctx.Done():
			return
		}
		if auto {
			if more := chooseMailboxes(relays, v.offer, autoMailboxes); len(more) != len(relays) {
				relays = more
				n.log.Info("chose mailbox relays", "relays", relays)
				n.host.SetMailboxRelays(relays)
			}
		}
		for _, r := range relays {
			if !v.linked[r] {
				n.dialMailbox(r)
			}
		}
		select {
		case <-t.C:
		case <-n.ctx.Done():
			return
		}
	}
}

// chooseMailboxes adds candidates to chosen, in their order, up to max.
// A chosen relay stays while it is away: its record names it, and what it
// keeps for this node waits there.
func chooseMailboxes(chosen, candidates []protocol.Address, max int) []protocol.Address {
	out := slices.Clone(chosen)
	for _, c := range candidates {
		if len(out) >= max {
			break
		}
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

// mailboxNeighbours returns the neighbours that announce the mailbox
// capability, in address order. On the loop.
func (n *Node) mailboxNeighbours() []protocol.Address {
	var out []protocol.Address
	for _, r := range n.eng.Routes() {
		if r.Hops == 1 && !r.External && r.Capabilities&protocol.CapMailbox != 0 {
			out = append(out, r.Dest)
		}
	}
	return out
}

// linkedAddrs returns the addresses of the nodes with a link up. On the
// loop.
func (n *Node) linkedAddrs() map[protocol.Address]bool {
	out := make(map[protocol.Address]bool, len(n.byLink))
	for _, l := range n.byLink {
		if !l.addr.IsZero() {
			out[l.addr] = true
		}
	}
	return out
}

// dialMailbox looks a mailbox relay up in the DHT and connects to it; the
// meshd link follows the connection. It reports whether it connected.
func (n *Node) dialMailbox(a protocol.Address) bool {
	ctx, cancel := context.WithTimeout(n.ctx, 30*time.Second)
	defer cancel()
	rec, err := n.host.Lookup(ctx, a)
	if err == nil {
		err = n.host.ConnectInfo(ctx, rec.AddrInfo())
	}
	if err != nil {
		n.log.Debug("mailbox relay not reached", "relay", a, "err", err)
		return false
	}
	return true
}

// handToMailboxes is the sender's side: the recipient's record rec was
// found but the recipient could not be reached. It connects to the
// mailbox relays the record names, first one reached wins, and tells the
// engine to offer the recipient's messages to it. Off the loop.
func (n *Node) handToMailboxes(rec *p2p.Record) {
	for _, m := range rec.Mailboxes {
		if m == n.id.Address() {
			continue // this node is the recipient's mailbox: it keeps them already
		}
		if !n.dialMailbox(m) {
			continue
		}
		in := routing.MailboxFound{Dest: rec.Address(), Identity: rec.Identity, Mailbox: m}
		n.enqueue(func() {
			n.log.Info("recipient unreachable: offering its messages to its mailbox relay", "address", in.Dest, "relay", m)
			n.step(in)
		})
		return
	}
}
