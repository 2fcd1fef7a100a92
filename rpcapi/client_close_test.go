package rpcapi

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
)

// TestCallAnsweredThenClosed: a server that answers a call and closes the
// connection at once. The answer arrived: the call returns it, never an
// error (jrpc2's client delivered answers in goroutines that raced with
// the close and could report "context canceled" for a call that
// succeeded).
func TestCallAnsweredThenClosed(t *testing.T) {
	for i := range 300 {
		srvSide, cliSide := net.Pipe()
		c := newClient(newLineChannel(cliSide, 0))
		go func() {
			defer srvSide.Close()
			line, err := bufio.NewReader(srvSide).ReadBytes('\n')
			if err != nil {
				return
			}
			var req struct{ ID json.RawMessage }
			json.Unmarshal(line, &req)
			fmt.Fprintf(srvSide, `{"jsonrpc":"2.0","id":%s,"result":{"n":%d}}`+"\n", req.ID, i)
		}()
		var res struct{ N int }
		err := c.Call(context.Background(), "node.info", nil, &res)
		c.Close()
		if err != nil || res.N != i {
			t.Fatalf("round %d: %v, result %d", i, err, res.N)
		}
	}
}

// FuzzParseAnswer: any message from the server decodes without a panic,
// only a message that is not JSON is an error, and what parses as an
// answer is an object whose "id" is the call id.
func FuzzParseAnswer(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"result":{"n":1}}`,
		`{"jsonrpc":"2.0","id":2,"error":{"code":-32601,"message":"no","data":[1]}}`,
		`{"jsonrpc":"2.0","method":"msg.event","params":{"seq":1}}`,
		`[{"id":1}]`, `{"id":-1}`, `{"id":"1"}`, `{"id":1e3,"result":null}`, `null`,
		`{"id":null,"error":{"code":1}}`, `{"id":3,"error":"boom"}`, `{"id":4,"error":{"code":"x"}}`, `{"id":5,"result":`, `hello`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		id, _, ok, err := parseAnswer(msg)
		if err != nil && json.Valid(msg) {
			t.Fatalf("%q: valid JSON, but %v", msg, err)
		}
		if !ok {
			return
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(msg, &obj); err != nil {
			t.Fatalf("%q: an answer, but not an object: %v", msg, err)
		}
		if got := strings.TrimSpace(string(obj["id"])); got != strconv.FormatUint(id, 10) && !strings.ContainsAny(got, ".eE") {
			t.Fatalf("%q: id %d, message id %s", msg, id, got)
		}
	})
}
