package routing

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"meshd.dev/meshd/protocol"
)

// TestReadyRecordsDisjoint checks that the last operation on a key wins and
// that Persist and Deletes never name the same key.
func TestReadyRecordsDisjoint(t *testing.T) {
	id, err := protocol.NewIdentity(rand.NewChaCha8([32]byte{1}))
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(Config{Identity: id, Rand: rand.NewChaCha8([32]byte{2})}, time.Unix(1_800_000_000, 0), nil)
	if err != nil {
		t.Fatal(err)
	}
	e.Ready()
	e.persist("c/a", []byte{1})
	e.del("c/a") // written then released in one round: only the delete
	e.del("c/b")
	e.persist("c/b", []byte{2}) // released, then taken again: only the write
	e.persist("c/c", []byte{3})
	e.persist("c/c", []byte{4}) // rewritten: the last value
	rd := e.Ready()
	if !slices.Equal(rd.Deletes, []string{"c/a"}) {
		t.Fatalf("deletes %q", rd.Deletes)
	}
	if len(rd.Persist) != 2 || rd.Persist[0].Key != "c/b" || rd.Persist[0].Value[0] != 2 ||
		rd.Persist[1].Key != "c/c" || rd.Persist[1].Value[0] != 4 {
		t.Fatalf("persist %+v", rd.Persist)
	}
	if rd2 := e.Ready(); len(rd2.Persist)+len(rd2.Deletes) != 0 {
		t.Fatalf("records repeated in the next Ready: %+v", rd2)
	}
}
