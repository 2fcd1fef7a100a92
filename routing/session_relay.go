package routing

import (
	"bytes"
	"fmt"
	"slices"
	"time"

	"meshd.dev/meshd/protocol"
)

// relayEntry is a relay's record of one session path through it: frames
// towards the responder come on up with receiver index index and leave on
// down with index+1; frames towards the initiator the other way round.
type relayEntry struct {
	up, down     LinkID
	downVia      Address
	index        uint8
	confirmed    bool // the accept passed: data frames are forwarded
	expires      time.Time
	recent       [2][relayRecent]recentFrame // per direction: frames passed on
	recentNext   [2]int
	neighbourOwn owner
}

type recentFrame struct {
	id   uint64 // frameID
	used bool
	sent int // times passed on
}

// relayRecent is how many recent frames per direction a relay remembers to
// drop copies (a neighbour replaying frames with rewritten indices).
const relayRecent = 16

// relayInit records a half-open entry for an init passing through and
// sends it on towards its responder.
func (e *Engine) relayInit(l *link, in *protocol.SessionInit, frame []byte) error {
	d := e.table.get(in.Responder)
	c, ok := candidate{}, false
	if d != nil {
		c, ok = d.route()
	}
	out := e.links[c.link]
	if ent := e.relays[in.Label]; ent != nil && ent.up == l.info.ID && ent.index == in.Index {
		// The same init again: our hop ack was lost. Our own forward
		// waits for its ack downstream.
		e.initArrived(l, frame)
		return nil
	}
	switch {
	case in.Index >= protocol.MaxSessionHops:
		e.counters.HopLimitDrops++
		return fmt.Errorf("session init: %w", ErrBadInput)
	case !ok || out == nil || out.info.ID == l.info.ID && !l.info.Shared:
		e.counters.SessionRelayRefused++
		e.refuseInit(l, in)
		return nil
	case e.labelTaken(in.Label):
		e.counters.SessionRelayRefused++
		return nil
	case len(e.relays) >= e.cfg.MaxSessionRelays || e.halfOpen >= e.cfg.MaxSessionRelays/64,
		!e.relayShareLeft(ownerOf(l)):
		e.counters.SessionsLimited++
		return nil
	}
	e.relays[in.Label] = &relayEntry{
		up: l.info.ID, down: out.info.ID, downVia: c.via, index: in.Index,
		expires: e.now.Add(handshakeTimeout(out, c.hops+in.Index)), neighbourOwn: ownerOf(l),
	}
	e.halfOpen++
	e.relayCount(ownerOf(l), 1, 1)
	e.initArrived(l, frame)
	fwd := bytes.Clone(frame)
	_ = protocol.SetSessionIndex(fwd, in.Index+1)
	e.sendInit(out, c.via, fwd, in.Responder, ownerOf(l))
	e.counters.SessionFramesRelayed++
	return nil
}

// relayBack passes an accept or a reset towards the initiator; an accept
// confirms the entry.
func (e *Engine) relayBack(l *link, frame []byte, label protocol.PathLabel, index uint8) error {
	ent := e.relays[label]
	if ent == nil || ent.down != l.info.ID || index != ent.index {
		e.counters.FramesNotForUs++
		return nil
	}
	up := e.links[ent.up]
	if up == nil {
		return nil
	}
	if frame[0] == byte(protocol.KindSessionAccept) && !ent.confirmed {
		ent.confirmed = true
		e.halfOpen--
		e.relayCount(ent.neighbourOwn, 0, -1)
		ent.expires = e.now.Add(e.idleFor(ent.up))
	}
	fwd := bytes.Clone(frame)
	_ = protocol.SetSessionIndex(fwd, index-1)
	e.sendData(up, Address{}, fwd, PriControl, ent.neighbourOwn)
	e.counters.SessionFramesRelayed++
	if frame[0] == byte(protocol.KindSessionReset) {
		e.dropRelay(label)
	}
	return nil
}

// relayData forwards a data frame along a confirmed path, once.
func (e *Engine) relayData(l *link, frame []byte, h protocol.SessionHop) error {
	ent := e.relays[h.Label]
	if ent == nil {
		if !l.info.Shared {
			// A point-to-point neighbour sent us a frame of a session
			// we do not know: we lost it. On a radio we may just be
			// overhearing someone else's path.
			e.counters.SessionUnknown++
			back := h.Index - 1 // to the node before us on the path
			if h.TowardsInitiator {
				back = h.Index + 1
			}
			if h.Index > 0 && h.Index < protocol.MaxSessionHops && e.resetOnce(h.Label, l.info.ID) {
				e.pushSession(l, Address{}, protocol.AppendSessionReset(nil, h.Label, !h.TowardsInitiator, back), PriControl, owner{})
			}
		}
		return nil
	}
	dir, in, out, next := 0, ent.up, ent.down, ent.index+1
	if h.TowardsInitiator {
		dir, in, out, next = 1, ent.down, ent.up, ent.index-1
	}
	if !ent.confirmed || l.info.ID != in || h.Index != ent.index {
		e.counters.FramesNotForUs++
		if dir == 0 && ent.confirmed && h.Index == ent.index && e.links[in] == nil {
			e.relayOrphaned(l, h.Label, ent)
		}
		return nil
	}
	ol := e.links[out]
	if ol == nil {
		// The path towards the responder is gone: tell the initiator
		// now rather than let its frames vanish until its end-to-end
		// retry (relaysLinkDown does so already when the link dies).
		if dir == 0 {
			e.resetTowardsInitiator(h.Label, ent)
			e.dropRelay(h.Label)
		}
		return nil
	}
	resends := 0
	if l.info.Shared {
		resends = e.cfg.HopAckRetries
	}
	if !ent.remember(dir, frame, resends) {
		// A copy: passed on again only a bounded number of times (the
		// sender did not hear our first forward), so a neighbour
		// replaying frames cannot make the path carry them more.
		e.counters.Duplicates++
		return nil
	}
	ent.expires = e.now.Add(e.idleFor(ent.up))
	fwd := bytes.Clone(frame)
	_ = protocol.SetSessionIndex(fwd, next)
	to := Address{}
	if dir == 0 {
		to = ent.downVia
	}
	if k := (passiveKey{label: h.Label, back: h.TowardsInitiator, id: frameID(frame)}); e.passive[k] != nil {
		// Still waiting to hear our own forward: that wait resends it.
		return nil
	}
	e.sendData(ol, to, fwd, PriData, ent.neighbourOwn)
	e.counters.SessionFramesRelayed++
	return nil
}

// remember notes a frame passed on in direction dir and reports whether
// to pass it on (again): a copy of a recent frame goes at most resends more
// times.
func (ent *relayEntry) remember(dir int, frame []byte, resends int) bool {
	id := frameID(frame)
	for i, r := range ent.recent[dir] {
		if r.id == id && r.used {
			if r.sent > resends {
				return false
			}
			ent.recent[dir][i].sent++
			return true
		}
	}
	ent.recent[dir][ent.recentNext[dir]] = recentFrame{id: id, used: true, sent: 1}
	ent.recentNext[dir] = (ent.recentNext[dir] + 1) % relayRecent
	return true
}

// refuseInit answers an init we cannot pass on (no route to its responder)
// with a reset towards the initiator over a point-to-point link, so the
// initiator gives up the handshake at once instead of waiting for its
// timeout. On a shared link the init may not have been meant for us.
func (e *Engine) refuseInit(l *link, in *protocol.SessionInit) {
	if l.info.Shared || in.Index == 0 || in.Index >= protocol.MaxSessionHops {
		return
	}
	e.pushSession(l, Address{}, protocol.AppendSessionReset(nil, in.Label, true, in.Index-1), PriControl, owner{})
	e.counters.SessionResetsOut++
}

// resetTowardsInitiator tells the node before us on ent's path that the
// path broke here (docs/routing.md section 12).
func (e *Engine) resetTowardsInitiator(label protocol.PathLabel, ent *relayEntry) {
	up := e.links[ent.up]
	if up == nil || ent.index == 0 {
		return
	}
	e.pushSession(up, Address{}, protocol.AppendSessionReset(nil, label, true, ent.index-1), PriControl, ent.neighbourOwn)
	e.counters.SessionResetsOut++
}

// relayOrphaned answers a frame of ent's path towards the responder that
// came on link l while the entry's link towards the initiator is gone (our
// radio reopened under a new link id, say): the path cannot carry it, and
// without an answer the initiator's frames would vanish here until its
// unanswered retries made it give the session up. A reset back on l, at the index of the node before us,
// makes the initiator start a new session at once (handleSessionReset).
// The entry stays until it idles out, so a lost reset is sent again for a
// later frame; resetOnce allows one per resetRetryGap and link. It only answers the
// sender's link, at most one frame, smaller than the one it answers, per
// frame and gap (no amplifier, no reflector), and gives no
// one more than forging the reset itself would: on a radio anyone can, on
// a point-to-point link only the sender hears it. The frame is not
// forwarded, and l never takes the place of the entry's link.
func (e *Engine) relayOrphaned(l *link, label protocol.PathLabel, ent *relayEntry) {
	if ent.index == 0 || !e.resetOnce(label, l.info.ID) {
		return
	}
	e.pushSession(l, Address{}, protocol.AppendSessionReset(nil, label, true, ent.index-1), PriControl, ownerOf(l))
	e.counters.SessionResetsOut++
}

// relaysLinkDown drops every relay entry whose path towards the responder
// left through link id, and tells each initiator with a reset, so its
// pending messages go over a new path at once rather than vanish here until
// its end-to-end retry. One reset per entry, so at most MaxSessionRelays.
// Entries whose link towards the initiator died stay until they idle out:
// that link may come back under the same id, and the initiator's own
// session still holds the path (sessionTo replaces it if its route moved).
// If the initiator's frames come on another link instead (the daemon gives
// a reopened modem a new id), relayOrphaned answers them with a reset. So
// does an entry whose links both ways were id (a radio relaying back onto
// itself): no reset can go back on id, so it stays too.
func (e *Engine) relaysLinkDown(id LinkID) {
	labels := make([]protocol.PathLabel, 0)
	for label, ent := range e.relays {
		if ent.down == id && ent.up != id {
			labels = append(labels, label)
		}
	}
	slices.SortFunc(labels, func(a, b protocol.PathLabel) int { return bytes.Compare(a[:], b[:]) })
	for _, label := range labels {
		e.resetTowardsInitiator(label, e.relays[label])
		e.dropRelay(label)
	}
}

func (e *Engine) dropRelay(label protocol.PathLabel) {
	if ent := e.relays[label]; ent != nil {
		half := 0
		if !ent.confirmed {
			e.halfOpen--
			half = -1
		}
		e.relayCount(ent.neighbourOwn, -1, half)
		delete(e.relays, label)
	}
}

// Per-neighbour shares of the relay table. Without them one neighbour
// could fill the table (and the half-open slots) with paths of its own
// (inits from fresh identities to any node that answers), and the relay
// would refuse every other pair's session; their messages have a route,
// so they would wait in custody, never handed to a mailbox
// (TestAttackSessionRelayTableSquat). No neighbour holds more than a
// quarter of either budget.
const relayShareDiv = 4

// relayCount is one neighbour's entries and half-open entries.
type relayCount struct{ entries, halfOpen int }

// relayShareLeft says whether the neighbour o may open one more path.
func (e *Engine) relayShareLeft(o owner) bool {
	c := e.relayBy[o]
	return c.entries < max(e.cfg.MaxSessionRelays/relayShareDiv, 1) &&
		c.halfOpen < max(e.cfg.MaxSessionRelays/64/relayShareDiv, 1)
}

// relayCount adds to the neighbour o's counts.
func (e *Engine) relayCount(o owner, entries, halfOpen int) {
	c := e.relayBy[o]
	c.entries += entries
	c.halfOpen += halfOpen
	if c.entries <= 0 {
		delete(e.relayBy, o)
		return
	}
	e.relayBy[o] = c
}

func (e *Engine) sweepRelays() {
	labels := make([]protocol.PathLabel, 0, len(e.relays))
	for l, ent := range e.relays {
		if ent.expires.Before(e.now) {
			labels = append(labels, l)
		}
	}
	for _, l := range labels {
		e.dropRelay(l)
	}
}
