package daemon

import (
	"crypto/rand"
	"testing"
	"time"

	"meshd.dev/meshd/fapp"
	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/routing"
)

// TestFAPPRegionScopedOnMesh: a node following region 10 relays region
// 10's frames onto its other mesh links, and drops region 20's (counted)
// instead of carrying every region's announces over its radio.
func TestFAPPRegionScopedOnMesh(t *testing.T) {
	clk := &testClock{}
	n := openFAPPNode(t, newIssuer(t), clk)
	for _, l := range []routing.LinkID{101, 102} {
		n.step(routing.LinkUp{Link: routing.LinkInfo{ID: l, Kind: routing.LinkTCP, Bitrate: 1e6}})
	}
	frame := func(k protocol.ChannelKey) []byte {
		f, err := protocol.SealChannel(rand.Reader, k, 3, clk.Now(), []byte{0x7f}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	before := n.eng.Counters()
	n.step(routing.FrameReceived{Link: 101, Frame: frame(regionKey(20))})
	mid := n.eng.Counters()
	if got := mid.FloodOutOfScope - before.FloodOutOfScope; got != 1 || mid.FloodRelayed != before.FloodRelayed {
		t.Fatalf("a frame of a region not followed: out of scope %d (want 1), relayed %d (want 0)", got, mid.FloodRelayed-before.FloodRelayed)
	}
	n.step(routing.FrameReceived{Link: 101, Frame: frame(regionKey(10))})
	if got := n.eng.Counters().FloodRelayed - mid.FloodRelayed; got != 1 {
		t.Fatalf("a frame of the followed region was relayed %d times, want 1", got)
	}
}

// TestFAPPPublisherOffset: the node's own announces are released at the
// fixed place in the epoch its key gives (fapp.EpochOffset), not at the
// Unix-aligned boundary every other therapist uses too.
func TestFAPPPublisherOffset(t *testing.T) {
	clk := &testClock{}
	n := openFAPPNode(t, newIssuer(t), clk)
	f := n.fapp
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.newPublisher(0); err != nil {
		t.Fatal(err)
	}
	f.pub.SetProfile(fapp.SlotAnnounce{}, clk.Now())
	next, ok := f.pub.Next()
	off := fapp.EpochOffset(fapp.TherapistKeyOf(n.id.Compact()), fappTestEpoch)
	if !ok || time.Duration(next.Unix()%int64(fappTestEpoch/time.Second))*time.Second != off {
		t.Fatalf("next release %v (%v), want at %v past the minute", next, ok, off)
	}
}
