package rpcapi

import (
	"context"
	"fmt"

	"meshd.dev/meshd/protocol"
)

// fakeTools is the fake node's outbox history, log level and contacts.
type fakeTools struct {
	cancelled map[string]bool
	level     string
	contacts  map[string]string // address -> name
}

var _ ToolsNode = (*fakeNode)(nil)

func (n *fakeNode) MsgOutbox(ctx context.Context) ([]OutboxEntry, error) {
	if err := n.check(ctx); err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []OutboxEntry
	for id, p := range n.custody {
		out = append(out, OutboxEntry{ID: id, To: p.To, State: "pending"})
	}
	return out, nil
}

func (n *fakeNode) MsgStatus(ctx context.Context, id string) (MsgStatus, error) {
	if err := n.check(ctx); err != nil {
		return MsgStatus{}, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if p, ok := n.custody[id]; ok {
		return MsgStatus{ID: id, State: "pending", To: p.To}, nil
	}
	if n.tl.cancelled[id] {
		return MsgStatus{ID: id, State: "cancelled"}, nil
	}
	return MsgStatus{}, fmt.Errorf("%w: message %s", ErrNotFound, id)
}

func (n *fakeNode) MsgCancel(ctx context.Context, id string) (CancelResult, error) {
	if err := n.check(ctx); err != nil {
		return CancelResult{}, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.custody[id]; !ok {
		return CancelResult{}, fmt.Errorf("%w: no message %s in custody", ErrNotFound, id)
	}
	delete(n.custody, id)
	if n.tl.cancelled == nil {
		n.tl.cancelled = map[string]bool{}
	}
	n.tl.cancelled[id] = true
	return CancelResult{ID: id, Cancelled: 1}, nil
}

func (n *fakeNode) Ping(ctx context.Context, p PingParams) (PingResult, error) {
	if err := n.check(ctx); err != nil {
		return PingResult{}, err
	}
	if _, err := protocol.ParseAddress(p.To); err != nil {
		return PingResult{}, fmt.Errorf("%w: %q is neither an address nor a contact", ErrInvalidParams, p.To)
	}
	return PingResult{To: p.To, RTTMillis: 1, Hops: 1}, nil
}

func (n *fakeNode) Path(ctx context.Context, p PathParams) (PathResult, error) {
	if err := n.check(ctx); err != nil {
		return PathResult{}, err
	}
	return PathResult{To: p.To, Requested: p.Wait > 0}, nil
}

func (n *fakeNode) Nodes(ctx context.Context) ([]NodeEntry, error) {
	return nil, n.check(ctx)
}

func (n *fakeNode) LogLevel(ctx context.Context, level string) (LogLevelResult, error) {
	if err := n.check(ctx); err != nil {
		return LogLevelResult{}, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if level != "" {
		n.tl.level = level
	}
	if n.tl.level == "" {
		n.tl.level = "info"
	}
	return LogLevelResult{Level: n.tl.level}, nil
}

func (n *fakeNode) Contacts(ctx context.Context) ([]Contact, error) {
	if err := n.check(ctx); err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []Contact
	for a, name := range n.tl.contacts {
		out = append(out, Contact{Name: name, Address: a})
	}
	return out, nil
}

func (n *fakeNode) AddContact(ctx context.Context, c Contact) (Contact, error) {
	if err := n.check(ctx); err != nil {
		return Contact{}, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.tl.contacts == nil {
		n.tl.contacts = map[string]string{}
	}
	n.tl.contacts[c.Address] = c.Name
	return c, nil
}

func (n *fakeNode) RemoveContact(ctx context.Context, s string) (Contact, error) {
	if err := n.check(ctx); err != nil {
		return Contact{}, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for a, name := range n.tl.contacts {
		if a == s || name == s {
			delete(n.tl.contacts, a)
			return Contact{Name: name, Address: a}, nil
		}
	}
	return Contact{}, fmt.Errorf("%w: no contact %q", ErrNotFound, s)
}
