// Package fapp is FAPP, the Free Appointment Propagation Protocol, as a pure
// engine: licensed psychotherapists announce free slots into the mesh, and
// patients find and reserve them anonymously, with no central registry.
//
// The package holds the domain types (with the German names the profession
// uses: Verfahren, Terminart, Kostentraeger, ...), their compact versioned
// binary encodings, signed slot announces small enough for one LoRa frame,
// therapist profiles and license credentials (issued and revoked by issuers
// the node operator trusts), an index of announces per PLZ region with every
// filter patients use, reservations sealed end to end to the therapist with a
// state machine for both sides, identity-free proof-of-work stamps, and a
// publisher that batches slot changes into fixed epochs.
//
// Like protocol and routing, fapp is pure: no I/O, no goroutines, no wall
// clock and no global randomness. Time comes in as a now parameter and
// randomness as an io.Reader, so the daemon and the simulator run the same
// code and tests are deterministic. Europe/Berlin times are computed with the
// German daylight-saving rule in code (see Berlin), not read from tzdata.
//
// The protocol, byte layouts and the privacy model are in docs/fapp.md; the
// API is summarised in fapp/README.md.
package fapp
