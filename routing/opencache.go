package routing

import (
	"bytes"
	"crypto/sha256"

	"meshd.dev/meshd/protocol"
)

// OpenCache remembers channel frames that opened (tag, decryption and,
// for signed frames, the sender's signature all checked), by a digest of
// the channel key and the frame's bytes. Like VerifyCache it is a
// simulator optimisation: every neighbour of a radio transmission opens
// the same bytes with the same key, a pure function of both, so one cache
// shared by a simulation's engines opens each transmission once instead
// of once per receiver, and changes no result (freshness is still checked
// by each engine against its own clock, before the cache is asked).
// Engines call it from Step and Tick only, so a simulation that drives
// its engines from one goroutine needs no locking.
//
// The daemon leaves Config.OpenCache nil: every engine opens every frame.
type OpenCache interface {
	// Opened returns what a frame with this digest opened to before.
	// The engine does not change the message (nor its body).
	Opened(digest [32]byte) (protocol.ChannelMessage, bool)
	// AddOpened records what a frame with this digest opened to.
	AddOpened(digest [32]byte, m protocol.ChannelMessage)
}

// openCacheLabel separates the cache's digests from every other hash.
const openCacheLabel = "meshd/routing/open-cache/channel/v1"

// openDigest covers the key and every byte of the frame: the same digest
// means the same Open call.
func openDigest(k *protocol.ChannelKey, raw []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte(openCacheLabel))
	h.Write(k[:])
	h.Write(raw)
	var d [32]byte
	h.Sum(d[:0])
	return d
}

// openChannel is f.Open(k), f parsed from raw, through the OpenCache if
// there is one. The message's body is the caller's own.
func (e *Engine) openChannel(f *protocol.ChannelFrame, k protocol.ChannelKey, raw []byte) (*protocol.ChannelMessage, error) {
	c := e.cfg.OpenCache
	if c == nil {
		return f.Open(k)
	}
	d := openDigest(&k, raw)
	if m, ok := c.Opened(d); ok {
		m.Body = bytes.Clone(m.Body)
		return &m, nil
	}
	m, err := f.Open(k)
	if err != nil {
		return nil, err
	}
	kept := *m
	kept.Body = bytes.Clone(m.Body)
	c.AddOpened(d, kept)
	return m, nil
}
