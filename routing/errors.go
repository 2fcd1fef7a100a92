package routing

import "errors"

// Sentinel errors.
var (
	// ErrBadInput reports an input that breaks the engine's rules (an
	// unknown link, an invalid link description); the input is ignored.
	ErrBadInput = errors.New("routing: bad input")
	// ErrNoRoute reports a destination with no route.
	ErrNoRoute = errors.New("routing: no route")
	// ErrCustodyFull reports that the custody quotas refused a message.
	ErrCustodyFull = errors.New("routing: custody quota exceeded")
	// ErrQueueFull reports that a link's queue refused a frame.
	ErrQueueFull = errors.New("routing: link queue full")
	// ErrTooLarge reports a message body over the envelope limit.
	ErrTooLarge = errors.New("routing: message too large")
	// ErrCorruptRecord reports a persisted record that does not decode.
	ErrCorruptRecord = errors.New("routing: corrupt record")
	// ErrRandom reports that Config.Rand failed: the operation that needed
	// randomness was not carried out (fail closed).
	ErrRandom = errors.New("routing: random source failed")
	// ErrLimit reports a bound (sessions, relay entries) that refused new
	// state.
	ErrLimit = errors.New("routing: resource limit reached")
)

// Errors of Engine.Cancel.
var (
	// ErrUnknownMessage: no message with that ID is in custody.
	ErrUnknownMessage = errors.New("routing: no such message in custody")
	// ErrNotOwn: the message in custody was sent by another node; only
	// its origin may cancel it.
	ErrNotOwn = errors.New("routing: message is another node's")
)

// ErrEndToEnd marks a refusal of what only this node, the destination,
// can check (a sealed message's inner signature, a control payload, a
// session frame's seal): forwarders pass such frames on unchecked, so the
// neighbour that handed it over is not to blame for it.
var ErrEndToEnd = errors.New("routing: refused at the destination")
