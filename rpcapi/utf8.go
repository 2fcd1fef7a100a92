package rpcapi

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/creachadair/jrpc2/channel"
)

// errBadUTF8 marks a request that is not valid UTF-8. encoding/json would
// replace the bad bytes with U+FFFD and run the request anyway, so a
// message's text would differ from what the client sent; the server refuses
// it instead.
var errBadUTF8 = errors.New("rpcapi: request is not valid UTF-8")

// checkUTF8 reports whether msg is valid UTF-8 whose JSON string escapes
// name no lone surrogate (\ud800 without its \udc00 partner), which
// encoding/json would also replace.
func checkUTF8(msg []byte) error {
	if !utf8.Valid(msg) {
		return fmt.Errorf("%w: invalid byte sequence at offset %d", errBadUTF8, invalidOffset(msg))
	}
	for i := 0; i < len(msg); i++ {
		if msg[i] != '\\' || i+1 >= len(msg) {
			continue
		}
		i++ // the escaped byte; an escaped backslash is skipped whole
		if msg[i] != 'u' {
			continue
		}
		r, ok := hex4(msg[i+1:])
		switch {
		case !ok || r < 0xd800 || r > 0xdfff:
		case r >= 0xdc00:
			return fmt.Errorf("%w: lone low surrogate \\u%04x at offset %d", errBadUTF8, r, i-1)
		default:
			lo, ok := hex4(tail(msg, i+7))
			if !ok || msg[i+5] != '\\' || msg[i+6] != 'u' || lo < 0xdc00 || lo > 0xdfff {
				return fmt.Errorf("%w: lone high surrogate \\u%04x at offset %d", errBadUTF8, r, i-1)
			}
			i += 10
		}
	}
	return nil
}

func tail(b []byte, i int) []byte {
	if i > len(b) {
		return nil
	}
	return b[i:]
}

// hex4 decodes the four hex digits at the start of b.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

func invalidOffset(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return len(b)
}

// utf8Error is the response to a request checkUTF8 refused: id null, since
// the request's own ID may be the invalid part and is never echoed.
func utf8Error(err error) []byte {
	return marshalResponses(false, []wireResponse{errorResponse(nil, &Error{Code: CodeParseError, Message: err.Error()})})
}

// utf8Channel answers requests that are not valid UTF-8 itself and passes
// the others on to jrpc2.
type utf8Channel struct {
	channel.Channel
}

func (c utf8Channel) Recv() ([]byte, error) {
	for {
		msg, err := c.Channel.Recv()
		if len(msg) == 0 {
			return msg, err
		}
		bad := checkUTF8(msg)
		if bad == nil {
			return msg, err
		}
		if serr := c.Channel.Send(utf8Error(bad)); serr != nil {
			return nil, serr
		}
		if err != nil {
			return nil, err
		}
	}
}
