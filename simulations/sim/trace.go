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
// the same order as a hash taken line by line. The digest of a frame
// (frame) is worked out there too: the line gets a placeholder and the
// frame's bytes a copy, and the chunk's consumer writes the digest in
// before it hashes the chunk.
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
	cur            traceChunkBuf  // lines not yet handed over
	spare          traceChunkBuf  // the chunk in flight, reused once it is done
	busy           sync.WaitGroup // the chunk in flight
}

// traceChunkBuf is a chunk of lines and the frames whose digests its lines
// still lack.
type traceChunkBuf struct {
	lines   []byte
	frames  []byte       // the frames' bytes, one after another
	patches []tracePatch // where each frame's digest goes
}

// tracePatch says that the hex of the first 8 bytes of the SHA-256 of
// frames[from:to] goes to lines[at:at+16].
type tracePatch struct{ at, from, to int }

// digestLen is the length of a frame's digest in a line: 8 bytes in hex.
const digestLen = 16

// fill writes the frames' digests into the lines.
func (c *traceChunkBuf) fill() {
	for _, p := range c.patches {
		sum := sha256.Sum256(c.frames[p.from:p.to])
		hex.Encode(c.lines[p.at:p.at+digestLen], sum[:digestLen/2])
	}
}

func (c *traceChunkBuf) reset() {
	c.lines, c.frames, c.patches = c.lines[:0], c.frames[:0], c.patches[:0]
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
	b := append(t.cur.lines, t.atText...)
	b = append(b, `,"k":"`...)
	b = append(b, kind...)
	b = append(b, `","n":`...)
	b = strconv.AppendInt(b, int64(node), 10)
	b = append(b, `,"l":`...)
	b = strconv.AppendInt(b, int64(link), 10)
	t.cur.lines = b
}

func (t *Tracer) end() {
	t.cur.lines = append(t.cur.lines, "}\n"...)
	t.n++
	if len(t.cur.lines) >= traceChunk || len(t.cur.frames) >= 4*traceChunk {
		t.handOver()
	}
}

// handOver starts hashing and writing the lines gathered so far, once the
// chunk before them is done.
func (t *Tracer) handOver() {
	t.busy.Wait()
	full := &t.spare
	t.cur, t.spare = t.spare, t.cur
	t.cur.reset()
	t.busy.Add(1)
	go func() {
		defer t.busy.Done()
		t.consume(full)
	}()
}

func (t *Tracer) consume(c *traceChunkBuf) {
	c.fill()
	t.h.Write(c.lines)
	if t.w != nil && t.err == nil {
		_, t.err = t.w.Write(c.lines)
	}
}

// drain hashes and writes every line so far before it returns.
func (t *Tracer) drain() {
	t.busy.Wait()
	t.consume(&t.cur)
	t.cur.reset()
}

// rec records an event with a free-form detail string.
func (t *Tracer) rec(at time.Time, kind string, node, link int, detail string) {
	t.begin(at, kind, node, link)
	if detail != "" {
		if detail != t.detail || t.quoted == "" {
			t.detail, t.quoted = detail, strconv.Quote(detail)
		}
		t.cur.lines = append(t.cur.lines, `,"d":`...)
		t.cur.lines = append(t.cur.lines, t.quoted...)
	}
	t.end()
}

// rx records a radio frame received from node from at snr dB.
func (t *Tracer) rx(at time.Time, node, link, from int, snr float64) {
	t.begin(at, "rx", node, link)
	b := append(t.cur.lines, `,"from":`...)
	b = strconv.AppendInt(b, int64(from), 10)
	b = append(b, `,"snr":`...)
	t.cur.lines = strconv.AppendFloat(b, snr, 'f', 2, 64)
	t.end()
}

// frame records a transmitted frame by its length and a digest of its
// bytes, so that the hash covers what the engines said, not only when.
// The digest (the first 8 bytes of the frame's SHA-256, in hex) is
// written in by the chunk's consumer, on another core.
func (t *Tracer) frame(at time.Time, kind string, node, link int, f []byte) {
	t.begin(at, kind, node, link)
	c := &t.cur
	b := append(c.lines, `,"len":`...)
	b = strconv.AppendInt(b, int64(len(f)), 10)
	b = append(b, `,"f":"`...)
	from := len(c.frames)
	c.frames = append(c.frames, f...)
	c.patches = append(c.patches, tracePatch{at: len(b), from: from, to: len(c.frames)})
	b = append(b, "0000000000000000"...)
	c.lines = append(b, '"')
	t.end()
}

// Sum returns the hex SHA-256 of the trace so far.
func (t *Tracer) Sum() string {
	t.drain()
	return hex.EncodeToString(t.h.Sum(nil))
}
