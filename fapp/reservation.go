package fapp

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"meshd.dev/meshd/protocol"
)

// Reservation message limits.
const (
	// MaxKontaktLen bounds the contact a patient chooses to give.
	MaxKontaktLen = 256
	// MaxPTV11Len bounds the optional PTV 11 data (the form's content as
	// text: date, recommendation, code).
	MaxPTV11Len = 1024
	// MaxNachrichtLen bounds a therapist's note in a response.
	MaxNachrichtLen = 512
	// RequestIDSize is the size of a RequestID.
	RequestIDSize = 16

	messageVersion = 1
	labelResponse  = "fapp/response/v1"
	labelCancel    = "fapp/cancel/v1"
	maxMessageSize = 2 + RequestIDSize + 32 + 2 + 4 + protocol.PublicIdentitySize + 4 + 2 + MaxKontaktLen + 2 + MaxPTV11Len + StampSize
)

// Message kinds (byte 1 of every reservation message).
const (
	KindRequest  = 1
	KindResponse = 2
	KindCancel   = 3
)

// RequestID is a fresh random ID per reservation request: the nonce that
// names the reservation on both sides and that replays are detected by.
type RequestID [RequestIDSize]byte

// NewRequestID draws a request ID from rand.
func NewRequestID(rand io.Reader) (RequestID, error) {
	var id RequestID
	if _, err := io.ReadFull(rand, id[:]); err != nil {
		return id, fmt.Errorf("request ID: reading randomness: %w", err)
	}
	return id, nil
}

// String returns the 32-character lowercase hex form.
func (id RequestID) String() string { return hex.EncodeToString(id[:]) }

// MarshalText implements encoding.TextMarshaler.
func (id RequestID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (id *RequestID) UnmarshalText(b []byte) error {
	v, err := ParseRequestID(string(b))
	*id = v
	return err
}

// ParseRequestID parses the 32-character hex form.
func ParseRequestID(s string) (RequestID, error) {
	var id RequestID
	if len(s) != 2*RequestIDSize {
		return id, fmt.Errorf("request ID %q: want %d hex characters: %w", s, 2*RequestIDSize, ErrMalformed)
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("request ID %q: not hex: %w", s, ErrMalformed)
	}
	return id, nil
}

// Request asks a therapist to reserve a slot. It carries only what the
// patient chooses to give, and travels sealed to the therapist from the
// patient's ephemeral identity (SealMessage), which is all that links the
// patient's later messages to it.
type Request struct {
	ID    RequestID
	Slot  SlotRef
	Start time.Time // the occurrence asked for (weekly places offer several)
	// Patient is the patient's ephemeral public identity, made for this
	// reservation only: responses are sealed to it, cancels signed by it.
	Patient *protocol.PublicIdentity
	Created time.Time // whole seconds
	Kontakt string    // how to reach the patient, as the patient chooses (may be empty)
	PTV11   string    // optional PTV 11 data
	Stamp   Stamp
}

// Response is the therapist's answer: GEHALTEN (with HoldUntil),
// BESTAETIGT or ABGELEHNT, signed by the therapist's key.
type Response struct {
	ID        RequestID
	Slot      SlotRef
	State     ReservationState
	HoldUntil time.Time // GEHALTEN only; zero otherwise
	Created   time.Time
	Nachricht string // optional note (e.g. the address, for a confirmation)
	Signature [protocol.SignatureSize]byte
}

// Cancel cancels a reservation; By is StorniertPatient (signed by the
// patient's ephemeral key) or StorniertTherapeut (signed by the therapist).
type Cancel struct {
	ID        RequestID
	Slot      SlotRef
	By        ReservationState
	Created   time.Time
	Signature [protocol.SignatureSize]byte
}

// Message is a decoded FAPP unicast message: *Request, *Response, *Cancel,
// *RemoteQuery or *QueryAnswer.
type Message interface{ kind() byte }

func (*Request) kind() byte  { return KindRequest }
func (*Response) kind() byte { return KindResponse }
func (*Cancel) kind() byte   { return KindCancel }

func appendSlotRef(b []byte, s SlotRef) []byte {
	b = append(b, s.Therapist[:]...)
	return binary.BigEndian.AppendUint16(b, s.Slot)
}

func readSlotRef(r *reader) SlotRef {
	var s SlotRef
	r.copyInto(s.Therapist[:], "therapist key")
	s.Slot = r.u16("slot ID")
	return s
}

// MarshalBinary encodes the request:
//
//	version 0x01 | kind 0x01 | request ID 16 | therapist key 32 | slot ID u16 |
//	start u32 | patient public identity 1,249 | created u32 |
//	contact (u16 length, text) | PTV 11 (u16 length, text) | stamp 13
func (q *Request) MarshalBinary() ([]byte, error) {
	if err := q.validate(); err != nil {
		return nil, err
	}
	start, _ := unix32("start", q.Start)
	created, _ := unix32("created", q.Created)
	b := []byte{messageVersion, KindRequest}
	b = append(b, q.ID[:]...)
	b = appendSlotRef(b, q.Slot)
	b = binary.BigEndian.AppendUint32(b, start)
	b, _ = q.Patient.AppendBinary(b)
	b = binary.BigEndian.AppendUint32(b, created)
	b = appendStr16(b, q.Kontakt)
	b = appendStr16(b, q.PTV11)
	return q.Stamp.appendTo(b), nil
}

func (q *Request) validate() error {
	if q.Patient == nil {
		return fmt.Errorf("request: no patient key: %w", ErrMalformed)
	}
	if _, err := unix32("request: start", q.Start); err != nil {
		return err
	}
	if _, err := unix32("request: created", q.Created); err != nil {
		return err
	}
	if err := checkString("request: contact", q.Kontakt, MaxKontaktLen); err != nil {
		return err
	}
	return checkString("request: PTV 11 data", q.PTV11, MaxPTV11Len)
}

func (r *Response) appendBody(b []byte) ([]byte, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	created, _ := unix32("created", r.Created)
	var hold uint32
	if r.State == Gehalten {
		hold, _ = unix32("hold until", r.HoldUntil)
	}
	b = append(b, messageVersion, KindResponse)
	b = append(b, r.ID[:]...)
	b = appendSlotRef(b, r.Slot)
	b = append(b, byte(r.State))
	b = binary.BigEndian.AppendUint32(b, hold)
	b = binary.BigEndian.AppendUint32(b, created)
	return appendStr16(b, r.Nachricht), nil
}

func (r *Response) validate() error {
	switch r.State {
	case Gehalten:
		if _, err := unix32("response: hold until", r.HoldUntil); err != nil {
			return err
		}
		if !r.HoldUntil.After(r.Created) {
			return fmt.Errorf("response: hold until %v not after %v: %w", r.HoldUntil, r.Created, ErrImpossible)
		}
	case Bestaetigt, Abgelehnt:
		if !r.HoldUntil.IsZero() {
			return fmt.Errorf("response: %v with a hold time: %w", r.State, ErrImpossible)
		}
	default:
		return fmt.Errorf("response: state %v (want GEHALTEN, BESTAETIGT or ABGELEHNT): %w", r.State, ErrMalformed)
	}
	if _, err := unix32("response: created", r.Created); err != nil {
		return err
	}
	return checkString("response: note", r.Nachricht, MaxNachrichtLen)
}

// MarshalBinary encodes the response:
//
//	version 0x01 | kind 0x02 | request ID 16 | therapist key 32 | slot ID u16 |
//	state u8 | hold until u32 (0 unless GEHALTEN) | created u32 |
//	note (u16 length, text) | Ed25519 signature 64 by the therapist
func (r *Response) MarshalBinary() ([]byte, error) {
	b, err := r.appendBody(nil)
	if err != nil {
		return nil, err
	}
	return append(b, r.Signature[:]...), nil
}

// Sign signs the response with the therapist's identity (which must hold
// r.Slot.Therapist's key).
func (r *Response) Sign(therapist *protocol.Identity) error {
	if TherapistKeyOf(therapist.Compact()) != r.Slot.Therapist {
		return fmt.Errorf("response: signer is not the slot's therapist: %w", ErrMismatch)
	}
	b, err := r.appendBody(nil)
	if err != nil {
		return err
	}
	copy(r.Signature[:], therapist.Sign(labelResponse, b))
	return nil
}

// Verify checks the therapist's signature (against r.Slot.Therapist).
func (r *Response) Verify() error {
	b, err := r.appendBody(nil)
	if err != nil {
		return err
	}
	if !r.Slot.Therapist.verify(labelResponse, b, r.Signature[:]) {
		return fmt.Errorf("response %v: %w", r.ID, ErrBadSignature)
	}
	return nil
}

func (c *Cancel) appendBody(b []byte) ([]byte, error) {
	if c.By != StorniertPatient && c.By != StorniertTherapeut {
		return nil, fmt.Errorf("cancel: by %v (want STORNIERT_PATIENT or STORNIERT_THERAPEUT): %w", c.By, ErrMalformed)
	}
	created, err := unix32("cancel: created", c.Created)
	if err != nil {
		return nil, err
	}
	b = append(b, messageVersion, KindCancel)
	b = append(b, c.ID[:]...)
	b = appendSlotRef(b, c.Slot)
	b = append(b, byte(c.By))
	return binary.BigEndian.AppendUint32(b, created), nil
}

// MarshalBinary encodes the cancel:
//
//	version 0x01 | kind 0x03 | request ID 16 | therapist key 32 | slot ID u16 |
//	by u8 (6 patient, 7 therapist) | created u32 | Ed25519 signature 64
func (c *Cancel) MarshalBinary() ([]byte, error) {
	b, err := c.appendBody(nil)
	if err != nil {
		return nil, err
	}
	return append(b, c.Signature[:]...), nil
}

// Sign signs the cancel with the canceller's identity: the therapist's, or
// the patient's ephemeral one.
func (c *Cancel) Sign(id *protocol.Identity) error {
	b, err := c.appendBody(nil)
	if err != nil {
		return err
	}
	copy(c.Signature[:], id.Sign(labelCancel, b))
	return nil
}

// Verify checks the signature against the canceller's key: the therapist
// key for StorniertTherapeut, patient (the request's ephemeral key) for
// StorniertPatient.
func (c *Cancel) Verify(patient protocol.CompactIdentity) error {
	b, err := c.appendBody(nil)
	if err != nil {
		return err
	}
	key := c.Slot.Therapist
	if c.By == StorniertPatient {
		key = TherapistKey(patient.SigningKey)
	}
	if !key.verify(labelCancel, b, c.Signature[:]) {
		return fmt.Errorf("cancel %v by %v: %w", c.ID, c.By, ErrBadSignature)
	}
	return nil
}

// ParseMessage decodes a FAPP unicast message strictly (byte 1 is the kind). It checks a
// response's signature (the therapist key is in it) but not a cancel's
// (which key signs depends on the reservation: Book and PatientBook check).
func ParseMessage(b []byte) (Message, error) {
	if len(b) > max(maxMessageSize, MaxAnswerSize) {
		return nil, fmt.Errorf("reservation message: %d bytes, limit %d: %w", len(b), maxMessageSize, ErrTooLarge)
	}
	r := newReader("reservation message", b)
	v, k := r.u8("version"), r.u8("kind")
	if r.err != nil {
		return nil, r.err
	}
	if k != KindAnswer && len(b) > maxMessageSize {
		return nil, fmt.Errorf("reservation message: %d bytes, limit %d: %w", len(b), maxMessageSize, ErrTooLarge)
	}
	if v != messageVersion {
		return nil, fmt.Errorf("reservation message: version %d: %w", v, ErrUnknownVersion)
	}
	switch k {
	case KindRequest:
		return readRequest(r)
	case KindResponse:
		return readResponse(r)
	case KindCancel:
		return readCancel(r)
	case KindQuery:
		return readRemoteQuery(r)
	case KindAnswer:
		return readAnswer(r)
	}
	return nil, fmt.Errorf("reservation message: kind %d: %w", k, ErrUnknownVersion)
}

func readRequest(r *reader) (*Request, error) {
	r.what = "request"
	q := &Request{}
	r.copyInto(q.ID[:], "request ID")
	q.Slot = readSlotRef(r)
	q.Start = r.time32("start")
	idBytes := r.take(protocol.PublicIdentitySize, "patient key")
	q.Created = r.time32("created")
	q.Kontakt = r.str16("contact", MaxKontaktLen)
	q.PTV11 = r.str16("PTV 11 data", MaxPTV11Len)
	q.Stamp = readStamp(r)
	if err := r.done(); err != nil {
		return nil, err
	}
	var err error
	if q.Patient, err = protocol.ParsePublicIdentity(idBytes); err != nil {
		return nil, fmt.Errorf("request: patient key: %w: %w", ErrMalformed, err)
	}
	return q, nil
}

func readResponse(r *reader) (*Response, error) {
	r.what = "response"
	p := &Response{}
	r.copyInto(p.ID[:], "request ID")
	p.Slot = readSlotRef(r)
	p.State = ReservationState(r.u8("state"))
	hold := r.u32("hold until")
	p.Created = r.time32("created")
	p.Nachricht = r.str16("note", MaxNachrichtLen)
	r.copyInto(p.Signature[:], "signature")
	if err := r.done(); err != nil {
		return nil, err
	}
	if hold != 0 || p.State == Gehalten {
		p.HoldUntil = time.Unix(int64(hold), 0).UTC()
	}
	if err := p.Verify(); err != nil {
		return nil, err
	}
	return p, nil
}

func readCancel(r *reader) (*Cancel, error) {
	r.what = "cancel"
	c := &Cancel{}
	r.copyInto(c.ID[:], "request ID")
	c.Slot = readSlotRef(r)
	c.By = ReservationState(r.u8("by"))
	c.Created = r.time32("created")
	r.copyInto(c.Signature[:], "signature")
	if err := r.done(); err != nil {
		return nil, err
	}
	if _, err := c.appendBody(nil); err != nil {
		return nil, err
	}
	return c, nil
}

// SealMessage seals an encoded reservation message to one recipient (the
// therapist's profile identity, or the patient's ephemeral identity from
// the request), from the sender's identity, hidden from everyone else
// (a sealed-sender envelope of type fapp, valid for ttl). The result is end
// to end: a FAPP relay or custodian that carries it cannot read it. The
// daemon carries these bytes as the body of its own unicast envelope.
func SealMessage(rand io.Reader, from *protocol.Identity, to *protocol.PublicIdentity, msg []byte, now time.Time, ttl time.Duration) ([]byte, error) {
	id, err := protocol.NewMessageID(rand)
	if err != nil {
		return nil, err
	}
	h := protocol.Header{Type: protocol.TypeFAPP, HopLimit: 1, ID: id, Dest: to.Address(),
		Created: protocol.TimestampOf(now), Expires: protocol.TimestampOf(now.Add(ttl))}
	e, err := protocol.SealEnvelope(rand, from, to, h, msg, protocol.SealOptions{SealedSender: true})
	if err != nil {
		return nil, fmt.Errorf("seal reservation message: %w", err)
	}
	return e.MarshalBinary()
}

// OpenMessage opens what SealMessage sealed to me, checks its time at now
// and decodes it. It returns the sender's compact identity (the patient's
// ephemeral one for a request; Book checks that it is the request's).
func OpenMessage(me *protocol.Identity, sealed []byte, now time.Time) (Message, protocol.CompactIdentity, error) {
	e, err := protocol.ParseEnvelope(sealed)
	if err != nil {
		return nil, protocol.CompactIdentity{}, fmt.Errorf("open reservation message: %w: %w", ErrMalformed, err)
	}
	if e.Type != protocol.TypeFAPP {
		return nil, protocol.CompactIdentity{}, fmt.Errorf("open reservation message: envelope type %v: %w", e.Type, ErrMalformed)
	}
	if err := e.CheckTime(now, DefaultClockSkew); err != nil {
		sentinel := ErrExpired
		if errors.Is(err, protocol.ErrFromFuture) {
			sentinel = ErrFromFuture
		}
		return nil, protocol.CompactIdentity{}, fmt.Errorf("open reservation message: %w: %w", sentinel, err)
	}
	o, err := e.Open(me)
	if err != nil {
		sentinel := ErrBadSignature // a failed decryption or inner signature
		if errors.Is(err, protocol.ErrNotForUs) {
			sentinel = ErrMismatch
		}
		return nil, protocol.CompactIdentity{}, fmt.Errorf("open reservation message: %w: %w", sentinel, err)
	}
	m, err := ParseMessage(o.Body)
	if err != nil {
		return nil, protocol.CompactIdentity{}, err
	}
	return m, o.Sender, nil
}
