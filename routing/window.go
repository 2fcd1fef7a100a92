package routing

import (
	"math"

	"meshd.dev/meshd/protocol"
)

// A link with a Window takes at most that many frames before it reports
// them done (TxDone), and with a WindowBytes at most that many bytes. The
// engine hands it the next queued item only if the item's frames (more
// than one if it is fragmented) all fit, so a transport whose queue is as
// long as the window always has room for what it is handed; a link with
// nothing in flight takes any one item, however large.

// fits reports whether l's window has room for the item at the head of its
// queue (true if the queue is empty: there is nothing to hold back).
func (l *link) fits() bool {
	if l.info.Window == 0 || l.inflight == 0 {
		return true
	}
	size, ok := l.queue.headLen()
	if !ok {
		return true
	}
	frames, bytes := wireCost(size, l.info.MTU)
	return l.inflight+frames <= l.info.Window &&
		(l.info.WindowBytes == 0 || l.inflightBytes+bytes <= l.info.WindowBytes)
}

// wireCost is how many frames, and bytes in all, an item of size bytes
// takes on a link of mtu: one frame, or its fragments (protocol.Split).
func wireCost(size, mtu int) (frames, bytes int) {
	per := mtu - protocol.FragmentHeaderSize
	if size <= mtu || per <= 0 {
		return 1, size
	}
	frames = (size + per - 1) / per
	return frames, size + frames*protocol.FragmentHeaderSize
}

// handed notes frames handed to a windowed link l, for its byte window
// and the node's queue budget (queuebudget.go): until its transport
// reports them done they are held for the link.
func (l *link) handed(frames [][]byte) {
	if l.info.Window == 0 {
		return
	}
	l.inflight += len(frames)
	for _, f := range frames {
		l.sizes = append(l.sizes, len(f))
		l.addInflight(len(f))
	}
}

// addInflight adds n to l's bytes in flight and the node-wide count.
func (l *link) addInflight(n int) {
	l.inflightBytes += n
	l.queue.addTotal(n)
}

// done notes that l's transport finished k frames: the oldest handed (a
// transport that takes frames in order reports them so; one it gave up on
// out of order only shifts the count until nothing is in flight).
func (l *link) done(k int) {
	l.inflight = max(l.inflight-k, 0)
	k = min(k, len(l.sizes))
	for _, s := range l.sizes[:k] {
		l.addInflight(-s)
	}
	// Shift rather than reslice, so the array is reused: a window of one
	// frame (LoRa) would otherwise allocate at every frame.
	l.sizes = l.sizes[:copy(l.sizes, l.sizes[k:])]
	if l.inflight == 0 || len(l.sizes) == 0 {
		l.addInflight(-l.inflightBytes)
		l.sizes = l.sizes[:0]
	}
}

// windowWithdrawn forgets what l was handed under the window it no longer
// has: no TxDone will come for it, so it is neither in flight nor held
// against the queue budget, and the hop-ack timeouts waiting for those
// TxDones start now.
func (e *Engine) windowWithdrawn(l *link) {
	e.sent(l, math.MaxInt)
	l.done(math.MaxInt)
}
