package sim

import (
	"sync"

	"meshd.dev/meshd/protocol"
)

// openCache is the routing.OpenCache shared by all engines of a run (see
// routing.OpenCache: each channel transmission is opened once, not once
// per receiver, and no result changes). It forgets everything when it
// reaches maxOpenCache entries, which costs only speed: a transmission's
// receivers all open it within its time on air.
//
// It locks: with two workers, the engines of one frame's receivers ask it
// at the same time (fanout.go); whoever opens a frame first, its result is
// the one every other receiver would have opened.
type openCache struct {
	mu sync.Mutex
	m  map[[32]byte]protocol.ChannelMessage
}

const maxOpenCache = 1 << 16

func (c *openCache) Opened(d [32]byte) (protocol.ChannelMessage, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, ok := c.m[d]
	return m, ok
}

func (c *openCache) AddOpened(d [32]byte, m protocol.ChannelMessage) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxOpenCache {
		clear(c.m)
	}
	c.m[d] = m
}
