package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
)

// The store's write-ahead log: record format. See wal.go for what the log
// is for and how it is written, synced, applied and checkpointed.
//
// A record is one batch of writes:
//
//	length  u32 LE  bytes after the CRC field (seq .. the last op)
//	crc     u32 LE  CRC-32C (Castagnoli) of those bytes
//	id      u64 LE  the log's id: random, drawn when the log is created
//	                (wal/id). A record is one of the log's only if it
//	                carries the id: a message's bytes, which a sender
//	                chooses and which the log holds verbatim, may hold
//	                a well-formed record, and behind the newest records
//	                of a reused segment such bytes lie at offsets the
//	                scan of damaged logs looks at (walScan); the sender
//	                cannot know the id (TestWALForgedRecordInPayload)
//	seq     u64 LE  the record's sequence number: 1, 2, 3, ... over the
//	                store's life, one more per record, never reused
//	synced  u64 LE  the highest sequence number known durable (its sync
//	                had finished) when the record was written; opening
//	                the store uses it to tell a torn tail from a damaged
//	                record in the synced part of the log
//	nops    u32 LE  number of ops
//	ops     nops times:
//	          kind  u8       1 set, 2 delete
//	          klen  uvarint  then the key (1..walMaxKey bytes)
//	          vlen  uvarint  then the value (sets only)
//
// A length of zero ends a segment's records (segments are pre-written
// with zeros).

// ErrWALCorrupt: the log is damaged where it held acknowledged data, or a
// record cannot be decoded. Opening the store fails with it: the operator
// must look (docs/operations.md), the store does not silently drop
// acknowledged batches.
var ErrWALCorrupt = errors.New("store: write-ahead log corrupt")

const (
	walHeader   = 4 + 4 + 8 + 8 + 8 + 4 // length, crc, id, seq, synced, nops
	walOpSet    = 1
	walOpDelete = 2
	walMaxKey   = 1 << 10
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// walRecord is a decoded record.
type walRecord struct {
	id          uint64
	seq, synced uint64
	ops         []op
}

// walSize is the encoded size of a record holding ops.
func walSize(ops []op) int {
	n := walHeader
	for _, o := range ops {
		n += 1 + binary.MaxVarintLen64 + len(o.key)
		if !o.del {
			n += binary.MaxVarintLen64 + len(o.value)
		}
	}
	return n
}

// appendWALRecord appends the encoding of a record to buf.
func appendWALRecord(buf []byte, id, seq, synced uint64, ops []op) []byte {
	start := len(buf)
	buf = append(buf, make([]byte, 8)...) // length, crc: filled in below
	buf = binary.LittleEndian.AppendUint64(buf, id)
	buf = binary.LittleEndian.AppendUint64(buf, seq)
	buf = binary.LittleEndian.AppendUint64(buf, synced)
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(ops)))
	for _, o := range ops {
		if o.del {
			buf = append(buf, walOpDelete)
		} else {
			buf = append(buf, walOpSet)
		}
		buf = binary.AppendUvarint(buf, uint64(len(o.key)))
		buf = append(buf, o.key...)
		if !o.del {
			buf = binary.AppendUvarint(buf, uint64(len(o.value)))
			buf = append(buf, o.value...)
		}
	}
	body := buf[start+8:]
	binary.LittleEndian.PutUint32(buf[start:], uint32(len(body)))
	binary.LittleEndian.PutUint32(buf[start+4:], crc32.Checksum(body, castagnoli))
	return buf
}

// walFrame checks the framing of the record at the start of b: it returns
// the record's total size, or 0 if b starts with a zero length (the end of
// the records), or an error if the length runs past b, the CRC does not
// match (a torn or damaged record) or the record is not of the log with
// this id.
func walFrame(b []byte, id uint64) (int, error) {
	if len(b) < 8 {
		return 0, nil // no room for another record: the segment's end
	}
	n := binary.LittleEndian.Uint32(b)
	if n == 0 {
		return 0, nil
	}
	if n < walHeader-8 || uint64(n) > uint64(len(b)-8) {
		return 0, fmt.Errorf("%w: record length %d (%d bytes left)", ErrWALCorrupt, n, len(b)-8)
	}
	if got := binary.LittleEndian.Uint64(b[8:]); got != id {
		return 0, fmt.Errorf("%w: a record of another log (id %x, want %x)", ErrWALCorrupt, got, id)
	}
	body := b[8 : 8+n]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(b[4:]) {
		return 0, fmt.Errorf("%w: CRC mismatch", ErrWALCorrupt)
	}
	return int(8 + n), nil
}

// walSeq returns the seq and synced fields of a framed record.
func walSeq(b []byte) (seq, synced uint64) {
	return binary.LittleEndian.Uint64(b[16:]), binary.LittleEndian.Uint64(b[24:])
}

// decodeWALRecord decodes a record of exactly len(b) bytes whose framing
// walFrame accepted. The ops' keys and values alias b.
func decodeWALRecord(b []byte, id uint64) (walRecord, error) {
	return decodeWALRecordTo(nil, b, id)
}

// decodeWALRecordTo is decodeWALRecord appending the record's ops to dst
// (r.ops is dst with them appended), so that the applier decodes the
// records of a group into one reused array.
func decodeWALRecordTo(dst []op, b []byte, id uint64) (walRecord, error) {
	r := walRecord{ops: dst}
	if n, err := walFrame(b, id); err != nil {
		return r, err
	} else if n == 0 || n != len(b) {
		return r, fmt.Errorf("%w: record of %d bytes in %d", ErrWALCorrupt, n, len(b))
	}
	r.id = id
	r.seq, r.synced = walSeq(b)
	nops := binary.LittleEndian.Uint32(b[32:])
	p := b[walHeader:]
	if uint64(nops) > uint64(len(p)/2) { // every op takes at least 2 bytes
		return r, fmt.Errorf("%w: %d ops in %d bytes", ErrWALCorrupt, nops, len(p))
	}
	r.ops = slices.Grow(r.ops, int(nops))
	for range nops {
		if len(p) < 1 {
			return r, fmt.Errorf("%w: truncated op", ErrWALCorrupt)
		}
		kind := p[0]
		p = p[1:]
		if kind != walOpSet && kind != walOpDelete {
			return r, fmt.Errorf("%w: op kind %d", ErrWALCorrupt, kind)
		}
		key, rest, err := walBytes(p, walMaxKey)
		if err != nil || len(key) == 0 {
			return r, fmt.Errorf("%w: op key: %v", ErrWALCorrupt, err)
		}
		p = rest
		o := op{key: key, del: kind == walOpDelete}
		if !o.del {
			if o.value, p, err = walBytes(p, len(p)); err != nil {
				return r, fmt.Errorf("%w: op value: %v", ErrWALCorrupt, err)
			}
		}
		r.ops = append(r.ops, o)
	}
	if len(p) != 0 {
		return r, fmt.Errorf("%w: %d stray bytes after the ops", ErrWALCorrupt, len(p))
	}
	return r, nil
}

// walBytes reads a uvarint length of at most limit and that many bytes.
func walBytes(p []byte, limit int) (b, rest []byte, err error) {
	n, k := binary.Uvarint(p)
	if k <= 0 || n > uint64(limit) || n > uint64(len(p)-k) {
		return nil, nil, fmt.Errorf("bad length")
	}
	return p[k : k+int(n) : k+int(n)], p[k+int(n):], nil
}
