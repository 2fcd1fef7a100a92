package daemon

import "testing"

// TestLRUTableForgetsIdlest: a full table forgets the entry used least
// recently, not the oldest, and a removed key is made afresh.
func TestLRUTableForgetsIdlest(t *testing.T) {
	made := 0
	mk := func() int { made++; return made }
	l := newLRU[string, int](3)
	for _, k := range []string{"a", "b", "c"} {
		l.touch(k, mk)
	}
	if v := l.touch("a", mk); v != 1 { // a is now used last; b is idlest
		t.Fatalf("a = %d, want 1 (kept)", v)
	}
	l.touch("d", mk)
	if _, ok := l.get("b"); ok {
		t.Fatal("b kept, want it forgotten (used least recently)")
	}
	for _, k := range []string{"a", "c", "d"} {
		if _, ok := l.get(k); !ok {
			t.Fatalf("%s forgotten", k)
		}
	}
	if l.len() != 3 || l.order.Len() != 3 {
		t.Fatalf("len %d, order %d, want 3", l.len(), l.order.Len())
	}
	l.remove("c")
	l.remove("zz") // absent: no effect
	if l.len() != 2 || l.order.Len() != 2 {
		t.Fatalf("after remove: len %d, order %d, want 2", l.len(), l.order.Len())
	}
	if v := l.touch("c", mk); v != 5 {
		t.Fatalf("c after remove = %d, want a fresh value 5", v)
	}
}
