package daemon

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/transports/p2p"
)

// AccessConfig says who may link: by default anyone who reaches the
// node's ports (the open mode; docs/operations.md states its risks).
type AccessConfig struct {
	// NetworkKey, 64 hex digits (32 bytes), makes the node part of a
	// private mesh: only nodes with the same key can link, over libp2p (a
	// libp2p private network, which runs on TCP only: QUIC listen
	// addresses are left out) and over TCP links (the key is mixed into
	// the handshake). Empty: the open mode.
	NetworkKey string `toml:"network_key"`
	// Allow, if not empty, lists the only peers that may link: libp2p
	// peer IDs or mesh addresses (hex).
	Allow []string `toml:"allow"`
	// Deny lists peers that may never link, in the same forms.
	Deny []string `toml:"deny"`
}

// accessLists are the parsed allow and deny lists.
type accessLists struct {
	allowIDs, denyIDs     map[peer.ID]bool
	allowAddrs, denyAddrs map[protocol.Address]bool
}

// parsePeerList sorts a list's entries into peer IDs and mesh addresses.
func parsePeerList(list []string) (map[peer.ID]bool, map[protocol.Address]bool, error) {
	ids, addrs := map[peer.ID]bool{}, map[protocol.Address]bool{}
	for _, s := range list {
		if a, err := protocol.ParseAddress(s); err == nil {
			addrs[a] = true
			continue
		}
		p, err := peer.Decode(s)
		if err != nil {
			return nil, nil, fmt.Errorf("%q is neither a mesh address (hex) nor a libp2p peer ID", s)
		}
		ids[p] = true
	}
	return ids, addrs, nil
}

func newAccessLists(c AccessConfig) (accessLists, error) {
	var a accessLists
	var err error
	if a.allowIDs, a.allowAddrs, err = parsePeerList(c.Allow); err != nil {
		return a, fmt.Errorf("access.allow: %w", err)
	}
	if a.denyIDs, a.denyAddrs, err = parsePeerList(c.Deny); err != nil {
		return a, fmt.Errorf("access.deny: %w", err)
	}
	return a, nil
}

func (a accessLists) restricted() bool { return len(a.allowIDs)+len(a.allowAddrs) > 0 }

// allowsPeerID decides what can be decided from a peer ID alone, before
// any handshake: a denied ID is refused; with an allow list of IDs only,
// an ID not on it is refused.
func (a accessLists) allowsPeerID(p peer.ID) bool {
	if a.denyIDs[p] {
		return false
	}
	return !a.restricted() || len(a.allowAddrs) > 0 || a.allowIDs[p]
}

// allowsLink decides once the handshake proved the mesh address addr (p
// is empty for TCP links).
func (a accessLists) allowsLink(p peer.ID, addr protocol.Address) bool {
	if a.denyAddrs[addr] || (p != "" && a.denyIDs[p]) {
		return false
	}
	return !a.restricted() || a.allowAddrs[addr] || (p != "" && a.allowIDs[p])
}

// networkKeys derives the libp2p PSK and the TCP handshake key from the
// configured network key, one for each use.
func networkKeys(hexKey string) (psk, tcpKey []byte, err error) {
	if hexKey == "" {
		return nil, nil, nil
	}
	k, err := hex.DecodeString(hexKey)
	if err != nil || len(k) != 32 {
		return nil, nil, fmt.Errorf("want 64 hex digits (32 bytes, e.g. from `openssl rand -hex 32`)")
	}
	p := sha256.Sum256(append([]byte("meshd network key: libp2p pnet\x00"), k...))
	t := sha256.Sum256(append([]byte("meshd network key: tcp links\x00"), k...))
	return p[:], t[:], nil
}

// Defaults of the per-peer inbound limits. A neighbour over them is
// paced, not cut off (guard.go): two daemons on one machine exchange
// about 40,000 messages a second (docs/performance.md), twice the default
// frame rate, so a node on a small board keeps most of its loop for its
// other peers. Floods of frames the engine refuses (bad signatures) are
// cut off by strikes, not by the rate.
const (
	DefaultPeerFrameRate  = 20_000
	DefaultPeerFrameBurst = 40_000
	DefaultPeerByteRate   = 32 << 20
	DefaultPeerStrikes    = 1000
	DefaultCoolDown       = 10 * time.Minute
)

// validateGuard checks the inbound limits and the access section: a limit
// no honest peer could meet is refused.
func (c *Config) validateGuard(bad func(field, format string, a ...any) error) error {
	l := c.Limits
	switch {
	case l.PeerFrameRate < 10 || l.PeerFrameRate > 1e6:
		return bad("limits.peer_frame_rate", "%v frames/s: want 10 to 1000000 (routing alone needs a few per second)", l.PeerFrameRate)
	case float64(l.PeerFrameBurst) < l.PeerFrameRate/10 || l.PeerFrameBurst > 10_000_000:
		return bad("limits.peer_frame_burst", "%d: want at least a tenth of peer_frame_rate (%v) and at most 10000000", l.PeerFrameBurst, l.PeerFrameRate)
	case l.PeerByteRate < maxP2PFrame:
		return bad("limits.peer_byte_rate", "%d bytes/s: want at least %d, one frame of the largest size, or such frames could never pass", l.PeerByteRate, maxP2PFrame)
	case l.PeerStrikes < 1:
		return bad("limits.peer_strikes", "%d: want at least 1", l.PeerStrikes)
	case l.CoolDown < Duration(time.Second) || l.CoolDown > Duration(7*24*time.Hour):
		return bad("limits.cool_down", "%v: want one second to 7 days", time.Duration(l.CoolDown))
	}
	if _, _, err := networkKeys(c.Access.NetworkKey); err != nil {
		return bad("access.network_key", "%v", err)
	}
	if _, err := newAccessLists(c.Access); err != nil {
		return bad("access", "%v", err)
	}
	return nil
}

// maxP2PFrame is the largest frame a libp2p link carries.
const maxP2PFrame = p2p.MaxFrameSize

// setGuardDefaults fills in the default inbound limits.
func (l *LimitsConfig) setGuardDefaults() {
	l.PeerFrameRate, l.PeerFrameBurst, l.PeerByteRate = DefaultPeerFrameRate, DefaultPeerFrameBurst, DefaultPeerByteRate
	l.PeerStrikes, l.CoolDown = DefaultPeerStrikes, Duration(DefaultCoolDown)
}

// withGuardTemplate adds the inbound limits and the [access] section to
// the configuration template t (ConfigTemplate's).
func withGuardTemplate(d Config, t string) string {
	l := d.Limits
	limits := fmt.Sprintf(`  # What one peer may send (frames per second, burst, bytes per second);
  # a peer over it is paced (its link is read more slowly), not cut off.
  # After peer_strikes refused frames (junk, forged) within 10 s it is
  # disconnected and refused for cool_down.
  peer_frame_rate = %v
  peer_frame_burst = %d
  peer_byte_rate = %d
  peer_strikes = %d
  cool_down = %q
`, l.PeerFrameRate, l.PeerFrameBurst, l.PeerByteRate, l.PeerStrikes, time.Duration(l.CoolDown).String())
	if i := strings.Index(t, "\n[routing]"); i >= 0 {
		t = t[:i] + limits + t[i:]
	}
	return t + `
[access]
  # Private mesh: 64 hex digits (openssl rand -hex 32), the same on every
  # node; only nodes with it can link. libp2p then runs on TCP only.
  network_key = ""
  # If not empty, the only peers that may link (libp2p peer IDs or mesh
  # addresses); deny: peers that never may.
  allow = []
  deny = []
`
}
