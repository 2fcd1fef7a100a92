// Package protocol defines meshd's wire formats and the cryptography that
// protects them: identities and mesh addresses, signed envelopes with
// end-to-end sealing (HPKE over the X-Wing hybrid KEM, X25519 + ML-KEM-768),
// signed announces, delivery receipts, padding, ratcheted "lite" sessions for
// constrained links, authenticated broadcast channel frames, fragments, and
// the hop-by-hop routing control frames (adverts, hop frames, path requests,
// hop acks, custody offers and answers, expiry notices).
//
// The package is pure: it performs no I/O, never reads the wall clock (time is
// always a parameter) and never draws from a global random source (randomness
// is an io.Reader supplied by the caller). That is what lets the daemon and the
// simulator run exactly the same code, and what makes the golden test vectors
// under testdata/ reproducible.
//
// Every top-level object starts with a one-byte [Kind] that names both the
// object and its format version, so a receiver can demultiplex frames from a
// link by their first byte. Decoders are strict: they enforce size limits,
// reject unknown kinds, versions, types and flag bits, and reject trailing
// bytes. Encodings are deterministic, because signatures are computed over
// exact bytes. The byte layouts are documented in docs/protocol.md.
package protocol
