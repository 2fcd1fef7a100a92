package routing

import (
	"cmp"
	"slices"
	"time"

	"meshd.dev/meshd/protocol"
)

// The queue budget. Each link's queue is bounded (LinkInfo.QueueBytes), and
// so is what a windowed link is handed (its Window, WindowBytes), but a
// node with many links that read slowly would hold all of them at once:
// 128 neighbours that each take a frame now and then hold about 1 GiB
// (4 MiB queued here, 4 MiB in the link's send queue). Config.QueueBudget
// bounds the sum, Engine.held, which counts both (queue bytes, and bytes
// handed to a windowed link until its TxDone), and the envelopes sent on a
// hop-ack link that wait for their ack, from TxDone (or, without a window,
// from the hand-off) until the ack, a retransmission (queued again) or the
// last timeout: a neighbour that takes every frame at once and never
// acknowledges would otherwise make the node keep whatever is sent to it,
// for the ack timeout and its retries (seconds), counted nowhere.
//
// Within the budget nothing changes. A frame that would take the node past
// it is tight: its link may then hold no more than its share, the budget
// divided among the links up, at least queueShareFloor. A frame for a link
// over its share displaces only what it outranks in that link's queue
// (linkQueue.push with the share as its limit; control frames may pass
// it by controlRoom), or is refused. A frame within its link's share is
// queued, and the links over their share that hold the most lose their
// newest, least urgent queued frames, never control frames nor frames
// more urgent than the new one, until the node is back within its budget
// (or no link over its share has anything of that kind queued: what a
// link was handed cannot be taken back). So the links that
// hold the most, the slow ones, pay, and a fast link, which holds little,
// keeps its full rate. What is shed goes the way of any displaced frame
// (queueDropped): custody sends its messages again, and an envelope
// forwarded straight through, which no record held, is kept in custody
// (keepShed): its sender may have forgotten it.

// queueShareFloor is the least share of the budget a link has when the
// budget is tight: four frames of the largest size. With 128 links (the
// daemon's default connection limit) and the default budget of 32 MiB the
// even share is this floor too.
const queueShareFloor = 256 << 10

// controlRoom is what control frames (hop acks, receipts) may hold beyond
// a link's share while the budget is tight: a link with its share in
// flight still acknowledges what its neighbour sends, or the neighbour
// would send it again and, after its retries, give up its routes through
// this node. They are small and few (one per envelope the neighbour
// sends), so it is small too.
const controlRoom = 16 << 10

// enqueue queues it for l within the link's queue bound and the node's
// budget, and reports whether it was queued.
func (e *Engine) enqueue(l *link, it qitem) bool {
	limit := l.queue.limit
	tight := e.held+len(it.frame) > e.cfg.QueueBudget
	if tight {
		room := max(e.queueShare()-l.handedBytes(), 0)
		if it.pri == PriControl {
			room += controlRoom
		}
		l.queue.limit = min(limit, room)
	}
	dropped, ok := l.queue.push(it)
	l.queue.limit = limit
	e.queueDropped(l, dropped)
	if tight {
		e.counters.QueueBudgetDrops += uint64(len(dropped))
		for _, d := range dropped {
			e.keepShed(d)
		}
		if !ok {
			e.counters.QueueBudgetDrops++
			return false
		}
		e.shedOverBudget(it.pri)
	}
	return ok
}

// queueShare is what one link may hold while the budget is tight.
func (e *Engine) queueShare() int {
	return max(e.cfg.QueueBudget/max(len(e.linkList), 1), queueShareFloor)
}

// holds is what the node holds for l: its queue, its window and the
// envelopes that wait for l's hop acks.
func (l *link) holds() int { return l.queue.bytes + l.handedBytes() }

// handedBytes is what l was handed that the node still holds: its window,
// and the envelopes sent that wait for their hop acks. Neither can be
// taken back to make room.
func (l *link) handedBytes() int { return l.inflightBytes + l.ackBytes }

// awaitAck starts (or restarts) w's hop-ack timeout: its envelope is
// neither queued nor handed now, and the node holds it for w's link until
// the ack, a retransmission or the last timeout (unholdAck).
func (e *Engine) awaitAck(w *ackWait, deadline time.Time) {
	w.deadline = deadline
	if w.held > 0 {
		return
	}
	if l := e.links[w.link]; l != nil {
		w.held = len(w.frame)
		l.ackBytes += w.held
		e.held += w.held
	}
}

// unholdAck stops counting w's envelope: it is queued again, or no longer
// waits.
func (e *Engine) unholdAck(w *ackWait) {
	if w.held == 0 {
		return
	}
	if l := e.links[w.link]; l != nil {
		l.ackBytes -= w.held
	}
	e.held -= w.held
	w.held = 0
}

// dropWait forgets the hop-ack wait of key, if there is one.
func (e *Engine) dropWait(key envKey) {
	if w := e.hopAcks[key]; w != nil {
		e.unholdAck(w)
		delete(e.hopAcks, key)
	}
}

// shedOverBudget drops queued frames of priority pri or below from the
// links over their share, those that hold the most first, until the node
// is within its budget: a frame costs other links only what it would
// displace from its own queue, or its equals.
func (e *Engine) shedOverBudget(pri Priority) {
	share := e.queueShare()
	// Shedding a link brings it down to its share at most, and changes
	// no other link: the order by what they hold is found once (stable,
	// so ties go to the lowest link ID), not at every victim, which under
	// a flood of relays for many links would cost links squared.
	vs := e.shedScratch[:0]
	for _, l := range e.linkList {
		if l.queue.bytes > 0 && l.holds() > share {
			vs = append(vs, l)
		}
	}
	slices.SortStableFunc(vs, func(a, b *link) int { return cmp.Compare(b.holds(), a.holds()) })
	for _, v := range vs {
		for e.held > e.cfg.QueueBudget && v.holds() > share {
			it, ok := v.queue.shed(pri)
			if !ok {
				break
			}
			e.counters.QueueBudgetDrops++
			e.keepShed(it)
			e.queueDropped(v, []qitem{it})
		}
		if e.held <= e.cfg.QueueBudget {
			break
		}
	}
	clear(vs)
	e.shedScratch = vs[:0]
}

// keepShed takes custody of an envelope shed for the budget that no
// record holds: one forwarded straight through, which the neighbour it
// came from forgot once this node acknowledged it (hop acks) or it was
// handed to a reliable link. It is sent again after the first retry
// backoff, not at once: the queue it would join is the one being shed.
func (e *Engine) keepShed(it qitem) {
	if !it.hasRelease || e.custody.get(it.release) != nil {
		return
	}
	raw := it.frame
	if k, _ := protocol.PeekKind(raw); k == protocol.KindHop {
		if _, inner, err := protocol.ParseHop(raw); err == nil {
			raw = inner
		}
	}
	env, err := protocol.ParseEnvelope(raw)
	if err != nil {
		return // not an envelope (a session init): as for any displaced frame
	}
	r, err := e.admitCustody(env, it.release, raw, it.owner)
	if err != nil {
		e.counters.CustodyRefused++
		return
	}
	e.backoff(r)
}
