package protocol

import (
	"bytes"
	"testing"
)

// Fuzz targets for the route session decoders (docs/protocol.md section
// 10): decoding never panics, what decodes re-encodes to the same bytes, and
// what a node does with outside input (accept, complete, open) refuses
// junk without changing its state.

func FuzzParseSessionInit(f *testing.F) {
	addGolden(f, "session-init-x25519", "session-init-xwing", "session-init-x25519-v2", "session-init-xwing-v2")
	f.Add([]byte{byte(KindSessionInit)})
	bob := testIdentity(f, 2)
	f.Fuzz(func(t *testing.T, b []byte) {
		in, err := ParseSessionInit(b)
		if err != nil {
			return
		}
		out, err := in.MarshalBinary()
		if err != nil || !bytes.Equal(out, b) {
			t.Fatalf("re-encoding differs: %v", err)
		}
		if _, err := ParseSessionHop(b); err != nil {
			t.Fatalf("init decodes but its hop fields do not: %v", err)
		}
		_, _, _ = AcceptSession(seeded(1), bob, in, testNow, 0)
	})
}

func FuzzParseSessionAccept(f *testing.F) {
	addGolden(f, "session-accept-x25519", "session-accept-xwing", "session-accept-x25519-v2", "session-accept-xwing-v2")
	f.Add(make([]byte, SessionAcceptSize(SessionModeX25519)))
	alice, bob := testIdentity(f, 1), testIdentity(f, 2)
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseSessionAccept(b)
		if err != nil {
			return
		}
		out, err := a.MarshalBinary()
		if err != nil || !bytes.Equal(out, b) {
			t.Fatalf("re-encoding differs: %v", err)
		}
		p, _, err := StartSession(seeded(23), alice, bob.Public(), a.Mode(), TimestampOf(testNow))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = p.Complete(a)
	})
}

func FuzzSessionOpen(f *testing.F) {
	addGolden(f, "session-frame", "session-ack", "session-reset", "session-frame-v2", "session-ack-v2")
	f.Add([]byte{byte(KindSessionData), 1, 2, 3, 4, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		if h, err := ParseSessionHop(b); err == nil {
			c := append([]byte(nil), b...)
			if err := SetSessionIndex(c, h.Index); err != nil || !bytes.Equal(c, b) {
				t.Fatalf("rewriting the index to itself: %v", err)
			}
		}
		for _, m := range []SessionMode{SessionModeX25519, SessionModeX25519V2} {
			r := sessionPair(t, m, 1)
			before := sessionState(t, r.b)
			if _, _, err := r.b.Open(b); err != nil && !bytes.Equal(sessionState(t, r.b), before) {
				t.Fatalf("mode %d: a refused frame changed the session", m)
			}
		}
	})
}

func FuzzParseSession(f *testing.F) {
	addGolden(f, "session-state", "session-state-v2")
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSession(b)
		if err != nil {
			return
		}
		out, err := s.MarshalBinary()
		if err != nil || !bytes.Equal(out, b) {
			t.Fatalf("re-encoding differs: %v", err)
		}
		_, _ = s.Seal(false, []byte("x"))
	})
}

func FuzzParseSessionControl(f *testing.F) {
	f.Add([]byte{SessionCtlAck, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 11})
	f.Add([]byte{0, 0, 0, 0, 0, 1, 'h', 'i'})
	f.Add(append([]byte{SessionCtlRekeyAsk}, make([]byte, 32)...))
	f.Add(append([]byte{SessionCtlRekeyAnswer}, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := sessionPair(t, SessionModeX25519, 1)
		_, _ = r.b.AnswerRekey(seeded(3), b)
		if _, err := r.a.StartRekey(seeded(4)); err != nil {
			t.Fatal(err)
		}
		_ = r.a.FinishRekey(b)
		_, _ = SessionControlType(b)
		if a, err := ParseSessionAck(b); err == nil {
			out, _ := a.AppendBinary(nil)
			if !bytes.Equal(out, b) {
				t.Fatal("ack re-encoding differs")
			}
		}
		if n, body, err := ParseSessionMessage(b); err == nil {
			out, err := AppendSessionMessage(nil, n, body)
			if err == nil && !bytes.Equal(out, b) {
				t.Fatal("message re-encoding differs")
			}
		}
	})
}
