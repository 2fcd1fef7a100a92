package routing

import (
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"meshd.dev/meshd/protocol"
)

// applyAll drains e's Readys into store, delivered records only.
func applyAll(e *Engine, store map[string][]byte) {
	for e.HasReady() {
		rd := e.Ready()
		for _, r := range rd.Persist {
			if r.Key[:2] == "d/" {
				store[r.Key] = r.Value
			}
		}
		for _, k := range rd.Deletes {
			delete(store, k)
		}
		e.Advance()
	}
}

// TestRestoreDeliveredDuplicatesAndOrder: restore keeps one record per
// envelope key (a second one, in format 3 or beside a format 2 record, is
// deleted), drops an expired record but still counts its order, so the
// next delivery's record takes a key no record had; every record left is
// deleted, under its own key, when its entry expires.
func TestRestoreDeliveredDuplicatesAndOrder(t *testing.T) {
	fx := custodyFixture()
	now := protocol.TimestampOf(fuzzEpoch)
	k1, k2, k3, k4 := envKey{1}, envKey{2}, envKey{3}, envKey{4}
	live := deliveredEntry{expires: now + 600}
	store := map[string][]byte{
		deliveredKey(k1, 3): encodeDelivered(live, MessageID{1}, k1, 3),
		deliveredKey(k2, 9): encodeDelivered(deliveredEntry{expires: now - 1}, MessageID{2}, k2, 9),
		deliveredKey(k1, 5): encodeDelivered(live, MessageID{1}, k1, 5),
		deliveredKey(k3, 0): encodeDelivered(live, MessageID{3}, k3, 0),
		deliveredKey(k3, 7): encodeDelivered(live, MessageID{3}, k3, 7),
	}
	var recs []Record
	for _, k := range slices.Sorted(maps.Keys(store)) { // as the store lists them
		recs = append(recs, Record{Key: k, Value: store[k]})
	}
	e, err := New(Config{Identity: fx.id, Rand: rand.NewChaCha8([32]byte{1})}, fuzzEpoch, recs)
	if err != nil {
		t.Fatal(err)
	}
	applyAll(e, store)
	if len(store) != 2 || store[deliveredKey(k1, 3)] == nil {
		t.Fatalf("after restore the store holds %v, want d/...03 and one record of k3", slices.Sorted(maps.Keys(store)))
	}
	if !e.delivered.has(k1) || !e.delivered.has(k3) || e.delivered.has(k2) {
		t.Fatal("restored set is wrong")
	}
	rk := e.markDelivered(k4, MessageID{4}, deliveredEntry{expires: now + 1200})
	applyAll(e, store)
	if rk != deliveredKey(k4, 10) {
		t.Fatalf("the next delivery's record is %s, want %s (after the greatest order restored, 9)", rk, deliveredKey(k4, 10))
	}
	e.Tick(fuzzEpoch.Add(15 * time.Minute))
	applyAll(e, store)
	if len(store) != 1 || store[rk] == nil {
		t.Fatalf("after the first two expired the store holds %v, want %s alone", slices.Sorted(maps.Keys(store)), rk)
	}
	e.Tick(fuzzEpoch.Add(25 * time.Minute))
	applyAll(e, store)
	if len(store) != 0 {
		t.Fatalf("after all expired the store holds %v", slices.Sorted(maps.Keys(store)))
	}
}
