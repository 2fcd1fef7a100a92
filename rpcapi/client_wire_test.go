package rpcapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"
)

// scriptedServer runs answer for each request the client sends over a
// pipe: answer writes whatever it likes (raw bytes) and reports whether
// the server goes on reading. The connection closes when it stops.
func scriptedServer(t *testing.T, answer func(w io.Writer, id json.RawMessage) bool) *Client {
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
			var req struct{ ID json.RawMessage }
			json.Unmarshal(line, &req)
			if !answer(srv, req.ID) {
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
