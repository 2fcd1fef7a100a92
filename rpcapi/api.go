package rpcapi

import (
	"context"
	"errors"
	"time"
)

// Method names. Every method the server answers is in Methods, which also
// drives the OpenRPC document.
const (
	MethodNodeInfo     = "node.info"
	MethodNodePeers    = "node.peers"
	MethodNodeConnect  = "node.connect"
	MethodNodeLinks    = "node.links"
	MethodRouteTable   = "route.table"
	MethodMsgSend      = "msg.send"
	MethodMsgInbox     = "msg.inbox"
	MethodMsgAck       = "msg.ack"
	MethodMsgSubscribe = "msg.subscribe"
	MethodStoreStats   = "store.stats"
	MethodDiscover     = "rpc.discover"

	// NotifyEvent is the server-to-client notification carrying an Event
	// after msg.subscribe.
	NotifyEvent = "msg.event"
)

// Node is what the API needs from the daemon. The daemon implements it;
// tests use a fake. Methods must be safe for concurrent use and must honour
// ctx. Errors that wrap one of the sentinel errors below reach the client
// with the matching documented code; any other error is reported as
// CodeInternal without its text leaking internals.
type Node interface {
	Info(ctx context.Context) (NodeInfo, error)
	Peers(ctx context.Context) ([]Peer, error)
	// Connect dials a libp2p multiaddr that includes /p2p/<peer ID>.
	Connect(ctx context.Context, multiaddr string) (Peer, error)
	Routes(ctx context.Context) ([]Route, error)
	// Links lists the node's links of every kind.
	Links(ctx context.Context) ([]Link, error)
	// Send hands a message to the routing engine. It returns once the
	// message is durably in custody (or refused).
	Send(ctx context.Context, p SendParams) (SendResult, error)
	// Inbox pages through delivered, unacknowledged messages with
	// sequence numbers greater than p.After.
	Inbox(ctx context.Context, p InboxParams) (InboxPage, error)
	// Ack removes messages from the inbox; unknown sequence numbers are
	// ignored (acknowledging twice is harmless).
	Ack(ctx context.Context, seqs []uint64) (AckResult, error)
	// Subscribe returns a channel of node events until cancel is called or
	// ctx ends; the node closes the channel then. A subscriber that does
	// not keep up loses events and sees a gap in Event.Seq; the node never
	// blocks on a subscriber. The node numbers each subscription's events
	// (Event.Seq = 1, 2, ...), counting the ones it had to drop.
	Subscribe(ctx context.Context) (events <-chan Event, cancel func(), err error)
	StoreStats(ctx context.Context) (StoreStats, error)
	ChannelNode
}

// Sentinel errors a Node wraps to choose the code the client sees.
var (
	// ErrInvalidParams: the parameters are well-formed JSON but wrong (a
	// bad address, an empty payload). Code -32602.
	ErrInvalidParams = errors.New("invalid params")
	// ErrRefused: the node refused the request (payload too large, queue
	// full, quota exceeded). CodeRefused.
	ErrRefused = errors.New("refused")
	// ErrConnect: dialling a peer failed. CodeConnectFailed.
	ErrConnect = errors.New("connect failed")
	// ErrUnavailable: the node is starting or shutting down.
	// CodeUnavailable.
	ErrUnavailable = errors.New("node unavailable")
)

// meshd's own error codes (JSON-RPC reserves -32000 to -32099 for
// implementation-defined server errors).
const (
	CodeUnavailable   = -32000
	CodeRefused       = -32001
	CodeConnectFailed = -32002
	CodeInternal      = -32003
	CodeTooLarge      = -32004 // the request exceeds MaxRequestBytes
)

// MaxRequestBytes bounds one request (HTTP body, WebSocket message or
// unix-socket line). A message payload is at most 64 KiB, base64 in JSON.
const MaxRequestBytes = 256 << 10

// NodeInfo describes the local node.
type NodeInfo struct {
	// Address is the 16-byte mesh address in hex.
	Address string `json:"address"`
	// Fingerprint is the 30-digit key fingerprint people compare out of
	// band.
	Fingerprint string `json:"fingerprint"`
	// PeerID is the libp2p peer ID (of the host key, which the identity certifies).
	PeerID string `json:"peer_id"`
	// ListenAddrs are the multiaddrs the host listens on, each ending in
	// /p2p/<peer ID> so they can be passed to node.connect as they are.
	ListenAddrs []string `json:"listen_addrs"`
	Version     string   `json:"version"`
	// Started is when the daemon started.
	Started time.Time `json:"started"`
	Peers   int       `json:"peers"`
	Routes  int       `json:"routes"`
	Custody int       `json:"custody"`
	Inbox   int       `json:"inbox"`
	// DHTMode is "client" or "server".
	DHTMode string `json:"dht_mode,omitempty"`
	// Reachability is libp2p AutoNAT's verdict: "unknown", "public" or
	// "private".
	Reachability string `json:"reachability,omitempty"`
	// TCPListen is the host:port plain TCP links are accepted on, if any.
	TCPListen string `json:"tcp_listen,omitempty"`
}

// Peer is a connected libp2p peer.
type Peer struct {
	PeerID string `json:"peer_id"`
	// Address is the peer's mesh address once the meshd link handshake
	// finished; empty for peers that do not speak meshd.
	Address string   `json:"address,omitempty"`
	Addrs   []string `json:"addrs"`
	// Direction is "inbound" or "outbound".
	Direction string `json:"direction"`
	// Link is the routing engine's link ID, zero if not a meshd link.
	Link uint32 `json:"link,omitempty"`
	// Since is when the link came up.
	Since time.Time `json:"since"`
	// Relayed is true for a connection through a circuit relay.
	Relayed bool `json:"relayed,omitempty"`
	// Kind is the link kind of a link that is not libp2p ("tcp", "lora");
	// empty for libp2p peers. Such links have no peer ID; Addrs holds the
	// link's name (the remote TCP address, the modem).
	Kind string `json:"kind,omitempty"`
}

// Link is one of the node's links (libp2p, TCP or LoRa), as node.links
// lists it.
type Link struct {
	// ID is the routing engine's link ID (routes name it).
	ID uint32 `json:"id"`
	// Kind is "ip" (libp2p), "tcp" or "lora".
	Kind string `json:"kind"`
	// Name is what the link is known by: the libp2p peer ID, the remote
	// TCP address, the modem's serial port.
	Name string `json:"name"`
	// Peer is the mesh address the link's handshake authenticated; empty
	// on a shared medium (a radio reaches many neighbours).
	Peer string `json:"peer,omitempty"`
	// State is "up", "stalled" while the link does not take frames,
	// "down" for a link that is not up (a configured TCP peer between
	// attempts, a modem being reopened; ID is then 0), or "connecting"
	// while an attempt is under way.
	State string `json:"state"`
	// Error says why a link that is not up failed last.
	Error string `json:"error,omitempty"`
	// Retry is when the next attempt to bring a down link up starts.
	Retry *time.Time `json:"retry,omitempty"`
	// Direction is "inbound" or "outbound"; empty on a shared medium.
	Direction string `json:"direction,omitempty"`
	// Since is when the link came up.
	Since time.Time `json:"since"`
	// FramesIn, FramesOut, BytesIn and BytesOut count the link's traffic
	// since it came up.
	FramesIn  uint64 `json:"frames_in"`
	FramesOut uint64 `json:"frames_out"`
	BytesIn   uint64 `json:"bytes_in"`
	BytesOut  uint64 `json:"bytes_out"`
	// QueueFrames and QueueBytes are waiting in the link to be sent.
	QueueFrames int `json:"queue_frames"`
	QueueBytes  int `json:"queue_bytes"`
	// MTU is the largest frame the link carries.
	MTU int `json:"mtu,omitempty"`
	// Radio holds a radio link's figures; absent on other links.
	Radio *LinkRadio `json:"radio,omitempty"`
}

// LinkRadio are the radio figures of a link.
type LinkRadio struct {
	// RSSI (dBm) and SNR (dB) of the last frame received; absent before
	// the first.
	RSSI *float64 `json:"rssi,omitempty"`
	SNR  *float64 `json:"snr,omitempty"`
	// AirtimeUsedMS is how long the link transmitted in the last hour;
	// AirtimeLeftMS what its duty cycle still allows in that hour.
	AirtimeUsedMS int64 `json:"airtime_used_ms"`
	AirtimeLeftMS int64 `json:"airtime_left_ms"`
	// DutyCycle is the share of time the link may transmit (0: no limit).
	DutyCycle float64 `json:"duty_cycle,omitempty"`
}

// Route is one routing table entry.
type Route struct {
	Dest    string `json:"dest"`
	NextHop string `json:"next_hop"`
	Link    uint32 `json:"link"`
	Metric  uint32 `json:"metric"`
	Hops    int    `json:"hops"`
	Seqno   uint32 `json:"seqno"`
	// Expires is when the route lapses without a fresh advertisement.
	Expires time.Time `json:"expires"`
	// Source is how the route was learnt: "advert" or "dht".
	Source string `json:"source,omitempty"`
}

// SendParams are msg.send's parameters. Exactly one of Text and Payload is
// set.
type SendParams struct {
	// To is the destination's mesh address in hex.
	To string `json:"to"`
	// Text is a UTF-8 payload.
	Text string `json:"text,omitempty"`
	// Payload is a binary payload (base64 in JSON).
	Payload []byte `json:"payload,omitempty"`
	// TTL is the message's lifetime in seconds; zero means the node's
	// default.
	TTL int64 `json:"ttl,omitempty"`
	// SealedSender hides the sender's identity from every node but the
	// recipient.
	SealedSender bool `json:"sealed_sender,omitempty"`
}

// SendResult is msg.send's result.
type SendResult struct {
	// ID is the message ID in hex.
	ID string `json:"id"`
	// Status is "routed" (sent towards the destination), "custody" (no
	// route yet: kept and retried), "awaiting-key" (the destination's key
	// is being fetched; kept meanwhile) or "local" (the destination is this
	// node). In every case but "local" the node keeps the message on disk
	// until the recipient's receipt arrives or the message expires.
	Status string `json:"status"`
	// Detail says the same in a sentence for people.
	Detail string `json:"detail,omitempty"`
	// Expires is when the node gives up on the message.
	Expires time.Time `json:"expires,omitzero"`
}

// InboxParams are msg.inbox's parameters.
type InboxParams struct {
	// After is the cursor: return messages with a sequence number above it
	// (0 for the start).
	After uint64 `json:"after,omitempty"`
	// Limit caps the page (default 100, at most 1000).
	Limit int `json:"limit,omitempty"`
}

// InboxPage is msg.inbox's result.
type InboxPage struct {
	Messages []Message `json:"messages"`
	// Next is the cursor for the following page; equal to After when the
	// page is empty.
	Next uint64 `json:"next"`
	// More is true when more messages follow Next.
	More bool `json:"more"`
	// Corrupt lists inbox entries the node could not read (damaged on
	// disk); they are skipped. msg.ack removes them.
	Corrupt []uint64 `json:"corrupt,omitempty"`
}

// Message is a delivered message in the inbox.
type Message struct {
	Seq uint64 `json:"seq"`
	ID  string `json:"id"`
	// From is the sender's mesh address (hex); for a sealed-sender message
	// it is still known to the recipient.
	From string `json:"from"`
	// FromFingerprint is the sender's key fingerprint.
	FromFingerprint string    `json:"from_fingerprint"`
	Received        time.Time `json:"received"`
	Created         time.Time `json:"created"`
	Expires         time.Time `json:"expires"`
	Payload         []byte    `json:"payload"`
	// Text is the payload when it is valid UTF-8.
	Text string `json:"text,omitempty"`
}

// AckResult is msg.ack's result.
type AckResult struct {
	// Remaining is the number of messages still in the inbox.
	Remaining int `json:"remaining"`
}

// AckParams are msg.ack's parameters.
type AckParams struct {
	// Seqs are the inbox sequence numbers to remove.
	Seqs []uint64 `json:"seqs"`
}

// ConnectParams are node.connect's parameters.
type ConnectParams struct {
	// Addr is a libp2p multiaddr ending in /p2p/<peer ID>.
	Addr string `json:"addr"`
}

// StoreStats is store.stats's result.
type StoreStats struct {
	Custody       int   `json:"custody"`
	Delivered     int   `json:"delivered"`
	Inbox         int   `json:"inbox"`
	EngineRecords int   `json:"engine_records"`
	LSMBytes      int64 `json:"lsm_bytes"`
	VLogBytes     int64 `json:"vlog_bytes"`
}

// Event kinds.
const (
	EventMessage   = "message"    // a message arrived in the inbox (Message set)
	EventDelivered = "delivered"  // a sent message's receipt arrived (ID set)
	EventExpired   = "expired"    // a sent message expired undelivered (ID set)
	EventHandedOff = "handed-off" // a mailbox took custody (ID set)
	EventPeerUp    = "peer-up"    // a meshd link came up (Peer set)
	EventPeerDown  = "peer-down"  // a meshd link went down (Peer set)
	// EventChannelMessage: a message arrived on a joined channel
	// (ChannelMessage set).
	EventChannelMessage = "channel-message"
)

// Event is a node event, pushed as a msg.event notification. Seq counts the
// events sent to this subscription (1, 2, ...); a jump means the subscriber
// fell behind and missed events (re-read the inbox to catch up).
type Event struct {
	Seq     uint64   `json:"seq"`
	Kind    string   `json:"kind"`
	ID      string   `json:"id,omitempty"`
	Message *Message `json:"message,omitempty"`
	Peer    *Peer    `json:"peer,omitempty"`
	// ChannelMessage is set for channel-message events.
	ChannelMessage *ChannelMessage `json:"channel_message,omitempty"`
	// FAPPReservation is set for fapp-reservation events.
	FAPPReservation *FAPPReservation `json:"fapp_reservation,omitempty"`
	// FAPPRegion is the 2-digit region of a fapp-index event.
	FAPPRegion string `json:"fapp_region,omitempty"`
}
