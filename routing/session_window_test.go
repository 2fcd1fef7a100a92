package routing_test

import (
	"fmt"
	"testing"
	"time"

	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/routing"
)

// TestSessionWindowEdgeRetired: a frame lost exactly 64 below the highest
// counter the recipient got. The acknowledgement names the highest and the
// 64 below it, so it still names the lost frame's counter (unset), and the
// sender keeps waiting for it; but the recipient's replay window
// (protocol.LiteReplayWindow) keeps only the 63 counters below the
// highest, so the sender's retries are refused as replays and answered
// with the same acknowledgement. Nothing else is sent, so the window never
// moves on: the session is dropped after sessionFailLimit retries and
// replaced by a new handshake, the failure the acknowledgement window
// rules (session_window.go) are there to prevent.
func TestSessionWindowEdgeRetired(t *testing.T) {
	for _, burst := range []int{64, 65, 66} {
		t.Run(fmt.Sprint(burst), func(t *testing.T) {
			n := newTestNet(t, 1)
			n.cfg = func(c *routing.Config) { c.NoSessions = false }
			na, nb := n.addNode("a"), n.addNode("b")
			n.addLink(routing.LinkIP, 0, 0, "a", "b")
			n.run(time.Minute)
			n.send("a", "b", "warm up")
			n.run(time.Minute)
			dropped := false
			n.drop = func(from *tnode, _ *tlink, tx routing.Transmit) bool {
				k, _ := protocol.PeekKind(tx.Frame)
				if from == na && k == protocol.KindSessionData && !dropped {
					dropped = true // the first frame of the burst, once
					return true
				}
				return false
			}
			for i := range burst {
				n.send("a", "b", fmt.Sprintf("burst %d", i))
			}
			n.run(10 * time.Minute)
			c := na.eng.Counters()
			if got := len(nb.inbox); got != burst+1 {
				t.Errorf("%d of %d delivered", got, burst+1)
			}
			if left := len(na.eng.Outbox()); left != 0 {
				t.Errorf("%d messages left in custody", left)
			}
			if c.SessionsDropped != 0 || c.SessionInitsOut != 1 {
				t.Errorf("SessionsDropped=%d SessionInitsOut=%d, want 0 and 1: one lost frame cost the session", c.SessionsDropped, c.SessionInitsOut)
			}
		})
	}
}
