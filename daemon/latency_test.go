package daemon

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/routing"
	"meshd.dev/meshd/rpcapi"
)

func histogramOf(t *testing.T, d *deliveryLatency, name string) *dto.Histogram {
	t.Helper()
	h := d.seconds
	if name == "hops" {
		h = d.hops
	}
	var m dto.Metric
	if err := h.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram()
}

func msgID(b byte) protocol.MessageID { return protocol.MessageID{b} }

func TestDeliveryLatencyMeasuresAcceptedToReceipt(t *testing.T) {
	d := newDeliveryLatency()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	d.note(routing.Event{Kind: routing.EventAccepted, ID: msgID(1), Status: routing.StatusRouted}, t0)
	d.note(routing.Event{Kind: routing.EventAccepted, ID: msgID(2), Status: routing.StatusCustody}, t0)
	d.note(routing.Event{Kind: routing.EventAccepted, ID: msgID(3), Status: routing.StatusLocal}, t0)
	d.note(routing.Event{Kind: routing.EventDelivered, ID: msgID(1), Hops: 0}, t0.Add(30*time.Millisecond))
	d.note(routing.Event{Kind: routing.EventDelivered, ID: msgID(2), Hops: 3}, t0.Add(2*time.Hour))
	d.note(routing.Event{Kind: routing.EventDelivered, ID: msgID(3)}, t0.Add(time.Second)) // to itself: not timed
	d.note(routing.Event{Kind: routing.EventDelivered, ID: msgID(9)}, t0.Add(time.Second)) // unknown send
	d.note(routing.Event{Kind: routing.EventDelivered, ID: msgID(1)}, t0.Add(time.Hour))   // a second receipt

	h := histogramOf(t, d, "seconds")
	if h.GetSampleCount() != 2 {
		t.Fatalf("%d latencies observed, want 2", h.GetSampleCount())
	}
	if want := 0.03 + 7200; h.GetSampleSum() < want-1e-9 || h.GetSampleSum() > want+1e-9 {
		t.Errorf("latency sum %v, want %v", h.GetSampleSum(), want)
	}
	// Buckets are cumulative upper bounds: 0.03 s counts from le=0.04 up.
	for _, b := range h.GetBucket() {
		want := uint64(0)
		if b.GetUpperBound() >= 0.04 {
			want = 1
		}
		if b.GetUpperBound() >= 7200 {
			want = 2
		}
		if b.GetCumulativeCount() != want {
			t.Errorf("bucket le=%v holds %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
		}
	}
	hops := histogramOf(t, d, "hops")
	if hops.GetSampleCount() != 2 || hops.GetSampleSum() != 1+4 {
		t.Errorf("hops: %d samples summing to %v, want 2 summing to 5", hops.GetSampleCount(), hops.GetSampleSum())
	}
	if len(d.pending) != 0 {
		t.Errorf("%d send times left after their receipts", len(d.pending))
	}
}

func TestDeliveryLatencyForgetsExpiredAndCancelled(t *testing.T) {
	d := newDeliveryLatency()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	d.note(routing.Event{Kind: routing.EventAccepted, ID: msgID(1), Status: routing.StatusRouted}, t0)
	d.note(routing.Event{Kind: routing.EventAccepted, ID: msgID(2), Status: routing.StatusRouted}, t0)
	d.note(routing.Event{Kind: routing.EventExpired, ID: msgID(1)}, t0.Add(time.Hour))
	d.note(routing.Event{Kind: routing.EventCancelled, ID: msgID(2)}, t0.Add(time.Hour))
	if len(d.pending) != 0 {
		t.Fatalf("%d send times kept after expiry and cancel", len(d.pending))
	}
	// A late receipt for an expired message is not timed.
	d.note(routing.Event{Kind: routing.EventDelivered, ID: msgID(1)}, t0.Add(2*time.Hour))
	if n := histogramOf(t, d, "seconds").GetSampleCount(); n != 0 {
		t.Errorf("%d latencies observed for forgotten messages", n)
	}
}

// A node that sends without ever getting a receipt must not grow the map
// without end: the oldest sends are forgotten.
func TestDeliveryLatencyPendingIsBounded(t *testing.T) {
	d := newDeliveryLatency()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range maxLatencyPending + 10 {
		var id protocol.MessageID
		id[0], id[1] = byte(i), byte(i>>8)
		d.note(routing.Event{Kind: routing.EventAccepted, ID: id, Status: routing.StatusRouted}, t0.Add(time.Duration(i)*time.Second))
	}
	if len(d.pending) != maxLatencyPending {
		t.Fatalf("%d send times kept, want the bound %d", len(d.pending), maxLatencyPending)
	}
	if _, ok := d.pending[protocol.MessageID{0, 0}]; ok {
		t.Error("the oldest send was kept, a newer one forgotten")
	}
	var newest protocol.MessageID
	last := maxLatencyPending + 9
	newest[0], newest[1] = byte(last), byte(last>>8)
	if _, ok := d.pending[newest]; !ok {
		t.Error("the newest send was not kept")
	}
}

// The node times its own message from msg.send to the receipt on its
// injected clock: sent while the destination is not linked yet, delivered
// once it is, 90 s later on that clock.
func TestNodeTimesDeliveryOnItsClock(t *testing.T) {
	noLeaks(t)
	var clock atomic.Int64
	clock.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	a, stopA := startNodeClock(t, testConfig(t), now)
	defer stopA()
	b, stopB := startNodeClock(t, testConfig(t), now)
	defer stopB()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	evA, cancelA, _ := a.Subscribe(ctx)
	defer cancelA()
	if _, err := a.Send(ctx, rpcapi.SendParams{To: b.id.Address().String(), Text: "timed", TTL: 3600}); err != nil {
		t.Fatal(err)
	}
	clock.Add(int64(90 * time.Second))
	if _, err := a.Connect(ctx, b.host.Addrs()[0]); err != nil {
		t.Fatal(err)
	}
	waitKind(t, ctx, evA, rpcapi.EventDelivered)
	// The loop noted the receipt before it published the event.
	if err := a.call(ctx, func() {}); err != nil {
		t.Fatal(err)
	}
	h := histogramOf(t, a.latency, "seconds")
	if h.GetSampleCount() != 1 || h.GetSampleSum() != 90 {
		t.Errorf("latency: %d samples summing to %v s, want 1 of 90 s", h.GetSampleCount(), h.GetSampleSum())
	}
	if hops := histogramOf(t, a.latency, "hops"); hops.GetSampleCount() != 1 || hops.GetSampleSum() != 1 {
		t.Errorf("hops: %d samples summing to %v, want 1 of 1 (a neighbour)", hops.GetSampleCount(), hops.GetSampleSum())
	}
}

// Under a steady flow (each send delivered 100 sends later) with the
// map full of never-answered sends, forgetting takes the oldest send
// still pending, skips the delivered ones, and the order list stays
// bounded.
func TestDeliveryLatencyForgetsOldestPending(t *testing.T) {
	d := newDeliveryLatency()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	id := func(i int) protocol.MessageID {
		var m protocol.MessageID
		m[0], m[1], m[2] = byte(i), byte(i>>8), byte(i>>16)
		return m
	}
	const n = 5 * maxLatencyPending
	for i := range n {
		d.note(routing.Event{Kind: routing.EventAccepted, ID: id(i), Status: routing.StatusRouted}, t0.Add(time.Duration(i)*time.Second))
		// Every other send is answered 100 sends later.
		if j := i - 100; j >= 0 && j%2 == 0 {
			d.note(routing.Event{Kind: routing.EventDelivered, ID: id(j)}, t0.Add(time.Duration(i)*time.Second))
		}
		if len(d.order) > 2*maxLatencyPending+1 {
			t.Fatalf("after %d sends the order list holds %d IDs", i+1, len(d.order))
		}
	}
	if len(d.pending) != maxLatencyPending {
		t.Fatalf("%d send times kept, want %d", len(d.pending), maxLatencyPending)
	}
	// The kept ones are the newest pending: every odd send from the
	// cut-off on, and the even ones not yet answered.
	for i := range n {
		_, kept := d.pending[id(i)]
		want := i >= n-100 || (i%2 == 1 && i >= n-100-2*(maxLatencyPending-100))
		if kept != want {
			t.Fatalf("send %d kept %v, want %v", i, kept, want)
		}
	}
}
