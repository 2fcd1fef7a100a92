package fapp

import "errors"

// Sentinel errors. Every error fapp returns wraps one of them (with %w) and
// says which field or rule failed, so callers branch with errors.Is and show
// the message to people (the API) or count the sentinel (the network).
var (
	// ErrTruncated reports input that ends before the format says it should.
	ErrTruncated = errors.New("fapp: truncated input")
	// ErrTrailing reports bytes left over after a complete object.
	ErrTrailing = errors.New("fapp: trailing bytes")
	// ErrTooLarge reports input or a field over its size limit.
	ErrTooLarge = errors.New("fapp: too large")
	// ErrUnknownVersion reports a format version or message kind fapp does not know.
	ErrUnknownVersion = errors.New("fapp: unknown version or kind")
	// ErrMalformed reports a field whose value the format does not allow
	// (an unknown enum value, a reserved bit set, a bad duration).
	ErrMalformed = errors.New("fapp: malformed")
	// ErrImpossible reports a combination the domain does not allow
	// (MEHRPERSONEN outside SYSTEMISCH, a GRUPPE without seats, ...).
	ErrImpossible = errors.New("fapp: impossible combination")
	// ErrInvalidPLZ reports a postal code that is not a German PLZ in use.
	ErrInvalidPLZ = errors.New("fapp: invalid PLZ")
	// ErrInPast reports a slot that starts before the announce was issued.
	ErrInPast = errors.New("fapp: slot in the past")
	// ErrBadSignature reports a signature that does not verify.
	ErrBadSignature = errors.New("fapp: bad signature")
	// ErrStale reports an announce, profile or revocation list whose
	// sequence number is not higher than the one already held.
	ErrStale = errors.New("fapp: sequence not newer")
	// ErrExpired reports an object past its expiry.
	ErrExpired = errors.New("fapp: expired")
	// ErrFromFuture reports an object issued too far ahead of the caller's clock.
	ErrFromFuture = errors.New("fapp: issued in the future")
	// ErrNotYetValid reports a credential before its valid_from.
	ErrNotYetValid = errors.New("fapp: not yet valid")
	// ErrUntrustedIssuer reports a credential or revocation list whose
	// issuer key is not configured as trusted.
	ErrUntrustedIssuer = errors.New("fapp: untrusted issuer")
	// ErrRevoked reports a credential its issuer has revoked.
	ErrRevoked = errors.New("fapp: credential revoked")
	// ErrMismatch reports objects that do not belong together (a profile
	// whose credential names other keys, a response to another request).
	ErrMismatch = errors.New("fapp: objects do not match")
	// ErrLimit reports a memory bound that refused new data.
	ErrLimit = errors.New("fapp: limit reached")
	// ErrTransition reports a reservation state change the state machine forbids.
	ErrTransition = errors.New("fapp: transition not allowed")
	// ErrReplay reports a reservation request or stamp seen before.
	ErrReplay = errors.New("fapp: replayed")
	// ErrStamp reports a proof-of-work stamp that is too cheap, for another
	// request or slot, or outside the accepted time buckets.
	ErrStamp = errors.New("fapp: bad stamp")
	// ErrNotFound reports an unknown reservation, slot or profile.
	ErrNotFound = errors.New("fapp: not found")
	// ErrNotOffered reports a request for a slot occurrence the therapist
	// does not offer (any more): Book.Refuse answers it with ABGELEHNT.
	ErrNotOffered = errors.New("fapp: slot not on offer")
	// ErrStopped reports work its caller gave up (MintStampUntil's stop
	// check).
	ErrStopped = errors.New("fapp: stopped by the caller")
)
