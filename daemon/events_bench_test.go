package daemon

import (
	"encoding/binary"
	"encoding/hex"
	"testing"
	"time"

	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/routing"
)

// BenchmarkSenderEvents measures the sender loop's work per message for
// its two engine events once the batch is synced: Accepted (the waiting
// msg.send answered, its ID written out by the caller) and Delivered
// (msg.status's memory, the latency tracker; no subscribers), in steady
// state, msg.status's memory and the latency tracker full.
//
//	go test -run '^$' -bench SenderEvents -benchmem -cpu 1 ./daemon
func BenchmarkSenderEvents(b *testing.B) {
	n := &Node{now: time.Now, waiters: map[uint64]chan sendOutcome{}, latency: newDeliveryLatency()}
	n.hub.subs = map[*subscriber]struct{}{}
	w := make(chan sendOutcome, 1)
	x := uint64(88172645463325252)
	one := func(ref uint64) {
		var id protocol.MessageID
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		binary.LittleEndian.PutUint64(id[:], x)
		binary.LittleEndian.PutUint64(id[8:], x*31)
		n.waiters[ref] = w
		n.onEngineEvent(routing.Event{Kind: routing.EventAccepted, Ref: ref, ID: id, Status: routing.StatusRouted}, n.now())
		o := <-w
		eventsSink = hex.EncodeToString(o.id[:])
		n.onEngineEvent(routing.Event{Kind: routing.EventDelivered, ID: id}, n.now())
	}
	for i := range 3 * maxStatus {
		one(uint64(i + 1))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		one(uint64(i + 3*maxStatus + 1))
	}
}

var eventsSink string
