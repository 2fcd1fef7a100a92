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
	for i := range 10 * traceChunk {
		at := Epoch.Add(time.Duration(i) * time.Millisecond)
		tr.rec(at, "x", i%97, i%3, "")
		line := `{"t":` + strconv.FormatInt(int64(at.Sub(Epoch)), 10) + `,"k":"x","n":` + itoa(i%97) + `,"l":` + itoa(i%3) + "}\n"
		h.Write([]byte(line))
		want.WriteString(line)
		if i == traceChunk+7 {
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
	if tr.n < 2*traceChunk {
		t.Fatalf("only %d lines: the test did not cross chunks", tr.n)
	}
}

// TestTracerFrameDigests: frame lines, whose digests the chunk's consumer
// writes in, read as if each digest were taken when the line was made,
// across chunks, with the frame changed right after the call.
func TestTracerFrameDigests(t *testing.T) {
	var out strings.Builder
	tr := NewTracer(&out)
	h := sha256.New()
	var want strings.Builder
	f := make([]byte, 300)
	for i := range 3 * traceChunk {
		at := Epoch.Add(time.Duration(i/3) * time.Millisecond)
		n := i % len(f)
		for j := range n {
			f[j] = byte(i + j*7)
		}
		tr.frame(at, "tx", i%97, 1, f[:n])
		sum := sha256.Sum256(f[:n])
		line := `{"t":` + strconv.FormatInt(int64(at.Sub(Epoch)), 10) + `,"k":"tx","n":` + itoa(i%97) +
			`,"l":1,"len":` + itoa(n) + `,"f":"` + hex.EncodeToString(sum[:8]) + "\"}\n"
		clear(f) // the tracer keeps its own copy
		h.Write([]byte(line))
		want.WriteString(line)
		if i%5 == 0 {
			tr.rec(at, "x", i%13, 0, "d")
			line := `{"t":` + strconv.FormatInt(int64(at.Sub(Epoch)), 10) + `,"k":"x","n":` + itoa(i%13) + `,"l":0,"d":"d"}` + "\n"
			h.Write([]byte(line))
			want.WriteString(line)
		}
	}
	if got, w := tr.Sum(), hex.EncodeToString(h.Sum(nil)); got != w {
		t.Fatalf("hash %s, want %s", got, w)
	}
	if out.String() != want.String() {
		t.Fatalf("writer got %d bytes, want %d (or other bytes)", out.Len(), want.Len())
	}
	if tr.n < 2*traceChunk {
		t.Fatalf("only %d lines: the test did not cross chunks", tr.n)
	}
}
