package protocol

import "errors"

// Sentinel errors. Decoders and verifiers wrap them with context, so callers
// branch with errors.Is.
var (
	// ErrTruncated reports input that ends before the format says it should.
	ErrTruncated = errors.New("protocol: truncated input")
	// ErrTrailing reports bytes left over after a complete object.
	ErrTrailing = errors.New("protocol: trailing bytes")
	// ErrTooLarge reports input or a field over its size limit.
	ErrTooLarge = errors.New("protocol: too large")
	// ErrUnknownKind reports a first byte that names no known object or version.
	ErrUnknownKind = errors.New("protocol: unknown kind or version")
	// ErrMalformed reports a field whose value the format does not allow.
	ErrMalformed = errors.New("protocol: malformed")
	// ErrBadSignature reports a signature that does not verify.
	ErrBadSignature = errors.New("protocol: bad signature")
	// ErrAddressMismatch reports keys that do not hash to the claimed address.
	ErrAddressMismatch = errors.New("protocol: address does not match keys")
	// ErrExpired reports an object past its expiry or older than allowed.
	ErrExpired = errors.New("protocol: expired")
	// ErrFromFuture reports a timestamp too far ahead of the caller's clock.
	ErrFromFuture = errors.New("protocol: timestamp in the future")
	// ErrDecrypt reports a ciphertext that fails authentication.
	ErrDecrypt = errors.New("protocol: decryption failed")
	// ErrReplay reports a frame that was already accepted or is too old for
	// the replay window.
	ErrReplay = errors.New("protocol: replayed or too old")
	// ErrNotForUs reports an object addressed to someone else.
	ErrNotForUs = errors.New("protocol: not addressed to this identity")
	// ErrHopLimit reports a hop count that reached the hop limit.
	ErrHopLimit = errors.New("protocol: hop limit reached")
	// ErrLimit reports a resource bound (memory, entries) that refused new work.
	ErrLimit = errors.New("protocol: resource limit reached")
)
