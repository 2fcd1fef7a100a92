package routing

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"slices"
	"time"

	"meshd.dev/meshd/protocol"
)

// Path requests are the one routing frame whose volume a neighbour
// chooses: each is small, valid and, with a fresh random ID, new. So they
// are treated as a resource an attacker must not be able to take:
//   - their own bounded dedup space (pathReqState.seen), so a flood of
//     random IDs cannot evict envelope duplicate suppression;
//   - duplicates are recognised by what the requester chose (pathReqKey),
//     not by the ID alone: a neighbour that hears a request first cannot
//     squat its ID with another request, and a copy with more hops left
//     than any taken before is taken again (at most once per hop of its
//     limit), so a copy raced ahead with no hops left cannot stop the
//     genuine one;
//   - a token bucket per link for requests received and another for
//     requests forwarded (Config.PathRequestRate and PathRequestBurst, on
//     the engine's clock): what one neighbour floods in is passed on at
//     the rate, not in full to every neighbour;
//   - a bound on the requests waiting for an answer (Config.MaxPathRequests);
//   - a bucket for the node's own requests and the daemon's lookups
//     (Config.LookupRate and LookupBurst), on top of the once a
//     PathRequestInterval per destination, so junk for random destinations
//     cannot turn into a lookup each.

// pathReqSeenSize bounds the path requests remembered for duplicate
// suppression: at the default rates and 30 s answers, several times what
// can arrive in that time.
const pathReqSeenSize = 4096

// pathReqTTL is how long a forwarded request waits for its answer.
const pathReqTTL = 30 * time.Second

// pathReqState is the engine's path request bookkeeping but for the
// requests waiting for an answer (Engine.pathReqs).
type pathReqState struct {
	seen idSet
	// lookups limits the node's own requests and lookups.
	lookups tokenBucket
}

// pathReqKey is the dedup key of pr: a digest of the fields its requester
// chose and nobody on the way may change (ID, target, hop limit, the key
// and sequence number requirements), leaving out the hop count and the
// forwarder. The ID alone let a neighbour that hears a request first
// send others another request under its ID, which they took and then
// dropped the genuine one as a duplicate. A digest of 64 bits of SHA-256:
// a different request with the same key is a second preimage, out of
// reach in the seconds a request lives.
func pathReqKey(pr protocol.PathRequest) uint64 {
	var b [1 + protocol.PathRequestIDSize + protocol.AddressSize + 1 + 1 + 4]byte
	b[0] = 1 // version of this layout
	n := 1 + copy(b[1:], pr.ID[:])
	n += copy(b[n:], pr.Target[:])
	b[n] = pr.HopLimit
	if pr.WantKEMKey {
		b[n+1] |= protocol.PathWantKEMKey
	}
	if pr.HasSeqno {
		b[n+1] |= protocol.PathSeqno
		binary.BigEndian.PutUint32(b[n+2:], pr.Seqno)
	}
	sum := sha256.Sum256(b[:])
	return binary.LittleEndian.Uint64(sum[:])
}

// take records a copy of the request with key k that has left hops left,
// come in on l, and reports whether it is the first copy (added) or has
// more hops left than every copy taken before (again): on a shared link
// at least two more (reforwardMargin). Every copy taken raises the hops
// left, so while the dedup space remembers a request a node takes it at
// most hop limit + 1 times, and passes it on at most hop limit times
// (never with no hops left).
func (s *pathReqState) take(k uint64, left uint8, l *link) (added, again bool) {
	margin := uint8(1)
	if l != nil && l.info.Shared {
		margin = reforwardMargin
	}
	return s.seen.raise(k, left, margin)
}

// reforwardMargin is how many more hops left than every copy taken
// before a copy of a path request heard on a shared link must have to be
// taken again. On a radio the first copy heard often came over a longer
// path than a later one, by one hop three times in four: taking every
// such copy again passed requests on 15 % more often on a 200-node LoRa
// mesh (docs/routing.md), for reach the flood from the other neighbours
// gives anyway. With the margin a neighbour that races a copy ahead of
// the genuine one takes at most one hop of reach from each node it
// reaches first.
const reforwardMargin = 2

// takeIn and takeOut spend from l's buckets for received and forwarded
// requests. A link may forward twice what one link may bring in, so that
// one flooding neighbour cannot use up the way out for everyone else.
func (e *Engine) takeIn(l *link) bool {
	return l.preqIn.take(1, e.now, e.cfg.PathRequestRate, e.cfg.PathRequestBurst)
}

func (e *Engine) takeOut(l *link) bool {
	return l.preqOut.take(1, e.now, 2*e.cfg.PathRequestRate, 2*e.cfg.PathRequestBurst)
}

// pathRequest asks the mesh (and the daemon's lookups) for a route to d,
// at most once per PathRequestInterval per destination, backing off while
// requests bring nothing (pathbackoff.go), and within the lookup budget. A node that has a feasibility distance for d and no
// feasible route asks for a sequence number newer than the distance's:
// only that is sure to be feasible (RFC 8966 section 3.8.2.1). Otherwise
// any route will do, and nobody issues a new sequence number for it.
func (e *Engine) pathRequest(d *destEntry, wantKey bool) {
	if !e.pathRequestDue(d) {
		return
	}
	if !e.preq.lookups.take(1, e.now, e.cfg.LookupRate, e.cfg.LookupBurst) {
		e.counters.LookupsLimited++
		return // asked again at the next custody retry
	}
	var pr protocol.PathRequest
	if e.randBytes(pr.ID[:]) != nil {
		// Fail closed: no request under a predictable ID. The DHT
		// lookup needs no randomness.
		e.rd.Lookups = append(e.rd.Lookups, d.dest)
		e.counters.Lookups++
		return
	}
	along, via, routed := e.requestRoute(d)
	d.pathRequestSent(e.now, !routed)
	pr.Target = d.dest
	pr.HopLimit = e.cfg.PathRequestHops
	pr.WantKEMKey = wantKey
	if _, ok := d.route(); !ok && d.fdValid {
		pr.HasSeqno, pr.Seqno = true, d.fdSeq
		if d.fdSeq < ^uint32(0) {
			pr.Seqno++
		}
	}
	e.preq.take(pathReqKey(pr), pr.HopLimit, nil)
	frame := pr.AppendTo(nil)
	if routed {
		e.emitRoutingTo(along, via, frame)
	} else {
		for _, l := range e.sortedLinks() {
			e.emitRouting(l, frame)
		}
	}
	e.counters.PathRequestsSent++
	e.rd.Lookups = append(e.rd.Lookups, d.dest)
	e.counters.Lookups++
}

func (e *Engine) handlePathRequest(l *link, frame []byte) error {
	pr, err := protocol.ParsePathRequest(frame)
	if err != nil {
		e.counters.FramesMalformed++
		return err
	}
	e.counters.PathRequestsIn++
	// The rate limit comes before the dedup space, so what a flood
	// inserts there is bounded by the rate too.
	if !e.takeIn(l) {
		e.counters.PathRequestsLimited++
		return nil
	}
	k := pathReqKey(pr)
	added, again := e.preq.take(k, pr.HopLimit-pr.HopCount, l)
	if !added && !again {
		e.counters.Duplicates++
		return nil
	}
	if again {
		// A copy with more hops left than any before: a neighbour may
		// have raced one ahead of it with none (or few) left. It is
		// answered or passed on again, as a new request would be.
		e.counters.PathRequestsAgain++
	}
	if pr.Target == e.self {
		e.answerAsTarget(l, pr)
		return nil
	}
	d := e.table.get(pr.Target)
	if c, ok := e.canAnswer(d, pr); ok && (c.link != l.info.ID || l.info.Shared) {
		// A route good enough for the request: answer, and do not pass
		// the request on (RFC 8966 section 3.8.1.2).
		e.queueAdvert(l, advertReq{dest: pr.Target, hops: c.hops, reply: true, withKey: pr.WantKEMKey, to: answerTo(l, pr)})
		e.counters.PathRequestsAnswer++
		return nil
	}
	e.forwardPathRequest(l, k, pr, d)
	return nil
}

// answerAsTarget answers a request for this node with its announce, after
// issuing a new sequence number if the request asks for a newer one than
// the current (at most one new sequence number per 10 s; a request within
// that time brings the next periodic announce forward to its end, so the
// requester is not left waiting for a whole interval).
func (e *Engine) answerAsTarget(l *link, pr protocol.PathRequest) {
	if pr.HasSeqno && e.ownSeq < pr.Seqno {
		if e.ownAnnounce == nil || e.now.Sub(e.ownAnnounce.Timestamp.Time()) >= 10*time.Second {
			e.newOwnAnnounce()
			// The new sequence number goes to every neighbour, as a
			// periodic one does: a neighbour that heard it only by a
			// detour would take the detour (newer sequence numbers win).
			for _, ol := range e.sortedLinks() {
				if ol != l {
					e.queueAdvert(ol, advertReq{dest: e.self})
				}
			}
		} else if due := e.ownAnnounce.Timestamp.Time().Add(10 * time.Second); due.Before(e.nextAnnounce) {
			e.nextAnnounce = due
		}
	}
	e.queueAdvert(l, advertReq{dest: e.self, reply: true, withKey: pr.WantKEMKey, to: answerTo(l, pr)})
	e.counters.PathRequestsAnswer++
}

// answerTo is where the answer to pr goes on l: on a shared link, to the
// neighbour that passed the request on, if the request names it. Broadcast
// there, the answer was taken up by every neighbour that had passed the
// request on too, each of which answered in turn: a second flood, of
// adverts four times the request's size, back over the whole area the
// request covered. Directed, it travels back along one path.
func answerTo(l *link, pr protocol.PathRequest) Address {
	if !l.info.Shared {
		return Address{}
	}
	return pr.Forwarder
}

// canAnswer returns d's selected route if it satisfies pr: the key if
// asked for, and a sequence number at least the one asked for.
func (e *Engine) canAnswer(d *destEntry, pr protocol.PathRequest) (candidate, bool) {
	if d == nil || d.ann == nil || (pr.WantKEMKey && d.kemKey == nil) {
		return candidate{}, false
	}
	c, ok := d.route()
	if !ok || (pr.HasSeqno && c.seq < pr.Seqno) {
		return candidate{}, false
	}
	return c, true
}

// forwardPathRequest passes on a request this node cannot answer: along
// its route if it has one (a sequence number too old, or no key: the
// target or a node nearer it can answer, as Babel forwards a seqno request
// to its next hop), otherwise flooded to every other link, within the
// links' forwarding budgets. It remembers where the request came from, for
// the answer, within MaxPathRequests.
func (e *Engine) forwardPathRequest(l *link, k uint64, pr protocol.PathRequest, d *destEntry) {
	if pr.HopCount >= pr.HopLimit {
		return // travelled far enough
	}
	if !e.rememberPathRequest(k, pr, pathBack{link: l.info.ID, from: answerTo(l, pr)}) {
		e.counters.PathRequestsLimited++
		return
	}
	pr.HopCount++
	// On a shared link the request names this node as its forwarder,
	// for the answer; a point-to-point link names the neighbour itself.
	// (Each made in one allocation of the largest size rather than grown
	// field by field: a flood passes requests on millions of times.)
	var plain, named []byte // built when first needed
	fwd := func(ol *link) []byte {
		if ol.info.Shared {
			if named == nil {
				pr.Forwarder = e.self
				named = pr.AppendTo(make([]byte, 0, protocol.MaxPathRequestSize))
			}
			return named
		}
		if plain == nil {
			pr.Forwarder = Address{}
			plain = pr.AppendTo(make([]byte, 0, protocol.MaxPathRequestSize))
		}
		return plain
	}
	if d != nil {
		if c, ok := d.route(); ok && (c.link != l.info.ID || l.info.Shared) {
			if ol := e.links[c.link]; ol != nil {
				e.forwardOn(ol, c.via, fwd(ol))
			}
			return
		}
	}
	for _, ol := range e.sortedLinks() {
		if ol == l && !l.info.Shared {
			continue
		}
		e.forwardOn(ol, Address{}, fwd(ol))
	}
}

// rememberPathRequest records where the copy of the request with key k
// being passed on came from, for the answer: a new entry, within
// MaxPathRequests, or one more way back for a copy passed on again (the
// answer goes back every way: the first copy may have been raced ahead by
// a neighbour that will drop the answer, and a later one claim more hops
// left than it had).
func (e *Engine) rememberPathRequest(k uint64, pr protocol.PathRequest, back pathBack) bool {
	p, ok := e.pathReqs[k]
	if !ok {
		if len(e.pathReqs) >= e.cfg.MaxPathRequests {
			return false
		}
		e.pathReqs[k] = pathOrigin{
			id: pr.ID, target: pr.Target, wantKey: pr.WantKEMKey,
			hasSeq: pr.HasSeqno, seq: pr.Seqno, expires: e.now.Add(pathReqTTL), back: back,
		}
		return true
	}
	// At most hop limit ways, as many as copies passed on while the
	// request is remembered: an entry can outlive the request in the
	// dedup space, and the copies taken after that start over.
	if p.back != back && !slices.Contains(p.more, back) && len(p.more)+1 < int(pr.HopLimit) {
		p.more = append(p.more, back)
	}
	p.expires = e.now.Add(pathReqTTL)
	e.pathReqs[k] = p
	return true
}

// forwardOn sends a forwarded request on l (to one neighbour, unless to is
// zero) if l's forwarding budget allows.
func (e *Engine) forwardOn(l *link, to Address, frame []byte) {
	if !e.takeOut(l) {
		e.counters.PathRequestsLimited++
		return
	}
	e.emitRoutingTo(l, to, frame)
	e.counters.PathRequestsForwarded++
}

// answerPathRequests sends the route to d, just heard on l (addressed to
// this node or not), back along path requests that passed through this
// node and that the route satisfies, every way each came (pathOrigin).
func (e *Engine) answerPathRequests(d *destEntry, l *link, addressed bool) {
	c, ok := d.route()
	if !ok || d.ann == nil {
		return
	}
	var keys []uint64
	for k, p := range e.pathReqs {
		if p.target == d.dest && (!p.wantKey || d.kemKey != nil) && (!p.hasSeq || c.seq >= p.seq) {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b uint64) int {
		ia, ib := e.pathReqs[a].id, e.pathReqs[b].id
		if c := bytes.Compare(ia[:], ib[:]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	for _, k := range keys {
		p := e.pathReqs[k]
		delete(e.pathReqs, k)
		e.answerBack(d, c, l, addressed, p, p.back)
		for _, back := range p.more {
			e.answerBack(d, c, l, addressed, p, back)
		}
	}
}

// answerBack sends the route c to d back the way back that a copy of the
// request p came, unless the answer was overheard there.
func (e *Engine) answerBack(d *destEntry, c candidate, l *link, addressed bool, p pathOrigin, back pathBack) {
	if overheardAnswer(l, addressed, back) {
		// On the shared link the request came in on, only an answer
		// addressed to this node is ours to pass on. A broadcast one
		// is another branch's: the answer to a request straight from
		// the requester, sent by a neighbour that heard the requester,
		// or an advert of the route. Passing it on made every node
		// around the requester repeat the answer (with the KEM key,
		// six fragments each).
		e.counters.PathRequestsOverheard++
		return
	}
	if ol := e.links[back.link]; ol != nil {
		e.queueAdvert(ol, advertReq{dest: d.dest, hops: c.hops, reply: true, withKey: p.wantKey, to: back.from})
		e.counters.PathRequestsAnswer++
	}
}

// overheardAnswer: a route heard on l satisfies the request p, which came
// in on l, a shared link, straight from its requester (it named no
// forwarder), but was not addressed to this node. A request that named its
// forwarder is answered to that forwarder, hop-wrapped: a broadcast heard
// here is never that answer (a periodic advert, a propagation, another
// request's answer, or a replay), and on a radio with hidden terminals its
// sender need not be heard by the forwarder at all.
func overheardAnswer(l *link, addressed bool, back pathBack) bool {
	return l != nil && l.info.Shared && !addressed && l.info.ID == back.link && back.from.IsZero()
}

// sweepPathRequests forgets requests whose answer did not come in time.
// (The rate limits per link live in the link and go with it.)
func (e *Engine) sweepPathRequests() {
	for id, p := range e.pathReqs {
		if !p.expires.After(e.now) {
			delete(e.pathReqs, id)
		}
	}
}
