package rpcapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"

	"github.com/coder/websocket"
	"github.com/creachadair/jrpc2/channel"
)

// EventBuffer is how many events a Client holds for a Subscribe caller that
// has not received them yet. Beyond it the client drops events, and the
// caller sees the gap in Event.Seq exactly as for events the node dropped.
const EventBuffer = 1024

// Client is a connection to meshd's API, for apps. Its methods are safe for
// concurrent use. Errors the server returns are *Error values carrying the
// code; errors.Is(err, ErrRefused) and the other sentinels work on them.
type Client struct {
	rpc *rpcClient
	ch  *eventTap

	mu         sync.Mutex
	subscribed bool
}

// ErrClientClosed is returned for calls on a closed Client or after the
// connection to meshd was lost.
var ErrClientClosed = errors.New("rpcapi: connection to meshd is closed")

// Dial connects to meshd's unix socket.
func Dial(ctx context.Context, socketPath string) (*Client, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", socketPath)
	if err != nil {
		return nil, fmt.Errorf("rpcapi: connecting to meshd at %s (is meshd running?): %w", socketPath, err)
	}
	return newClient(newLineChannel(nc, 0)), nil
}

// DialDataDir connects to the unix socket in meshd's data directory
// (SocketPath(dataDir)).
func DialDataDir(ctx context.Context, dataDir string) (*Client, error) {
	return Dial(ctx, SocketPath(dataDir))
}

// DialWebSocket connects to meshd's WebSocket endpoint, such as
// "ws://127.0.0.1:7721/ws" (7721 is the daemon's default API port),
// authenticating with token (see ReadToken).
func DialWebSocket(ctx context.Context, url, token string) (*Client, error) {
	h := http.Header{}
	h.Set("Authorization", "Bearer "+token)
	ws, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{
		HTTPHeader:   h,
		Subprotocols: []string{Subprotocol},
	})
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("rpcapi: WebSocket %s: HTTP %s: %w", url, resp.Status, err)
		}
		return nil, fmt.Errorf("rpcapi: WebSocket %s: %w", url, err)
	}
	// The connection's reads end with the client, not with ctx, which
	// only bounds the dial.
	return newClient(newWSChannel(context.Background(), ws, 0)), nil
}

func newClient(ch channel.Channel) *Client {
	tap := &eventTap{Channel: ch, events: make(chan Event, EventBuffer)}
	return &Client{
		rpc: newRPCClient(tap),
		ch:  tap,
	}
}

// Close closes the connection. Any Subscribe channel is closed.
func (c *Client) Close() error {
	return c.rpc.close()
}

// Call invokes any method by name: params is marshalled as the by-name
// parameter object (nil for none) and the result is decoded into result
// (nil to discard). The typed methods below are wrappers around it.
func (c *Client) Call(ctx context.Context, method string, params, result any) error {
	raw, err := c.rpc.call(ctx, method, params)
	if err != nil {
		return clientError(err)
	}
	if result == nil {
		return nil
	}
	if err := json.Unmarshal(raw, result); err != nil {
		return fmt.Errorf("rpcapi: decoding %s's result: %w", method, err)
	}
	return nil
}

func clientError(err error) error {
	var re *Error
	switch {
	case errors.As(err, &re), errors.Is(err, ErrClientClosed):
		return err
	case errors.Is(err, io.EOF), channel.IsErrClosing(err), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.As(err, new(websocket.CloseError)):
		return fmt.Errorf("%w: %v", ErrClientClosed, err)
	}
	return fmt.Errorf("rpcapi: %w", err)
}

// Info calls node.info.
func (c *Client) Info(ctx context.Context) (NodeInfo, error) {
	var v NodeInfo
	return v, c.Call(ctx, MethodNodeInfo, nil, &v)
}

// Peers calls node.peers.
func (c *Client) Peers(ctx context.Context) ([]Peer, error) {
	var v []Peer
	return v, c.Call(ctx, MethodNodePeers, nil, &v)
}

// Connect calls node.connect.
func (c *Client) Connect(ctx context.Context, multiaddr string) (Peer, error) {
	var v Peer
	return v, c.Call(ctx, MethodNodeConnect, ConnectParams{Addr: multiaddr}, &v)
}

// Routes calls route.table.
func (c *Client) Routes(ctx context.Context) ([]Route, error) {
	var v []Route
	return v, c.Call(ctx, MethodRouteTable, nil, &v)
}

// Links calls node.links.
func (c *Client) Links(ctx context.Context) ([]Link, error) {
	var v []Link
	return v, c.Call(ctx, MethodNodeLinks, nil, &v)
}

// Send calls msg.send.
func (c *Client) Send(ctx context.Context, p SendParams) (SendResult, error) {
	var v SendResult
	return v, c.Call(ctx, MethodMsgSend, p, &v)
}

// Inbox calls msg.inbox.
func (c *Client) Inbox(ctx context.Context, p InboxParams) (InboxPage, error) {
	var v InboxPage
	return v, c.Call(ctx, MethodMsgInbox, p, &v)
}

// Ack calls msg.ack.
func (c *Client) Ack(ctx context.Context, seqs []uint64) (AckResult, error) {
	if seqs == nil {
		seqs = []uint64{}
	}
	var v AckResult
	return v, c.Call(ctx, MethodMsgAck, AckParams{Seqs: seqs}, &v)
}

// StoreStats calls store.stats.
func (c *Client) StoreStats(ctx context.Context) (StoreStats, error) {
	var v StoreStats
	return v, c.Call(ctx, MethodStoreStats, nil, &v)
}

// Discover calls rpc.discover and returns the OpenRPC document.
func (c *Client) Discover(ctx context.Context) (*Document, error) {
	var v Document
	if err := c.Call(ctx, MethodDiscover, nil, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// Subscribe calls msg.subscribe and returns the events the node pushes.
//
// Events arrive in the order the server sent them, which is Event.Seq
// order: the client takes msg.event notifications off the connection as it
// reads them, before it matches answers to calls. A jump in Seq means events were lost, either by the node (the
// subscriber fell behind) or by this client (more than EventBuffer events
// not yet received): re-read the inbox to catch up. The channel is closed
// when the client is closed or the connection is lost; ctx bounds only the
// call. A client subscribes once; a second call returns an error.
func (c *Client) Subscribe(ctx context.Context) (<-chan Event, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.subscribed {
		return nil, errors.New("rpcapi: this client is already subscribed; use the channel the first Subscribe returned")
	}
	c.ch.enable()
	var res SubscribeResult
	if err := c.Call(ctx, MethodMsgSubscribe, nil, &res); err != nil {
		c.ch.disable()
		return nil, err
	}
	c.subscribed = true
	return c.ch.events, nil
}

// eventTap is the client's channel: it takes msg.event notifications out
// of the stream in arrival order and passes everything else to the client's reader.
type eventTap struct {
	channel.Channel
	events chan Event

	mu      sync.Mutex
	enabled bool
	closed  bool
}

func (t *eventTap) enable() {
	t.mu.Lock()
	t.enabled = true
	t.mu.Unlock()
}

func (t *eventTap) disable() {
	t.mu.Lock()
	t.enabled = false
	t.mu.Unlock()
}

var eventMethod = []byte(`"` + NotifyEvent + `"`)

// Recv runs in the client's single reader goroutine, so events are
// handled in the order they arrived.
func (t *eventTap) Recv() ([]byte, error) {
	for {
		msg, err := t.Channel.Recv()
		if err != nil {
			t.mu.Lock()
			if !t.closed {
				t.closed = true
				close(t.events)
			}
			t.mu.Unlock()
			return msg, err
		}
		if !bytes.Contains(msg, eventMethod) {
			return msg, nil
		}
		var n struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
			Params *Event          `json:"params"`
		}
		if json.Unmarshal(msg, &n) != nil || n.Method != NotifyEvent || len(n.ID) != 0 || n.Params == nil {
			return msg, nil // not ours: a response that mentions the name
		}
		t.mu.Lock()
		if t.enabled && !t.closed {
			select {
			case t.events <- *n.Params:
			default: // full: the consumer will see a gap in Seq
			}
		}
		t.mu.Unlock()
	}
}
