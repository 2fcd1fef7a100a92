package sim

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"
	"strconv"
	"sync"
	"time"
)

// Tracer writes the canonical event trace: one JSON object per line,
// fields in a fixed order, times in nanoseconds since the start of the
// run. Every line goes into the SHA-256 that the summary reports; the
// lines go to w too when a trace file was asked for.
//
// Hashing and writing run on another core, a chunk of lines at a time, in
// order: the run's own thread only formats the lines. At most one chunk is
// in flight; the next waits for it, so the hash covers the same bytes in
// the same order as a hash taken line by line.
type Tracer struct {
	h hash.Hash
	w io.Writer
	n uint64
	// at and atText are the time of the last line and its opening,
	// `{"t":` and the time (a frame's end gives many lines at one time);
	// detail and quoted the last detail and its JSON string.
	at             int64
	atText         []byte
	detail, quoted string
	err            error
	chunk          []byte         // lines not yet handed over
	spare          []byte         // the chunk in flight, reused once it is done
	busy           sync.WaitGroup // the chunk in flight
}

// traceChunk is how many bytes of lines go over at a time: large enough
// that starting a goroutine per chunk costs nothing measurable.
const traceChunk = 256 << 10

func newTracer(w io.Writer) *Tracer { return &Tracer{h: sha256.New(), w: w} }

// NewTracer returns a Tracer writing JSONL to w (nil: hash only).
func NewTracer(w io.Writer) *Tracer { return newTracer(w) }

func (t *Tracer) begin(at time.Time, kind string, node, link int) {
	if ns := int64(at.Sub(Epoch)); ns != t.at || len(t.atText) == 0 {
		t.at = ns
		t.atText = strconv.AppendInt(append(t.atText[:0], `{"t":`...), ns, 10)
	}
	b := append(t.chunk, t.atText...)
	b = append(b, `,"k":"`...)
	b = append(b, kind...)
	b = append(b, `","n":`...)
	b = strconv.AppendInt(b, int64(node), 10)
	b = append(b, `,"l":`...)
	b = strconv.AppendInt(b, int64(link), 10)
	t.chunk = b
}

func (t *Tracer) end() {
	t.chunk = append(t.chunk, "}\n"...)
	t.n++
	if len(t.chunk) >= traceChunk {
		t.handOver()
	}
}

// handOver starts hashing and writing the lines gathered so far, once the
// chunk before them is done.
func (t *Tracer) handOver() {
	t.busy.Wait()
	full := t.chunk
	t.chunk, t.spare = t.spare[:0], full
	t.busy.Add(1)
	go func() {
		defer t.busy.Done()
		t.consume(full)
	}()
}

func (t *Tracer) consume(b []byte) {
	t.h.Write(b)
	if t.w != nil && t.err == nil {
		_, t.err = t.w.Write(b)
	}
}

// drain hashes and writes every line so far before it returns.
func (t *Tracer) drain() {
	t.busy.Wait()
	t.consume(t.chunk)
	t.chunk = t.chunk[:0]
}

// rec records an event with a free-form detail string.
func (t *Tracer) rec(at time.Time, kind string, node, link int, detail string) {
	t.begin(at, kind, node, link)
	if detail != "" {
		if detail != t.detail || t.quoted == "" {
			t.detail, t.quoted = detail, strconv.Quote(detail)
		}
		t.chunk = append(t.chunk, `,"d":`...)
		t.chunk = append(t.chunk, t.quoted...)
	}
	t.end()
}

// rx records a radio frame received from node from at snr dB.
func (t *Tracer) rx(at time.Time, node, link, from int, snr float64) {
	t.begin(at, "rx", node, link)
	t.chunk = append(t.chunk, `,"from":`...)
	t.chunk = strconv.AppendInt(t.chunk, int64(from), 10)
	t.chunk = append(t.chunk, `,"snr":`...)
	t.chunk = strconv.AppendFloat(t.chunk, snr, 'f', 2, 64)
	t.end()
}

// frame records a transmitted frame by its length and a digest of its
// bytes, so that the hash covers what the engines said, not only when.
func (t *Tracer) frame(at time.Time, kind string, node, link int, f []byte) {
	t.begin(at, kind, node, link)
	sum := sha256.Sum256(f)
	t.chunk = append(t.chunk, `,"len":`...)
	t.chunk = strconv.AppendInt(t.chunk, int64(len(f)), 10)
	t.chunk = append(t.chunk, `,"f":"`...)
	t.chunk = hex.AppendEncode(t.chunk, sum[:8])
	t.chunk = append(t.chunk, '"')
	t.end()
}

// Sum returns the hex SHA-256 of the trace so far.
func (t *Tracer) Sum() string {
	t.drain()
	return hex.EncodeToString(t.h.Sum(nil))
}
