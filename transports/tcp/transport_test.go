package tcp

import (
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"meshd.dev/meshd/transports/link"
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
	if w := tb.Waiting(); len(w) != 0 {
		t.Errorf("peer still waiting with its link up: %+v", w)
	}
	if !b2.Info().Outbound || a2.Info().Outbound {
		t.Errorf("directions: dialler outbound %v, listener outbound %v", b2.Info().Outbound, a2.Info().Outbound)
	}
}

// TestKeepalive: an idle link with a short DeadAfter stays up through
// many dead-peer intervals because both sides send keepalives.
// TestKeepalive: an idle link stays up on keepalives alone. It runs on
// virtual time (synctest, an in-memory pipe), so a loaded machine cannot
// stretch a 10 ms keepalive past the 50 ms dead-peer timeout.
func TestKeepalive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var seen atomic.Int64
		keepaliveHook = func() { seen.Add(1) }
		defer func() { keepaliveHook = nil }()
		a, b := pipeLinks(t, limits{keepalive: 10 * time.Millisecond, deadAfter: 50 * time.Millisecond,
			writeTimeout: time.Second, maxPending: DefaultMaxPending})
		time.Sleep(time.Second) // virtual: 20 DeadAfter intervals with nothing but keepalives
		synctest.Wait()
		if a.Err() != nil || b.Err() != nil {
			t.Fatalf("idle link went down: %v / %v", a.Err(), b.Err())
		}
		// Each side sends one every 10 ms: 100 a second each.
		if n := seen.Load(); n < 190 {
			t.Fatalf("%d keepalives in a second, want about 200", n)
		}
		a.Close(nil)
		b.Close(nil)
		a.wait()
		b.wait()
	})
}

// TestKeepaliveTooRare: the same check goes off when keepalives come
// slower than DeadAfter (B sends one every 80 ms, A wants one within
// 50 ms), so TestKeepalive's passing means something.
func TestKeepaliveTooRare(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := pipeLinks(t,
			limits{keepalive: 10 * time.Millisecond, deadAfter: 50 * time.Millisecond, writeTimeout: time.Second, maxPending: DefaultMaxPending},
			limits{keepalive: 80 * time.Millisecond, deadAfter: time.Second, writeTimeout: time.Second, maxPending: DefaultMaxPending})
		<-a.Done()
		if !errors.Is(a.Err(), ErrDeadPeer) {
			t.Fatalf("a ended with %v, want ErrDeadPeer", a.Err())
		}
		b.Close(nil)
		a.wait()
		b.wait()
	})
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

// TestWaitingPeers: a configured peer that does not answer is reported
// down with the dial error and the time of the next attempt.
func TestWaitingPeers(t *testing.T) {
	changed := make(chan struct{}, 16)
	waitingHook = func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	t.Cleanup(func() { waitingHook = nil })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	tr := newTransport(t, Config{Peers: []Peer{{Addr: addr}}, BackoffMin: time.Hour, BackoffMax: time.Hour})
	ctx := testCtx(t)
	for {
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatal("no state change")
		}
		ws := tr.Waiting()
		if len(ws) == 1 && ws[0].State == "down" {
			w := ws[0]
			if w.Name != addr || w.Kind != link.KindTCP || w.Err == nil || !w.Retry.After(time.Now()) {
				t.Errorf("waiting %+v", w)
			}
			return
		}
	}
}
