package routing

import (
	"time"

	"meshd.dev/meshd/protocol"
)

// NodeHeard is a node the engine knows of, as Nodes lists it.
type NodeHeard struct {
	Address Address
	// Announced is the time in the node's latest verified announce (its
	// own clock): when it was last heard of. Zero if no announce arrived
	// (the node is known from a lookup or a message only).
	Announced protocol.Timestamp
	// Capabilities come from the latest announce.
	Capabilities protocol.Capabilities
	// HasKey reports whether its KEM key is known (messages can be sealed).
	HasKey bool
	// Route is the selected route, if there is one; LinkKind is the kind
	// of its link.
	Route    *Route
	LinkKind LinkKind
}

// Nodes lists every node in the routing table, reachable or not, in
// address order.
func (e *Engine) Nodes() []NodeHeard {
	var out []NodeHeard
	for _, d := range e.table.sortedDests() {
		n := NodeHeard{Address: d.dest, HasKey: d.kemKey != nil}
		if d.ann != nil {
			n.Announced, n.Capabilities = d.ann.Timestamp, d.ann.Capabilities
		}
		if c, ok := d.route(); ok {
			n.Route = &Route{Dest: d.dest, Link: c.link, Via: c.via, Metric: c.metric, Hops: c.hops,
				Seq: c.seq, Expires: c.expires, External: c.external, HasKey: n.HasKey, Capabilities: n.Capabilities}
			if l := e.links[c.link]; l != nil {
				n.LinkKind = l.info.Kind
			}
		}
		out = append(out, n)
	}
	return out
}

// Heard reports whether the engine knows anything of a: a route, an
// announce, a key. A destination never heard of is often a mistyped
// address (the daemon warns the sender).
// A table entry that only records an earlier send or path request does not
// count.
func (e *Engine) Heard(a Address) bool {
	if a == e.self {
		return true
	}
	d := e.table.get(a)
	return d != nil && (d.ann != nil || d.best >= 0 || d.known)
}

// RequestPath asks the mesh for a route to dest now (a path request), as
// sending to an unknown destination would, and reports whether one went
// out (the engine rate-limits path requests per destination).
func (e *Engine) RequestPath(now time.Time, dest Address) bool {
	e.advance(now)
	if dest == e.self {
		return false
	}
	d := e.table.get(dest)
	if d == nil {
		d = e.table.entry(dest, MetricInfinite)
	}
	if d == nil {
		return false // the table is full of better-known destinations
	}
	before := e.counters.PathRequestsSent
	e.pathRequest(d, false)
	return e.counters.PathRequestsSent > before
}
