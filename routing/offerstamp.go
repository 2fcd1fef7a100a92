package routing

import (
	"encoding/binary"
	"fmt"
	"time"

	"meshd.dev/meshd/protocol"
)

// Offer stamps (docs/routing.md, mailbox section): a mailbox relay with
// Config.MailboxStampBits asks a proof-of-work stamp of custody offers from
// offerers it does not know, before it verifies or stores anything; the
// offerer mints one for that envelope and relay and offers again.

const (
	// stampKnownFor is how long an offerer whose stamped offer the relay
	// accepted needs no stamp: the longest envelope lifetime (30 days).
	stampKnownFor = protocol.MaxLifetime
	// maxStampKnown bounds the offerers remembered; the oldest goes.
	maxStampKnown = 4096
	// maxMintStampBits bounds the stamps this node mints when asked: the
	// engine's loop mints, and 2^18 hashes take some 70 ms on a server
	// core, an estimated 1-1.5 s on a Raspberry Pi 4 (docs/performance.md). A relay asking more gets no re-offer.
	maxMintStampBits = 18
)

// offerStamps is both ends' stamp state; the zero value is ready. Neither
// map is persisted: after a restart an offerer pays one stamp again.
type offerStamps struct {
	known  map[Address]time.Time // relay: offerer -> when its stamped offer was accepted
	minted map[envKey]Address    // offerer: envelope -> relay a stamp was minted for
}

// stampWanted says whether this relay asks src for a stamp.
func (e *Engine) stampWanted(src Address) bool {
	if !e.cfg.Mailbox || e.cfg.MailboxStampBits == 0 {
		return false
	}
	t, ok := e.stamps.known[src]
	return !ok || e.now.Sub(t) > stampKnownFor
}

// rememberStamped makes src known, forgetting the oldest when full (a
// scan: it runs once per paid stamp, so at most as often as stamps come).
func (s *offerStamps) rememberStamped(src Address, now time.Time) {
	if s.known == nil {
		s.known = make(map[Address]time.Time)
	}
	if _, ok := s.known[src]; !ok && len(s.known) >= maxStampKnown {
		var oldest Address
		first := true
		for a, t := range s.known {
			if first || t.Before(s.known[oldest]) {
				oldest, first = a, false
			}
		}
		delete(s.known, oldest)
	}
	s.known[src] = now
}

// askStamp answers an offer of key from src: a stamp of the relay's bits is
// needed. Nothing of the offered envelope was verified or stored.
func (e *Engine) askStamp(src Address, key envKey, expires protocol.Timestamp) error {
	e.counters.OfferStampsAsked++
	_, err := e.sendControl(src, protocol.TypeControl, protocol.AppendCustodyStampAnswer(nil, MessageID(key), e.cfg.MailboxStampBits), expires)
	return err
}

// stampedOffer handles a stamped custody offer from src over link l. The
// stamp is checked (one hash) before the envelope's signature; an offerer
// known already needs none, so its stamp is not looked at.
func (e *Engine) stampedOffer(env *protocol.Envelope, src Address, l *link) error {
	inner, s, err := protocol.ParseStampedCustodyOffer(env.Payload)
	if err != nil {
		return err
	}
	key := inner.Key()
	paid := false
	if e.stampWanted(src) {
		if err := s.Check(key, e.self, src, e.cfg.MailboxStampBits); err != nil {
			e.counters.OfferStampsBad++
			return e.askStamp(src, key, env.Expires)
		}
		paid = true
	}
	status := e.acceptOffer(inner, key, l)
	if paid && status == protocol.CustodyAccepted {
		e.stamps.rememberStamped(src, e.now)
	}
	_, err = e.sendControl(src, protocol.TypeControl, protocol.AppendCustodyAccept(nil, MessageID(key), status), env.Expires)
	return err
}

// stampAsked handles relay's "stamp required" answer to this node's offer
// of key: it mints a stamp of bits and offers again, once per envelope and
// relay, so a relay that keeps asking costs one stamp. An answer for an
// offer not made to relay, or asking over maxMintStampBits, is ignored:
// the record retries as after any refusal.
func (e *Engine) stampAsked(key envKey, relay Address, bits uint8) error {
	r := e.custody.get(key)
	if r == nil || r.offeredTo != relay || r.handedOff {
		return nil
	}
	if bits > maxMintStampBits || e.stamps.minted[key] == relay {
		e.counters.OfferStampsGivenUp++
		return nil
	}
	var seed [8]byte
	if err := e.randBytes(seed[:]); err != nil {
		return err
	}
	// 64 times the expected tries: failing is a 2^-92 event.
	s, err := protocol.MintOfferStamp(key, relay, e.self, bits, binary.BigEndian.Uint64(seed[:]), 64<<bits)
	if err != nil {
		return fmt.Errorf("stamp for mailbox %v: %w", relay, err)
	}
	if e.stamps.minted == nil || len(e.stamps.minted) >= maxStampKnown {
		// Forgetting all at once only lets a relay ask once more.
		e.stamps.minted = make(map[envKey]Address)
	}
	e.stamps.minted[key] = relay
	e.counters.OfferStampsMinted++
	_, err = e.sendControl(relay, protocol.TypeControl, protocol.AppendStampedCustodyOffer(nil, s, r.data), r.expires)
	return err
}
