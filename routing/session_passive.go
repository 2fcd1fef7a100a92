package routing

import (
	"bytes"
	"encoding/binary"
	"slices"
	"time"

	"meshd.dev/meshd/protocol"
)

// Passive acknowledgement of session frames on a radio. Session frames
// carry no hop ack (it would cost a frame per hop), but on a shared medium
// a node hears its next hop pass the frame on: that is the acknowledgement.
// A node that sent a data frame there waits to hear the same frame (label,
// direction, counter, tag) again with the next receiver index, or any frame
// of the session coming back (the far end's acknowledgement, when the next
// hop was the end), and sends the frame again after a timeout, at most
// HopAckRetries times. Without it a frame lost on one hop of five (hidden
// terminals collide) cost an end-to-end retry over the whole path.

type passiveKey struct {
	label protocol.PathLabel
	back  bool // towards the initiator
	id    uint64
}

type passiveWait struct {
	link     LinkID
	to       Address
	frame    []byte
	index    uint8
	tries    int
	deadline time.Time
	from     owner
}

// maxPassive bounds the frames waiting to be heard again.
const maxPassive = 4096

// frameID names a data frame by counter and the end of its tag.
func frameID(frame []byte) uint64 {
	return uint64(binary.BigEndian.Uint32(frame[6:10]))<<32 | uint64(binary.BigEndian.Uint32(frame[len(frame)-4:]))
}

// sendData queues a session data frame and, on a radio, waits to hear it
// passed on.
func (e *Engine) sendData(l *link, to Address, frame []byte, pri Priority, from owner) {
	e.pushSession(l, to, frame, pri, from)
	h, err := protocol.ParseSessionHop(frame)
	if err != nil || !l.info.Shared || h.Control || h.Kind == protocol.KindSessionReset || len(e.passive) >= maxPassive {
		return
	}
	k := passiveKey{label: h.Label, back: h.TowardsInitiator, id: frameID(frame)}
	if e.passive[k] != nil {
		return
	}
	e.passive[k] = &passiveWait{link: l.info.ID, to: to, frame: frame, index: h.Index, deadline: e.passiveDeadline(l, frame), from: from}
}

// passiveDeadline allows for the frames queued before this one, the frame
// and the next hop's retransmission of it.
func (e *Engine) passiveDeadline(l *link, frame []byte) time.Time {
	return e.now.Add(e.ackTimeout(l, l.queue.bytes+len(frame)) + e.ackTimeout(l, len(frame)))
}

// heardSession clears the waits a session frame heard on l answers.
func (e *Engine) heardSession(l *link, frame []byte, h protocol.SessionHop) {
	if len(e.passive) == 0 || (h.Kind != protocol.KindSessionData && h.Kind != protocol.KindSessionAccept) {
		return
	}
	k := passiveKey{label: h.Label, back: h.TowardsInitiator, id: frameID(frame)}
	if w := e.passive[k]; w != nil && w.link == l.info.ID && h.Index == nextIndex(w.index, h.TowardsInitiator) {
		delete(e.passive, k)
		return
	}
	// A frame coming the other way: the far end is answering.
	for pk, w := range e.passive {
		if pk.label == h.Label && pk.back != h.TowardsInitiator && w.link == l.info.ID {
			delete(e.passive, pk)
		}
	}
}

func nextIndex(i uint8, back bool) uint8 {
	if back {
		return i - 1
	}
	return i + 1
}

// tickPassive sends again the frames nobody was heard passing on.
func (e *Engine) tickPassive() {
	keys := make([]passiveKey, 0, len(e.passive))
	for k, w := range e.passive {
		if !w.deadline.After(e.now) {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b passiveKey) int {
		if c := bytes.Compare(a.label[:], b.label[:]); c != 0 {
			return c
		}
		return int(int64(a.id>>1) - int64(b.id>>1))
	})
	for _, k := range keys {
		w := e.passive[k]
		l := e.links[w.link]
		if l == nil || w.tries >= e.cfg.HopAckRetries {
			delete(e.passive, k)
			continue
		}
		w.tries++
		e.pushSession(l, w.to, w.frame, PriData, w.from)
		w.deadline = e.passiveDeadline(l, w.frame)
		e.counters.Retransmits++
	}
}

func (e *Engine) nextPassive() time.Time {
	var t time.Time
	for _, w := range e.passive {
		if t.IsZero() || w.deadline.Before(t) {
			t = w.deadline
		}
	}
	return t
}
