package p2p

import (
	"errors"
	"testing"
)

// TestPrivateQUICOnlyRefused: a private network cannot use QUIC, so its
// QUIC listen addresses are left out; with only QUIC addresses the host
// would listen on nothing and look healthy. It is refused with ErrConfig.
func TestPrivateQUICOnlyRefused(t *testing.T) {
	id := testIdentity(t, 45)
	h, err := New(t.Context(), Config{Identity: id, HostKey: testHostKey(t, id), PSK: make([]byte, 32),
		ListenAddrs: []string{"/ip4/127.0.0.1/udp/0/quic-v1", "/ip6/::1/udp/0/quic-v1/webtransport"}, Logger: testLogger(t)})
	if err == nil {
		h.Close()
		t.Fatal("private host with only QUIC listen addresses started")
	}
	if !errors.Is(err, ErrConfig) {
		t.Fatalf("got %v, want ErrConfig", err)
	}
}
