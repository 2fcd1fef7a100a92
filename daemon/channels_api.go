package daemon

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"unicode/utf8"

	"meshd.dev/meshd/daemon/store"
	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/routing"
	"meshd.dev/meshd/rpcapi"
)

// channelHost is the gossip side of the libp2p host (p2p.Host implements
// it).
type channelHost interface {
	JoinChannel(id protocol.ChannelID) error
	LeaveChannel(id protocol.ChannelID) error
	PublishChannel(ctx context.Context, id protocol.ChannelID, frame []byte) error
}

// pendingPublish is a channel.publish waiting for the engine's verdict.
type pendingPublish struct {
	entry store.HistoryEntry
	done  chan publishOutcome
}

type publishOutcome struct {
	res rpcapi.ChannelPublishResult
	err error
}

// restoreChannels makes the engine and gossip deliver the channels stored
// in the data directory. It runs before the loop starts.
func (n *Node) restoreChannels() error {
	chans, err := n.st.Channels()
	if err != nil && chans == nil {
		return err
	}
	if err != nil {
		n.log.Error("some stored channels are damaged and were skipped", "err", err)
	}
	for _, c := range chans {
		n.chans.put(c)
		n.step(routing.JoinChannel{Key: c.Key})
		if err := n.gossip.JoinChannel(c.ID()); err != nil {
			n.log.Warn("cannot subscribe to a channel's gossip topic", "channel", c.ID(), "err", err)
		}
	}
	if len(chans) > 0 {
		n.log.Info("rejoined channels", "channels", len(chans))
	}
	return nil
}

// joinChannel stores a channel and starts delivering it. Loop only.
func (n *Node) joinChannel(c store.Channel) error {
	if err := n.st.PutChannel(c); err != nil {
		return err
	}
	// The registry first: the validator must know the key before the topic
	// delivers anything.
	n.chans.put(c)
	n.step(routing.JoinChannel{Key: c.Key})
	if err := n.gossip.JoinChannel(c.ID()); err != nil {
		return fmt.Errorf("subscribing to the channel's gossip topic: %w", err)
	}
	return nil
}

// leaveChannel stops delivery at once and deletes the key and history.
// Loop only: deliveries still in this batch's Ready are dropped by drain,
// which finds the channel gone from the registry.
func (n *Node) leaveChannel(id protocol.ChannelID) error {
	n.chans.remove(id)
	n.step(routing.LeaveChannel{Channel: id})
	errG := n.gossip.LeaveChannel(id)
	return errors.Join(errG, n.st.DeleteChannel(id))
}

func apiChannel(c store.Channel) rpcapi.Channel {
	return rpcapi.Channel{ID: c.ID().String(), Name: c.Name, Joined: c.Joined.UTC()}
}

// ChannelCreate implements rpcapi.Node: a fresh key from crypto/rand.
func (n *Node) ChannelCreate(ctx context.Context, name string) (rpcapi.Channel, error) {
	for _, c := range n.chans.list() {
		if c.Name == name {
			// Names are how people refer to channels: a second "ops" would
			// make "ops" ambiguous.
			return rpcapi.Channel{}, fmt.Errorf("%w: a joined channel (%s) is already named %q: choose another name", rpcapi.ErrInvalidParams, c.ID(), name)
		}
	}
	key, err := protocol.NewChannelKey(rand.Reader)
	if err != nil {
		return rpcapi.Channel{}, err
	}
	return n.ChannelJoin(ctx, name, key)
}

// ChannelJoin implements rpcapi.Node.
func (n *Node) ChannelJoin(ctx context.Context, name string, key protocol.ChannelKey) (rpcapi.Channel, error) {
	if err := rpcapi.CheckChannelName(name); err != nil {
		return rpcapi.Channel{}, fmt.Errorf("%w: %v", rpcapi.ErrInvalidParams, err)
	}
	c := store.Channel{Key: key, Name: name, Joined: n.now().UTC()}
	if old, ok := n.chans.get(key.ID()); ok && old.Key == key {
		c.Joined = old.Joined
	} else if ok {
		return rpcapi.Channel{}, fmt.Errorf("%w: another joined channel has the same ID %s; its key differs", rpcapi.ErrRefused, key.ID())
	}
	var err error
	if cerr := n.call(ctx, func() { err = n.joinChannel(c) }); cerr != nil {
		return rpcapi.Channel{}, cerr
	}
	if err != nil {
		return rpcapi.Channel{}, err
	}
	return apiChannel(c), nil
}

// ChannelShare implements rpcapi.Node.
func (n *Node) ChannelShare(ctx context.Context, ref string) (rpcapi.ChannelShare, error) {
	c, err := n.chans.resolve(ref)
	if err != nil {
		return rpcapi.ChannelShare{}, err
	}
	return rpcapi.ChannelShare{Channel: c.ID().String(), Share: rpcapi.FormatChannelShare(c.Name, c.Key)}, nil
}

// ChannelLeave implements rpcapi.Node.
func (n *Node) ChannelLeave(ctx context.Context, ref string) (rpcapi.Channel, error) {
	c, err := n.chans.resolve(ref)
	if err != nil {
		return rpcapi.Channel{}, err
	}
	if cerr := n.call(ctx, func() { err = n.leaveChannel(c.ID()) }); cerr != nil {
		return rpcapi.Channel{}, cerr
	}
	if err != nil {
		return rpcapi.Channel{}, err
	}
	return apiChannel(c), nil
}

// ChannelList implements rpcapi.Node.
func (n *Node) ChannelList(ctx context.Context) ([]rpcapi.Channel, error) {
	if err := n.closed(); err != nil { // a closed node answers nothing
		return nil, err
	}
	out := []rpcapi.Channel{}
	for _, c := range n.chans.list() {
		out = append(out, apiChannel(c))
	}
	return out, nil
}

// ChannelPublish implements rpcapi.Node: the engine seals the frame, floods
// it on mesh links and asks for it on gossip; the node's own copy goes into
// its history.
func (n *Node) ChannelPublish(ctx context.Context, p rpcapi.ChannelPublishParams) (rpcapi.ChannelPublishResult, error) {
	c, err := n.chans.resolve(p.Channel)
	if err != nil {
		return rpcapi.ChannelPublishResult{}, err
	}
	if err := n.refuseSend(); err != nil { // like msg.send: no new messages below the reserve
		return rpcapi.ChannelPublishResult{}, err
	}
	body := p.Payload
	if p.Text != "" {
		body = []byte(p.Text)
	}
	entry := store.HistoryEntry{Channel: c.ID(), Local: true, Signed: p.Signed, Body: body}
	if p.Signed {
		entry.From, entry.Sender = n.id.Address(), n.id.Compact()
	}
	done := make(chan publishOutcome, 1)
	if cerr := n.call(ctx, func() {
		// Again on the loop: a leave that got here first deleted the key
		// and the history (TestPublishRacingLeave).
		if now, ok := n.chans.get(c.ID()); !ok || now.Key != c.Key {
			done <- publishOutcome{err: fmt.Errorf("%w: channel %s was left", rpcapi.ErrNotJoined, c.ID())}
			return
		}
		n.nextRef++
		ref := n.nextRef
		n.publishing[ref] = &pendingPublish{entry: entry, done: done}
		n.step(routing.Broadcast{Ref: ref, Channel: c.Key, Body: body, Signed: p.Signed})
	}); cerr != nil {
		return rpcapi.ChannelPublishResult{}, cerr
	}
	out, err := awaitLoop(ctx, n.stopped, done)
	if err != nil {
		return rpcapi.ChannelPublishResult{}, err
	}
	return out.res, out.err
}

// ChannelHistory implements rpcapi.Node.
func (n *Node) ChannelHistory(ctx context.Context, p rpcapi.ChannelHistoryParams) (rpcapi.ChannelHistoryPage, error) {
	c, err := n.chans.resolve(p.Channel)
	if err != nil {
		return rpcapi.ChannelHistoryPage{}, err
	}
	entries, next, more, err := n.st.History(c.ID(), p.After, p.Limit)
	if err != nil {
		return rpcapi.ChannelHistoryPage{}, err
	}
	page := rpcapi.ChannelHistoryPage{Messages: []rpcapi.ChannelMessage{}, Next: next, More: more}
	for _, e := range entries {
		page.Messages = append(page.Messages, n.channelMessageOf(c.Name, e))
	}
	return page, nil
}

func (n *Node) channelMessageOf(name string, e store.HistoryEntry) rpcapi.ChannelMessage {
	m := rpcapi.ChannelMessage{
		Seq: e.Seq, Channel: e.Channel.String(), ChannelName: name, Signed: e.Signed, Local: e.Local,
		Hops: int(e.Hops), Received: e.Received.UTC(), Payload: e.Body,
	}
	if e.Signed {
		m.From, m.FromFingerprint = e.From.String(), n.fingerprint(e.Sender)
	}
	if m.Payload == nil {
		m.Payload = []byte{}
	}
	if utf8.Valid(e.Body) {
		m.Text = string(e.Body)
	}
	return m
}

// onPublished settles a channel.publish once the engine has sent (or
// refused) it: a sent message goes into the node's own history. Loop only.
func (n *Node) onPublished(ev routing.Event) bool {
	p := n.publishing[ev.Ref]
	if p == nil {
		return false
	}
	delete(n.publishing, ev.Ref)
	if ev.Kind == routing.EventRefused {
		p.done <- publishOutcome{err: fmt.Errorf("%w: %v", rpcapi.ErrRefused, ev.Err)}
		return true
	}
	p.entry.Received = n.now().UTC()
	res := rpcapi.ChannelPublishResult{Channel: p.entry.Channel.String()}
	if _, ok := n.chans.get(p.entry.Channel); !ok {
		// Left in the same batch, after the publish: sent, but the
		// history is gone with the key (TestLeaveAfterPublishInOneBatch).
		p.done <- publishOutcome{res: res}
		return true
	}
	if seqs, err := n.st.AppendHistory([]store.HistoryEntry{p.entry}, n.chans.historySize); err != nil {
		n.log.Error("cannot store a published channel message in the history", "channel", p.entry.Channel, "err", err)
	} else {
		res.Seq = seqs[0]
	}
	p.done <- publishOutcome{res: res}
	return true
}

// deliverChannels stores channel deliveries in their channels' histories
// and tells subscribers. Deliveries of a channel left meanwhile are
// dropped. Loop only.
func (n *Node) deliverChannels(ds []routing.Delivery) {
	var entries []store.HistoryEntry
	names := map[protocol.ChannelID]string{}
	for _, d := range ds {
		c, ok := n.chans.get(d.Channel)
		if !ok {
			continue
		}
		names[d.Channel] = c.Name
		entries = append(entries, store.HistoryEntry{
			Channel: d.Channel, Received: n.now().UTC(), Hops: d.Hops, Signed: d.Signed,
			From: d.From, Sender: d.Sender, Body: d.Body,
		})
	}
	if len(entries) == 0 {
		return
	}
	n.chans.stats.delivered.Add(uint64(len(entries)))
	if _, err := n.st.AppendHistory(entries, n.chans.historySize); err != nil {
		n.log.Error("cannot store channel messages in the history; subscribers still get them", "messages", len(entries), "err", err)
	}
	for _, e := range entries {
		m := n.channelMessageOf(names[e.Channel], e)
		n.hub.publish(rpcapi.Event{Kind: rpcapi.EventChannelMessage, ChannelMessage: &m})
	}
}

// runPublisher publishes the engine's gossip frames until the node stops.
func (n *Node) runPublisher() {
	for {
		select {
		case <-n.ctx.Done():
			return
		case p := <-n.chans.out:
			ctx, cancel := context.WithTimeout(n.ctx, gossipTimeout)
			err := n.gossip.PublishChannel(ctx, p.Channel, p.Frame)
			cancel()
			if err != nil {
				n.chans.stats.publishFailed.Add(1)
				n.log.Debug("gossip publish failed", "channel", p.Channel, "err", err)
				continue
			}
			n.chans.stats.published.Add(1)
		}
	}
}
