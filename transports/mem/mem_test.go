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

// TestTxDoneNeverBlocksTheReceiver: the sender does not read TxDone for a
// while; the receiver keeps receiving and the counts add up.
func TestTxDoneNeverBlocksTheReceiver(t *testing.T) {
	c := mem.Config{Info: link.Info{Kind: link.KindLoRa, Shared: true, MTU: 255, Window: 1}}
	a, b := mem.Pipe(c, c, nil, nil)
	ctx := t.Context()
	done := 0
	for i := range 10 {
		if err := a.Send(ctx, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Recv(ctx); err != nil {
			t.Fatal(err)
		}
		if i == 4 { // read the reports only now and then
			done += <-a.TxDone()
		}
	}
	done += <-a.TxDone()
	if done != 10 {
		t.Errorf("TxDone reported %d frames, 10 went out", done)
	}
}
