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
// The run's own thread only notes each line's fields (a record, no text):
// formatting the lines, the digests of frames, hashing and writing run on
// another core, a chunk of records at a time, in order. At most one chunk
// is in flight; the next waits for it, so the hash covers the same bytes
// in the same order as a hash taken line by line when the line was made.
type Tracer struct {
	h     hash.Hash
	w     io.Writer
	n     uint64
	err   error
	fmt   traceFormat    // the consumer's: only the goroutine of the chunk in flight uses it
	cur   traceChunkBuf  // records not yet handed over
	spare traceChunkBuf  // the chunk in flight, reused once it is done
	busy  sync.WaitGroup // the chunk in flight
}

// traceRec is one line's fields.
type traceRec struct {
	at         int64 // ns since Epoch
	kind       string
	detail     string // recLine: the detail ("" none)
	node, link int
	from       int     // recRx
	snr        float64 // recRx
	fFrom, fTo int32   // recFrame: the frame's bytes in the chunk's frames
	form       uint8
}

// Forms of a line.
const (
	recLine  uint8 = iota // rec
	recRx                 // rx
	recFrame              // frame
)

// traceChunkBuf is a chunk of records and the bytes of their frames.
type traceChunkBuf struct {
	recs   []traceRec
	frames []byte
}

func (c *traceChunkBuf) reset() {
	clear(c.recs) // the details' strings
	c.recs, c.frames = c.recs[:0], c.frames[:0]
}

// traceChunk is how many lines go over at a time: large enough that
// starting a goroutine per chunk costs nothing measurable, small enough
// that the records stay in the cache.
const traceChunk = 4096

func newTracer(w io.Writer) *Tracer { return &Tracer{h: sha256.New(), w: w} }

// NewTracer returns a Tracer writing JSONL to w (nil: hash only).
func NewTracer(w io.Writer) *Tracer { return newTracer(w) }

// add queues a line and hands the chunk over when it is full.
func (t *Tracer) add(r traceRec) {
	t.cur.recs = append(t.cur.recs, r)
	t.n++
	if len(t.cur.recs) >= traceChunk || len(t.cur.frames) >= 256<<10 {
		t.handOver()
	}
}

// handOver starts formatting, hashing and writing the lines gathered so
// far, once the chunk before them is done.
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
	b := t.fmt.lines(c)
	t.h.Write(b)
	if t.w != nil && t.err == nil {
		n, err := t.w.Write(b)
		if err == nil && n < len(b) {
			err = io.ErrShortWrite
		}
		t.err = err
	}
}

// Err returns the first error writing the trace (nil: none), once every
// line so far is written. The hash covers every line all the same.
func (t *Tracer) Err() error {
	t.drain()
	return t.err
}

// drain hashes and writes every line so far before it returns.
func (t *Tracer) drain() {
	t.busy.Wait()
	t.consume(&t.cur)
	t.cur.reset()
}

func traceAt(at time.Time) int64 { return int64(at.Sub(Epoch)) }

// rec records an event with a free-form detail string.
func (t *Tracer) rec(at time.Time, kind string, node, link int, detail string) {
	t.add(traceRec{at: traceAt(at), kind: kind, node: node, link: link, detail: detail, form: recLine})
}

// rx records a radio frame received from node from at snr dB.
func (t *Tracer) rx(at time.Time, node, link, from int, snr float64) {
	t.add(traceRec{at: traceAt(at), kind: "rx", node: node, link: link, from: from, snr: snr, form: recRx})
}

// frame records a transmitted frame by its length and a digest of its
// bytes (the first 8 bytes of its SHA-256, in hex), so that the hash
// covers what the engines said, not only when. The tracer keeps a copy of
// the bytes until the line is made.
func (t *Tracer) frame(at time.Time, kind string, node, link int, f []byte) {
	c := &t.cur
	from := len(c.frames)
	c.frames = append(c.frames, f...)
	t.add(traceRec{at: traceAt(at), kind: kind, node: node, link: link, fFrom: int32(from), fTo: int32(len(c.frames)), form: recFrame})
}

// Sum returns the hex SHA-256 of the trace so far.
func (t *Tracer) Sum() string {
	t.drain()
	return hex.EncodeToString(t.h.Sum(nil))
}

// traceFormat turns records into lines. It remembers the opening of the
// last line (`{"t":` and the time: a frame's end gives many lines at one
// time) and the last detail's JSON string.
type traceFormat struct {
	buf            []byte
	at             int64
	atText         []byte
	detail, quoted string
}

// lines returns the lines of c's records, valid until the next call.
func (f *traceFormat) lines(c *traceChunkBuf) []byte {
	b := f.buf[:0]
	for i := range c.recs {
		b = f.line(b, &c.recs[i], c.frames)
	}
	f.buf = b
	return b
}

func (f *traceFormat) line(b []byte, r *traceRec, frames []byte) []byte {
	if r.at != f.at || len(f.atText) == 0 {
		f.at = r.at
		f.atText = strconv.AppendInt(append(f.atText[:0], `{"t":`...), r.at, 10)
	}
	b = append(b, f.atText...)
	b = append(b, `,"k":"`...)
	b = append(b, r.kind...)
	b = append(b, `","n":`...)
	b = strconv.AppendInt(b, int64(r.node), 10)
	b = append(b, `,"l":`...)
	b = strconv.AppendInt(b, int64(r.link), 10)
	switch r.form {
	case recLine:
		if r.detail != "" {
			if r.detail != f.detail || f.quoted == "" {
				f.detail, f.quoted = r.detail, strconv.Quote(r.detail)
			}
			b = append(b, `,"d":`...)
			b = append(b, f.quoted...)
		}
	case recRx:
		b = append(b, `,"from":`...)
		b = strconv.AppendInt(b, int64(r.from), 10)
		b = append(b, `,"snr":`...)
		b = strconv.AppendFloat(b, r.snr, 'f', 2, 64)
	case recFrame:
		fr := frames[r.fFrom:r.fTo]
		sum := sha256.Sum256(fr)
		b = append(b, `,"len":`...)
		b = strconv.AppendInt(b, int64(len(fr)), 10)
		b = append(b, `,"f":"`...)
		b = hex.AppendEncode(b, sum[:8])
		b = append(b, '"')
	}
	return append(b, "}\n"...)
}
