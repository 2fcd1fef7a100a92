package routing

import "time"

// tokenBucket is a rate limit on the engine's clock: path requests and
// lookups spend one token each, sealed-sender envelopes their size in bytes.
type tokenBucket struct {
	tokens float64
	at     time.Time
	primed bool
}

// take spends n tokens if there are that many, after adding what rate (per
// second) earned since the last call, up to burst. A new bucket is full.
// Time going backwards earns nothing.
func (b *tokenBucket) take(n float64, now time.Time, rate float64, burst int) bool {
	switch {
	case !b.primed:
		b.tokens, b.primed = float64(burst), true
	case now.After(b.at):
		b.tokens = min(b.tokens+now.Sub(b.at).Seconds()*rate, float64(burst))
	}
	if now.After(b.at) {
		b.at = now
	}
	if b.tokens < n {
		return false
	}
	b.tokens -= n
	return true
}
