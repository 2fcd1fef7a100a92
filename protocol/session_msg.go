package protocol

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// MaxSessionNumber is the largest message number (48 bits).
const MaxSessionNumber = 1<<48 - 1

// AppendSessionMessage appends the plaintext of an application message:
// its 6-byte number, then the body. The sender keeps numbers strictly
// increasing and never below its clock in milliseconds, so they stay
// unique across restarts and sessions.
func AppendSessionMessage(b []byte, number uint64, body []byte) ([]byte, error) {
	if number > MaxSessionNumber {
		return nil, fmt.Errorf("session message: number %d: %w", number, ErrMalformed)
	}
	if len(body)+SessionNumberSize > MaxSessionPlaintext {
		return nil, fmt.Errorf("session message: %d bytes: %w", len(body), ErrTooLarge)
	}
	b = append(b, byte(number>>40), byte(number>>32))
	b = binary.BigEndian.AppendUint32(b, uint32(number))
	return append(b, body...), nil
}

// ParseSessionMessage splits an application message's plaintext.
func ParseSessionMessage(pt []byte) (number uint64, body []byte, err error) {
	if len(pt) < SessionNumberSize {
		return 0, nil, fmt.Errorf("session message: %d bytes: %w", len(pt), ErrTruncated)
	}
	number = uint64(pt[0])<<40 | uint64(pt[1])<<32 | uint64(binary.BigEndian.Uint32(pt[2:6]))
	return number, pt[SessionNumberSize:], nil
}

// SessionMessageKey is the 16-byte key a recipient deduplicates a session
// message on: the sender's address and the message number, whatever
// session carried it.
func SessionMessageKey(sender Address, number uint64) [16]byte {
	// One stack buffer and sha256.Sum256: the recipient computes this for
	// every message it gets, and sha256.New and Sum(nil) allocate.
	var b [len(labelSessionNumber) + 1 + AddressSize + 8]byte
	n := copy(b[:], labelSessionNumber)
	n++ // the 0 separator
	n += copy(b[n:], sender[:])
	binary.BigEndian.PutUint64(b[n:], number)
	copy(b[n:], b[n+2:]) // the number's low six bytes
	h := sha256.Sum256(b[:n+SessionNumberSize])
	var k [16]byte
	copy(k[:], h[:])
	return k
}

// Session control message types (the first plaintext byte of a control
// frame).
const (
	SessionCtlAck         byte = 1
	SessionCtlRekeyAsk    byte = 2
	SessionCtlRekeyAnswer byte = 3
	SessionCtlClose       byte = 4
)

// SessionAckSize is the plaintext size of a cumulative acknowledgement.
const SessionAckSize = 1 + 4 + 8

// SessionAck acknowledges data frames cumulatively: Next is one more than
// the highest counter acknowledged (0: none, so the zero value acknowledges
// nothing), and bit i of Below acknowledges counter Next-2-i. It travels in
// a control frame, so the session authenticates it.
type SessionAck struct {
	Next  uint32
	Below uint64
}

// Covers reports whether the ack acknowledges counter n.
func (a SessionAck) Covers(n uint32) bool {
	if a.Next == 0 || n >= a.Next {
		return false
	}
	d := a.Next - 1 - n // 0 for the highest
	if d == 0 {
		return true
	}
	return d <= 64 && a.Below&(1<<(d-1)) != 0
}

// Add records counter n: it moves the highest forward (shifting the
// bitmap) or sets n's bit; a counter more than 64 below the highest is not
// representable and is left out. The counter 2^32-1 is never sealed (a
// session ends before), so Next does not overflow.
func (a *SessionAck) Add(n uint32) {
	if n == ^uint32(0) {
		return
	}
	if a.Next == 0 {
		a.Next, a.Below = n+1, 0
		return
	}
	high := a.Next - 1
	switch {
	case n > high:
		d := n - high
		if d > 64 {
			a.Below = 0
		} else {
			a.Below = a.Below<<d | 1<<(d-1)
		}
		a.Next = n + 1
	case high-n >= 1 && high-n <= 64:
		a.Below |= 1 << (high - n - 1)
	}
}

// AppendBinary appends the ack's control plaintext.
func (a SessionAck) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, SessionCtlAck)
	b = binary.BigEndian.AppendUint32(b, a.Next)
	return binary.BigEndian.AppendUint64(b, a.Below), nil
}

// ParseSessionAck decodes an ack's control plaintext strictly.
func ParseSessionAck(pt []byte) (SessionAck, error) {
	r := newReader("session ack", pt)
	if t := r.u8("type"); r.err == nil && t != SessionCtlAck {
		return SessionAck{}, fmt.Errorf("session ack: type %d: %w", t, ErrUnknownKind)
	}
	a := SessionAck{Next: r.u32("next"), Below: r.u64("bitmap")}
	if err := r.done(); err != nil {
		return SessionAck{}, err
	}
	return a, nil
}
