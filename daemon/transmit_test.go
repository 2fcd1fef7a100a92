package daemon

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"

	"meshd.dev/meshd/routing"
	contract "meshd.dev/meshd/transports/link"
)

// fullLink is a contract link whose queue stays full: Send waits until
// its context ends (a peer that paces this node far below what it sends,
// limits.peer_frame_rate on the far side, or stops reading). It counts
// the Sends that waited.
type fullLink struct {
	contract.Link
	waits atomic.Int64
}

func (l *fullLink) Send(ctx context.Context, _ []byte) error {
	l.waits.Add(1)
	<-ctx.Done()
	return ctx.Err()
}

// takeLink takes every frame at once.
type takeLink struct {
	contract.Link
	frames atomic.Int64
}

func (l *takeLink) Send(context.Context, []byte) error { l.frames.Add(1); return nil }

// TestTransmitFullLinkWaitsOncePerBatch: a link whose queue stays full
// costs the loop one wait per batch, not one per frame, and the other
// links' frames in the batch still go out. Since the guard paces a peer
// over its rate instead of cutting it off, an honest node that sends
// faster than a neighbour's limits meets such a link (its reader waits).
// Before, every frame for it waited (sendStall, then stalledWait each):
// this test's first batch held the loop 2 s, a batch of 2,000 would hold
// it about 21 s, during which the node took nothing from its other peers
// or its API.
func TestTransmitFullLinkWaitsOncePerBatch(t *testing.T) {
	full, other := &fullLink{}, &takeLink{}
	n := &Node{loopCtx: context.Background(), log: slog.New(slog.DiscardHandler), byLink: map[routing.LinkID]*link{
		1: {id: 1, conn: full, info: contract.Info{Name: "paced"}},
		2: {id: 2, conn: other, info: contract.Info{Name: "other"}},
	}}
	var txs []routing.Transmit
	for range 100 {
		txs = append(txs, routing.Transmit{Link: 1, Frame: []byte{1}})
	}
	txs = append(txs, routing.Transmit{Link: 2, Frame: []byte{1}})
	for batch := 1; batch <= 3; batch++ {
		n.transmit(txs)
		if w := full.waits.Load(); w > int64(batch) {
			t.Fatalf("after batch %d: %d Sends waited on the full link, want at most one per batch", batch, w)
		}
		if got := other.frames.Load(); got != int64(batch) {
			t.Fatalf("after batch %d: the other link took %d frames, want %d", batch, got, batch)
		}
		if want := uint64(100 * batch); n.dropped != want {
			t.Fatalf("after batch %d: %d frames dropped, want %d", batch, n.dropped, want)
		}
	}
	if !n.byLink[1].stalled.Load() {
		t.Error("the full link does not count as stalled")
	}
}
