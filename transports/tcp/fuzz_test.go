package tcp

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
)

// FuzzReadRecord feeds arbitrary bytes to the record decoder under a
// fixed key: it must return a record or an error, never panic, and never
// accept a length outside the limit. Seeds include well-sealed records of
// every type, so the fuzzer also mutates valid ciphertexts.
func FuzzReadRecord(f *testing.F) {
	key := bytes.Repeat([]byte{7}, chacha20poly1305.KeySize)
	seal := func(typ byte, body []byte) []byte {
		a, _ := chacha20poly1305.New(key)
		s := &sealer{aead: a}
		return s.seal(nil, typ, body)
	}
	f.Add(seal(recData, []byte("frame")))
	f.Add(seal(recKeepalive, nil))
	f.Add(seal(recClose, []byte("bye")))
	f.Add(append(seal(recData, []byte("one")), seal(recData, []byte("two"))...))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0, 0, 0, 17})
	f.Add([]byte{0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, _ := chacha20poly1305.New(key)
		o := &opener{aead: a}
		r := bytes.NewReader(b)
		for {
			typ, body, err := o.readRecord(r)
			if err != nil {
				if !errors.Is(err, ErrBadRecord) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("unexpected error kind: %v", err)
				}
				return
			}
			if 1+len(body)+tagSize > maxRecord {
				t.Fatalf("record of %d bytes accepted (type %d)", len(body), typ)
			}
		}
	})
}

// FuzzParseHello and FuzzParseAuth check the handshake decoders.
func FuzzParseHello(f *testing.F) {
	h := hello{}
	h.key[0], h.nonce[31] = 9, 1
	f.Add(h.marshal())
	f.Add([]byte("MSHD"))
	f.Add([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := parseHello(b)
		if err != nil {
			if !errors.Is(err, ErrBadHello) {
				t.Fatalf("error without ErrBadHello: %v", err)
			}
			return
		}
		if !bytes.Equal(got.marshal(), b) {
			t.Fatalf("hello does not round-trip")
		}
	})
}

func FuzzParseAuth(f *testing.F) {
	id := newIdentity(f)
	body, _ := id.Public().AppendBinary(nil)
	f.Add(append(body, id.Sign(labelInitiator, []byte("th"))...))
	f.Add(body)
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		pid, sig, err := parseAuth(b)
		if err != nil {
			if !errors.Is(err, ErrAuth) {
				t.Fatalf("error without ErrAuth: %v", err)
			}
			return
		}
		if pid == nil || len(sig) != 64 {
			t.Fatalf("accepted without identity or signature")
		}
	})
}
