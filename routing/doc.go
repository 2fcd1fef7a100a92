// Package routing is meshd's mesh engine: a pure, deterministic state
// machine that routes signed envelopes over links of very different kinds
// (fast IP, framed TCP, slow and lossy LoRa radios), keeps messages for
// destinations that are offline (store-and-forward custody), delivers each
// message exactly once, and floods channel broadcasts without drowning slow
// links.
//
// The engine has the shape of etcd raft's RawNode. The caller feeds it
// inputs with Step (a frame arrived, a link came up, an application asked to
// send) and the passage of time with Tick; NextWake says when Tick next has
// work; Ready returns what the outside must now do (persist records,
// transmit frames, hand messages to applications), and Advance confirms that
// it was done. The engine performs no I/O, starts no goroutines, never reads
// the wall clock and draws randomness only from the reader it is given, so
// the daemon and the simulator run exactly the same code and a simulation
// replays byte for byte from its seed.
//
// Routing is distance-vector over signed announces: each node announces
// itself with an increasing sequence number; neighbours re-advertise the
// announce with their accumulated metric, and every node keeps, per
// destination, the cheapest feasible route in the sense of Babel (RFC 8966):
// a route is feasible only if the neighbour's metric is below the best
// metric this node has had for the same sequence number, which keeps
// routing loop-free even while it converges. The bytes spent on
// advertisements are capped per link as a share of its bitrate, nearest
// destinations first. See docs/routing.md for the algorithm and its bounds.
package routing
