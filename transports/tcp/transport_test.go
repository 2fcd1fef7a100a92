package tcp

import (
	"errors"
	"testing"
	"time"
)

func TestParsePeer(t *testing.T) {
	addr := newIdentity(t).Address()
	for _, tc := range []struct {
		in   string
		want Peer
		err  bool
	}{
		{in: "10.0.0.1:4242", want: Peer{Addr: "10.0.0.1:4242"}},
		{in: "[::1]:4242", want: Peer{Addr: "[::1]:4242"}},
		{in: "router.lan:4242", want: Peer{Addr: "router.lan:4242"}},
		{in: addr.String() + "@10.0.0.1:4242", want: Peer{Addr: "10.0.0.1:4242", Want: addr}},
		{in: "10.0.0.1", err: true},
		{in: ":4242", err: true},
		{in: "zz@10.0.0.1:4242", err: true},
		{in: "", err: true},
	} {
		got, err := ParsePeer(tc.in)
		if tc.err {
			if !errors.Is(err, ErrConfig) {
				t.Errorf("%q: %v, want ErrConfig", tc.in, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: %+v %v, want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestBackoff(t *testing.T) {
	lo, hi := time.Second, time.Minute
	for attempt := range 70 {
		want := min(hi, lo<<min(attempt, 30))
		if attempt >= 30 {
			want = hi
		}
		for range 20 {
			d := backoff(lo, hi, attempt)
			if d < want/2 || d > want {
				t.Fatalf("attempt %d: %v not in [%v, %v]", attempt, d, want/2, want)
			}
		}
	}
}

// TestRedial: a configured peer is redialled after its link goes down,
// and the new link is to the same identity.
func TestRedial(t *testing.T) {
	ctx := testCtx(t)
	a, b, ta, tb := linkedPair(t, Config{}, Config{BackoffMin: 5 * time.Millisecond, BackoffMax: 20 * time.Millisecond})
	want := a.Info().Peer.Address()
	a.Close(errors.New("test: drop it"))
	<-b.Done()
	a2 := nextLink(t, ctx, ta)
	b2 := nextLink(t, ctx, tb)
	if a2.Info().Peer.Address() != want || b2.Info().Peer.Address() != b.Info().Peer.Address() {
		t.Errorf("redialled link to other identities")
	}
	if !b2.Info().Outbound || a2.Info().Outbound {
		t.Errorf("directions: dialler outbound %v, listener outbound %v", b2.Info().Outbound, a2.Info().Outbound)
	}
}

// TestKeepalive: an idle link with a short DeadAfter stays up through
// many dead-peer intervals because both sides send keepalives.
func TestKeepalive(t *testing.T) {
	seen := make(chan struct{}, 100)
	keepaliveHook = func() {
		select {
		case seen <- struct{}{}:
		default:
		}
	}
	t.Cleanup(func() { keepaliveHook = nil })
	// DeadAfter is 25 keepalive intervals: a keepalive must be late by
	// nearly half a second to fail the test (10 ms failed under -race on a
	// loaded machine).
	fast := Config{Keepalive: 20 * time.Millisecond, DeadAfter: 500 * time.Millisecond}
	a, b, _, _ := linkedPair(t, fast, fast)
	ctx := testCtx(t)
	for range 120 { // 120 keepalives (both sides) span about 2.4 DeadAfter intervals
		select {
		case <-seen:
		case <-ctx.Done():
			t.Fatal("no keepalives")
		}
	}
	if a.Err() != nil || b.Err() != nil {
		t.Fatalf("idle link went down: %v / %v", a.Err(), b.Err())
	}
}

func TestConfigErrors(t *testing.T) {
	if _, err := New(Config{}); !errors.Is(err, ErrConfig) {
		t.Errorf("no identity: %v", err)
	}
	if _, err := New(Config{Identity: newIdentity(t), Keepalive: time.Second, DeadAfter: time.Second}); !errors.Is(err, ErrConfig) {
		t.Errorf("DeadAfter == Keepalive: %v", err)
	}
	if _, err := New(Config{Identity: newIdentity(t), Listen: "not an address"}); err == nil {
		t.Errorf("bad listen address accepted")
	}
}
