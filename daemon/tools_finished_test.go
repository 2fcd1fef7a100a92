package daemon

import (
	"testing"
	"time"

	"meshd.dev/meshd/protocol"
)

// msg.status remembers at most maxStatus finished messages, forgetting
// the oldest first, and none older than statusKeep; a message finished
// again counts from its latest finish.
func TestRememberFinishedBounded(t *testing.T) {
	n := &Node{}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	id := func(i int) protocol.MessageID {
		var m protocol.MessageID
		m[0], m[1], m[2] = byte(i), byte(i>>8), byte(i>>16)
		return m
	}
	const total = 3 * maxStatus
	for i := range total {
		n.rememberFinished(id(i), finishedMsg{state: finishDelivered, updated: t0.Add(time.Duration(i) * time.Millisecond).UnixNano()})
		if len(n.tools.finishedOrder) > 2*maxStatus+1 {
			t.Fatalf("after %d the order list holds %d", i+1, len(n.tools.finishedOrder))
		}
	}
	if len(n.tools.finished) != maxStatus {
		t.Fatalf("%d remembered, want %d", len(n.tools.finished), maxStatus)
	}
	for i := range total {
		_, ok := n.tools.finished[id(i)]
		if want := i >= total-maxStatus; ok != want {
			t.Fatalf("message %d remembered %v, want %v", i, ok, want)
		}
	}
	// Re-finished: the oldest message finishes again and stays; the next
	// oldest goes instead.
	oldest := id(total - maxStatus)
	late := t0.Add(total * time.Millisecond)
	n.rememberFinished(oldest, finishedMsg{state: finishDelivered, updated: late.UnixNano()})
	n.rememberFinished(id(total), finishedMsg{state: finishDelivered, updated: late.UnixNano()})
	if _, ok := n.tools.finished[oldest]; !ok {
		t.Error("a message finished again was forgotten by its first finish")
	}
	if _, ok := n.tools.finished[id(total-maxStatus+1)]; ok {
		t.Error("the oldest finish was kept")
	}
	// A day later everything before is forgotten.
	n.rememberFinished(id(total+1), finishedMsg{state: finishExpired, updated: late.Add(statusKeep + time.Second).UnixNano()})
	if len(n.tools.finished) != 1 {
		t.Errorf("after a day, %d remembered, want 1", len(n.tools.finished))
	}
}
