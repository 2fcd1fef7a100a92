// Package linktest is the conformance suite of the link contract: every
// link kind (libp2p, TCP, LoRa, in memory) runs Run on pairs of its links
// and so shows that it keeps the promises link.Link documents: order, MTU,
// close from either side, backpressure and errors after close. The idea is
// go-libp2p's p2p/transport/testsuite.
package linktest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"meshd.dev/meshd/transports/link"
)

// Options describe what the suite may expect of an implementation.
type Options struct {
	// MaxBuffered bounds how many bytes a sender may get into a link (its
	// queue, the network, the receiver's buffers) while the receiver does
	// not call Recv. The backpressure test fails when Send keeps taking
	// frames beyond it.
	MaxBuffered int
	// Stuck is how long one Send may wait before the suite takes the link
	// as full (default 300 ms). Too short only makes the backpressure test
	// stop early; it cannot make it pass wrongly.
	Stuck time.Duration
}

// NewPair returns two connected ends of a fresh link, both up. The suite
// closes them; the function registers any other cleanup with t.
type NewPair func(t *testing.T) (a, b link.Link)

// Run runs the conformance suite.
func Run(t *testing.T, newPair NewPair, opt Options) {
	if opt.Stuck == 0 {
		opt.Stuck = 300 * time.Millisecond
	}
	t.Run("Info", func(t *testing.T) { testInfo(t, newPair) })
	t.Run("Ordering", func(t *testing.T) { testOrdering(t, newPair) })
	t.Run("MTU", func(t *testing.T) { testMTU(t, newPair) })
	t.Run("CloseLocal", func(t *testing.T) { testClose(t, newPair, false) })
	t.Run("CloseRemote", func(t *testing.T) { testClose(t, newPair, true) })
	t.Run("Backpressure", func(t *testing.T) { testBackpressure(t, newPair, opt) })
	t.Run("RecvContext", func(t *testing.T) { testRecvContext(t, newPair) })
	t.Run("Window", func(t *testing.T) { testWindow(t, newPair, opt) })
}

func timeout(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func pair(t *testing.T, newPair NewPair) (a, b link.Link) {
	a, b = newPair(t)
	t.Cleanup(func() { a.Close(nil); b.Close(nil) })
	return a, b
}

func testInfo(t *testing.T, newPair NewPair) {
	a, b := pair(t, newPair)
	for _, l := range []link.Link{a, b} {
		in := l.Info()
		if in.Kind == 0 || in.MTU < 32 {
			t.Errorf("Info %+v: want a kind and an MTU of at least 32", in)
		}
		if !in.Shared && in.Peer == nil {
			t.Errorf("point-to-point link %q has no authenticated peer", in.Name)
		}
		if (in.Window > 0) != (l.TxDone() != nil) {
			t.Errorf("Window %d but TxDone nil=%v", in.Window, l.TxDone() == nil)
		}
		if l.Err() != nil {
			t.Errorf("Err %v on a link that is up", l.Err())
		}
	}
	if !a.Info().Shared && !b.Info().Shared && a.Info().Outbound == b.Info().Outbound {
		t.Errorf("both ends Outbound=%v", a.Info().Outbound)
	}
}

// frame i: its index, then filler up to a size that varies with i.
func frame(i, mtu int) []byte {
	n := 8 + (i*397)%min(mtu-7, 3000)
	b := make([]byte, n)
	binary.BigEndian.PutUint64(b, uint64(i))
	for j := 8; j < n; j++ {
		b[j] = byte(i + j)
	}
	return b
}

// pump sends n frames on l and reports the first error.
func pump(ctx context.Context, l link.Link, n int, credit func()) <-chan error {
	errc := make(chan error, 1)
	go func() {
		for i := range n {
			if credit != nil {
				credit()
			}
			if err := l.Send(ctx, frame(i, l.Info().MTU)); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	return errc
}

// windowCredit returns a function that blocks until l's window has room,
// reading TxDone; nil for links without a window.
func windowCredit(ctx context.Context, l link.Link) func() {
	w := l.Info().Window
	if w == 0 {
		return nil
	}
	inFlight := 0
	return func() {
		for inFlight >= w {
			select {
			case n := <-l.TxDone():
				inFlight -= n
			case <-ctx.Done():
				return
			}
		}
		inFlight++
	}
}

func expect(t *testing.T, ctx context.Context, l link.Link, n, mtu int) {
	t.Helper()
	for i := range n {
		f, err := l.Recv(ctx)
		if err != nil {
			t.Fatalf("Recv frame %d of %d: %v", i, n, err)
		}
		if want := frame(i, mtu); !bytes.Equal(f.Data, want) {
			got := -1
			if len(f.Data) >= 8 {
				got = int(binary.BigEndian.Uint64(f.Data))
			}
			t.Fatalf("frame %d: got frame %d (%d bytes), want %d bytes", i, got, len(f.Data), len(want))
		}
	}
}

func testOrdering(t *testing.T, newPair NewPair) {
	ctx := timeout(t)
	a, b := pair(t, newPair)
	const n = 500
	ea := pump(ctx, a, n, windowCredit(ctx, a))
	eb := pump(ctx, b, n, windowCredit(ctx, b))
	expect(t, ctx, b, n, a.Info().MTU)
	expect(t, ctx, a, n, b.Info().MTU)
	for _, errc := range []<-chan error{ea, eb} {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	sa, sb := a.Stats(), b.Stats()
	if sa.FramesOut != n || sb.FramesIn != n || sa.BytesOut != sb.BytesIn || sa.BytesOut == 0 {
		t.Errorf("stats after %d frames each way: a %+v, b %+v", n, sa, sb)
	}
}

func testMTU(t *testing.T, newPair NewPair) {
	ctx := timeout(t)
	a, b := pair(t, newPair)
	mtu := a.Info().MTU
	for _, size := range []int{0, mtu + 1, 2*mtu + 100} {
		if err := a.Send(ctx, make([]byte, size)); !errors.Is(err, link.ErrFrameSize) {
			t.Errorf("Send of %d bytes (MTU %d): %v, want ErrFrameSize", size, mtu, err)
		}
	}
	full := bytes.Repeat([]byte{0xa5}, mtu)
	if err := a.Send(ctx, full); err != nil {
		t.Fatalf("Send of MTU %d bytes: %v", mtu, err)
	}
	f, err := b.Recv(ctx)
	if err != nil || !bytes.Equal(f.Data, full) {
		t.Fatalf("Recv of the MTU-sized frame: %d bytes, %v", len(f.Data), err)
	}
	if a.Err() != nil || b.Err() != nil {
		t.Errorf("refused frames took the link down: %v / %v", a.Err(), b.Err())
	}
}

func testClose(t *testing.T, newPair NewPair, remote bool) {
	ctx := timeout(t)
	a, b := pair(t, newPair)
	closer, other := a, b
	if remote {
		closer, other = b, a
	}
	if err := closer.Close(nil); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := closer.Close(nil); err != nil {
		t.Errorf("second Close: %v", err)
	}
	for _, l := range []link.Link{closer, other} {
		// Recv drains and then reports the close; the peer learns of it
		// without sending anything.
		for {
			_, err := l.Recv(ctx)
			if err == nil {
				continue
			}
			if !errors.Is(err, link.ErrClosed) {
				t.Fatalf("Recv after close: %v, want ErrClosed", err)
			}
			break
		}
		select {
		case <-l.Done():
		case <-ctx.Done():
			t.Fatal("Done not closed after the link closed")
		}
		if l.Err() == nil {
			t.Error("Err is nil after the link closed")
		}
		if err := l.Send(ctx, []byte("late")); !errors.Is(err, link.ErrClosed) {
			t.Errorf("Send after close: %v, want ErrClosed", err)
		}
		_ = l.Stats()
	}
	if !errors.Is(closer.Err(), link.ErrLocalClose) {
		t.Errorf("closer's Err %v, want ErrLocalClose", closer.Err())
	}
}

// testBackpressure: the receiver does not read; Send must block before the
// sender got MaxBuffered bytes in, and every frame must arrive in order
// once the receiver reads.
func testBackpressure(t *testing.T, newPair NewPair, opt Options) {
	ctx := timeout(t)
	a, b := pair(t, newPair)
	mtu := a.Info().MTU
	credit := windowCredit(ctx, a)
	sent, bytesIn := 0, 0
	for bytesIn <= opt.MaxBuffered {
		if credit != nil {
			// A windowed link blocks on its window, which TxDone opens
			// whatever the receiver does; its bound is the window.
			if sent == a.Info().Window {
				break
			}
			sent++
			bytesIn += len(frame(sent-1, mtu))
			if err := a.Send(ctx, frame(sent-1, mtu)); err != nil {
				t.Fatal(err)
			}
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, opt.Stuck)
		err := a.Send(sctx, frame(sent, mtu))
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatalf("Send %d: %v", sent, err)
		}
		bytesIn += len(frame(sent, mtu))
		sent++
	}
	if bytesIn > opt.MaxBuffered {
		t.Fatalf("Send took %d frames (%d bytes) from a sender whose peer does not read, more than the %d bytes allowed", sent, bytesIn, opt.MaxBuffered)
	}
	t.Logf("blocked after %d frames, %d bytes", sent, bytesIn)
	expect(t, ctx, b, sent, mtu)
}

func testRecvContext(t *testing.T, newPair NewPair) {
	a, _ := pair(t, newPair)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := a.Recv(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Recv with a cancelled context: %v", err)
	}
	if a.Err() != nil {
		t.Errorf("a cancelled Recv took the link down: %v", a.Err())
	}
}

// testWindow: a windowed link takes Window frames, then Send waits until
// TxDone reports frames done.
func testWindow(t *testing.T, newPair NewPair, opt Options) {
	ctx := timeout(t)
	a, b := pair(t, newPair)
	w := a.Info().Window
	if w == 0 {
		t.Skip("no window")
	}
	go func() {
		for {
			if _, err := b.Recv(ctx); err != nil {
				return
			}
		}
	}()
	for i := range w {
		if err := a.Send(ctx, frame(i, a.Info().MTU)); err != nil {
			t.Fatal(err)
		}
	}
	done := 0
	for done < w {
		select {
		case n := <-a.TxDone():
			done += n
		case <-ctx.Done():
			t.Fatalf("TxDone reported %d of %d frames", done, w)
		}
	}
	if done != w {
		t.Fatalf("TxDone reported %d frames, %d were sent", done, w)
	}
	if err := a.Send(ctx, frame(w, a.Info().MTU)); err != nil {
		t.Fatalf("Send after TxDone: %v", err)
	}
}
