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

// errNotJSON ends a connection on which the server sent something that is
// not JSON: the call it answered cannot be told, and it would wait forever.
var errNotJSON = errors.New("rpcapi: meshd sent a message that is not JSON")

func newRPCClient(ch channel.Channel) *rpcClient {
	r := &rpcClient{ch: ch, pending: make(map[uint64]chan answer), done: make(chan struct{})}
	go r.read()
	return r
}

func (r *rpcClient) read() {
	defer close(r.done)
	for {
		msg, err := r.ch.Recv()
		if len(msg) > 0 { // a final line comes with io.EOF
			if derr := r.deliver(msg); derr != nil {
				r.stop(derr)
				r.ch.Close() // the next Recv fails, and the event tap closes
			}
		}
		if err != nil {
			r.stop(err)
			return
		}
	}
}

// parseAnswer decodes msg, a message from the server, as the answer to
// call id; ok is false for anything else (a notification, a request, a
// batch, an id no call of ours has), which no call waits for. An answer
// whose error object is malformed fails its call. err reports a message
// that is not JSON.
func parseAnswer(msg []byte) (id uint64, a answer, ok bool, err error) {
	// Raw members by their exact names: JSON-RPC's member names are case
	// sensitive, and decoding into a struct would take "Id" or "ID" for
	// "id" (encoding/json matches field names without case). A member of
	// the wrong type fails only its call.
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(msg, &obj); err != nil {
		if se := new(json.SyntaxError); errors.As(err, &se) {
			return 0, answer{}, false, fmt.Errorf("%w: %v", errNotJSON, err)
		}
		return 0, answer{}, false, nil // JSON, but not an object
	}
	rawID, hasID := obj["id"]
	if _, isCall := obj["method"]; isCall || !hasID || string(rawID) == "null" || json.Unmarshal(rawID, &id) != nil {
		return 0, answer{}, false, nil
	}
	if rawErr := obj["error"]; len(rawErr) > 0 && string(rawErr) != "null" {
		e := new(Error)
		if err := json.Unmarshal(rawErr, e); err != nil {
			return id, answer{err: fmt.Errorf("rpcapi: malformed error object in the answer: %v", err)}, true, nil
		}
		return id, answer{err: e}, true, nil
	}
	return id, answer{result: obj["result"]}, true, nil
}

// deliver hands msg to the call it answers; it fails for a message that
// is not JSON.
func (r *rpcClient) deliver(msg []byte) error {
	id, a, ok, err := parseAnswer(msg)
	if !ok {
		return err
	}
	if ch := r.take(id); ch != nil {
		ch <- a // buffered: never blocks
	}
	return nil
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
		return nil, r.sendFailed(id, ch, err)
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

// sendFailed ends call id whose request could not be written (err). A
// client closed meanwhile fails the call with ErrClientClosed, as stop
// fails the calls pending, whatever error the closed connection's write
// gave (net.Pipe's is none that clientError knows).
func (r *rpcClient) sendFailed(id uint64, ch chan answer, err error) error {
	if r.take(id) == nil {
		return (<-ch).err // stop answered it
	}
	r.mu.Lock()
	closing := r.closing
	r.mu.Unlock()
	if closing {
		return fmt.Errorf("%w: %v", ErrClientClosed, err)
	}
	return err
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
