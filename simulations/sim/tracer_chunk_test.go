package sim

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestTracerChunks: a trace several chunks long, hashed and written on
// another goroutine, has the hash of its lines taken in order and reaches
// the writer whole and in order, also when Sum is asked twice.
func TestTracerChunks(t *testing.T) {
	var out strings.Builder
	tr := NewTracer(&out)
	h := sha256.New()
	var want strings.Builder
	for i := range 10 * traceChunk / 40 {
		at := Epoch.Add(time.Duration(i) * time.Millisecond)
		tr.rec(at, "x", i%97, i%3, "")
		line := `{"t":` + strconv.FormatInt(int64(at.Sub(Epoch)), 10) + `,"k":"x","n":` + itoa(i%97) + `,"l":` + itoa(i%3) + "}\n"
		h.Write([]byte(line))
		want.WriteString(line)
		if i == traceChunk/40 {
			if got, w := tr.Sum(), hex.EncodeToString(h.Sum(nil)); got != w {
				t.Fatalf("hash after %d lines %s, want %s", i+1, got, w)
			}
		}
	}
	if got, w := tr.Sum(), hex.EncodeToString(h.Sum(nil)); got != w {
		t.Fatalf("hash %s, want %s", got, w)
	}
	if out.String() != want.String() {
		t.Fatalf("writer got %d bytes, want %d (or out of order)", out.Len(), want.Len())
	}
	if want.Len() < 2*traceChunk {
		t.Fatalf("only %d bytes: the test did not cross chunks", want.Len())
	}
}
