package rpcapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"
)

// scriptedServer runs answer for each request the client sends over a
// pipe: answer writes whatever it likes (raw bytes) and reports whether
// the server goes on reading. The connection closes when it stops.
func scriptedServer(t *testing.T, answer func(w io.Writer, id json.RawMessage) bool) *Client {
	return scriptedServerParams(t, func(w io.Writer, id, _ json.RawMessage) bool { return answer(w, id) })
}

// scriptedServerParams is scriptedServer whose answer sees the request's
// params too.
func scriptedServerParams(t *testing.T, answer func(w io.Writer, id, params json.RawMessage) bool) *Client {
	srv, cli := net.Pipe()
	c := newClient(newLineChannel(cli, 0))
	t.Cleanup(func() { c.Close() })
	go func() {
		defer srv.Close()
		r := bufio.NewReader(srv)
		for {
			line, err := r.ReadBytes('\n')
			if err != nil {
				return
			}
			var req struct{ ID, Params json.RawMessage }
			json.Unmarshal(line, &req)
			if !answer(srv, req.ID, req.Params) {
				return
			}
		}
	}()
	return c
}

// callOrHang calls node.info, giving up after 10 s (a call that gets
// nothing back: the test's failure, not its measure).
func callOrHang(t *testing.T, c *Client) (NodeInfo, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := c.Info(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatal("the call got no answer and no error")
	}
	return info, err
}

// TestCallMalformedAnswer: a server whose answer the client cannot decode
// (a truncated line, an error object of the wrong shape) fails the call;
// the call never waits for an answer that will not come (jrpc2's client
// ended the connection on a message it could not parse).
func TestCallMalformedAnswer(t *testing.T) {
	for name, msg := range map[string]string{
		"truncated":       `{"jsonrpc":"2.0","id":%s,"result":{"address":`,
		"not json":        `hello %s`,
		"error not obj":   `{"jsonrpc":"2.0","id":%s,"error":"boom"}`,
		"error code text": `{"jsonrpc":"2.0","id":%s,"error":{"code":"x","message":"m"}}`,
	} {
		t.Run(name, func(t *testing.T) {
			c := scriptedServer(t, func(w io.Writer, id json.RawMessage) bool {
				fmt.Fprintf(w, msg+"\n", id)
				return true // keeps the connection open
			})
			if _, err := callOrHang(t, c); err == nil {
				t.Fatal("a malformed answer succeeded")
			}
		})
	}
}

// TestCallAnsweredAtEOF: a server that writes its answer without the final
// newline and closes: the answer arrived, and the call returns it.
func TestCallAnsweredAtEOF(t *testing.T) {
	c := scriptedServer(t, func(w io.Writer, id json.RawMessage) bool {
		fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{"address":"a1"}}`, id)
		return false
	})
	info, err := callOrHang(t, c)
	if err != nil || info.Address != "a1" {
		t.Fatalf("Info = %+v, %v", info, err)
	}
}

// TestCallIgnoresStrayAnswers: answers for ids no call waits under,
// duplicates, notifications and batches are dropped; the call gets its
// own answer, and a second call works.
func TestCallIgnoresStrayAnswers(t *testing.T) {
	c := scriptedServer(t, func(w io.Writer, id json.RawMessage) bool {
		for _, s := range []string{
			`{"jsonrpc":"2.0","id":999,"result":{"address":"stray"}}`,
			`{"jsonrpc":"2.0","id":"` + string(id) + `","result":{"address":"string id"}}`,
			`{"jsonrpc":"2.0","method":"x.y","params":{}}`,
			`[{"jsonrpc":"2.0","id":` + string(id) + `,"result":{"address":"batch"}}]`,
			`null`, `7`,
			`{"jsonrpc":"2.0","id":` + string(id) + `,"result":{"address":"mine"}}`,
			`{"jsonrpc":"2.0","id":` + string(id) + `,"result":{"address":"duplicate"}}`,
		} {
			io.WriteString(w, s+"\n")
		}
		return true
	})
	for range 2 {
		info, err := callOrHang(t, c)
		if err != nil || info.Address != "mine" {
			t.Fatalf("Info = %+v, %v", info, err)
		}
	}
	for range 2 {
		if err := c.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
}

// TestCallsConcurrentOutOfOrder: many goroutines call at once and the
// server answers in its own order: each call gets its own answer. Calls
// whose context ends first return its error, and their late answers are
// dropped without a trace (no pending call is left).
func TestCallsConcurrentOutOfOrder(t *testing.T) {
	var wmu sync.Mutex
	c := scriptedServerParams(t, func(w io.Writer, id, params json.RawMessage) bool {
		go func() { // answers race each other: their order is the scheduler's
			for range rand.IntN(50) {
				runtime.Gosched()
			}
			wmu.Lock()
			defer wmu.Unlock()
			fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":%s}`+"\n", id, params)
		}()
		return true
	})
	const callers, calls = 16, 40
	errs := make(chan error, callers)
	for g := range callers {
		go func() {
			for i := range calls {
				ctx, cancel := context.WithCancel(context.Background())
				if (g+i)%7 == 0 {
					cancel() // ends before the answer can come
				}
				tag := fmt.Sprintf("%d-%d", g, i)
				var res struct{ Tag string }
				err := c.Call(ctx, MethodNodeInfo, map[string]string{"tag": tag}, &res)
				cancel()
				if err == nil && res.Tag != tag {
					err = fmt.Errorf("call %s got the answer of %s", tag, res.Tag)
				}
				if err != nil && !errors.Is(err, context.Canceled) {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range callers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	c.rpc.mu.Lock()
	left := len(c.rpc.pending)
	c.rpc.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d calls left pending", left)
	}
}

// TestClosePendingCalls: calls waiting for a server that never answers
// fail with ErrClientClosed when the client closes, and later calls too.
func TestClosePendingCalls(t *testing.T) {
	c := scriptedServer(t, func(io.Writer, json.RawMessage) bool { return true })
	errs := make(chan error, 8)
	for range cap(errs) {
		go func() {
			_, err := c.Info(context.Background())
			errs <- err
		}()
	}
	for {
		c.rpc.mu.Lock()
		n := len(c.rpc.pending)
		c.rpc.mu.Unlock()
		if n == cap(errs) {
			break
		}
		runtime.Gosched()
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	for range cap(errs) {
		if err := <-errs; !errors.Is(err, ErrClientClosed) {
			t.Fatalf("pending call: %v, want ErrClientClosed", err)
		}
	}
	if _, err := c.Info(context.Background()); !errors.Is(err, ErrClientClosed) {
		t.Fatalf("call after Close: %v", err)
	}
}

// TestCloseDuringRequestWrite: a call registered whose request is still
// being written when the client closes (here the server never reads, so
// the write waits) fails with ErrClientClosed, like every other pending
// call, not with the write's error on the closed connection
// (TestClosePendingCalls failed so now and then).
func TestCloseDuringRequestWrite(t *testing.T) {
	srv, cli := net.Pipe()
	defer srv.Close()
	c := newClient(newLineChannel(cli, 0))
	errs := make(chan error, 1)
	go func() {
		_, err := c.Info(context.Background())
		errs <- err
	}()
	for {
		c.rpc.mu.Lock()
		n := len(c.rpc.pending)
		c.rpc.mu.Unlock()
		if n == 1 {
			break
		}
		runtime.Gosched()
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errs; !errors.Is(err, ErrClientClosed) {
		t.Fatalf("call whose request was being written: %v, want ErrClientClosed", err)
	}
}
