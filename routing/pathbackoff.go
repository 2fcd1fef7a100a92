package routing

import "time"

// Path requests for one destination back off. On a LoRa mesh a request
// that finds nothing floods up to PathRequestHops hops (on a 1,000-node mesh
// about 150 transmissions), and a message in custody asked again at every
// retry, once a PathRequestInterval: a destination that was offline, out
// of reach or whose answer was lost cost a flood a minute for as long as
// the message waited. Two rules:
//
//   - A node that has a route to the destination (it asks for the KEM key,
//     which LoRa adverts leave out, or for a newer sequence number along a
//     route it has) sends its request along that route only: hop-wrapped to
//     the next hop, and passed on along the route by every node that has
//     one too (forwardPathRequest), it costs a frame a hop instead of a
//     flood, so it is asked again at the base PathRequestInterval (a lossy
//     route needs the tries).
//   - For a destination this node has never had a verified announce of
//     (beyond the reach of adverts, or offline), a flooded request that
//     brings nothing doubles the wait before the next one, from
//     PathRequestInterval up to PathRequestMaxInterval: a negative cache
//     of "not found", kept in the destination's table entry (so bounded by
//     the table and forgotten with the entry). A route or key that arrives
//     starts over. A destination whose announce this node has verified but
//     whose route it lost (a lost advert on a lossy radio, an infeasible
//     update) is asked for at the base interval: it is near, and the
//     backoff there only delayed set-up (TestLossyKeySetup: median 44 min
//     without, over an hour with it).

// pathRequestWait is how long after its last request this node waits
// before asking for d again.
func (e *Engine) pathRequestWait(d *destEntry) time.Duration {
	w := e.cfg.PathRequestInterval
	if _, routed := d.route(); routed || d.ann != nil {
		return w
	}
	for i := uint8(pathRequestFreeMisses); i < d.preqMisses && w < e.cfg.PathRequestMaxInterval; i++ {
		w *= 2
	}
	return min(w, e.cfg.PathRequestMaxInterval)
}

// pathRequestDue reports whether a request for d may go now.
func (e *Engine) pathRequestDue(d *destEntry) bool {
	return d.lastPathRequest.IsZero() || e.now.Sub(d.lastPathRequest) >= e.pathRequestWait(d)
}

// pathRequestSent records a request for d; a flooded one counts as a miss
// until an answer says otherwise (pathAnswered).
func (d *destEntry) pathRequestSent(now time.Time, flooded bool) {
	d.lastPathRequest = now
	switch {
	case !flooded:
		d.preqAlong++
	case d.preqMisses < 255:
		d.preqMisses++
		d.preqAlong = 0
	default:
		d.preqAlong = 0
	}
}

// pathAnswered starts d's backoff over: a route or key arrived.
func (d *destEntry) pathAnswered() { d.preqMisses, d.preqAlong = 0, 0 }

// requestRoute is the route the node's own request for d goes along, if
// it has one and the last pathRequestAlongTries requests along it brought
// an answer. A route can lead nowhere: stale, or planted by a liar that
// replays the destination's signed announce and swallows what it is sent.
// A key request is the first thing a new destination is sent, so nothing
// else would show that the route does not carry (data through a next hop
// that does not pass it on loses its route, a request does not): without
// the flood the node asked the liar for as long as the liar kept its route
// alive (TestAttackPlantedRouteStallsKeyRequests).
func (e *Engine) requestRoute(d *destEntry) (*link, Address, bool) {
	c, ok := d.route()
	if !ok || d.preqAlong >= pathRequestAlongTries {
		return nil, Address{}, false
	}
	l := e.links[c.link]
	return l, c.via, l != nil
}

// pathRequestFreeMisses flooded requests go at the base interval before the
// backoff starts.
const pathRequestFreeMisses = 1

// pathRequestAlongTries requests go along a route without an answer before
// the next one floods.
const pathRequestAlongTries = 3
