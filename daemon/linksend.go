package daemon

import (
	"bytes"

	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/routing"
)

// A contract link (TCP, LoRa) takes frames with Send, which waits while
// the link's queue is full or its window shut. The node loop must not
// wait for one link, so each contract link has a sender goroutine
// (runSender) that calls Send, fed by the loop through l.out, a channel
// as long as the link's window, and at least protocol.MaxFragments. The
// engine never hands a link more frames than its window (or, with nothing
// in flight, one item's fragments), so the loop always finds room in l.out:
//
//   - A link with a window of its own (LoRa) reports finished frames on
//     TxDone, as before; the sender only makes Send asynchronous.
//   - A link without one (TCP) gets the daemon's window, contractWindow
//     frames: the frames the sender took off l.out come back to the
//     engine as TxDone (reportTaken, the same as a libp2p link's writer,
//     p2psend.go), so the engine keeps what the link cannot take yet in
//     its own link queue.
//
// A frame Send refuses (the link went down) is dropped, counted
// (meshd_link_frames_dropped_total) and reported done so the window does
// not stay shut.

// contractWindow is the window the daemon gives a contract link without
// one: as many frames as a libp2p link's send queue holds.
const contractWindow = 64

// startSender gives the contract link l its sender. On the loop, before
// the engine hears of the link.
func (n *Node) startSender(l *link) {
	// With nothing in flight the engine hands a link one whole item,
	// however many fragments (up to protocol.MaxFragments) it has.
	l.out = make(chan []byte, max(l.window(), protocol.MaxFragments))
	if n.senders == nil {
		n.senders = map[routing.LinkID]*link{}
	}
	n.senders[l.id] = l
	n.bg.Go(func() { n.runSender(l) })
}

// runSender hands l.out's frames to the link until it is down or the node
// stops.
func (n *Node) runSender(l *link) {
	for {
		select {
		case f := <-l.out:
			if l.watch.Load() && l.watch.CompareAndSwap(true, false) {
				n.signalRoom()
			}
			if err := l.conn.Send(n.ctx, f); err != nil {
				if n.ctx.Err() != nil {
					return // stopping: what is left is in custody
				}
				l.refused.Add(1)
				n.signalRoom()
			}
		case <-l.conn.Done():
			return
		case <-n.ctx.Done():
			return
		}
	}
}

// signalRoom wakes the loop to look at its links (reportTaken).
func (n *Node) signalRoom() {
	select {
	case n.room <- struct{}{}:
	default:
	}
}

// sendContract hands frame to l's sender without waiting.
func (n *Node) sendContract(l *link, frame []byte) {
	select {
	case l.out <- bytes.Clone(frame): // the engine may reuse frame
	default: // only if the engine overran the window: not expected
		n.dropped++
		n.noteGivenUp(l)
		return
	}
	if l.ownWindow() {
		return
	}
	n.queuedOne(l)
}

// ownWindow reports whether l is a contract link with a window of its
// own, which reports TxDone itself.
func (l *link) ownWindow() bool { return l.conn != nil && l.conn.TxDone() != nil }

// reportRefused counts the frames the senders' Sends refused as dropped
// and reports them done to the engine now: a link with a window of its
// own sends no TxDone for them, and with its window shut no batch would
// come to report them (a link with the daemon's window counted them when
// its sender took them).
func (n *Node) reportRefused() {
	for id, l := range n.senders {
		if n.byLink[id] != l {
			delete(n.senders, id)
			continue
		}
		for k := l.refused.Swap(0); k > 0; k-- {
			n.dropped++
			n.noteGivenUp(l)
		}
	}
	n.giveUpFrames()
}
