package rpcapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/creachadair/jrpc2/channel"
)

// rpcClient is the Client's JSON-RPC 2.0 side: it sends calls and matches
// answers to them by id. Its reader hands each answer to its caller before
// it reads the next message, so an answer the server sent before closing
// the connection always reaches its call. (jrpc2's client delivered
// answers in goroutines of their own, which raced with the close that
// followed: a call that succeeded could fail with "context canceled".)
type rpcClient struct {
	ch     channel.Channel
	sendMu sync.Mutex
	done   chan struct{} // closed when the reader stopped

	mu      sync.Mutex
	next    uint64
	pending map[uint64]chan answer
	err     error // why the connection ended; nil while it is up
	closing bool  // Close was called
}

// answer is what a call gets back: the result, or the error.
type answer struct {
	result json.RawMessage
	err    error
}

// wireAnswer is a JSON-RPC response as the client reads it.
type wireAnswer struct {
	ID     *uint64         `json:"id"`
	Method string          `json:"method"`
	Result json.RawMessage `json:"result"`
	Error  *Error          `json:"error"`
}

func newRPCClient(ch channel.Channel) *rpcClient {
	r := &rpcClient{ch: ch, pending: make(map[uint64]chan answer), done: make(chan struct{})}
	go r.read()
	return r
}

func (r *rpcClient) read() {
	defer close(r.done)
	for {
		msg, err := r.ch.Recv()
		if err != nil {
			r.stop(err)
			return
		}
		r.deliver(msg)
	}
}

// parseAnswer decodes msg, a message from the server, as the answer to
// call id; ok is false for anything else (a notification, a request, a
// batch, junk), which no call waits for.
func parseAnswer(msg []byte) (id uint64, a answer, ok bool) {
	var w wireAnswer
	if json.Unmarshal(msg, &w) != nil || w.ID == nil || w.Method != "" {
		return 0, answer{}, false
	}
	if w.Error != nil {
		return *w.ID, answer{err: w.Error}, true
	}
	return *w.ID, answer{result: w.Result}, true
}

// deliver hands msg to the call it answers.
func (r *rpcClient) deliver(msg []byte) {
	id, a, ok := parseAnswer(msg)
	if !ok {
		return
	}
	if ch := r.take(id); ch != nil {
		ch <- a // buffered: never blocks
	}
}

// take removes call id from the pending calls and returns its channel
// (nil when no call waits under id).
func (r *rpcClient) take(id uint64) chan answer {
	r.mu.Lock()
	defer r.mu.Unlock()
	ch := r.pending[id]
	delete(r.pending, id)
	return ch
}

// stop ends the connection: every pending call fails with ErrClientClosed.
func (r *rpcClient) stop(cause error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return
	}
	r.err = ErrClientClosed
	if !r.closing && cause != nil {
		r.err = fmt.Errorf("%w: %v", ErrClientClosed, cause)
	}
	for id, ch := range r.pending {
		ch <- answer{err: r.err}
		delete(r.pending, id)
	}
}

// call sends method with params (nil for none) and waits for its answer
// or for ctx to end.
func (r *rpcClient) call(ctx context.Context, method string, params any) (json.RawMessage, error) {
	id, ch, err := r.register()
	if err != nil {
		return nil, err
	}
	req, err := json.Marshal(struct {
		JSONRPC string `json:"jsonrpc"`
		ID      uint64 `json:"id"`
		Method  string `json:"method"`
		Params  any    `json:"params,omitempty"`
	}{"2.0", id, method, params})
	if err == nil {
		r.sendMu.Lock()
		err = r.ch.Send(req)
		r.sendMu.Unlock()
	}
	if err != nil {
		r.take(id)
		return nil, err
	}
	select {
	case a := <-ch:
		return a.result, a.err
	case <-ctx.Done():
	}
	if r.take(id) == nil {
		a := <-ch // answered meanwhile: the call succeeded
		return a.result, a.err
	}
	return nil, ctx.Err()
}

// register allots the next call id, unless the connection ended.
func (r *rpcClient) register() (uint64, chan answer, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return 0, nil, r.err
	}
	r.next++
	ch := make(chan answer, 1)
	r.pending[r.next] = ch
	return r.next, ch, nil
}

// close closes the connection and waits for the reader to stop.
func (r *rpcClient) close() error {
	r.mu.Lock()
	r.closing = true
	r.mu.Unlock()
	err := r.ch.Close()
	<-r.done
	if err != nil && !channel.IsErrClosing(err) && !errors.Is(err, ErrClientClosed) {
		return err
	}
	return nil
}
