package routing_test

import (
	"fmt"
	"testing"
	"time"

	"meshd.dev/meshd/routing"
)

func withSessions(c *routing.Config) { c.Sessions = true }

// sessionChain builds a line of nodes n0..n(k) joined by links of kind.
func sessionChain(t *testing.T, seed uint64, kind routing.LinkKind, hops int) *testNet {
	t.Helper()
	n := newTestNet(t, seed)
	n.cfg = withSessions
	for i := 0; i <= hops; i++ {
		n.addNode(fmt.Sprintf("n%d", i))
	}
	for i := 0; i < hops; i++ {
		n.addLink(kind, 5*time.Millisecond, 0, fmt.Sprintf("n%d", i), fmt.Sprintf("n%d", i+1))
	}
	return n
}

func deliveredEvents(nd *tnode) int {
	k := 0
	for _, ev := range nd.events {
		if ev.Kind == routing.EventDelivered {
			k++
		}
	}
	return k
}

func checkInbox(t *testing.T, nd *tnode, want []string) {
	t.Helper()
	got := map[string]int{}
	for _, d := range nd.inbox {
		got[string(d.Body)]++
	}
	for _, w := range want {
		if got[w] != 1 {
			t.Fatalf("%s got %q %d times; inbox %d messages", nd.name, w, got[w], len(nd.inbox))
		}
	}
	if len(nd.inbox) != len(want) {
		t.Fatalf("%s got %d messages, want %d", nd.name, len(nd.inbox), len(want))
	}
}

func TestSessionUnicast(t *testing.T) {
	for _, kind := range []routing.LinkKind{routing.LinkIP, routing.LinkLoRa} {
		t.Run(kind.String(), func(t *testing.T) {
			n := sessionChain(t, 1, kind, 3)
			n.run(time.Hour)
			var want []string
			for i := range 5 {
				want = append(want, fmt.Sprintf("message %d", i))
				n.send("n0", "n3", want[i])
			}
			n.run(time.Hour)
			a, d := n.node("n0"), n.node("n3")
			checkInbox(t, d, want)
			if k := deliveredEvents(a); k != 5 {
				t.Fatalf("n0: %d delivered events", k)
			}
			ca, cd := a.eng.Counters(), d.eng.Counters()
			if ca.SessionsEstablished != 1 || ca.SessionInitsOut != 1 || cd.SessionsAccepted != 1 || ca.CustodyCount != 0 {
				t.Fatalf("n0 %+v\nn3 %+v", ca, cd)
			}
			if ca.SessionAcksIn == 0 || ca.SessionAcksIn > 5 {
				t.Fatalf("n0 got %d acks for 5 messages", ca.SessionAcksIn)
			}
			for _, nm := range []string{"n1", "n2"} {
				if c := n.node(nm).eng.Counters(); c.SessionFramesRelayed == 0 || c.Forwarded != 0 {
					t.Fatalf("%s relayed %d session frames, forwarded %d envelopes", nm, c.SessionFramesRelayed, c.Forwarded)
				}
			}
		})
	}
}
