package routing

// qitem is a frame waiting for a link.
type qitem struct {
	frame []byte
	to    Address
	pri   Priority
	// release, if set, names a forwarder custody record to release once
	// the frame is handed to a reliable link.
	release    envKey
	hasRelease bool
}

// linkQueue holds frames for one link, FIFO within each priority. It never
// holds more than limit bytes: a new frame displaces frames of strictly
// lower priority (newest first) or is refused.
type linkQueue struct {
	q     [numPriorities][]qitem
	bytes int
	limit int
}

func (q *linkQueue) len() int {
	n := 0
	for _, p := range q.q {
		n += len(p)
	}
	return n
}

// push queues it and returns the frames it displaced, or ok=false if it was
// refused.
func (q *linkQueue) push(it qitem) (dropped []qitem, ok bool) {
	need := q.bytes + len(it.frame) - q.limit
	if need > 0 {
		// Can displacing lower-priority frames make room?
		free := 0
		for p := numPriorities - 1; p > it.pri && free < need; p-- {
			for i := len(q.q[p]) - 1; i >= 0 && free < need; i-- {
				free += len(q.q[p][i].frame)
			}
		}
		if free < need {
			return nil, false
		}
		for p := numPriorities - 1; p > it.pri && need > 0; p-- {
			for len(q.q[p]) > 0 && need > 0 {
				last := q.q[p][len(q.q[p])-1]
				q.q[p] = q.q[p][:len(q.q[p])-1]
				q.bytes -= len(last.frame)
				need -= len(last.frame)
				dropped = append(dropped, last)
			}
		}
	}
	q.q[it.pri] = append(q.q[it.pri], it)
	q.bytes += len(it.frame)
	return dropped, true
}

func (q *linkQueue) pop() (qitem, bool) {
	for p := range q.q {
		if len(q.q[p]) > 0 {
			it := q.q[p][0]
			q.q[p][0] = qitem{}
			q.q[p] = q.q[p][1:]
			q.bytes -= len(it.frame)
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
	q.bytes = 0
	return out
}
