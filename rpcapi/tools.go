package rpcapi

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"meshd.dev/meshd/protocol"
)

// Methods of the outbox, the diagnostics and the contacts.
const (
	MethodMsgOutbox      = "msg.outbox"
	MethodMsgStatus      = "msg.status"
	MethodMsgCancel      = "msg.cancel"
	MethodNodePing       = "node.ping"
	MethodNodePath       = "node.path"
	MethodNodeNodes      = "node.nodes"
	MethodNodeLogLevel   = "node.loglevel"
	MethodContactsList   = "contacts.list"
	MethodContactsAdd    = "contacts.add"
	MethodContactsRemove = "contacts.remove"
)

// EventCancelled is the event kind of a message msg.cancel removed (ID set).
const EventCancelled = "cancelled"

// ToolsNode is what the outbox, diagnostics and contacts methods need. A
// Node that does not implement it answers them with CodeUnavailable.
type ToolsNode interface {
	// MsgOutbox lists the node's own messages waiting for a receipt.
	MsgOutbox(ctx context.Context) ([]OutboxEntry, error)
	// MsgStatus says what became of a message this node sent; ErrNotFound
	// if it does not know the ID (never sent here, or forgotten).
	MsgStatus(ctx context.Context, id string) (MsgStatus, error)
	// MsgCancel removes a message from custody for good; ErrNotFound for
	// an unknown ID, ErrRefused for another node's message.
	MsgCancel(ctx context.Context, id string) (CancelResult, error)
	// Ping sends an echo request and waits for its answer.
	Ping(ctx context.Context, p PingParams) (PingResult, error)
	// Path reports the route to a destination, asking the mesh if asked to.
	Path(ctx context.Context, p PathParams) (PathResult, error)
	// Nodes lists every node the routing table knows.
	Nodes(ctx context.Context) ([]NodeEntry, error)
	// LogLevel sets the log level (when level is not empty) and reports it.
	LogLevel(ctx context.Context, level string) (LogLevelResult, error)
	Contacts(ctx context.Context) ([]Contact, error)
	AddContact(ctx context.Context, c Contact) (Contact, error)
	// RemoveContact removes the contact named by name or address;
	// ErrNotFound if there is none.
	RemoveContact(ctx context.Context, nameOrAddress string) (Contact, error)
}

// OutboxEntry is one of the node's own messages in custody.
type OutboxEntry struct {
	// ID is the message ID in hex.
	ID string `json:"id"`
	// To is the destination's mesh address; ToName its contact name, if any.
	To     string `json:"to"`
	ToName string `json:"to_name,omitempty"`
	// State is "pending" (no route yet), "awaiting-key" (the destination's
	// key is being asked for), "forwarded" (sent at least once, waiting for
	// the receipt) or "handed-off" (a mailbox holds it).
	State    string `json:"state"`
	Attempts int    `json:"attempts"`
	// NextRetry is when the node tries again; absent while it waits for a
	// route or key.
	NextRetry *time.Time `json:"next_retry,omitempty"`
	Created   time.Time  `json:"created"`
	Expires   time.Time  `json:"expires"`
}

// MsgIDParams name a message by its ID.
type MsgIDParams struct {
	// ID is the message ID msg.send returned, 32 hex characters.
	ID string `json:"id"`
}

// MsgStatus is msg.status's result.
type MsgStatus struct {
	ID string `json:"id"`
	// State is one of outbox's states while the message is in custody,
	// then "delivered" (the recipient's receipt arrived), "expired" or
	// "cancelled".
	State  string `json:"state"`
	To     string `json:"to,omitempty"`
	ToName string `json:"to_name,omitempty"`
	// Updated is when the state last changed (for finished messages).
	Updated time.Time `json:"updated,omitzero"`
	Expires time.Time `json:"expires,omitzero"`
}

// CancelResult is msg.cancel's result.
type CancelResult struct {
	ID string `json:"id"`
	// Cancelled is how many copies were removed from custody (usually 1).
	Cancelled int `json:"cancelled"`
}

// PingParams are node.ping's parameters.
type PingParams struct {
	// To is the mesh address (or contact name) to ping.
	To string `json:"to"`
	// Timeout is how long to wait for the answer in seconds (default 10,
	// at most 300).
	Timeout int64 `json:"timeout,omitempty"`
}

// PingResult is node.ping's result.
type PingResult struct {
	To     string `json:"to"`
	ToName string `json:"to_name,omitempty"`
	// RTTMillis is the round-trip time in milliseconds, including finding
	// the destination's key and route if they were not known.
	RTTMillis float64 `json:"rtt_ms"`
	// Hops is how many links the answer crossed (1: a neighbour).
	Hops int `json:"hops"`
}

// PathParams are node.path's parameters.
type PathParams struct {
	// To is the mesh address (or contact name).
	To string `json:"to"`
	// Wait, if above zero, sends a path request when there is no route and
	// waits up to this many seconds (at most 300) for one.
	Wait int64 `json:"wait,omitempty"`
}

// PathResult is node.path's result.
type PathResult struct {
	To     string `json:"to"`
	ToName string `json:"to_name,omitempty"`
	// Route is the selected route; absent when there is none.
	Route *Route `json:"route,omitempty"`
	// LinkKind is the kind of the route's link ("ip", "tcp", "lora").
	LinkKind string `json:"link_kind,omitempty"`
	// Requested is true when a path request went out for this call.
	Requested bool `json:"requested,omitempty"`
}

// NodeEntry is a node the routing table knows.
type NodeEntry struct {
	Address string `json:"address"`
	Name    string `json:"name,omitempty"`
	// LastHeard is the time in its latest announce; absent when none
	// arrived (known from a lookup or a message only).
	LastHeard *time.Time `json:"last_heard,omitempty"`
	// Hops and NextHop describe the selected route; Hops is 0 without one.
	Hops     int    `json:"hops"`
	NextHop  string `json:"next_hop,omitempty"`
	LinkKind string `json:"link_kind,omitempty"`
	Metric   int    `json:"metric,omitempty"`
	// Capabilities are what its announce offers ("relay", "mailbox", ...).
	Capabilities []string `json:"capabilities"`
	// HasKey is true once its encryption key is known.
	HasKey bool `json:"has_key"`
}

// LogLevelParams are node.loglevel's parameters.
type LogLevelParams struct {
	// Level is "debug", "info", "warn" or "error"; empty to only read it.
	Level string `json:"level,omitempty"`
}

// LogLevelResult is node.loglevel's result.
type LogLevelResult struct {
	Level string `json:"level"`
}

// Contact is a local name for a mesh address. Contacts stay on this node.
type Contact struct {
	// Name is 1 to 64 bytes of UTF-8 without control characters, not
	// itself a mesh address.
	Name string `json:"name"`
	// Address is the mesh address, 32 hex characters.
	Address string `json:"address"`
}

// ContactRemoveParams are contacts.remove's parameters.
type ContactRemoveParams struct {
	// Contact is the contact's name or address.
	Contact string `json:"contact"`
}

// MaxContactName bounds a contact name in bytes.
const MaxContactName = 64

// CheckContactName validates a contact name: 1 to MaxContactName bytes of
// UTF-8, no control or format characters (no terminal escapes, no
// bidirectional overrides), no space at either end, and not something that
// could be read as an address.
func CheckContactName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: the contact name is empty", ErrInvalidParams)
	case len(name) > MaxContactName:
		return fmt.Errorf("%w: the contact name is %d bytes; at most %d", ErrInvalidParams, len(name), MaxContactName)
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: the contact name is not valid UTF-8", ErrInvalidParams)
	case strings.TrimSpace(name) != name:
		return fmt.Errorf("%w: the contact name %q starts or ends with a space", ErrInvalidParams, name)
	case looksLikeAddress(name):
		return fmt.Errorf("%w: the contact name %q looks like a mesh address; choose a name", ErrInvalidParams, name)
	}
	for _, r := range name {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return fmt.Errorf("%w: the contact name contains the control character %U", ErrInvalidParams, r)
		}
	}
	return nil
}

func looksLikeAddress(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil && len(s) == 2*protocol.AddressSize
}

// ParseMessageID parses a message ID given in hex.
func ParseMessageID(s string) (protocol.MessageID, error) {
	var id protocol.MessageID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(id) {
		return id, fmt.Errorf("%w: id %q is not a message ID: want 32 hex characters", ErrInvalidParams, s)
	}
	copy(id[:], b)
	return id, nil
}

func (s *Server) tools() (ToolsNode, error) {
	t, ok := s.node.(ToolsNode)
	if !ok {
		return nil, fmt.Errorf("%w: this node has no outbox, diagnostics or contacts", ErrUnavailable)
	}
	return t, nil
}

func checkTarget(to string) error {
	if to == "" {
		return invalidParams("to is required: a mesh address (32 hex characters) or a contact name")
	}
	return nil
}

func checkWait(name string, v, max int64) error {
	if v < 0 || v > max {
		return invalidParams("%s %d: want 0 to %d seconds", name, v, max)
	}
	return nil
}

var errsNotFound = []int{CodeInvalidParams, CodeNotFound, CodeUnavailable, CodeInternal}

func toolsMethods() []MethodSpec {
	return []MethodSpec{
		define(MethodMsgOutbox, "List this node's messages waiting for a receipt.",
			"The node's own messages in custody, oldest first: destination, state, attempts, next retry and expiry. Messages it keeps for other nodes are not listed.",
			errsNode,
			func(ctx context.Context, env *callEnv, _ *noParams) ([]OutboxEntry, error) {
				t, err := env.srv.tools()
				if err != nil {
					return nil, err
				}
				out, err := t.MsgOutbox(ctx)
				if out == nil {
					out = []OutboxEntry{}
				}
				return out, err
			}),
		define(MethodMsgStatus, "Say what became of a sent message.",
			"While the message is in custody its outbox state; afterwards `delivered`, `expired` or `cancelled`, remembered for a day (the last 10,000 finished messages at least, 20,000 at most) and not across restarts. An unknown ID is -32006.",
			errsNotFound,
			func(ctx context.Context, env *callEnv, p *MsgIDParams) (MsgStatus, error) {
				if _, err := ParseMessageID(p.ID); err != nil {
					return MsgStatus{}, err
				}
				t, err := env.srv.tools()
				if err != nil {
					return MsgStatus{}, err
				}
				return t.MsgStatus(ctx, strings.ToLower(p.ID))
			}),
		define(MethodMsgCancel, "Cancel a message in custody.",
			"Removes the node's own message from custody, durably, as expiry would: it is never sent again, not even after a restart (a copy already on its way may still arrive). An unknown ID is -32006; another node's message kept here is refused (-32001).",
			[]int{CodeInvalidParams, CodeNotFound, CodeRefused, CodeUnavailable, CodeInternal},
			func(ctx context.Context, env *callEnv, p *MsgIDParams) (CancelResult, error) {
				if _, err := ParseMessageID(p.ID); err != nil {
					return CancelResult{}, err
				}
				t, err := env.srv.tools()
				if err != nil {
					return CancelResult{}, err
				}
				return t.MsgCancel(ctx, strings.ToLower(p.ID))
			}),
		define(MethodNodePing, "Measure the round trip to a node through the mesh.",
			"Sends an echo request (an end-to-end envelope of type 5, sealed to the destination) and waits for its receipt: the result has the round-trip time and the hop count. Nodes answer at most 2 echo requests a second. No answer within `timeout` is -32001.",
			errsRefused,
			func(ctx context.Context, env *callEnv, p *PingParams) (PingResult, error) {
				if err := checkTarget(p.To); err != nil {
					return PingResult{}, err
				}
				if err := checkWait("timeout", p.Timeout, 300); err != nil {
					return PingResult{}, err
				}
				t, err := env.srv.tools()
				if err != nil {
					return PingResult{}, err
				}
				return t.Ping(ctx, *p)
			}),
		define(MethodNodePath, "Show the route to a node, or ask the mesh for one.",
			"Returns the selected route (next hop, link, metric, hops). With `wait` above zero and no route, sends a path request and waits that many seconds for a route; no route then is a result without `route`, not an error.",
			errsParams,
			func(ctx context.Context, env *callEnv, p *PathParams) (PathResult, error) {
				if err := checkTarget(p.To); err != nil {
					return PathResult{}, err
				}
				if err := checkWait("wait", p.Wait, 300); err != nil {
					return PathResult{}, err
				}
				t, err := env.srv.tools()
				if err != nil {
					return PathResult{}, err
				}
				return t.Path(ctx, *p)
			}),
		define(MethodNodeNodes, "List every node heard of.",
			"Every node in the routing table, reachable or not: last heard (the time in its latest announce), hops, next hop, link kind, capabilities, whether its key is known, and its contact name.",
			errsNode,
			func(ctx context.Context, env *callEnv, _ *noParams) ([]NodeEntry, error) {
				t, err := env.srv.tools()
				if err != nil {
					return nil, err
				}
				out, err := t.Nodes(ctx)
				if out == nil {
					out = []NodeEntry{}
				}
				return out, err
			}),
		define(MethodNodeLogLevel, "Read or change the log level at run time.",
			"`level` is `debug`, `info`, `warn` or `error`; without it the call only reports the level. The change lasts until the daemon restarts.",
			errsParams,
			func(ctx context.Context, env *callEnv, p *LogLevelParams) (LogLevelResult, error) {
				switch p.Level {
				case "", "debug", "info", "warn", "error":
				default:
					return LogLevelResult{}, invalidParams("level %q: want debug, info, warn or error", p.Level)
				}
				t, err := env.srv.tools()
				if err != nil {
					return LogLevelResult{}, err
				}
				return t.LogLevel(ctx, p.Level)
			}),
		define(MethodContactsList, "List the local contacts.",
			"Contacts are names for mesh addresses, kept on this node and never sent. meshctl accepts a contact name wherever it takes an address.",
			errsNode,
			func(ctx context.Context, env *callEnv, _ *noParams) ([]Contact, error) {
				t, err := env.srv.tools()
				if err != nil {
					return nil, err
				}
				out, err := t.Contacts(ctx)
				if out == nil {
					out = []Contact{}
				}
				return out, err
			}),
		define(MethodContactsAdd, "Name a mesh address.",
			"Adds a contact, or renames the address's contact. A name is 1 to 64 bytes of UTF-8 without control characters, unique, and not itself an address. At most 10,000 contacts.",
			errsRefused,
			func(ctx context.Context, env *callEnv, p *Contact) (Contact, error) {
				if err := CheckContactName(p.Name); err != nil {
					return Contact{}, err
				}
				a, err := protocol.ParseAddress(p.Address)
				if err != nil || a.IsZero() {
					return Contact{}, invalidParams("address %q is not a mesh address: want 32 hex characters", p.Address)
				}
				t, err := env.srv.tools()
				if err != nil {
					return Contact{}, err
				}
				return t.AddContact(ctx, Contact{Name: p.Name, Address: a.String()})
			}),
		define(MethodContactsRemove, "Remove a contact.",
			"`contact` is the contact's name or address. An unknown contact is -32006.",
			errsNotFound,
			func(ctx context.Context, env *callEnv, p *ContactRemoveParams) (Contact, error) {
				if p.Contact == "" {
					return Contact{}, invalidParams("contact is required: a contact name or address")
				}
				t, err := env.srv.tools()
				if err != nil {
					return Contact{}, err
				}
				return t.RemoveContact(ctx, p.Contact)
			}),
	}
}

var toolsExamples = map[string]string{
	MethodMsgStatus:      `{"id":"6b86b273ff34fce19d6b804eff5a3f57"}`,
	MethodMsgCancel:      `{"id":"6b86b273ff34fce19d6b804eff5a3f57"}`,
	MethodNodePing:       `{"to":"00112233445566778899aabbccddeeff","timeout":10}`,
	MethodNodePath:       `{"to":"00112233445566778899aabbccddeeff","wait":5}`,
	MethodNodeLogLevel:   `{"level":"debug"}`,
	MethodContactsAdd:    `{"name":"alice","address":"00112233445566778899aabbccddeeff"}`,
	MethodContactsRemove: `{"contact":"alice"}`,
}
