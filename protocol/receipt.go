package protocol

import (
	"fmt"
)

const labelReceipt = "meshd/receipt/v2"

// receiptVersion is the receipt format version. Version 1 named the message
// ID, which the sender chooses and anyone on the path can reuse; version 2
// names the envelope key, so a receipt proves delivery of one envelope.
const receiptVersion = 2

// ReceiptSize is the encoded size of a delivery receipt.
const ReceiptSize = 1 + 1 + EnvelopeKeySize + AddressSize + 4 + SignatureSize

// Receipt is a recipient's signed statement that it received one envelope.
// It travels back to the origin and clears custody there (and, when it
// travels in the clear, on the way).
//
//	0      1         2                18               34         38             102
//	+------+---------+----------------+----------------+----------+--------------+
//	| 0x12 | version | envelope key   | recipient addr | received | Ed25519 sig  |
//	|      | 0x02    | (Envelope.Key) |                |          |              |
//	+------+---------+----------------+----------------+----------+--------------+
//
// The signature covers bytes 0..37. The receipt names the envelope by its
// key (see Envelope.Key), a digest of content a forwarder cannot change, so
// a receipt for one envelope never clears another that shares its message
// ID. It names the recipient only by address; the verifier supplies the
// recipient's keys, which the origin has because it sealed the message to
// them. Forwarders that do not know the recipient's keys carry it
// unverified; it can do no harm beyond clearing a custody record, which is
// why custody holders verify before clearing.
type Receipt struct {
	Key       EnvelopeKey
	Recipient Address
	Received  Timestamp
	Signature [SignatureSize]byte
}

func (rc *Receipt) signedBytes() []byte {
	b := make([]byte, 0, ReceiptSize)
	b = append(b, byte(KindReceipt), receiptVersion)
	b = append(b, rc.Key[:]...)
	b = append(b, rc.Recipient[:]...)
	return appendTimestamp(b, rc.Received)
}

// NewReceipt signs a receipt for the envelope with key as received by me at
// received.
func NewReceipt(me *Identity, key EnvelopeKey, received Timestamp) *Receipt {
	rc := &Receipt{Key: key, Recipient: me.Address(), Received: received}
	copy(rc.Signature[:], me.signLabelled(labelReceipt, rc.signedBytes()))
	return rc
}

// AppendBinary appends the encoded receipt to b.
func (rc *Receipt) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, rc.signedBytes()...)
	return append(b, rc.Signature[:]...), nil
}

// MarshalBinary encodes the receipt (ReceiptSize bytes).
func (rc *Receipt) MarshalBinary() ([]byte, error) { return rc.AppendBinary(nil) }

// ParseReceipt decodes a receipt strictly: kind, version 2, exact size
// (bytes after the end are reported with ErrTrailing). It does not verify it.
func ParseReceipt(b []byte) (*Receipt, error) {
	r := newReader("receipt", b)
	if k := Kind(r.u8("kind")); r.err == nil && k != KindReceipt {
		return nil, fmt.Errorf("receipt: %v: %w", k, ErrUnknownKind)
	}
	if v := r.u8("version"); r.err == nil && v != receiptVersion {
		return nil, fmt.Errorf("receipt: version %d, want %d: %w", v, receiptVersion, ErrUnknownKind)
	}
	rc := &Receipt{}
	r.copyInto(rc.Key[:], "envelope key")
	r.copyInto(rc.Recipient[:], "recipient")
	rc.Received = Timestamp(r.u32("received"))
	r.copyInto(rc.Signature[:], "signature")
	if err := r.done(); err != nil {
		return nil, err
	}
	return rc, nil
}

// Verify checks that the receipt was signed by recipient and names it.
func (rc *Receipt) Verify(recipient CompactIdentity) error {
	if recipient.Address() != rc.Recipient {
		return fmt.Errorf("receipt for %v: keys of %v: %w", rc.Key, recipient.Address(), ErrAddressMismatch)
	}
	if !recipient.verify(labelReceipt, rc.signedBytes(), rc.Signature[:]) {
		return fmt.Errorf("receipt for %v: %w", rc.Key, ErrBadSignature)
	}
	return nil
}
