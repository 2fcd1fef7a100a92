package daemon

import (
	"time"

	"meshd.dev/meshd/transports/p2p"
)

// RelayLimitsConfig is the [relay_limits] section: what the circuit relay
// service of relay mode gives to nodes behind NAT. Each relayed
// connection lives at most Duration and carries at most Data bytes each
// way; then the relay ends it, the meshd link on it goes down and the two
// nodes reconnect through the relay (or directly, once hole punching
// found a way).
type RelayLimitsConfig struct {
	// Duration is a relayed connection's lifetime.
	Duration Duration `toml:"duration"`
	// Data is the bytes relayed each way per connection.
	Data int64 `toml:"data"`
	// Reservations is how many nodes may hold a slot at once.
	Reservations int `toml:"reservations"`
	// CircuitsPerPeer bounds the relayed connections of one node.
	CircuitsPerPeer int `toml:"circuits_per_peer"`
}

// defaultRelayLimits are the defaults of [relay_limits].
func defaultRelayLimits() RelayLimitsConfig {
	return RelayLimitsConfig{
		Duration:        Duration(p2p.DefaultRelayDuration),
		Data:            p2p.DefaultRelayData,
		Reservations:    p2p.DefaultRelayReservations,
		CircuitsPerPeer: p2p.DefaultRelayCircuitsPerPeer,
	}
}

// Least relay limits that still carry a link: below them a relayed link
// would be cut before it carried more than its hello and keepalives.
const (
	minRelayDuration = 30 * time.Second
	minRelayData     = 64 << 10
)

// validate checks the [relay_limits] section.
func (r RelayLimitsConfig) validate(bad func(field, format string, a ...any) error) error {
	switch {
	case time.Duration(r.Duration) < minRelayDuration:
		return bad("relay_limits.duration", "%v is below %v", time.Duration(r.Duration), minRelayDuration)
	case r.Data < minRelayData:
		return bad("relay_limits.data", "%d bytes is below %d (64 KiB)", r.Data, minRelayData)
	case r.Reservations < 1:
		return bad("relay_limits.reservations", "%d: want at least 1", r.Reservations)
	case r.CircuitsPerPeer < 1:
		return bad("relay_limits.circuits_per_peer", "%d: want at least 1", r.CircuitsPerPeer)
	}
	return nil
}

// validateReachability checks the reachability key.
func validateReachability(reach string, relay bool, bad func(field, format string, a ...any) error) error {
	switch {
	case reach != "auto" && reach != "private" && reach != "public":
		return bad("reachability", "%q: want auto, private or public", reach)
	case relay && reach == "private":
		return bad("reachability", "private, but relay mode serves others and must be publicly reachable")
	}
	return nil
}

// p2p converts the section for the libp2p host.
func (r RelayLimitsConfig) p2p() p2p.RelayLimits {
	return p2p.RelayLimits{Duration: time.Duration(r.Duration), Data: r.Data,
		Reservations: r.Reservations, CircuitsPerPeer: r.CircuitsPerPeer}
}
