package fapp

import (
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"meshd.dev/meshd/protocol"
)

// Profile limits.
const (
	// MaxNameLen bounds a profile's display name in bytes.
	MaxNameLen = 64
	// MaxSchwerpunkte bounds the focus areas of a profile.
	MaxSchwerpunkte = 8
	// MaxSchwerpunktLen bounds one focus area in bytes.
	MaxSchwerpunktLen = 40

	profileVersion = 1
	labelProfile   = "fapp/profile/v1"
	maxProfileSize = 1 + protocol.PublicIdentitySize + 4 + 4 + 1 + MaxNameLen + 1 +
		MaxSchwerpunkte*(1+MaxSchwerpunktLen) + maxCredentialSize + protocol.SignatureSize
)

// SignProfile sets p's identity to id's public identity, checks p, signs it
// and returns the encoding; p.Signature is set. The credential must name
// id's keys. ProfileRefOf(result) is what announces carry.
func SignProfile(id *protocol.Identity, p *Profile) ([]byte, error) {
	p.Identity = id.Public()
	body, err := p.appendBody(nil)
	if err != nil {
		return nil, err
	}
	copy(p.Signature[:], id.Sign(labelProfile, body))
	return append(body, p.Signature[:]...), nil
}

// MarshalBinary encodes a signed profile:
//
//	version 0x01 | public identity (1,249 bytes) | sequence u32 | issued u32 |
//	name (u8 length, text) | focus count u8 | focus areas (u8 length, text) |
//	credential | Ed25519 signature 64 by the identity
func (p *Profile) MarshalBinary() ([]byte, error) {
	body, err := p.appendBody(nil)
	if err != nil {
		return nil, err
	}
	return append(body, p.Signature[:]...), nil
}

// Ref returns the profile's ProfileRef (what announces name it by).
func (p *Profile) Ref() (ProfileRef, error) {
	b, err := p.MarshalBinary()
	if err != nil {
		return ProfileRef{}, err
	}
	return ProfileRefOf(b), nil
}

func (p *Profile) validate() error {
	if p.Identity == nil {
		return fmt.Errorf("profile: no identity: %w", ErrMalformed)
	}
	if _, err := unix32("profile: issued", p.Issued); err != nil {
		return err
	}
	if err := checkString("profile: name", p.Name, MaxNameLen); err != nil {
		return err
	}
	if len(p.Schwerpunkte) > MaxSchwerpunkte {
		return fmt.Errorf("profile: %d focus areas, limit %d: %w", len(p.Schwerpunkte), MaxSchwerpunkte, ErrTooLarge)
	}
	for _, s := range p.Schwerpunkte {
		if err := checkString("profile: focus area", s, MaxSchwerpunktLen); err != nil {
			return err
		}
	}
	if p.Credential.Therapist != p.Identity.Compact() {
		return fmt.Errorf("profile: credential is for %v, profile for %v: %w",
			p.Credential.Therapist.Address(), p.Identity.Address(), ErrMismatch)
	}
	return p.Credential.check()
}

func (p *Profile) appendBody(b []byte) ([]byte, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	issued, _ := unix32("issued", p.Issued)
	b = append(b, profileVersion)
	b, _ = p.Identity.AppendBinary(b)
	b = binary.BigEndian.AppendUint32(b, p.Sequence)
	b = binary.BigEndian.AppendUint32(b, issued)
	b = appendStr(b, p.Name)
	b = append(b, byte(len(p.Schwerpunkte)))
	for _, s := range p.Schwerpunkte {
		b = appendStr(b, s)
	}
	return p.Credential.AppendBinary(b)
}

// ParseProfile decodes a profile strictly and verifies the therapist's
// signature and that the credential names the profile's keys. It does not
// verify the credential: that is the TrustStore's job, at a given time.
func ParseProfile(b []byte) (*Profile, error) {
	if len(b) > maxProfileSize {
		return nil, fmt.Errorf("profile: %d bytes, limit %d: %w", len(b), maxProfileSize, ErrTooLarge)
	}
	r := newReader("profile", b)
	if v := r.u8("version"); r.err == nil && v != profileVersion {
		return nil, fmt.Errorf("profile: version %d: %w", v, ErrUnknownVersion)
	}
	idBytes := r.take(protocol.PublicIdentitySize, "public identity")
	p := &Profile{Sequence: r.u32("sequence"), Issued: r.time32("issued")}
	p.Name = r.str("name", MaxNameLen)
	n := int(r.u8("focus count"))
	if r.err == nil && n > MaxSchwerpunkte {
		return nil, fmt.Errorf("profile: %d focus areas, limit %d: %w", n, MaxSchwerpunkte, ErrTooLarge)
	}
	for range n {
		p.Schwerpunkte = append(p.Schwerpunkte, r.str("focus area", MaxSchwerpunktLen))
	}
	if r.err != nil {
		return nil, r.err
	}
	c, err := readCredential(r)
	if err != nil {
		return nil, fmt.Errorf("profile: %w", err)
	}
	p.Credential = *c
	r.copyInto(p.Signature[:], "signature")
	if err := r.done(); err != nil {
		return nil, err
	}
	if p.Identity, err = protocol.ParsePublicIdentity(idBytes); err != nil {
		return nil, fmt.Errorf("profile: %w: %w", ErrMalformed, err)
	}
	if err := p.validate(); err != nil {
		return nil, err
	}
	if !p.Therapist().verify(labelProfile, b[:len(b)-protocol.SignatureSize], p.Signature[:]) {
		return nil, fmt.Errorf("profile of %v: %w", p.Therapist(), ErrBadSignature)
	}
	return p, nil
}

// Clone returns a copy of p that shares only the immutable identity.
func (p *Profile) Clone() *Profile {
	c := *p
	c.Schwerpunkte = slices.Clone(p.Schwerpunkte)
	return &c
}

// Fresh reports whether p was issued no more than skew after now.
func (p *Profile) Fresh(now time.Time, skew time.Duration) bool { return p.Issued.Sub(now) <= skew }
