package daemon

import (
	"errors"
	"strings"
	"testing"
	"time"

	"meshd.dev/meshd/transports/p2p"
)

// TestConfigRelayLimits: [relay_limits] defaults to the host's defaults, a
// file may change one limit and keep the others, and limits too small to
// carry a link are refused naming the field.
func TestConfigRelayLimits(t *testing.T) {
	dir := t.TempDir()
	c, _, err := loadWith(t, []string{"--data-dir", dir})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.RelayLimits.p2p(); got != (p2p.RelayLimits{Duration: p2p.DefaultRelayDuration, Data: p2p.DefaultRelayData,
		Reservations: p2p.DefaultRelayReservations, CircuitsPerPeer: p2p.DefaultRelayCircuitsPerPeer}) {
		t.Errorf("defaults %+v", got)
	}
	writeConfig(t, dir, "relay = true\n[relay_limits]\ndata = 4194304\n")
	if c, _, err = loadWith(t, []string{"--data-dir", dir}); err != nil {
		t.Fatal(err)
	}
	if c.RelayLimits.Data != 4<<20 || time.Duration(c.RelayLimits.Duration) != p2p.DefaultRelayDuration {
		t.Errorf("relay limits %+v, want data 4 MiB and the default duration", c.RelayLimits)
	}
	for doc, field := range map[string]string{
		"[relay_limits]\nduration = \"1s\"\n":        "relay_limits.duration",
		"[relay_limits]\ndata = 1000\n":              "relay_limits.data",
		"[relay_limits]\ndata = -1\n":                "relay_limits.data",
		"[relay_limits]\nreservations = 0\n":         "relay_limits.reservations",
		"[relay_limits]\ncircuits_per_peer = -3\n":   "relay_limits.circuits_per_peer",
		"[relay_limits]\nbytes = 1\n":                "relay_limits.bytes",
		"reachability = \"behind NAT\"\n":            "reachability",
		"relay = true\nreachability = \"private\"\n": "reachability",
	} {
		writeConfig(t, dir, doc)
		_, _, err := loadWith(t, []string{"--data-dir", dir})
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), field) {
			t.Errorf("%q: err %v, want ErrConfig naming %s", doc, err, field)
		}
	}
}
