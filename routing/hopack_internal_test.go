package routing

import (
	"math/rand/v2"
	"testing"
	"time"

	"meshd.dev/meshd/protocol"
)

// TestTickHopAcksDisplacedKey: an overdue envelope's retransmission can
// displace, from a full queue, another envelope that waits for its hop
// ack; that envelope then no longer waits, and the same tick must skip
// it rather than read its deleted wait (a nil pointer: the engine
// panicked, first seen in meshsim with the RNode's contention).
func TestTickHopAcksDisplacedKey(t *testing.T) {
	id, err := protocol.NewIdentity(rand.NewChaCha8([32]byte{9}))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	e, err := New(Config{Identity: id, Rand: rand.NewChaCha8([32]byte{10}), AnnounceInterval: 24 * time.Hour}, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Step(now, LinkUp{Link: LinkInfo{ID: 1, Kind: LinkTCP, Bitrate: 1e8}}); err != nil {
		t.Fatal(err)
	}
	l := e.links[1]
	for {
		if _, ok := l.queue.pop(); !ok {
			break
		}
	}
	l.queue.limit = 100
	first, second := envKey{1}, envKey{2} // sorted: first goes first
	if _, ok := l.queue.push(qitem{frame: make([]byte, 80), pri: PriBulk, release: second, hasRelease: true}); !ok {
		t.Fatal("queue refused the waiting envelope")
	}
	e.hopAcks[second] = &ackWait{link: 1, frame: make([]byte, 80)} // queued: no deadline yet
	e.hopAcks[first] = &ackWait{link: 1, frame: make([]byte, 60), deadline: now.Add(-time.Second)}
	e.now = now
	e.tickHopAcks()
	if _, ok := e.hopAcks[second]; ok {
		t.Fatal("the displaced envelope still waits for its hop ack")
	}
	if w := e.hopAcks[first]; w == nil || w.tries != 1 {
		t.Fatalf("the overdue envelope was not retransmitted: %+v", w)
	}
}

// TestLinkDownDisplacedKey: when a link goes down, an envelope that waited
// for its hop ack there goes back to custody and is sent at once on
// another link, where it can displace an envelope that waits for its own
// hop ack; that one then no longer waits, and the same pass must skip it
// rather than read its deleted wait (the engine panicked).
func TestLinkDownDisplacedKey(t *testing.T) {
	rng := rand.NewChaCha8([32]byte{11})
	id, err := protocol.NewIdentity(rng)
	if err != nil {
		t.Fatal(err)
	}
	src, err := protocol.NewIdentity(rng)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	e, err := New(Config{Identity: id, Rand: rand.NewChaCha8([32]byte{12}), AnnounceInterval: 24 * time.Hour}, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []LinkID{1, 2} {
		if err := e.Step(now, LinkUp{Link: LinkInfo{ID: l, Kind: LinkTCP, Bitrate: 1e8}}); err != nil {
			t.Fatal(err)
		}
	}
	dest := Address{7}
	e.addDirect(e.links[2], dest) // the way to dest that stays
	l2 := e.links[2]
	for {
		if _, ok := l2.queue.pop(); !ok {
			break
		}
	}
	l2.queue.limit = 100
	ts := protocol.TimestampOf(now)
	env, err := protocol.SignEnvelope(src, protocol.Header{Type: protocol.TypeMessage, HopLimit: 16, ID: protocol.MessageID{1}, Created: ts, Expires: ts + 3600, Dest: dest}, make([]byte, 40))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := env.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	first, second := envKey{1}, envKey{2} // sorted: first goes first
	if _, ok := l2.queue.push(qitem{frame: make([]byte, 80), pri: PriBulk, release: second, hasRelease: true}); !ok {
		t.Fatal("queue refused the waiting envelope")
	}
	e.hopAcks[second] = &ackWait{link: 2, frame: make([]byte, 80)} // queued: no deadline yet
	e.hopAcks[first] = &ackWait{link: 1, frame: raw, dest: dest, deadline: now.Add(time.Second)}
	e.now = now
	if err := e.linkDown(1); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.hopAcks[second]; ok {
		t.Fatal("the displaced envelope still waits for its hop ack")
	}
	if e.custody.get(first) == nil {
		t.Fatal("the envelope of the link that went down is not in custody")
	}
}
