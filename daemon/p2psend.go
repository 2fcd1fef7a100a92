package daemon

import (
	"time"

	"meshd.dev/meshd/routing"
)

// A libp2p link's send queue holds p2p.SendWindow (256) frames and
// p2p.SendWindowBytes (4 MiB) for TrySend, and the node loop, which serves
// every peer, API call and timer, must never wait for it: a peer that
// reads slowly (or is paced by its own guard) would hold the whole node.
// So the engine sees the link with a window of that many frames and bytes
// (p2pInfo, onHostEvent): it hands the loop no more frames for the link
// than the queue has room for, and keeps the rest in its own link queue
// (bounded in bytes, by priority; what it cannot hold it drops and counts,
// meshd_routing_queue_drops_total, and custody retries the envelopes).
// Both count towards the node's queue budget across links
// (limits.queue_budget): past it the links that hold the most shed first. The
// loop counts the frames it queued (link.queued); the writer's takes come
// back as TxDone, found by looking at the queue (reportTaken) after every
// batch carried out and at every loop turn, and signalled by the host
// (Room) when the loop asked for it (WatchRoom) because frames were still
// queued.

// sendP2P queues frame on l's libp2p link without waiting. The window, in
// frames and bytes (p2p.SendWindow, p2p.SendWindowBytes), leaves room for
// it unless the link just went down or was replaced (a new stream for the
// peer, whose queue this link's count does not know); a frame the link
// does not take then is dropped and counted, and reported done so that
// the window does not stay shut.
func (n *Node) sendP2P(l *link, frame []byte) {
	ok, err := n.host.TrySend(l.peer, frame)
	if !ok || err != nil {
		n.dropped++
		n.noteGivenUp(l)
		if err != nil {
			n.log.Debug("transmit failed", "peer", l.label(), "err", err)
		}
		return
	}
	l.sentFrame(frame)
	n.queuedOne(l)
}

// queuedOne counts a frame queued on l, which reportTaken then watches.
func (n *Node) queuedOne(l *link) {
	if l.queued++; l.queued > 1 {
		return // listed already
	}
	if n.queuedOn == nil {
		n.queuedOn = map[routing.LinkID]*link{}
	}
	n.queuedOn[l.id] = l
}

// reportTaken tells the engine how many frames the writers of libp2p
// links took off their queues since the last report (TxDone), and asks
// each link that still has frames queued to signal the host's Room at its
// writer's next take. It runs where the engine takes inputs: after a
// batch is carried out and before the loop ticks the engine.
func (n *Node) reportTaken() {
	n.reportRefused()
	for id, l := range n.queuedOn {
		if n.byLink[id] != l {
			delete(n.queuedOn, id) // down: the engine forgot its window
			continue
		}
		done := l.queued - n.watchQueue(l)
		if done > 0 {
			l.queued -= done
			n.step(routing.TxDone{Link: id, Frames: done})
		}
		n.noteWindow(l, done > 0)
		if l.queued == 0 {
			delete(n.queuedOn, id)
		}
	}
}

// noteWindow keeps l's stalled mark: set once frames waited on its
// queue for sendStall with nothing taken, cleared when its writer takes a
// frame. Waiting frames, not a full window: with large frames the engine
// holds the rest back on the window's bytes long before the queue holds
// the window's frames (TestStalledByBytes), and a healthy writer takes a
// frame within milliseconds either way.
func (n *Node) noteWindow(l *link, took bool) {
	switch {
	case took || l.queued == 0:
		l.fullSince = time.Time{}
		n.drains(l)
	case l.fullSince.IsZero():
		l.fullSince = n.now()
	case !l.stalled.Load() && n.now().Sub(l.fullSince) >= sendStall:
		l.stalled.Store(true)
		n.log.Warn("link stalled: its peer takes no frames; the routing engine holds them meanwhile", "peer", l.label(), "link", l.id)
	}
}

// watchQueue asks l's writer (libp2p) or sender (contract link) to signal
// its next take, then returns how many frames wait for it.
func (n *Node) watchQueue(l *link) int {
	if l.conn == nil {
		return n.host.WatchRoom(l.peer)
	}
	l.watch.Store(true)
	return len(l.out)
}

// window is the engine's window for l: its own, or the daemon's for a
// contract link without one.
func (l *link) window() int {
	if l.info.Window > 0 {
		return l.info.Window
	}
	return contractWindow
}
