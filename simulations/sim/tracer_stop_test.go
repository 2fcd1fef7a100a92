package sim

import (
	"bytes"
	"testing"
	"time"
)

// errStop is what the progress callback of TestTracerRunStopped panics with.
type errStop struct{}

// TestTracerRunStopped: a run that stops part-way with a panic (here its
// progress callback's; an engine's Step panics the same way) has written
// every line it recorded by the time its caller recovers, with one worker
// and with two: no chunk is left unwritten or still being written to the
// caller's writer (the race detector watches the latter).
func TestTracerRunStopped(t *testing.T) {
	var full bytes.Buffer
	runScenario(t, load(t, quickstart), NewTracer(&full))
	for _, workers := range []int{1, 2} {
		var out bytes.Buffer
		tr := NewTracer(&out)
		s, err := NewWith(load(t, quickstart), Options{Trace: tr, Workers: workers})
		if err != nil {
			t.Fatal(err)
		}
		calls := 0
		p := func() (p any) {
			defer func() { p = recover() }()
			s.Run(func(time.Duration, uint64) {
				if calls++; tr.n > traceChunk+traceChunk/2 {
					panic(errStop{})
				}
			})
			return nil
		}()
		if _, ok := p.(errStop); !ok {
			t.Fatalf("workers %d: Run ended with %v after %d progress calls, want the callback's panic", workers, p, calls)
		}
		got := out.Bytes() // before anything else touches the tracer
		lines := uint64(bytes.Count(got, []byte("\n")))
		if lines != tr.n || !bytes.HasPrefix(full.Bytes(), got) || lines == uint64(bytes.Count(full.Bytes(), []byte("\n"))) {
			t.Fatalf("workers %d: %d lines written when the run stopped, %d recorded (or not the trace's beginning)", workers, lines, tr.n)
		}
	}
}
