package store

import (
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/routing"
)

// onceNode is a routing engine over a real store, for the exactly-once
// tests across a crash.
type onceNode struct {
	t   *testing.T
	cfg routing.Config
	eng *routing.Engine
	s   *Store
	now time.Time
	got int // deliveries
}

// start (re)creates the engine from the store's records, with one link.
func (n *onceNode) start() {
	n.t.Helper()
	recs, err := n.s.EngineRecords()
	if err != nil {
		n.t.Fatal(err)
	}
	if n.eng, err = routing.New(n.cfg, n.now, recs); err != nil {
		n.t.Fatalf("restore from %d records: %v", len(recs), err)
	}
	n.step(routing.LinkUp{Link: routing.LinkInfo{ID: 1, Kind: routing.LinkIP}})
}

// step feeds in and applies what the engine asks for to the store.
func (n *onceNode) step(in routing.Input) {
	n.t.Helper()
	if in != nil {
		if err := n.eng.Step(n.now, in); err != nil {
			n.t.Fatal(err)
		}
	} else {
		n.eng.Tick(n.now)
	}
	for n.eng.HasReady() {
		rd := n.eng.Ready()
		if _, err := n.s.Apply(&rd); err != nil {
			n.t.Fatal(err)
		}
		n.got += len(rd.Deliveries)
		n.eng.Advance()
	}
}

// TestDeliveredOnceAcrossCrash: a message delivered, its delivered record
// written in format 3 (keyed on the delivery order), and a message an
// older meshd delivered (a format 2 record under the envelope key, in a
// version 1 store) are each not delivered again by an engine restored
// from a crash copy of the store; the old record is deleted under its own
// key when it expires.
func TestDeliveredOnceAcrossCrash(t *testing.T) {
	rng := rand.NewChaCha8([32]byte{7})
	a, err := protocol.NewIdentity(rng)
	if err != nil {
		t.Fatal(err)
	}
	b, err := protocol.NewIdentity(rng)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	openT(t, dir).Close()
	setVersion(t, dir, []byte{1})
	n := &onceNode{t: t, cfg: routing.Config{Identity: b, Rand: rng}, s: openT(t, dir), now: time.Unix(1_800_000_000, 0)}
	now := protocol.TimestampOf(n.now)
	frame := func(id byte, ttl protocol.Timestamp) ([]byte, *protocol.Envelope) {
		h := protocol.Header{Type: protocol.TypeMessage, HopLimit: 16, ID: protocol.MessageID{id}, Created: now,
			Expires: now + ttl, Dest: b.Address()}
		env, err := protocol.SignEnvelope(a, h, []byte{id})
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := env.MarshalBinary()
		return raw, env
	}

	// An older meshd delivered "old": its inbox entry and format 2 record.
	oldRaw, oldEnv := frame(1, 600)
	ek := oldEnv.Key()
	oldKey := "d/" + hex.EncodeToString(ek[:])
	v := []byte{2, 0}
	v = binary.BigEndian.AppendUint32(v, uint32(now+600))
	v = append(v, oldEnv.ID[:]...)
	v = append(v, make([]byte, 16)...)
	d := routing.Delivery{ID: oldEnv.ID, Key: oldEnv.Key(), Type: protocol.TypeMessage, Body: []byte{1}, Expires: now + 600}
	if _, err := n.s.Apply(&routing.Ready{Persist: []routing.Record{{Key: oldKey, Value: v}}, Deliveries: []routing.Delivery{d}}); err != nil {
		t.Fatal(err)
	}

	n.start()
	newRaw, _ := frame(2, 1200)
	n.step(routing.FrameReceived{Link: 1, Frame: newRaw})
	if n.got != 1 {
		t.Fatalf("%d deliveries of a new message, want 1", n.got)
	}
	n.s = crashOpen(t, n.s)
	recs, _ := n.s.EngineRecords()
	var ordered int
	for _, r := range recs {
		if strings.HasPrefix(r.Key, "d/") && len(r.Key) == 18 {
			ordered++
		}
	}
	if ordered != 1 {
		t.Fatalf("%d delivered records keyed on their order after the crash, want 1: %v", ordered, recs)
	}
	n.start()
	n.step(routing.FrameReceived{Link: 1, Frame: newRaw})
	n.step(routing.FrameReceived{Link: 1, Frame: oldRaw})
	if n.got != 1 || n.s.InboxLen() != 2 {
		t.Fatalf("%d deliveries, inbox %d after the crash: want 1 and 2 (nothing delivered twice)", n.got, n.s.InboxLen())
	}

	n.now = n.now.Add(15 * time.Minute) // past "old"'s expiry
	n.step(nil)
	recs, _ = n.s.EngineRecords()
	for _, r := range recs {
		if r.Key == oldKey {
			t.Fatal("the format 2 record is still stored after it expired")
		}
	}
}
