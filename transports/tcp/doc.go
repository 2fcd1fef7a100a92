// Package tcp is meshd's plain TCP link: a framed, authenticated and
// encrypted stream between two nodes, for routers and tunnels where
// libp2p is too heavy. A Transport listens and dials configured peers
// (redialling with jittered, capped backoff) and hands each link to the
// daemon through the link contract (transports/link) only after the
// handshake proved the peer's mesh identity.
//
// # Handshake
//
// Both sides first send a hello (69 bytes):
//
//	0      4      5                 37                69
//	+------+------+-----------------+-----------------+
//	| MSHD | 0x01 | X25519 ephemeral| nonce (32,      |
//	|      |      | public key (32) | fresh random)   |
//	+------+------+-----------------+-----------------+
//
// Each computes the X25519 secret of its ephemeral key and the peer's, the
// transcript hash th = SHA-256("meshd tcp link v1" || dialler's hello ||
// listener's hello), and two keys K = HKDF-SHA256(secret, salt th, info
// "meshd tcp link v1 keys", 64 bytes): K[0:32] seals what the dialler
// sends, K[32:64] what the listener sends. Then each sends, as the first
// sealed record (type 4), its public identity (1249 bytes, see
// protocol.PublicIdentity) and its signature over th:
// Identity.Sign("tcp-link/v1/initiator" or "tcp-link/v1/responder", th).
// A side accepts the link only if the signature verifies under the
// identity it got (and that identity is the one configured for the peer,
// if one was, and not its own). So both prove possession of their
// identity's signing key over a transcript holding both fresh nonces and
// both ephemeral keys: a replayed proof does not verify; a man in the
// middle who substitutes ephemeral keys makes the two transcripts differ;
// the role in the label stops a proof from being reflected. The
// identities travel encrypted, so a passive observer does not learn them;
// but each side sends its proof before checking the other's, so anyone
// who connects to a listener learns its identity.
// There is no forward secrecy beyond the ephemeral keys' lifetime (one
// connection) and no resumption.
//
// # Records
//
// Everything after the hellos is a sequence of records:
//
//	+------------------+---------------------------------------------+
//	| length (uint32,  | ChaCha20-Poly1305 ciphertext of             |
//	|  big endian)     |   type (1) || body, tag (16)                |
//	+------------------+---------------------------------------------+
//
// with the length (17..65553) as additional data and a 96-bit nonce that
// counts the records in each direction from zero (so a record cannot be
// dropped, replayed or reordered without failing authentication). Types:
// 1 a frame (1..65536 bytes), 2 a keepalive (empty), 3 an orderly close
// (a reason for the log), 4 the handshake's identity proof. A length out
// of range, a record that does not open or an unknown type closes the
// link; memory for a record is taken only after its length was checked.
//
// # Liveness and limits
//
// A side sends a keepalive after Keepalive (15 s) without writing and
// takes the link down after DeadAfter (45 s) without reading anything. A
// write that takes longer than WriteTimeout (30 s) takes the link down; a
// link queues at most MaxPending (1 MiB) bytes, Send waits beyond. A
// handshake has HandshakeTimeout (10 s); at most MaxHandshakes (16)
// inbound handshakes run at once and at most MaxInbound (64) inbound links
// are up (an identity costs nothing to make, so an attacker could
// otherwise open links without end), one IP address (IPv6 /64) holds
// at most MaxPerHost (8) of those connections (so one host cannot lock
// the others out); further connections are closed at once. Two nodes that
// both list each other as peers get two links; the engine treats them as
// two links to one neighbour.
package tcp
