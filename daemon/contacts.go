package daemon

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/rpcapi"
)

// Contacts: the operator's names for mesh addresses, in the store (keys
// n/<address hex>), never sent anywhere. The store is read on every use;
// the writes are serialised by contactsMu so a name stays unique.

// contactNames returns address -> name; a store error gives no names
// (names are a convenience: the addresses are still shown).
func (n *Node) contactNames() map[protocol.Address]string {
	m, err := n.st.Contacts()
	if err != nil {
		n.log.Warn("reading contacts", "err", err)
	}
	if m == nil {
		m = map[protocol.Address]string{}
	}
	return m
}

// resolveTarget reads a mesh address or a contact name.
func (n *Node) resolveTarget(s string) (protocol.Address, string, error) {
	names := n.contactNames()
	if a, err := protocol.ParseAddress(s); err == nil {
		if a.IsZero() {
			return a, "", fmt.Errorf("%w: the all-zero address, which no node has", rpcapi.ErrInvalidParams)
		}
		return a, names[a], nil
	}
	for a, name := range names {
		if name == s {
			return a, name, nil
		}
	}
	return protocol.Address{}, "", fmt.Errorf("%w: %q is not a mesh address (32 hex characters) nor a contact name (see contacts.list)", rpcapi.ErrInvalidParams, s)
}

// Contacts implements rpcapi.ToolsNode.
func (n *Node) Contacts(ctx context.Context) ([]rpcapi.Contact, error) {
	m, err := n.st.Contacts()
	if err != nil && m == nil {
		return nil, err
	}
	out := make([]rpcapi.Contact, 0, len(m))
	for a, name := range m {
		out = append(out, rpcapi.Contact{Name: name, Address: a.String()})
	}
	slices.SortFunc(out, func(a, b rpcapi.Contact) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// AddContact implements rpcapi.ToolsNode.
func (n *Node) AddContact(ctx context.Context, c rpcapi.Contact) (rpcapi.Contact, error) {
	if err := rpcapi.CheckContactName(c.Name); err != nil {
		return rpcapi.Contact{}, err
	}
	a, err := protocol.ParseAddress(c.Address)
	if err != nil || a.IsZero() {
		return rpcapi.Contact{}, fmt.Errorf("%w: address %q is not a mesh address", rpcapi.ErrInvalidParams, c.Address)
	}
	n.contactsMu.Lock()
	defer n.contactsMu.Unlock()
	m, err := n.st.Contacts()
	if err != nil && m == nil {
		return rpcapi.Contact{}, err
	}
	for other, name := range m {
		if name == c.Name && other != a {
			return rpcapi.Contact{}, fmt.Errorf("%w: the name %q is taken by %s; remove that contact first", rpcapi.ErrRefused, c.Name, other)
		}
	}
	if _, ok := m[a]; !ok && len(m) >= maxContact {
		return rpcapi.Contact{}, fmt.Errorf("%w: %d contacts already, the most a node keeps", rpcapi.ErrRefused, maxContact)
	}
	if err := n.st.PutContact(a, c.Name); err != nil {
		return rpcapi.Contact{}, err
	}
	return rpcapi.Contact{Name: c.Name, Address: a.String()}, nil
}

// RemoveContact implements rpcapi.ToolsNode.
func (n *Node) RemoveContact(ctx context.Context, s string) (rpcapi.Contact, error) {
	n.contactsMu.Lock()
	defer n.contactsMu.Unlock()
	m, err := n.st.Contacts()
	if err != nil && m == nil {
		return rpcapi.Contact{}, err
	}
	for a, name := range m {
		if name == s || a.String() == strings.ToLower(s) {
			if err := n.st.DeleteContact(a); err != nil {
				return rpcapi.Contact{}, err
			}
			return rpcapi.Contact{Name: name, Address: a.String()}, nil
		}
	}
	return rpcapi.Contact{}, fmt.Errorf("%w: no contact %q", rpcapi.ErrNotFound, s)
}
