package routing

import (
	"crypto/sha256"
	"fmt"
	"time"

	"meshd.dev/meshd/protocol"
)

// VerifyCache remembers announces whose signature and key binding checked
// out, by a digest of their signed content. It is a simulator optimisation:
// meshsim runs thousands of engines in one process, and every one of them
// verifies the same announces, a pure function of the announce's bytes. One
// cache shared by all of a simulation's engines has each signature checked
// once per run instead of once per node, and changes no result: an engine
// that finds an announce in the cache still checks its freshness against
// its own clock, exactly as Verify would. Engines call it from Step and
// Tick only, so a simulation that drives its engines from one goroutine
// needs no locking.
//
// The daemon leaves Config.VerifyCache nil: every engine verifies every
// announce itself (once, see handleAdvert).
type VerifyCache interface {
	// Verified reports whether an announce with this digest passed
	// verification before.
	Verified(digest [32]byte) bool
	// AddVerified records the digest of an announce that passed.
	AddVerified(digest [32]byte)
}

// verifyCacheLabel separates the cache's digests from every other hash.
const verifyCacheLabel = "meshd/routing/verify-cache/announce/v1"

// announceDigest is the SHA-256 of an announce's encoding without its hop
// count (the only field a forwarder changes and the signature does not
// cover); it covers the KEM key if attached, which Verify checks too.
func announceDigest(a *protocol.Announce) ([32]byte, bool) {
	c := *a
	c.HopCount = 0
	b, err := c.AppendBinary([]byte(verifyCacheLabel))
	if err != nil {
		return [32]byte{}, false
	}
	return sha256.Sum256(b), true
}

// verifyAnnounce is a.Verify at the engine's time with the engine's policy;
// with a VerifyCache, an announce verified before (by any engine sharing the
// cache) only has its freshness checked.
func (e *Engine) verifyAnnounce(a *protocol.Announce) error {
	p := protocol.AnnouncePolicy{MaxSkew: e.cfg.ClockSkew}
	c := e.cfg.VerifyCache
	if c == nil {
		return a.Verify(e.now, p)
	}
	d, ok := announceDigest(a)
	if ok && c.Verified(d) {
		return announceFresh(a, e.now, p)
	}
	if err := a.Verify(e.now, p); err != nil {
		return err
	}
	if ok {
		c.AddVerified(d)
	}
	return nil
}

// announceFresh is the freshness part of protocol.Announce.Verify, with the
// same defaults, bounds and errors.
func announceFresh(a *protocol.Announce, now time.Time, p protocol.AnnouncePolicy) error {
	if p.MaxAge == 0 {
		p.MaxAge = protocol.DefaultAnnounceMaxAge
	}
	if p.MaxSkew == 0 {
		p.MaxSkew = protocol.DefaultAnnounceMaxSkew
	}
	t := a.Timestamp.Time()
	if t.Before(now.Add(-p.MaxAge)) {
		return fmt.Errorf("announce from %v: timestamp %v older than %v: %w", a.Address(), t, p.MaxAge, protocol.ErrExpired)
	}
	if t.After(now.Add(p.MaxSkew)) {
		return fmt.Errorf("announce from %v: timestamp %v: %w", a.Address(), t, protocol.ErrFromFuture)
	}
	return nil
}
