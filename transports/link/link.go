// Package link is the contract every meshd link kind satisfies: libp2p
// streams, plain TCP links, LoRa modems and the in-memory test link. The
// daemon drives all of them through it and turns Info into the routing
// engine's LinkInfo; the conformance suite in link/linktest checks that an
// implementation keeps the promises written here.
//
// A transport hands the daemon a Link once the link is up: for a
// point-to-point link that is after the peer proved its mesh identity (no
// unauthenticated link ever reaches the engine), for a shared medium (a
// radio) once the modem is configured and on the air. Frames then flow
// with Recv and Send until the link goes down: Close from this side, the
// peer closing, or an error; Err says why, and every later call returns an
// error wrapping ErrClosed.
package link

import (
	"context"
	"errors"
	"fmt"
	"time"

	"meshd.dev/meshd/protocol"
)

// Errors every implementation returns (wrapped with %w and details).
var (
	// ErrClosed: the link is down (closed by either side or failed). Recv
	// returns it after the frames that arrived before the end were read.
	ErrClosed = errors.New("link: closed")
	// ErrFrameSize: a frame that is empty or larger than Info().MTU. The
	// link stays up; nothing was sent.
	ErrFrameSize = errors.New("link: frame size out of range")
	// ErrPeerClosed is the Err of a link the peer closed in order.
	ErrPeerClosed = errors.New("link: closed by the peer")
	// ErrLocalClose is the Err of a link this node closed with a nil
	// reason.
	ErrLocalClose = errors.New("link: closed by this node")
)

// Kind is the technology of a link; the daemon maps it one to one onto
// routing.LinkKind.
type Kind uint8

// Link kinds.
const (
	// KindIP is a libp2p stream to one peer (gossip carries broadcasts).
	KindIP Kind = iota + 1
	// KindTCP is a plain framed TCP link to one peer.
	KindTCP
	// KindLoRa is a LoRa modem: a shared medium, slow and duty-cycled.
	KindLoRa
)

func (k Kind) String() string {
	switch k {
	case KindIP:
		return "ip"
	case KindTCP:
		return "tcp"
	case KindLoRa:
		return "lora"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Info describes a link. It does not change while the link is up.
type Info struct {
	Kind Kind
	// Name says what the operator knows the link by: the remote TCP
	// address, the libp2p peer ID, the modem's serial port.
	Name string
	// MTU is the largest frame Send takes, in bytes.
	MTU int
	// Bitrate in bits per second (zero: the engine's default for Kind).
	Bitrate int
	// Shared marks a broadcast medium: a sent frame reaches every
	// neighbour in range and frames arrive from any of them. Such a link
	// has no Peer; the engine addresses next hops inside its frames.
	Shared bool
	// Peer is the mesh identity the point-to-point link's handshake
	// authenticated. It is never nil on a point-to-point link (a transport
	// that cannot authenticate its peer must not report the link), and
	// nil on a shared one.
	Peer *protocol.PublicIdentity
	// Outbound is true when this node opened the link.
	Outbound bool
	// Window is how many frames may be handed to Send before the link
	// reports them done on TxDone (a LoRa modem: 1, the modem holds one
	// frame until it is on the air). Zero: no window, Send queues and
	// TxDone is nil (IP and TCP streams).
	Window int
	// HopAcks asks the engine for hop-by-hop acknowledgements on this link
	// (lossy media).
	HopAcks bool
	// DutyCycle is the share of time the link may transmit (0.01 in the
	// EU868 g1 sub-band); zero means no limit.
	DutyCycle float64
}

// Frame is one frame received on a link. Data belongs to the receiver.
type Frame struct {
	Data []byte
	// Radio is the signal of the frame on a radio link, nil elsewhere.
	Radio *Signal
}

// Signal is what a radio measured while receiving a frame.
type Signal struct {
	RSSI float64 // dBm
	SNR  float64 // dB
}

// Stats are a link's counters since it came up. Implementations count
// frames handed to Send as out when they are written (or put on the air),
// not when queued.
type Stats struct {
	FramesIn, FramesOut uint64
	BytesIn, BytesOut   uint64
	// QueueFrames and QueueBytes are waiting to be written.
	QueueFrames, QueueBytes int
	// Radio holds the radio's figures on a radio link, nil elsewhere.
	Radio *RadioStats
}

// RadioStats are the figures of a radio link.
type RadioStats struct {
	// Last is the signal of the last frame received (nil before one).
	Last *Signal
	// AirtimeUsed is the time this link transmitted in the last hour;
	// AirtimeLeft is what the duty cycle still allows in that hour
	// (negative never; equal to an hour without a duty cycle).
	AirtimeUsed, AirtimeLeft time.Duration
}

// Link is one link that is up. Its methods are safe for concurrent use;
// one goroutine calls Recv, any may call the others.
type Link interface {
	// Info describes the link.
	Info() Info
	// Send hands one frame to the link and returns when the link has
	// taken it (queued, not delivered). The link holds a bounded amount:
	// while its queue is full Send waits (backpressure) until there is
	// room, ctx ends (ctx.Err() is returned) or the link goes down
	// (ErrClosed). A frame that is empty or over Info().MTU is refused
	// with ErrFrameSize at once. Send does not keep frame after it
	// returns. On a link with a Window, at most Window frames may be
	// handed over before TxDone reports them; Send waits for the window
	// like for a full queue. The daemon calls Send from a goroutine of
	// the link's own (never from its node loop) and keeps no more than
	// Window frames (64 on a link without one; with none in flight, one
	// message's fragments, however many) waiting for it; the rest wait in
	// the routing engine. A link that must wait for the air (a
	// duty cycle, a busy channel) may take the frame and wait inside,
	// reporting it on TxDone later, or wait in Send.
	Send(ctx context.Context, frame []byte) error
	// Recv returns the next frame, in the order the peer sent them. It
	// waits until one arrives, ctx ends or the link is down and every
	// frame that arrived before was returned (then ErrClosed). A link
	// whose reader stops calling Recv stops reading from the network, so
	// a slow reader bounds what the sender can push.
	Recv(ctx context.Context) (Frame, error)
	// TxDone reports, on a link with a Window, how many frames finished
	// transmitting (sent on the air or given up) since the last report.
	// Only frames Send accepted (returned nil for) are reported; the
	// caller counts a frame Send refused as done itself. It is nil on
	// links without a Window and is never closed; Done says when to stop
	// reading it.
	TxDone() <-chan int
	// Close takes the link down with reason (nil: an orderly close, the
	// peer sees ErrPeerClosed). Frames still queued may be lost; what
	// they carried is in custody. Close is idempotent.
	Close(reason error) error
	// Done is closed when the link is down.
	Done() <-chan struct{}
	// Err says why the link went down (nil while it is up; wraps
	// ErrPeerClosed when the peer closed it in order).
	Err() error
	// Stats returns the link's counters.
	Stats() Stats
}

// CheckFrame returns ErrFrameSize unless 1 <= len(frame) <= mtu: the check
// every Send starts with.
func CheckFrame(frame []byte, mtu int) error {
	if len(frame) == 0 || len(frame) > mtu {
		return fmt.Errorf("%w: %d bytes (1..%d)", ErrFrameSize, len(frame), mtu)
	}
	return nil
}

// Transport produces links: a TCP listener and its dialers, a LoRa driver
// that brings its modem up again after a replug. The daemon reads Links
// and runs every link it gets until the link's Done.
type Transport interface {
	// Links delivers each link once it is up (point-to-point: after the
	// handshake authenticated the peer). It is closed after Close.
	Links() <-chan Link
	// Close stops the transport and takes its links down.
	Close() error
}

// Waiting is a link a transport tries to bring up: a configured peer being
// redialled, a modem being reopened after it went away.
type Waiting struct {
	Kind Kind
	// Name is what the link will be known by (the peer's host:port, the
	// serial port).
	Name string
	// State is "connecting" (an attempt is under way) or "down" (waiting
	// for the next attempt).
	State string
	// Err is why the last attempt failed or the last link ended (nil if
	// none did yet).
	Err error
	// Retry is when the next attempt starts (zero while connecting).
	Retry time.Time
}

// Reporter is implemented by transports that know of links that are not
// up, so operators see them too (meshctl links lists them).
type Reporter interface {
	Waiting() []Waiting
}
