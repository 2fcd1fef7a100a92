package routing

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"time"

	"meshd.dev/meshd/protocol"
)

// Fragment repair. A frame over a link's MTU goes out in fragments that
// are not acknowledged one by one: on a radio that loses 30 % of frames, a
// six-fragment object (an advert carrying a KEM key, a session init, an
// envelope) arrives whole with 0.7^6 = 12 %. Whatever sends such a frame
// again (an end-to-end or hop-by-hop retransmission, a path request asked
// again and answered again) sends the same bytes, so it is given the same
// fragment ID: the receiver's reassembler keeps the fragments of the first
// try and fills the gaps from the next ones, and each try needs only the
// fragments still missing (with three tries every fragment has arrived with
// 97 %, the object with 85 %).
//
// The ID is a MAC of the frame under a key derived from the node's
// identity, so a neighbour cannot predict the ID of a frame it has not
// seen (it could inject a fragment under that ID before the first one
// arrives and spoil the group), and two different frames share an ID with
// 2^-32. A radio's reassembler keeps partial groups for
// radioReassemblyTimeout, long enough for the next try of an advert paid
// from the advert budget; its memory stays bounded by the reassembler's
// byte and group budgets (the oldest group goes first).

// radioReassemblyTimeout is how long a shared link's reassembler keeps an
// incomplete object. An advert with a KEM key (1.4 KB) costs about five
// minutes of an SF9 link's advert budget, so its next try comes minutes
// later.
const radioReassemblyTimeout = 20 * time.Minute

// fragMAC is the keyed hash behind fragment IDs.
type fragMAC struct{ h hash.Hash }

func newFragMAC(id *protocol.Identity) fragMAC {
	k, err := hkdf.Key(sha256.New, id.SigningKey().Seed(), nil, "meshd/fragment-ids/v1", 32)
	if err != nil {
		panic("routing: hkdf: " + err.Error())
	}
	return fragMAC{h: hmac.New(sha256.New, k)}
}

// id is the fragment ID of frame: the same for the same bytes.
func (m fragMAC) id(frame []byte) uint32 {
	m.h.Reset()
	m.h.Write(frame)
	var sum [sha256.Size]byte
	return binary.BigEndian.Uint32(m.h.Sum(sum[:0]))
}

// newRadioReassembler is a shared link's reassembler.
func newRadioReassembler() *protocol.Reassembler {
	return protocol.NewReassembler(protocol.ReassemblerConfig{Timeout: radioReassemblyTimeout})
}
