package rpcapi

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"unicode/utf8"
)

// badUTF8Requests carry invalid UTF-8 in a string (raw bytes or a lone
// surrogate escape), which encoding/json would silently turn into U+FFFD.
var badUTF8Requests = []string{
	"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"msg.send\",\"params\":{\"to\":\"" + okAddr + "\",\"text\":\"h\xffi\"}}",
	`{"jsonrpc":"2.0","id":1,"method":"msg.send","params":{"to":"` + okAddr + `","text":"h\udc00i"}}`,
	`{"jsonrpc":"2.0","id":1,"method":"msg.send","params":{"to":"` + okAddr + `","text":"h\ud800"}}`,
	"{\"jsonrpc\":\"2.0\",\"id\":\"a\xfe\xffb\",\"method\":\"node.info\"}",
}

// TestInvalidUTF8Refused: a request with invalid UTF-8 in a string is
// refused with a clear error, on the socket and over HTTP, never run with
// replaced characters, and its ID is never echoed back raw.
func TestInvalidUTF8Refused(t *testing.T) {
	e := newEnv(t)
	c := e.dialRaw(t)
	for _, req := range badUTF8Requests {
		for _, out := range [][]byte{c.roundTrip(t, req), httpBody(t, e, req)} {
			if !utf8.Valid(out) {
				t.Fatalf("%q: response is not valid UTF-8: %q", req, out)
			}
			r := decodeResponse(t, out)
			if r.Error == nil || r.Error.Code != CodeParseError || !strings.Contains(r.Error.Message, "UTF-8") {
				t.Fatalf("%q: got %s, want a UTF-8 parse error", req, out)
			}
			if string(r.ID) != "null" {
				t.Errorf("%q: id %s echoed, want null", req, r.ID)
			}
		}
	}
	if n := e.node.sentCount(); n != 0 {
		t.Fatalf("%d messages sent with replaced characters", n)
	}
	// Valid escapes still work: a surrogate pair, and an escaped backslash
	// before a "u".
	ok := `{"jsonrpc":"2.0","id":1,"method":"msg.send","params":{"to":"` + okAddr + `","text":"\ud83d\ude00 \\udc00"}}`
	if r := decodeResponse(t, c.roundTrip(t, ok)); r.Error != nil {
		t.Fatalf("valid request refused: %v", r.Error)
	}
}

func httpBody(t *testing.T, e *testEnv, body string) []byte {
	t.Helper()
	out, ok := e.srv.handleBody(context.Background(), []byte(body))
	if !ok {
		t.Fatalf("%q: no response", body)
	}
	return bytes.TrimSpace(out)
}

func TestCheckUTF8(t *testing.T) {
	for in, want := range map[string]bool{
		`"a"`: true, `"\ud83d\ude00"`: true, `"\\ud800"`: true, `"\u0041"`: true, "\"\u00e9\"": true,
		`"\ud800"`: false, `"\udfff"`: false, `"\ud800\u0041"`: false, "\"\xc3\"": false,
	} {
		if got := checkUTF8([]byte(in)) == nil; got != want {
			t.Errorf("checkUTF8(%q) ok = %v, want %v", in, got, want)
		}
	}
}

// FuzzCheckUTF8: checkUTF8 never panics and accepts exactly what survives a
// JSON round trip unchanged in its strings.
func FuzzCheckUTF8(f *testing.F) {
	for _, s := range badUTF8Requests {
		f.Add([]byte(s))
	}
	f.Add([]byte(`"\ud83d\ude00"`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if checkUTF8(b) == nil && !utf8.Valid(b) {
			t.Fatalf("accepted invalid UTF-8 %q", b)
		}
	})
}

func (n *fakeNode) sentCount() uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return uint64(n.nextID)
}
