package sim

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
)

// failAfter is a writer that takes n bytes, then fails every write.
type failAfter struct {
	buf bytes.Buffer
	n   int
}

var errFull = errors.New("test: device full")

func (w *failAfter) Write(p []byte) (int, error) {
	if room := w.n - w.buf.Len(); len(p) > room {
		w.buf.Write(p[:max(room, 0)])
		return max(room, 0), errFull
	}
	return w.buf.Write(p)
}

// TestTracerWriteError: a trace writer that fails part-way (on the chunk's
// goroutine) is reported by Err once the run is over, with one worker and
// with two; the run ends (no hang), its hash is still the hash of the
// whole trace, and what reached the writer is the trace's beginning.
func TestTracerWriteError(t *testing.T) {
	var full bytes.Buffer
	sum := runScenario(t, load(t, quickstart), NewTracer(&full)).Summary()
	want := sum.TraceSHA256
	if sum.TraceEvents < 2*traceChunk || full.Len() < 400<<10 {
		t.Fatalf("trace of %d lines: too short to fail after a chunk", sum.TraceEvents)
	}
	for _, workers := range []int{1, 2} {
		for _, n := range []int{0, 1000, 400 << 10} {
			w := &failAfter{n: n}
			tr := NewTracer(w)
			s, err := NewWith(load(t, quickstart), Options{Trace: tr, Workers: workers})
			if err != nil {
				t.Fatal(err)
			}
			s.Run(nil)
			if err := tr.Err(); !errors.Is(err, errFull) {
				t.Errorf("workers %d, fail after %d bytes: Err %v, want %v", workers, n, err, errFull)
			}
			if got := s.Summary().TraceSHA256; got != want {
				t.Errorf("workers %d, fail after %d bytes: hash %s, want %s", workers, n, got, want)
			}
			if w.buf.Len() != n || !bytes.HasPrefix(full.Bytes(), w.buf.Bytes()) {
				t.Errorf("workers %d: writer got %d bytes, want the trace's first %d", workers, w.buf.Len(), n)
			}
		}
	}
	if err := NewTracer(&bytes.Buffer{}).Err(); err != nil {
		t.Fatalf("a tracer that wrote nothing: Err %v", err)
	}
}

// shortWriter takes half of every write and says nothing.
type shortWriter struct{}

func (shortWriter) Write(p []byte) (int, error) { return len(p) / 2, nil }

// TestTracerShortWrite: a writer that takes less than it was given without
// an error (it breaks io.Writer's contract) is reported as a short write.
func TestTracerShortWrite(t *testing.T) {
	tr := NewTracer(shortWriter{})
	tr.rec(Epoch, "x", 1, 2, "d")
	tr.Sum()
	if err := tr.Err(); err == nil {
		t.Fatal("short write not reported")
	}
}

// TestTraceFormatSplits: the lines of a run of records are the same bytes
// however the records are cut into chunks (the formatter remembers the
// last time and detail from one chunk to the next), and the same as lines
// made one record at a time.
func TestTraceFormatSplits(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	details := []string{"", "a", "a\"b", "collision", "ü\n"}
	var all traceChunkBuf
	var want []byte
	for i := range 3000 {
		r := traceRec{at: int64(i / 7), kind: "k", node: rng.IntN(50), link: rng.IntN(3), form: uint8(rng.IntN(3))}
		switch r.form {
		case recLine:
			r.detail = details[rng.IntN(len(details))]
		case recRx:
			r.from, r.snr = rng.IntN(50), rng.Float64()*40-20
		case recFrame:
			f := make([]byte, rng.IntN(40))
			for j := range f {
				f[j] = byte(rng.IntN(256))
			}
			r.fFrom = int32(len(all.frames))
			all.frames = append(all.frames, f...)
			r.fTo = int32(len(all.frames))
		}
		all.recs = append(all.recs, r)
		var one traceFormat // a fresh formatter per line: nothing remembered
		want = append(want, one.line(nil, &r, all.frames)...)
	}
	for _, size := range []int{1, 2, 3, 7, 100, 2999, 3000} {
		var f traceFormat
		var got []byte
		for from := 0; from < len(all.recs); from += size {
			c := traceChunkBuf{recs: all.recs[from:min(from+size, len(all.recs))], frames: all.frames}
			got = append(got, f.lines(&c)...)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("chunks of %d records: %d bytes, want %d (or other bytes)", size, len(got), len(want))
		}
	}
}
