package routing

import (
	"fmt"
	"time"

	"meshd.dev/meshd/protocol"
)

// Address is a mesh address (re-exported for convenience).
type Address = protocol.Address

// MessageID identifies an envelope end to end.
type MessageID = protocol.MessageID

// LinkID names a link. The caller chooses the IDs; they must be unique among
// the links that are up.
type LinkID uint32

// LinkKind is the technology of a link; it sets defaults for cost, queueing
// and how broadcasts are carried.
type LinkKind uint8

// Link kinds.
const (
	// LinkIP is a libp2p connection to one peer: fast, reliable, ordered.
	// Channel broadcasts reach IP peers through gossip, not flooding.
	LinkIP LinkKind = iota + 1
	// LinkTCP is a plain framed TCP link to one peer (routers, tunnels): a
	// mesh link that takes part in flooding.
	LinkTCP
	// LinkLoRa is a radio: a shared medium where one transmission reaches
	// every neighbour in range, slow, lossy and duty-cycle limited.
	LinkLoRa
)

func (k LinkKind) String() string {
	switch k {
	case LinkIP:
		return "ip"
	case LinkTCP:
		return "tcp"
	case LinkLoRa:
		return "lora"
	}
	return fmt.Sprintf("link-kind(%d)", uint8(k))
}

// LinkInfo describes a link to the engine.
type LinkInfo struct {
	ID   LinkID
	Kind LinkKind
	// MTU is the largest frame the link carries; larger frames are
	// fragmented. Zero means 64 KiB for IP and TCP, 255 for LoRa.
	MTU int
	// Bitrate in bits per second, for the route metric and the
	// advertisement budget. Zero means 100 Mbit/s for IP, 10 Mbit/s for
	// TCP and 1,760 bit/s (SF9, 125 kHz) for LoRa.
	Bitrate int
	// Cost is added to the metric of every route over this link (operator
	// preference).
	Cost uint16
	// Shared marks a broadcast medium: one transmission reaches every
	// neighbour, and unicast frames carry a next-hop address. LoRa links
	// are always shared.
	Shared bool
	// Peer is the neighbour's mesh address on a point-to-point link, when
	// the transport has authenticated it (libp2p: the link hello carries the
	// peer's identity and a certificate by it for the host key the Noise or
	// TLS handshake proved). Zero if unknown.
	Peer Address
	// HopAcks asks for hop-by-hop acknowledgements and retransmission of
	// envelopes on this link. LoRa links always use them.
	HopAcks bool
	// Window is how many frames may be handed to the transport before it
	// reports TxDone. Zero means unlimited (the transport queues); a LoRa
	// modem wants 1, and the daemon gives IP and TCP links their send
	// queue's length (256 frames for IP, 64 for TCP), so that it never
	// waits for a slow link and what does not fit waits in this engine's
	// link queue.
	Window int
	// WindowBytes, with a Window, also bounds the bytes handed to the
	// transport before it reports them: the daemon gives libp2p links
	// their send queue's byte bound (4 MiB), which 256 large frames would
	// pass. Zero means no bound in bytes.
	WindowBytes int
	// QueueBytes bounds the frames waiting for this link. Zero means 4 MiB
	// for IP and TCP, 16 KiB for LoRa.
	QueueBytes int
	// DutyCycle is the share of time the link may transmit at all (a
	// regulatory limit: 0.01 in the EU868 g1 sub-band). The advertisement
	// budget is a share of the airtime the link really has, not of its raw
	// bitrate. Zero means no limit (1).
	DutyCycle float64
}

func (l *LinkInfo) applyDefaults() {
	if l.Kind == LinkLoRa {
		l.Shared = true
		l.HopAcks = true
	}
	if l.MTU == 0 {
		l.MTU = 64 * 1024
		if l.Kind == LinkLoRa {
			l.MTU = 255
		}
	}
	if l.Bitrate == 0 {
		switch l.Kind {
		case LinkIP:
			l.Bitrate = 100_000_000
		case LinkTCP:
			l.Bitrate = 10_000_000
		default:
			l.Bitrate = 1760
		}
	}
	if l.QueueBytes == 0 {
		l.QueueBytes = 4 << 20
		if l.Kind == LinkLoRa {
			l.QueueBytes = 16 << 10
		}
	}
}

func (l LinkInfo) validate() error {
	switch {
	case l.Kind < LinkIP || l.Kind > LinkLoRa:
		return fmt.Errorf("link %d: unknown kind %d: %w", l.ID, l.Kind, ErrBadInput)
	case l.MTU < minMTU:
		return fmt.Errorf("link %d: MTU %d below %d: %w", l.ID, l.MTU, minMTU, ErrBadInput)
	case l.Bitrate <= 0:
		return fmt.Errorf("link %d: bitrate %d: %w", l.ID, l.Bitrate, ErrBadInput)
	case l.Window < 0 || l.QueueBytes < 0 || l.WindowBytes < 0:
		return fmt.Errorf("link %d: negative window or queue: %w", l.ID, ErrBadInput)
	case l.DutyCycle < 0 || l.DutyCycle > 1 || l.DutyCycle != l.DutyCycle:
		return fmt.Errorf("link %d: duty cycle %v not in 0..1: %w", l.ID, l.DutyCycle, ErrBadInput)
	}
	return nil
}

// minMTU is the smallest MTU the engine can fragment for: room for the
// fragment header and a useful amount of data.
const minMTU = 32

// Input is something that happened outside the engine. Feed it to Step.
type Input interface{ isInput() }

// LinkUp reports a new link (or new properties of a known one).
type LinkUp struct{ Link LinkInfo }

// LinkDown reports a link that went away; routes over it are withdrawn.
type LinkDown struct{ Link LinkID }

// FrameReceived reports a frame that arrived on a link. Step takes it by
// value or by pointer (*FrameReceived: no allocation to box it); it keeps
// no pointer to the struct once it returns.
type FrameReceived struct {
	Link  LinkID
	Frame []byte
	// SNR is the signal-to-noise ratio in dB of a radio frame, if HasSNR.
	// Managed flooding lets far (low-SNR) neighbours rebroadcast first.
	SNR    float64
	HasSNR bool
}

// TxDone reports that the transport finished sending frames on a link with
// a Window, so more may be handed to it.
type TxDone struct {
	Link   LinkID
	Frames int
}

// LinkBudget reports the share of a duty-cycled link's airtime for the
// hour that is still unspent (0..1), as the transport's ledger counts it.
// The engine slows the link's adverts in proportion, and below
// Config.LowBudget stops rebroadcasting other nodes' channel frames on it
// (managed flooding: its neighbours' rebroadcasts carry them), so what is
// left goes to data. A link never reported counts as having its whole
// budget. The transport reports it again as its budget changes.
type LinkBudget struct {
	Link      LinkID
	Remaining float64
}

// SendRequest asks the engine to send an application message. Step takes
// it by value or by pointer: a caller that reuses one request boxes
// nothing per message. The engine keeps no pointer to it, nor to its
// body: the caller may rewrite both once Step returns.
type SendRequest struct {
	// Ref is the caller's reference; events about this message carry it.
	Ref  uint64
	Dest Address
	Body []byte
	// Type is the envelope type; zero means protocol.TypeMessage.
	Type protocol.Type
	// TTL is the message's lifetime; zero means Config.MessageTTL.
	TTL time.Duration
	// SealedSender hides the sender from everyone but the recipient.
	SealedSender bool
}

// Broadcast asks the engine to send a message to a channel.
type Broadcast struct {
	Ref     uint64
	Channel protocol.ChannelKey
	Body    []byte
	// Signed adds the sender's signature inside the encryption.
	Signed bool
	// HopLimit bounds flooding on mesh links; zero means Config.FloodHopLimit.
	HopLimit uint8
}

// JoinChannel makes the engine deliver a channel's broadcasts to the
// application. Flooding relays every channel, joined or not,
// but a scoped one (ScopeChannel).
type JoinChannel struct{ Key protocol.ChannelKey }

// LeaveChannel stops delivering a channel.
type LeaveChannel struct{ Channel protocol.ChannelID }

// ScopeChannel marks a channel as scoped (or, Scoped false, lifts the
// mark): its frames are relayed on mesh links only by members, and a node
// that has not joined it drops them (Counters.FloodOutOfScope). It keeps
// channels of a region off the radios of nodes that do not follow the
// region (docs/routing.md, section 6). Unscoped channels are relayed by
// every node.
type ScopeChannel struct {
	Channel protocol.ChannelID
	Scoped  bool
}

// GossipReceived reports a channel frame that arrived through gossip on the
// IP side; the engine delivers it and floods it onto mesh links.
type GossipReceived struct{ Frame []byte }

// Resolved reports the result of an outside lookup (the daemon's DHT): Dest
// can be reached through the neighbour on Link. Identity, if known, gives the
// destination's keys so messages to it can be sealed.
type Resolved struct {
	Dest     Address
	Link     LinkID
	Identity *protocol.PublicIdentity
	// TTL is how long the result holds; zero means Config.RouteTTL.
	TTL time.Duration
}

func (LinkUp) isInput()         {}
func (LinkDown) isInput()       {}
func (FrameReceived) isInput()  {}
func (TxDone) isInput()         {}
func (LinkBudget) isInput()     {}
func (SendRequest) isInput()    {}
func (Broadcast) isInput()      {}
func (JoinChannel) isInput()    {}
func (LeaveChannel) isInput()   {}
func (ScopeChannel) isInput()   {}
func (GossipReceived) isInput() {}
func (Resolved) isInput()       {}

// Priority orders frames waiting for a link: lower values go first, and
// when a queue is full the highest values are dropped first.
type Priority uint8

// Priorities.
const (
	PriControl Priority = iota // hop acks, receipts, custody control
	PriRouting                 // advertisements and path requests
	PriData                    // unicast envelopes
	PriBulk                    // flooded broadcasts, custody retries
	numPriorities
)

func (p Priority) String() string {
	return [...]string{"control", "routing", "data", "bulk", "?"}[min(int(p), int(numPriorities))]
}

// Transmit is a frame to hand to a link's transport.
type Transmit struct {
	Link LinkID
	// To is the intended neighbour; zero for a broadcast on a shared link.
	// On a shared link unicast frames already carry the next hop inside.
	To       Address
	Frame    []byte
	Priority Priority
}

// Delivery is a message for the local application.
type Delivery struct {
	ID MessageID
	// Key is the envelope key (zero for channel broadcasts and messages to
	// self).
	Key protocol.EnvelopeKey
	// Record is the key of the engine's delivered record for it (empty for
	// channel broadcasts and messages to self): the daemon's store writes
	// the delivery and that record together.
	Record string
	Type   protocol.Type
	// From is the authenticated sender; Sender its compact identity.
	From   Address
	Sender protocol.CompactIdentity
	Body   []byte
	// Created and Expires come from the envelope.
	Created, Expires protocol.Timestamp
	// Channel is set for channel broadcasts (then Signed says whether From
	// is known).
	Channel   protocol.ChannelID
	Broadcast bool
	Signed    bool
	// Hops is the hop count the envelope (or channel frame) carried when it
	// arrived: 0 if the origin's own transmission reached this node, plus
	// one for every node that forwarded it. A message to self has 0.
	Hops uint8
}

// Publish asks the daemon to publish a channel frame on the channel's gossip
// topic (the IP side of a broadcast).
type Publish struct {
	Channel protocol.ChannelID
	Frame   []byte
}

// Record is a key and value the engine asks to persist. Keys are short
// ASCII strings; see the persistence section of docs/routing.md.
type Record struct {
	Key   string
	Value []byte
}

// EventKind says what an Event reports.
type EventKind uint8

// Event kinds.
const (
	// EventAccepted: a SendRequest was accepted; Status says how far it got.
	EventAccepted EventKind = iota + 1
	// EventRefused: a SendRequest or Broadcast was refused; Err says why.
	EventRefused
	// EventDelivered: the recipient's signed receipt arrived.
	EventDelivered
	// EventExpired: a message expired before a receipt arrived.
	EventExpired
	// EventHandedOff: a mailbox accepted custody of a message.
	EventHandedOff
	// EventBroadcast: a Broadcast was sent.
	EventBroadcast
	// EventCancelled: the application cancelled a message (Engine.Cancel).
	EventCancelled
)

func (k EventKind) String() string {
	switch k {
	case EventAccepted:
		return "accepted"
	case EventRefused:
		return "refused"
	case EventDelivered:
		return "delivered"
	case EventExpired:
		return "expired"
	case EventHandedOff:
		return "handed-off"
	case EventBroadcast:
		return "broadcast"
	case EventCancelled:
		return "cancelled"
	}
	return fmt.Sprintf("event(%d)", uint8(k))
}

// SendStatus says where an accepted message stands.
type SendStatus uint8

// Send statuses.
const (
	// StatusRouted: sent towards the destination; custody kept until the
	// receipt arrives.
	StatusRouted SendStatus = iota + 1
	// StatusCustody: no route yet; kept and retried.
	StatusCustody
	// StatusAwaitingKey: the destination's KEM key is not known yet; a
	// path request asks for it, and the message is sealed when it arrives.
	StatusAwaitingKey
	// StatusLocal: the destination is this node.
	StatusLocal
)

func (s SendStatus) String() string {
	switch s {
	case StatusRouted:
		return "routed"
	case StatusCustody:
		return "custody"
	case StatusAwaitingKey:
		return "awaiting-key"
	case StatusLocal:
		return "local"
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// Event reports the fate of a message the application sent.
type Event struct {
	Kind   EventKind
	Ref    uint64
	ID     MessageID
	Dest   Address
	Status SendStatus
	Err    error
	// Hops is the hop count the receipt carried when it arrived
	// (EventDelivered only): 0 if the recipient is a neighbour.
	Hops uint8
}

// Ready is what the outside must do, in this order:
//
//  1. Durably write Persist and Deletes, together with the Deliveries (in
//     one atomic batch: a delivered message and the record that it was
//     delivered must land together, or a crash could lose or repeat it).
//     Sync the write before step 2: custody promised to a neighbour or an
//     application must survive a crash.
//  2. Hand Transmits to their links, in order, and Publish to gossip.
//  3. Notify applications of Deliveries and Events.
//  4. Call Advance.
//
// Frames in Transmits may acknowledge custody (hop acks, custody accepts) or
// carry a receipt; that is why they wait for the persistence in step 1.
type Ready struct {
	// Persist and Deletes never name the same key (the engine keeps only
	// its last operation on a key), so they may be applied in any order.
	Persist    []Record
	Deletes    []string
	Deliveries []Delivery
	Transmits  []Transmit
	Publish    []Publish
	Events     []Event
	// Lookups are destinations the engine could not route; the daemon may
	// look them up outside the mesh (DHT) and report back with Resolved.
	Lookups []Address
	// Counters is set when any counter changed since the last Ready. It
	// points to the engine's copy, which a later Ready overwrites: copy
	// the struct to keep it.
	Counters *Counters
}

// Empty reports whether there is nothing to do.
func (rd *Ready) Empty() bool {
	return len(rd.Persist) == 0 && len(rd.Deletes) == 0 && len(rd.Deliveries) == 0 &&
		len(rd.Transmits) == 0 && len(rd.Publish) == 0 && len(rd.Events) == 0 &&
		len(rd.Lookups) == 0 && rd.Counters == nil
}
