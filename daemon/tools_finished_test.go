package daemon

import (
	"testing"
	"time"

	"meshd.dev/meshd/protocol"
)

// msg.status remembers the last maxStatus finished messages at least and
// 2*maxStatus at most, and none older than statusKeep; a message finished
// again counts from its latest finish.
func TestRememberFinishedBounded(t *testing.T) {
	n := &Node{}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	id := func(i int) protocol.MessageID {
		var m protocol.MessageID
		m[0], m[1], m[2] = byte(i), byte(i>>8), byte(i>>16)
		return m
	}
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Millisecond) }
	const total = 3*maxStatus + maxStatus/2
	for i := range total {
		n.rememberFinished(id(i), finishedMsg{state: finishDelivered, updated: at(i).UnixNano()})
		if got := n.tools.finished.size(); got > 2*maxStatus {
			t.Fatalf("after %d, %d remembered: more than %d", i+1, got, 2*maxStatus)
		}
	}
	now := at(total)
	for i := range total {
		_, ok := n.tools.finished.lookup(id(i), now)
		if i >= total-maxStatus && !ok {
			t.Fatalf("message %d of the last %d forgotten", i, maxStatus)
		}
		if i < total-2*maxStatus && ok {
			t.Fatalf("message %d, %d before the last, remembered", i, total-i)
		}
	}
	// Finished again: the oldest remembered message ends again, later
	// and otherwise; its latest end is what msg.status says, and it stays
	// when its first end is forgotten.
	oldest := total - 2*maxStatus + maxStatus/2
	if _, ok := n.tools.finished.lookup(id(oldest), now); !ok {
		t.Fatalf("message %d not remembered", oldest)
	}
	n.rememberFinished(id(oldest), finishedMsg{state: finishExpired, updated: now.UnixNano()})
	if f, _ := n.tools.finished.lookup(id(oldest), now); f.state != finishExpired {
		t.Errorf("a message finished again: %+v; want its latest end", f)
	}
	for i := range maxStatus {
		n.rememberFinished(id(total+i), finishedMsg{state: finishDelivered, updated: now.UnixNano()})
	}
	if f, ok := n.tools.finished.lookup(id(oldest), now); !ok || f.state != finishExpired || f.updated != now.UnixNano() {
		t.Errorf("a message finished again: %+v, %v; want its latest end", f, ok)
	}
	// A day later the messages before are forgotten, a new one is not.
	day := now.Add(statusKeep + time.Second)
	n.rememberFinished(id(total+maxStatus), finishedMsg{state: finishExpired, updated: day.UnixNano()})
	if _, ok := n.tools.finished.lookup(id(total-1), day); ok {
		t.Error("a message finished more than a day ago is remembered")
	}
	if f, ok := n.tools.finished.lookup(id(total+maxStatus), day); !ok || f.state != finishExpired {
		t.Errorf("the message finished now: %+v, %v", f, ok)
	}
}
