package daemon

import (
	"context"
	"errors"
	mrand "math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"meshd.dev/meshd/fapp"
	"meshd.dev/meshd/rpcapi"
)

// mintStopNode is a node that knows a foreign therapist's offer, with a
// patient book whose stamps are 8 bits unless a call asks for more, and
// whose minting is bounded (1<<16 tries) so that a mint nothing stops
// ends in a moment here rather than in minutes. randReader is seeded: the
// request IDs, and so where the stamps are, are the same every run.
func mintStopNode(t *testing.T) (*Node, fapp.SlotRef, time.Time) {
	t.Helper()
	clk := &testClock{}
	is := newIssuer(t)
	n := openFAPPNode(t, is, clk)
	f := n.fapp
	now := clk.Now()
	id := mustIdentity(t)
	announce, profile := foreignOffer(t, id, is, now, "10115")
	f.onRegionFrame(10, announce, now)
	f.onRegionFrame(10, profile, now)
	f.patMu.Lock()
	f.patient = fapp.NewPatientBook(fapp.PatientBookConfig{StampBits: 8, MaxStampTries: 1 << 16})
	f.patMu.Unlock()
	old := randReader
	randReader = mrand.NewChaCha8([32]byte{15})
	t.Cleanup(func() { randReader = old })
	return n, fapp.SlotRef{Therapist: fapp.TherapistKeyOf(id.Compact()), Slot: 1}, now
}

// made counts what a reservation request leaves: reservations in the
// patient book, patient records and outbox messages stored, messages
// queued to send.
type made struct{ held, stored, queued int }

func madeNow(n *Node) made {
	f := n.fapp
	var m made
	f.patMu.Lock()
	m.held = len(f.patient.List())
	f.patMu.Unlock()
	for _, prefix := range []string{"f/r/", keyOutbox} {
		n.st.FAPPScan(prefix, func(string, []byte) error { m.stored++; return nil })
	}
	f.mu.Lock()
	m.queued = len(f.inflight)
	f.mu.Unlock()
	return m
}

// assertNothingMade checks that nothing was made since before.
func assertNothingMade(t *testing.T, n *Node, before made) {
	t.Helper()
	if after := madeNow(n); after != before {
		t.Fatalf("a given-up mint left %+v, before it %+v: want nothing made", after, before)
	}
}

// TestFAPPReserveStopsMintingWhenCancelled: fapp.reserve with stamp_bits
// 28 mints about 2^28 hashes (minutes of a phone's CPU), and the mint
// went on when the call was given up (the client gone, its deadline
// passed): the node's spare core burnt for nobody. Now the mint checks
// the call's context every fapp.StampCheckEvery nonces: cancelled at the
// second check, it stops at it (the hook sees the nonces tried), the call
// fails with the context's error (the API's "request cancelled"), nothing
// is recorded, stored or queued, and the request asked again is made.
func TestFAPPReserveStopsMintingWhenCancelled(t *testing.T) {
	n, ref, now := mintStopNode(t)
	f := n.fapp
	before := madeNow(n)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var last uint64
	f.mintCheck = func(_ context.Context, tried uint64) {
		last = tried
		if tried >= 2*fapp.StampCheckEvery {
			cancel()
		}
	}
	_, err := f.reserve(ctx, ref, time.Time{}, fapp.RequestOptions{StampBits: fapp.MaxRequestStampBits}, now)
	if !errors.Is(err, context.Canceled) || !errors.Is(apiErr(err), context.Canceled) {
		t.Fatalf("a reservation whose call was cancelled while minting: %v, want context.Canceled", err)
	}
	if last != 2*fapp.StampCheckEvery {
		t.Fatalf("the mint's last check after %d nonces, want it stopped at %d", last, 2*fapp.StampCheckEvery)
	}
	assertNothingMade(t, n, before)
	// Asked again, at the book's 8 bits: made, with its whole stamp.
	f.mintCheck = nil
	r, err := f.reserve(context.Background(), ref, time.Time{}, fapp.RequestOptions{}, now)
	if err != nil {
		t.Fatalf("the reservation asked again: %v", err)
	}
	v := fapp.NewStampVerifier(fapp.StampConfig{MinBits: 8})
	if err := v.Verify(r.Request.Stamp, ref, r.Request.ID, r.Request.Created, now); err != nil {
		t.Fatalf("the request asked again carries no whole stamp: %v", err)
	}
	if v, _ := n.st.FAPPGet(patientResKey(r.Request.ID)); v == nil {
		t.Fatal("the reservation asked again is not stored")
	}
}

// TestFAPPReserveStopsMintingWhenNodeStops: a node that stops (its
// context ends first, before the loop and the store go) stops a mint in
// progress at the next check; the call fails as unavailable, and nothing
// is recorded.
func TestFAPPReserveStopsMintingWhenNodeStops(t *testing.T) {
	n, ref, now := mintStopNode(t)
	f := n.fapp
	before := madeNow(n)
	var last uint64
	f.mintCheck = func(_ context.Context, tried uint64) {
		last = tried
		if tried >= fapp.StampCheckEvery {
			n.cancel() // what Close and the loop's end do first
		}
	}
	_, err := f.reserve(context.Background(), ref, time.Time{}, fapp.RequestOptions{StampBits: fapp.MaxRequestStampBits}, now)
	if !errors.Is(err, rpcapi.ErrUnavailable) || !errors.Is(apiErr(err), rpcapi.ErrUnavailable) {
		t.Fatalf("a reservation minting while the node stopped: %v, want ErrUnavailable", err)
	}
	if last != fapp.StampCheckEvery {
		t.Fatalf("the mint's last check after %d nonces, want it stopped at %d", last, fapp.StampCheckEvery)
	}
	assertNothingMade(t, n, before)
}

// TestFAPPReserveStopsMintingWhenClientGoes: the same through the API:
// the client that called fapp.reserve with stamp_bits 28 hangs up while
// the stamp is minted. The server cancels the call's context, and the
// mint stops at the check that sees it (the hook holds the mint at its
// second check until the context ends), so the server's shutdown, which
// waits for its calls, does not wait for the mint. Nothing is recorded.
func TestFAPPReserveStopsMintingWhenClientGoes(t *testing.T) {
	n, ref, _ := mintStopNode(t)
	before := madeNow(n)
	minting := make(chan struct{})
	var last atomic.Uint64
	n.fapp.mintCheck = func(ctx context.Context, tried uint64) {
		last.Store(tried)
		if tried == fapp.StampCheckEvery {
			close(minting)
			<-ctx.Done() // the client's hang-up, seen by the server
		}
	}
	srv, err := rpcapi.NewServer(n, rpcapi.ServerOptions{SocketPath: rpcapi.SocketPath(n.cfg.DataDir)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	ctx := context.Background()
	c, err := rpcapi.Dial(ctx, srv.SocketPath())
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := c.FAPPReserve(ctx, rpcapi.FAPPReserveParams{Slot: ref.String(), StampBits: fapp.MaxRequestStampBits})
		errc <- err
	}()
	<-minting
	c.Close()
	if err := <-errc; err == nil {
		t.Fatal("fapp.reserve answered a client that hung up")
	}
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if got := last.Load(); got != fapp.StampCheckEvery {
		t.Fatalf("the mint's last check after %d nonces, want it stopped at %d", got, fapp.StampCheckEvery)
	}
	assertNothingMade(t, n, before)
}
