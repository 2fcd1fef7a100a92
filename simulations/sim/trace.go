package sim

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"
	"strconv"
	"time"
)

// Tracer writes the canonical event trace: one JSON object per line,
// fields in a fixed order, times in nanoseconds since the start of the
// run. Every line goes into the SHA-256 that the summary reports; the
// lines go to w too when a trace file was asked for.
type Tracer struct {
	h   hash.Hash
	w   io.Writer
	buf []byte
	n   uint64
	err error
}

func newTracer(w io.Writer) *Tracer { return &Tracer{h: sha256.New(), w: w} }

// NewTracer returns a Tracer writing JSONL to w (nil: hash only).
func NewTracer(w io.Writer) *Tracer { return newTracer(w) }

func (t *Tracer) begin(at time.Time, kind string, node, link int) {
	b := t.buf[:0]
	b = append(b, `{"t":`...)
	b = strconv.AppendInt(b, int64(at.Sub(Epoch)), 10)
	b = append(b, `,"k":"`...)
	b = append(b, kind...)
	b = append(b, `","n":`...)
	b = strconv.AppendInt(b, int64(node), 10)
	b = append(b, `,"l":`...)
	b = strconv.AppendInt(b, int64(link), 10)
	t.buf = b
}

func (t *Tracer) end() {
	t.buf = append(t.buf, "}\n"...)
	t.h.Write(t.buf)
	t.n++
	if t.w != nil && t.err == nil {
		_, t.err = t.w.Write(t.buf)
	}
}

// rec records an event with a free-form detail string.
func (t *Tracer) rec(at time.Time, kind string, node, link int, detail string) {
	t.begin(at, kind, node, link)
	if detail != "" {
		t.buf = append(t.buf, `,"d":`...)
		t.buf = strconv.AppendQuote(t.buf, detail)
	}
	t.end()
}

// rx records a radio frame received from node from at snr dB.
func (t *Tracer) rx(at time.Time, node, link, from int, snr float64) {
	t.begin(at, "rx", node, link)
	t.buf = append(t.buf, `,"from":`...)
	t.buf = strconv.AppendInt(t.buf, int64(from), 10)
	t.buf = append(t.buf, `,"snr":`...)
	t.buf = strconv.AppendFloat(t.buf, snr, 'f', 2, 64)
	t.end()
}

// frame records a transmitted frame by its length and a digest of its
// bytes, so that the hash covers what the engines said, not only when.
func (t *Tracer) frame(at time.Time, kind string, node, link int, f []byte) {
	t.begin(at, kind, node, link)
	sum := sha256.Sum256(f)
	t.buf = append(t.buf, `,"len":`...)
	t.buf = strconv.AppendInt(t.buf, int64(len(f)), 10)
	t.buf = append(t.buf, `,"f":"`...)
	t.buf = hex.AppendEncode(t.buf, sum[:8])
	t.buf = append(t.buf, '"')
	t.end()
}

// Sum returns the hex SHA-256 of the trace so far.
func (t *Tracer) Sum() string { return hex.EncodeToString(t.h.Sum(nil)) }
