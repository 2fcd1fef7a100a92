// Package sim is meshsim's core: it loads and validates scenarios, builds
// the network they describe (nodes, IP links, a LoRa radio medium from
// simulations/radio), and runs the real routing engine of every node on
// virtual time from one event heap ordered by (time, sequence).
//
// A run starts no goroutines and never reads the wall clock: every node's
// identity and randomness, the link models' jitter and loss and the traffic
// are derived from the scenario seed and the node index, so the same
// scenario and seed replay the same run, event for event. Every event is
// written to a canonical trace whose SHA-256 ends up in the summary; the
// determinism test compares it between runs.
//
// The engines are driven exactly as the daemon drives them: after every
// Step or Tick the node's Ready is carried out in order (persist into the
// node's in-memory store, transmit on the link models, publish to the
// gossipsub model, count and trace deliveries, notify), then Advance,
// then the node's next wake-up is put on the heap.
package sim
