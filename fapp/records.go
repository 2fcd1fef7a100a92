package fapp

import (
	"encoding/binary"
	"fmt"
	"time"

	"meshd.dev/meshd/protocol"
)

// Records are how a node persists reservations (the daemon keeps them in
// its store and puts them back with Book.Restore and PatientBook.Restore).
// They are local data, but decoded as strictly as wire input: a damaged
// store must give an error, not a reservation in a wrong state.

const (
	recordVersion         = 1
	kindReservationRecord = 0x10
	kindPatientRecord     = 0x11
	maxRecordSize         = 2 + 1 + 4 + 4 + 4 + protocol.PrivateIdentitySize + protocol.PublicIdentitySize +
		2 + maxMessageSize + 2 + MaxNachrichtLen + 2 + maxMessageSize
)

// MarshalBinary encodes the therapist-side record:
//
//	version 0x01 | kind 0x10 | state u8 | hold until u32 | received u32 |
//	updated u32 | request (u16 length, request message)
func (r *Reservation) MarshalBinary() ([]byte, error) {
	req, err := r.Request.MarshalBinary()
	if err != nil {
		return nil, err
	}
	b := []byte{recordVersion, kindReservationRecord, byte(r.State)}
	for _, t := range []time.Time{r.HoldUntil, r.Received, r.Updated} {
		v, err := optUnix32(t)
		if err != nil {
			return nil, err
		}
		b = binary.BigEndian.AppendUint32(b, v)
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(req)))
	return append(b, req...), nil
}

// ParseReservation decodes a record written by Reservation.MarshalBinary.
func ParseReservation(b []byte) (Reservation, error) {
	if len(b) > maxRecordSize {
		return Reservation{}, fmt.Errorf("reservation record: %d bytes: %w", len(b), ErrTooLarge)
	}
	rd := newReader("reservation record", b)
	v, k := rd.u8("version"), rd.u8("kind")
	if rd.err == nil && (v != recordVersion || k != kindReservationRecord) {
		return Reservation{}, fmt.Errorf("reservation record: version %d kind 0x%02x: %w", v, k, ErrUnknownVersion)
	}
	r := Reservation{State: ReservationState(rd.u8("state"))}
	r.HoldUntil, r.Received, r.Updated = optTime(rd.u32("hold until")), optTime(rd.u32("received")), optTime(rd.u32("updated"))
	req := rd.blob("request", maxMessageSize)
	if err := rd.done(); err != nil {
		return Reservation{}, err
	}
	q, err := parseRequest(req)
	if err != nil {
		return Reservation{}, fmt.Errorf("reservation record: %w", err)
	}
	r.Request = *q
	if err := checkRecordState(r.State, r.HoldUntil); err != nil {
		return Reservation{}, err
	}
	return r, nil
}

func checkRecordState(st ReservationState, hold time.Time) error {
	if !st.Valid() || (st == Gehalten) == hold.IsZero() {
		return fmt.Errorf("reservation record: state %v with hold %v: %w", st, hold, ErrMalformed)
	}
	return nil
}

func parseRequest(b []byte) (*Request, error) {
	m, err := ParseMessage(b)
	if err != nil {
		return nil, err
	}
	q, ok := m.(*Request)
	if !ok {
		return nil, fmt.Errorf("a %T where a request belongs: %w", m, ErrMalformed)
	}
	return q, nil
}

// MarshalBinary encodes the patient-side record, including the ephemeral
// identity's private key (store it like any key):
//
//	version 0x01 | kind 0x11 | state u8 | hold until u32 | updated u32 |
//	ephemeral identity (69 bytes, protocol key file format) |
//	therapist public identity 1,249 | request (u16 length, message) |
//	note (u16 length, text) | confirmation (u16 length, response; 0: none)
func (p *PatientReservation) MarshalBinary() ([]byte, error) {
	if p.Identity == nil || p.Therapist == nil {
		return nil, fmt.Errorf("patient record: no identity: %w", ErrMalformed)
	}
	req, err := p.Request.MarshalBinary()
	if err != nil {
		return nil, err
	}
	var conf []byte
	if p.Confirmation != nil {
		if conf, err = p.Confirmation.MarshalBinary(); err != nil {
			return nil, err
		}
	}
	hold, err1 := optUnix32(p.HoldUntil)
	upd, err2 := optUnix32(p.Updated)
	if err1 != nil || err2 != nil || checkString("patient record: note", p.Nachricht, MaxNachrichtLen) != nil {
		return nil, fmt.Errorf("patient record: times or note out of range: %w", ErrMalformed)
	}
	b := []byte{recordVersion, kindPatientRecord, byte(p.State)}
	b = binary.BigEndian.AppendUint32(b, hold)
	b = binary.BigEndian.AppendUint32(b, upd)
	idb, _ := p.Identity.MarshalBinary()
	b = append(b, idb...)
	b, _ = p.Therapist.AppendBinary(b)
	b = binary.BigEndian.AppendUint16(b, uint16(len(req)))
	b = append(b, req...)
	b = appendStr16(b, p.Nachricht)
	b = binary.BigEndian.AppendUint16(b, uint16(len(conf)))
	return append(b, conf...), nil
}

// ParsePatientReservation decodes a record written by
// PatientReservation.MarshalBinary, checking that the ephemeral identity is
// the request's and the confirmation the therapist's answer to it.
func ParsePatientReservation(b []byte) (PatientReservation, error) {
	if len(b) > maxRecordSize {
		return PatientReservation{}, fmt.Errorf("patient record: %d bytes: %w", len(b), ErrTooLarge)
	}
	rd := newReader("patient record", b)
	v, k := rd.u8("version"), rd.u8("kind")
	if rd.err == nil && (v != recordVersion || k != kindPatientRecord) {
		return PatientReservation{}, fmt.Errorf("patient record: version %d kind 0x%02x: %w", v, k, ErrUnknownVersion)
	}
	p := PatientReservation{State: ReservationState(rd.u8("state"))}
	p.HoldUntil, p.Updated = optTime(rd.u32("hold until")), optTime(rd.u32("updated"))
	idb := rd.take(protocol.PrivateIdentitySize, "identity")
	thb := rd.take(protocol.PublicIdentitySize, "therapist identity")
	req := rd.blob("request", maxMessageSize)
	p.Nachricht = rd.str16("note", MaxNachrichtLen)
	conf := rd.blob("confirmation", maxMessageSize)
	if err := rd.done(); err != nil {
		return PatientReservation{}, err
	}
	if err := p.decodeParts(idb, thb, req, conf); err != nil {
		return PatientReservation{}, err
	}
	return p, checkRecordState(p.State, p.HoldUntil)
}

func (p *PatientReservation) decodeParts(idb, thb, req, conf []byte) error {
	var err error
	if p.Identity, err = protocol.ParseIdentity(idb); err != nil {
		return fmt.Errorf("patient record: %w: %w", ErrMalformed, err)
	}
	if p.Therapist, err = protocol.ParsePublicIdentity(thb); err != nil {
		return fmt.Errorf("patient record: %w: %w", ErrMalformed, err)
	}
	q, err := parseRequest(req)
	if err != nil {
		return fmt.Errorf("patient record: %w", err)
	}
	p.Request = *q
	if !q.Patient.Equal(p.Identity.Public()) || TherapistKeyOf(p.Therapist.Compact()) != q.Slot.Therapist {
		return fmt.Errorf("patient record: keys do not belong to the request: %w", ErrMismatch)
	}
	if len(conf) == 0 {
		return nil
	}
	m, err := ParseMessage(conf)
	if err != nil {
		return fmt.Errorf("patient record: confirmation: %w", err)
	}
	c, ok := m.(*Response)
	if !ok || c.State != Bestaetigt || c.ID != q.ID || c.Slot != q.Slot {
		return fmt.Errorf("patient record: confirmation is not this reservation's: %w", ErrMismatch)
	}
	p.Confirmation = c
	return nil
}
