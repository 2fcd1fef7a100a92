package routing_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/routing"
)

// Attacks on delivery bound to content (issue 9): each test plays the
// attacker with real engines and real signed or sealed envelopes.

// attacker is an identity outside the mesh that forges envelopes.
func attacker(t *testing.T) *protocol.Identity {
	id, err := protocol.NewIdentity(rand.NewChaCha8(seedBytes("mallory", 0, 1)))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// envelopeOf returns the envelope a frame carries, or nil.
func envelopeOf(frame []byte) *protocol.Envelope {
	if k, err := protocol.PeekKind(frame); err == nil && k == protocol.KindHop {
		if _, in, err := protocol.ParseHop(frame); err == nil {
			frame = in
		}
	}
	env, err := protocol.ParseEnvelope(frame)
	if err != nil {
		return nil
	}
	return env
}

// captureFirst makes the net drop the first message envelope from sends on
// any link and keeps its bytes.
func captureFirst(n *testNet, from *tnode, typ protocol.Type) *[]byte {
	var got []byte
	n.drop = func(nd *tnode, _ *tlink, tx routing.Transmit) bool {
		if nd != from || got != nil {
			return false
		}
		if env := envelopeOf(tx.Frame); env != nil && env.Type == typ {
			got = bytes.Clone(tx.Frame)
			return true
		}
		return false
	}
	return &got
}

func acceptedID(t *testing.T, nd *tnode) protocol.MessageID {
	t.Helper()
	for i := len(nd.events) - 1; i >= 0; i-- {
		if nd.events[i].Kind == routing.EventAccepted {
			return nd.events[i].ID
		}
	}
	t.Fatalf("%s: no accepted event: %+v", nd.name, nd.events)
	return protocol.MessageID{}
}

func hasEvent(nd *tnode, kind routing.EventKind, id protocol.MessageID) bool {
	for _, ev := range nd.events {
		if ev.Kind == kind && ev.ID == id {
			return true
		}
	}
	return false
}

func countBody(nd *tnode, from protocol.Address, body string) int {
	c := 0
	for _, d := range nd.inbox {
		if d.From == from && string(d.Body) == body {
			c++
		}
	}
	return c
}

// squatScenario: a sends to b; the genuine envelope is intercepted, and an
// attacker delivers a different envelope under the genuine message's ID to
// b first. Then the network carries a's retries.
func squatScenario(t *testing.T) (n *testNet, a, b *tnode, id protocol.MessageID) {
	n = newTestNet(t, 21)
	n.cfg = envelopes
	a, b = n.addNode("a"), n.addNode("b")
	ab := n.addLink(routing.LinkIP, 5*time.Millisecond, 0, "a", "b")
	n.run(2 * time.Second)
	genuine := captureFirst(n, a, protocol.TypeMessage)
	n.send("a", "b", "genuine")
	n.run(time.Second)
	if *genuine == nil {
		t.Fatal("no envelope captured")
	}
	gen := envelopeOf(*genuine)
	h := protocol.Header{Type: protocol.TypeMessage, HopLimit: 8, ID: gen.ID, Created: gen.Created,
		Expires: gen.Expires, Dest: b.id.Address(), WantReceipt: true}
	sq, err := protocol.SealEnvelope(rand.NewChaCha8([32]byte{7}), attacker(t), b.id.Public(), h, []byte("squatter"), protocol.SealOptions{})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := sq.MarshalBinary()
	n.step(b, routing.FrameReceived{Link: ab.id, Frame: raw})
	n.drop = nil
	n.run(2 * time.Minute)
	return n, a, b, gen.ID
}

// TestAttackIDSquatting: an envelope that reuses a genuine message's ID does
// not make the genuine one a duplicate: it is delivered, exactly once.
func TestAttackIDSquatting(t *testing.T) {
	_, a, b, _ := squatScenario(t)
	if got := countBody(b, a.id.Address(), "genuine"); got != 1 {
		t.Fatalf("genuine message delivered %d times; b inbox %d entries", got, len(b.inbox))
	}
}

// TestAttackSquattedReceipt: the genuine sender is told "delivered" only for
// a message that was delivered.
func TestAttackSquattedReceipt(t *testing.T) {
	_, a, b, id := squatScenario(t)
	if hasEvent(a, routing.EventDelivered, id) && countBody(b, a.id.Address(), "genuine") == 0 {
		t.Fatal("a got EventDelivered for a message b never delivered")
	}
	if !hasEvent(a, routing.EventDelivered, id) {
		t.Fatalf("a events: %+v", a.events)
	}
}

// TestAttackCustodyOverwrite: a forged envelope carrying the ID of the
// origin's pending message does not destroy the origin's custody record.
func TestAttackCustodyOverwrite(t *testing.T) {
	n := newTestNet(t, 22)
	a, b := n.addNode("a"), n.addNode("b")
	n.addNode("m")
	ab := n.addLink(routing.LinkIP, 5*time.Millisecond, 0, "a", "b")
	am := n.addLink(routing.LinkIP, 5*time.Millisecond, 0, "a", "m")
	n.run(2 * time.Second)
	n.setLink(ab, false)
	n.run(time.Second)
	n.send("a", "b", "pending")
	id := acceptedID(t, a)
	n.run(6 * time.Second) // past the duplicate window
	now := protocol.TimestampOf(n.now)
	h := protocol.Header{Type: protocol.TypeMessage, HopLimit: 8, ID: id, Created: now, Expires: now + 3600, Dest: b.id.Address()}
	forged, err := protocol.SignEnvelope(attacker(t), h, []byte("forged"))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := forged.MarshalBinary()
	n.step(a, routing.FrameReceived{Link: am.id, Frame: raw})
	n.setLink(ab, true)
	n.run(3 * time.Minute)
	if countBody(b, a.id.Address(), "pending") != 1 {
		t.Fatalf("the origin's message was not delivered; b inbox %+v", b.inbox)
	}
	if !hasEvent(a, routing.EventDelivered, id) && !hasEvent(a, routing.EventExpired, id) {
		t.Fatalf("the origin's record vanished without an event: %+v", a.events)
	}
}

// TestAttackSealedReceiptLinkage: the receipt for a sealed-sender message
// shows a forwarder on the way back neither the message ID nor who received
// it, and still reaches the origin.
func TestAttackSealedReceiptLinkage(t *testing.T) {
	n := newTestNet(t, 23)
	a, f, b := n.addNode("a"), n.addNode("f"), n.addNode("b")
	n.addLink(routing.LinkIP, 5*time.Millisecond, 0, "a", "f")
	n.addLink(routing.LinkIP, 5*time.Millisecond, 0, "f", "b")
	n.run(5 * time.Second)
	var back [][]byte // envelope frames b sends to f and f sends to a
	n.drop = func(nd *tnode, l *tlink, tx routing.Transmit) bool {
		if (nd == b || (nd == f && l.nodes[0] == a)) && envelopeOf(tx.Frame) != nil && envelopeOf(tx.Frame).Dest != b.id.Address() {
			back = append(back, bytes.Clone(tx.Frame))
		}
		return false
	}
	n.step(a, routing.SendRequest{Ref: 1, Dest: b.id.Address(), Body: []byte("secret"), SealedSender: true})
	id := acceptedID(t, a)
	n.run(time.Minute)
	if countBody(b, a.id.Address(), "secret") != 1 {
		t.Fatalf("not delivered: %+v", b.inbox)
	}
	if !hasEvent(a, routing.EventDelivered, id) {
		t.Fatalf("no receipt reached a: %+v", a.events)
	}
	if len(back) == 0 {
		t.Fatal("no frame on the way back")
	}
	bAddr, bKey := b.id.Address(), b.id.Compact().SigningKey
	for _, fr := range back {
		if bytes.Contains(fr, id[:]) || bytes.Contains(fr, bAddr[:]) || bytes.Contains(fr, bKey[:]) {
			t.Fatalf("a frame on the way back names the message or its recipient: %x", fr)
		}
	}
}

// TestAttackRewrittenSealedIDs: a forwarder that replays a sealed-sender
// envelope under fresh message IDs does not get the copies through the next
// node's duplicate suppression.
func TestAttackRewrittenSealedIDs(t *testing.T) {
	n := newTestNet(t, 24)
	a, f, b := n.addNode("a"), n.addNode("f"), n.addNode("b")
	af := n.addLink(routing.LinkIP, 5*time.Millisecond, 0, "a", "f")
	fb := n.addLink(routing.LinkIP, 5*time.Millisecond, 0, "f", "b")
	n.run(5 * time.Second)
	genuine := captureFirst(n, a, protocol.TypeMessage)
	n.step(a, routing.SendRequest{Ref: 1, Dest: b.id.Address(), Body: []byte("once"), SealedSender: true})
	n.run(time.Second)
	if *genuine == nil {
		t.Fatal("no envelope captured")
	}
	n.drop = func(nd *tnode, l *tlink, tx routing.Transmit) bool {
		return nd == a && envelopeOf(tx.Frame) != nil && envelopeOf(tx.Frame).Type == protocol.TypeMessage
	}
	sent := fb.sent[f]
	before := 0
	if sent != nil {
		before = sent.frames
	}
	for i := 0; i < 6; i++ {
		c := bytes.Clone(*genuine)
		if i > 0 {
			c[5], c[6] = byte(i), 0xee // a fresh message ID
		}
		n.step(f, routing.FrameReceived{Link: af.id, Frame: c})
	}
	n.run(time.Second)
	if got := fb.sent[f].frames - before; got != 1 {
		t.Fatalf("f forwarded %d copies of one sealed-sender envelope", got)
	}
	if countBody(b, a.id.Address(), "once") != 1 {
		t.Fatalf("b inbox: %+v", b.inbox)
	}
}

// failingRand reads from r until fail is set, then fails.
type failingRand struct {
	r    *rand.ChaCha8
	fail bool
}

func (f *failingRand) Read(p []byte) (int, error) {
	if f.fail {
		return 0, errors.New("entropy source broken")
	}
	return f.r.Read(p)
}

// TestAttackFailingRandom: with a broken random source a send is refused
// with a clear error, and no envelope (with a predictable ID) leaves.
func TestAttackFailingRandom(t *testing.T) {
	ids := []*protocol.Identity{attacker(t)}
	src := &failingRand{r: rand.NewChaCha8([32]byte{1})}
	e, err := routing.New(routing.Config{Identity: ids[0], Rand: src}, epoch, nil)
	if err != nil {
		t.Fatal(err)
	}
	peer := protocol.Address{9}
	if err := e.Step(epoch, routing.LinkUp{Link: routing.LinkInfo{ID: 1, Kind: routing.LinkIP, Peer: peer}}); err != nil {
		t.Fatal(err)
	}
	drainEngine(e)
	src.fail = true
	for _, dest := range []protocol.Address{peer, {8}} {
		err := e.Step(epoch, routing.SendRequest{Ref: 1, Dest: dest, Body: []byte("x")})
		if err == nil {
			t.Fatalf("send to %v accepted with a broken random source", dest)
		}
		if !errors.Is(err, routing.ErrRandom) {
			t.Fatalf("send to %v: %v, want ErrRandom", dest, err)
		}
		rd := e.Ready()
		for _, tx := range rd.Transmits {
			if envelopeOf(tx.Frame) != nil {
				t.Fatalf("an envelope left: %x", tx.Frame)
			}
		}
		if len(rd.Events) != 1 || rd.Events[0].Kind != routing.EventRefused {
			t.Fatalf("events %+v", rd.Events)
		}
		e.Advance()
	}
	// A neighbour's envelope for an unknown destination goes to custody,
	// which asks for a route: no path request may leave under an ID the
	// broken source did not supply.
	h := protocol.Header{Type: protocol.TypeMessage, HopLimit: 16, ID: protocol.MessageID{3}, Created: protocol.TimestampOf(epoch),
		Expires: protocol.TimestampOf(epoch) + 3600, Dest: protocol.Address{7}}
	env, err := protocol.SignEnvelope(attacker(t), h, []byte("for nobody we know"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := env.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	_ = e.Step(epoch, routing.FrameReceived{Link: 1, Frame: raw})
	rd := e.Ready()
	for _, tx := range rd.Transmits {
		if k, err := protocol.PeekKind(tx.Frame); err == nil && k == protocol.KindPathRequest {
			t.Fatalf("a path request left with a broken random source: %x", tx.Frame)
		}
	}
	if len(rd.Lookups) == 0 {
		t.Error("no lookup for the unknown destination (a lookup needs no randomness)")
	}
}

// custodyV1 lays out a custody record as format 1 wrote it (keyed on the
// message ID): version, flags, type, ref, dest, created, expires, data.
func custodyV1(flags byte, ref uint64, dest protocol.Address, created, expires protocol.Timestamp, data []byte) []byte {
	b := []byte{1, flags, byte(protocol.TypeMessage)}
	b = binary.BigEndian.AppendUint64(b, ref)
	b = append(b, dest[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(created))
	b = binary.BigEndian.AppendUint32(b, uint32(expires))
	b = binary.BigEndian.AppendUint32(b, uint32(len(data)))
	return append(b, data...)
}

// TestUpgradeOldRecords: records written before envelope keys ("c/<id>",
// "d/<id>", format 1) are migrated on restore: an origin's pending and
// sealed messages are still delivered (and reported), and a message
// delivered before the upgrade is still suppressed as a duplicate.
func TestUpgradeOldRecords(t *testing.T) {
	n := newTestNet(t, 25)
	a, b := n.addNode("a"), n.addNode("b")
	ab := n.addLink(routing.LinkIP, 5*time.Millisecond, 0, "a", "b")
	n.run(2 * time.Second)
	now := protocol.TimestampOf(n.now)
	hdr := func(id byte) protocol.Header {
		return protocol.Header{Type: protocol.TypeMessage, HopLimit: 16, ID: protocol.MessageID{id, 0xaa}, Created: now,
			Expires: now + 3600, Dest: b.id.Address(), WantReceipt: true}
	}
	sealed, err := protocol.SealEnvelope(rand.NewChaCha8([32]byte{5}), a.id, b.id.Public(), hdr(1), []byte("old sealed"), protocol.SealOptions{})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := sealed.MarshalBinary()
	const crOrigin, crAwaitingKey = 1, 2
	oldSealed := "c/" + sealed.ID.String()
	pendingID := hdr(2).ID
	n.stop(a)
	a.store[oldSealed] = custodyV1(crOrigin, 71, b.id.Address(), now, now+3600, raw)
	a.store["c/"+pendingID.String()] = custodyV1(crOrigin|crAwaitingKey, 72, b.id.Address(), now, now+3600, []byte("old pending"))

	// b delivered message 3 before the upgrade.
	done, err := protocol.SignEnvelope(a.id, hdr(3), []byte("delivered before"))
	if err != nil {
		t.Fatal(err)
	}
	oldDelivered := "d/" + done.ID.String()
	n.stop(b)
	b.store[oldDelivered] = binary.BigEndian.AppendUint32(nil, uint32(now+3600))
	n.start(b)
	n.start(a)
	if _, ok := a.store[oldSealed]; ok {
		t.Fatal("format 1 custody record not migrated")
	}
	if v := b.store[oldDelivered]; len(v) != 38 || v[0] != 2 {
		t.Fatalf("format 1 delivered record not rewritten: %x", v)
	}
	n.run(2 * time.Minute)
	for ref, body := range map[uint64]string{71: "old sealed", 72: "old pending"} {
		if countBody(b, a.id.Address(), body) != 1 {
			t.Fatalf("%q not delivered once after the upgrade: %+v", body, b.inbox)
		}
		var reported bool
		for _, ev := range a.events {
			reported = reported || (ev.Kind == routing.EventDelivered && ev.Ref == ref)
		}
		if !reported {
			t.Fatalf("ref %d: no delivered event: %+v", ref, a.events)
		}
	}
	raw, _ = done.MarshalBinary()
	n.step(b, routing.FrameReceived{Link: ab.id, Frame: raw})
	if countBody(b, a.id.Address(), "delivered before") != 0 {
		t.Fatal("a message delivered before the upgrade was delivered again")
	}
	for k := range a.store {
		if k[:2] == "c/" {
			t.Fatalf("custody record %s left", k)
		}
	}
}

// TestDuplicateAnsweredCheaply: copies of a delivered sealed-sender message
// are answered with the receipt envelope already sent (the same bytes: no
// new sealing, signing or opening), at most once per interval.
func TestDuplicateAnsweredCheaply(t *testing.T) {
	n := newTestNet(t, 26)
	a, b := n.addNode("a"), n.addNode("b")
	ab := n.addLink(routing.LinkIP, 5*time.Millisecond, 0, "a", "b")
	n.run(2 * time.Second)
	var msg []byte
	var receipts [][]byte
	n.drop = func(nd *tnode, _ *tlink, tx routing.Transmit) bool {
		if env := envelopeOf(tx.Frame); env != nil {
			switch {
			case nd == a && env.Type == protocol.TypeMessage && msg == nil:
				msg = bytes.Clone(tx.Frame)
			case nd == b && env.Type == protocol.TypeReceipt:
				receipts = append(receipts, bytes.Clone(tx.Frame))
			}
		}
		return false
	}
	n.step(a, routing.SendRequest{Ref: 1, Dest: b.id.Address(), Body: []byte("m"), SealedSender: true})
	n.run(time.Second)
	if len(receipts) != 1 || countBody(b, a.id.Address(), "m") != 1 {
		t.Fatalf("%d receipts, inbox %+v", len(receipts), b.inbox)
	}
	before := b.eng.Counters()
	for range 20 {
		n.step(b, routing.FrameReceived{Link: ab.id, Frame: msg})
	}
	c := b.eng.Counters()
	if len(receipts) != 1 || c.ReceiptsThrottled-before.ReceiptsThrottled != 20 || c.OpenFailed != 0 {
		t.Fatalf("20 copies within the interval: %d receipts, %d throttled", len(receipts), c.ReceiptsThrottled-before.ReceiptsThrottled)
	}
	n.run(10 * time.Second)
	n.step(b, routing.FrameReceived{Link: ab.id, Frame: msg})
	n.run(time.Second)
	if len(receipts) != 2 || !bytes.Equal(receipts[0], receipts[1]) {
		t.Fatalf("copy after the interval: %d receipts, same bytes %v", len(receipts), len(receipts) == 2 && bytes.Equal(receipts[0], receipts[1]))
	}
	if countBody(b, a.id.Address(), "m") != 1 {
		t.Fatal("delivered twice")
	}
}

// TestSealedReceiptFetchesKey: on LoRa, adverts are compact (no KEM key), so
// the recipient of a sealed-sender message may not know the origin's key:
// the sealed receipt waits for it in custody while a path request fetches it,
// and the origin still learns that the message was delivered.
func TestSealedReceiptFetchesKey(t *testing.T) {
	n := newTestNet(t, 27)
	a, b := n.addNode("a"), n.addNode("b")
	n.addLink(routing.LinkLoRa, 0, 0, "a", "b")
	n.run(30 * time.Minute)
	for _, r := range b.eng.Routes() {
		if r.Dest == a.id.Address() && r.HasKey {
			t.Fatal("b knows a's KEM key already; the test needs it unknown")
		}
	}
	n.step(a, routing.SendRequest{Ref: 1, Dest: b.id.Address(), Body: []byte("over the air"), SealedSender: true})
	id := acceptedID(t, a)
	n.run(3 * time.Hour)
	if countBody(b, a.id.Address(), "over the air") != 1 {
		t.Fatalf("b inbox %+v", b.inbox)
	}
	if !hasEvent(a, routing.EventDelivered, id) {
		t.Fatalf("no receipt reached a: %+v\nb counters %+v", a.events, b.eng.Counters())
	}
}
