package routing

import (
	"reflect"
)

// Counters count what the engine did, for metrics. They only grow (except
// the gauges at the end). Field names become metric names (snake case) in
// the daemon.
type Counters struct {
	FramesIn        uint64 // frames received from links and gossip
	FramesOut       uint64 // frames handed to links
	BytesIn         uint64
	BytesOut        uint64
	FramesMalformed uint64 // frames that did not decode
	FramesUnknown   uint64 // frames of a kind the engine does not handle
	FramesNotForUs  uint64 // unicast frames on a shared link for another node

	AnnouncesSent      uint64 // own announces queued
	AdvertsIn          uint64
	AdvertsOut         uint64
	AdvertsInvalid     uint64 // bad signature, address or freshness
	AdvertsStale       uint64 // older sequence than known
	AdvertsDeferred    uint64 // held back by a link's advertisement budget
	AdvertsReplaced    uint64 // a newer advert for the same destination replaced a queued one
	AdvertBytesOut     uint64
	VerifySkipped      uint64 // announces already verified (verify once)
	RoutesAdded        uint64
	RoutesChanged      uint64
	RoutesRemoved      uint64
	RoutesInfeasible   uint64 // updates refused by the feasibility condition
	PathRequestsSent   uint64
	PathRequestsIn     uint64
	PathRequestsAnswer uint64
	Lookups            uint64
	// Path requests as a resource (see pathreq.go).
	PathRequestsForwarded uint64 // requests passed on, per link
	PathRequestsLimited   uint64 // dropped by a rate limit or the bound on waiting requests
	LookupsLimited        uint64 // own path requests and lookups held back by the lookup budget
	PathRequestsOverheard uint64 // answers overheard broadcast on the shared link a request came in on, not repeated
	PathRequestsAgain     uint64 // copies of a request taken with more hops left than every copy before (answered or passed on again)

	EnvelopesIn           uint64
	EnvelopesInvalid      uint64 // bad signature, expired, from the future
	EnvelopeVerifySkipped uint64 // retries of envelopes verified before (verify once)
	Duplicates            uint64 // dropped by the seen cache
	Forwarded             uint64
	HopLimitDrops         uint64
	Delivered             uint64 // envelopes delivered to the application
	DuplicateDelivered    uint64 // duplicates of delivered messages (receipt re-sent)
	OpenFailed            uint64 // sealed envelopes for us that did not open
	Sent                  uint64 // application messages accepted
	SendRefused           uint64
	ReceiptsSent          uint64
	ReceiptsIn            uint64
	ReceiptsInvalid       uint64
	ReceiptsWithheld      uint64 // sealed receipts not sent: no custody room to wait for the origin's KEM key
	ReceiptsThrottled     uint64 // copies of delivered messages not answered: a receipt went out within the interval
	RandomFailures        uint64 // Config.Rand failed; what needed it was not done

	CustodyAccepted   uint64
	CustodyRefused    uint64 // quota
	CustodyRetries    uint64
	CustodyExpired    uint64
	CustodyCleared    uint64 // by a receipt
	CustodyHandedOff  uint64
	CustodyReleased   uint64 // forwarder custody released after hand-over
	HopAcksSent       uint64
	HopAcksIn         uint64
	Retransmits       uint64
	RetransmitFailed  uint64
	ExpiryNoticesSent uint64
	CustodyCancelled  uint64 // own messages the application cancelled (Engine.Cancel)
	EchoAnswered      uint64 // echo requests (pings) answered with a receipt
	EchoRefused       uint64 // echo requests not answered: over the rate limit, or not sealed

	// Custody offer stamps (offerstamp.go): offers refused for want of a
	// stamp, with a stamp that did not do, stamps minted when a mailbox
	// asked, and asks not followed (over 18 bits, or asked again).
	OfferStampsAsked   uint64
	OfferStampsBad     uint64
	OfferStampsMinted  uint64
	OfferStampsGivenUp uint64

	// Custody quotas (docs/routing.md section 5).
	CustodyRestoreDropped uint64 // forwarded records over the quotas at a restart, deleted

	QueueDrops    uint64 // frames dropped because a link queue was full
	QueueDeferred uint64 // custody messages left in custody because a queue was full
	// QueueBudgetDrops counts frames the node-wide queue budget
	// (Config.QueueBudget) cost a place in a queue: refused by a link over
	// its share (the caller keeps or drops them as for a full queue) or
	// shed from the links that held the most (also in QueueDrops).
	QueueBudgetDrops uint64
	FloodIn          uint64
	FloodDuplicate   uint64
	FloodRelayed     uint64
	FloodCancelled   uint64 // rebroadcasts cancelled because enough neighbours did it
	FloodDelivered   uint64
	FloodHopLimit    uint64
	FloodStale       uint64 // channel frames refused: too old, from the future, or older than the dedup cache remembers
	FloodForged      uint64 // frames of a joined channel that failed authentication (dropped, not relayed)
	Fragments        uint64 // fragments sent
	Reassembled      uint64

	SealedRateLimited uint64 // sealed-sender envelopes dropped by a link's rate limit

	// FloodRelayDropped counts radio rebroadcasts not scheduled because the
	// link's pending rebroadcasts already held its queue's worth of bytes.
	FloodRelayDropped uint64

	// Route sessions (session.go): inits sent, taken in, refused (bad,
	// replayed label) and dropped by the per-link rate limit; sessions
	// accepted as responder, established as initiator, dropped, and
	// refused by MaxSessions/MaxSessionRelays; data frames sent, opened,
	// refused (forged, replayed, out of window) and relayed; cumulative
	// acknowledgements; resets; frames for an unknown session on a
	// point-to-point link; inits a relay did not pass on.
	SessionInitsOut      uint64
	SessionInitsIn       uint64
	SessionInitsRefused  uint64
	SessionInitsLimited  uint64
	SessionsAccepted     uint64
	SessionsEstablished  uint64
	SessionsDropped      uint64
	SessionsLimited      uint64
	SessionFramesOut     uint64
	SessionFramesIn      uint64
	SessionFramesRefused uint64
	SessionFramesRelayed uint64
	SessionAcksOut       uint64
	SessionAcksIn        uint64
	SessionResetsIn      uint64
	SessionUnknown       uint64
	SessionRelayRefused  uint64
	// SessionResetsOut counts resets this node sent towards an initiator
	// because the path broke here (a dead link, no route for an init), or
	// because its session was restored at a restart (endRestored).
	SessionResetsOut uint64
	// SessionFallbacks counts session messages sent on as envelopes after
	// their route broke (session_fallback.go).
	SessionFallbacks uint64
	// SessionHandshakesLapsed counts handshakes of ours that got no accept
	// by their deadline; SessionPeersFallback the times a peer's messages
	// went to envelopes because its handshakes kept lapsing (an older
	// version that does not know our session mode; session_compat.go).
	SessionHandshakesLapsed uint64
	SessionPeersFallback    uint64
	// SessionRekeysAsked counts rekey requests sent (again, too);
	// SessionRekeys in-session rekeys completed, at either end
	// (session_rekey.go).
	SessionRekeysAsked uint64
	SessionRekeys      uint64

	// FloodYielded counts radio rebroadcasts skipped because the link had
	// less than Config.LowBudget of its duty-cycle airtime left.
	FloodYielded uint64

	// FloodOutOfScope counts frames of a scoped channel this node has not
	// joined: dropped, not relayed (ScopeChannel).
	FloodOutOfScope uint64

	// Gauges.
	Routes       uint64
	CustodyCount uint64
	CustodyBytes uint64
	SeenEntries  uint64
	QueuedFrames uint64
	QueuedBytes  uint64
	// QueueHeldBytes is what the queue budget counts (Config.QueueBudget):
	// QueuedBytes, the bytes handed to windowed links not yet done, and
	// the envelopes sent that wait for a hop ack.
	QueueHeldBytes uint64

	// PathRequestsPending (a gauge) are forwarded path requests waiting for
	// an answer.
	PathRequestsPending uint64
}

// Each calls f with every counter's name and value, in declaration order.
func (c *Counters) Each(f func(name string, v uint64)) {
	v := reflect.ValueOf(c).Elem()
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f(t.Field(i).Name, v.Field(i).Uint())
	}
}
