package rpcapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// fakeNode is a small in-memory node: messages sent to its own address land
// in its inbox (and raise events), others go to custody; peers are added by
// Connect. Behaviour the real daemon shows under failure is switched on by
// fields (unavailable, broken) rather than hard-coded answers.
type fakeNode struct {
	addr string

	mu          sync.Mutex
	started     time.Time
	peers       []Peer
	custody     map[string]SendParams
	inbox       []Message // ascending Seq
	nextSeq     uint64
	nextID      uint64
	subs        map[*fakeSub]struct{}
	subscribed  int    // Subscribe calls that succeeded, ever
	unavailable bool   // every call fails with ErrUnavailable
	broken      string // StoreStats fails with this (non-sentinel) text
	panicky     bool   // Routes panics

	ch fakeChannels
	fa fakeFAPP
}

type fakeSub struct {
	ch      chan Event
	seq     uint64
	dropped int
}

const maxPayload = 64 << 10

func newFakeNode() *fakeNode {
	return &fakeNode{
		addr:    "0123456789abcdef0123456789abcdef",
		started: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
		custody: map[string]SendParams{},
		subs:    map[*fakeSub]struct{}{},
		fa:      newFakeFAPP(),
	}
}

func (n *fakeNode) check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if n.unavailable {
		return fmt.Errorf("node is shutting down: %w", ErrUnavailable)
	}
	return nil
}

func (n *fakeNode) Info(ctx context.Context) (NodeInfo, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.check(ctx); err != nil {
		return NodeInfo{}, err
	}
	return NodeInfo{
		Address:     n.addr,
		Fingerprint: "123456789012345678901234567890",
		PeerID:      "12D3KooWfake",
		ListenAddrs: []string{"/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWfake"},
		Version:     "test",
		Started:     n.started,
		Peers:       len(n.peers),
		Custody:     len(n.custody),
		Inbox:       len(n.inbox),
	}, nil
}

func (n *fakeNode) Peers(ctx context.Context) ([]Peer, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.check(ctx); err != nil {
		return nil, err
	}
	return slices.Clone(n.peers), nil
}

func (n *fakeNode) Connect(ctx context.Context, ma string) (Peer, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.check(ctx); err != nil {
		return Peer{}, err
	}
	_, id, _ := strings.Cut(ma, "/p2p/")
	if id == "" || strings.Contains(id, "/") {
		return Peer{}, fmt.Errorf("multiaddr %q: peer ID missing: %w", ma, ErrInvalidParams)
	}
	if strings.Contains(ma, "/ip4/192.0.2.") { // TEST-NET-1: nobody answers
		return Peer{}, fmt.Errorf("dial %s: no route to host: %w", id, ErrConnect)
	}
	p := Peer{PeerID: id, Addrs: []string{ma}, Direction: "outbound", Since: n.started}
	n.peers = append(n.peers, p)
	n.publishLocked(Event{Kind: EventPeerUp, Peer: &p})
	return p, nil
}

func (n *fakeNode) Links(ctx context.Context) ([]Link, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.check(ctx); err != nil {
		return nil, err
	}
	var ls []Link
	for i, p := range n.peers {
		ls = append(ls, Link{ID: uint32(i + 1), Kind: "ip", Name: p.PeerID, State: "up", Direction: p.Direction, Since: p.Since})
	}
	return ls, nil
}

func (n *fakeNode) Routes(ctx context.Context) ([]Route, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.panicky {
		panic("fake node: routes exploded")
	}
	if err := n.check(ctx); err != nil {
		return nil, err
	}
	var rs []Route
	for _, p := range n.peers {
		rs = append(rs, Route{Dest: p.PeerID, NextHop: p.PeerID, Metric: 1, Hops: 1, Expires: n.started.Add(time.Hour)})
	}
	return rs, nil
}

func (n *fakeNode) Send(ctx context.Context, p SendParams) (SendResult, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.check(ctx); err != nil {
		return SendResult{}, err
	}
	payload := p.Payload
	if p.Text != "" {
		payload = []byte(p.Text)
	}
	if len(payload) > maxPayload {
		return SendResult{}, fmt.Errorf("payload is %d bytes, at most %d: %w", len(payload), maxPayload, ErrRefused)
	}
	n.nextID++
	sum := sha256.Sum256(fmt.Appendf(nil, "%d", n.nextID))
	id := hex.EncodeToString(sum[:16])
	if !strings.EqualFold(p.To, n.addr) {
		n.custody[id] = p
		return SendResult{ID: id, Status: "custody"}, nil
	}
	n.nextSeq++
	m := Message{
		Seq: n.nextSeq, ID: id, From: n.addr, FromFingerprint: "123456789012345678901234567890",
		Received: n.started, Created: n.started, Expires: n.started.Add(time.Hour), Payload: payload,
	}
	if utf8.Valid(payload) {
		m.Text = string(payload)
	}
	n.inbox = append(n.inbox, m)
	n.publishLocked(Event{Kind: EventMessage, ID: id, Message: &m})
	return SendResult{ID: id, Status: "local"}, nil
}

func (n *fakeNode) Inbox(ctx context.Context, p InboxParams) (InboxPage, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.check(ctx); err != nil {
		return InboxPage{}, err
	}
	if p.Limit <= 0 || p.Limit > MaxInboxLimit {
		return InboxPage{}, fmt.Errorf("limit %d: %w", p.Limit, ErrInvalidParams) // the server must have checked
	}
	page := InboxPage{Next: p.After}
	for _, m := range n.inbox {
		if m.Seq <= p.After {
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

func (n *fakeNode) Ack(ctx context.Context, seqs []uint64) (AckResult, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.check(ctx); err != nil {
		return AckResult{}, err
	}
	n.inbox = slices.DeleteFunc(n.inbox, func(m Message) bool { return slices.Contains(seqs, m.Seq) })
	return AckResult{Remaining: len(n.inbox)}, nil
}

func (n *fakeNode) Subscribe(ctx context.Context) (<-chan Event, func(), error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.check(ctx); err != nil {
		return nil, nil, err
	}
	s := &fakeSub{ch: make(chan Event, 64)}
	n.subs[s] = struct{}{}
	n.subscribed++
	cancel := func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		if _, ok := n.subs[s]; ok {
			delete(n.subs, s)
			close(s.ch)
		}
	}
	stop := context.AfterFunc(ctx, cancel)
	return s.ch, func() { stop(); cancel() }, nil
}

// publishLocked numbers the event per subscription and never blocks: a
// full subscriber loses the event and sees a gap.
func (n *fakeNode) publishLocked(ev Event) {
	for s := range n.subs {
		s.seq++
		ev.Seq = s.seq
		select {
		case s.ch <- ev:
		default:
			s.dropped++
		}
	}
}

// endSubscriptions closes every subscription, as a node shutting down does.
func (n *fakeNode) endSubscriptions() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for s := range n.subs {
		delete(n.subs, s)
		close(s.ch)
	}
}

// subscribeCalls counts the node subscriptions ever made.
func (n *fakeNode) subscribeCalls() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.subscribed
}

func (n *fakeNode) subscribers() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.subs)
}

func (n *fakeNode) StoreStats(ctx context.Context) (StoreStats, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.check(ctx); err != nil {
		return StoreStats{}, err
	}
	if n.broken != "" {
		return StoreStats{}, errors.New(n.broken)
	}
	return StoreStats{Custody: len(n.custody), Inbox: len(n.inbox), LSMBytes: 1 << 20}, nil
}

func (n *fakeNode) set(f func(n *fakeNode)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	f(n)
}
