package routing

import "slices"

// qitem is a frame waiting for a link.
type qitem struct {
	frame []byte
	to    Address
	pri   Priority
	// release, if set, names a forwarder custody record to release once
	// the frame is handed to a reliable link.
	release    envKey
	hasRelease bool
	// owner says whose frame it is: a neighbour's forwarded envelope holds
	// only its share of the queue and never displaces the node's own
	// frames (quota.go).
	owner owner
}

// linkQueue holds frames for one link, FIFO within each priority. It never
// holds more than limit bytes: a new frame displaces frames it outranks
// (newest first, see displaces) or is refused.
type linkQueue struct {
	q     [numPriorities][]qitem
	bytes int
	limit int
	// fwdBytes are the bytes of forwarded frames queued per neighbour.
	fwdBytes map[neighbour]int
	// total, if set, is the node-wide count of bytes held for links
	// (queuebudget.go) that this queue's bytes, and its link's window,
	// add to.
	total *int
}

// addTotal adds n bytes to the node-wide count, if there is one.
func (q *linkQueue) addTotal(n int) {
	if q.total != nil {
		*q.total += n
	}
}

func (q *linkQueue) len() int {
	n := 0
	for _, p := range q.q {
		n += len(p)
	}
	return n
}

// displaces reports whether a new frame it may displace a queued frame v of
// priority p: frames of strictly lower priority, and forwarded frames of
// the same priority if it is the node's own; a forwarded frame displaces
// only forwarded frames.
func displaces(it qitem, p Priority, v qitem) bool {
	if it.owner.fwd && !v.owner.fwd {
		return false
	}
	return p > it.pri || (p == it.pri && !it.owner.fwd && v.owner.fwd)
}

// push queues it and returns the frames it displaced, or ok=false if it was
// refused.
func (q *linkQueue) push(it qitem) (dropped []qitem, ok bool) {
	n := len(it.frame)
	if o := it.owner; o.fwd && q.fwdBytes[o.n] > 0 && q.fwdBytes[o.n]+n > q.limit/2 {
		return nil, false // the neighbour has its share queued
	}
	if need := q.bytes + n - q.limit; need > 0 {
		// Which frames would make room: lowest priority first, newest
		// first within a priority.
		type pos struct{ p, i int }
		var victims []pos
		free := 0
		for p := int(numPriorities) - 1; p >= int(it.pri) && free < need; p-- {
			for i := len(q.q[p]) - 1; i >= 0 && free < need; i-- {
				if displaces(it, Priority(p), q.q[p][i]) {
					victims = append(victims, pos{p, i})
					free += len(q.q[p][i].frame)
				}
			}
		}
		if free < need {
			return nil, false
		}
		// Indices within a priority come in descending order, so each
		// deletion leaves the next one's index valid.
		for _, v := range victims {
			x := q.q[v.p][v.i]
			q.q[v.p] = slices.Delete(q.q[v.p], v.i, v.i+1)
			q.account(x, -1)
			dropped = append(dropped, x)
		}
	}
	q.q[it.pri] = append(q.q[it.pri], it)
	q.account(it, 1)
	return dropped, true
}

// account adds (sign 1) or removes (-1) it from the byte counts.
func (q *linkQueue) account(it qitem, sign int) {
	n := sign * len(it.frame)
	q.bytes += n
	q.addTotal(n)
	if it.owner.fwd {
		if q.fwdBytes == nil {
			q.fwdBytes = make(map[neighbour]int)
		}
		addTo(q.fwdBytes, it.owner.n, n)
	}
}

// headLen is the length of the frame pop would return.
func (q *linkQueue) headLen() (int, bool) {
	for p := range q.q {
		if len(q.q[p]) > 0 {
			return len(q.q[p][0].frame), true
		}
	}
	return 0, false
}

func (q *linkQueue) pop() (qitem, bool) {
	for p := range q.q {
		if len(q.q[p]) > 0 {
			it := q.q[p][0]
			q.q[p][0] = qitem{}
			q.q[p] = q.q[p][1:]
			q.account(it, -1)
			return it, true
		}
	}
	return qitem{}, false
}

func (q *linkQueue) clear() []qitem {
	var out []qitem
	for p := range q.q {
		out = append(out, q.q[p]...)
		q.q[p] = nil
	}
	q.addTotal(-q.bytes)
	q.bytes = 0
	clear(q.fwdBytes)
	return out
}

// shed removes the newest frame of the lowest priority queued, the one
// push would displace first, if it is of priority least or below; never a
// control frame (hop acks, receipts): the queue budget lets a link hold a
// few of those beyond its share (queuebudget.go).
func (q *linkQueue) shed(least Priority) (qitem, bool) {
	for p := len(q.q) - 1; p >= int(max(least, PriControl+1)); p-- {
		if k := len(q.q[p]); k > 0 {
			it := q.q[p][k-1]
			q.q[p][k-1] = qitem{}
			q.q[p] = q.q[p][:k-1]
			q.account(it, -1)
			return it, true
		}
	}
	return qitem{}, false
}
