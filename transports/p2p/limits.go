package p2p

import (
	"time"

	"github.com/libp2p/go-libp2p"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
)

// Defaults of Config and fixed limits (the timeouts Config.Timeouts
// changes are in timeouts.go). transports/README.md (section
// LIMITS) explains each of them.
const (
	// DefaultConnLow and DefaultConnHigh are the connection manager's
	// watermarks: above ConnHigh connections it closes the least valuable
	// ones (untagged, outside the grace period) until ConnLow remain. Peers
	// with a meshd link carry a tag that makes them the last to go; peers in
	// the DHT's closest buckets are protected by the DHT itself.
	DefaultConnLow  = 64
	DefaultConnHigh = 128
	// connGracePeriod is how long a new connection is exempt from trimming.
	connGracePeriod = time.Minute
	// linkTagValue is the connection-manager tag weight of a meshd link.
	linkTagValue = 100
	// linkTag names that tag.
	linkTag = "meshd-link"

	// sendQueueLen is the number of frames queued per link before Send
	// waits (SendWindow). A batch of the daemon's node loop often holds
	// more than 64 frames for one peer: with 64 a fifth of its looks found
	// the window full, and the frames held back waited for the next
	// batch's sync (about 3 % more CPU per message in
	// BenchmarkDirectMessages; none with 256).
	sendQueueLen = 256
	// sendQueueBytes bounds the bytes queued per link for TrySend (a frame
	// that would pass it waits: TrySend says false), so that 256 frames
	// of MaxFrameSize cannot hold 18 MiB per peer: about 4 MiB, as 64
	// frames did.
	sendQueueBytes = 4 << 20
	// eventQueueLen is the buffer of the Events channel.
	eventQueueLen = 256
	// writeTimeout bounds one batch of frame writes. A peer that does not
	// read for this long loses its link, which also unblocks Send.
	writeTimeout = 30 * time.Second
	// maxReopens is how often a host reopens a link that ended while the
	// connection stayed up, before waiting for a new connection.
	maxReopens = 3
	// maxReplacements bounds how often a peer may replace its link with a
	// newer stream within replaceWindow; beyond that, new streams are
	// refused and the current link stays. A replacement is how a peer
	// recovers from a connection only it saw die, but each one is a
	// LinkDown and a LinkUp for the routing engine: a peer must not be
	// able to make its link flap without end.
	maxReplacements = 3
	replaceWindow   = time.Minute

	// mdnsServiceType is the DNS-SD service type meshd advertises.
	mdnsServiceType = "_meshd._udp"
	// mdnsDomain is the mDNS domain.
	mdnsDomain = "local."
	// mdnsBrowseInterval is how long one browse session runs before a new
	// one starts (a new session reports every peer again, so peers that
	// were disconnected are redialled).
	mdnsBrowseInterval = 2 * time.Minute
	// mdnsFirstBrowse is the first browse session's length; each next one
	// is twice as long, up to mdnsBrowseInterval.
	mdnsFirstBrowse = 2 * time.Second
	// mdnsRetry is how often mDNS tries to start again while no
	// multicast interface is usable.
	mdnsRetry = 30 * time.Second
	// mdnsMaxAddrs bounds the TXT dnsaddr entries advertised and read.
	mdnsMaxAddrs = 16
	// mdnsConnectTimeout bounds one dial to a discovered peer.
	mdnsConnectTimeout = 15 * time.Second
	// mdnsMaxDials bounds concurrent dials to discovered peers.
	mdnsMaxDials = 8

	// DefaultRedialBase and DefaultRedialMax bound the redial backoff: the
	// first retry after a link went down comes within DefaultRedialBase,
	// later ones double up to DefaultRedialMax (each jittered down to half),
	// so a healed partition is noticed within DefaultRedialMax.
	DefaultRedialBase = time.Second
	DefaultRedialMax  = 16 * time.Second
	// DefaultForgetAfter is how long a known peer (not a bootstrap peer)
	// may stay unreachable before it is no longer redialled nor
	// remembered: longer than a night's outage, short enough that dead
	// entries are not dialled forever (RedialConfig.ForgetAfter changes
	// it; the daemon forgets its stored entries after the same time).
	DefaultForgetAfter = 24 * time.Hour
	// MaxKnownPeers bounds the peers the host redials (and the daemon
	// remembers across restarts); a full set forgets the peer linked
	// longest ago among those without a link up and not bootstrap peers.
	MaxKnownPeers = 64
	// maxAddrsPerPeer bounds the remembered addresses of one peer.
	maxAddrsPerPeer = 8
	// redialTick is how often due redials are looked for.
	redialTick = 250 * time.Millisecond
	// identifyWait bounds the wait for identify before a link's peer
	// addresses are remembered.
	identifyWait = 2 * time.Second

	// refusedLogEvery rate-limits the log line about refused DHT records.
	refusedLogEvery = time.Minute

	// dhtProtocolPrefix keeps meshd's DHT apart from the IPFS Amino DHT:
	// its protocol is /meshd/kad/1.0.0, so IPFS nodes never enter meshd
	// routing tables and meshd records never land on IPFS nodes.
	dhtProtocolPrefix = "/meshd"
	// dhtTimeout bounds one background publish.
	dhtTimeout = time.Minute
	// republishRetry is the first retry delay after a failed publish; it
	// doubles up to RepublishInterval.
	republishRetry = 30 * time.Second
	// minRepublishGap is the least time between publishes caused by
	// address changes.
	minRepublishGap = time.Minute
)

// resourceLimits returns the resource manager's limits: go-libp2p's default
// scaling limits with its default service limits (identify, ping, autonat,
// relay, hole punching), plus limits for the meshd link protocol, scaled to
// 1/8 of the machine's memory and half its file descriptors
// (ScalingLimitConfig.AutoScale).
func resourceLimits() rcmgr.ConcreteLimitConfig {
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	limits.AddProtocolLimit(LinkProtocol,
		rcmgr.BaseLimit{StreamsInbound: 256, StreamsOutbound: 256, Streams: 512, Memory: 64 << 20},
		rcmgr.BaseLimitIncrease{StreamsInbound: 256, StreamsOutbound: 256, Streams: 512, Memory: 64 << 20},
	)
	// One link per peer, plus one replacement during a handshake.
	limits.AddProtocolPeerLimit(LinkProtocol,
		rcmgr.BaseLimit{StreamsInbound: 2, StreamsOutbound: 2, Streams: 4, Memory: 16 << 20},
		rcmgr.BaseLimitIncrease{},
	)
	// The DHT: bounded streams per peer, so one peer cannot keep the
	// node's DHT busy (or store records without end) over many streams.
	limits.AddProtocolPeerLimit(dhtProtocolPrefix+"/kad/1.0.0",
		rcmgr.BaseLimit{StreamsInbound: 16, StreamsOutbound: 16, Streams: 32, Memory: 4 << 20},
		rcmgr.BaseLimitIncrease{},
	)
	return limits.AutoScale()
}
