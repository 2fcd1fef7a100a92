// Package p2p is meshd's libp2p transport: a host with TCP and QUIC, Noise
// and TLS, identify, ping, AutoNAT (v1 and v2), hole punching and the relay
// client (plus the circuit relay v2 service in relay mode), a resource
// manager and a connection manager; meshd links over it; a Kademlia DHT
// with signed address records; and LAN discovery over mDNS.
//
// # Links
//
// A link is exactly one long-lived stream of protocol /meshd/link/1.0.0 per
// peer, carrying frames both ways. When identify shows that a connected peer
// speaks the protocol, the peer with the smaller peer ID (bytewise) opens the
// stream; the other side accepts it and rejects streams opened the wrong way,
// so simultaneous opens cannot happen. A newer stream from the opener replaces
// an older one that is still registered (its LinkDown comes first). Links are
// not opened over relayed (limited) connections.
//
// Both sides first send a hello and read the other's:
//
//	0      1                                          1250
//	+------+------------------------------------------+
//	| 0x01 | PublicIdentity.MarshalBinary (1249 bytes)|
//	+------+------------------------------------------+
//
// The receiver accepts it only if the identity's Ed25519 key is the libp2p
// peer key that Noise or TLS authenticated, so the mesh address in LinkUp is
// authenticated. Then each frame is
//
//	+--------------------------+---------------------------+
//	| length (uvarint, minimal)| frame (1..MaxFrameSize B) |
//	+--------------------------+---------------------------+
//
// A length outside 1..MaxFrameSize (70 KiB) resets the stream before
// anything is allocated for it. Send queues a frame for the per-link writer
// (sendQueueLen frames); the writer batches what is queued into one flush.
// Events (LinkUp, Frame, LinkDown) of one link come in that order from one
// goroutine.
//
// # DHT
//
// go-libp2p-kad-dht with protocol prefix /meshd (so /meshd/kad/1.0.0: meshd
// does not join or pollute the IPFS Amino DHT), providers off, and one
// validator namespace, "meshd-addr". See Record for the record layout and
// validateRecord for the checks. Hosts republish their record every
// RepublishInterval and when their addresses change.
//
// # mDNS
//
// grandcat/zeroconf, service _meshd._udp, instance name = peer ID, TXT
// strings "dnsaddr=<multiaddr>". go-libp2p's own mdns package is not used
// (two stacks on port 5353).
//
// Limits are listed in transports/README.md, section LIMITS.
package p2p
