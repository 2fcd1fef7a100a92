package routing_test

import (
	"testing"
	"time"

	"meshd.dev/meshd/routing"
)

// TestSessionMessageGoesWhenKeyArrives: on a LoRa medium the adverts carry
// no KEM key, so a node that never got its neighbour's key holds a session
// message and asks for the key. The message goes as soon as the answer
// brings the key, not at the next custody retry (RetryBase, 10 s here;
// 30 s by default, which held a daemon's message that long).
func TestSessionMessageGoesWhenKeyArrives(t *testing.T) {
	for _, dir := range [][2]string{{"n0", "n1"}, {"n1", "n0"}} {
		t.Run(dir[0]+"-"+dir[1], func(t *testing.T) {
			n := newTestNet(t, 3)
			n.cfg = withSessions
			n.addNode("n0")
			n.addNode("n1")
			// A fast radio (1 Mbit/s): the time a frame takes on air
			// is not what this test measures.
			n.connect(&tlink{kind: routing.LinkLoRa, latency: 5 * time.Millisecond, bitrate: 1_000_000}, "n0", "n1")
			n.run(time.Minute)
			n.send(dir[0], dir[1], "hello")
			n.run(2 * time.Second) // well under RetryBase less its jitter (9 s)
			checkInbox(t, n.node(dir[1]), []string{"hello"})
		})
	}
}
