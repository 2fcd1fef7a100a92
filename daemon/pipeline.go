package daemon

import (
	"meshd.dev/meshd/daemon/store"
	"meshd.dev/meshd/routing"
	"meshd.dev/meshd/rpcapi"
)

// Pipelined group commit. The Ready contract asks that a batch's records
// be durable before its frames go out and its deliveries and events are
// reported. Waiting for each batch's sync in the loop left the loop idle
// for about half its time under load (docs/performance.md). Instead the
// loop stages a batch in the store (ApplyAsync), lets the engine move on
// (Advance) and steps the next inputs into the engine while the batch
// syncs; the batch is carried out (transmit, notify) once the store
// reports it synced, and only then is the next one staged, with
// everything that came in meanwhile (staging more batches at once made
// them smaller, and cost more CPU per message than it saved; staging the
// next batch before carrying out the synced one delayed its sync: see
// Node.drain). Nothing
// outside the node sees a batch before it is durable, so what a crash can
// lose is what it could lose before: work nobody was told about.

// committing is a staged batch waiting for its sync.
type committing struct {
	done <-chan error
	// synced: the loop took done's nil report (its select) and the batch
	// waits to be carried out by the next settle.
	synced     bool
	rd         routing.Ready
	direct     []routing.Delivery
	broadcasts []routing.Delivery
	seqs       []uint64
}

// stage hands one Ready to the store and keeps it for carryOut.
func (n *Node) stage(rd routing.Ready) error {
	// Channel broadcasts go into their channels' histories, not the
	// inbox: they carry no receipt and nobody acknowledges them.
	direct, broadcasts := splitDeliveries(rd.Deliveries)
	inboxRd := rd
	inboxRd.Deliveries = direct
	seqs, done, err := n.st.ApplyAsync(&inboxRd)
	if err != nil {
		return err
	}
	if n.gateSync != nil {
		done = n.gateSync(&rd, done)
	}
	n.staged = append(n.staged, &committing{done: done, rd: rd, direct: direct, broadcasts: broadcasts, seqs: seqs})
	return nil
}

// headDone is the oldest staged batch's report channel (nil, which never
// fires, when none waits).
func (n *Node) headDone() <-chan error {
	if len(n.staged) == 0 || n.staged[0].synced {
		return nil
	}
	return n.staged[0].done
}

// headSynced notes that the oldest staged batch's sync reported err (the
// loop's select took it): a failure is returned, a success is carried out
// by the next settle.
func (n *Node) headSynced(err error) error {
	if err != nil {
		return n.storeFailed(err)
	}
	n.staged[0].synced = true
	return nil
}

// settle carries out the staged batches whose sync was reported, oldest
// first: with wait, all of them (waiting for each), otherwise those ready
// now. Once a sync failed it returns that failure and carries out
// nothing more.
func (n *Node) settle(wait bool) error {
	if n.syncErr != nil {
		return n.syncErr
	}
	for len(n.staged) > 0 {
		var err error
		if n.staged[0].synced {
			// reported already
		} else if wait {
			err = <-n.staged[0].done
		} else {
			select {
			case err = <-n.staged[0].done:
			default:
				return nil
			}
		}
		if err := n.finishHead(err); err != nil {
			return err
		}
	}
	return nil
}

// finishHead carries out the oldest staged batch, whose sync reported err.
func (n *Node) finishHead(err error) error {
	b := n.staged[0]
	n.staged[0] = nil
	n.staged = n.staged[1:]
	if err != nil {
		return n.storeFailed(err)
	}
	n.carryOut(b)
	return nil
}

// storeFailed keeps err, a staged batch's sync failure, for good: the
// batch's records may not be on disk, so nothing staged after it may be
// carried out (a batch without records is reported synced at once, even
// by a failed store), and whichever path took the report (the loop's
// select, drain, or drainDurable inside a command, whose caller gets the
// error) the loop's next drain stops the node.
func (n *Node) storeFailed(err error) error {
	if n.syncErr == nil {
		n.syncErr = err
	}
	return n.syncErr
}

// carryOut does what a synced batch promised: transmit, notify.
func (n *Node) carryOut(b *committing) {
	rd := &b.rd
	n.transmit(rd.Transmits)
	n.reportTaken()
	for _, p := range rd.Publish {
		n.chans.queuePublish(p)
	}
	for _, a := range rd.Lookups {
		n.startLookup(a)
	}
	n.deliverChannels(n.fapp.takeBroadcasts(b.broadcasts))
	direct, seqs := n.fapp.takeDirect(b.direct, b.seqs)
	n.publishMessages(direct, seqs)
	if len(rd.Events) > 0 {
		now := n.now()
		for _, ev := range rd.Events {
			n.fapp.noteSent(ev) // a stored FAPP message the engine now holds
			n.onEngineEvent(ev, now)
		}
	}
	// What FAPP answered goes into the engine after the Ready it came
	// from is carried out.
	n.fapp.flush()
	n.giveUpFrames()
}

// publishMessages tells the subscribers, if any, of the messages direct
// put into the inbox under seqs.
func (n *Node) publishMessages(direct []routing.Delivery, seqs []uint64) {
	if len(direct) == 0 || !n.hub.listening() {
		return
	}
	now := n.now().UTC()
	for i := range direct {
		d := &direct[i]
		m := n.messageOfNamed(store.InboxEntry{Seq: seqs[i], Received: now, Delivery: *d}, &n.lastSender)
		n.hub.publish(rpcapi.Event{Kind: rpcapi.EventMessage, ID: m.ID, Message: &m})
	}
}

// drainDurable is drain for callers that answer only once what the engine
// did is durable and reported (msg.cancel, an abandoned ping): it waits
// for the staged batches' syncs, then stages and waits for whatever the
// engine still has ready. It blocks the loop for a sync, so it is for
// rare operator actions, not the message path.
func (n *Node) drainDurable() error {
	for {
		if err := n.settle(true); err != nil {
			return err
		}
		if !n.eng.HasReady() {
			return n.drain() // refreshes the snapshot
		}
		if err := n.stage(n.eng.Ready()); err != nil {
			return err
		}
		n.eng.Advance()
	}
}
