package daemon

import (
	"testing"
)

// TestTakeWaitingFair: after its blocking select the loop takes what is
// already waiting by polling each source in turn (takeWaiting). A flood
// on one source (API calls here) must not keep the others waiting until
// it is drained: each round takes one input from every source that has
// one, so a contract link's room and the host's room are taken in the
// first round, and the flood gives way after the batch's limit. With
// nothing waiting takeWaiting returns at once.
func TestTakeWaitingFair(t *testing.T) {
	n := &Node{cmds: make(chan loopCmd, 300), room: make(chan struct{}, 1), chans: &channels{}}
	hostRoom := make(chan struct{}, 1)
	ran := 0
	for range 300 {
		n.cmds <- loopCmd{f: func() { ran++ }}
	}
	n.room <- struct{}{}
	hostRoom <- struct{}{}
	const limit = 127
	n.takeWaiting(nil, hostRoom, limit)
	if len(n.room) != 0 || len(hostRoom) != 0 {
		t.Errorf("a flood of %d API calls kept the rooms waiting (link room %d, host room %d left)", ran, len(n.room), len(hostRoom))
	}
	if ran+2 > limit || ran == 0 {
		t.Errorf("took %d API calls and the two rooms, limit %d", ran, limit)
	}
	for len(n.cmds) > 0 {
		n.takeWaiting(nil, hostRoom, limit)
	}
	n.takeWaiting(nil, hostRoom, limit) // nothing waits: returns
	if ran != 300 {
		t.Errorf("%d API calls run, want 300", ran)
	}
}
