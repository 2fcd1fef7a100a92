package protocol

import "fmt"

const (
	sessionStateFormat = 2
	sessionStateFixed  = 189
	// MaxSessionStateSize bounds an encoded session state.
	MaxSessionStateSize = sessionStateFixed + 36*LiteReplayWindow
)

// MarshalBinary encodes the session state for persistence (docs/protocol.md
// section 10). It contains secret keys: store it as carefully as the
// identity, and before any frame sealed with it leaves the node.
func (s *Session) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, sessionStateFixed+36*len(s.recv.skipped))
	var flags byte
	if s.initiator {
		flags |= 1
	}
	b = append(b, sessionStateFormat, flags, byte(s.mode))
	b = append(b, s.label[:]...)
	b = append(b, s.index)
	b = s.remote.appendTo(b)
	b = appendTimestamp(b, s.created)
	b = append(b, s.rekey[:]...)
	b = append(b, s.send.ck[:]...)
	b = appendU64(b, s.send.n)
	b = append(b, s.recv.ck[:]...)
	b = appendU64(b, s.recv.n)
	b = append(b, byte(len(s.recv.skipped)))
	for _, k := range s.recv.skipped {
		b = appendU32(b, k.n)
		b = append(b, k.mk[:]...)
	}
	return b, nil
}

// ParseSession decodes a session state written by MarshalBinary, strictly.
func ParseSession(b []byte) (*Session, error) {
	if len(b) > MaxSessionStateSize {
		return nil, fmt.Errorf("session state: %d bytes: %w", len(b), ErrTooLarge)
	}
	r := newReader("session state", b)
	if v := r.u8("version"); r.err == nil && v != sessionStateFormat {
		return nil, fmt.Errorf("session state: version %d: %w", v, ErrUnknownKind)
	}
	s := &Session{}
	flags := r.u8("flags")
	s.initiator = flags&1 != 0
	s.mode = SessionMode(r.u8("mode"))
	r.copyInto(s.label[:], "label")
	s.index = r.u8("index")
	s.remote = r.compactIdentity("remote")
	s.created = Timestamp(r.u32("created"))
	r.copyInto(s.rekey[:], "rekey key")
	r.copyInto(s.send.ck[:], "send chain")
	s.send.n = r.u64("sent")
	r.copyInto(s.recv.ck[:], "receive chain")
	s.recv.n = r.u64("next counter")
	k := int(r.u8("skipped count"))
	if r.err == nil && k > LiteReplayWindow {
		return nil, fmt.Errorf("session state: %d skipped keys: %w", k, ErrMalformed)
	}
	for i := 0; i < k && r.err == nil; i++ {
		var sk skippedKey
		sk.n = r.u32("skipped counter")
		r.copyInto(sk.mk[:], "skipped key")
		s.recv.skipped = append(s.recv.skipped, sk)
	}
	if err := r.done(); err != nil {
		return nil, err
	}
	if err := s.checkState(flags); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Session) checkState(flags byte) error {
	const limit = uint64(^uint32(0)) + 1
	switch {
	case flags&^1 != 0:
		return fmt.Errorf("session state: flags 0x%02x: %w", flags, ErrMalformed)
	case !s.mode.valid():
		return fmt.Errorf("session state: mode %d: %w", s.mode, ErrMalformed)
	case s.label == PathLabel{}:
		return fmt.Errorf("session state: zero label: %w", ErrMalformed)
	case s.initiator != (s.index == 0) || s.index > MaxSessionHops:
		return fmt.Errorf("session state: index %d: %w", s.index, ErrMalformed)
	case s.send.n > limit || s.recv.n > limit:
		return fmt.Errorf("session state: counters %d/%d: %w", s.send.n, s.recv.n, ErrMalformed)
	}
	for i, sk := range s.recv.skipped {
		if uint64(sk.n) >= s.recv.n || s.recv.n-uint64(sk.n) > LiteReplayWindow || (i > 0 && sk.n <= s.recv.skipped[i-1].n) {
			return fmt.Errorf("session state: skipped counter %d: %w", sk.n, ErrMalformed)
		}
	}
	return nil
}
