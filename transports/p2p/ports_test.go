package p2p

import (
	"context"
	"errors"
	"testing"

	ma "github.com/multiformats/go-multiaddr"
)

// A second host on the TCP port of a running one is refused (today's binds
// silently through SO_REUSEPORT), unless SharePort says otherwise.
func TestRefuseSharedPort(t *testing.T) {
	a := newTestHost(t, 60, nil)
	tcpAddr := ""
	for _, m := range a.host.Addrs() {
		if _, err := m.ValueForProtocol(ma.P_TCP); err == nil {
			tcpAddr = m.String()
		}
	}
	id := testIdentity(t, 61)
	cfg := Config{Identity: id, HostKey: testHostKey(t, id), ListenAddrs: []string{tcpAddr}, Logger: testLogger(t), Redial: RedialConfig{Off: true}}
	if h, err := New(context.Background(), cfg); !errors.Is(err, ErrPortInUse) {
		if err == nil {
			h.Close()
		}
		t.Fatalf("second host on %s: %v, want ErrPortInUse", tcpAddr, err)
	}
	cfg.SharePort = true
	h, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("with SharePort: %v", err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestRefuseSharedQUICPort(t *testing.T) {
	a := newTestHost(t, 62, func(c *Config) { c.ListenAddrs = []string{"/ip4/127.0.0.1/udp/0/quic-v1"} })
	quicAddr := a.host.Addrs()[0].String()
	if err := checkPortsFree([]ma.Multiaddr{ma.StringCast(quicAddr)}); !errors.Is(err, ErrPortInUse) {
		t.Fatalf("%s: %v, want ErrPortInUse", quicAddr, err)
	}
}
