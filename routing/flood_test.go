package routing_test

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"

	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/routing"
)

// floodNode is one engine driven by hand: frames go in with FrameReceived
// on a TCP mesh link (relayed at once, no radio delay) and come out of
// Ready.
type floodNode struct {
	t   *testing.T
	eng *routing.Engine
	now time.Time
	got []routing.Delivery
	out [][]byte
}

func newFloodNode(t *testing.T, name string, cfg func(*routing.Config)) *floodNode {
	t.Helper()
	return newFloodNodeAt(t, name, epoch, cfg)
}

// newFloodNodeAt starts the node's engine at start (a restart, when the
// name was used before).
func newFloodNodeAt(t *testing.T, name string, start time.Time, cfg func(*routing.Config)) *floodNode {
	t.Helper()
	id, err := protocol.NewIdentity(rand.NewChaCha8(seedBytes(name, 0, 1)))
	if err != nil {
		t.Fatal(err)
	}
	c := routing.Config{Identity: id, Rand: rand.NewChaCha8(seedBytes(name, 0, 2)), AnnounceInterval: 24 * time.Hour}
	if cfg != nil {
		cfg(&c)
	}
	eng, err := routing.New(c, start, nil)
	if err != nil {
		t.Fatal(err)
	}
	n := &floodNode{t: t, eng: eng, now: start}
	for _, l := range []routing.LinkID{1, 2} {
		n.step(routing.LinkUp{Link: routing.LinkInfo{ID: l, Kind: routing.LinkTCP, Bitrate: 1e6}})
	}
	n.got, n.out = nil, nil
	return n
}

// step feeds one input and collects deliveries and channel frames sent.
func (n *floodNode) step(in routing.Input) {
	n.t.Helper()
	_ = n.eng.Step(n.now, in)
	n.drain()
}

// drain collects deliveries and channel frames sent from Ready.
func (n *floodNode) drain() {
	for n.eng.HasReady() {
		rd := n.eng.Ready()
		n.got = append(n.got, rd.Deliveries...)
		for _, tx := range rd.Transmits {
			if k, _ := protocol.PeekKind(tx.Frame); k == protocol.KindChannel || k == protocol.KindChannelSigned {
				n.out = append(n.out, tx.Frame)
			}
		}
		n.eng.Advance()
	}
}

// tick runs the engine's timers at n.now and collects what they send.
func (n *floodNode) tick() {
	n.eng.Tick(n.now)
	n.drain()
}

// receive hands n a frame on link 1 at time at.
func (n *floodNode) receive(at time.Time, frame []byte) {
	n.now = at
	n.step(routing.FrameReceived{Link: 1, Frame: append([]byte(nil), frame...)})
}

// broadcast makes n send a broadcast and returns the frame it put on link 1.
func (n *floodNode) broadcast(key protocol.ChannelKey, body string, hops uint8) []byte {
	n.t.Helper()
	n.out = nil
	n.step(routing.Broadcast{Channel: key, Body: []byte(body), HopLimit: hops})
	if len(n.out) == 0 {
		n.t.Fatal("broadcast sent nothing")
	}
	return n.out[0]
}

func floodChannel(t *testing.T) protocol.ChannelKey {
	k, err := protocol.NewChannelKey(rand.NewChaCha8(seedBytes("flood-chan", 0, 3)))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestFloodRaisedHopLimit is the attack of a forwarder that raises a
// channel frame's hop limit: the next member refuses it (no delivery) and
// does not relay it farther.
func TestFloodRaisedHopLimit(t *testing.T) {
	key := floodChannel(t)
	a := newFloodNode(t, "a", nil)
	b := newFloodNode(t, "b", nil)
	b.step(routing.JoinChannel{Key: key})
	frame := a.broadcast(key, "two hops only", 2)
	frame[1] = 0xf0 | frame[1]&0x0f // the forwarder's rewrite
	b.receive(epoch, frame)
	if len(b.got) != 0 {
		t.Fatalf("a frame with a raised hop limit was delivered: %q", b.got[0].Body)
	}
	if len(b.out) != 0 {
		t.Fatalf("a member relayed a frame that failed authentication (%d frames)", len(b.out))
	}
}

// TestFloodReplayAfterDedup is the attack of replaying a recorded channel
// frame once the receiver's duplicate cache has forgotten it: pushed out by
// other traffic (soon after), or simply much later. Both are refused.
func TestFloodReplayAfterDedup(t *testing.T) {
	key := floodChannel(t)
	for _, tc := range []struct {
		name  string
		after time.Duration
	}{{"evicted", time.Minute}, {"late", 2 * time.Hour}, {"a day late", 24 * time.Hour}} {
		t.Run(tc.name, func(t *testing.T) {
			a := newFloodNode(t, "a", nil)
			b := newFloodNode(t, "b", func(c *routing.Config) { c.SeenCacheSize = 4 })
			b.step(routing.JoinChannel{Key: key})
			recorded := a.broadcast(key, "pay 5 to bob", 3)
			b.receive(epoch, recorded)
			if len(b.got) != 1 {
				t.Fatalf("first copy: %d deliveries", len(b.got))
			}
			// Other traffic pushes the frame out of the small cache.
			for i := range 10 {
				a.now = epoch.Add(time.Duration(i+1) * time.Second)
				b.receive(a.now, a.broadcast(key, "chatter", 3))
			}
			if len(b.got) != 11 {
				t.Fatalf("%d deliveries, want 11: fresh frames must pass a full cache", len(b.got))
			}
			b.got = nil
			b.receive(epoch.Add(tc.after), recorded)
			if len(b.got) != 0 {
				t.Fatalf("replay %v later delivered again: %q", tc.after, b.got[0].Body)
			}
		})
	}
}

// TestFloodFreshness: a frame dated more than ClockSkew ahead, or more than
// FloodMaxAge back, is neither delivered nor relayed; within the window it is.
func TestFloodFreshness(t *testing.T) {
	key := floodChannel(t)
	for _, tc := range []struct {
		name    string
		senderT time.Duration // the sender's clock against the receiver's
		deliver bool
	}{
		{"in step", 0, true}, {"9 min ahead", 9 * time.Minute, true}, {"11 min ahead", 11 * time.Minute, false},
		{"29 min behind", -29 * time.Minute, true}, {"31 min behind", -31 * time.Minute, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Engines' clocks only move forward: the one behind starts at epoch.
			a := newFloodNode(t, "a", nil)
			a.now = epoch.Add(max(tc.senderT, 0))
			frame := a.broadcast(key, "now", 3)
			b := newFloodNode(t, "b", nil)
			b.step(routing.JoinChannel{Key: key})
			b.receive(epoch.Add(max(-tc.senderT, 0)), frame)
			if got := len(b.got) == 1 && len(b.out) > 0; got != tc.deliver {
				t.Fatalf("delivered and relayed = %v (%d deliveries, %d relayed), want %v", got, len(b.got), len(b.out), tc.deliver)
			}
			if c := b.eng.Counters(); !tc.deliver && c.FloodStale != 1 {
				t.Fatalf("FloodStale = %d, want 1", c.FloodStale)
			}
		})
	}
}

// TestFloodReplayAfterRestart is the replay attack on a node that restarted
// (its dedup cache, in memory, is gone) while the recorded frame is still
// fresh: a node refuses frames sent before it started.
func TestFloodReplayAfterRestart(t *testing.T) {
	key := floodChannel(t)
	a := newFloodNode(t, "a", nil)
	b := newFloodNode(t, "b", nil)
	b.step(routing.JoinChannel{Key: key})
	recorded := a.broadcast(key, "open the gate", 3)
	b.receive(epoch, recorded)
	if len(b.got) != 1 {
		t.Fatalf("first copy: %d deliveries", len(b.got))
	}
	restart := epoch.Add(5 * time.Minute)
	b = newFloodNodeAt(t, "b", restart.Add(300*time.Millisecond), nil)
	b.step(routing.JoinChannel{Key: key})
	b.receive(restart.Add(time.Minute), recorded)
	if len(b.got) != 0 {
		t.Fatalf("replay after a restart delivered again: %q", b.got[0].Body)
	}
	// Frames sent after the restart (in the same second, too) pass.
	a.now = restart
	b.receive(restart.Add(time.Minute), a.broadcast(key, "hello again", 3))
	if len(b.got) != 1 {
		t.Fatalf("a frame sent after the restart: %d deliveries", len(b.got))
	}
}

// TestFloodRadioCancel pins the cancel rules on a radio (SF9: SNR floor
// -12.5 dB): a pending rebroadcast is cancelled by FloodCancelAfter copies
// heard far away, or by one copy from close by (FloodCloseMargin, 7 dB,
// above the floor), and otherwise goes out within two windows.
func TestFloodRadioCancel(t *testing.T) {
	key := floodChannel(t)
	a := newFloodNode(t, "a", nil)
	frame := a.broadcast(key, "radio", 5)
	for _, tc := range []struct {
		name   string
		copies []float64 // SNRs of the rebroadcasts heard after the first copy
		relay  bool
	}{
		{"no copies", nil, true},
		{"two far copies", []float64{-11, -10}, true},
		{"three far copies", []float64{-11, -10, -9}, false},
		{"one close copy", []float64{-5}, false},
		{"just below close", []float64{-5.6}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newFloodNode(t, "b", nil)
			b.step(routing.LinkUp{Link: routing.LinkInfo{ID: 3, Kind: routing.LinkLoRa, Bitrate: 1760}})
			b.out = nil
			b.step(routing.FrameReceived{Link: 3, Frame: frame, SNR: -12, HasSNR: true})
			for _, snr := range tc.copies {
				b.step(routing.FrameReceived{Link: 3, Frame: frame, SNR: snr, HasSNR: true})
			}
			relayedOnTCP := len(b.out) // relayed at once on the two TCP links
			// Two windows of 32 airtimes of the frame at 1,760 bit/s.
			b.now = epoch.Add(2 * 32 * time.Duration(len(frame)*8) * time.Second / 1760)
			b.tick()
			if got := len(b.out) > relayedOnTCP; got != tc.relay {
				t.Fatalf("rebroadcast on the radio = %v, want %v (counters %+v)", got, tc.relay, b.eng.Counters())
			}
		})
	}
}

// TestAttackFloodCancelByJunk: a radio neighbour that cannot stop a
// broadcast by jamming tries to make nodes cancel their rebroadcasts by
// sending copies under the frame's dedup key that are not the frame
// (garbage in the ciphertext and tag, or a raised hop limit): only a
// rebroadcast of the frame itself (the same bytes but the hop count)
// counts. A non-member cannot check the tag, so the test node is not a
// member.
func TestAttackFloodCancelByJunk(t *testing.T) {
	key := floodChannel(t)
	a := newFloodNode(t, "a", nil)
	frame := a.broadcast(key, "radio", 5)
	junk := func(mut func(b []byte)) []byte {
		b := append([]byte(nil), frame...)
		mut(b)
		return b
	}
	copies := [][]byte{
		junk(func(b []byte) { b[len(b)-1] ^= 1 }),            // tag
		junk(func(b []byte) { b[len(b)-12] ^= 0x80 }),        // ciphertext
		junk(func(b []byte) { b[1] = 0xf0 | (b[1] & 0x0f) }), // hop limit raised
	}
	b := newFloodNode(t, "b", nil)
	b.step(routing.LinkUp{Link: routing.LinkInfo{ID: 3, Kind: routing.LinkLoRa, Bitrate: 1760}})
	b.out = nil
	b.step(routing.FrameReceived{Link: 3, Frame: frame, SNR: -12, HasSNR: true})
	for _, c := range copies {
		b.step(routing.FrameReceived{Link: 3, Frame: c, SNR: -5, HasSNR: true}) // "close": would cancel at once
	}
	relayedOnTCP := len(b.out)
	b.now = epoch.Add(2 * 32 * time.Duration(len(frame)*8) * time.Second / 1760)
	b.tick()
	if len(b.out) <= relayedOnTCP {
		t.Fatalf("junk copies under the frame's key cancelled its rebroadcast (counters %+v)", b.eng.Counters())
	}
}

// TestAttackFloodSquatNonMember: a neighbour that heard a frame races junk
// under its dedup key (same channel, message ID and time; another tag) to a
// node that is not a member of the channel and so cannot check tags. The
// junk must not take the frame's place: the genuine frame arriving next is
// still relayed, so members behind that node still get the broadcast.
func TestAttackFloodSquatNonMember(t *testing.T) {
	key := floodChannel(t)
	a := newFloodNode(t, "a", nil)
	frame := a.broadcast(key, "squatted", 5)
	junk := append([]byte(nil), frame...)
	junk[len(junk)-1] ^= 1
	b := newFloodNode(t, "b", nil) // not a member
	b.step(routing.FrameReceived{Link: 1, Frame: junk})
	b.step(routing.FrameReceived{Link: 1, Frame: frame})
	want := append([]byte(nil), frame...)
	if err := protocol.IncrementChannelHops(want); err != nil {
		t.Fatal(err)
	}
	for _, out := range b.out {
		if bytes.Equal(out, want) {
			return
		}
	}
	t.Fatalf("the genuine frame was not relayed after junk under its dedup key (%d frames out, counters %+v)", len(b.out), b.eng.Counters())
}
