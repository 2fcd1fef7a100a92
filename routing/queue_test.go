package routing

import (
	"slices"
	"testing"
)

// qframe is a frame of n bytes whose first byte names it.
func qframe(name byte, n int) qitem {
	f := make([]byte, n)
	f[0] = name
	return qitem{frame: f}
}

func qpush(t *testing.T, q *linkQueue, name byte, n int, pri Priority) ([]byte, bool) {
	t.Helper()
	it := qframe(name, n)
	it.pri = pri
	dropped, ok := q.push(it)
	var names []byte
	for _, d := range dropped {
		names = append(names, d.frame[0])
	}
	return names, ok
}

func qdrain(q *linkQueue) []byte {
	var names []byte
	for {
		it, ok := q.pop()
		if !ok {
			return names
		}
		names = append(names, it.frame[0])
	}
}

// TestQueueDisplacement: a frame that does not fit displaces queued frames
// of strictly lower priority, the lowest priority first and within it the
// newest first, and no more than it needs; if that cannot make room it is
// refused and nothing is dropped.
func TestQueueDisplacement(t *testing.T) {
	q := &linkQueue{limit: 100}
	for _, f := range []struct {
		name byte
		n    int
		pri  Priority
	}{
		{'a', 20, PriBulk}, {'b', 20, PriBulk}, {'c', 20, PriData}, {'d', 20, PriData}, {'e', 20, PriRouting},
	} {
		if dropped, ok := qpush(t, q, f.name, f.n, f.pri); !ok || len(dropped) != 0 {
			t.Fatalf("push %c into room: dropped %q, ok %v", f.name, dropped, ok)
		}
	}
	// Full (100 of 100). A bulk frame cannot displace bulk frames.
	if dropped, ok := qpush(t, q, 'x', 10, PriBulk); ok || len(dropped) != 0 || q.bytes != 100 {
		t.Fatalf("bulk into a full queue: dropped %q, ok %v, %d bytes", dropped, ok, q.bytes)
	}
	// A data frame of 30 bytes displaces both bulk frames, newest first.
	if dropped, ok := qpush(t, q, 'f', 30, PriData); !ok || string(dropped) != "ba" {
		t.Fatalf("data frame: dropped %q, ok %v; want \"ba\"", dropped, ok)
	}
	if q.bytes != 90 || q.len() != 4 {
		t.Fatalf("%d bytes in %d frames after displacement", q.bytes, q.len())
	}
	// A control frame displaces the newest data frame only (f, 30 bytes).
	if dropped, ok := qpush(t, q, 'g', 25, PriControl); !ok || string(dropped) != "f" {
		t.Fatalf("control frame: dropped %q, ok %v; want \"f\"", dropped, ok)
	}
	// A routing frame too large for all lower priorities together is
	// refused, and the queue is unchanged.
	before := q.bytes
	if dropped, ok := qpush(t, q, 'h', 80, PriRouting); ok || len(dropped) != 0 || q.bytes != before {
		t.Fatalf("oversized routing frame: dropped %q, ok %v, %d bytes (was %d)", dropped, ok, q.bytes, before)
	}
	// Pop order: by priority, FIFO within one.
	if got := qdrain(q); string(got) != "gecd" {
		t.Fatalf("pop order %q, want \"gecd\"", got)
	}
	if q.bytes != 0 {
		t.Fatalf("%d bytes left in an empty queue", q.bytes)
	}
}

// TestQueueDisplacementAcrossPriorities: room is made from the lowest
// priority up, taking from a higher one only when the lower ones are
// empty.
func TestQueueDisplacementAcrossPriorities(t *testing.T) {
	q := &linkQueue{limit: 60}
	qpush(t, q, 'r', 20, PriRouting)
	qpush(t, q, 'd', 20, PriData)
	qpush(t, q, 'b', 20, PriBulk)
	dropped, ok := qpush(t, q, 'c', 35, PriControl)
	if !ok || string(dropped) != "bd" {
		t.Fatalf("dropped %q, ok %v; want \"bd\"", dropped, ok)
	}
	if got := qdrain(q); !slices.Equal(got, []byte("cr")) {
		t.Fatalf("left %q", got)
	}
	// clear returns everything and empties the queue.
	qpush(t, q, 'x', 10, PriData)
	qpush(t, q, 'y', 10, PriBulk)
	if all := q.clear(); len(all) != 2 || q.bytes != 0 || q.len() != 0 {
		t.Fatalf("clear: %d frames, %d bytes left", len(all), q.bytes)
	}
}
