package protocol

import (
	"encoding/binary"
	"fmt"
)

// Kind is the first byte of every top-level object. It names the object and
// its format version together, so a link can demultiplex frames by one byte
// and a new version is a new Kind.
type Kind byte

// The kinds defined by this version of the protocol.
const (
	KindEnvelope      Kind = 0x10 // signed (and usually sealed) end-to-end envelope
	KindAnnounce      Kind = 0x11 // signed node announce
	KindReceipt       Kind = 0x12 // signed delivery receipt
	KindLiteInit      Kind = 0x13 // lite session establishment (hybrid KEM)
	KindLiteData      Kind = 0x14 // lite session unicast frame
	KindChannel       Kind = 0x25 // channel broadcast frame, MAC only (v2; v1 was 0x15, refused now)
	KindChannelSigned Kind = 0x26 // channel broadcast frame with sender signature inside (v2; v1 was 0x16)
	KindFragment      Kind = 0x17 // one fragment of a larger object

	// Hop-by-hop routing control frames (control.go): each speaks to the
	// neighbours on one link, not end to end.
	KindAdvert        Kind = 0x18 // route advertisement: signed announce + forwarder and metric
	KindHop           Kind = 0x19 // unicast wrapper naming the next hop on a shared medium
	KindPathRequest   Kind = 0x1A // flooded request for a route to an address
	KindHopAck        Kind = 0x1B // a neighbour's acknowledgement of one envelope
	KindCustodyOffer  Kind = 0x1C // an envelope offered to a mailbox for safekeeping
	KindCustodyAccept Kind = 0x1D // a mailbox's answer to a custody offer
	KindExpiryNotice  Kind = 0x1E // a custodian tells the sender it dropped an expired message

	// Route sessions (session.go): end-to-end, forwarded by path label.
	KindSessionInit   Kind = 0x20 // route session init: hybrid KEM + ephemeral key, sets up the path
	KindSessionAccept Kind = 0x21 // route session accept: the responder's ephemeral contribution
	KindSessionData   Kind = 0x22 // route session data frame (26 bytes of overhead)
	KindSessionReset  Kind = 0x23 // "no session under this label here"
)

var kindNames = map[Kind]string{
	KindEnvelope:      "envelope",
	KindAnnounce:      "announce",
	KindReceipt:       "receipt",
	KindLiteInit:      "lite-init",
	KindLiteData:      "lite-data",
	KindChannel:       "channel",
	KindChannelSigned: "channel-signed",
	KindFragment:      "fragment",
	KindAdvert:        "advert",
	KindHop:           "hop",
	KindPathRequest:   "path-request",
	KindHopAck:        "hop-ack",
	KindCustodyOffer:  "custody-offer",
	KindCustodyAccept: "custody-accept",
	KindExpiryNotice:  "expiry-notice",

	KindCustodyOfferStamped: "custody-offer-stamped",

	KindSessionInit:   "session-init",
	KindSessionAccept: "session-accept",
	KindSessionData:   "session-data",
	KindSessionReset:  "session-reset",
}

func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("kind(0x%02x)", byte(k))
}

// Known reports whether k is a kind this version understands.
func (k Kind) Known() bool { return kindKnown[k] }

// kindKnown is kindNames' keys as a table: every frame's kind is looked
// up, and an array costs no hashing.
var kindKnown = func() (t [256]bool) {
	for k := range kindNames {
		t[k] = true
	}
	return t
}()

// PeekKind returns the kind of an encoded object without decoding it.
func PeekKind(b []byte) (Kind, error) {
	if len(b) == 0 {
		return 0, fmt.Errorf("peek kind: %w", ErrTruncated)
	}
	k := Kind(b[0])
	if !k.Known() {
		return k, fmt.Errorf("peek kind: %w: 0x%02x", ErrUnknownKind, b[0])
	}
	return k, nil
}

// reader is a bounds-checked cursor over a byte slice. After the first
// failure every read returns zero values and err keeps the first error, so
// decoders read all fields and check err once.
type reader struct {
	b   []byte
	off int
	err error
	obj string // object name for error messages
}

func newReader(obj string, b []byte) *reader { return &reader{b: b, obj: obj} }

func (r *reader) fail(err error, field string) {
	if r.err == nil {
		r.err = fmt.Errorf("%s: %s at offset %d: %w", r.obj, field, r.off, err)
	}
}

func (r *reader) bytes(n int, field string) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.b)-r.off < n {
		r.fail(ErrTruncated, field)
		return nil
	}
	v := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return v
}

func (r *reader) u8(field string) uint8 {
	b := r.bytes(1, field)
	if b == nil {
		return 0
	}
	return b[0]
}

func (r *reader) u16(field string) uint16 {
	b := r.bytes(2, field)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint16(b)
}

func (r *reader) u32(field string) uint32 {
	b := r.bytes(4, field)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint32(b)
}

func (r *reader) u64(field string) uint64 {
	b := r.bytes(8, field)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

// copyInto fills dst from the input.
func (r *reader) copyInto(dst []byte, field string) {
	if b := r.bytes(len(dst), field); b != nil {
		copy(dst, b)
	}
}

// rest returns everything that is left.
func (r *reader) rest() []byte {
	if r.err != nil {
		return nil
	}
	v := r.b[r.off:]
	r.off = len(r.b)
	return v
}

func (r *reader) remaining() int { return len(r.b) - r.off }

// done reports the first error, or ErrTrailing if input is left over.
func (r *reader) done() error {
	if r.err != nil {
		return r.err
	}
	if r.off != len(r.b) {
		return fmt.Errorf("%s: %d bytes after the end: %w", r.obj, len(r.b)-r.off, ErrTrailing)
	}
	return nil
}

func appendU16(b []byte, v uint16) []byte { return binary.BigEndian.AppendUint16(b, v) }
func appendU32(b []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(b, v) }
func appendU64(b []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(b, v) }
