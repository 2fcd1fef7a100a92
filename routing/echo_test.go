package routing_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/routing"
)

func echoLine(t *testing.T) (*testNet, *tnode, *tnode) {
	n := newTestNet(t, 11)
	a := n.addNode("a")
	n.addNode("b")
	c := n.addNode("c")
	n.addLink(routing.LinkIP, 5*time.Millisecond, 0, "a", "b")
	n.addLink(routing.LinkIP, 5*time.Millisecond, 0, "b", "c")
	n.run(10 * time.Second)
	return n, a, c
}

// An echo request is answered by the receipt, which carries the hop count
// back, and never reaches the recipient's application.
func TestEchoAnsweredByReceipt(t *testing.T) {
	n, a, c := echoLine(t)
	n.step(a, routing.SendRequest{Ref: 5, Dest: c.id.Address(), Body: []byte("ping"), Type: protocol.TypeEcho, TTL: 10 * time.Second})
	n.run(5 * time.Second)
	var got *routing.Event
	for i, ev := range a.events {
		if ev.Kind == routing.EventDelivered && ev.Ref == 5 {
			got = &a.events[i]
		}
	}
	if got == nil {
		t.Fatalf("no receipt for the echo: %+v", a.events)
	}
	if got.Hops != 1 {
		t.Errorf("receipt hop count %d, want 1 (b forwarded it)", got.Hops)
	}
	for _, d := range c.inbox {
		if d.Type == protocol.TypeEcho {
			t.Fatalf("echo request delivered to c's application: %+v", d)
		}
	}
	if c.eng.Counters().EchoAnswered != 1 {
		t.Fatalf("c answered %d echoes", c.eng.Counters().EchoAnswered)
	}
}

// A flood of echo requests gets at most the burst answered at once: ping
// is not an amplifier.
func TestEchoRateLimited(t *testing.T) {
	n, a, c := echoLine(t)
	// Let a learn c's key first, so every request goes out at once.
	n.step(a, routing.SendRequest{Ref: 1, Dest: c.id.Address(), Body: []byte("hi")})
	n.run(5 * time.Second)
	before := c.eng.Counters().EchoAnswered
	for i := range 40 {
		n.step(a, routing.SendRequest{Ref: uint64(100 + i), Dest: c.id.Address(), Body: []byte("ping"), Type: protocol.TypeEcho, TTL: 2 * time.Second})
	}
	n.run(100 * time.Millisecond)
	answered := c.eng.Counters().EchoAnswered - before
	if answered == 0 || answered > 10 {
		t.Fatalf("%d of 40 echo requests answered at once; want 1 to 10", answered)
	}
	if c.eng.Counters().EchoRefused == 0 {
		t.Fatal("no echo request refused")
	}
}

// The answer to an echo request (its receipt) is smaller than the request:
// a ping never gets more bytes back than it sent.
func TestEchoAnswerNotLarger(t *testing.T) {
	n := newTestNet(t, 12)
	a := n.addNode("a")
	b := n.addNode("b")
	l := n.addLink(routing.LinkIP, 5*time.Millisecond, 0, "a", "b")
	n.run(10 * time.Second)
	// Learn b's key first, so the request goes out sealed at once.
	n.step(a, routing.SendRequest{Ref: 1, Dest: b.id.Address(), Body: []byte("hi")})
	n.run(5 * time.Second)
	sent := func(nd *tnode) int {
		if s := l.sent[nd]; s != nil {
			return s.bytes - s.routingBytes
		}
		return 0
	}
	a0, b0 := sent(a), sent(b)
	n.step(a, routing.SendRequest{Ref: 2, Dest: b.id.Address(), Body: []byte("p"), Type: protocol.TypeEcho, TTL: 5 * time.Second})
	n.run(50 * time.Millisecond)
	req, ans := sent(a)-a0, sent(b)-b0
	if req == 0 || ans == 0 || ans > req {
		t.Fatalf("echo request %d bytes, answer %d bytes", req, ans)
	}
	t.Logf("echo request %d bytes, answer %d bytes", req, ans)
}

// A clear (unsealed) echo request could be smaller than its receipt: it is
// dropped unanswered.
func TestEchoClearRequestNotAnswered(t *testing.T) {
	n := newTestNet(t, 13)
	a := n.addNode("a")
	b := n.addNode("b")
	l := n.addLink(routing.LinkIP, 5*time.Millisecond, 0, "a", "b")
	n.run(5 * time.Second)
	var id protocol.MessageID
	id[0] = 7
	now := protocol.TimestampOf(n.now)
	env, err := protocol.SignEnvelope(a.id, protocol.Header{
		Type: protocol.TypeEcho, HopLimit: 8, ID: id, Created: now, Expires: now + 60, Dest: b.id.Address(), WantReceipt: true,
	}, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := env.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	before := b.eng.Counters()
	n.step(b, routing.FrameReceived{Link: l.id, Frame: raw})
	after := b.eng.Counters()
	if after.ReceiptsSent != before.ReceiptsSent || after.EchoRefused != before.EchoRefused+1 {
		t.Fatalf("clear echo: receipts sent %d -> %d, refused %d -> %d", before.ReceiptsSent, after.ReceiptsSent, before.EchoRefused, after.EchoRefused)
	}
}

// An attacker crafts the smallest sealed-sender echo request it can (no
// padding, empty body, sealed sender): the receipt, sealed with sealed
// sender and padded to this node's buckets, must still not be larger.
func TestEchoCraftedUnpaddedRequestNotAmplified(t *testing.T) {
	sealedSenderEcho(t, nil, protocol.Padding{}, false)
}

// A sealed-sender echo request padded to the receipt's bucket is answered,
// with no more bytes than it has.
func TestEchoPaddedSealedSenderAnswered(t *testing.T) {
	sealedSenderEcho(t, make([]byte, 128), protocol.DefaultPadding, true)
}

func sealedSenderEcho(t *testing.T, body []byte, pad protocol.Padding, wantAnswer bool) {
	t.Helper()
	n := newTestNet(t, 14)
	a := n.addNode("a")
	b := n.addNode("b")
	l := n.addLink(routing.LinkIP, 5*time.Millisecond, 0, "a", "b")
	n.run(10 * time.Second)
	// b learns a's key (so the receipt goes out at once, sealed).
	n.step(a, routing.SendRequest{Ref: 1, Dest: b.id.Address(), Body: []byte("hi")})
	n.step(b, routing.SendRequest{Ref: 1, Dest: a.id.Address(), Body: []byte("hi")})
	n.run(5 * time.Second)
	var id protocol.MessageID
	id[0] = 9
	now := protocol.TimestampOf(n.now)
	env, err := protocol.SealEnvelope(rand.NewChaCha8([32]byte{1}), a.id, b.id.Public(), protocol.Header{
		Type: protocol.TypeEcho, HopLimit: 8, ID: id, Created: now, Expires: now + 60, Dest: b.id.Address(), WantReceipt: true,
	}, body, protocol.SealOptions{SealedSender: true, Padding: &pad})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := env.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	sent := func(nd *tnode) int {
		if s := l.sent[nd]; s != nil {
			return s.bytes - s.routingBytes
		}
		return 0
	}
	b0 := sent(b)
	before := b.eng.Counters()
	n.step(b, routing.FrameReceived{Link: l.id, Frame: raw})
	n.run(50 * time.Millisecond)
	ans := sent(b) - b0
	answered := b.eng.Counters().ReceiptsSent > before.ReceiptsSent
	if answered && ans > len(raw) {
		t.Fatalf("sealed-sender echo request %d bytes answered with %d bytes", len(raw), ans)
	}
	if answered != wantAnswer {
		t.Fatalf("sealed-sender echo request of %d bytes answered: %v, want %v", len(raw), answered, wantAnswer)
	}
	t.Logf("request %d bytes, answer %d bytes, receipts %d -> %d", len(raw), ans, before.ReceiptsSent, b.eng.Counters().ReceiptsSent)
}
