package p2p

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/routing"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"meshd.dev/meshd/protocol"
)

// PublishRecord signs this node's address record (its current addresses,
// issued now, expiring after RecordLifetime) and puts it into the DHT. It
// fails when the routing table is empty.
func (h *Host) PublishRecord(ctx context.Context) error {
	if h.ctx.Err() != nil {
		return ErrClosed
	}
	// One publish at a time: the record issued later must also be the one
	// put later, or the DHT keeps the newer one and refuses the older.
	h.publishMu.Lock()
	defer h.publishMu.Unlock()
	now := h.now()
	// Newer records win by issue time, so it must grow even when the clock
	// steps back or two publishes fall in one second.
	h.mu.Lock()
	issued := max(protocol.TimestampOf(now), h.lastIssued+1)
	h.lastIssued = issued
	mailboxes := h.mailboxes
	h.mu.Unlock()
	addrs := rankAddrs(h.host.Addrs())
	if len(addrs) == 0 {
		return errors.New("p2p: publish address record: the host has no addresses")
	}
	var flags byte
	if h.cfg.Relay {
		flags |= RecordFlagMailbox
	}
	rec, err := signRecordMailbox(h.cfg.Identity, h.cfg.HostKey.Public().(ed25519.PublicKey), issued, protocol.TimestampOf(now.Add(RecordLifetime)), addrs,
		flags, mailboxes)
	if err != nil {
		return fmt.Errorf("p2p: publish address record: %w", err)
	}
	if err := h.dht.PutValue(ctx, RecordKey(h.cfg.Identity.Address()), rec); err != nil {
		return fmt.Errorf("p2p: publish address record: %w", err)
	}
	return nil
}

// MailboxRelays returns the mailbox relays the record names.
func (h *Host) MailboxRelays() []protocol.Address {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.mailboxes)
}

// SetMailboxRelays replaces the mailbox relays the record names (at most
// MaxRecordMailboxes are published) and republishes the record.
func (h *Host) SetMailboxRelays(relays []protocol.Address) {
	h.mu.Lock()
	h.mailboxes = slices.Clone(relays)
	h.mu.Unlock()
	select {
	case h.republishNow <- struct{}{}:
	default: // one is pending already
	}
}

// rankAddrs orders addresses for a record that keeps only the first
// MaxRecordAddrs: public ones first, then relay circuits, then private
// (LAN) ones, then loopback (useful only on one machine, as in tests).
func rankAddrs(addrs []ma.Multiaddr) []ma.Multiaddr {
	rank := func(a ma.Multiaddr) int {
		switch {
		case manet.IsIPLoopback(a):
			return 3
		case isCircuit(a):
			return 1
		case manet.IsPublicAddr(a):
			return 0
		}
		return 2
	}
	out := slices.Clone(addrs)
	slices.SortStableFunc(out, func(x, y ma.Multiaddr) int { return rank(x) - rank(y) })
	return out
}

func isCircuit(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}

// Lookup finds, validates and decodes the DHT record of mesh address a. The
// caller connects with ConnectInfo(ctx, rec.AddrInfo()).
func (h *Host) Lookup(ctx context.Context, a protocol.Address) (*Record, error) {
	if h.ctx.Err() != nil {
		return nil, ErrClosed
	}
	key := RecordKey(a)
	v, err := h.dht.GetValue(ctx, key)
	if err != nil {
		if errors.Is(err, routing.ErrNotFound) {
			return nil, fmt.Errorf("%w for %s", ErrNoRecord, a)
		}
		return nil, fmt.Errorf("p2p: lookup %s: %w", a, err)
	}
	// The DHT validated it already; decoding again is cheap and keeps this
	// function honest on its own.
	r, err := validateRecord(key, v, h.now())
	if err != nil {
		return nil, fmt.Errorf("p2p: lookup %s: %w", a, err)
	}
	if r.Peer == h.self {
		r.Addrs = nil // our own record: nothing to dial
	}
	return r, nil
}

// republishLoop publishes the record at start, every RepublishInterval, and
// when the addresses change. A failure is retried when the routing table
// changes or after republishRetry, doubling up to RepublishInterval.
func (h *Host) republishLoop() {
	defer h.wg.Done()
	retry := republishRetry
	t := time.NewTimer(0)
	defer t.Stop()
	var rtChanged <-chan struct{} // set while the last publish failed
	var lastOK time.Time
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-t.C:
		case <-h.republish:
			// Addresses changed. Observed and relay addresses can churn;
			// each publish is a DHT walk, so publish at most once per
			// minRepublishGap after a success (the timer catches up).
			if wait := minRepublishGap - time.Since(lastOK); !lastOK.IsZero() && wait > 0 {
				if !t.Stop() {
					select {
					case <-t.C:
					default:
					}
				}
				t.Reset(wait)
				continue
			}
		case <-rtChanged:
		case <-h.republishNow:
			// The mailbox relays changed: rare (a node chooses them once),
			// and a sender needs them, so no gap.
		}
		rtChanged = h.rt.wait()
		ctx, cancel := context.WithTimeout(h.ctx, dhtTimeout)
		err := h.PublishRecord(ctx)
		cancel()
		next := RepublishInterval
		if err != nil {
			if h.ctx.Err() != nil {
				return
			}
			h.log.Debug("address record not published", "err", err, "retry", retry)
			next = retry
			retry = min(2*retry, RepublishInterval)
		} else {
			h.log.Debug("address record published", "mailboxes", len(h.MailboxRelays()))
			retry = republishRetry
			rtChanged = nil
			lastOK = time.Now()
		}
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		t.Reset(next)
	}
}

// rtWatch signals changes of the DHT routing table. The DHT tags (or
// protects) a peer in the connection manager under "kbucket" exactly when
// it adds it to its routing table; rtWatchConnMgr sees that call.
type rtWatch struct {
	mu sync.Mutex
	ch chan struct{} // closed and replaced on every change
}

func newRTWatch() *rtWatch { return &rtWatch{ch: make(chan struct{})} }

func (w *rtWatch) changed() {
	w.mu.Lock()
	close(w.ch)
	w.ch = make(chan struct{})
	w.mu.Unlock()
}

func (w *rtWatch) wait() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ch
}

// kbucketTag is the connection manager tag go-libp2p-kad-dht gives peers
// in its routing table.
const kbucketTag = "kbucket"

// rtWatchConnMgr is the connection manager with a hook on the DHT's tags.
type rtWatchConnMgr struct {
	connmgr.ConnManager
	w *rtWatch
}

func (c rtWatchConnMgr) TagPeer(p peer.ID, tag string, v int) {
	c.ConnManager.TagPeer(p, tag, v)
	if tag == kbucketTag {
		c.w.changed()
	}
}

// RegisterDecayingTag passes connmgr.Decayer through (gossipsub uses it).
func (c rtWatchConnMgr) RegisterDecayingTag(name string, interval time.Duration, decay connmgr.DecayFn, bump connmgr.BumpFn) (connmgr.DecayingTag, error) {
	d, ok := c.ConnManager.(connmgr.Decayer)
	if !ok {
		return nil, errors.New("p2p: connection manager has no decaying tags")
	}
	return d.RegisterDecayingTag(name, interval, decay, bump)
}

func (c rtWatchConnMgr) Protect(p peer.ID, tag string) {
	c.ConnManager.Protect(p, tag)
	if tag == kbucketTag {
		c.w.changed()
	}
}

// DHTPeers returns the peers in the DHT routing table.
func (h *Host) DHTPeers() []peer.ID { return h.dht.RoutingTable().ListPeers() }

// WaitDHTPeer waits until p is in the DHT routing table (tests and tools
// use it to publish once a DHT server is known).
func (h *Host) WaitDHTPeer(ctx context.Context, p peer.ID) error {
	for {
		ch := h.rt.wait()
		if h.dht.RoutingTable().Find(p) != "" {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("p2p: waiting for %s in the DHT routing table: %w", p, ctx.Err())
		case <-h.ctx.Done():
			return ErrClosed
		}
	}
}
