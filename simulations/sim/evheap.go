package sim

// push and pop are container/heap's Push and Pop on the event queue, the
// same algorithm step for step (so the order of events, and every trace,
// is unchanged) without the interface calls, which cost about a tenth of
// a large radio run's CPU.

// push adds e to the queue.
func (q *eventQueue) push(e qent) {
	*q = append(*q, e)
	h := *q
	j := len(h) - 1
	for {
		i := (j - 1) / 2 // parent
		if i == j || !h.Less(j, i) {
			break
		}
		h[i], h[j] = h[j], h[i]
		j = i
	}
}

// pop removes and returns the earliest event.
func (q *eventQueue) pop() *event {
	h := *q
	n := len(h) - 1
	h[0], h[n] = h[n], h[0]
	i := 0
	for {
		j1 := 2*i + 1
		if j1 >= n || j1 < 0 {
			break
		}
		j := j1
		if j2 := j1 + 1; j2 < n && h.Less(j2, j1) {
			j = j2
		}
		if !h.Less(j, i) {
			break
		}
		h[i], h[j] = h[j], h[i]
		i = j
	}
	e := h[n].e
	h[n] = qent{}
	*q = h[:n]
	return e
}
