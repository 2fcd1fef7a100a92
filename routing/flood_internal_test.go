package routing

import (
	"math/rand/v2"
	"testing"
	"time"

	"meshd.dev/meshd/protocol"
)

// TestAttackFloodPendingBounded is the attack of an IP or TCP neighbour
// that sends channel frames of channels this node is not a member of (so
// it cannot authenticate them) as fast as its link goes: each new frame
// waits for its radio rebroadcast for up to two windows of 32 airtimes of
// the frame (hours for a large frame at LoRa rates), so the pending
// rebroadcasts must be bounded by what the radio can carry, not grow with
// the attacker's rate.
func TestAttackFloodPendingBounded(t *testing.T) {
	start := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	rnd := rand.NewChaCha8([32]byte{9})
	id, err := protocol.NewIdentity(rnd)
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(Config{Identity: id, Rand: rnd, AnnounceInterval: 24 * time.Hour}, start, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := start.Add(time.Second) // frames sent after the node started
	step := func(in Input) {
		_ = e.Step(now, in)
		for e.HasReady() {
			e.Ready()
			e.Advance()
		}
	}
	step(LinkUp{Link: LinkInfo{ID: 1, Kind: LinkTCP, Bitrate: 1e8}})
	step(LinkUp{Link: LinkInfo{ID: 2, Kind: LinkLoRa, Bitrate: 1760}})
	const frames, size = 2000, 4096
	for i := range frames {
		key, err := protocol.NewChannelKey(rnd)
		if err != nil {
			t.Fatal(err)
		}
		f, err := protocol.SealChannel(rnd, key, 5, now, make([]byte, size), nil)
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			step(FrameReceived{Link: 1, Frame: f})
		} else {
			step(GossipReceived{Frame: f})
		}
	}
	pending := 0
	for _, ps := range e.floods {
		for _, p := range ps {
			pending += len(p.frame)
		}
	}
	if limit := e.links[2].queue.limit; pending > limit+size+protocol.ChannelOverhead {
		t.Fatalf("%d bytes of rebroadcasts pending on a radio whose queue holds %d (%d frames from one neighbour)",
			pending, limit, frames)
	}
	if e.counters.FloodRelayDropped == 0 {
		t.Fatal("no dropped rebroadcast counted")
	}
}

// TestAttackGossipHopCountRace: the hop count is the one field of a channel
// frame nobody authenticates, and gossip's message ID leaves it out (copies
// from different mesh paths are one message). A gossip peer that races a
// genuine frame to a bridge with its hop count raised to the hop limit gets
// its copy accepted and the genuine copies dropped as duplicates; if the
// bridge trusted that count, the frame would never reach its mesh links.
// Gossip is not a mesh hop: the bridge counts mesh hops from itself.
func TestAttackGossipHopCountRace(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	rnd := rand.NewChaCha8([32]byte{3})
	id, err := protocol.NewIdentity(rnd)
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(Config{Identity: id, Rand: rnd, AnnounceInterval: 24 * time.Hour}, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	key, err := protocol.NewChannelKey(rnd)
	if err != nil {
		t.Fatal(err)
	}
	var sent, delivered int
	step := func(in Input) {
		_ = e.Step(now, in)
		for e.HasReady() {
			rd := e.Ready()
			for _, tx := range rd.Transmits {
				if tx.Link == 1 {
					sent++
				}
			}
			delivered += len(rd.Deliveries)
			e.Advance()
		}
	}
	step(LinkUp{Link: LinkInfo{ID: 1, Kind: LinkTCP, Bitrate: 1e8}})
	step(JoinChannel{Key: key})
	f, err := protocol.SealChannel(rnd, key, 5, now, []byte("hello"), nil)
	if err != nil {
		t.Fatal(err)
	}
	raced := append([]byte(nil), f...)
	raced[1] = raced[1]&0xf0 | raced[1]>>4 // hop count at the limit
	sent = 0
	step(GossipReceived{Frame: raced})
	if delivered != 1 {
		t.Fatalf("%d deliveries, want 1", delivered)
	}
	if sent != 1 {
		t.Errorf("the bridge relayed the gossip frame on %d mesh links, want 1", sent)
	}
}

// TestFloodPendingBoundedManyNeighbours: the bound on pending rebroadcasts
// is per radio, not per neighbour: sixteen TCP neighbours and gossip that
// send channel frames this node cannot authenticate, with time passing
// (some rebroadcasts go out, room comes back), leave at most each radio's
// queue bound (or one frame, when a single frame is larger) pending on it,
// and the count each radio keeps is what its pending rebroadcasts hold.
// These frames are not in the queue budget (they are not queued yet): this
// is their bound (operations.md section 17).
func TestFloodPendingBoundedManyNeighbours(t *testing.T) {
	start := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	rnd := rand.NewChaCha8([32]byte{161})
	id, err := protocol.NewIdentity(rnd)
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(Config{Identity: id, Rand: rnd, AnnounceInterval: 24 * time.Hour}, start, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := start.Add(time.Second)
	step := func(in Input) {
		_ = e.Step(now, in)
		for e.HasReady() {
			e.Ready()
			e.Advance()
		}
	}
	const neighbours, maxSize = 16, 4096
	radios := []LinkID{100, 101}
	for i := range neighbours {
		step(LinkUp{Link: LinkInfo{ID: LinkID(i + 1), Kind: LinkTCP, Bitrate: 1e8}})
	}
	for _, r := range radios {
		step(LinkUp{Link: LinkInfo{ID: r, Kind: LinkLoRa, Bitrate: 1760}}) // no window: it takes what it is given
	}
	largest, maxPending := 0, 0
	for i := range 3000 {
		key, err := protocol.NewChannelKey(rnd)
		if err != nil {
			t.Fatal(err)
		}
		f, err := protocol.SealChannel(rnd, key, 5, now, make([]byte, 100+i*37%maxSize), nil)
		if err != nil {
			t.Fatal(err)
		}
		largest = max(largest, len(f))
		if n := i % (neighbours + 1); n < neighbours {
			step(FrameReceived{Link: LinkID(n + 1), Frame: f})
		} else {
			step(GossipReceived{Frame: f})
		}
		if i%50 == 49 {
			now = now.Add(20 * time.Second)
			e.Tick(now)
			for e.HasReady() {
				e.Ready()
				e.Advance()
			}
		}
		pending := map[LinkID]int{}
		for _, ps := range e.floods {
			for _, p := range ps {
				pending[p.link] += len(p.frame)
			}
		}
		total := 0
		for _, r := range radios {
			l := e.links[r]
			if pending[r] != l.floodBytes {
				t.Fatalf("radio %d counts %d bytes of pending rebroadcasts, holds %d", r, l.floodBytes, pending[r])
			}
			if pending[r] > max(l.queue.limit, largest) {
				t.Fatalf("%d bytes of rebroadcasts pending on radio %d, whose queue holds %d", pending[r], r, l.queue.limit)
			}
			total += pending[r]
		}
		maxPending = max(maxPending, total)
	}
	t.Logf("at most %d bytes of rebroadcasts pending on %d radios (%d dropped, %d relayed)",
		maxPending, len(radios), e.counters.FloodRelayDropped, e.counters.FloodRelayed)
	if e.counters.FloodRelayDropped == 0 {
		t.Fatal("no rebroadcast dropped: the bound was never reached")
	}
}
