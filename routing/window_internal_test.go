package routing

import (
	"testing"

	"meshd.dev/meshd/protocol"
)

// TestWindowBytesAndFragments: a windowed link is handed the next item
// only if all its frames fit the window, in frames and in bytes
// (WindowBytes); a link with nothing in flight takes any one item. Before,
// only the frame count was checked, before the item: 256 large frames
// passed the libp2p send queue's 4 MiB and a fragmented item passed the
// window by its extra fragments, and the daemon dropped what the queue
// refused.
func TestWindowBytesAndFragments(t *testing.T) {
	const mtu = 1000
	l := &link{info: LinkInfo{MTU: mtu, Window: 4, WindowBytes: 1500}}
	l.queue.limit = 1 << 20
	push := func(n int) { l.queue.push(qitem{frame: make([]byte, n)}) }
	hand := func(sizes ...int) {
		var fs [][]byte
		for _, s := range sizes {
			fs = append(fs, make([]byte, s))
		}
		l.handed(fs)
	}

	push(900)
	if !l.fits() {
		t.Fatal("nothing in flight: any item fits")
	}
	hand(900)
	if l.fits() {
		t.Fatal("900 + 900 bytes fit a window of 1500")
	}
	l.done(1)
	if !l.fits() || l.inflightBytes != 0 {
		t.Fatalf("after TxDone: fits %v, %d bytes in flight", l.fits(), l.inflightBytes)
	}

	// A fragmented item needs room for all its frames.
	l.queue.clear()
	l.info.WindowBytes = 0
	push(1500) // two fragments
	if f, b := wireCost(1500, mtu); f != 2 || b != 1500+2*protocol.FragmentHeaderSize {
		t.Fatalf("wireCost(1500, %d) = %d frames, %d bytes", mtu, f, b)
	}
	hand(10, 10, 10)
	if l.fits() {
		t.Fatal("3 in flight + 2 fragments fit a window of 4")
	}
	l.done(2)
	if !l.fits() {
		t.Fatal("1 in flight + 2 fragments do not fit a window of 4")
	}
}

// TestWindowBookkeepingAllocFree: handing a windowed link a frame and
// hearing it done allocates nothing once warm, also with a window of one
// frame (LoRa). The queue budget counts the bytes of every windowed link;
// before, each done resliced the list of sizes past its array, and the
// next frame allocated a new one: 62,000 more allocations (6.5%) in
// BenchmarkLoRa1000 of simulations/sim.
func TestWindowBookkeepingAllocFree(t *testing.T) {
	l := &link{info: LinkInfo{Window: 1}}
	frames := [][]byte{make([]byte, 100)}
	cycle := func() {
		l.handed(frames)
		l.done(1)
	}
	cycle()
	if n := testing.AllocsPerRun(100, cycle); n != 0 {
		t.Errorf("%v allocations per frame", n)
	}
}
