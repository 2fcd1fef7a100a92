package protocol

import "fmt"

const (
	sessionStateFormat = 2
	sessionStateFixed  = 189
	recvChainMaxSize   = 32 + 8 + 1 + 36*LiteReplayWindow
	// MaxSessionStateSize bounds an encoded session state: the fixed part,
	// a previous key phase's receive chain and a pending rekey seed.
	MaxSessionStateSize = sessionStateFixed + 36*LiteReplayWindow + recvChainMaxSize + 32
)

// MarshalBinary encodes the session state for persistence (docs/protocol.md
// section 10). It contains secret keys: store it as carefully as the
// identity, and before any frame sealed with it leaves the node.
func (s *Session) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, s.stateSize())
	flags := s.phase << 1
	if s.initiator {
		flags |= 1
	}
	prev := &s.recv[1-s.phase]
	if prev.live {
		flags |= 4
	}
	if s.rekeying != nil {
		flags |= 8
	}
	b = append(b, sessionStateFormat, flags, byte(s.mode))
	b = append(b, s.label[:]...)
	b = append(b, s.index)
	b = s.remote.appendTo(b)
	b = appendTimestamp(b, s.created)
	b = append(b, s.rekey[:]...)
	b = append(b, s.send.ck[:]...)
	b = appendU64(b, s.send.n)
	b = s.recv[s.phase].appendTo(b)
	if prev.live {
		b = prev.appendTo(b)
	}
	if s.rekeying != nil {
		b = append(b, s.rekeying[:]...)
	}
	return b, nil
}

// stateSize is the exact size MarshalBinary encodes, so that it allocates
// what it needs (about 200 bytes in the usual case), not the 4.8 KB bound.
func (s *Session) stateSize() int {
	n := sessionStateFixed + 36*len(s.recv[s.phase].skipped)
	if prev := &s.recv[1-s.phase]; prev.live {
		n += 41 + 36*len(prev.skipped)
	}
	if s.rekeying != nil {
		n += 32
	}
	return n
}

func (c *recvChain) appendTo(b []byte) []byte {
	b = append(b, c.ck[:]...)
	b = appendU64(b, c.n)
	b = append(b, byte(len(c.skipped)))
	for _, k := range c.skipped {
		b = appendU32(b, k.n)
		b = append(b, k.mk[:]...)
	}
	return b
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
	s.initiator, s.phase = flags&1 != 0, flags>>1&1
	s.mode = SessionMode(r.u8("mode"))
	r.copyInto(s.label[:], "label")
	s.index = r.u8("index")
	s.remote = r.compactIdentity("remote")
	s.created = Timestamp(r.u32("created"))
	r.copyInto(s.rekey[:], "rekey key")
	r.copyInto(s.send.ck[:], "send chain")
	s.send.n = r.u64("sent")
	s.recv[s.phase] = readRecvChain(r)
	if flags&4 != 0 {
		s.recv[1-s.phase] = readRecvChain(r)
	}
	if flags&8 != 0 {
		s.rekeying = new([32]byte)
		r.copyInto(s.rekeying[:], "rekey seed")
	}
	if err := r.done(); err != nil {
		return nil, err
	}
	if err := s.checkState(flags); err != nil {
		return nil, err
	}
	return s, nil
}

func readRecvChain(r *reader) recvChain {
	c := recvChain{live: true}
	r.copyInto(c.ck[:], "receive chain")
	c.n = r.u64("next counter")
	k := int(r.u8("skipped count"))
	if r.err == nil && k > LiteReplayWindow {
		r.fail(ErrMalformed, "skipped count")
	}
	for i := 0; i < k && r.err == nil; i++ {
		var sk skippedKey
		sk.n = r.u32("skipped counter")
		r.copyInto(sk.mk[:], "skipped key")
		c.skipped = append(c.skipped, sk)
	}
	return c
}

func (s *Session) checkState(flags byte) error {
	const limit = uint64(^uint32(0)) + 1
	switch {
	case flags&^15 != 0 || (flags&8 != 0 && !s.initiator):
		return fmt.Errorf("session state: flags 0x%02x: %w", flags, ErrMalformed)
	case !s.mode.valid():
		return fmt.Errorf("session state: mode %d: %w", s.mode, ErrMalformed)
	case s.label == PathLabel{}:
		return fmt.Errorf("session state: zero label: %w", ErrMalformed)
	case s.initiator != (s.index == 0) || s.index > MaxSessionHops:
		return fmt.Errorf("session state: index %d: %w", s.index, ErrMalformed)
	case s.send.n > limit:
		return fmt.Errorf("session state: %d frames sent: %w", s.send.n, ErrMalformed)
	}
	for _, c := range s.recv {
		if err := c.check(limit); err != nil {
			return err
		}
	}
	return nil
}

func (c *recvChain) check(limit uint64) error {
	if c.n > limit {
		return fmt.Errorf("session state: next counter %d: %w", c.n, ErrMalformed)
	}
	for i, sk := range c.skipped {
		if uint64(sk.n) >= c.n || c.n-uint64(sk.n) > LiteReplayWindow || (i > 0 && sk.n <= c.skipped[i-1].n) {
			return fmt.Errorf("session state: skipped counter %d: %w", sk.n, ErrMalformed)
		}
	}
	return nil
}
