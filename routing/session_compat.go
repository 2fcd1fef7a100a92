package routing

import (
	"time"

	"meshd.dev/meshd/protocol"
)

// Peers that never answer our inits. A node of an older version refuses an
// init in a mode it does not know (this version starts sessions in modes 3
// and 4, key schedule 3; protocol.md section 10), and a node built before
// sessions drops every session frame: either way our handshakes to it lapse
// without an accept, and without a fallback its messages would stay in
// custody for ever, handshake after handshake. After handshakeFallbackIP
// (on a radio first hop: handshakeFallbackLoRa, where a lossy path can
// lose a handshake on its own) lapsed handshakes in a row to one peer, its
// session messages go on as sealed envelopes of type session message
// (session_fallback.go: the same number, so the recipient delivers each
// once whichever form arrives), and new messages to it are sealed
// envelopes, for noSessionsFor; then sessions are tried again (the peer
// may have been upgraded). An accept from the peer clears the count, and so
// does a long time without a lapse (lapsesAge).

const (
	handshakeFallbackIP   = 2
	handshakeFallbackLoRa = 4
	noSessionsFor         = time.Hour
)

// lapses counts a peer's lapsed handshakes in a row: n of them, the last
// at last. A lapse more than lapsesAge after the one before starts a new
// row (rare losses hours apart are not a peer that never answers).
type lapses struct {
	n    int
	last time.Time
}

// lapsesAge is how far apart two lapses may be and still count in a row:
// twice the longest custody retry interval (each retry of a message in
// custody starts a handshake), at least noSessionsFor.
func (e *Engine) lapsesAge() time.Duration {
	return max(noSessionsFor, 2*e.cfg.RetryMax)
}

// handshakeLapsed counts a handshake of ours to peer that got no accept by
// its deadline; link is where its init left.
func (e *Engine) handshakeLapsed(peer Address, link LinkID) {
	e.counters.SessionHandshakesLapsed++
	if len(e.sessLapsed) >= e.cfg.MaxSessions {
		clear(e.sessLapsed) // bounded: a count lost only delays a fallback
	}
	if e.sessLapsed == nil {
		e.sessLapsed = make(map[Address]lapses)
	}
	row := e.sessLapsed[peer]
	if e.now.Sub(row.last) > e.lapsesAge() {
		row.n = 0
	}
	row.n++
	row.last = e.now
	e.sessLapsed[peer] = row
	limit := handshakeFallbackIP
	if l := e.links[link]; l != nil && l.info.Kind == LinkLoRa {
		limit = handshakeFallbackLoRa
	}
	if row.n < limit {
		return
	}
	delete(e.sessLapsed, peer)
	if e.speaksSchedule3(peer) {
		// Not an older version: an older relay on the path (it passes
		// modes 1 and 2), loss, or someone who drops our handshakes to
		// force envelopes, which lack the sessions' forward secrecy.
		if e.schedule2 == nil {
			e.schedule2 = make(map[Address]time.Time)
		}
		e.schedule2[peer] = e.now.Add(noSessionsFor)
		return
	}
	if e.noSessions == nil {
		e.noSessions = make(map[Address]time.Time)
	}
	e.noSessions[peer] = e.now.Add(noSessionsFor)
	e.counters.SessionPeersFallback++
}

// sessionsOff reports whether messages to peer go as envelopes because its
// handshakes lapsed.
func (e *Engine) sessionsOff(peer Address) bool {
	until, ok := e.noSessions[peer]
	return ok && e.now.Before(until)
}

// sweepNoSessions forgets fallbacks that ran out.
func (e *Engine) sweepNoSessions() {
	for peer, until := range e.noSessions {
		if !e.now.Before(until) {
			delete(e.noSessions, peer)
		}
	}
	for peer, until := range e.schedule2 {
		if !e.now.Before(until) {
			delete(e.schedule2, peer)
		}
	}
}

// ownCapabilities is what the node announces: the configured capabilities
// and CapSessions3, since it answers inits in modes 3 and 4; not with
// NoSessions, which sends no session frames of its own (it still answers
// inits, but peers may treat it as an older version and send it
// envelopes, as before CapSessions3).
func (e *Engine) ownCapabilities() protocol.Capabilities {
	if e.cfg.NoSessions {
		return e.cfg.Capabilities
	}
	return e.cfg.Capabilities | protocol.CapSessions3
}

// speaksSchedule3 reports whether peer's latest announce says it answers
// inits in modes 3 and 4. The announce is signed, so a relay cannot strip
// the capability.
func (e *Engine) speaksSchedule3(peer Address) bool {
	d := e.table.get(peer)
	return d != nil && d.ann != nil && d.ann.Capabilities&protocol.CapSessions3 != 0
}

// sessionMode is the mode of a new session to peer whose init leaves on
// l: X-Wing on IP, X25519 on a radio, with key schedule 2 (modes 2 and 1)
// for a peer in schedule2.
func (e *Engine) sessionMode(peer Address, l *link) protocol.SessionMode {
	until, old := e.schedule2[peer]
	old = old && e.now.Before(until)
	switch {
	case l.info.Kind == LinkLoRa && old:
		return protocol.SessionModeX25519V2
	case l.info.Kind == LinkLoRa:
		return protocol.SessionModeX25519
	case old:
		return protocol.SessionModeXWingV2
	}
	return protocol.SessionModeXWing
}

// sessionOffToEnvelope sends a session record to a peer whose handshakes
// lapsed on as an envelope; it reports whether it did (it keeps the
// session form if sealing fails, and is tried again at the next attempt).
func (e *Engine) sessionOffToEnvelope(r *custodyRec, d *destEntry) bool {
	if !e.sessionsOff(r.dest) || e.sessionToEnvelope(r, d) != nil {
		return false
	}
	r.attempts = 0
	return true
}
