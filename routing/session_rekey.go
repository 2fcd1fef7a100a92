package routing

import (
	"time"

	"meshd.dev/meshd/protocol"
)

// In-session rekeys. A key phase carries at most
// protocol.SessionRekeyFrames frames from the initiator or lives
// protocol.SessionRekeyAge; then the initiator asks for a rekey (a fresh
// X25519 exchange inside the session, protocol.md section 10) instead of a
// new handshake, which on LoRa costs an init of six fragments per hop.
// Acknowledgements name counters without their phase, and the counters
// start again at 0 in a new phase, so the initiator asks only when no
// frame waits for an acknowledgement (holding new message frames back
// from the moment the phase is used up until the window is empty), and
// sends no message frame until the answer came; the responder forgets the
// old phase's acknowledgement state when it answers. A session whose rekey does not complete is
// replaced by a new handshake at twice the bounds (sessionTo).

// rekeyDue says whether an established initiator session's key phase is
// used up.
func (e *Engine) rekeyDue(se *sessEnd) bool {
	return se.s.Sent() >= protocol.SessionRekeyFrames || e.now.Sub(se.phaseStart()) >= protocol.SessionRekeyAge
}

// phaseStart is when the session's current key phase began.
func (se *sessEnd) phaseStart() time.Time {
	if se.rekeyedAt.IsZero() {
		return se.started
	}
	return se.rekeyedAt
}

// holdForRekey reports whether a new message frame must wait for a
// rekey, and asks for one (or asks again) when it is due and nothing
// waits for an acknowledgement. While frames of the used-up phase wait
// for theirs, new frames wait too, so that a busy sender, whose window
// is never empty, still rekeys: the acknowledgement that empties it asks
// (rekeyWhenDrained).
func (e *Engine) holdForRekey(se *sessEnd) bool {
	if !se.asking && !e.rekeyDue(se) {
		return false
	}
	if !se.asking && e.waitsForFrames(se) {
		return true
	}
	if se.asking && e.now.Sub(se.askedAt) < e.cfg.RetryBase {
		return true // asked just now (for another message)
	}
	e.askRekey(se)
	return true
}

// askRekey sends the initiator's rekey request.
func (e *Engine) askRekey(se *sessEnd) {
	f, err := se.s.StartRekey(e.cfg.Rand)
	if err != nil {
		e.counters.RandomFailures++
		return
	}
	se.asking, se.askedAt = true, e.now
	e.emitSession(se, f, PriControl, owner{})
	e.counters.SessionRekeysAsked++
}

// rekeyWhenDrained asks for a due rekey once an acknowledgement has
// emptied the window: the messages held for it go when the answer comes
// (finishRekey).
func (e *Engine) rekeyWhenDrained(se *sessEnd) {
	if !se.asking && e.sessions[se.s.Label()] == se && e.rekeyDue(se) && !e.waitsForFrames(se) {
		e.askRekey(se)
	}
}

// waitsForFrames reports whether se's sender still waits for the
// acknowledgement of a frame it will send again. A frame whose message
// left custody (cancelled, expired) or went on as an envelope is never
// sent again: it is forgotten here, or a used-up phase would hold the
// session's new messages until it idled out. The recipient never names a
// frame of the previous phase in its acknowledgements (sessionDeliver),
// so the rekey may be asked while such a frame is still on its way.
func (e *Engine) waitsForFrames(se *sessEnd) bool {
	for c, key := range se.inflight {
		r := e.custody.get(key)
		if r == nil || !r.session || r.label != se.s.Label() || r.counter != c {
			delete(se.inflight, c)
		}
	}
	return len(se.inflight) > 0
}

// answerRekey is the responder's side: answer in the current phase, move
// to the next, persist the new state before the answer goes out (both in
// this Ready, records first).
func (e *Engine) answerRekey(se *sessEnd, pt []byte) error {
	if se.s.Initiator() {
		e.counters.SessionFramesRefused++
		return ErrBadInput
	}
	if se.restored {
		e.endRestored(se.s.Label(), se) // its answer would be sealed
		return nil
	}
	phase := se.s.Phase()
	f, err := se.s.AnswerRekey(e.cfg.Rand, pt)
	if err != nil {
		e.counters.SessionFramesRefused++
		return err
	}
	if se.s.Phase() != phase {
		// Not a repeated request answered from memory: a new phase.
		se.ack, se.ackDue, se.ackNew = protocol.SessionAck{}, false, false
		se.rekeyedAt = e.now
	}
	e.persistSession(se)
	e.emitSession(se, f, PriControl, owner{})
	e.counters.SessionRekeys++
	return nil
}

// finishRekey is the initiator's side: the answer moves it to the new
// phase, and the messages held for it go out.
func (e *Engine) finishRekey(se *sessEnd, pt []byte) error {
	if !se.s.Initiator() {
		e.counters.SessionFramesRefused++
		return ErrBadInput
	}
	if err := se.s.FinishRekey(pt); err != nil {
		e.counters.SessionFramesRefused++
		return err
	}
	se.asking, se.rekeyedAt = false, e.now
	se.sentOrder = se.sentOrder[:0] // every frame of the old phase was acknowledged
	e.counters.SessionRekeys++
	e.retryDest(se.peer)
	return nil
}
