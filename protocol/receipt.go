package protocol

import (
	"fmt"
)

const labelReceipt = "meshd/receipt/v1"

// ReceiptSize is the encoded size of a delivery receipt.
const ReceiptSize = 1 + 16 + AddressSize + 4 + SignatureSize

// Receipt is a recipient's signed statement that it received a message. It
// travels back to the origin and clears custody there and on the way.
//
//	0      1            17                33         37                101
//	+------+------------+-----------------+----------+-----------------+
//	| 0x12 | message ID | recipient addr  | received | Ed25519 sig     |
//	+------+------------+-----------------+----------+-----------------+
//
// The signature covers bytes 0..36. The receipt names the recipient only by
// address; the verifier supplies the recipient's keys, which the origin has
// because it sealed the message to them. Forwarders that do not know the
// recipient's keys carry it unverified; it can do no harm beyond clearing a
// custody record, which is why custody holders verify before clearing.
type Receipt struct {
	ID        MessageID
	Recipient Address
	Received  Timestamp
	Signature [SignatureSize]byte
}

func (rc *Receipt) signedBytes() []byte {
	b := make([]byte, 0, ReceiptSize)
	b = append(b, byte(KindReceipt))
	b = append(b, rc.ID[:]...)
	b = append(b, rc.Recipient[:]...)
	return appendTimestamp(b, rc.Received)
}

// NewReceipt signs a receipt for message id as received by me at received.
func NewReceipt(me *Identity, id MessageID, received Timestamp) *Receipt {
	rc := &Receipt{ID: id, Recipient: me.Address(), Received: received}
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

// ParseReceipt decodes a receipt strictly. It does not verify it.
func ParseReceipt(b []byte) (*Receipt, error) {
	if len(b) > ReceiptSize {
		return nil, fmt.Errorf("receipt: %d bytes, want %d: %w", len(b), ReceiptSize, ErrTooLarge)
	}
	r := newReader("receipt", b)
	if k := Kind(r.u8("kind")); r.err == nil && k != KindReceipt {
		return nil, fmt.Errorf("receipt: %v: %w", k, ErrUnknownKind)
	}
	rc := &Receipt{}
	r.copyInto(rc.ID[:], "message ID")
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
		return fmt.Errorf("receipt for %v: keys of %v: %w", rc.ID, recipient.Address(), ErrAddressMismatch)
	}
	if !recipient.verify(labelReceipt, rc.signedBytes(), rc.Signature[:]) {
		return fmt.Errorf("receipt for %v: %w", rc.ID, ErrBadSignature)
	}
	return nil
}
