package routing

// The acknowledgement window. A session acknowledgement names the highest
// counter received and the 64 below it (protocol.SessionAck), so a frame
// more than 64 below the recipient's highest can never be acknowledged:
// its retries are replays, answered with the same acknowledgement. Two
// rules keep every frame acknowledgeable whatever the burst:
//
//   - The recipient sends its acknowledgement at once, inside the batch,
//     before a new counter would push one received since the last
//     acknowledgement out of the window (ackBefore). It still goes out in
//     the Ready that records the deliveries it confirms.
//   - The sender, when an acknowledgement's window has passed a frame still
//     in flight (the acknowledgement that named it was lost), stops
//     waiting for it and sends its message again in a new frame
//     (retireBelow). The recipient delivers a message once by its number
//     whichever frame brings it, and acknowledges the new frame.
//
// Before, a backlog of more than 65 frames in one batch (a session just
// established, a rekey answered, a link back up) left all but the last 65
// unacknowledged until the session was dropped for want of
// acknowledgements and replaced by a new handshake
// (TestSessionBurstAcknowledged).

// ackBefore records a received counter, first sending the pending
// acknowledgement if counter would push a counter it has not named yet
// out of the window.
func (e *Engine) ackBefore(se *sessEnd, counter uint32) {
	if se.ackNew && counter > se.ackLow && counter-se.ackLow > 64 {
		e.sendAck(se.s.Label(), se)
	}
	switch {
	case !se.ackNew:
		se.ackNew, se.ackLow = true, counter
	case counter < se.ackLow:
		se.ackLow = counter
	}
	se.ack.Add(counter)
	se.ackDue = true
}

// retireBelow gives up waiting for acknowledgements of frames below lo,
// the lowest counter the recipient can still open (its replay window,
// protocol.LiteReplayWindow, keeps the 63 below its highest: one fewer
// than an acknowledgement names, so a frame lost exactly 64 below the
// highest could neither arrive nor be acknowledged,
// TestSessionWindowEdgeRetired), and sends their messages again in new
// frames.
func (e *Engine) retireBelow(se *sessEnd, lo uint32) {
	var again []*custodyRec
	for len(se.sentOrder) > 0 {
		c := se.sentOrder[0]
		key, ok := se.inflight[c]
		if ok && c >= lo {
			break
		}
		se.sentOrder = se.sentOrder[1:]
		if !ok {
			continue // acknowledged
		}
		delete(se.inflight, c)
		if r := e.custody.get(key); r != nil && r.session && r.label == se.s.Label() && r.counter == c {
			r.frame = nil
			again = append(again, r)
		}
	}
	for _, r := range again {
		e.attempt(r)
	}
}
