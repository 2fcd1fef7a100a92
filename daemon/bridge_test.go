package daemon

import (
	"crypto/rand"
	"testing"
	"time"

	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/routing"
)

// TestBridgeDeliversOnce checks what the node loop relies on when a node
// has both gossip peers and a mesh link: a channel frame is delivered once
// whichever side brings it first, a frame from the mesh link is published
// to gossip once, and a frame from gossip is flooded to the mesh but never
// published back.
func TestBridgeDeliversOnce(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	key := protocol.ChannelKey{3}
	for _, first := range []string{"mesh", "gossip"} {
		t.Run(first+" first", func(t *testing.T) {
			id, err := protocol.NewIdentity(rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			e, err := routing.New(routing.Config{Identity: id, Rand: rand.Reader}, now, nil)
			if err != nil {
				t.Fatal(err)
			}
			var deliveries, publishes, meshTx int
			step := func(in routing.Input) {
				if err := e.Step(now, in); err != nil {
					t.Fatal(err)
				}
				for e.HasReady() {
					rd := e.Ready()
					deliveries += len(rd.Deliveries)
					publishes += len(rd.Publish)
					for _, tx := range rd.Transmits {
						if tx.Link == 1 && len(tx.Frame) > 0 && (tx.Frame[0] == byte(protocol.KindChannel) || tx.Frame[0] == byte(protocol.KindChannelSigned)) {
							meshTx++
						}
					}
					e.Advance()
				}
			}
			step(routing.LinkUp{Link: routing.LinkInfo{ID: 1, Kind: routing.LinkTCP}})
			step(routing.JoinChannel{Key: key})
			frame, err := protocol.SealChannel(rand.Reader, key, 5, now, []byte("bridged"), nil)
			if err != nil {
				t.Fatal(err)
			}
			fromMesh := routing.FrameReceived{Link: 1, Frame: append([]byte(nil), frame...)}
			fromGossip := routing.GossipReceived{Frame: append([]byte(nil), frame...)}
			if first == "mesh" {
				step(fromMesh)
				step(fromGossip)
				if publishes != 1 {
					t.Errorf("a frame from the mesh was published %d times, want 1", publishes)
				}
			} else {
				step(fromGossip)
				step(fromMesh)
				if publishes != 0 {
					t.Errorf("a frame from gossip was published back %d times", publishes)
				}
				if meshTx != 1 {
					t.Errorf("a frame from gossip went %d times onto the mesh link, want 1", meshTx)
				}
			}
			if deliveries != 1 {
				t.Errorf("%d deliveries, want 1", deliveries)
			}
		})
	}
}
