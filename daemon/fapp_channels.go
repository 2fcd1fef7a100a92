package daemon

import (
	"crypto/sha256"
	"errors"
	"fmt"

	"meshd.dev/meshd/fapp"
	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/routing"
)

// FAPP travels on public broadcast channels whose keys everyone can derive:
// one per 2-digit PLZ region for announces, profiles and revocation lists,
// and one for remote queries and their answers. The key gives no secrecy
// and is not meant to (announces are public and signed by the therapist
// inside); deriving it lets the existing channel machinery carry FAPP: a
// gossip topic per channel on IP, managed flooding with a hop limit on mesh
// links, and the gossip validator's freshness, MAC and rate checks.

// The region and national channel keys are fapp's (fapp.RegionChannelKey,
// fapp.NationalChannelKey); the query channel's is the daemon's own.
const queriesKeyLabel = "meshd fapp queries v1"

// regionKey returns the channel key of PLZ region r.
func regionKey(r fapp.Region) protocol.ChannelKey { return fapp.RegionChannelKey(r) }

// nationalKey returns the key of the channel revocation lists travel on.
func nationalKey() protocol.ChannelKey { return fapp.NationalChannelKey() }

// queriesKey returns the channel key of the remote query channel:
// SHA-256("meshd fapp queries v1").
func queriesKey() protocol.ChannelKey {
	return protocol.ChannelKey(sha256.Sum256([]byte(queriesKeyLabel)))
}

func (c *channels) fappKey(id protocol.ChannelID) (protocol.ChannelKey, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	k, ok := c.fapp[id]
	return k, ok
}

func (c *channels) putFAPP(k protocol.ChannelKey) {
	c.mu.Lock()
	c.fapp[k.ID()] = k
	c.mu.Unlock()
}

func (c *channels) removeFAPP(id protocol.ChannelID) {
	c.mu.Lock()
	delete(c.fapp, id)
	c.mu.Unlock()
}

// isFAPP reports whether id is a FAPP channel the node follows.
func (c *channels) isFAPP(id protocol.ChannelID) bool {
	_, ok := c.fappKey(id)
	return ok
}

// joinFAPPChannel makes the engine deliver a FAPP channel and gossip carry
// its topic. Loop only (or before the loop starts).
func (n *Node) joinFAPPChannel(k protocol.ChannelKey) error {
	if _, ok := n.chans.get(k.ID()); ok {
		// A user channel under the same 4-byte ID: its deliveries would go
		// to the wrong place.
		return fmt.Errorf("%w: a joined channel has the ID %s of a FAPP channel", errFAPPChannelClash, k.ID())
	}
	n.chans.putFAPP(k)
	n.step(routing.JoinChannel{Key: k})
	if err := n.gossip.JoinChannel(k.ID()); err != nil {
		return fmt.Errorf("subscribing to a FAPP channel's gossip topic: %w", err)
	}
	return nil
}

// leaveFAPPChannel stops delivering a FAPP channel. Loop only.
func (n *Node) leaveFAPPChannel(k protocol.ChannelKey) error {
	n.chans.removeFAPP(k.ID())
	n.step(routing.LeaveChannel{Channel: k.ID()})
	return n.gossip.LeaveChannel(k.ID())
}

var errFAPPChannelClash = errors.New("daemon: fapp: channel ID clash")
