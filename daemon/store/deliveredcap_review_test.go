package store

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/routing"
)

// TestDeliveredCapAcrossCrash: with the delivered set bounded at two, the
// record of the entry the bound evicts is deleted under its own key (the
// store never holds more than two delivered records), also for an entry
// restored from a crash copy; the entries kept are not delivered again
// after each crash.
func TestDeliveredCapAcrossCrash(t *testing.T) {
	rng := rand.NewChaCha8([32]byte{9})
	a, err := protocol.NewIdentity(rng)
	if err != nil {
		t.Fatal(err)
	}
	b, err := protocol.NewIdentity(rng)
	if err != nil {
		t.Fatal(err)
	}
	n := &onceNode{t: t, cfg: routing.Config{Identity: b, Rand: rng, MaxDelivered: 2}, s: openT(t, t.TempDir()), now: time.Unix(1_800_000_000, 0)}
	now := protocol.TimestampOf(n.now)
	frame := func(id byte) []byte {
		h := protocol.Header{Type: protocol.TypeMessage, HopLimit: 16, ID: protocol.MessageID{id}, Created: now,
			Expires: now + 3600, Dest: b.Address()}
		env, err := protocol.SignEnvelope(a, h, []byte{id})
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := env.MarshalBinary()
		return raw
	}
	delivered := func() []string {
		recs, err := n.s.EngineRecords()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range recs {
			if strings.HasPrefix(r.Key, "d/") {
				out = append(out, r.Key)
			}
		}
		return out
	}
	m := [][]byte{frame(1), frame(2), frame(3), frame(4)}
	n.start()
	for _, f := range m[:3] {
		n.step(routing.FrameReceived{Link: 1, Frame: f})
	}
	if got := delivered(); n.got != 3 || len(got) != 2 {
		t.Fatalf("%d deliveries, records %v: want 3 and the last two", n.got, got)
	}
	n.s = crashOpen(t, n.s)
	n.start()
	n.step(routing.FrameReceived{Link: 1, Frame: m[1]})
	n.step(routing.FrameReceived{Link: 1, Frame: m[2]})
	n.step(routing.FrameReceived{Link: 1, Frame: m[3]}) // evicts m[1]'s restored entry
	if got := delivered(); n.got != 4 || len(got) != 2 {
		t.Fatalf("%d deliveries, records %v after the crash: want 4 and two", n.got, got)
	}
	n.s = crashOpen(t, n.s)
	n.start()
	n.step(routing.FrameReceived{Link: 1, Frame: m[2]})
	n.step(routing.FrameReceived{Link: 1, Frame: m[3]})
	if got := delivered(); n.got != 4 || len(got) != 2 {
		t.Fatalf("%d deliveries, records %v after the second crash: want 4 and two", n.got, got)
	}
}
