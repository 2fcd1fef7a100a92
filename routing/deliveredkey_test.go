package routing_test

import (
	"encoding/binary"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/routing"
)

// deliveredRecords returns b's delivered records keyed on their order
// (format 3: "d/<16 hex digits>").
func deliveredRecords(nd *tnode) []string {
	var out []string
	for k, v := range nd.store {
		if strings.HasPrefix(k, "d/") && len(k) == 18 && len(v) == 54 && v[0] == 3 {
			out = append(out, k)
		}
	}
	return out
}

// TestDeliveredOrderKeys: delivered records are keyed on the delivery
// order. A message delivered before a restart is not delivered again after
// it, nor after a second restart with deliveries in between (the order
// goes on from the greatest restored, so no new record overwrites an old
// one); a record of format 2, keyed on the envelope key by an older meshd,
// still suppresses its message; both are deleted, under their own keys,
// when they expire.
func TestDeliveredOrderKeys(t *testing.T) {
	n := newTestNet(t, 41)
	a, b := n.addNode("a"), n.addNode("b")
	ab := n.addLink(routing.LinkIP, 5*time.Millisecond, 0, "a", "b")
	n.run(2 * time.Second)
	now := protocol.TimestampOf(n.now)
	frame := func(id byte, ttl protocol.Timestamp, body string) []byte {
		h := protocol.Header{Type: protocol.TypeMessage, HopLimit: 16, ID: protocol.MessageID{id, 0xbb}, Created: now,
			Expires: now + ttl, Dest: b.id.Address()}
		env, err := protocol.SignEnvelope(a.id, h, []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := env.MarshalBinary()
		return raw
	}
	deliver := func(raw []byte) { n.step(b, routing.FrameReceived{Link: ab.id, Frame: append([]byte(nil), raw...)}) }

	// An older meshd delivered "old" and kept its record in format 2.
	old := frame(1, 600, "old")
	oldEnv, err := protocol.ParseEnvelope(old)
	if err != nil {
		t.Fatal(err)
	}
	oldKey := oldEnv.Key()
	oldRec := "d/" + hex.EncodeToString(oldKey[:])
	v := []byte{2, 0}
	v = binary.BigEndian.AppendUint32(v, uint32(now+600))
	v = append(v, oldEnv.ID[:]...)
	v = append(v, make([]byte, 16)...)
	n.stop(b)
	b.store[oldRec] = v
	n.start(b)

	first := frame(2, 1200, "first")
	deliver(first)
	if got := deliveredRecords(b); len(got) != 1 || countBody(b, a.id.Address(), "first") != 1 {
		t.Fatalf("after one delivery: records %v, inbox %+v", got, b.inbox)
	}
	n.stop(b)
	n.start(b)
	deliver(first)
	deliver(old)
	deliver(frame(3, 1200, "second"))
	n.stop(b)
	n.start(b)
	deliver(first)
	deliver(old)
	if countBody(b, a.id.Address(), "first") != 1 || countBody(b, a.id.Address(), "second") != 1 || countBody(b, a.id.Address(), "old") != 0 {
		t.Fatalf("delivered again after a restart: inbox %+v", b.inbox)
	}
	if got := deliveredRecords(b); len(got) != 2 {
		t.Fatalf("records %v, want two in format 3", got)
	}

	n.run(15 * time.Minute) // past "old"'s expiry
	if _, ok := b.store[oldRec]; ok {
		t.Fatal("the format 2 record is still stored after it expired")
	}
	if got := deliveredRecords(b); len(got) != 2 {
		t.Fatalf("records %v after the old one expired, want two", got)
	}
	n.run(10 * time.Minute) // past the others'
	if got := deliveredRecords(b); len(got) != 0 {
		t.Fatalf("records %v left after they expired", got)
	}
}
