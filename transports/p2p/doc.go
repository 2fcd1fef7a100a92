// Package p2p is meshd's libp2p transport: a host with TCP and QUIC, Noise
// and TLS, identify, ping, AutoNAT (v1 and v2), hole punching and the relay
// client (plus the circuit relay v2 service in relay mode), a resource
// manager and a connection manager; meshd links over it; a Kademlia DHT
// with signed address records; LAN discovery over mDNS; and, when
// Config.Gossip.Enabled, gossipsub for broadcast channels.
//
// # Links
//
// A link is exactly one long-lived stream of protocol /meshd/link/2.0.0 per
// peer, carrying frames both ways. When identify shows that a connected peer
// speaks the protocol, the peer with the smaller peer ID (bytewise) opens the
// stream; the other side accepts it and rejects streams opened the wrong way,
// so simultaneous opens cannot happen. A newer stream from the opener replaces
// an older one that is still registered (its LinkDown comes first). Links are
// not opened over relayed (limited) connections.
//
// Both sides first send a hello and read the other's:
//
//	0      1                                   1250                   1354
//	+------+-----------------------------------+----------------------+
//	| 0x02 | PublicIdentity.MarshalBinary      | host key certificate |
//	|      | (1249 bytes)                      | (104 bytes)          |
//	+------+-----------------------------------+----------------------+
//
// The libp2p host key is a key of its own (Config.HostKey), not the
// identity's signing key, so no key signs in two protocols. The certificate
// (see hostCert) is the identity's signature, under the label "hostkey/v1",
// over the host's peer ID and the certificate's issue and expiry times. The
// receiver accepts the hello only if the certificate names the peer that
// Noise or TLS authenticated, is signed by the hello's identity and has not
// expired, so the mesh address in LinkUp is authenticated. A host signs a
// certificate for HostCertLifetime (30 days) and a new one when half of
// that is spent; receivers accept at most MaxHostCertLifetime (90 days).
// There is no revocation: a host key that leaked without the identity key
// is useful to the thief until the last certificate for it expires. Then
// each frame is
//
//	+--------------------------+---------------------------+
//	| length (uvarint, minimal)| frame (1..MaxFrameSize B) |
//	+--------------------------+---------------------------+
//
// A length outside 1..MaxFrameSize (70 KiB) resets the stream before
// anything is allocated for it. Send queues a frame for the per-link writer
// (sendQueueLen frames); the writer batches what is queued into one flush.
// A caller that must never wait (the daemon's node loop) keeps at most
// SendWindow frames queued, uses TrySend, and learns of the writer's takes
// from LinkQueue and the Room signal it asks for with WatchRoom.
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
// (two stacks on port 5353; it advertises _p2p._udp under random instance
// names, so switching would hide upgraded nodes from older ones). Without a
// usable multicast interface the host runs without mDNS, warns once, and
// tries again every 30 s; zeroconf's own standard-log lines reach the
// daemon's slog logger (daemon.RouteStdLog).
//
// # Gossip
//
// go-libp2p-pubsub's gossipsub, one topic per channel (ChannelTopic:
// "/meshd/ch/1/<hex channel ID>"), without gossipsub signatures or author
// (the frames carry their own MAC, and an author would tell every relay who
// published). Every received frame is checked before it is delivered or
// forwarded: well-formed, on its channel's topic, within the rate limits,
// then GossipConfig.Validate; rejected frames count against the peer that
// sent them (peer scoring). The message ID is the frame's dedup key plus a
// hash of its bytes without the hop count (GossipMessageID).
// transports/README.md, section Gossip, gives the parameters and why.
//
// Limits are listed in transports/README.md, section LIMITS.
package p2p
