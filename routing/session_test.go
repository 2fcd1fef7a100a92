package routing_test

import (
	"errors"
	"math/rand/v2"
	"strings"

	"fmt"
	"meshd.dev/meshd/protocol"
	"testing"
	"time"

	"meshd.dev/meshd/routing"
)

// envelopes makes a test's nodes send their own messages as sealed
// envelopes: for tests of the envelope path, which first contact,
// sealed sender and mailboxes keep using.
func envelopes(c *routing.Config) { c.NoSessions = true }

// withSessions states that a test runs with sessions (the default).
func withSessions(c *routing.Config) { c.NoSessions = false }

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

// TestSessionDeliveryOwnsBody: a session message's delivered body is
// Session.Open's plaintext, not a copy; it must alias nothing the node
// reuses. Every received frame is overwritten after its step, as a link
// reading into one buffer would: every delivered body is intact.
func TestSessionDeliveryOwnsBody(t *testing.T) {
	for _, kind := range []routing.LinkKind{routing.LinkIP, routing.LinkLoRa} {
		t.Run(kind.String(), func(t *testing.T) {
			n := sessionChain(t, 7, kind, 2)
			n.scribble = true
			n.run(time.Hour)
			var want []string
			for i := range 8 {
				want = append(want, fmt.Sprintf("message %d %s", i, strings.Repeat("x", 10*i)))
				n.send("n0", "n2", want[i])
			}
			n.run(time.Hour)
			checkInbox(t, n.node("n2"), want)
			if c := n.node("n2").eng.Counters(); c.SessionFramesIn == 0 {
				t.Fatal("no session frame came in: the test did not take the session path")
			}
		})
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

// Restarts of either end, with messages in flight, lose and duplicate
// nothing: sessions, custody and the delivered set are persisted before
// frames leave.
func TestSessionRestarts(t *testing.T) {
	for _, kind := range []routing.LinkKind{routing.LinkIP, routing.LinkLoRa} {
		t.Run(kind.String(), func(t *testing.T) {
			n := sessionChain(t, 2, kind, 2)
			n.run(time.Hour)
			var want []string
			send := func(k int) {
				for range k {
					want = append(want, fmt.Sprintf("message %d", len(want)))
					n.send("n0", "n2", want[len(want)-1])
				}
			}
			send(2)
			n.run(10 * time.Minute)
			n.stop(n.node("n2"))
			send(2)
			n.run(time.Minute)
			n.start(n.node("n2"))
			n.run(time.Hour)
			send(2)
			n.run(50 * time.Millisecond)
			n.stop(n.node("n0"))
			n.run(time.Minute)
			n.start(n.node("n0"))
			n.run(2 * time.Hour)
			checkInbox(t, n.node("n2"), want)
			if c := n.node("n0").eng.Counters(); c.CustodyCount != 0 {
				t.Fatalf("n0 still holds %d messages: %+v", c.CustodyCount, c)
			}
		})
	}
}

// A responder that lost its session state (a wiped or restored store)
// is detected, a new session set up, and every message still arrives
// exactly once: the delivered set (kept) stops the copies re-sent over
// the new session.
func TestSessionStateLost(t *testing.T) {
	for _, kind := range []routing.LinkKind{routing.LinkIP, routing.LinkLoRa} {
		t.Run(kind.String(), func(t *testing.T) {
			n := sessionChain(t, 3, kind, 2)
			n.run(time.Hour)
			n.send("n0", "n2", "before")
			n.run(10 * time.Minute)
			r := n.node("n2")
			n.stop(r)
			for k := range r.store {
				if k[:2] == "s/" {
					delete(r.store, k)
				}
			}
			n.start(r)
			n.run(time.Minute)
			n.send("n0", "n2", "after")
			n.run(2 * time.Hour)
			checkInbox(t, r, []string{"before", "after"})
			c := n.node("n0").eng.Counters()
			if c.CustodyCount != 0 || c.SessionsEstablished != 2 || c.SessionsDropped == 0 {
				t.Fatalf("n0: %+v", c)
			}
			if kind == routing.LinkIP && c.SessionResetsIn != 1 {
				t.Fatalf("n0 got %d resets", c.SessionResetsIn)
			}
		})
	}
}

// capture records every frame of kind k a node transmits.
func capture(n *testNet, kind protocol.Kind) *[][]byte {
	var got [][]byte
	n.drop = func(from *tnode, l *tlink, tx routing.Transmit) bool {
		if len(tx.Frame) > 0 && protocol.Kind(tx.Frame[0]) == kind {
			got = append(got, append([]byte(nil), tx.Frame...))
		}
		return false
	}
	return &got
}

// Attack: forged, replayed and truncated session frames at the responder
// are refused and counted, deliver nothing and change nothing; replays
// still fail after the responder restarted (its window is persisted). At a
// relay, a replayed frame (even with its receiver index rewritten) is not
// passed on twice.
func TestAttackSessionFramesEngine(t *testing.T) {
	n := sessionChain(t, 4, routing.LinkIP, 2)
	n.run(time.Hour)
	frames := capture(n, protocol.KindSessionData)
	n.send("n0", "n2", "genuine")
	n.run(time.Minute)
	r, relay := n.node("n2"), n.node("n1")
	checkInbox(t, r, []string{"genuine"})
	var first []byte
	for _, f := range *frames {
		if f[5]&0x80 == 0 && f[5]&0x1F == 2 { // towards n2, meant for it
			first = f
			break
		}
	}
	if first == nil {
		t.Fatal("no data frame for n2 seen")
	}
	link := func(a, b string) routing.LinkID {
		for _, l := range n.links {
			if l.name == a+"-"+b {
				return l.id
			}
		}
		t.Fatalf("no link %s-%s", a, b)
		return 0
	}
	inject := func(nd *tnode, id routing.LinkID, f []byte) {
		n.step(nd, routing.FrameReceived{Link: id, Frame: f})
	}
	before := r.eng.Counters().SessionFramesRefused
	inject(r, link("n1", "n2"), first) // replay
	forged := append([]byte(nil), first...)
	forged[len(forged)-1] ^= 1
	inject(r, link("n1", "n2"), forged)
	inject(r, link("n1", "n2"), first[:len(first)-3])
	n.run(time.Minute)
	if got := r.eng.Counters().SessionFramesRefused - before; got < 2 {
		t.Fatalf("%d of the bad frames refused", got)
	}
	n.stop(r)
	n.start(r)
	n.run(time.Minute)
	inject(r, link("n1", "n2"), first)
	n.run(time.Minute)
	checkInbox(t, r, []string{"genuine"})

	// At the relay: the frame as n0 sent it, twice.
	var atRelay []byte
	for _, f := range *frames {
		if f[5]&0x80 == 0 && f[5]&0x1F == 1 {
			atRelay = f
			break
		}
	}
	relayed := relay.eng.Counters().SessionFramesRelayed
	inject(relay, link("n0", "n1"), atRelay)
	inject(relay, link("n0", "n1"), atRelay)
	if got := relay.eng.Counters().SessionFramesRelayed - relayed; got > 0 {
		t.Fatalf("relay passed a replayed frame on %d times", got)
	}
}

// Attack: a neighbour floods session inits (well formed, each from a
// fresh identity, or junk). The per-link rate limit drops most before any
// cryptography, and the session table stays within MaxSessions.
func TestAttackSessionInitFlood(t *testing.T) {
	n := newTestNet(t, 5)
	n.cfg = func(c *routing.Config) { c.MaxSessions = 8 }
	n.addNode("victim")
	n.addNode("attacker")
	l := n.addLink(routing.LinkIP, time.Millisecond, 0, "attacker", "victim")
	n.run(time.Minute)
	v := n.node("victim")
	rnd := rand.NewChaCha8([32]byte{7})
	const floods = 300
	for i := range floods {
		id, err := protocol.NewIdentity(rnd)
		if err != nil {
			t.Fatal(err)
		}
		_, in, err := protocol.StartSession(rnd, id, v.id.Public(), protocol.SessionModeX25519, protocol.TimestampOf(n.now))
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := in.MarshalBinary()
		if i%2 == 1 {
			raw[len(raw)-1] ^= 1 // junk that fails only after the decapsulation
		}
		n.step(v, routing.FrameReceived{Link: l.id, Frame: raw})
		n.run(10 * time.Millisecond)
	}
	c := v.eng.Counters()
	// 3 s of flood: at most the burst (32) and 4 per second get through.
	if taken := c.SessionInitsIn; taken > 32+4*4 || c.SessionInitsLimited < floods-32-4*4 {
		t.Fatalf("flood of %d inits: %d taken in, %d rate limited", floods, taken, c.SessionInitsLimited)
	}
	if c.SessionsAccepted > 8 {
		t.Fatalf("%d sessions accepted with MaxSessions 8", c.SessionsAccepted)
	}
}

// The engine fuzzer's captured frames include every session kind, so
// FuzzEngineStep mutates real session traffic.
func TestFuzzFixtureHasSessionFrames(t *testing.T) {
	have := map[protocol.Kind]bool{}
	for _, f := range fuzzFixture().frames {
		have[protocol.Kind(f[0])] = true
	}
	for _, k := range []protocol.Kind{protocol.KindSessionInit, protocol.KindSessionAccept, protocol.KindSessionData} {
		if !have[k] {
			t.Errorf("no %v frame among the fuzz fixture's %d frames", k, len(fuzzFixture().frames))
		}
	}
}

// Attack: whoever copies a node's store (a backup, a stolen disk) must not
// read the messages waiting in custody for a recipient's key or for a
// session: their bodies are stored encrypted. After a restart they are
// opened again and delivered.
func TestAttackCustodyBodyOnDisk(t *testing.T) {
	for _, sessions := range []bool{false, true} {
		n := newTestNet(t, 9)
		n.cfg = func(c *routing.Config) { c.NoSessions = !sessions }
		a, b := n.addNode("a"), n.addNode("b")
		body := "the secret body of a message in custody"
		n.send("a", "b", body) // no route, no key: custody
		n.run(time.Minute)
		for k, v := range a.store {
			if strings.Contains(string(v), body) {
				t.Fatalf("sessions %v: record %s holds the body in the clear", sessions, k)
			}
		}
		n.stop(a)
		n.start(a)
		n.addLink(routing.LinkIP, time.Millisecond, 0, "a", "b")
		n.run(time.Hour)
		checkInbox(t, b, []string{body})
	}
}

// Attack on lost state: a sender whose store is restored from an older
// backup must not send new messages under session counters the recipient
// acknowledged already; a stale acknowledgement would clear a message that
// was never delivered. Every message is delivered, exactly once.
func TestAttackSessionRestoredBackup(t *testing.T) {
	n := sessionChain(t, 11, routing.LinkIP, 1)
	n.run(time.Hour)
	a, b := n.node("n0"), n.node("n1")
	n.send("n0", "n1", "one")
	n.run(time.Minute)
	backup := map[string][]byte{}
	for k, v := range a.store {
		backup[k] = append([]byte(nil), v...)
	}
	n.send("n0", "n1", "two")
	n.send("n0", "n1", "three")
	n.run(time.Minute)
	n.stop(a)
	a.store = backup
	n.start(a)
	n.run(time.Minute)
	n.send("n0", "n1", "four")
	n.run(time.Hour)
	checkInbox(t, b, []string{"one", "two", "three", "four"})
}

// BenchmarkUnicastPair is the engine's part of a message between two
// neighbours on an IP link, as a sealed envelope and over a session: an op
// is one message delivered and acknowledged (the sender's custody record
// cleared). It reports the record operations (writes and deletes) per
// message, and the Ready batches that had any, which the daemon's node loop
// commits.
func BenchmarkUnicastPair(b *testing.B) {
	for _, sessions := range []bool{false, true} {
		name := "envelope"
		if sessions {
			name = "session"
		}
		b.Run(name, func(b *testing.B) {
			n := newTestNet(b, 1)
			n.cfg = func(c *routing.Config) { c.NoSessions = !sessions }
			n.addNode("a")
			nb := n.addNode("b")
			n.addLink(routing.LinkIP, 0, 0, "a", "b")
			n.run(time.Minute)
			n.send("a", "b", "warm up")
			n.run(time.Minute)
			body := string(make([]byte, 256))
			rec, bat := n.records, n.batches
			b.ResetTimer()
			for range b.N {
				n.send("a", "b", body)
				n.run(0)
			}
			b.StopTimer()
			if got := len(nb.inbox); got != b.N+1 {
				b.Fatalf("%d of %d delivered", got, b.N+1)
			}
			b.ReportMetric(float64(n.records-rec)/float64(b.N), "records/msg")
			b.ReportMetric(float64(n.batches-bat)/float64(b.N), "batches/msg")
		})
	}
}

// A FAPP message keeps its type: session frames carry none, so it goes as
// an envelope even with sessions on.
func TestSessionFAPPKeepsEnvelope(t *testing.T) {
	n := sessionChain(t, 12, routing.LinkIP, 1)
	n.run(time.Hour)
	n.step(n.node("n0"), routing.SendRequest{Ref: 1, Dest: n.node("n1").id.Address(), Type: protocol.TypeFAPP, Body: []byte("fapp")})
	n.run(time.Minute)
	in := n.node("n1").inbox
	if len(in) != 1 || in[0].Type != protocol.TypeFAPP {
		t.Fatalf("inbox %+v", in)
	}
}

// Attack: one neighbour fills a relay's table of session paths. M sends
// the relay R well-formed inits from fresh identities towards an honest
// node D, which accepts them, so R's entries are confirmed and live for
// the idle time. Before the per-neighbour quota, M's paths took all of
// MaxSessionRelays and R refused every other pair's session: A's message
// to C, which has a route, stayed in custody (no fallback: the route is
// there) and never arrived.
func TestAttackSessionRelayTableSquat(t *testing.T) {
	n := newTestNet(t, 11)
	n.cfg = func(c *routing.Config) { c.NoSessions = false; c.MaxSessionRelays = 256 }
	for _, name := range []string{"m", "a", "r", "c", "d"} {
		n.addNode(name)
	}
	var mr routing.LinkID
	for _, p := range []string{"m", "a", "c", "d"} {
		l := n.addLink(routing.LinkIP, 5*time.Millisecond, 0, p, "r")
		if p == "m" {
			mr = l.id
		}
	}
	n.run(time.Hour)
	r, d := n.node("r"), n.node("d")
	rng := rand.NewChaCha8([32]byte{7})
	for range 400 {
		id, err := protocol.NewIdentity(rng)
		if err != nil {
			t.Fatal(err)
		}
		_, in, err := protocol.StartSession(rng, id, d.id.Public(), protocol.SessionModeX25519, protocol.TimestampOf(n.now))
		if err != nil {
			t.Fatal(err)
		}
		f, err := in.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		n.step(r, routing.FrameReceived{Link: mr, Frame: f})
		n.run(time.Second)
	}
	n.send("a", "c", "through r")
	n.run(10 * time.Minute)
	checkInbox(t, n.node("c"), []string{"through r"})
}

// TestSessionLargeBodyGoesAsEnvelope: a body larger than a session
// frame's plaintext (16 KiB) but within the envelope limit reaches the
// recipient intact, alongside a small one on the session. Before, the
// engine ignored AppendSessionMessage's size error and sealed an empty
// session frame: the message was accepted and never delivered.
func TestSessionLargeBodyGoesAsEnvelope(t *testing.T) {
	n := sessionChain(t, 1, routing.LinkIP, 1)
	n.run(time.Hour)
	large := strings.Repeat("x", 20<<10)
	n.send("n0", "n1", "small")
	n.send("n0", "n1", large)
	n.run(time.Hour)
	checkInbox(t, n.node("n1"), []string{"small", large})
}

// TestSessionMessagesLeaveSeenCache: an own session message's key (its
// session message key) is never an envelope's, the only keys the seen
// cache is asked about, so sending one must not take a place in the cache
// (each would evict a forwarded envelope's key, and cost a map insert and
// delete per message).
func TestSessionMessagesLeaveSeenCache(t *testing.T) {
	n := sessionChain(t, 11, routing.LinkIP, 1)
	n.run(time.Minute)
	n.send("n0", "n1", "warm up")
	n.run(time.Minute)
	before := n.node("n0").eng.Counters().SeenEntries
	const k = 100
	for i := range k {
		n.send("n0", "n1", fmt.Sprintf("message %d", i))
	}
	n.run(time.Second)
	if got := len(n.node("n1").inbox); got != k+1 {
		t.Fatalf("%d delivered, want %d", got, k+1)
	}
	if c := n.node("n0").eng.Counters(); c.SessionFramesOut < k || c.SeenEntries-before >= k {
		t.Fatalf("after %d session messages (%d frames out): seen cache %d -> %d entries", k, c.SessionFramesOut, before, c.SeenEntries)
	}
}

// TestSendRequestByPointer: Step takes a *SendRequest as it takes the value
// (a caller reusing one request boxes nothing per message), keeps no
// pointer to it (the request is rewritten at once), and refuses nil.
func TestSendRequestByPointer(t *testing.T) {
	n := sessionChain(t, 12, routing.LinkIP, 1)
	n.run(time.Minute)
	from, to := n.node("n0"), n.node("n1")
	req := &routing.SendRequest{}
	var want []string
	for i := range 5 {
		body := fmt.Sprintf("by pointer %d", i)
		want = append(want, body)
		*req = routing.SendRequest{Ref: uint64(100 + i), Dest: to.id.Address(), Body: []byte(body)}
		if err := from.eng.Step(n.now, req); err != nil {
			t.Fatal(err)
		}
		*req = routing.SendRequest{Dest: to.id.Address(), Body: []byte("scribbled")}
	}
	if err := from.eng.Step(n.now, (*routing.SendRequest)(nil)); !errors.Is(err, routing.ErrBadInput) {
		t.Fatalf("nil pointer: err %v, want ErrBadInput", err)
	}
	n.run(time.Minute)
	checkInbox(t, to, want)
}

// TestSendRequestBodyReused: a caller that reuses one request reuses its
// body's buffer too, rewriting it once Step returns, before the Ready is
// carried out (a daemon keeps a Ready across its group commit while the
// next Steps run). The engine keeps no alias of the body on any path: a
// message to itself, over a session, sealed, awaiting a key.
func TestSendRequestBodyReused(t *testing.T) {
	n := sessionChain(t, 13, routing.LinkIP, 1)
	from, to := n.node("n0"), n.node("n1")
	req := &routing.SendRequest{}
	buf := make([]byte, 64)
	step := func(dest routing.Address, sealed bool, body string) {
		*req = routing.SendRequest{Dest: dest, SealedSender: sealed, Body: buf[:copy(buf, body)]}
		if err := from.eng.Step(n.now, req); err != nil {
			t.Fatal(err)
		}
		for i := range buf {
			buf[i] = '#'
		}
	}
	step(to.id.Address(), true, "awaiting the key")
	n.process(from)
	n.run(time.Minute)
	step(from.id.Address(), false, "to itself 1")
	step(to.id.Address(), false, "over the session")
	step(from.id.Address(), false, "to itself 2")
	step(to.id.Address(), true, "sealed")
	n.process(from)
	n.run(time.Minute)
	checkInbox(t, to, []string{"awaiting the key", "over the session", "sealed"})
	checkInbox(t, from, []string{"to itself 1", "to itself 2"})
}

// TestRestoredSessionMessagesLeaveSeenCache: session messages in custody
// when the node restarts stay out of the seen cache, as when they were
// sent (TestSessionMessagesLeaveSeenCache): their keys are never an
// envelope's.
func TestRestoredSessionMessagesLeaveSeenCache(t *testing.T) {
	n := sessionChain(t, 14, routing.LinkIP, 1)
	n.run(time.Minute)
	n.send("n0", "n1", "warm up")
	n.run(time.Minute)
	n0 := n.node("n0")
	n.drop = func(from *tnode, _ *tlink, _ routing.Transmit) bool { return from == n0 }
	const k = 50
	for i := range k {
		n.send("n0", "n1", fmt.Sprintf("message %d", i))
	}
	n.run(time.Second)
	if c := n0.eng.Counters(); c.SessionFramesOut < k {
		t.Fatalf("%d session frames out, want %d", c.SessionFramesOut, k)
	}
	n.stop(n0)
	n.start(n0)
	if c := n0.eng.Counters(); c.CustodyCount < k || c.SeenEntries >= k {
		t.Fatalf("restored %d custody records, seen cache %d entries", c.CustodyCount, c.SeenEntries)
	}
	n.drop = nil
	n.run(time.Hour)
	if got := len(n.node("n1").inbox); got != k+1 {
		t.Fatalf("%d delivered, want %d", got, k+1)
	}
}
