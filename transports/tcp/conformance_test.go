package tcp

import (
	"testing"

	"meshd.dev/meshd/transports/link"
	"meshd.dev/meshd/transports/link/linktest"
)

func TestConformance(t *testing.T) {
	linktest.Run(t, func(t *testing.T) (link.Link, link.Link) {
		a, b, _, _ := linkedPair(t, Config{MaxPending: 64 << 10}, Config{MaxPending: 64 << 10})
		return a, b
	}, linktest.Options{MaxBuffered: 32 << 20})
}
