package routing

import (
	"fmt"
	"io"
	"time"

	"meshd.dev/meshd/protocol"
)

// Config configures an Engine. The zero value of every field but Identity
// and Rand means the documented default.
type Config struct {
	// Identity is the node's identity. Required.
	Identity *protocol.Identity
	// Rand supplies all randomness: message IDs, KEM encapsulation, jitter.
	// Use crypto/rand in the daemon and a seeded reader in simulations.
	// Required.
	Rand io.Reader
	// Capabilities are announced to other nodes.
	Capabilities protocol.Capabilities
	// Mailbox makes the node accept custody offers from others (relay
	// mode). Set CapMailbox in Capabilities too, so others find it.
	Mailbox bool
	// MailboxStampBits, with Mailbox, asks offerers this node does not
	// know for a proof-of-work stamp of this many bits (at most 24) on
	// their custody offers (docs/routing.md); 0, the default, asks none.
	MailboxStampBits uint8

	// AnnounceInterval is how often the node announces itself (default
	// 30 min). Announces also go out when a link comes up.
	AnnounceInterval time.Duration
	// RouteTTL is how long a route lives without a fresh advertisement
	// (default 3 x AnnounceInterval).
	RouteTTL time.Duration
	// AnnounceShare is the share of each link's bitrate that
	// advertisements may use (default 0.02, as Reticulum).
	AnnounceShare float64
	// DutyCycleAdvertShare caps adverts on a link with a duty cycle
	// (LinkInfo.DutyCycle) to this share of the airtime the duty cycle
	// allows (default 0.25). With EU868's 1 % sub-band that is 0.25 % of the
	// bitrate; with the 10 % sub-band AnnounceShare is the tighter bound.
	DutyCycleAdvertShare float64
	// LowBudget: below this share of its duty-cycle airtime left
	// (LinkBudget), a link stops rebroadcasting other nodes' channel
	// frames (default 0.25).
	LowBudget float64
	// AnnounceBurst is the advertisement budget a link starts with and may
	// save up, in bytes (default 2,048).
	AnnounceBurst int
	// MaxRoutes bounds the routing table (default 100,000 destinations).
	MaxRoutes int
	// MaxAdvertHops: announces that travelled this many hops are not
	// re-advertised (default 32).
	MaxAdvertHops uint8
	// IPAdvertRadius: announces are re-advertised on IP links only to
	// destinations fewer than this many hops away (default 4). Farther
	// destinations on the internet are found through lookups (the DHT).
	IPAdvertRadius uint8

	// HopLimit of new envelopes (default 16).
	HopLimit uint8
	// MessageTTL of new envelopes (default 7 days; at most 30 days).
	MessageTTL time.Duration
	// ClockSkew tolerated for times in the future (default 10 min).
	ClockSkew time.Duration

	// SeenCacheSize bounds the forwarding duplicate cache (default 65,536),
	// and separately the flood dedup cache of channel frames.
	SeenCacheSize int
	// MaxDelivered bounds the set of delivered message IDs kept for exactly
	// once delivery (default 1,000,000; each entry is about 92 bytes of
	// heap, BenchmarkDeliveredMemory).
	MaxDelivered int

	// CustodyMaxBytes bounds all messages in custody (default 64 MiB).
	CustodyMaxBytes int
	// CustodyMaxPerDest bounds custody per destination (default 4 MiB).
	CustodyMaxPerDest int
	// CustodyOwnReserve is the part of CustodyMaxBytes that only the
	// node's own messages may use: forwarded traffic never takes it
	// (default a quarter of CustodyMaxBytes). The rest is the forwarded
	// pool, which the following quotas share out (docs/routing.md
	// section 5).
	CustodyOwnReserve int
	// CustodyMaxPerNeighbour bounds the forwarded custody one neighbour
	// (an authenticated peer, or a link) may hold (default an eighth of
	// the forwarded pool, at least one largest envelope). A fixed share,
	// not the pool divided by the neighbours up: what a neighbour holds
	// stays when others come, so only a fixed share leaves room for up to
	// eight of them whatever the order. A mailbox with few neighbours may
	// want more.
	CustodyMaxPerNeighbour int
	// CustodyMaxPerSource bounds the forwarded custody of one signed
	// source (default as CustodyMaxPerNeighbour).
	CustodyMaxPerSource int
	// CustodySealedMax bounds the forwarded custody of sealed-sender
	// envelopes, which nobody on the way can authenticate (default an
	// eighth of the forwarded pool, at least one largest envelope), and
	// CustodySealedPerNeighbour one neighbour's part of it (default a
	// quarter of CustodySealedMax, at least one largest envelope).
	CustodySealedMax, CustodySealedPerNeighbour int
	// SealedSenderRate limits, per link, the sealed-sender envelopes the
	// node forwards or keeps for others, in bytes per second (default
	// 64 KiB/s), saving up at most SealedSenderBurst (default 1 MiB).
	SealedSenderRate, SealedSenderBurst int
	// QueueBudget bounds, in bytes, what the node holds for all its links
	// together: the frames waiting in their queues (each bounded by
	// LinkInfo.QueueBytes), those handed to windowed links and not yet
	// reported done, and the envelopes sent that wait for a hop ack
	// (default 32 MiB). Past it, a link gets no more than
	// an even share of it (at least 256 KiB), and the links that hold the
	// most lose their newest, least urgent frames first
	// (queuebudget.go).
	QueueBudget int
	// RetryBase and RetryMax bound the custody retry backoff (defaults
	// 30 s and 1 h).
	RetryBase, RetryMax time.Duration
	// HandOffAfter is how many retries without a route pass before a
	// message is offered to a mailbox (default 3).
	HandOffAfter int

	// HopAckRetries is how often an unacknowledged envelope is sent again
	// on a hop-ack link (default 3).
	HopAckRetries int

	// FloodHopLimit of new broadcasts (default 5, at most 15).
	FloodHopLimit uint8
	// FloodCancelAfter: a pending rebroadcast on a radio is cancelled after
	// hearing this many neighbours rebroadcast the frame (default 3). With
	// FloodWindow and FloodCloseMargin at their defaults, managed flooding
	// sends at least 40 % fewer frames than naive flooding at 99 % reach or
	// better on 100-node random radio graphs, with and without carrier
	// sense (docs/performance.md has the figures and the command).
	FloodCancelAfter int
	// FloodWindow is the rebroadcast window on a radio, in airtimes of the
	// frame (default 32): the delay is the frame's place in the window by
	// SNR plus a random spread of one window.
	FloodWindow int
	// FloodCloseMargin: a rebroadcast heard this many dB above the link's
	// SNR floor (about half the range away or closer for 7 dB) cancels the
	// pending rebroadcast at once (default 7; negative turns it off).
	FloodCloseMargin float64
	// FloodMaxAge is how old a channel frame may be (by the send time it
	// carries) and still be delivered or relayed (default 30 min; frames
	// may also be up to ClockSkew in the future). The flood dedup cache
	// remembers every frame for this long, so no replay gets between the
	// two. Long enough for a frame held back by a duty-cycle wait.
	FloodMaxAge time.Duration
	// PathRequestHops bounds how far a path request travels (default 8).
	PathRequestHops uint8
	// PathRequestInterval is the least time between path requests for one
	// destination (default 1 min).
	PathRequestInterval time.Duration
	// PathRequestRate and PathRequestBurst limit the path requests taken
	// in from each link (per second, and how many may come at once;
	// defaults 4 and 32); a link may forward twice that. Requests over the
	// limit are dropped, so one neighbour cannot make the node flood its
	// requests to every other neighbour.
	PathRequestRate  float64
	PathRequestBurst int
	// MaxPathRequests bounds the forwarded path requests waiting for an
	// answer (default 1,024).
	MaxPathRequests int
	// LookupRate and LookupBurst limit the node's own path requests and
	// the lookups it asks of the daemon (Ready.Lookups), over all
	// destinations (defaults 1 per second and 32); each destination has at
	// most one per PathRequestInterval anyway.
	LookupRate  float64
	LookupBurst int
	// PathRequestMaxInterval caps the backoff between unanswered path
	// requests for one destination: each request that brings no route
	// (or key) doubles the wait from PathRequestInterval, up to this
	// (default 16 min; pathbackoff.go).
	PathRequestMaxInterval time.Duration

	// Padding of sealed bodies (default protocol.DefaultPadding).
	Padding *protocol.Padding

	// VerifyCache, if not nil, is shared by engines that run in one process
	// (a simulator) so that each announce's signature is checked once
	// rather than once per engine; results do not change (see
	// VerifyCache). Nil, the daemon's setting, verifies in every engine.
	VerifyCache VerifyCache

	// OpenCache, if not nil, is shared by engines that run in one process
	// (a simulator) so that each channel frame is opened once rather than
	// once per receiver; results do not change (see OpenCache). Nil, the
	// daemon's setting, opens in every engine.
	OpenCache OpenCache

	// NoSessions sends the node's own unicast messages (not sealed
	// sender) as sealed envelopes instead of over route sessions
	// (docs/routing.md section 12). Sessions are on by default; a node
	// with NoSessions still answers, relays and receives session frames,
	// it only never starts a session itself.
	NoSessions bool
	// MaxSessions bounds the sessions this node is an end of (default
	// 4,096); MaxSessionRelays the session paths through it (default
	// 16,384, of which at most a 64th waiting for their accept).
	MaxSessions      int
	MaxSessionRelays int
	// SessionIdle is how long an unused session and its relay entries live
	// (default 1 h), SessionIdleLoRa the same for a session whose path
	// starts on a radio (default 24 h: a new handshake there costs about
	// 1.4 KB of airtime per hop).
	SessionIdle     time.Duration
	SessionIdleLoRa time.Duration
}

func (c *Config) applyDefaults() error {
	if c.Identity == nil {
		return fmt.Errorf("config: no identity: %w", ErrBadInput)
	}
	if c.Rand == nil {
		return fmt.Errorf("config: no random source: %w", ErrBadInput)
	}
	if c.MailboxStampBits > protocol.MaxOfferStampBits {
		return fmt.Errorf("config: mailbox stamp of %d bits, limit %d: %w", c.MailboxStampBits, protocol.MaxOfferStampBits, ErrBadInput)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	defInt := func(d *int, v int) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.AnnounceInterval, 30*time.Minute)
	def(&c.RouteTTL, 3*c.AnnounceInterval)
	if c.AnnounceShare <= 0 || c.AnnounceShare > 1 {
		c.AnnounceShare = 0.02
	}
	if c.LowBudget <= 0 || c.LowBudget > 1 {
		c.LowBudget = 0.25
	}
	if c.DutyCycleAdvertShare <= 0 || c.DutyCycleAdvertShare > 1 {
		c.DutyCycleAdvertShare = 0.25
	}
	defInt(&c.AnnounceBurst, 2048)
	defInt(&c.MaxRoutes, 100_000)
	if c.MaxAdvertHops == 0 {
		c.MaxAdvertHops = 32
	}
	if c.IPAdvertRadius == 0 {
		c.IPAdvertRadius = 4
	}
	if c.HopLimit == 0 || c.HopLimit > protocol.MaxHopLimit {
		c.HopLimit = 16
	}
	def(&c.MessageTTL, 7*24*time.Hour)
	c.MessageTTL = min(c.MessageTTL, protocol.MaxLifetime)
	def(&c.ClockSkew, 10*time.Minute)
	defInt(&c.SeenCacheSize, 65536)
	defInt(&c.MaxDelivered, 1_000_000)
	defInt(&c.CustodyMaxBytes, 64<<20)
	defInt(&c.CustodyMaxPerDest, 4<<20)
	defInt(&c.QueueBudget, 32<<20)
	c.applyQuotaDefaults()
	def(&c.RetryBase, 30*time.Second)
	def(&c.RetryMax, time.Hour)
	defInt(&c.HandOffAfter, 3)
	defInt(&c.HopAckRetries, 3)
	if c.FloodHopLimit == 0 || c.FloodHopLimit > protocol.MaxChannelHops {
		c.FloodHopLimit = 5
	}
	defInt(&c.FloodCancelAfter, 3)
	def(&c.FloodMaxAge, 30*time.Minute)
	defInt(&c.FloodWindow, 32)
	if c.FloodCloseMargin == 0 {
		c.FloodCloseMargin = 7
	}
	if c.PathRequestHops == 0 || c.PathRequestHops > 15 {
		c.PathRequestHops = 8
	}
	def(&c.PathRequestInterval, time.Minute)
	if !(c.PathRequestRate > 0) { // NaN too
		c.PathRequestRate = 4
	}
	defInt(&c.PathRequestBurst, 32)
	defInt(&c.MaxSessions, 4096)
	defInt(&c.MaxSessionRelays, 16384)
	def(&c.SessionIdle, time.Hour)
	def(&c.SessionIdleLoRa, 24*time.Hour)
	defInt(&c.MaxPathRequests, 1024)
	if !(c.LookupRate > 0) {
		c.LookupRate = 1
	}
	defInt(&c.LookupBurst, 32)
	def(&c.PathRequestMaxInterval, 16*time.Minute)
	c.PathRequestMaxInterval = max(c.PathRequestMaxInterval, c.PathRequestInterval)
	if c.Padding == nil {
		p := protocol.DefaultPadding
		c.Padding = &p
	}
	return c.Padding.Validate()
}

// applyQuotaDefaults derives the custody quotas from CustodyMaxBytes.
func (c *Config) applyQuotaDefaults() {
	defInt := func(d *int, v int) {
		if *d <= 0 {
			*d = v
		}
	}
	defInt(&c.CustodyOwnReserve, c.CustodyMaxBytes/4)
	c.CustodyOwnReserve = min(c.CustodyOwnReserve, c.CustodyMaxBytes)
	pool := c.CustodyMaxBytes - c.CustodyOwnReserve
	// A share is never smaller than one envelope of the largest size (as
	// far as the pool allows): a small configured store still forwards.
	share := func(v int) int { return min(max(v, maxCustodyData+custodyRecOverhead), pool) }
	defInt(&c.CustodyMaxPerNeighbour, share(pool/8))
	defInt(&c.CustodyMaxPerSource, share(pool/8))
	defInt(&c.CustodySealedMax, share(pool/8))
	defInt(&c.CustodySealedPerNeighbour, min(share(c.CustodySealedMax/4), c.CustodySealedMax))
	defInt(&c.SealedSenderRate, 64<<10)
	defInt(&c.SealedSenderBurst, 1<<20)
}
