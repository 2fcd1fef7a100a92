package rnode

import "meshd.dev/meshd/transports/lora/kiss"

// txq is the firmware's transmit queue: a ring of bytes, and a FIFO of
// (start, length) entries, one per DATA frame from the host.
type txq struct {
	ring        [queueSize]byte
	cursor      int // queue_cursor: where the next byte goes
	pktStart    int // current_packet_start
	fifo        []qent
	queueHeight int
	queuedBytes int
}

type qent struct{ start, length int }

// queueFull is the firmware's queue_full(), which READY reports.
func (q *txq) queueFull() bool {
	return q.queueHeight >= queueMaxLength || q.queuedBytes >= queueSize
}

// queueByte stores a DATA byte if the queue has room; otherwise the byte is
// lost, as in the firmware.
func (q *txq) queueByte(b byte) {
	if q.queueHeight < queueMaxLength && q.queuedBytes < queueSize {
		q.queuedBytes++
		q.ring[q.cursor] = b
		q.cursor = (q.cursor + 1) % queueSize
	}
}

// endDataFrame files the bytes stored since the last packet as a packet.
// Its length is computed as the firmware does: an empty frame counts as a
// full ring (later skipped as longer than the MTU), and bytes of a frame
// that could not be filed stay and become part of the next one.
func (q *txq) endDataFrame() {
	if len(q.fifo) >= queueMaxLength || q.queuedBytes >= queueSize {
		return
	}
	s, e := q.pktStart, q.cursor-1
	if e == -1 {
		e = queueSize - 1
	}
	l := 1
	if s != e {
		if s < e {
			l = e - s + 1
		} else {
			l = queueSize - s + e + 1
		}
	}
	q.queueHeight++
	q.fifo = append(q.fifo, qent{s, l})
	q.pktStart = q.cursor
}

// pop takes the oldest packet; ok is false for an entry that is empty or
// longer than the MTU, which the firmware skips without a word.
func (q *txq) pop() (pkt []byte, length int, ok bool) {
	e := q.fifo[0]
	q.fifo = q.fifo[1:]
	if e.length < 1 || e.length > kiss.MTU {
		return nil, e.length, false
	}
	pkt = make([]byte, e.length)
	for i := range pkt {
		pkt[i] = q.ring[(e.start+i)%queueSize]
	}
	return pkt, e.length, true
}

// loraFrames splits a packet into LoRa frames as transmit() does: each
// frame starts with a header byte (a random sequence number in the high
// nibble, the split flag in the low bit); a packet over 254 bytes is split
// after 254 bytes. A packet of exactly 508 bytes fills two frames and, as
// in the firmware, is followed by a third frame holding only the header.
// In promiscuous mode the packet goes out raw, cut to 255 bytes.
func (m *modem) loraFrames(pkt []byte) [][]byte {
	if m.promisc {
		return [][]byte{pkt[:min(len(pkt), kiss.SingleMTU)]}
	}
	header := byte(m.h.rng.IntN(256)) & 0xF0
	split := len(pkt) > kiss.SingleMTU-kiss.HeaderLen
	if split {
		header |= kiss.FlagSplit
	}
	var frames [][]byte
	cur := []byte{header}
	for _, b := range pkt {
		cur = append(cur, b)
		if len(cur) == kiss.SingleMTU && split {
			frames = append(frames, cur)
			cur = []byte{header}
		}
	}
	return append(frames, cur)
}
