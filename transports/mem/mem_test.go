package mem_test

import (
	"crypto/rand"
	"testing"

	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/transports/link"
	"meshd.dev/meshd/transports/link/linktest"
	"meshd.dev/meshd/transports/mem"
)

func ident(t *testing.T) *protocol.PublicIdentity {
	id, err := protocol.NewIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return id.Public()
}

func TestConformance(t *testing.T) {
	ida, idb := ident(t), ident(t)
	linktest.Run(t, func(t *testing.T) (link.Link, link.Link) {
		return mem.Pipe(mem.Config{Info: link.Info{Name: "a", Outbound: true}}, mem.Config{Info: link.Info{Name: "b"}}, ida, idb)
	}, linktest.Options{MaxBuffered: 17 * 64 << 10})
}

func TestConformanceWindow(t *testing.T) {
	linktest.Run(t, func(t *testing.T) (link.Link, link.Link) {
		c := mem.Config{Info: link.Info{Kind: link.KindLoRa, Name: "radio", Shared: true, MTU: 255, Window: 1}}
		return mem.Pipe(c, c, nil, nil)
	}, linktest.Options{MaxBuffered: 255})
}
