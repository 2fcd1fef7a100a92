package daemon

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"meshd.dev/meshd/routing"
	contract "meshd.dev/meshd/transports/link"
)

// TestStalledByBytes: a link whose writer takes nothing for sendStall
// while frames wait on its queue is marked stalled, whether its window is
// full in frames or, with large frames, only in bytes (the engine holds
// the rest back long before the frame count reaches the window). Before,
// only a window full in frames counted: a slow reader sent large
// messages was never marked stalled (node.links, the log).
func TestStalledByBytes(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	n := &Node{now: func() time.Time { return now }, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, queued := range []int{255, 60, 1} { // full in frames (256 is the window), full in bytes, one
		l := &link{id: routing.LinkID(queued), info: contract.Info{Window: 256}, queued: queued}
		start := now
		n.noteWindow(l, false)
		now = start.Add(sendStall / 2)
		n.noteWindow(l, false)
		if l.stalled.Load() {
			t.Fatalf("%d frames queued: stalled after %v", queued, sendStall/2)
		}
		now = start.Add(sendStall)
		n.noteWindow(l, false)
		if !l.stalled.Load() {
			t.Fatalf("%d frames queued, nothing taken for %v: not marked stalled", queued, sendStall)
		}
		n.noteWindow(l, true) // the writer took a frame
		if l.stalled.Load() {
			t.Fatalf("%d frames queued: still stalled after a take", queued)
		}
	}
}
