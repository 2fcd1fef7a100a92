package protocol

import "fmt"

// Hop-by-hop routing control frames. They carry what the routing engine
// tells its neighbours: routes (adverts), which neighbour a unicast frame on a
// shared medium is for (hop frames), requests for routes (path requests),
// per-link acknowledgements (hop acks) and the custody hand-off to mailboxes
// (custody offers and answers). Each speaks to the neighbours on one link:
// whatever is passed further is re-encoded by the next node.
//
// Nothing in these frames is signed except what they wrap (the announce of
// an advert, the envelope of a custody offer). On a radio anyone can send
// them, so a receiver treats their unsigned fields (forwarder, metric, next
// hop, acknowledgements) as claims of the link, not of their origin.

// Control frame sizes and limits.
const (
	// AdvertHeaderSize is an advert without its announce: kind, forwarder
	// and metric.
	AdvertHeaderSize = 1 + AddressSize + 2 // 19
	// AdvertCompactSize is an advert carrying a compact announce; it fits
	// one LoRa frame.
	AdvertCompactSize = AdvertHeaderSize + AnnounceCompactSize // 160
	// MaxAdvertSize bounds an encoded advert.
	MaxAdvertSize = AdvertHeaderSize + MaxAnnounceSize

	// HopHeaderSize is a hop frame without its inner frame.
	HopHeaderSize = 1 + AddressSize // 17
	// MaxHopSize bounds a hop frame: the header and the largest frame it
	// may carry, a custody offer of the largest envelope.
	MaxHopSize = HopHeaderSize + MaxCustodyOfferSize

	// PathRequestSize is the size of a path request without a sequence
	// number requirement.
	PathRequestSize = 1 + PathRequestIDSize + AddressSize + 1 + 1 // 27
	// PathRequestSeqnoSize is the size of a path request with one
	// ([PathSeqno]); it is also the largest path request.
	PathRequestSeqnoSize = PathRequestSize + 4 // 31
	// MaxPathRequestSize is the largest path request: with a sequence
	// number and a forwarder ([PathForwarder]).
	MaxPathRequestSize = PathRequestSeqnoSize + AddressSize // 47
	// PathRequestIDSize is the size of a path request's random ID.
	PathRequestIDSize = 8
	// MaxPathRequestHops is the largest hop limit a path request can carry
	// (the hop limit is a 4-bit field).
	MaxPathRequestHops = 15

	// HopAckSize is the size of a hop acknowledgement.
	HopAckSize = 1 + len(MessageID{}) // 17

	// MaxCustodyOfferSize bounds an encoded custody offer.
	MaxCustodyOfferSize = 1 + MaxEnvelopeSize
	// CustodyAcceptSize is the size of a custody answer.
	CustodyAcceptSize = 1 + len(MessageID{}) + 1 // 18
)

// MetricInfinite is the metric of a retraction: the forwarder no longer has
// a route to the announce's origin.
const MetricInfinite uint16 = 0xFFFF

// PathWantKEMKey is the path request flag asking that the answer carry the
// target's full KEM key (needed to seal to it), not only a compact announce.
const PathWantKEMKey byte = 1 << 0

// PathSeqno is the path request flag saying that a 4-byte sequence number
// follows the flags: the requester wants a route for at least that
// sequence number of the target's announce (a Babel seqno request).
const PathSeqno byte = 1 << 1

// PathForwarder is the path request flag saying that the address of the
// node that passed the request on follows (after the sequence number, if
// any): on a shared radio link the answer then goes back to that one
// neighbour, hop-wrapped, instead of being broadcast to every node that
// passed the request on (which then all answered in turn, a second flood).
// The requester itself never sets it, so its neighbours do not learn who
// is looking for whom.
const PathForwarder byte = 1 << 2

const pathKnownFlags = PathWantKEMKey | PathSeqno | PathForwarder

// Advert is a route advertisement: the origin's signed announce, plus the
// unsigned routing information that changes at every hop.
//
//	0      1                  17         19
//	+------+------------------+----------+------------------------
//	| 0x18 | forwarder address| metric   | announce (kind 0x11 encoding)
//	+------+------------------+----------+------------------------
//
// The fields:
//   - forwarder is the address of the node that transmitted this frame: the
//     route's next hop towards the origin. It is in the frame because a LoRa
//     medium has no link-level source address. It is never zero.
//   - metric is the route's cost from the forwarder to the announce's origin
//     (big endian), 0 when the forwarder is the origin. [MetricInfinite]
//     (0xFFFF) retracts the route: the forwarder has lost it.
//   - announce is the origin's announce, byte for byte as the origin (or the
//     previous forwarder) encoded it, compact on constrained links.
//
// Neither forwarder nor metric is signed: the announce proves who the origin
// is and what it offers, but a neighbour's claim to reach it at some cost is
// only as good as the neighbour, as in any distance-vector protocol. The
// parser does not relate the two (for example, metric 0 with a forwarder
// that is not the origin); that is for the routing engine to judge.
type Advert struct {
	Forwarder Address
	Metric    uint16
	// Announce is the decoded announce. It is not verified.
	Announce *Announce
	// AnnounceRaw is the encoded announce; it aliases the parsed input (with
	// its capacity capped, so appending to it copies). A caller that keeps
	// the bytes of announces it verified can skip verifying identical bytes
	// again, but must still check their freshness. The announce's hop count
	// (byte 1) is not signed, so the same announce may arrive with other
	// bytes there.
	AnnounceRaw []byte
}

// Retraction reports whether the advert withdraws the route.
func (a *Advert) Retraction() bool { return a.Metric == MetricInfinite }

// ParseAdvert decodes an advert strictly, including its announce (with
// [ParseAnnounce], which does not verify it). The forwarder must not be the
// zero address; any metric is allowed.
func ParseAdvert(b []byte) (*Advert, error) {
	if len(b) > MaxAdvertSize {
		return nil, fmt.Errorf("advert: %d bytes, limit %d: %w", len(b), MaxAdvertSize, ErrTooLarge)
	}
	r := newReader("advert", b)
	if k := Kind(r.u8("kind")); r.err == nil && k != KindAdvert {
		return nil, fmt.Errorf("advert: %v: %w", k, ErrUnknownKind)
	}
	a := &Advert{}
	r.copyInto(a.Forwarder[:], "forwarder")
	a.Metric = r.u16("metric")
	if r.err != nil {
		return nil, r.err
	}
	if a.Forwarder.IsZero() {
		return nil, fmt.Errorf("advert: zero forwarder address: %w", ErrMalformed)
	}
	raw := b[AdvertHeaderSize:len(b):len(b)]
	ann, err := ParseAnnounce(raw)
	if err != nil {
		return nil, fmt.Errorf("advert: %w", err)
	}
	a.Announce, a.AnnounceRaw = ann, raw
	return a, nil
}

// AppendAdvert appends an advert to b. announceRaw is an encoded announce,
// for example the AnnounceRaw of a received advert being passed on with a
// new forwarder and metric. AppendAdvert does not validate its arguments.
func AppendAdvert(b []byte, forwarder Address, metric uint16, announceRaw []byte) []byte {
	b = append(b, byte(KindAdvert))
	b = append(b, forwarder[:]...)
	b = appendU16(b, metric)
	return append(b, announceRaw...)
}

// ParseHop decodes a hop frame: unicast on a shared medium, such as a radio
// channel on which every neighbour hears every frame.
//
//	0      1                  17
//	+------+------------------+-----------------
//	| 0x19 | next hop address | inner frame
//	+------+------------------+-----------------
//
// The fields:
//   - next hop is the address of the one neighbour that should act on the
//     inner frame; every other node that hears it drops it. It is never zero.
//   - inner frame is a complete frame of any known kind but [KindHop] and
//     [KindFragment]. Hop frames do not nest, and fragmentation wraps the
//     whole hop frame, not the other way round: the next hop is sent once
//     per object rather than once per fragment, and a reassembled object is
//     handled like any other frame from the link.
//
// The next hop is not authenticated: it steers, it does not protect. What the
// inner frame carries is protected by its own signature or AEAD.
//
// ParseHop checks only the inner frame's kind; the caller decodes it with
// the parser of that kind. The returned inner frame aliases b, with its
// capacity capped.
func ParseHop(b []byte) (next Address, inner []byte, err error) {
	if len(b) > MaxHopSize {
		return Address{}, nil, fmt.Errorf("hop frame: %d bytes, limit %d: %w", len(b), MaxHopSize, ErrTooLarge)
	}
	r := newReader("hop frame", b)
	if k := Kind(r.u8("kind")); r.err == nil && k != KindHop {
		return Address{}, nil, fmt.Errorf("hop frame: %v: %w", k, ErrUnknownKind)
	}
	r.copyInto(next[:], "next hop")
	if r.err != nil {
		return Address{}, nil, r.err
	}
	if next.IsZero() {
		return Address{}, nil, fmt.Errorf("hop frame: zero next hop address: %w", ErrMalformed)
	}
	if r.remaining() == 0 {
		return Address{}, nil, fmt.Errorf("hop frame: no inner frame: %w", ErrTruncated)
	}
	inner = b[HopHeaderSize:len(b):len(b)]
	k, err := PeekKind(inner)
	if err != nil {
		return Address{}, nil, fmt.Errorf("hop frame: inner frame: %w", err)
	}
	if k == KindHop || k == KindFragment {
		return Address{}, nil, fmt.Errorf("hop frame: inner frame of kind %v: %w", k, ErrMalformed)
	}
	return next, inner, nil
}

// AppendHop appends a hop frame for next carrying inner to b. It does not
// validate its arguments.
func AppendHop(b []byte, next Address, inner []byte) []byte {
	b = append(b, byte(KindHop))
	b = append(b, next[:]...)
	return append(b, inner...)
}

// PathRequest asks the mesh for a route to a destination, optionally for a
// sequence number at least as new as a given one, and optionally for its KEM
// key. It is flooded with a hop limit; a node that knows a route good enough
// answers with an advert on the link the request came from.
//
//	0      1            9               25     26      27          31            47
//	+------+------------+---------------+------+-------+-----------+-------------+
//	| 0x1A | request ID | target address| hops | flags | [seqno]   | [forwarder] |
//	+------+------------+---------------+------+-------+-----------+-------------+
//
//	hops:  bits 7-4 hop limit (1..15), bits 3-0 hop count (0..limit)
//	flags: bit 0 PathWantKEMKey, bit 1 PathSeqno, bit 2 PathForwarder; other
//	       bits are rejected
//	seqno: present (4 bytes, big endian) if and only if PathSeqno is set
//	forwarder: present (16 bytes, non-zero) if and only if PathForwarder is
//	       set (offsets shift by 4 without a seqno)
//
// The fields:
//
//   - request ID is 8 random bytes from the requester's injected random
//     source: the key under which nodes suppress duplicates of the flood.
//
//   - target is the address a route is wanted for. It is never zero.
//
//   - hops is the only field a forwarder changes
//     ([IncrementPathRequestHops]), with the same rules as a channel frame's.
//
//   - [PathWantKEMKey] asks for the target's full KEM key in the answer, for
//     a requester that wants to seal to the target.
//
//   - seqno, with [PathSeqno], asks for a route whose announce sequence
//     number is at least seqno (RFC 8966 section 3.8.1.2): a requester
//     whose feasibility condition refuses every route it has asks for one
//     more than the sequence number of its feasibility distance. Only a
//     route that new answers; the target issues a new sequence number only
//     when its own is below seqno. Without the flag any route answers and
//     nobody issues a new sequence number.
//
//   - forwarder, with [PathForwarder], is the neighbour that passed the
//     request on, so that an answer on a shared radio link goes to it alone.
//
// There is no requester address: nodes answer on the link the request came
// from (to its forwarder on a shared link), hop by hop back along the flood,
// and the requester sends no forwarder, so a request does not tell the mesh
// who is looking for whom. Nothing is signed: a forwarder that names another
// node only sends that node an answer it would have overheard anyway.
type PathRequest struct {
	ID                 [PathRequestIDSize]byte
	Target             Address
	HopLimit, HopCount uint8
	WantKEMKey         bool
	// HasSeqno says that Seqno is a requirement; without it Seqno is
	// neither encoded nor decoded.
	HasSeqno bool
	Seqno    uint32
	// Forwarder is the node that passed the request on; zero if absent
	// (the requester's own request, or a point-to-point link).
	Forwarder Address
}

// ParsePathRequest decodes a path request strictly: exactly PathRequestSize
// bytes (4 more with [PathSeqno], 16 more with [PathForwarder]), hop limit
// 1..15 with the hop count at most the limit, a non-zero target and
// forwarder, and no unknown flag bits.
func ParsePathRequest(b []byte) (PathRequest, error) {
	r := newReader("path request", b)
	if k := Kind(r.u8("kind")); r.err == nil && k != KindPathRequest {
		return PathRequest{}, fmt.Errorf("path request: %v: %w", k, ErrUnknownKind)
	}
	var p PathRequest
	r.copyInto(p.ID[:], "request ID")
	r.copyInto(p.Target[:], "target")
	hops := r.u8("hops")
	flags := r.u8("flags")
	if r.err == nil && flags&^pathKnownFlags != 0 {
		return PathRequest{}, fmt.Errorf("path request: unknown flags 0x%02x: %w", flags&^pathKnownFlags, ErrMalformed)
	}
	if flags&PathSeqno != 0 {
		p.HasSeqno, p.Seqno = true, r.u32("seqno")
	}
	if flags&PathForwarder != 0 {
		r.copyInto(p.Forwarder[:], "forwarder")
	}
	if err := r.done(); err != nil {
		return PathRequest{}, err
	}
	if flags&PathForwarder != 0 && p.Forwarder.IsZero() {
		return PathRequest{}, fmt.Errorf("path request: zero forwarder address: %w", ErrMalformed)
	}
	if err := checkChannelHops(hops); err != nil {
		return PathRequest{}, fmt.Errorf("path request: %w", err)
	}
	if p.Target.IsZero() {
		return PathRequest{}, fmt.Errorf("path request: zero target address: %w", ErrMalformed)
	}
	p.HopLimit, p.HopCount = hops>>4, hops&0x0f
	p.WantKEMKey = flags&PathWantKEMKey != 0
	return p, nil
}

// AppendTo appends the encoded path request to b. It encodes the fields as
// they are: the hop limit and count must fit in 4 bits each.
func (p PathRequest) AppendTo(b []byte) []byte {
	b = append(b, byte(KindPathRequest))
	b = append(b, p.ID[:]...)
	b = append(b, p.Target[:]...)
	var flags byte
	if p.WantKEMKey {
		flags |= PathWantKEMKey
	}
	if p.HasSeqno {
		flags |= PathSeqno
	}
	if !p.Forwarder.IsZero() {
		flags |= PathForwarder
	}
	b = append(b, p.HopLimit<<4|p.HopCount&0x0f, flags)
	if p.HasSeqno {
		b = appendU32(b, p.Seqno)
	}
	if !p.Forwarder.IsZero() {
		b = append(b, p.Forwarder[:]...)
	}
	return b
}

// IncrementPathRequestHops adds one hop to an encoded path request in place,
// for a node that passes the request on. It fails with ErrHopLimit when the
// hop count has reached the hop limit, and with the error of
// [ParsePathRequest] for a frame that does not decode; raw is then
// unchanged.
func IncrementPathRequestHops(raw []byte) error {
	p, err := ParsePathRequest(raw)
	if err != nil {
		return fmt.Errorf("increment path request hops: %w", err)
	}
	if p.HopCount >= p.HopLimit {
		return fmt.Errorf("increment path request hops: %d of %d: %w", p.HopCount, p.HopLimit, ErrHopLimit)
	}
	raw[pathRequestHopsOffset]++
	return nil
}

const pathRequestHopsOffset = 1 + PathRequestIDSize + AddressSize // 25

// ParseHopAck decodes a hop acknowledgement: the neighbour that sends it has
// received the envelope with this message ID, so the sender may stop
// retransmitting it on that link (hop-by-hop reliability on lossy links;
// end-to-end delivery is what signed receipts confirm).
//
//	0      1                 17
//	+------+-----------------+
//	| 0x1B | message ID      |
//	+------+-----------------+
//
// A hop ack is not signed: a forged one can at worst stop retransmissions on
// one link, which a lost frame could do as well.
func ParseHopAck(b []byte) (MessageID, error) {
	r := newReader("hop ack", b)
	if k := Kind(r.u8("kind")); r.err == nil && k != KindHopAck {
		return MessageID{}, fmt.Errorf("hop ack: %v: %w", k, ErrUnknownKind)
	}
	var id MessageID
	r.copyInto(id[:], "message ID")
	if err := r.done(); err != nil {
		return MessageID{}, err
	}
	return id, nil
}

// AppendHopAck appends a hop acknowledgement for id to b.
func AppendHopAck(b []byte, id MessageID) []byte {
	b = append(b, byte(KindHopAck))
	return append(b, id[:]...)
}

// ParseCustodyOffer decodes a custody offer: a node asks its neighbour, a
// mailbox, to keep an envelope until the envelope's offline destination
// comes back. The mailbox answers with a custody answer
// ([ParseCustodyAccept]) naming the envelope's message ID.
//
//	0      1
//	+------+-----------------------------------
//	| 0x1C | envelope (kind 0x10 encoding)
//	+------+-----------------------------------
//
// The envelope is decoded with [ParseEnvelope], so its form, hop and time
// rules are checked, but not its signature: the mailbox verifies it (as any
// forwarder does) before it accepts custody. The envelope's payload aliases
// b; its encoded bytes are b[1:].
func ParseCustodyOffer(b []byte) (*Envelope, error) {
	if len(b) > MaxCustodyOfferSize {
		return nil, fmt.Errorf("custody offer: %d bytes, limit %d: %w", len(b), MaxCustodyOfferSize, ErrTooLarge)
	}
	r := newReader("custody offer", b)
	if k := Kind(r.u8("kind")); r.err == nil && k != KindCustodyOffer {
		return nil, fmt.Errorf("custody offer: %v: %w", k, ErrUnknownKind)
	}
	if r.err != nil {
		return nil, r.err
	}
	e, err := ParseEnvelope(r.rest())
	if err != nil {
		return nil, fmt.Errorf("custody offer: %w", err)
	}
	return e, nil
}

// AppendCustodyOffer appends a custody offer of the encoded envelope
// envelopeRaw to b. It does not validate the envelope.
func AppendCustodyOffer(b []byte, envelopeRaw []byte) []byte {
	b = append(b, byte(KindCustodyOffer))
	return append(b, envelopeRaw...)
}

// CustodyStatus is a mailbox's answer to a custody offer. Unknown values are
// rejected by the decoder.
type CustodyStatus uint8

// Custody statuses.
const (
	// CustodyAccepted: the mailbox keeps the envelope, and has stored it
	// durably before answering.
	CustodyAccepted CustodyStatus = 0
	// CustodyRefusedQuota: the mailbox is full, or the destination's or the
	// offering node's share of it is; another mailbox may accept.
	CustodyRefusedQuota CustodyStatus = 1
	// CustodyRefusedPolicy: the mailbox does not keep this envelope (for
	// example it keeps mail only for some destinations, or the envelope
	// failed verification); offering it again will not help.
	CustodyRefusedPolicy CustodyStatus = 2
	maxCustodyStatus                   = CustodyRefusedPolicy
)

func (s CustodyStatus) String() string {
	switch s {
	case CustodyAccepted:
		return "accepted"
	case CustodyRefusedQuota:
		return "refused-quota"
	case CustodyRefusedPolicy:
		return "refused-policy"
	}
	return fmt.Sprintf("custody-status(%d)", uint8(s))
}

// ParseCustodyAccept decodes a mailbox's answer to a custody offer.
//
//	0      1                 17       18
//	+------+-----------------+--------+
//	| 0x1D | message ID      | status |
//	+------+-----------------+--------+
//
// The fields:
//   - message ID names the offered envelope.
//   - status is a [CustodyStatus]: 0 accepted, 1 refused for quota, 2 refused
//     by policy; other values are rejected.
//
// The answer is not signed. On an authenticated link (a libp2p stream) it
// comes from the neighbour the envelope was offered to; on a radio anyone can
// send it, so a node that drops its own copy on [CustodyAccepted] heard there
// trusts the medium.
func ParseCustodyAccept(b []byte) (MessageID, CustodyStatus, error) {
	r := newReader("custody accept", b)
	if k := Kind(r.u8("kind")); r.err == nil && k != KindCustodyAccept {
		return MessageID{}, 0, fmt.Errorf("custody accept: %v: %w", k, ErrUnknownKind)
	}
	var id MessageID
	r.copyInto(id[:], "message ID")
	status := CustodyStatus(r.u8("status"))
	if err := r.done(); err != nil {
		return MessageID{}, 0, err
	}
	if status > maxCustodyStatus {
		return MessageID{}, 0, fmt.Errorf("custody accept: %v: %w", status, ErrMalformed)
	}
	return id, status, nil
}

// AppendCustodyAccept appends a custody answer for the envelope id to b. It
// does not validate status.
func AppendCustodyAccept(b []byte, id MessageID, status CustodyStatus) []byte {
	b = append(b, byte(KindCustodyAccept))
	b = append(b, id[:]...)
	return append(b, byte(status))
}

// ExpiryNoticeSize is the size of an expiry notice.
const ExpiryNoticeSize = 1 + 16

// ParseExpiryNotice decodes an expiry notice: a node that kept a message in
// custody tells its sender that the message expired undelivered. It travels
// as the payload of a signed control envelope from the custodian, so the
// sender knows who gave up.
//
//	0      1            17
//	+------+------------+
//	| 0x1E | message ID |
//	+------+------------+
func ParseExpiryNotice(b []byte) (MessageID, error) {
	r := newReader("expiry notice", b)
	if k := Kind(r.u8("kind")); r.err == nil && k != KindExpiryNotice {
		return MessageID{}, fmt.Errorf("expiry notice: %v: %w", k, ErrUnknownKind)
	}
	var id MessageID
	r.copyInto(id[:], "message ID")
	if err := r.done(); err != nil {
		return MessageID{}, err
	}
	return id, nil
}

// AppendExpiryNotice appends an expiry notice for id to b.
func AppendExpiryNotice(b []byte, id MessageID) []byte {
	b = append(b, byte(KindExpiryNotice))
	return append(b, id[:]...)
}
