// Package kiss is the KISS framing and the command set of the RNode LoRa
// modem's host protocol, shared by the RNode host driver
// (meshd.dev/meshd/transports/lora) and the RNode emulator.
//
// A frame on the serial line is
//
//	FEND <command> <escaped data> FEND
//
// with FEND = 0xC0. Inside the data, 0xC0 is sent as FESC TFEND (0xDB 0xDC)
// and 0xDB as FESC TFESC (0xDB 0xDD). The command byte is not escaped (the
// firmware reads it raw; no command is 0xC0 or 0xDB). Empty frames (FEND
// FEND) are idle fill. This decoder treats every FEND as closing one frame
// and opening the next, so back-to-back frames may share one FEND. The
// firmware reading the host's bytes does not: the FEND that ends a DATA
// frame only closes it, and the next frame needs its own opening FEND (a
// FEND after any other command does open a new frame). A host writing to
// a modem therefore starts every frame with FEND, as Append does.
//
// The decoder keeps memory bounded whatever arrives: at most MaxData bytes
// of one frame are buffered, a longer frame is reported as ErrFrameTooLong
// and skipped up to the next FEND, and bytes before the first FEND (line
// noise, a boot banner) are skipped and reported as ErrGarbage once more
// than MaxGarbage of them came in without a frame.
package kiss

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// Framing bytes.
const (
	FEND  byte = 0xC0 // frame end (and start)
	FESC  byte = 0xDB // frame escape
	TFEND byte = 0xDC // escaped FEND
	TFESC byte = 0xDD // escaped FESC
)

// Errors.
var (
	// ErrBadCommand: Append was asked to frame FEND or FESC as a command,
	// which the receiver could not tell from framing.
	ErrBadCommand = errors.New("kiss: command byte 0xC0 or 0xDB cannot be framed")
	// ErrFrameTooLong: a frame carried more data bytes than the decoder's
	// maximum; it was discarded up to the next FEND.
	ErrFrameTooLong = errors.New("kiss: frame too long")
	// ErrBadEscape: FESC was followed by something other than TFEND or
	// TFESC; the frame was discarded.
	ErrBadEscape = errors.New("kiss: bad escape sequence")
	// ErrGarbage: more than MaxGarbage bytes arrived outside any frame.
	ErrGarbage = errors.New("kiss: garbage outside frames")
)

// Frame is one decoded KISS frame. Data is unescaped.
type Frame struct {
	Cmd  byte
	Data []byte
}

// Append appends the KISS encoding of a frame to dst.
func Append(dst []byte, cmd byte, data []byte) ([]byte, error) {
	if cmd == FEND || cmd == FESC {
		return dst, ErrBadCommand
	}
	dst = append(dst, FEND, cmd)
	dst = AppendEscaped(dst, data)
	return append(dst, FEND), nil
}

// Encode returns the KISS encoding of a frame.
func Encode(cmd byte, data []byte) ([]byte, error) {
	return Append(make([]byte, 0, len(data)+4+len(data)/16), cmd, data)
}

// AppendEscaped appends data with FEND and FESC escaped.
func AppendEscaped(dst, data []byte) []byte {
	for _, b := range data {
		switch b {
		case FEND:
			dst = append(dst, FESC, TFEND)
		case FESC:
			dst = append(dst, FESC, TFESC)
		default:
			dst = append(dst, b)
		}
	}
	return dst
}

// Parser is the byte-at-a-time KISS state machine. The zero value is not
// ready: set MaxData (NewParser does).
type Parser struct {
	// MaxData is the largest number of unescaped data bytes (after the
	// command byte) one frame may carry.
	MaxData int
	// Lenient makes a bad escape behave as in the RNode firmware and
	// Reticulum's host driver: the byte after FESC is kept as it is,
	// instead of discarding the frame with ErrBadEscape.
	Lenient bool

	buf      []byte
	synced   bool // a FEND has been seen
	inFrame  bool // the command byte has been read
	escape   bool
	skipping bool // discarding the rest of a bad frame up to FEND
	cmd      byte
	// Skipped counts bytes dropped before the first FEND, or since the
	// last Reset.
	Skipped int
}

// NewParser returns a parser that accepts frames of up to maxData data bytes.
func NewParser(maxData int) *Parser {
	return &Parser{MaxData: maxData}
}

// InFrame reports whether a frame has begun and not yet ended.
func (p *Parser) InFrame() bool { return p.inFrame && !p.skipping }

// Reset forgets any partial frame and waits for a FEND again.
func (p *Parser) Reset() {
	p.buf = p.buf[:0]
	p.synced, p.inFrame, p.escape, p.skipping = false, false, false, false
	p.Skipped = 0
}

// Push feeds one byte. It returns a frame when b completed one (ok true),
// or an error when b showed the current frame to be bad (the parser then
// skips to the next FEND). The returned Data is only valid until the next
// call to Push; copy it to keep it.
func (p *Parser) Push(b byte) (f Frame, ok bool, err error) {
	if b == FEND {
		return p.end()
	}
	switch {
	case !p.synced:
		p.Skipped++
	case p.skipping:
	case !p.inFrame:
		p.cmd, p.inFrame = b, true
		p.buf = p.buf[:0]
	default:
		return Frame{}, false, p.data(b)
	}
	return Frame{}, false, nil
}

// end handles a FEND: it closes the current frame, if any, and opens a new one.
func (p *Parser) end() (f Frame, ok bool, err error) {
	had := p.inFrame && !p.skipping
	p.synced, p.inFrame, p.escape, p.skipping = true, false, false, false
	if !had {
		return Frame{}, false, nil
	}
	return Frame{Cmd: p.cmd, Data: p.buf}, true, nil
}

// data takes one data byte of the current frame.
func (p *Parser) data(b byte) error {
	if p.escape {
		p.escape = false
		switch b {
		case TFEND:
			b = FEND
		case TFESC:
			b = FESC
		default:
			if !p.Lenient {
				p.skipping = true
				return fmt.Errorf("%w: 0x%02X after FESC in command 0x%02X", ErrBadEscape, b, p.cmd)
			}
		}
	} else if b == FESC {
		p.escape = true
		return nil
	}
	if len(p.buf) >= p.MaxData {
		p.skipping = true
		return fmt.Errorf("%w: command 0x%02X carries more than %d bytes", ErrFrameTooLong, p.cmd, p.MaxData)
	}
	p.buf = append(p.buf, b)
	return nil
}

// Decoder reads KISS frames from a byte stream.
type Decoder struct {
	r *bufio.Reader
	p *Parser
	// MaxGarbage is how many bytes may arrive before the first FEND before
	// Next reports ErrGarbage (and starts counting again).
	MaxGarbage int
}

// NewDecoder returns a decoder for frames of up to maxData data bytes. It
// buffers its reads.
func NewDecoder(r io.Reader, maxData int) *Decoder {
	return &Decoder{r: bufio.NewReader(r), p: NewParser(maxData), MaxGarbage: 4 * (maxData + 2)}
}

// Parser exposes the decoder's state machine (for Lenient).
func (d *Decoder) Parser() *Parser { return d.p }

// Next returns the next frame. Data is a fresh copy. A frame error
// (ErrFrameTooLong, ErrBadEscape, ErrGarbage) is returned wrapped and the
// decoder stays usable; a read error is returned as it is.
func (d *Decoder) Next() (Frame, error) {
	for {
		b, err := d.r.ReadByte()
		if err != nil {
			return Frame{}, err
		}
		f, ok, ferr := d.p.Push(b)
		if ferr != nil {
			return Frame{}, ferr
		}
		if ok {
			f.Data = append([]byte(nil), f.Data...)
			return f, nil
		}
		if d.p.Skipped > d.MaxGarbage {
			n := d.p.Skipped
			d.p.Skipped = 0
			return Frame{}, fmt.Errorf("%w: %d bytes without a FEND", ErrGarbage, n)
		}
	}
}

// ErrShortArg: a command argument had the wrong length.
var ErrShortArg = errors.New("kiss: wrong argument length")
