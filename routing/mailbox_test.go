package routing_test

import (
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/routing"
)

// TestMailboxFoundHandsOffToRecipientsMailbox: a sender that never had a
// route to c, nor c's key, learns from c's record that m is c's mailbox.
// It seals the message with the key from the record, offers it to m at
// once (not after HandOffAfter retries, and not to x, the other mailbox it
// sees), goes offline, and c, linking to m later, gets it exactly once.
func TestMailboxFoundHandsOffToRecipientsMailbox(t *testing.T) {
	n := newTestNet(t, 61)
	a := n.addNode("a")
	n.cfg = func(c *routing.Config) { c.Mailbox, c.Capabilities = true, protocol.CapMailbox }
	m, x := n.addNode("m"), n.addNode("x")
	n.cfg = nil
	c := n.addNode("c")
	n.addLink(routing.LinkIP, 5*time.Millisecond, 0, "a", "m")
	n.addLink(routing.LinkIP, time.Millisecond, 0, "a", "x")
	n.run(2 * time.Second)
	n.send("a", "c", "for the mailbox")
	id := acceptedID(t, a)
	n.run(time.Second)
	n.step(a, routing.MailboxFound{Dest: c.id.Address(), Identity: c.id.Public(), Mailbox: m.id.Address()})
	n.run(5 * time.Second)
	if !hasEvent(a, routing.EventHandedOff, id) {
		t.Fatalf("a did not hand the message to c's mailbox within 5 s: events %+v", a.events)
	}
	n.stop(a)
	n.addLink(routing.LinkIP, 5*time.Millisecond, 0, "c", "m")
	n.run(time.Minute)
	if got := countBody(c, a.id.Address(), "for the mailbox"); got != 1 {
		t.Fatalf("c received the message %d times, want once (m custody %d, x custody %d)", got,
			m.eng.Counters().CustodyCount, x.eng.Counters().CustodyCount)
	}
}

// TestMailboxFoundBadInput: an identity that is not the destination's, or
// a mailbox that is the destination or the node itself, is refused.
func TestMailboxFoundBadInput(t *testing.T) {
	n := newTestNet(t, 62)
	a, c, m := n.addNode("a"), n.addNode("c"), n.addNode("m")
	for _, in := range []routing.MailboxFound{
		{Dest: c.id.Address(), Identity: m.id.Public(), Mailbox: m.id.Address()},
		{Dest: c.id.Address(), Mailbox: m.id.Address()},
		{Dest: c.id.Address(), Identity: c.id.Public(), Mailbox: c.id.Address()},
		{Dest: c.id.Address(), Identity: c.id.Public(), Mailbox: a.id.Address()},
		{Dest: c.id.Address(), Identity: c.id.Public()},
	} {
		if err := a.eng.Step(n.now, in); !errors.Is(err, routing.ErrBadInput) {
			t.Errorf("%+v: err %v, want ErrBadInput", in, err)
		}
	}
}

// TestAttackDrainMailbox: while c is offline, m, another neighbour of c's
// mailbox, advertises a route to c with an announce of c's it captured.
// The mailbox forwarded what it kept for c along that route, dropped its
// copy on the hand-over, and m threw it away: c, coming back to its
// mailbox, got nothing (the origin, offline, could not retry). A mailbox
// hands what it accepted for c only to c itself, over a link whose peer is
// c; any other route only waits.
func TestAttackDrainMailbox(t *testing.T) {
	n := newTestNet(t, 63)
	a, c, m := n.addNode("a"), n.addNode("c"), n.addNode("m")
	n.cfg = func(c *routing.Config) { c.Mailbox, c.Capabilities = true, protocol.CapMailbox }
	r := n.addNode("r")
	n.cfg = nil
	n.addLink(routing.LinkIP, 5*time.Millisecond, 0, "a", "r")
	rm := n.addLink(routing.LinkIP, 5*time.Millisecond, 0, "r", "m")
	n.run(2 * time.Second)
	n.send("a", "c", "drain me")
	id := acceptedID(t, a)
	n.step(a, routing.MailboxFound{Dest: c.id.Address(), Identity: c.id.Public(), Mailbox: r.id.Address()})
	n.run(5 * time.Second)
	if !hasEvent(a, routing.EventHandedOff, id) {
		t.Fatalf("no hand-off: %+v", a.events)
	}
	n.stop(a)
	ann, err := protocol.NewAnnounce(c.id, protocol.AnnounceOptions{Sequence: 1, Timestamp: protocol.TimestampOf(n.now)})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := ann.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	// As the forwarder, and naming c as the forwarder.
	n.step(r, routing.FrameReceived{Link: rm.id, Frame: protocol.AppendAdvert(nil, m.id.Address(), 0, raw)})
	n.step(r, routing.FrameReceived{Link: rm.id, Frame: protocol.AppendAdvert(nil, c.id.Address(), 0, raw)})
	n.run(time.Minute)
	n.stop(m) // the attacker keeps nothing
	n.addLink(routing.LinkIP, 5*time.Millisecond, 0, "c", "r")
	n.run(time.Minute)
	if got := countBody(c, a.id.Address(), "drain me"); got != 1 {
		t.Fatalf("c received the message %d times, want once (r custody %d)", got, r.eng.Counters().CustodyCount)
	}
}

// TestMailboxFoundForgedAccept: the offer to the recipient's mailbox is
// lost, and a neighbour that saw the offered envelope answers "accepted"
// itself, signed with its own key. The sender does not take that for the
// mailbox's word: it reports no hand-off, and its copy stays. (The engine's
// rule from TestAttackForgedCustodyAccept, checked on the MailboxFound
// path.)
func TestMailboxFoundForgedAccept(t *testing.T) {
	n := newTestNet(t, 64)
	a, c, _ := n.addNode("a"), n.addNode("c"), n.addNode("x")
	n.cfg = func(c *routing.Config) { c.Mailbox, c.Capabilities = true, protocol.CapMailbox }
	m := n.addNode("m")
	n.cfg = nil
	n.addLink(routing.LinkIP, 5*time.Millisecond, 0, "a", "m")
	ax := n.addLink(routing.LinkIP, 5*time.Millisecond, 0, "a", "x")
	n.run(2 * time.Second)
	var offered *protocol.Envelope
	n.drop = func(nd *tnode, _ *tlink, tx routing.Transmit) bool {
		env := envelopeOf(tx.Frame)
		if nd != a || env == nil || env.Type != protocol.TypeControl || len(env.Payload) == 0 ||
			protocol.Kind(env.Payload[0]) != protocol.KindCustodyOffer {
			return false
		}
		if inner, err := protocol.ParseCustodyOffer(env.Payload); err == nil {
			offered = inner
		}
		return true // every offer is lost
	}
	n.send("a", "c", "offered")
	id := acceptedID(t, a)
	n.step(a, routing.MailboxFound{Dest: c.id.Address(), Identity: c.id.Public(), Mailbox: m.id.Address()})
	n.run(time.Second)
	if offered == nil {
		t.Fatal("no offer sent")
	}
	now := protocol.TimestampOf(n.now)
	h := protocol.Header{Type: protocol.TypeControl, HopLimit: 8, ID: protocol.MessageID{0xad}, Created: now,
		Expires: now + 600, Dest: a.id.Address()}
	forged, err := protocol.SignEnvelope(attacker(t), h, protocol.AppendCustodyAccept(nil, protocol.MessageID(offered.Key()), protocol.CustodyAccepted))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := forged.MarshalBinary()
	n.step(a, routing.FrameReceived{Link: ax.id, Frame: raw})
	n.run(5 * time.Second)
	if hasEvent(a, routing.EventHandedOff, id) {
		t.Fatal("a took a stranger's acceptance for the mailbox's")
	}
	if a.eng.Counters().CustodyCount == 0 {
		t.Fatal("a dropped its copy")
	}
}

// TestMailboxQuotaPerSender: one sender offering a mailbox many messages
// (to many recipients, so no destination's share binds) gets its source
// share and no more, and another sender's offer is still taken. Custody
// is never evicted, so without the share one sender would fill the
// mailbox for as long as its messages live (up to 30 days).
func TestMailboxQuotaPerSender(t *testing.T) {
	mk := func(b byte) *protocol.Identity {
		id, err := protocol.NewIdentity(rand.NewChaCha8([32]byte{b}))
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	box, flooder, honest := mk(71), mk(72), mk(73)
	eng, err := routing.New(routing.Config{Identity: box, Rand: rand.NewChaCha8([32]byte{74}), AnnounceInterval: 24 * time.Hour,
		Mailbox: true, Capabilities: protocol.CapMailbox, CustodyMaxBytes: 8 << 20}, epoch, nil)
	if err != nil {
		t.Fatal(err)
	}
	step := func(in routing.Input) {
		_ = eng.Step(epoch, in)
		for eng.HasReady() {
			eng.Ready()
			eng.Advance()
		}
	}
	step(routing.LinkUp{Link: routing.LinkInfo{ID: 1, Kind: routing.LinkTCP, Bitrate: 1e8, Peer: flooder.Address()}})
	step(routing.LinkUp{Link: routing.LinkInfo{ID: 2, Kind: routing.LinkTCP, Bitrate: 1e8, Peer: honest.Address()}})
	ts := protocol.TimestampOf(epoch)
	offer := func(from *protocol.Identity, link routing.LinkID, i int) {
		var dest, id protocol.Address
		dest[0], dest[1], dest[2] = 0xde, byte(i>>8), byte(i)
		id[0], id[1], id[2] = byte(link), byte(i>>8), byte(i)
		inner, err := protocol.SignEnvelope(from, protocol.Header{Type: protocol.TypeMessage, HopLimit: 8, ID: protocol.MessageID(id),
			Created: ts, Expires: ts + 3600, Dest: dest}, make([]byte, 16<<10))
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := inner.MarshalBinary()
		ctl, err := protocol.SignEnvelope(from, protocol.Header{Type: protocol.TypeControl, HopLimit: 8, ID: protocol.MessageID{0xc0, byte(link), byte(i >> 8), byte(i)},
			Created: ts, Expires: ts + 3600, Dest: box.Address()}, protocol.AppendCustodyOffer(nil, raw))
		if err != nil {
			t.Fatal(err)
		}
		craw, _ := ctl.MarshalBinary()
		step(routing.FrameReceived{Link: link, Frame: craw})
	}
	const flood = 400
	for i := range flood {
		offer(flooder, 1, i)
	}
	took := eng.Counters().CustodyAccepted
	if took == 0 || took >= flood/2 {
		t.Fatalf("the mailbox took %d of %d offers from one sender", took, flood)
	}
	offer(honest, 2, 0)
	if eng.Counters().CustodyAccepted != took+1 {
		t.Fatalf("another sender's offer was refused after the flood (accepted %d, before %d)", eng.Counters().CustodyAccepted, took)
	}
	t.Logf("one sender: %d of %d offers of 16 KiB kept", took, flood)
}

// TestMailboxThroughOthersClearsOnReceipt: m keeps c's message and reaches
// c only through b. c's receipt goes to the origin a, not through m; m
// re-sent the message to c until it expired. Now c answers m's own offer
// with a receipt addressed to m: m lets its copy go, and c sees no more
// copies however long the run.
func TestMailboxThroughOthersClearsOnReceipt(t *testing.T) {
	n := newTestNet(t, 65)
	a, b, c := n.addNode("a"), n.addNode("b"), n.addNode("c")
	n.cfg = func(c *routing.Config) { c.Mailbox, c.Capabilities = true, protocol.CapMailbox }
	m := n.addNode("m")
	n.cfg = nil
	n.addLink(routing.LinkIP, 5*time.Millisecond, 0, "a", "m")
	n.addLink(routing.LinkIP, 5*time.Millisecond, 0, "m", "b")
	n.run(2 * time.Second)
	n.send("a", "c", "through b")
	id := acceptedID(t, a)
	n.step(a, routing.MailboxFound{Dest: c.id.Address(), Identity: c.id.Public(), Mailbox: m.id.Address()})
	n.run(5 * time.Second)
	if !hasEvent(a, routing.EventHandedOff, id) {
		t.Fatalf("no hand-off: %+v", a.events)
	}
	n.stop(a)
	n.addLink(routing.LinkIP, 5*time.Millisecond, 0, "b", "c")
	n.run(10 * time.Minute)
	if got := countBody(c, a.id.Address(), "through b"); got != 1 {
		t.Fatalf("c received the message %d times, want once", got)
	}
	dups := c.eng.Counters().Duplicates
	n.run(time.Hour)
	if got := c.eng.Counters().Duplicates; got != dups {
		t.Fatalf("c got %d more copies after delivery", got-dups)
	}
	// What m still keeps is c's receipt for a, which is offline.
	n.start(a)
	n.run(10 * time.Minute)
	if !hasEvent(a, routing.EventDelivered, id) {
		t.Fatalf("a heard of no delivery: %+v", a.events)
	}
	for _, nd := range []*tnode{a, b, c, m} {
		if got := nd.eng.Counters().CustodyCount; got != 0 {
			t.Errorf("%s still keeps %d records", nd.name, got)
		}
	}
}
