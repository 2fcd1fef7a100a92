package p2p

import "github.com/libp2p/go-libp2p/core/peer"

// A caller that must never wait for a link (the daemon's node loop, which
// serves every peer) keeps at most SendWindow frames queued on it: it
// counts the frames TrySend took, learns from LinkQueue how many the
// writer has taken since, and asks WatchRoom for a signal on Room when it
// wants to hear of the next take. TrySend then always finds room, and
// what the caller has beyond the window waits on its side, where it can
// choose what to keep (the routing engine's link queue, with priorities
// and a byte bound), instead of in the node loop.

// SendWindow is how many frames a link's send queue holds: a caller with
// no more than SendWindow frames queued on a link (sent with TrySend and
// not yet taken by its writer, LinkQueue) finds room for each, unless
// they hold more than the queue's bytes (4 MiB: only frames far larger
// than a message's usual do).
const SendWindow = sendQueueLen

// SendWindowBytes is how many bytes a link's send queue holds for TrySend:
// a caller with no more than that queued (and at most SendWindow frames)
// finds room for each frame.
const SendWindowBytes = sendQueueBytes

// Room delivers a signal after a link's writer took frames off a queue
// WatchRoom asked about. It holds one signal for all links: the receiver
// looks at every link it waits for (LinkQueue) when it fires.
func (h *Host) Room() <-chan struct{} { return h.room }

// WatchRoom asks the link to p to signal Room when its writer next takes
// a frame off the queue, and returns how many frames are queued now (0
// without a link): not yet taken by the writer, and counted out of the
// queue's bytes, so that TrySend has room for as many as were taken. The request comes before the look, so a take after the
// look is signalled; a signal may also come for a take the look already
// saw.
func (h *Host) WatchRoom(p peer.ID) int {
	h.mu.Lock()
	l := h.links[p]
	h.mu.Unlock()
	if l == nil {
		return 0
	}
	l.watch.Store(true)
	return int(l.queued.Load())
}

// took is the writer's note that it took frame f off l's queue.
func (h *Host) took(l *link, f []byte) {
	l.bytes.Add(-int64(len(f)))
	l.queued.Add(-1) // after bytes: a caller that sees the take finds both
	if l.watch.Load() && l.watch.CompareAndSwap(true, false) {
		select {
		case h.room <- struct{}{}:
		default:
		}
	}
}
