package routing

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"meshd.dev/meshd/protocol"
)

// Unicast over route sessions (docs/routing.md section 12). Unless
// Config.NoSessions is set, a node's own messages (not sealed sender) travel in
// session data frames once the destination's key and a route are known:
// one handshake per destination, then 32 bytes of overhead per message.
// The origin keeps each message in custody, keyed on its session message
// key, until a cumulative acknowledgement of the session covers the frame
// that carried it; the recipient deduplicates on the same key, so a
// message re-sent over a new session is not delivered twice.

// sessEnd is this node's end of a route session.
type sessEnd struct {
	s       *protocol.Session
	pending *protocol.PendingSession // initiator, until the accept
	peer    Address
	link    LinkID // where frames for the peer leave
	hasLink bool
	via     Address
	started time.Time
	used    time.Time
	// deadline: a handshake without accept by then is given up.
	deadline time.Time
	// Initiator: frames sent and not yet acknowledged (counter -> custody
	// key), their counters in the order sent (acknowledged ones leave it
	// lazily: session_window.go), and retransmissions since the last
	// acknowledgement.
	inflight  map[uint32]envKey
	sentOrder []uint32
	fails     int
	// Responder: frames received (ack), whether an acknowledgement is due
	// and the lowest counter received since the last one went out
	// (ackLow, with ackNew: any); and the accept, sent again if the init
	// comes again (memory only).
	ack    protocol.SessionAck
	ackDue bool
	ackNew bool
	ackLow uint32
	accept []byte
	// rekeyedAt: when the last in-session rekey completed (zero: none);
	// asking: the initiator waits for a rekey answer (session_rekey.go).
	rekeyedAt time.Time
	asking    bool
	askedAt   time.Time
	// dirty: the state changed since the last Ready (persistSession).
	dirty bool
	// restored: a responder's state loaded at a restart, which may be an
	// older backup's: it opens frames but never seals one (endRestored).
	restored bool
}

// Session bounds and timers.
const (
	sessionHandshakeTimeout = 2 * time.Minute
	sessionFailLimit        = 3
)

func sessionKey(l protocol.PathLabel) string { return "s/" + hex.EncodeToString(l[:]) }

const numberKey = "msgnum"

// nextNumber issues a message number: strictly increasing, never below the
// clock in milliseconds, so numbers stay unique across restarts (and after
// a restore from backup, as long as the clock moved on). Numbers can run
// ahead of the clock (more than one message per millisecond), so the
// engine persists a reservation: numbers up to msgnum may have been issued,
// and a restart continues above it. One write per numberReserve numbers,
// not one per message.
func (e *Engine) nextNumber() uint64 {
	n := max(e.lastNumber+1, uint64(e.now.UnixMilli()))
	e.lastNumber = n
	if n > e.reservedNumber {
		e.reservedNumber = n + numberReserve
		e.persist(numberKey, binary.BigEndian.AppendUint64(nil, e.reservedNumber))
	}
	return n
}

// numberReserve is how many numbers one msgnum write covers.
const numberReserve = 1 << 16

// sessionMessage turns an own message into a session record.
func (e *Engine) sessionMessage(r *custodyRec, body []byte) {
	n := e.nextNumber()
	r.session = true
	r.key = protocol.SessionMessageKey(e.self, n)
	r.id = MessageID(r.key)
	r.data, _ = protocol.AppendSessionMessage(nil, n, body) // send checked its size (fitsSession)
}

// attemptSession moves a session record forward: set up a session if there
// is none, send (or resend the same frame) over it otherwise.
func (e *Engine) attemptSession(r *custodyRec) SendStatus {
	d := e.table.get(r.dest)
	if d == nil || !d.known || d.kemKey == nil {
		if d == nil {
			d = e.table.entry(r.dest, MetricInfinite)
		}
		if d != nil {
			e.pathRequest(d, true)
		}
		e.backoff(r)
		return StatusAwaitingKey
	}
	c, ok := d.route()
	l := e.links[c.link]
	if !ok || l == nil {
		e.pathRequest(d, false)
		r.attempts++
		r.noRoute++
		if r.noRoute > e.cfg.HandOffAfter && e.sessionToEnvelope(r, d) == nil {
			e.handOff(r) // session_fallback.go
		}
		e.backoff(r)
		return StatusCustody
	}
	if e.sessionOffToEnvelope(r, d) { // session_compat.go
		return e.attempt(r)
	}
	se := e.sessionTo(d, l, c.via, c.hops)
	if se == nil && e.sessionOffToEnvelope(r, d) {
		return e.attempt(r)
	}
	r.attempts++
	r.noRoute = 0
	if se == nil || se.s == nil {
		e.backoff(r)
		return StatusRouted
	}
	e.sendOnSession(se, r)
	e.backoff(r)
	return StatusRouted
}

// sendOnSession sends a record's frame: the same frame again while its
// session lives (it reveals nothing new), a new frame otherwise.
func (e *Engine) sendOnSession(se *sessEnd, r *custodyRec) {
	if r.frame != nil && r.label == se.s.Label() {
		if se.fails++; se.fails > sessionFailLimit {
			e.dropSession(se.s.Label(), "no acknowledgement")
			return
		}
	} else {
		if e.holdForRekey(se) {
			return
		}
		f, err := se.s.Seal(false, r.data)
		if err != nil {
			e.dropSession(se.s.Label(), "counter exhausted")
			return
		}
		r.frame, r.label, r.counter = f, se.s.Label(), binary.BigEndian.Uint32(f[6:10])
		se.inflight[r.counter] = r.key
		se.sentOrder = append(se.sentOrder, r.counter)
		e.persistSession(se)
	}
	se.used = e.now
	if l := e.links[se.link]; se.hasLink && l != nil {
		e.sendData(l, se.via, r.frame, PriData, owner{})
	}
	e.counters.SessionFramesOut++
}

// sessionTo returns the session to d's destination, starting one if there
// is none (or the last one failed). The result may still be pending.
func (e *Engine) sessionTo(d *destEntry, l *link, via Address, hops uint8) *sessEnd {
	if label, ok := e.byDest[d.dest]; ok {
		se := e.sessions[label]
		if !se.hasLink {
			// Restored after a restart: the current route.
			se.link, se.hasLink, se.via = l.info.ID, true, via
		}
		moved := se.link != l.info.ID || se.via != via
		if !moved && se.s != nil && se.s.Sent() < 2*protocol.SessionRekeyFrames && e.now.Sub(se.phaseStart()) < 2*protocol.SessionRekeyAge {
			return se
		}
		if !moved && se.s == nil && e.now.Before(se.deadline) {
			return se
		}
		// A handshake without answer, a session past its bounds, or one
		// whose path no longer starts at the route's next hop (its relays
		// hold the old path) is replaced by a new one.
		if se.s == nil && !e.now.Before(se.deadline) {
			e.handshakeLapsed(se.peer, se.link) // session_compat.go
		}
		e.dropSession(label, "replaced")
		if e.sessionsOff(d.dest) {
			return nil
		}
	}
	if len(e.sessions) >= e.cfg.MaxSessions {
		e.counters.SessionsLimited++
		return nil
	}
	pub, err := publicOf(d)
	if err != nil {
		return nil
	}
	mode := e.sessionMode(d.dest, l) // session_compat.go
	p, in, err := protocol.StartSession(e.cfg.Rand, e.id, pub, mode, protocol.TimestampOf(e.now))
	if err != nil {
		e.counters.RandomFailures++
		return nil
	}
	if e.labelTaken(p.Label()) {
		return nil // one chance in 2^32: the next attempt draws again
	}
	se := &sessEnd{
		pending: p, peer: d.dest, link: l.info.ID, hasLink: true, via: via, started: e.now, used: e.now,
		deadline: e.now.Add(handshakeTimeout(l, hops)), inflight: map[uint32]envKey{},
	}
	e.sessions[p.Label()] = se
	e.byDest[d.dest] = p.Label()
	raw, _ := in.MarshalBinary()
	e.sendInit(l, via, raw, d.dest, owner{})
	e.counters.SessionInitsOut++
	return se
}

// handshakeTimeout is how long to wait for an accept: a fixed floor, plus
// four times the time the init and accept spend on the air over the path
// (estimated with the first link's bitrate): at SF12 a 1.3 KB init takes
// some 36 s per hop.
func handshakeTimeout(l *link, hops uint8) time.Duration {
	size := protocol.SessionInitSize(protocol.SessionModeX25519) + protocol.SessionAcceptSize(protocol.SessionModeX25519)
	perHop := time.Duration(int64(size) * 8 * int64(time.Second) / int64(max(l.info.Bitrate, 1)))
	if l.info.Kind != LinkLoRa {
		perHop = 0
	}
	return sessionHandshakeTimeout + 4*time.Duration(max(hops, 1))*perHop
}

// sessionInitMaxAge is how old an init may be when it arrives: generous,
// since an init can queue behind other frames on a slow radio path for
// many minutes, and a replayed init gains an attacker nothing (the
// responder's ephemeral key is fresh, so the replay opens a session nobody
// holds the keys of; it costs a decapsulation, within the rate limit).
const sessionInitMaxAge = time.Hour

func (e *Engine) labelTaken(l protocol.PathLabel) bool {
	_, s := e.sessions[l]
	_, r := e.relays[l]
	return s || r
}

// emitSession queues a session frame for the peer's side of the path. It
// carries no hop header: the label and receiver index tell the next node.
func (e *Engine) emitSession(se *sessEnd, frame []byte, pri Priority, from owner) {
	l := e.links[se.link]
	if !se.hasLink || l == nil {
		e.counters.QueueDrops++
		return
	}
	e.pushSession(l, se.via, frame, pri, from)
}

func (e *Engine) pushSession(l *link, to Address, frame []byte, pri Priority, from owner) {
	if !e.enqueue(l, qitem{frame: frame, to: to, pri: pri, owner: from}) {
		e.counters.QueueDrops++
	}
}

// persistSession marks a responder's session state for writing. An
// initiator's is never written: it drops its sessions at a restart
// (restoreSession), so its state on disk would serve nothing. The state
// is encoded once per Ready (flushSessionState), not once per frame: a
// batch of 64 frames opened and one acknowledgement sealed cost one
// encoding of up to 4.8 KB instead of 65. The write still lands in the
// same Ready as the frames sealed with the state, and Ready's records are
// durable before its transmissions go out.
func (e *Engine) persistSession(se *sessEnd) {
	if se.s == nil || se.s.Initiator() || se.dirty {
		return
	}
	se.dirty = true
	e.sessDirty = append(e.sessDirty, se.s.Label())
}

// flushSessionState writes the sessions persistSession marked, if they
// still exist (a dropped session's delete stands).
func (e *Engine) flushSessionState() {
	for _, label := range e.sessDirty {
		se := e.sessions[label]
		if se == nil || !se.dirty {
			continue
		}
		se.dirty = false
		raw, _ := se.s.MarshalBinary()
		e.persist(sessionKey(label), raw)
	}
	clear(e.sessDirty)
	e.sessDirty = e.sessDirty[:0]
}

// dropSession forgets a session. Its unacknowledged messages stay in
// custody and go over the next session with the same numbers.
func (e *Engine) dropSession(label protocol.PathLabel, why string) {
	se := e.sessions[label]
	if se == nil {
		return
	}
	_ = why
	delete(e.sessions, label)
	if e.byDest[se.peer] == label {
		delete(e.byDest, se.peer)
	}
	e.del(sessionKey(label))
	for _, k := range se.inflight {
		if r := e.custody.get(k); r != nil {
			r.frame = nil
		}
	}
	e.counters.SessionsDropped++
}

// handleSessionInit takes an init addressed to this node, or relays it.
func (e *Engine) handleSessionInit(l *link, frame []byte) error {
	if !e.sessionRate(l) {
		return nil
	}
	in, err := protocol.ParseSessionInit(frame)
	if err != nil {
		e.counters.FramesMalformed++
		return err
	}
	if in.Responder != e.self {
		return e.relayInit(l, in, frame)
	}
	e.counters.SessionInitsIn++
	if se := e.sessions[in.Label]; se != nil && se.accept != nil && se.link == l.info.ID {
		// Our accept or the hop ack was lost: the same init again.
		e.initArrived(l, frame)
		e.sendData(l, Address{}, se.accept, PriControl, owner{})
		return nil
	}
	if e.labelTaken(in.Label) {
		e.counters.SessionInitsRefused++
		return fmt.Errorf("session init: label %v taken: %w", in.Label, ErrBadInput)
	}
	if len(e.sessions) >= e.cfg.MaxSessions && !e.evictIdleSession() {
		e.counters.SessionsLimited++
		return fmt.Errorf("session init: %w", ErrLimit)
	}
	s, acc, err := protocol.AcceptSession(e.cfg.Rand, e.id, in, e.now, sessionInitMaxAge)
	if err != nil {
		e.counters.SessionInitsRefused++
		return err
	}
	raw, _ := acc.MarshalBinary()
	se := &sessEnd{s: s, peer: s.Remote().Address(), link: l.info.ID, hasLink: true, started: e.now, used: e.now, accept: raw}
	e.sessions[in.Label] = se
	e.persistSession(se)
	e.initArrived(l, frame)
	e.sendData(l, Address{}, raw, PriControl, owner{})
	e.counters.SessionsAccepted++
	return nil
}

// sendInit sends an init towards its responder. On a hop-ack link (a
// radio) the next hop acknowledges it like an envelope and it is sent
// again until it does: an init is 6 LoRa fragments, and one lost fragment
// would otherwise cost a handshake timeout over the whole path.
func (e *Engine) sendInit(l *link, via Address, frame []byte, dest Address, from owner) {
	if !e.transmitEnvelope(l, via, frame, dest, initKey(frame), from) {
		e.counters.QueueDrops++
	}
}

// initArrived acknowledges an init on a hop-ack link.
func (e *Engine) initArrived(l *link, frame []byte) {
	if l.info.HopAcks {
		e.sendHopAck(l, initKey(frame))
	}
}

// initKey names an init whatever its receiver index, for hop acks.
func initKey(frame []byte) envKey {
	h := sha256.New()
	h.Write([]byte("meshd/session-init-key/v2\x00"))
	h.Write(frame[:5])
	h.Write(frame[6:])
	var k envKey
	copy(k[:], h.Sum(nil))
	return k
}

// sessionRate charges a session init to its link's token bucket, before
// any decoding beyond the kind.
func (e *Engine) sessionRate(l *link) bool {
	if l.sessionRate.take(1, e.now, e.cfg.PathRequestRate, e.cfg.PathRequestBurst) {
		return true
	}
	e.counters.SessionInitsLimited++
	return false
}

// evictIdleSession makes room for a new session by dropping the least
// recently used one, if it has been idle for a handshake timeout.
func (e *Engine) evictIdleSession() bool {
	var oldest protocol.PathLabel
	var at time.Time
	for _, label := range e.sortedSessions() {
		if se := e.sessions[label]; at.IsZero() || se.used.Before(at) {
			oldest, at = label, se.used
		}
	}
	if at.IsZero() || e.now.Sub(at) < sessionHandshakeTimeout {
		return false
	}
	e.dropSession(oldest, "evicted")
	return true
}

func (e *Engine) sortedSessions() []protocol.PathLabel {
	out := make([]protocol.PathLabel, 0, len(e.sessions))
	for l := range e.sessions {
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b protocol.PathLabel) int { return bytes.Compare(a[:], b[:]) })
	return out
}

// handleSessionAccept completes a handshake of ours, or relays the accept.
func (e *Engine) handleSessionAccept(l *link, frame []byte) error {
	acc, err := protocol.ParseSessionAccept(frame)
	if err != nil {
		e.counters.FramesMalformed++
		return err
	}
	if h, err := protocol.ParseSessionHop(frame); err == nil {
		e.heardSession(l, frame, h)
	}
	se := e.sessions[acc.Label]
	if se == nil || se.pending == nil || acc.Index != 0 {
		return e.relayBack(l, frame, acc.Label, acc.Index)
	}
	s, err := se.pending.Complete(acc)
	if err != nil {
		e.counters.SessionFramesRefused++
		return err
	}
	se.s, se.pending, se.used = s, nil, e.now
	e.persistSession(se)
	delete(e.sessLapsed, se.peer)
	e.counters.SessionsEstablished++
	e.retryDest(se.peer)
	return nil
}

// handleSessionData opens a frame of one of our sessions, or relays it.
func (e *Engine) handleSessionData(l *link, frame []byte) error {
	h, err := protocol.ParseSessionHop(frame)
	if err != nil {
		e.counters.FramesMalformed++
		return err
	}
	e.heardSession(l, frame, h)
	se := e.sessions[h.Label]
	if se == nil || se.s == nil {
		return e.relayData(l, frame, h)
	}
	pt, control, err := se.s.Open(frame)
	if errors.Is(err, protocol.ErrNotForUs) {
		// On a radio: a frame for a relay next to us.
		e.counters.FramesNotForUs++
		return nil
	}
	if err != nil {
		e.counters.SessionFramesRefused++
		if errors.Is(err, protocol.ErrReplay) && !se.s.Initiator() {
			// Most likely the sender's retry of a frame whose
			// acknowledgement was lost: acknowledge again (one
			// cumulative ack per Ready however many copies came).
			// Like a duplicate envelope, it is counted, not an error:
			// a retry is the protocol working (TestCrashRestart).
			se.ackDue = se.ack.Next > 0
			return nil
		}
		return fmt.Errorf("%w: %w", ErrEndToEnd, err) // relays pass session frames on sealed
	}
	e.counters.SessionFramesIn++
	se.used = e.now
	if !se.s.Initiator() {
		se.link, se.hasLink, se.via = l.info.ID, true, Address{}
	}
	e.persistSession(se)
	if control {
		if err := e.sessionControl(se, pt, h.KeyPhase); err != nil {
			return fmt.Errorf("%w: %w", ErrEndToEnd, err)
		}
		return nil
	}
	e.sessionDeliver(se, binary.BigEndian.Uint32(frame[6:10]), h.KeyPhase, pt)
	return nil
}

// sessionDeliver delivers an application message once, and acknowledges
// its frame either way (the first acknowledgement may have been lost),
// unless it came in the previous key phase: acknowledgements name counters
// without their phase, so naming it in the current phase's would clear
// the current phase's frame of the same counter. The sender asks for a
// rekey only when it no longer waits for any frame of the old phase
// (session_rekey.go), so such a frame is one it gave up (its message
// cancelled, expired or sent on as an envelope) or a copy.
//
// pt is Session.Open's, a new slice: the delivery keeps its body without
// a copy.
func (e *Engine) sessionDeliver(se *sessEnd, counter uint32, phase uint8, pt []byte) {
	n, body, err := protocol.ParseSessionMessage(pt)
	if err != nil {
		e.counters.SessionFramesRefused++
		return
	}
	if phase == se.s.Phase() {
		e.ackBefore(se, counter)
	}
	from := se.s.Remote() // se.peer is its address, computed once
	key := protocol.SessionMessageKey(se.peer, n)
	if e.delivered.has(key) {
		e.counters.Duplicates++
		return
	}
	created := protocol.TimestampOf(time.UnixMilli(int64(n)))
	expires := created + protocol.Timestamp(protocol.MaxLifetime/time.Second)
	rk := e.markDelivered(key, MessageID(key), deliveredEntry{expires: expires})
	e.rd.Deliveries = append(e.rd.Deliveries, Delivery{
		ID: MessageID(key), Key: key, Record: rk, Type: protocol.TypeMessage, From: se.peer, Sender: from,
		Body: body, Created: created, Expires: expires, Hops: sessionHops(se.s),
	})
	e.counters.Delivered++
}

// sessionHops is the number of relays between the ends, the hop count an
// envelope would arrive with: the responder's index is the number of links
// the init crossed.
func sessionHops(s *protocol.Session) uint8 {
	if s.Index() == 0 {
		return 0
	}
	return s.Index() - 1
}

// sessionControl handles an acknowledgement or a rekey request or answer
// (session_rekey.go).
//
// An acknowledgement counts only in the current key phase: it names
// counters without their phase, and the counters start again at 0 in a
// new phase, so one of the previous phase (held back by a neighbour, or a
// late copy) would name frames of the new phase that never arrived. The
// initiator rekeys only when nothing waits for an acknowledgement, so the
// previous phase's acknowledgements have nothing left to clear.
func (e *Engine) sessionControl(se *sessEnd, pt []byte, phase uint8) error {
	switch typ, _ := protocol.SessionControlType(pt); typ {
	case protocol.SessionCtlRekeyAsk:
		return e.answerRekey(se, pt)
	case protocol.SessionCtlRekeyAnswer:
		return e.finishRekey(se, pt)
	}
	a, err := protocol.ParseSessionAck(pt)
	if err != nil || !se.s.Initiator() {
		e.counters.SessionFramesRefused++
		return err
	}
	if phase != se.s.Phase() || uint64(a.Next) > se.s.Sent() {
		// Another phase's, or naming a counter never sealed in this
		// one: only a hostile recipient sends that, and its window
		// would make us send every message in flight again
		// (retireBelow, TestSessionAckBeyondSent).
		e.counters.SessionFramesRefused++
		return nil
	}
	e.counters.SessionAcksIn++
	// An ack covers at most the 65 counters below a.Next: walk them in
	// ascending order (the order of the events) instead of sorting every
	// counter in flight.
	if a.Next == 0 {
		return nil
	}
	lo := uint32(0)
	if a.Next > 65 {
		lo = a.Next - 65
	}
	for c := lo; c < a.Next; c++ {
		key, ok := se.inflight[c]
		if !ok || !a.Covers(c) {
			continue
		}
		delete(se.inflight, c)
		se.fails = 0
		if r := e.custody.get(key); r != nil && r.session {
			e.dropCustody(r)
			e.counters.CustodyCleared++
			e.rd.Events = append(e.rd.Events, Event{Kind: EventDelivered, Ref: r.ref, ID: r.id, Dest: r.dest})
		}
	}
	e.retireBelow(se, a.Next-min(a.Next, protocol.LiteReplayWindow)) // session_window.go
	e.rekeyWhenDrained(se)
	return nil
}

// flushSessionAcks sends one cumulative acknowledgement per session that
// received frames since its last one: many messages, one frame. It runs
// when Ready is collected, after the deliveries it confirms were recorded
// in the same batch.
func (e *Engine) flushSessionAcks() {
	for _, label := range e.sortedSessions() {
		se := e.sessions[label]
		if !se.ackDue || se.s == nil {
			continue
		}
		e.sendAck(label, se)
	}
}

// sendAck sends se's cumulative acknowledgement now.
func (e *Engine) sendAck(label protocol.PathLabel, se *sessEnd) {
	se.ackDue, se.ackNew = false, false
	if se.restored {
		e.endRestored(label, se)
		return
	}
	pt, _ := se.ack.AppendBinary(nil)
	f, err := se.s.Seal(true, pt)
	if err != nil {
		e.dropSession(label, "counter exhausted")
		return
	}
	e.persistSession(se)
	e.emitSession(se, f, PriControl, owner{})
	e.counters.SessionAcksOut++
}

// handleSessionReset drops a session of ours the other end lost, or
// passes the reset on towards the initiator.
func (e *Engine) handleSessionReset(l *link, frame []byte) error {
	h, err := protocol.ParseSessionReset(frame)
	if err != nil {
		e.counters.FramesMalformed++
		return err
	}
	se := e.sessions[h.Label]
	if se != nil && (se.pending != nil || se.s != nil && se.s.Initiator()) && h.TowardsInitiator && h.Index == 0 && se.hasLink && se.link == l.info.ID {
		// A hint, not a proof: only the neighbour our frames leave
		// through can send it with index 0, and that neighbour could
		// as well drop our frames. It drops the session, and we start
		// a new one at once if we have a route (its accept sends the
		// pending messages, handleSessionAccept); without a route a
		// new one comes with the route (routeChanged).
		e.counters.SessionResetsIn++
		e.dropSession(h.Label, "reset")
		e.restartSession(se.peer)
		return nil
	}
	return e.relayBack(l, frame, h.Label, h.Index)
}

// resetRetryGap bounds the immediate retries a reset triggers.
const resetRetryGap = 2 * time.Second

// resetOnce reports whether a reset for label may go out on link now,
// and notes it: at most one per label and link per resetRetryGap. A batch
// of frames for a session this node lost (a burst to a responder restored
// at a restart) would otherwise send a reset per frame, airtime on a radio
// for nothing; a lost reset is sent again for a frame after the gap. Per
// link, so a neighbour sending copies of a path's frames on its own link
// cannot use up the reset the path's own node needs on another
// (TestAttackSessionRelayOrphanResetStarved). The table is bounded: when
// full it is cleared, which only lets a reset through early.
func (e *Engine) resetOnce(label protocol.PathLabel, link LinkID) bool {
	k := resetKey{label: label, link: link}
	if last, ok := e.resetSent[k]; ok && e.now.Sub(last) < resetRetryGap {
		return false
	}
	if e.resetSent == nil || len(e.resetSent) >= maxResetSent {
		e.resetSent = make(map[resetKey]time.Time)
	}
	e.resetSent[k] = e.now
	return true
}

// resetKey is what resetOnce limits: a label's resets on one link.
type resetKey struct {
	label protocol.PathLabel
	link  LinkID
}

// maxResetSent bounds resetOnce's table.
const maxResetSent = 1024

// restartSession starts a new session to peer after a reset, if a route
// is known and there are messages waiting, at most once per resetRetryGap
// per peer: a neighbour answering every init with a reset cannot make us
// start sessions in a loop. It does not count as a retry of the messages,
// so their backoff (and a hand-off to a mailbox) keeps its schedule.
func (e *Engine) restartSession(peer Address) {
	if last, ok := e.resetRetry[peer]; ok && e.now.Sub(last) < resetRetryGap {
		return
	}
	d := e.table.get(peer)
	if d == nil || !d.known || d.kemKey == nil || len(e.custody.forDest(peer)) == 0 {
		return
	}
	c, ok := d.route()
	l := e.links[c.link]
	if !ok || l == nil {
		return
	}
	if e.resetRetry == nil {
		e.resetRetry = make(map[Address]time.Time)
	}
	e.resetRetry[peer] = e.now
	e.sessionTo(d, l, c.via, c.hops)
}

// idleFor is how long a session or relay entry whose frames leave on link
// id may stay unused.
func (e *Engine) idleFor(id LinkID) time.Duration {
	if l := e.links[id]; l != nil && l.info.Kind == LinkLoRa {
		return e.cfg.SessionIdleLoRa
	}
	return e.cfg.SessionIdle
}

// sweepSessions drops idle sessions and stale relay entries.
func (e *Engine) sweepSessions() {
	for _, label := range e.sortedSessions() {
		se := e.sessions[label]
		lapsed := se.s == nil && e.now.After(se.deadline)
		if e.now.Sub(se.used) > e.idleFor(se.link) || lapsed {
			if lapsed {
				e.handshakeLapsed(se.peer, se.link)
			}
			e.dropSession(label, "idle")
		}
	}
	e.sweepNoSessions()
	e.sweepRelays()
	for peer, t := range e.resetRetry {
		if e.now.Sub(t) >= resetRetryGap {
			delete(e.resetRetry, peer)
		}
	}
	for k, t := range e.resetSent {
		if e.now.Sub(t) >= resetRetryGap {
			delete(e.resetSent, k)
		}
	}
}

// restoreSession loads a persisted session: a responder's, which answers
// over the link of the next frame it gets. An initiator's session is
// dropped instead: its sending chain may lag (a store restored from a
// backup) and would seal new messages under counters the peer has
// acknowledged already, so a stale acknowledgement could clear a message
// never delivered. Its messages go over a new session, with the same
// numbers. A responder's session is restored to open the frames in
// flight (its window refuses replays), but its state may lag as well, so
// it never seals under it: endRestored.
func (e *Engine) restoreSession(rec Record) error {
	s, err := protocol.ParseSession(rec.Value)
	if err != nil || sessionKey(s.Label()) != rec.Key {
		return fmt.Errorf("session record %q: %w", rec.Key, ErrCorruptRecord)
	}
	if s.Initiator() {
		e.del(rec.Key)
		return nil
	}
	e.sessions[s.Label()] = &sessEnd{s: s, peer: s.Remote().Address(), started: e.now, used: e.now, inflight: map[uint32]envKey{}, restored: true}
	return nil
}

// endRestored ends a restored responder session where it would seal its
// first frame: with a reset towards the initiator, which sets up a new
// session and sends its unacknowledged messages again (the delivered set
// stops duplicates). A restart cannot tell a store that was current at the
// crash from an older backup, whose sending chain lags: sealing under it
// would use a message key a second time, and under key schedule 3 two
// frames under one key and the zero nonce give away its Poly1305 key, so
// a relay that kept the first could forge an acknowledgement
// (TestAttackSessionResponderBackupKeyReuse).
func (e *Engine) endRestored(label protocol.PathLabel, se *sessEnd) {
	if se.s.Index() > 0 && e.resetOnce(label, se.link) {
		e.emitSession(se, protocol.AppendSessionReset(nil, label, true, se.s.Index()-1), PriControl, owner{})
		e.counters.SessionResetsOut++
	}
	e.dropSession(label, "restored")
}
