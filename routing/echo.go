package routing

import (
	"fmt"

	"meshd.dev/meshd/protocol"
)

// Echo requests (protocol.TypeEcho, sent by meshctl ping) are answered by
// the receipt every message gets, and by nothing else: the origin measures
// the round trip from sending to the receipt, and the hop count from the
// receipt's hop count. So that a ping cannot be turned into an amplifier,
// the engine answers only sealed requests (a sealed envelope is larger than
// the receipt it gets back) and at most echoRate of them per second,
// echoBurst at once, whoever sends them; others are dropped unanswered and
// counted (Counters.EchoRefused). An echo request never reaches the
// application.
const (
	echoRate  = 2.0
	echoBurst = 10
)

func (e *Engine) answerEcho(env *protocol.Envelope, key envKey) error {
	if env.Flags&protocol.FlagSealed == 0 || env.Flags&protocol.FlagWantReceipt == 0 {
		e.counters.EchoRefused++
		return fmt.Errorf("echo request %v: not sealed or wants no receipt: %w", env.ID, ErrBadInput)
	}
	if env.Flags&protocol.FlagSealedSender != 0 && len(env.Payload) < e.sealedReceiptPayloadSize() {
		// The answer would be a sealed-sender receipt padded to this
		// node's buckets: a request crafted without padding is smaller.
		e.counters.EchoRefused++
		return fmt.Errorf("echo request %v: %d-byte sealed payload smaller than its answer: %w", env.ID, len(env.Payload), ErrBadInput)
	}
	// The limit comes before opening: a flood must not cost decryptions.
	if !e.echo.take(1, e.now, echoRate, echoBurst) {
		e.counters.EchoRefused++
		return nil
	}
	op, err := env.OpenVerified(e.id)
	if err != nil {
		e.counters.OpenFailed++
		return err
	}
	ent := deliveredEntry{expires: env.Expires, from: op.From, sealed: env.Flags&protocol.FlagSealedSender != 0}
	e.markDelivered(key, env.ID, ent)
	e.counters.EchoAnswered++
	e.sendReceipt(key, ent)
	return nil
}

// sealedReceiptPayloadSize is the payload size of the sealed-sender receipt
// this node sends (sendSealedReceipt): the receipt under the inner sender
// block (compact identity and signature), padded, and the seal overhead. The
// outer envelope of both is the same size, so a sealed-sender echo request
// whose payload is at least this long is never answered with more bytes.
func (e *Engine) sealedReceiptPayloadSize() int {
	inner := protocol.CompactIdentitySize + protocol.SignatureSize + protocol.ReceiptSize
	padded, err := e.cfg.Padding.Size(inner, protocol.MaxPayloadSize-protocol.SealOverhead)
	if err != nil {
		return protocol.MaxPayloadSize + 1 // cannot happen: the receipt is small
	}
	return protocol.SealOverhead + padded
}
