package rpcapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"

	"meshd.dev/meshd/protocol"
)

// Inbox page sizes.
const (
	DefaultInboxLimit = 100
	MaxInboxLimit     = 1000
)

// SubscribeResult is msg.subscribe's result.
type SubscribeResult struct {
	// Subscribed is always true; msg.event notifications follow.
	Subscribed bool `json:"subscribed"`
}

// MethodSpec describes one API method. The server dispatches through
// Methods and rpc.discover documents exactly the same entries, so a method
// cannot be answered without being documented or the other way round.
type MethodSpec struct {
	Name    string
	Summary string
	// Description is longer Markdown text for the OpenRPC document and
	// docs/api.md.
	Description string
	// Params is the by-name parameter object's type; nil when the method
	// takes no parameters.
	Params reflect.Type
	// Result is the result's type.
	Result reflect.Type
	// Errors are the implementation-defined codes (and -32602) the method
	// may return, beyond the protocol-level ones every method can return.
	Errors []int
	// Push is true for the method that needs a connection able to carry
	// notifications (unix socket or WebSocket).
	Push bool
	// FAPP is true for the fapp.* methods, which the server answers only
	// when its Node implements FAPPNode.
	FAPP bool
	// Example is a valid params object for the documentation ("" for
	// none); a test calls every method with it.
	Example string

	call func(ctx context.Context, env *callEnv, raw json.RawMessage) (any, error)
}

// callEnv is what a method body sees besides its parameters.
type callEnv struct {
	srv  *Server
	conn *conn // nil over HTTP POST, which cannot carry notifications
}

// noParams is the parameter type of methods that take none.
type noParams struct{}

// define builds a MethodSpec whose parameters decode strictly into P.
func define[P, R any](name, summary, desc string, errs []int, fn func(ctx context.Context, env *callEnv, p *P) (R, error)) MethodSpec {
	m := MethodSpec{
		Name:        name,
		Summary:     summary,
		Description: desc,
		Result:      reflect.TypeFor[R](),
		Errors:      errs,
	}
	if reflect.TypeFor[P]() != reflect.TypeFor[noParams]() {
		m.Params = reflect.TypeFor[P]()
	}
	m.call = func(ctx context.Context, env *callEnv, raw json.RawMessage) (any, error) {
		p := new(P)
		if err := decodeParams(raw, p, m.Params == nil); err != nil {
			return nil, err
		}
		return fn(ctx, env, p)
	}
	return m
}

var (
	errsNode    = []int{CodeUnavailable, CodeInternal}
	errsParams  = []int{CodeInvalidParams, CodeUnavailable, CodeInternal}
	errsRefused = []int{CodeInvalidParams, CodeRefused, CodeUnavailable, CodeInternal}
	errsConnect = []int{CodeInvalidParams, CodeConnectFailed, CodeRefused, CodeUnavailable, CodeInternal}
)

// Methods is the method table: every method the server answers, in the
// order the documentation lists them (the channel and fapp methods before
// rpc.discover).
var Methods = slices.Insert(methodsBase, len(methodsBase)-1, append(append(channelMethods(), fappMethods()...), webMethods()...)...)

var methodsBase = []MethodSpec{
	define(MethodNodeInfo, "Describe the local node.",
		"Returns the node's mesh address, key fingerprint, libp2p peer ID, listen addresses and counters.",
		errsNode,
		func(ctx context.Context, env *callEnv, _ *noParams) (NodeInfo, error) {
			info, err := env.srv.node.Info(ctx)
			if info.ListenAddrs == nil {
				info.ListenAddrs = []string{}
			}
			return info, err
		}),
	define(MethodNodePeers, "List connected libp2p peers.",
		"Peers that speak meshd carry their mesh address and link ID.",
		errsNode,
		func(ctx context.Context, env *callEnv, _ *noParams) ([]Peer, error) {
			peers, err := env.srv.node.Peers(ctx)
			if peers == nil {
				peers = []Peer{}
			}
			return peers, err
		}),
	define(MethodNodeConnect, "Dial a peer by multiaddr.",
		"`addr` is a libp2p multiaddr that includes `/p2p/<peer ID>`, as node.info's `listen_addrs` print them. Returns the connected peer.",
		errsConnect,
		func(ctx context.Context, env *callEnv, p *ConnectParams) (Peer, error) {
			switch {
			case p.Addr == "":
				return Peer{}, invalidParams("addr is required: a multiaddr such as /ip4/192.0.2.1/tcp/4001/p2p/<peer ID>")
			case !strings.HasPrefix(p.Addr, "/") || !strings.Contains(p.Addr, "/p2p/"):
				return Peer{}, invalidParams("addr %q is not a multiaddr with /p2p/<peer ID>", p.Addr)
			}
			return env.srv.node.Connect(ctx, p.Addr)
		}),
	define(MethodNodeLinks, "List the node's links of every kind.",
		"One entry per link that is up: libp2p (`ip`), plain TCP and LoRa, with its authenticated peer, traffic counters, queue depth and, on radios, signal and airtime.",
		errsNode,
		func(ctx context.Context, env *callEnv, _ *noParams) ([]Link, error) {
			links, err := env.srv.node.Links(ctx)
			if links == nil {
				links = []Link{}
			}
			return links, err
		}),
	define(MethodRouteTable, "List the routing table.",
		"One entry per known destination, with the next hop, metric and expiry.",
		errsNode,
		func(ctx context.Context, env *callEnv, _ *noParams) ([]Route, error) {
			routes, err := env.srv.node.Routes(ctx)
			if routes == nil {
				routes = []Route{}
			}
			return routes, err
		}),
	define(MethodMsgSend, "Send a message to a mesh address.",
		"Exactly one of `text` and `payload` is set. The call returns once the message is durably in custody; `status` says whether it was routed at once or is waiting for a route or key.",
		errsRefused,
		func(ctx context.Context, env *callEnv, p *SendParams) (SendResult, error) {
			if err := checkSend(p); err != nil {
				return SendResult{}, err
			}
			return env.srv.node.Send(ctx, *p)
		}),
	define(MethodMsgInbox, "Page through delivered messages.",
		fmt.Sprintf("Returns unacknowledged messages with a sequence number above `after`, oldest first, at most `limit` (default %d, at most %d). Pass `next` as `after` to read the following page.", DefaultInboxLimit, MaxInboxLimit),
		errsParams,
		func(ctx context.Context, env *callEnv, p *InboxParams) (InboxPage, error) {
			switch {
			case p.Limit < 0:
				return InboxPage{}, invalidParams("limit %d is negative", p.Limit)
			case p.Limit > MaxInboxLimit:
				return InboxPage{}, invalidParams("limit %d is above the maximum %d", p.Limit, MaxInboxLimit)
			case p.Limit == 0:
				p.Limit = DefaultInboxLimit
			}
			page, err := env.srv.node.Inbox(ctx, *p)
			if page.Messages == nil {
				page.Messages = []Message{}
			}
			return page, err
		}),
	define(MethodMsgAck, "Acknowledge (remove) inbox messages.",
		"Unknown sequence numbers are ignored, so acknowledging twice is harmless.",
		errsParams,
		func(ctx context.Context, env *callEnv, p *AckParams) (AckResult, error) {
			if p.Seqs == nil {
				return AckResult{}, invalidParams("seqs is required: a list of inbox sequence numbers")
			}
			return env.srv.node.Ack(ctx, p.Seqs)
		}),
	{
		Name:    MethodMsgSubscribe,
		Summary: "Receive node events as msg.event notifications.",
		Description: "After the result, the server pushes `" + NotifyEvent + "` notifications whose params are an Event, on the same connection, until the connection closes. " +
			"Each event carries `seq` (1, 2, ... per subscription); a jump means events were lost because the client fell behind: re-read the inbox. " +
			"Subscribing again on the same connection is harmless and does not start a second stream. " +
			"Only the unix socket and the WebSocket endpoint can carry notifications; over HTTP POST the method fails with -32601.",
		Result: reflect.TypeFor[SubscribeResult](),
		Errors: []int{CodeMethodNotFound, CodeUnavailable, CodeInternal},
		Push:   true,
		call: func(ctx context.Context, env *callEnv, raw json.RawMessage) (any, error) {
			if err := decodeParams(raw, new(noParams), true); err != nil {
				return nil, err
			}
			return env.srv.subscribe(env.conn)
		},
	},
	define(MethodStoreStats, "Report storage statistics.",
		"Counts of custody, delivered and inbox records and the database's size on disk.",
		errsNode,
		func(ctx context.Context, env *callEnv, _ *noParams) (StoreStats, error) {
			return env.srv.node.StoreStats(ctx)
		}),
	{
		Name:        MethodDiscover,
		Summary:     "Return this OpenRPC document.",
		Description: "The OpenRPC 1.2.6 description of every method, generated from the server's method table; use it to generate clients in other languages.",
		Result:      reflect.TypeFor[json.RawMessage](),
		call: func(ctx context.Context, env *callEnv, raw json.RawMessage) (any, error) {
			if err := decodeParams(raw, new(noParams), true); err != nil {
				return nil, err
			}
			return env.srv.discover, nil
		},
	},
}

// examples are the params the documentation shows; a test sends each one.
var examples = map[string]string{
	MethodNodeConnect:    `{"addr":"/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWExamplePeer"}`,
	MethodMsgSend:        `{"to":"00112233445566778899aabbccddeeff","text":"hello","ttl":3600}`,
	MethodMsgInbox:       `{"after":0,"limit":50}`,
	MethodMsgAck:         `{"seqs":[1,2,3]}`,
	MethodChannelCreate:  `{"name":"ops"}`,
	MethodChannelJoin:    `{"share":"meshd-channel:ops:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"}`,
	MethodChannelShare:   `{"channel":"ops"}`,
	MethodChannelLeave:   `{"channel":"ops"}`,
	MethodChannelPublish: `{"channel":"ops","text":"hello, channel","signed":true}`,
	MethodChannelHistory: `{"channel":"ops","after":0,"limit":50}`,

	MethodFAPPProfile: `{"set":{"name":"Dipl.-Psych. A. Beispiel","plz":"10115","verfahren":["VERHALTENSTHERAPIE"],"kostentraeger":["GKV","PKV"],"altersgruppen":["ERWACHSENE"],"sprachen":["de","en"],"barrierefrei_zugang":true}}`,
	MethodFAPPPublish: `{"slots":[{"terminart":"SPRECHSTUNDE","verfahren":"VERHALTENSTHERAPIE","start":"2027-01-12T18:00:00+01:00","dauer":50},` +
		`{"terminart":"THERAPIEPLATZ_KZT","verfahren":"VERHALTENSTHERAPIE","start":"2027-01-14T17:00:00+01:00","dauer":50,"woechentlich":true,"bis":"2027-06-24T17:00:00+02:00"}]}`,
	MethodFAPPWithdraw:         `{"slots":[2]}`,
	MethodFAPPQuery:            `{"plz_prefix":"10","verfahren":["VERHALTENSTHERAPIE"],"kostentraeger":["GKV"],"zeitfenster":["mo-fr 17:00-21:00"]}`,
	MethodFAPPReserve:          `{"slot":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/1","kontakt":"patient@example.org"}`,
	MethodFAPPReservations:     `{"role":"therapist","states":["ANGEFRAGT","GEHALTEN"]}`,
	MethodFAPPRespond:          `{"id":"00000000000000000000000000000001","action":"confirm","nachricht":"Praxis Beispiel, Invalidenstr. 1, 10115 Berlin"}`,
	MethodFAPPCancel:           `{"id":"00000000000000000000000000000001"}`,
	MethodFAPPFollow:           `{"regions":["10","12"]}`,
	MethodFAPPUnfollow:         `{"regions":["12"]}`,
	MethodFAPPCredentialImport: `{"credential":"fapp-credential:AQAAAAAAAAABqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq7u7u7u7u7u7u7u7u7u7u7u7u7u7u7u7u7u7u7u7u7uwILMS0yMy00NTY3ODlndIWAcNvYgAMsJLu59Wl3yB7b7zwOG1nbXqnScYM2V5PZTztunw4FIBubSBwMe_LPKnrrHYoRFzCij38ghfO1DvN2mmyxPBaPQaBxFONcDA"}`,
	MethodFAPPRevocationImport: `{"revocation":"fapp-revocation:AQMsJLu59Wl3AAAAAWd11wAAAAABAAAAAAAAAGOZk88q7Xc_8ZD8-vgFvm0S7PHBAkaS80AO3ZPkLGdrqXwsqDUd3YIYaQJdLUKi5Cz571Q4cHUCRRKGGezErZ8P"}`,
}

func init() {
	for i := range Methods {
		Methods[i].Example = examples[Methods[i].Name]
	}
}

// methodsByName indexes Methods for dispatch.
var methodsByName = func() map[string]*MethodSpec {
	m := make(map[string]*MethodSpec, len(Methods))
	for i := range Methods {
		m[Methods[i].Name] = &Methods[i]
	}
	return m
}()

// checkSend validates msg.send's parameters before the node sees them.
func checkSend(p *SendParams) error {
	if p.To == "" {
		return invalidParams("to is required: the destination's mesh address, 32 hex characters")
	}
	addr, err := protocol.ParseAddress(p.To)
	if err != nil {
		return invalidParams("to %q is not a mesh address: want 32 hex characters", p.To)
	}
	if addr.IsZero() {
		return invalidParams("to is the all-zero address, which no node has")
	}
	switch {
	case p.Text != "" && len(p.Payload) > 0:
		return invalidParams("set exactly one of text and payload, not both")
	case p.Text == "" && len(p.Payload) == 0:
		return invalidParams("set one of text (a UTF-8 string) or payload (base64 bytes); the message is empty")
	case p.TTL < 0:
		return invalidParams("ttl %d is negative: give seconds, or 0 for the node's default", p.TTL)
	}
	return nil
}

// decodeParams decodes a by-name parameter object strictly: unknown fields,
// trailing data and wrong types are -32602 errors with a message saying
// which field is wrong. Absent or null params decode to the zero value.
// Methods without parameters also accept {} and [].
func decodeParams(raw json.RawMessage, v any, none bool) *Error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	switch raw[0] {
	case '{':
	case '[':
		if none && isEmptyArray(raw) {
			return nil
		}
		if none {
			return invalidParams("this method takes no parameters")
		}
		return invalidParams("params must be an object with named fields, not an array")
	default:
		return invalidParams("params must be an object")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return paramsError(err, none)
	}
	if _, err := dec.Token(); err != io.EOF {
		return invalidParams("trailing data after the params object")
	}
	return nil
}

func isEmptyArray(raw []byte) bool {
	var a []json.RawMessage
	return json.Unmarshal(raw, &a) == nil && len(a) == 0
}

// paramsError turns an encoding/json error into a message for people.
func paramsError(err error, none bool) *Error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te) && te.Field != "":
		return invalidParams("field %q: cannot use JSON %s as %s", te.Field, te.Value, jsonKind(te.Type))
	case errors.As(err, &te):
		return invalidParams("cannot use JSON %s as %s", te.Value, jsonKind(te.Type))
	case errors.As(err, &se):
		return invalidParams("malformed JSON: %v", se)
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		if none {
			return invalidParams("unknown field %s: this method takes no parameters", f)
		}
		return invalidParams("unknown field %s", f)
	}
	// Base64 errors for payload and the like.
	return invalidParams("%s", strings.TrimPrefix(msg, "json: "))
}

// jsonKind names a Go type the way a JSON user thinks of it.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "value"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return "base64 bytes"
		}
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	}
	return t.String()
}
