package store

import (
	"encoding/binary"
	"fmt"
	"time"

	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/routing"
)

// InboxEntry is a delivered message waiting for the application to
// acknowledge it.
type InboxEntry struct {
	// Seq is the entry's inbox sequence number (1, 2, ...; never reused).
	Seq uint64
	// Received is when the store appended the entry (millisecond
	// precision, UTC).
	Received time.Time
	routing.Delivery
}

// Inbox entry format version 1, all integers big endian:
//
//	 0      1       2      3             11            19
//	+------+-------+------+-------------+-------------+
//	| ver  | flags | type | seq (8)     | received ms |
//	+------+-------+------+-------------+-------------+
//	| message ID (16)     | from (16)   | sender compact identity (64)
//	+---------------------+-------------+-----------------------------
//	| created (4) | expires (4) | channel (4) | body length (4) | body
//	+-------------+-------------+-------------+-----------------+-----
//
// flags: bit 0 broadcast, bit 1 signed; the other bits must be zero.
// received ms is signed milliseconds since the Unix epoch. The body length
// must match the rest of the value exactly and be at most
// protocol.MaxPayloadSize.
const (
	inboxVersion    = 1
	flagBroadcast   = 1 << 0
	flagSigned      = 1 << 1
	inboxHeaderSize = 1 + 1 + 1 + 8 + 8 + 16 + protocol.AddressSize + protocol.CompactIdentitySize + 4 + 4 + protocol.ChannelIDSize + 4
	// MaxInboxBody is the largest body an inbox entry carries.
	MaxInboxBody = protocol.MaxPayloadSize
)

// EncodeInboxEntry encodes e in the current format.
func EncodeInboxEntry(e *InboxEntry) ([]byte, error) {
	return appendInboxEntry(make([]byte, 0, inboxHeaderSize+len(e.Body)), e)
}

// appendInboxEntry appends the encoding of e to b.
func appendInboxEntry(b []byte, e *InboxEntry) ([]byte, error) {
	if len(e.Body) > MaxInboxBody {
		return b, fmt.Errorf("store: inbox entry %d: body of %d bytes exceeds %d", e.Seq, len(e.Body), MaxInboxBody)
	}
	var flags byte
	if e.Broadcast {
		flags |= flagBroadcast
	}
	if e.Signed {
		flags |= flagSigned
	}
	b = append(b, inboxVersion, flags, byte(e.Type))
	b = binary.BigEndian.AppendUint64(b, e.Seq)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Received.UnixMilli()))
	b = append(b, e.ID[:]...)
	b = append(b, e.From[:]...)
	b = append(b, e.Sender.SigningKey[:]...)
	b = append(b, e.Sender.KEMKeyHash[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(e.Created))
	b = binary.BigEndian.AppendUint32(b, uint32(e.Expires))
	b = append(b, e.Channel[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(e.Body)))
	return append(b, e.Body...), nil
}

// DecodeInboxEntry decodes an entry strictly; any deviation from the format
// yields an error wrapping ErrCorrupt. The entry does not alias v.
func DecodeInboxEntry(v []byte) (InboxEntry, error) {
	var e InboxEntry
	if len(v) < inboxHeaderSize {
		return e, fmt.Errorf("%w: inbox entry of %d bytes, shorter than the %d-byte header", ErrCorrupt, len(v), inboxHeaderSize)
	}
	if v[0] != inboxVersion {
		return e, fmt.Errorf("%w: inbox entry version %d, want %d", ErrCorrupt, v[0], inboxVersion)
	}
	flags := v[1]
	if flags&^(flagBroadcast|flagSigned) != 0 {
		return e, fmt.Errorf("%w: inbox entry flags %#02x", ErrCorrupt, flags)
	}
	e.Broadcast = flags&flagBroadcast != 0
	e.Signed = flags&flagSigned != 0
	e.Type = protocol.Type(v[2])
	p := v[3:]
	e.Seq = binary.BigEndian.Uint64(p)
	if e.Seq == 0 {
		return e, fmt.Errorf("%w: inbox entry sequence number 0", ErrCorrupt)
	}
	e.Received = time.UnixMilli(int64(binary.BigEndian.Uint64(p[8:]))).UTC()
	p = p[16:]
	p = p[copy(e.ID[:], p):]
	p = p[copy(e.From[:], p):]
	p = p[copy(e.Sender.SigningKey[:], p):]
	p = p[copy(e.Sender.KEMKeyHash[:], p):]
	e.Created = protocol.Timestamp(binary.BigEndian.Uint32(p))
	e.Expires = protocol.Timestamp(binary.BigEndian.Uint32(p[4:]))
	p = p[8:]
	p = p[copy(e.Channel[:], p):]
	n := binary.BigEndian.Uint32(p)
	p = p[4:]
	if n > MaxInboxBody {
		return InboxEntry{}, fmt.Errorf("%w: inbox entry body length %d exceeds %d", ErrCorrupt, n, MaxInboxBody)
	}
	if uint64(n) != uint64(len(p)) {
		return InboxEntry{}, fmt.Errorf("%w: inbox entry body length %d, but %d bytes follow", ErrCorrupt, n, len(p))
	}
	e.Body = append([]byte{}, p...)
	return e, nil
}
