package rpcapi

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"unicode/utf8"

	"meshd.dev/meshd/protocol"
)

// fakeChannels is the fake node's channel part: a publish lands in the
// channel's history.
type fakeChannels struct {
	mu      sync.Mutex
	joined  []fakeChannel
	history []ChannelMessage
	seq     uint64
}

type fakeChannel struct {
	Channel
	key protocol.ChannelKey
}

func (n *fakeNode) findLocked(ref string) (int, error) {
	i := slices.IndexFunc(n.ch.joined, func(c fakeChannel) bool { return c.ID == ref || c.Name == ref })
	if i < 0 {
		return -1, fmt.Errorf("channel %q: %w", ref, ErrNotJoined)
	}
	return i, nil
}

func (n *fakeNode) ChannelCreate(ctx context.Context, name string) (Channel, error) {
	var key protocol.ChannelKey
	key[0] = byte(len(n.ch.joined) + 1)
	return n.ChannelJoin(ctx, name, key)
}

func (n *fakeNode) ChannelJoin(ctx context.Context, name string, key protocol.ChannelKey) (Channel, error) {
	if err := n.check(ctx); err != nil {
		return Channel{}, err
	}
	n.ch.mu.Lock()
	defer n.ch.mu.Unlock()
	id := key.ID()
	c := fakeChannel{Channel{ID: id.String(), Name: name, Joined: n.started}, key}
	if i, err := n.findLocked(c.ID); err == nil {
		n.ch.joined[i] = c
	} else {
		n.ch.joined = append(n.ch.joined, c)
	}
	return c.Channel, nil
}

func (n *fakeNode) ChannelShare(ctx context.Context, ref string) (ChannelShare, error) {
	n.ch.mu.Lock()
	defer n.ch.mu.Unlock()
	i, err := n.findLocked(ref)
	if err != nil {
		return ChannelShare{}, err
	}
	c := n.ch.joined[i]
	return ChannelShare{Channel: c.ID, Share: FormatChannelShare(c.Name, c.key)}, nil
}

func (n *fakeNode) ChannelLeave(ctx context.Context, ref string) (Channel, error) {
	n.ch.mu.Lock()
	defer n.ch.mu.Unlock()
	i, err := n.findLocked(ref)
	if err != nil {
		return Channel{}, err
	}
	c := n.ch.joined[i]
	n.ch.joined = slices.Delete(n.ch.joined, i, i+1)
	return c.Channel, nil
}

func (n *fakeNode) ChannelList(ctx context.Context) ([]Channel, error) {
	n.ch.mu.Lock()
	defer n.ch.mu.Unlock()
	var out []Channel
	for _, c := range n.ch.joined {
		out = append(out, c.Channel)
	}
	return out, nil
}

func (n *fakeNode) ChannelPublish(ctx context.Context, p ChannelPublishParams) (ChannelPublishResult, error) {
	n.ch.mu.Lock()
	i, err := n.findLocked(p.Channel)
	if err != nil {
		n.ch.mu.Unlock()
		return ChannelPublishResult{}, err
	}
	c := n.ch.joined[i]
	body := p.Payload
	if p.Text != "" {
		body = []byte(p.Text)
	}
	n.ch.seq++
	m := ChannelMessage{Seq: n.ch.seq, Channel: c.ID, ChannelName: c.Name, Signed: p.Signed, Local: true, Received: n.started, Payload: body}
	if p.Signed {
		m.From = n.addr
	}
	if utf8.Valid(body) {
		m.Text = string(body)
	}
	n.ch.history = append(n.ch.history, m)
	n.ch.mu.Unlock()
	// As on a real node, a node's own message goes into its history but
	// raises no event: events report arrivals.
	return ChannelPublishResult{Channel: c.ID, Seq: m.Seq}, nil
}

func (n *fakeNode) ChannelHistory(ctx context.Context, p ChannelHistoryParams) (ChannelHistoryPage, error) {
	n.ch.mu.Lock()
	defer n.ch.mu.Unlock()
	i, err := n.findLocked(p.Channel)
	if err != nil {
		return ChannelHistoryPage{}, err
	}
	id := n.ch.joined[i].ID
	page := ChannelHistoryPage{Next: p.After}
	for _, m := range n.ch.history {
		if m.Channel != id || m.Seq <= p.After {
			continue
		}
		if len(page.Messages) == p.Limit {
			page.More = true
			break
		}
		page.Messages = append(page.Messages, m)
		page.Next = m.Seq
	}
	return page, nil
}
