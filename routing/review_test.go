package routing_test

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
	"time"

	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/routing"
)

// custodyV2 lays out a format 2 custody record (routing/custody.go).
func custodyV2(flags byte, ref uint64, env *protocol.Envelope, raw []byte) []byte {
	b := []byte{2, flags, byte(env.Type)}
	b = binary.BigEndian.AppendUint64(b, ref)
	b = append(b, env.Dest[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(env.Created))
	b = binary.BigEndian.AppendUint32(b, uint32(env.Expires))
	b = append(b, env.ID[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(raw)))
	return append(b, raw...)
}

// TestRestoreBothFormatsKeepsRecord: a store that holds one origin message
// in both formats (a migration whose delete did not land, or a downgrade
// and upgrade) must keep one record on disk. Restoring the format 1 record
// first rewrote it under its envelope key, and the format 2 record, a
// duplicate, was then deleted under that very key: the write and the delete
// collapse to a delete, the message stays in memory only and is lost at the
// next restart without an expired event.
func TestRestoreBothFormatsKeepsRecord(t *testing.T) {
	rnd := rand.NewChaCha8([32]byte{41})
	a, err := protocol.NewIdentity(rnd)
	if err != nil {
		t.Fatal(err)
	}
	b, err := protocol.NewIdentity(rnd)
	if err != nil {
		t.Fatal(err)
	}
	now := protocol.TimestampOf(epoch)
	h := protocol.Header{Type: protocol.TypeMessage, HopLimit: 16, ID: protocol.MessageID{7, 7}, Created: now,
		Expires: now + 3600, Dest: b.Address(), WantReceipt: true}
	env, err := protocol.SealEnvelope(rnd, a, b.Public(), h, []byte("kept"), protocol.SealOptions{})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := env.MarshalBinary()
	const crOrigin = 1
	key := env.Key()
	v1Key, v2Key := "c/"+env.ID.String(), "c/"+key.String()
	store := map[string][]byte{
		v1Key: custodyV1(crOrigin, 5, b.Address(), now, now+3600, raw),
		v2Key: custodyV2(crOrigin, 5, env, raw),
	}
	recs := []routing.Record{{Key: v1Key, Value: store[v1Key]}, {Key: v2Key, Value: store[v2Key]}}
	cfg := routing.Config{Identity: a, Rand: rand.NewChaCha8([32]byte{42}), AnnounceInterval: 24 * time.Hour}
	eng, err := routing.New(cfg, epoch, recs)
	if err != nil {
		t.Fatal(err)
	}
	for eng.HasReady() {
		rd := eng.Ready()
		for _, r := range rd.Persist {
			store[r.Key] = r.Value
		}
		for _, k := range rd.Deletes {
			delete(store, k)
		}
		eng.Advance()
	}
	if _, ok := store[v1Key]; ok {
		t.Error("format 1 record left")
	}
	if _, ok := store[v2Key]; !ok {
		t.Fatalf("the message's only record was deleted from the store (left: %d records)", len(store))
	}
}

// TestAttackForgedCustodyAccept: a custody answer is believed only from the
// mailbox the record was offered to. Anyone who saw an envelope (a node on
// one of its paths, a radio in range) knows its key; a "custody accepted"
// naming it, signed by any identity, made the origin report the message
// handed off and stop retrying it (and a forwarder drop its copy), so one
// lost copy lost the message.
func TestAttackForgedCustodyAccept(t *testing.T) {
	n := newTestNet(t, 43)
	n.cfg = envelopes
	a, b := n.addNode("a"), n.addNode("b")
	ab := n.addLink(routing.LinkIP, 5*time.Millisecond, 0, "a", "b")
	n.run(2 * time.Second)
	genuine := captureFirst(n, a, protocol.TypeMessage) // the first copy is lost
	n.send("a", "b", "retried")
	id := acceptedID(t, a)
	n.run(time.Second)
	if *genuine == nil {
		t.Fatal("no envelope captured")
	}
	key := envelopeOf(*genuine).Key()
	now := protocol.TimestampOf(n.now)
	h := protocol.Header{Type: protocol.TypeControl, HopLimit: 8, ID: protocol.MessageID{0xac}, Created: now,
		Expires: now + 600, Dest: a.id.Address()}
	forged, err := protocol.SignEnvelope(attacker(t), h, protocol.AppendCustodyAccept(nil, protocol.MessageID(key), protocol.CustodyAccepted))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := forged.MarshalBinary()
	n.step(a, routing.FrameReceived{Link: ab.id, Frame: raw})
	n.drop = nil
	n.run(2 * time.Minute)
	if hasEvent(a, routing.EventHandedOff, id) {
		t.Error("a reported a hand-off that a stranger claimed")
	}
	if countBody(b, a.id.Address(), "retried") != 1 || !hasEvent(a, routing.EventDelivered, id) {
		t.Fatalf("the message was not retried to delivery: b inbox %d, a events %+v", len(b.inbox), a.events)
	}
}

// TestAttackPendingReceiptsTakeReserve: sealed-sender messages that want a
// receipt, from a sender whose KEM key the recipient does not know (the
// attacker never answers the key request), each left a pending sealed
// receipt charged as the node's own, which may use the whole store: they
// filled the reserve for the node's own messages, and its own sends were
// refused for as long as the messages lived (up to 30 days, across
// restarts). A pending receipt is held as the sealed receipt it becomes:
// forwarded traffic, within the sealed-sender pool.
func TestAttackPendingReceiptsTakeReserve(t *testing.T) { receiptsTakeReserve(t, true) }

// TestAttackClearReceiptsTakeReserve: the same with signed messages from an
// unreachable sender: each clear receipt waited in custody, charged as the
// node's own, and they filled the reserve too.
func TestAttackClearReceiptsTakeReserve(t *testing.T) { receiptsTakeReserve(t, false) }

func receiptsTakeReserve(t *testing.T, sealedSender bool) {
	rnd := rand.NewChaCha8([32]byte{44})
	v, err := protocol.NewIdentity(rnd)
	if err != nil {
		t.Fatal(err)
	}
	m := attacker(t)
	cfg := routing.Config{Identity: v, Rand: rand.NewChaCha8([32]byte{45}), AnnounceInterval: 24 * time.Hour,
		CustodyMaxBytes: 512 << 10}
	eng, err := routing.New(cfg, epoch, nil)
	if err != nil {
		t.Fatal(err)
	}
	var events []routing.Event
	delivered := 0
	step := func(in routing.Input) {
		_ = eng.Step(epoch, in)
		for eng.HasReady() {
			rd := eng.Ready()
			events = append(events, rd.Events...)
			delivered += len(rd.Deliveries)
			eng.Advance()
		}
	}
	step(routing.LinkUp{Link: routing.LinkInfo{ID: 1, Kind: routing.LinkTCP, Bitrate: 1e8}})
	now := protocol.TimestampOf(epoch)
	const junk = 600
	for i := range junk {
		h := protocol.Header{Type: protocol.TypeMessage, HopLimit: 8, ID: protocol.MessageID{byte(i), byte(i >> 8), 0xee},
			Created: now, Expires: now + 30*24*3600, Dest: v.Address(), WantReceipt: true}
		env, err := protocol.SealEnvelope(rnd, m, v.Public(), h, []byte("x"), protocol.SealOptions{SealedSender: sealedSender})
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := env.MarshalBinary()
		step(routing.FrameReceived{Link: 1, Frame: raw})
	}
	if delivered != junk {
		t.Fatalf("%d of %d messages delivered", delivered, junk)
	}
	step(routing.SendRequest{Ref: 9, Dest: protocol.Address{0x0d}, Body: make([]byte, 1024)})
	for _, ev := range events {
		if ev.Kind == routing.EventRefused && ev.Ref == 9 {
			t.Fatalf("the node's own send was refused after %d receipts owed to an unknown sender: %v (custody %d bytes)",
				junk, ev.Err, eng.Counters().CustodyBytes)
		}
	}
}

// TestAttackHopAckFromOtherLink: a hop ack counts only from the link the
// envelope was sent on. A neighbour on another link that knows the
// envelope's key (it brought the envelope, or saw it) could otherwise stop
// the retransmission on the hop-ack link, and make a forwarder release its
// custody copy there.
func TestAttackHopAckFromOtherLink(t *testing.T) {
	rnd := rand.NewChaCha8([32]byte{46})
	f, err := protocol.NewIdentity(rnd)
	if err != nil {
		t.Fatal(err)
	}
	o, b := attacker(t), protocol.Address{0xb0}
	eng, err := routing.New(routing.Config{Identity: f, Rand: rand.NewChaCha8([32]byte{47}), AnnounceInterval: 24 * time.Hour}, epoch, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := epoch
	step := func(in routing.Input) {
		_ = eng.Step(now, in)
		for eng.HasReady() {
			eng.Ready()
			eng.Advance()
		}
	}
	step(routing.LinkUp{Link: routing.LinkInfo{ID: 1, Kind: routing.LinkTCP, Bitrate: 1e8, Peer: o.Address()}})
	step(routing.LinkUp{Link: routing.LinkInfo{ID: 2, Kind: routing.LinkTCP, Bitrate: 1e8, Peer: b, HopAcks: true}})
	ts := protocol.TimestampOf(now)
	env, err := protocol.SignEnvelope(o, protocol.Header{Type: protocol.TypeMessage, HopLimit: 8, ID: protocol.MessageID{1},
		Created: ts, Expires: ts + 3600, Dest: b}, []byte("over the hop-ack link"))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := env.MarshalBinary()
	step(routing.FrameReceived{Link: 1, Frame: raw})
	if eng.Counters().Forwarded != 1 {
		t.Fatalf("not forwarded: %+v", eng.Counters())
	}
	step(routing.FrameReceived{Link: 1, Frame: protocol.AppendHopAck(nil, protocol.MessageID(env.Key()))})
	for range 10 {
		now = now.Add(5 * time.Second)
		eng.Tick(now)
		for eng.HasReady() {
			eng.Ready()
			eng.Advance()
		}
	}
	if c := eng.Counters(); c.Retransmits == 0 && c.RetransmitFailed == 0 {
		t.Fatalf("a hop ack from another link ended the wait on the hop-ack link: %+v", c)
	}
}

// TestOwnReceiptExpiresQuietly: a receipt this node could not deliver (its
// sender is unreachable) expires in custody without an expiry notice to
// this node itself. The notice went to the envelope's source, this node: it
// waited in custody for a route to itself, expired a day later and sent
// the next one, for ever, one chain per receipt that ever expired (and
// anyone can make the node owe receipts).
func TestOwnReceiptExpiresQuietly(t *testing.T) {
	rnd := rand.NewChaCha8([32]byte{48})
	v, err := protocol.NewIdentity(rnd)
	if err != nil {
		t.Fatal(err)
	}
	eng, err := routing.New(routing.Config{Identity: v, Rand: rand.NewChaCha8([32]byte{49}), AnnounceInterval: 24 * time.Hour}, epoch, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := epoch
	drain := func() {
		for eng.HasReady() {
			eng.Ready()
			eng.Advance()
		}
	}
	_ = eng.Step(now, routing.LinkUp{Link: routing.LinkInfo{ID: 1, Kind: routing.LinkTCP, Bitrate: 1e8}})
	drain()
	ts := protocol.TimestampOf(now)
	env, err := protocol.SignEnvelope(attacker(t), protocol.Header{Type: protocol.TypeMessage, HopLimit: 8, ID: protocol.MessageID{3},
		Created: ts, Expires: ts + 120, Dest: v.Address(), WantReceipt: true}, []byte("short-lived"))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := env.MarshalBinary()
	_ = eng.Step(now, routing.FrameReceived{Link: 1, Frame: raw})
	drain()
	if c := eng.Counters(); c.Delivered != 1 || c.CustodyCount != 1 {
		t.Fatalf("want the message delivered and its receipt in custody: %+v", c)
	}
	for range 4 * 24 * 60 {
		now = now.Add(time.Minute)
		eng.Tick(now)
		drain()
	}
	if c := eng.Counters(); c.CustodyCount != 0 || c.ExpiryNoticesSent != 0 {
		t.Fatalf("four days on: %d records in custody, %d expiry notices sent", c.CustodyCount, c.ExpiryNoticesSent)
	}
}

// TestAttackRetransmitKeepsOwner: a neighbour's envelope retransmitted on a
// hop-ack link is still that neighbour's in the queue. It went back in as
// the node's own frame, which displaces forwarded frames of its priority:
// a neighbour whose envelopes are never acknowledged (say, to a next hop
// it controls) pushed other neighbours' envelopes out of the queue.
func TestAttackRetransmitKeepsOwner(t *testing.T) {
	rnd := rand.NewChaCha8([32]byte{50})
	f, err := protocol.NewIdentity(rnd)
	if err != nil {
		t.Fatal(err)
	}
	n1, n2, b := attacker(t), protocol.Address{0x22}, protocol.Address{0xb0}
	eng, err := routing.New(routing.Config{Identity: f, Rand: rand.NewChaCha8([32]byte{51}), AnnounceInterval: 24 * time.Hour}, epoch, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := epoch
	drain := func() {
		for eng.HasReady() {
			eng.Ready()
			eng.Advance()
		}
	}
	step := func(in routing.Input) { _ = eng.Step(now, in); drain() }
	step(routing.LinkUp{Link: routing.LinkInfo{ID: 1, Kind: routing.LinkTCP, Bitrate: 1e8, Peer: n1.Address()}})
	step(routing.LinkUp{Link: routing.LinkInfo{ID: 3, Kind: routing.LinkTCP, Bitrate: 1e8, Peer: n2}})
	step(routing.LinkUp{Link: routing.LinkInfo{ID: 2, Kind: routing.LinkTCP, Bitrate: 1e8, Peer: b, HopAcks: true,
		Window: 1, QueueBytes: 300}})
	step(routing.TxDone{Link: 2, Frames: 1}) // our announce on it
	drops := eng.Counters().QueueDrops       // the announce does not fit the small queue
	ts := protocol.TimestampOf(now)
	envelope := func(id byte) []byte {
		env, err := protocol.SignEnvelope(n1, protocol.Header{Type: protocol.TypeMessage, HopLimit: 8, ID: protocol.MessageID{id},
			Created: ts, Expires: ts + 3600, Dest: b}, []byte("forwarded"))
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := env.MarshalBinary()
		return raw
	}
	step(routing.FrameReceived{Link: 1, Frame: envelope(1)}) // n1's: in flight, never acknowledged
	step(routing.FrameReceived{Link: 3, Frame: envelope(2)}) // n2's: queued behind it
	if c := eng.Counters(); c.Forwarded != 2 || c.QueueDrops != drops || c.QueuedFrames != 1 {
		t.Fatalf("setup: %+v", c)
	}
	now = now.Add(10 * time.Second)
	eng.Tick(now)
	drain()
	_ = eng.Step(now, routing.TxDone{Link: 2, Frames: 1}) // the first copy left; the link takes the next frame
	var next []protocol.MessageID
	for eng.HasReady() {
		for _, tx := range eng.Ready().Transmits {
			if env := envelopeOf(tx.Frame); env != nil && tx.Link == 2 {
				next = append(next, env.ID)
			}
		}
		eng.Advance()
	}
	if len(next) != 1 || next[0] != (protocol.MessageID{2}) {
		t.Fatalf("next on the link: %v, want n2's envelope (n1's retransmission displaced it)", next)
	}
	// The refused retransmission is tried again later, not left waiting
	// with no deadline.
	again := false
	for range 6 {
		now = now.Add(10 * time.Second)
		_ = eng.Step(now, routing.TxDone{Link: 2, Frames: 1})
		eng.Tick(now)
		for eng.HasReady() {
			for _, tx := range eng.Ready().Transmits {
				env := envelopeOf(tx.Frame)
				again = again || (env != nil && tx.Link == 2 && env.ID == protocol.MessageID{1})
			}
			eng.Advance()
		}
	}
	if !again {
		t.Fatal("the refused retransmission was never tried again")
	}
}

// TestAttackFloodCacheBlackout: a neighbour (or gossip peer) sends frames
// of channels nobody can check, dated ClockSkew ahead, enough to fill the
// flood dedup cache. The cache forgot genuine frames first and raised its
// floor past their expiry, so every node then refused every fresh frame as
// possibly forgotten: for ten minutes per cache-full of junk (1.5 MiB at the
// default size), every broadcast was neither delivered nor relayed. A
// member now dedups its channels' frames in a cache only authenticated
// frames enter, and a non-member relays a frame it may have forgotten (a
// replay costs it one hop-limited relay; members refuse it themselves).
func TestAttackFloodCacheBlackout(t *testing.T) {
	key := floodChannel(t)
	small := func(c *routing.Config) { c.SeenCacheSize = 64 }
	a := newFloodNode(t, "a", nil)
	member, relay := newFloodNode(t, "b", small), newFloodNode(t, "c", small)
	member.step(routing.JoinChannel{Key: key})
	rnd := rand.NewChaCha8([32]byte{52})
	at := epoch.Add(time.Minute)
	for range 64 {
		jk, err := protocol.NewChannelKey(rnd)
		if err != nil {
			t.Fatal(err)
		}
		junk, err := protocol.SealChannel(rnd, jk, 5, at.Add(9*time.Minute), []byte("junk"), nil)
		if err != nil {
			t.Fatal(err)
		}
		member.receive(at, junk)
		relay.receive(at, junk)
	}
	for i := range 5 {
		at = at.Add(time.Minute)
		a.now = at
		frame := a.broadcast(key, "genuine", 5)
		member.got, relay.out = nil, nil
		member.receive(at, frame)
		relay.receive(at, frame)
		if len(member.got) != 1 {
			t.Fatalf("genuine frame %d after the junk: not delivered to a member", i)
		}
		if len(relay.out) == 0 {
			t.Fatalf("genuine frame %d after the junk: not relayed by a non-member", i)
		}
	}
}

// TestAttackSealedReceiptExpiryLinks: a sealed receipt's header must not
// carry the message's expiry. It did (the receipt lived as long as the
// message), so a forwarder that saw both, or anyone in radio range, matched
// the sealed-sender message towards b with the receipt towards a by one
// 4-byte field and learned that a wrote to b. The receipt now lives for the
// message's remaining lifetime rounded up to a power of two hours.
func TestAttackSealedReceiptExpiryLinks(t *testing.T) {
	n := newTestNet(t, 53)
	a, b := n.addNode("a"), n.addNode("b")
	n.addLink(routing.LinkIP, 5*time.Millisecond, 0, "a", "b")
	n.run(2 * time.Second)
	var msg, rcpt *protocol.Envelope
	n.drop = func(nd *tnode, _ *tlink, tx routing.Transmit) bool {
		if env := envelopeOf(tx.Frame); env != nil {
			switch {
			case nd == a && env.Type == protocol.TypeMessage && msg == nil:
				msg = env
			case nd == b && env.Type == protocol.TypeReceipt && rcpt == nil:
				rcpt = env
			}
		}
		return false
	}
	n.step(a, routing.SendRequest{Ref: 1, Dest: b.id.Address(), Body: []byte("m"), SealedSender: true, TTL: 3*time.Hour + 17*time.Second})
	n.run(time.Second)
	if msg == nil || rcpt == nil {
		t.Fatal("message or receipt not seen")
	}
	if rcpt.Flags&protocol.FlagSealedSender == 0 {
		t.Fatal("the receipt is not sealed")
	}
	if rcpt.Expires == msg.Expires {
		t.Fatalf("the sealed receipt expires with the message (%d): the two are linked", msg.Expires)
	}
	if rcpt.Expires < msg.Expires {
		t.Fatalf("the receipt expires at %d, before the message (%d) whose copies it answers", rcpt.Expires, msg.Expires)
	}
	if life := rcpt.Expires - rcpt.Created; life != 4*3600 {
		t.Fatalf("receipt lifetime %d s, want 4 h (3 h of message left, rounded up)", life)
	}
}

// TestAttackOfferToMailboxItself: a mailbox does not take custody of an
// offered envelope addressed to itself (no honest node offers a message to
// its destination). It did: the message sat in custody, never delivered,
// and the mailbox looked itself up, in the DHT and with path requests, until
// the message expired.
func TestAttackOfferToMailboxItself(t *testing.T) {
	rnd := rand.NewChaCha8([32]byte{54})
	v, err := protocol.NewIdentity(rnd)
	if err != nil {
		t.Fatal(err)
	}
	eng, err := routing.New(routing.Config{Identity: v, Rand: rand.NewChaCha8([32]byte{55}), AnnounceInterval: 24 * time.Hour,
		Mailbox: true}, epoch, nil)
	if err != nil {
		t.Fatal(err)
	}
	var lookups []protocol.Address
	step := func(in routing.Input) {
		_ = eng.Step(epoch, in)
		for eng.HasReady() {
			lookups = append(lookups, eng.Ready().Lookups...)
			eng.Advance()
		}
	}
	step(routing.LinkUp{Link: routing.LinkInfo{ID: 1, Kind: routing.LinkTCP, Bitrate: 1e8}})
	ts := protocol.TimestampOf(epoch)
	sign := func(h protocol.Header, payload []byte) []byte {
		env, err := protocol.SignEnvelope(attacker(t), h, payload)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := env.MarshalBinary()
		return raw
	}
	inner := sign(protocol.Header{Type: protocol.TypeMessage, HopLimit: 8, ID: protocol.MessageID{1}, Created: ts, Expires: ts + 3600,
		Dest: v.Address()}, []byte("for the mailbox itself"))
	step(routing.FrameReceived{Link: 1, Frame: sign(protocol.Header{Type: protocol.TypeControl, HopLimit: 8, ID: protocol.MessageID{2},
		Created: ts, Expires: ts + 3600, Dest: v.Address()}, protocol.AppendCustodyOffer(nil, inner))})
	for _, a := range lookups {
		if a == v.Address() {
			t.Fatal("the mailbox took custody of a message for itself and looks itself up")
		}
	}
}

// TestAttackFragmentEviction: fragments from a point-to-point neighbour
// cannot evict the groups a radio is reassembling. The reassembler's bounds
// (64 groups, 256 KiB) were shared by every link, oldest evicted first: an
// IP or TCP neighbour sending 64 first fragments in a millisecond evicted
// every envelope half-way across LoRa (where every envelope is fragmented),
// and doing so once a second stopped all unicast over the radio.
func TestAttackFragmentEviction(t *testing.T) {
	rnd := rand.NewChaCha8([32]byte{56})
	v, err := protocol.NewIdentity(rnd)
	if err != nil {
		t.Fatal(err)
	}
	eng, err := routing.New(routing.Config{Identity: v, Rand: rand.NewChaCha8([32]byte{57}), AnnounceInterval: 24 * time.Hour}, epoch, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := epoch
	step := func(in routing.Input) {
		_ = eng.Step(now, in)
		for eng.HasReady() {
			eng.Ready()
			eng.Advance()
		}
	}
	step(routing.LinkUp{Link: routing.LinkInfo{ID: 1, Kind: routing.LinkTCP, Bitrate: 1e8}})
	step(routing.LinkUp{Link: routing.LinkInfo{ID: 2, Kind: routing.LinkLoRa, Bitrate: 1760}})
	ts := protocol.TimestampOf(epoch)
	env, err := protocol.SignEnvelope(attacker(t), protocol.Header{Type: protocol.TypeMessage, HopLimit: 8, ID: protocol.MessageID{1},
		Created: ts, Expires: ts + 3600, Dest: v.Address()}, make([]byte, 1000))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := env.MarshalBinary()
	frags, err := protocol.Split(raw, 255, 77)
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range frags {
		if i == len(frags)/2 {
			for g := range 64 {
				junk, err := protocol.Split(make([]byte, 300), 255, uint32(1000+g))
				if err != nil {
					t.Fatal(err)
				}
				step(routing.FrameReceived{Link: 1, Frame: junk[0]})
			}
		}
		now = now.Add(time.Second)
		step(routing.FrameReceived{Link: 2, Frame: f})
	}
	if c := eng.Counters(); c.Reassembled != 1 || c.Delivered != 1 {
		t.Fatalf("an envelope over the radio: %d reassembled, %d delivered after 64 fragments from a TCP neighbour",
			c.Reassembled, c.Delivered)
	}
}
