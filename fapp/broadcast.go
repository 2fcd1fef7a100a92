package fapp

import (
	"crypto/sha256"
	"fmt"

	"meshd.dev/meshd/protocol"
)

// FAPP broadcasts travel on public broadcast channels: one per PLZ region
// for announces and profiles, one for all of Germany for revocation lists.
// Their keys are derived from public labels, so every node can read and
// relay them; the channel frame then only names the channel (its ID is the
// gossip topic and the flooding scope), and what authenticates the content
// is the signature inside the announce, profile or list.

// Broadcast kinds: the first byte of a FAPP channel message body.
const (
	BroadcastAnnounce   byte = 0x01
	BroadcastProfile    byte = 0x02
	BroadcastRevocation byte = 0x03
)

// BroadcastOverhead is what the kind byte adds to a broadcast.
const BroadcastOverhead = 1

// RegionChannelKey returns the public channel key of region r:
// SHA-256("fapp/region-channel/v1" || 0x00 || two ASCII digits).
func RegionChannelKey(r Region) protocol.ChannelKey {
	return protocol.ChannelKey(sha256.Sum256([]byte("fapp/region-channel/v1\x00" + r.String())))
}

// NationalChannelKey returns the public channel key of the channel for
// what concerns every region (revocation lists):
// SHA-256("fapp/national-channel/v1").
func NationalChannelKey() protocol.ChannelKey {
	return protocol.ChannelKey(sha256.Sum256([]byte("fapp/national-channel/v1")))
}

// AppendBroadcast appends a broadcast body of kind carrying payload (an
// encoded announce, profile or revocation list).
func AppendBroadcast(b []byte, kind byte, payload []byte) []byte {
	b = append(b, kind)
	return append(b, payload...)
}

// ParseBroadcast splits a broadcast body into its kind and payload (which
// aliases b); the payload's own decoder checks the rest.
func ParseBroadcast(b []byte) (kind byte, payload []byte, err error) {
	if len(b) < 2 {
		return 0, nil, fmt.Errorf("broadcast: %d bytes: %w", len(b), ErrTruncated)
	}
	switch b[0] {
	case BroadcastAnnounce, BroadcastProfile, BroadcastRevocation:
		return b[0], b[1:], nil
	}
	return 0, nil, fmt.Errorf("broadcast: kind 0x%02x: %w", b[0], ErrUnknownVersion)
}
