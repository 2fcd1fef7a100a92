package rpcapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// After answering a request whose body it did not read (413),
		// net/http half-closes the connection and lingers 500 ms so the
		// client reads the answer before a reset. Shutdown does not wait
		// for that; the goroutine ends by itself.
		goleak.IgnoreAnyFunction("net/http.(*conn).closeWriteAndWait"),
	)
}

const testToken = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

// testEnv is a server on a fake node with both transports.
type testEnv struct {
	t    *testing.T
	node *fakeNode
	srv  *Server
	dir  string
	logs *logBuffer
	http *http.Client
}

func newEnv(t testing.TB) *testEnv {
	t.Helper()
	// Unix socket paths are limited to 108 bytes: keep it short.
	dir, err := os.MkdirTemp("", "rpc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	logs := &logBuffer{}
	node := newFakeNode()
	srv, err := NewServer(node, ServerOptions{
		SocketPath: SocketPath(dir),
		HTTPAddr:   "127.0.0.1:0",
		Token:      testToken,
		Logger:     slog.New(slog.NewTextHandler(logs, nil)),
		Version:    "test",
		Web:        &fakeWeb{},
	})
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{DisableKeepAlives: true}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		tr.CloseIdleConnections()
	})
	e := &testEnv{node: node, srv: srv, dir: dir, logs: logs, http: &http.Client{Transport: tr}}
	if tt, ok := t.(*testing.T); ok {
		e.t = tt
	}
	return e
}

// logBuffer collects the server's log for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (e *testEnv) url(path string) string { return "http://" + e.srv.HTTPAddr() + path }

// post sends body to / with the test token and the right headers, modified
// by mod.
func (e *testEnv) post(t testing.TB, body string, mod func(*http.Request)) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest("POST", e.url("/"), strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+testToken)
	if mod != nil {
		mod(req)
	}
	resp, err := e.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// rawConn is a raw line-oriented socket client.
type rawConn struct {
	c net.Conn
	r *bufio.Reader
}

func (e *testEnv) dialRaw(t testing.TB) *rawConn {
	t.Helper()
	c, err := net.Dial("unix", e.srv.SocketPath())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{c: c, r: bufio.NewReaderSize(c, 1<<20)}
}

func (r *rawConn) roundTrip(t testing.TB, line string) []byte {
	t.Helper()
	if _, err := io.WriteString(r.c, line+"\n"); err != nil {
		t.Fatal(err)
	}
	return r.readLine(t)
}

func (r *rawConn) readLine(t testing.TB) []byte {
	t.Helper()
	r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := r.r.ReadBytes('\n')
	if err != nil {
		t.Fatalf("reading response: %v (got %q)", err, b)
	}
	return b
}

// response is a decoded JSON-RPC response.
type response struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Result  json.RawMessage `json:"result"`
	Error   *Error          `json:"error"`
}

func decodeResponse(t testing.TB, b []byte) response {
	t.Helper()
	var r response
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("response %q: %v", b, err)
	}
	if r.JSONRPC != "2.0" || len(r.ID) == 0 || (r.Error == nil) == (r.Result == nil) {
		t.Fatalf("malformed response %q", b)
	}
	return r
}

// transport runs one request body and returns the raw response.
type transport struct {
	name string
	do   func(t *testing.T, e *testEnv, body string) []byte
}

var transports = []transport{
	{"socket", func(t *testing.T, e *testEnv, body string) []byte {
		return e.dialRaw(t).roundTrip(t, body)
	}},
	{"http", func(t *testing.T, e *testEnv, body string) []byte {
		code, b := e.post(t, body, nil)
		if code != http.StatusOK {
			t.Fatalf("HTTP status %d: %s", code, b)
		}
		return b
	}},
	{"websocket", func(t *testing.T, e *testEnv, body string) []byte {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ws := e.dialWS(t, ctx)
		defer ws.CloseNow()
		if err := ws.Write(ctx, websocket.MessageText, []byte(body)); err != nil {
			t.Fatal(err)
		}
		_, b, err := ws.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}},
}

func (e *testEnv) dialWS(t testing.TB, ctx context.Context) *websocket.Conn {
	t.Helper()
	h := http.Header{}
	h.Set("Authorization", "Bearer "+testToken)
	ws, _, err := websocket.Dial(ctx, "ws://"+e.srv.HTTPAddr()+"/ws", &websocket.DialOptions{HTTPHeader: h, HTTPClient: e.http})
	if err != nil {
		t.Fatal(err)
	}
	ws.SetReadLimit(-1)
	return ws
}

const okAddr = "00112233445566778899aabbccddeeff"

// TestConformance checks every protocol-level and parameter error path on
// every transport.
func TestConformance(t *testing.T) {
	cases := []struct {
		name    string
		body    string
		code    int    // 0: success
		message string // substring of the error message
	}{
		{"parse error", `{"jsonrpc":"2.0","id":1,"method":`, CodeParseError, ""},
		{"not json", `hello`, CodeParseError, ""},
		{"wrong version", `{"jsonrpc":"1.0","id":1,"method":"node.info"}`, CodeInvalidRequest, "version"},
		{"missing version", `{"id":1,"method":"node.info"}`, CodeInvalidRequest, "version"},
		{"id object", `{"jsonrpc":"2.0","id":{},"method":"node.info"}`, CodeInvalidRequest, "ID"},
		{"id bool", `{"jsonrpc":"2.0","id":true,"method":"node.info"}`, CodeInvalidRequest, "ID"},
		{"params scalar", `{"jsonrpc":"2.0","id":1,"method":"node.info","params":3}`, CodeInvalidRequest, ""},
		{"empty batch", `[]`, CodeInvalidRequest, "empty"},
		{"unknown method", `{"jsonrpc":"2.0","id":1,"method":"node.explode"}`, CodeMethodNotFound, ""},
		{"jrpc2 builtin hidden", `{"jsonrpc":"2.0","id":1,"method":"rpc.serverInfo"}`, CodeMethodNotFound, ""},
		{"ok", `{"jsonrpc":"2.0","id":1,"method":"node.info"}`, 0, ""},
		{"ok empty object", `{"jsonrpc":"2.0","id":"a","method":"node.info","params":{}}`, 0, ""},
		{"ok empty array", `{"jsonrpc":"2.0","id":"a","method":"node.info","params":[]}`, 0, ""},
		{"no-param method with params", `{"jsonrpc":"2.0","id":1,"method":"node.info","params":{"x":1}}`, CodeInvalidParams, "takes no parameters"},
		{"bad address", `{"jsonrpc":"2.0","id":1,"method":"msg.send","params":{"to":"nothex","text":"hi"}}`, CodeInvalidParams, "not a mesh address"},
		{"short address", `{"jsonrpc":"2.0","id":1,"method":"msg.send","params":{"to":"0011","text":"hi"}}`, CodeInvalidParams, "32 hex characters"},
		{"zero address", `{"jsonrpc":"2.0","id":1,"method":"msg.send","params":{"to":"00000000000000000000000000000000","text":"hi"}}`, CodeInvalidParams, "all-zero"},
		{"missing to", `{"jsonrpc":"2.0","id":1,"method":"msg.send","params":{"text":"hi"}}`, CodeInvalidParams, "to is required"},
		{"unknown field", `{"jsonrpc":"2.0","id":1,"method":"msg.send","params":{"to":"` + okAddr + `","text":"hi","colour":"red"}}`, CodeInvalidParams, `unknown field "colour"`},
		{"text and payload", `{"jsonrpc":"2.0","id":1,"method":"msg.send","params":{"to":"` + okAddr + `","text":"hi","payload":"aGk="}}`, CodeInvalidParams, "not both"},
		{"empty message", `{"jsonrpc":"2.0","id":1,"method":"msg.send","params":{"to":"` + okAddr + `"}}`, CodeInvalidParams, "empty"},
		{"negative ttl", `{"jsonrpc":"2.0","id":1,"method":"msg.send","params":{"to":"` + okAddr + `","text":"hi","ttl":-1}}`, CodeInvalidParams, "ttl -1"},
		{"bad base64", `{"jsonrpc":"2.0","id":1,"method":"msg.send","params":{"to":"` + okAddr + `","payload":"!!"}}`, CodeInvalidParams, "base64"},
		{"wrong type", `{"jsonrpc":"2.0","id":1,"method":"msg.send","params":{"to":5,"text":"hi"}}`, CodeInvalidParams, `field "to"`},
		{"positional params", `{"jsonrpc":"2.0","id":1,"method":"msg.send","params":["` + okAddr + `","hi"]}`, CodeInvalidParams, "not an array"},
		{"send ok", `{"jsonrpc":"2.0","id":1,"method":"msg.send","params":{"to":"` + okAddr + `","text":"hi","ttl":60}}`, 0, ""},
		{"limit too large", `{"jsonrpc":"2.0","id":1,"method":"msg.inbox","params":{"limit":1001}}`, CodeInvalidParams, "maximum 1000"},
		{"limit negative", `{"jsonrpc":"2.0","id":1,"method":"msg.inbox","params":{"limit":-5}}`, CodeInvalidParams, "negative"},
		{"after negative", `{"jsonrpc":"2.0","id":1,"method":"msg.inbox","params":{"after":-1}}`, CodeInvalidParams, `field "after"`},
		{"inbox ok", `{"jsonrpc":"2.0","id":1,"method":"msg.inbox","params":{"limit":1000}}`, 0, ""},
		{"ack without seqs", `{"jsonrpc":"2.0","id":1,"method":"msg.ack","params":{}}`, CodeInvalidParams, "seqs is required"},
		{"connect garbage", `{"jsonrpc":"2.0","id":1,"method":"node.connect","params":{"addr":"example.org"}}`, CodeInvalidParams, "not a multiaddr"},
		{"connect node rejects", `{"jsonrpc":"2.0","id":1,"method":"node.connect","params":{"addr":"/ip4/127.0.0.1/tcp/1/p2p/"}}`, CodeInvalidParams, "peer ID missing"},
		{"connect fails", `{"jsonrpc":"2.0","id":1,"method":"node.connect","params":{"addr":"/ip4/192.0.2.1/tcp/1/p2p/12D3KooWx"}}`, CodeConnectFailed, "no route to host"},
		{"refused", `{"jsonrpc":"2.0","id":1,"method":"msg.send","params":{"to":"` + okAddr + `","text":"` + strings.Repeat("x", maxPayload+1) + `"}}`, CodeRefused, "at most 65536"},
	}
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			e := newEnv(t)
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					r := decodeResponse(t, tr.do(t, e, tc.body))
					if tc.code == 0 {
						if r.Error != nil {
							t.Fatalf("error %v, want success", r.Error)
						}
						return
					}
					if r.Error == nil {
						t.Fatalf("result %s, want error %d", r.Result, tc.code)
					}
					if r.Error.Code != tc.code || !strings.Contains(r.Error.Message, tc.message) {
						t.Fatalf("error %d %q, want %d containing %q", r.Error.Code, r.Error.Message, tc.code, tc.message)
					}
				})
			}
		})
	}
}

// TestNodeErrors checks how errors from the node reach a Go client.
func TestNodeErrors(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c, err := Dial(ctx, e.srv.SocketPath())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	t.Run("refused", func(t *testing.T) {
		_, err := c.Send(ctx, SendParams{To: okAddr, Payload: make([]byte, maxPayload+1)})
		wantCode(t, err, CodeRefused, ErrRefused)
	})
	t.Run("connect", func(t *testing.T) {
		_, err := c.Connect(ctx, "/ip4/192.0.2.7/tcp/4001/p2p/12D3KooWnobody")
		wantCode(t, err, CodeConnectFailed, ErrConnect)
	})
	t.Run("invalid params from the node", func(t *testing.T) {
		_, err := c.Connect(ctx, "/ip4/127.0.0.1/tcp/4001/p2p/")
		wantCode(t, err, CodeInvalidParams, ErrInvalidParams)
	})
	t.Run("invalid params from the server", func(t *testing.T) {
		_, err := c.Inbox(ctx, InboxParams{Limit: 5000})
		wantCode(t, err, CodeInvalidParams, ErrInvalidParams)
	})
	t.Run("internal hides detail", func(t *testing.T) {
		e.node.set(func(n *fakeNode) { n.broken = "badger: secret path /home/x/vlog corrupt" })
		defer e.node.set(func(n *fakeNode) { n.broken = "" })
		_, err := c.StoreStats(ctx)
		wantCode(t, err, CodeInternal, nil)
		if strings.Contains(err.Error(), "secret") {
			t.Fatalf("internal detail leaked: %v", err)
		}
		if !strings.Contains(e.logs.String(), "secret path") {
			t.Fatalf("detail not logged: %s", e.logs)
		}
	})
	t.Run("panic", func(t *testing.T) {
		e.node.set(func(n *fakeNode) { n.panicky = true })
		defer e.node.set(func(n *fakeNode) { n.panicky = false })
		_, err := c.Routes(ctx)
		wantCode(t, err, CodeInternal, nil)
		if _, err := c.Info(ctx); err != nil {
			t.Fatalf("server unusable after a panic: %v", err)
		}
	})
	t.Run("unavailable", func(t *testing.T) {
		e.node.set(func(n *fakeNode) { n.unavailable = true })
		defer e.node.set(func(n *fakeNode) { n.unavailable = false })
		_, err := c.Info(ctx)
		wantCode(t, err, CodeUnavailable, ErrUnavailable)
		if !strings.Contains(err.Error(), "shutting down") {
			t.Fatalf("message lost: %v", err)
		}
	})
}

func wantCode(t *testing.T, err error, code int, sentinel error) {
	t.Helper()
	var ae *Error
	if !errors.As(err, &ae) {
		t.Fatalf("error %v (%T), want *Error", err, err)
	}
	if ae.Code != code {
		t.Fatalf("code %d (%v), want %d", ae.Code, err, code)
	}
	if sentinel != nil && !errors.Is(err, sentinel) {
		t.Fatalf("errors.Is(%v, %v) is false", err, sentinel)
	}
}

// TestClient exercises every typed client method over both connection
// kinds.
func TestClient(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	dial := map[string]func() (*Client, error){
		"socket":    func() (*Client, error) { return DialDataDir(ctx, e.dir) },
		"websocket": func() (*Client, error) { return DialWebSocket(ctx, "ws://"+e.srv.HTTPAddr()+"/ws", testToken) },
	}
	for name, d := range dial {
		t.Run(name, func(t *testing.T) {
			c, err := d()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			info, err := c.Info(ctx)
			if err != nil || info.Address != e.node.addr || !info.Started.Equal(e.node.started) {
				t.Fatalf("Info = %+v, %v", info, err)
			}
			p, err := c.Connect(ctx, "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooW"+name)
			if err != nil || p.PeerID != "12D3KooW"+name {
				t.Fatalf("Connect = %+v, %v", p, err)
			}
			peers, err := c.Peers(ctx)
			if err != nil || len(peers) == 0 {
				t.Fatalf("Peers = %v, %v", peers, err)
			}
			links, err := c.Links(ctx)
			if err != nil || len(links) != len(peers) || links[0].Kind != "ip" {
				t.Fatalf("Links = %v, %v", links, err)
			}
			routes, err := c.Routes(ctx)
			if err != nil || len(routes) != len(peers) {
				t.Fatalf("Routes = %v, %v", routes, err)
			}
			res, err := c.Send(ctx, SendParams{To: okAddr, Text: "away"})
			if err != nil || res.Status != "custody" {
				t.Fatalf("Send = %+v, %v", res, err)
			}
			var sent []uint64
			for i := range 5 {
				res, err := c.Send(ctx, SendParams{To: e.node.addr, Payload: []byte{byte(i), 0xff}})
				if err != nil || res.Status != "local" {
					t.Fatalf("Send = %+v, %v", res, err)
				}
			}
			var after uint64
			for {
				page, err := c.Inbox(ctx, InboxParams{After: after, Limit: 2})
				if err != nil {
					t.Fatal(err)
				}
				for _, m := range page.Messages {
					sent = append(sent, m.Seq)
					if len(m.Payload) != 2 || m.Payload[1] != 0xff {
						t.Fatalf("payload %x", m.Payload)
					}
				}
				after = page.Next
				if !page.More {
					break
				}
			}
			if len(sent) < 5 {
				t.Fatalf("inbox pages gave %v", sent)
			}
			ack, err := c.Ack(ctx, sent)
			if err != nil || ack.Remaining != 0 {
				t.Fatalf("Ack = %+v, %v", ack, err)
			}
			st, err := c.StoreStats(ctx)
			if err != nil || st.LSMBytes != 1<<20 {
				t.Fatalf("StoreStats = %+v, %v", st, err)
			}
			doc, err := c.Discover(ctx)
			if err != nil || doc.OpenRPC != OpenRPCVersion || len(doc.Methods) != len(Methods) {
				t.Fatalf("Discover = %+v, %v", doc, err)
			}
		})
	}
}

// TestSubscribe checks that events reach a client in Seq order, over the
// socket and the WebSocket, and end with the connection.
func TestSubscribe(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	dial := map[string]func() (*Client, error){
		"socket":    func() (*Client, error) { return Dial(ctx, e.srv.SocketPath()) },
		"websocket": func() (*Client, error) { return DialWebSocket(ctx, "ws://"+e.srv.HTTPAddr()+"/ws", testToken) },
	}
	for name, d := range dial {
		t.Run(name, func(t *testing.T) {
			c, err := d()
			if err != nil {
				t.Fatal(err)
			}
			events, err := c.Subscribe(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Subscribe(ctx); err == nil {
				t.Fatal("second Subscribe succeeded")
			}
			// The fake node buffers 64 events per subscriber; stay under it
			// so the test sees no legitimate gap.
			const n = 50
			for i := range n {
				if _, err := c.Send(ctx, SendParams{To: e.node.addr, Text: fmt.Sprint(i)}); err != nil {
					t.Fatal(err)
				}
			}
			for i := range n {
				ev := <-events
				if ev.Seq != uint64(i+1) || ev.Kind != EventMessage || ev.Message == nil || ev.Message.Text != fmt.Sprint(i) {
					t.Fatalf("event %d = %+v", i, ev)
				}
			}
			c.Close()
			if _, ok := <-events; ok {
				t.Fatal("events channel still open after Close")
			}
		})
	}

	t.Run("http post", func(t *testing.T) {
		_, b := e.post(t, `{"jsonrpc":"2.0","id":1,"method":"msg.subscribe"}`, nil)
		r := decodeResponse(t, b)
		if r.Error == nil || r.Error.Code != CodeMethodNotFound || !strings.Contains(r.Error.Message, "WebSocket") {
			t.Fatalf("subscribe over POST: %s", b)
		}
	})

	t.Run("raw socket twice", func(t *testing.T) {
		// Count Subscribe calls, not live subscriptions: the earlier
		// subtests' connections are closed, but the server may still be
		// ending their subscriptions.
		before := e.node.subscribeCalls()
		rc := e.dialRaw(t)
		for range 2 {
			r := decodeResponse(t, rc.roundTrip(t, `{"jsonrpc":"2.0","id":1,"method":"msg.subscribe"}`))
			if string(r.Result) != `{"subscribed":true}` {
				t.Fatalf("result %s", r.Result)
			}
		}
		if got := e.node.subscribeCalls() - before; got != 1 {
			t.Fatalf("%d node subscriptions from one connection subscribing twice, want 1", got)
		}
	})

	t.Run("node ends subscription", func(t *testing.T) {
		c, err := Dial(ctx, e.srv.SocketPath())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		events, err := c.Subscribe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		e.node.endSubscriptions()
		if _, ok := <-events; ok {
			t.Fatal("got an event, want the channel closed")
		}
		if _, err := c.Info(ctx); !errors.Is(err, ErrClientClosed) {
			t.Fatalf("Info after hang-up: %v", err)
		}
	})
}

// TestEventTapOrder feeds the client's channel notifications directly, in
// order, and checks the Subscribe channel keeps that order even with jrpc2
// responses interleaved.
func TestEventTapOrder(t *testing.T) {
	srvSide, cliSide := net.Pipe()
	c := newClient(newLineChannel(cliSide, 0))
	defer c.Close()
	go func() {
		r := bufio.NewReader(srvSide)
		line, err := r.ReadBytes('\n') // the msg.subscribe call
		if err != nil {
			return
		}
		var req struct{ ID json.RawMessage }
		json.Unmarshal(line, &req)
		for i := 1; i <= 200; i++ {
			fmt.Fprintf(srvSide, `{"jsonrpc":"2.0","method":"msg.event","params":{"seq":%d,"kind":"peer-up"}}`+"\n", i)
			if i == 3 {
				fmt.Fprintf(srvSide, `{"jsonrpc":"2.0","id":%s,"result":{"subscribed":true}}`+"\n", req.ID)
			}
		}
		srvSide.Close()
	}()
	events, err := c.Subscribe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := uint64(1)
	for ev := range events {
		if ev.Seq != want {
			t.Fatalf("seq %d, want %d", ev.Seq, want)
		}
		want++
	}
	if want != 201 {
		t.Fatalf("got %d events", want-1)
	}
}

func TestHTTPAccess(t *testing.T) {
	e := newEnv(t)
	port := e.srv.httpPort
	body := `{"jsonrpc":"2.0","id":1,"method":"node.info"}`
	cases := []struct {
		name string
		mod  func(*http.Request)
		want int
	}{
		{"ok", nil, http.StatusOK},
		{"ok localhost", func(r *http.Request) { r.Host = "localhost:" + port }, http.StatusOK},
		{"ok ipv6 host", func(r *http.Request) { r.Host = "[::1]:" + port }, http.StatusOK},
		{"ok loopback origin", func(r *http.Request) { r.Header.Set("Origin", "http://localhost:3000") }, http.StatusOK},
		{"ok https origin", func(r *http.Request) { r.Header.Set("Origin", "https://127.0.0.1") }, http.StatusOK},
		{"no token", func(r *http.Request) { r.Header.Del("Authorization") }, http.StatusUnauthorized},
		{"wrong token", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+strings.Repeat("0", 64)) }, http.StatusUnauthorized},
		{"basic auth", func(r *http.Request) { r.SetBasicAuth("x", testToken) }, http.StatusUnauthorized},
		{"token prefix", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+testToken[:10]) }, http.StatusUnauthorized},
		{"foreign host", func(r *http.Request) { r.Host = "evil.example:" + port }, http.StatusForbidden},
		{"rebinding host no port", func(r *http.Request) { r.Host = "evil.example" }, http.StatusForbidden},
		{"wrong port", func(r *http.Request) { r.Host = "127.0.0.1:1" }, http.StatusForbidden},
		{"foreign origin", func(r *http.Request) { r.Header.Set("Origin", "https://evil.example") }, http.StatusForbidden},
		{"null origin", func(r *http.Request) { r.Header.Set("Origin", "null") }, http.StatusForbidden},
		{"lookalike origin", func(r *http.Request) { r.Header.Set("Origin", "http://localhost.evil.example") }, http.StatusForbidden},
		{"form post", func(r *http.Request) { r.Header.Set("Content-Type", "application/x-www-form-urlencoded") }, http.StatusUnsupportedMediaType},
		{"GET", func(r *http.Request) { r.Method = "GET" }, http.StatusMethodNotAllowed},
		{"other path", func(r *http.Request) { r.URL.Path = "/admin" }, http.StatusNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, b := e.post(t, body, tc.mod)
			if code != tc.want {
				t.Fatalf("status %d (%s), want %d", code, b, tc.want)
			}
			if code == http.StatusOK {
				decodeResponse(t, b)
			}
		})
	}

	t.Run("preflight", func(t *testing.T) {
		req, _ := http.NewRequest("OPTIONS", e.url("/"), nil)
		req.Header.Set("Origin", "http://127.0.0.1:8080")
		resp, err := e.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "http://127.0.0.1:8080" ||
			!strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
			t.Fatalf("preflight: %d %v", resp.StatusCode, resp.Header)
		}
	})

	t.Run("websocket", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		url := "ws://" + e.srv.HTTPAddr() + "/ws"
		for _, tc := range []struct {
			name string
			opts websocket.DialOptions
			want int
		}{
			{"no token", websocket.DialOptions{}, http.StatusUnauthorized},
			{"wrong token", websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer nope"}}}, http.StatusUnauthorized},
			{"wrong subprotocol token", websocket.DialOptions{Subprotocols: []string{Subprotocol, TokenSubprotocolPrefix + "nope"}}, http.StatusUnauthorized},
			{"foreign origin", websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + testToken}, "Origin": {"https://evil.example"}}}, http.StatusForbidden},
			{"subprotocol token", websocket.DialOptions{Subprotocols: []string{Subprotocol, TokenSubprotocolPrefix + testToken}, HTTPHeader: http.Header{"Origin": {"http://localhost:5173"}}}, http.StatusSwitchingProtocols},
		} {
			t.Run(tc.name, func(t *testing.T) {
				tc.opts.HTTPClient = e.http
				ws, resp, err := websocket.Dial(ctx, url, &tc.opts)
				if resp == nil {
					t.Fatalf("no response: %v", err)
				}
				if resp.StatusCode != tc.want {
					t.Fatalf("status %d, want %d (%v)", resp.StatusCode, tc.want, err)
				}
				if ws == nil {
					return
				}
				defer ws.CloseNow()
				if ws.Subprotocol() != Subprotocol {
					t.Fatalf("subprotocol %q", ws.Subprotocol())
				}
				ws.Write(ctx, websocket.MessageText, []byte(body))
				_, b, err := ws.Read(ctx)
				if err != nil {
					t.Fatal(err)
				}
				decodeResponse(t, b)
			})
		}
	})
}

func TestBatch(t *testing.T) {
	e := newEnv(t)
	body := `[
		{"jsonrpc":"2.0","id":1,"method":"node.info"},
		{"jsonrpc":"2.0","method":"msg.send","params":{"to":"` + okAddr + `","text":"note"}},
		{"jsonrpc":"2.0","id":"b","method":"nope"},
		{"jsonrpc":"1.0","id":3,"method":"node.info"},
		{"jsonrpc":"2.0","id":4,"method":"msg.inbox","params":{"limit":2000}},
		{"jsonrpc":"2.0","id":5,"method":"store.stats"}
	]`
	want := map[string]int{`1`: 0, `"b"`: CodeMethodNotFound, `3`: CodeInvalidRequest, `4`: CodeInvalidParams, `5`: 0}
	check := func(t *testing.T, b []byte) {
		var rs []json.RawMessage
		if err := json.Unmarshal(b, &rs); err != nil {
			t.Fatalf("batch response %s: %v", b, err)
		}
		if len(rs) != len(want) {
			t.Fatalf("%d responses, want %d: %s", len(rs), len(want), b)
		}
		for _, raw := range rs {
			r := decodeResponse(t, raw)
			code, ok := want[string(r.ID)]
			if !ok {
				t.Fatalf("unexpected id %s", r.ID)
			}
			if (code == 0) != (r.Error == nil) || (r.Error != nil && r.Error.Code != code) {
				t.Fatalf("id %s: %s, want code %d", r.ID, raw, code)
			}
		}
	}
	t.Run("http", func(t *testing.T) {
		code, b := e.post(t, body, nil)
		if code != http.StatusOK {
			t.Fatalf("status %d", code)
		}
		check(t, b)
		if st, _ := e.node.StoreStats(context.Background()); st.Custody != 1 {
			t.Fatalf("the notification did not run: %+v", st)
		}
	})
	t.Run("socket", func(t *testing.T) {
		check(t, e.dialRaw(t).roundTrip(t, strings.ReplaceAll(body, "\n", "")))
	})
	t.Run("http notifications only", func(t *testing.T) {
		code, b := e.post(t, `[{"jsonrpc":"2.0","method":"node.info"},{"jsonrpc":"2.0","method":"nope"}]`, nil)
		if code != http.StatusNoContent || len(b) != 0 {
			t.Fatalf("status %d %q, want 204", code, b)
		}
	})
	t.Run("http duplicate ids", func(t *testing.T) {
		_, b := e.post(t, `[{"jsonrpc":"2.0","id":7,"method":"node.info"},{"jsonrpc":"2.0","id":7,"method":"node.info"}]`, nil)
		var rs []response
		if err := json.Unmarshal(b, &rs); err != nil || len(rs) != 2 || rs[0].Error == nil || rs[0].Error.Code != CodeInvalidRequest {
			t.Fatalf("duplicate ids: %s", b)
		}
	})
}

func TestTooLarge(t *testing.T) {
	e := newEnv(t)
	big := `{"jsonrpc":"2.0","id":1,"method":"msg.send","params":{"to":"` + okAddr + `","text":"` + strings.Repeat("x", MaxRequestBytes) + `"}}`

	t.Run("http", func(t *testing.T) {
		code, b := e.post(t, big, nil)
		if code != http.StatusRequestEntityTooLarge {
			t.Fatalf("status %d", code)
		}
		if r := decodeResponse(t, b); r.Error.Code != CodeTooLarge {
			t.Fatalf("%s", b)
		}
	})
	t.Run("http chunked", func(t *testing.T) {
		code, b := e.post(t, big, func(r *http.Request) {
			r.ContentLength = -1 // the server learns the size only by reading
			r.Body = io.NopCloser(strings.NewReader(big))
		})
		if code != http.StatusRequestEntityTooLarge || decodeResponse(t, b).Error.Code != CodeTooLarge {
			t.Fatalf("status %d %s", code, b)
		}
	})
	t.Run("socket", func(t *testing.T) {
		rc := e.dialRaw(t)
		// The server answers and hangs up before reading everything, so
		// write in the background.
		go io.WriteString(rc.c, big+"\n")
		if r := decodeResponse(t, rc.readLine(t)); r.Error.Code != CodeTooLarge {
			t.Fatalf("%+v", r.Error)
		}
		if _, err := rc.r.ReadByte(); !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("connection still open: %v", err)
		}
	})
	t.Run("socket just fits", func(t *testing.T) {
		pad := MaxRequestBytes - len(`{"jsonrpc":"2.0","id":1,"method":"node.info","pad":""}`)
		line := `{"jsonrpc":"2.0","id":1,"method":"node.info","pad":"` + strings.Repeat("y", pad) + `"}`
		// jrpc2 rejects the extra member, which proves the line was read.
		r := decodeResponse(t, e.dialRaw(t).roundTrip(t, line))
		if r.Error == nil || r.Error.Code != CodeInvalidRequest {
			t.Fatalf("%+v", r.Error)
		}
	})
	t.Run("websocket", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ws := e.dialWS(t, ctx)
		defer ws.CloseNow()
		go ws.Write(ctx, websocket.MessageText, []byte(big))
		_, b, err := ws.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if r := decodeResponse(t, b); r.Error.Code != CodeTooLarge {
			t.Fatalf("%s", b)
		}
		if _, _, err := ws.Read(ctx); websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
			t.Fatalf("close: %v", err)
		}
	})
}

func TestSocketFile(t *testing.T) {
	old := syscall.Umask(0) // the server must not depend on the umask
	defer syscall.Umask(old)
	e := newEnv(t)
	fi, err := os.Stat(e.srv.SocketPath())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, want socket 0600", fi.Mode())
	}
	ents, _ := os.ReadDir(e.dir)
	if len(ents) != 1 {
		t.Fatalf("data dir holds %v, want only the socket", ents)
	}

	t.Run("live socket refused", func(t *testing.T) {
		_, err := NewServer(newFakeNode(), ServerOptions{SocketPath: e.srv.SocketPath()})
		if err == nil || !strings.Contains(err.Error(), "already running") {
			t.Fatalf("second server on a live socket: %v", err)
		}
	})
	t.Run("stale socket replaced", func(t *testing.T) {
		dir, _ := os.MkdirTemp("", "rpc")
		defer os.RemoveAll(dir)
		path := SocketPath(dir)
		ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		ln.SetUnlinkOnClose(false)
		ln.Close() // a crashed daemon leaves the file behind
		s, err := NewServer(newFakeNode(), ServerOptions{SocketPath: path})
		if err != nil {
			t.Fatal(err)
		}
		c, err := Dial(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Info(context.Background()); err != nil {
			t.Fatal(err)
		}
		c.Close()
		s.Close()
		if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("socket left after Close: %v", err)
		}
	})
	t.Run("regular file kept", func(t *testing.T) {
		dir, _ := os.MkdirTemp("", "rpc")
		defer os.RemoveAll(dir)
		path := filepath.Join(dir, "api.sock")
		os.WriteFile(path, []byte("precious"), 0o600)
		if _, err := NewServer(newFakeNode(), ServerOptions{SocketPath: path}); err == nil || !strings.Contains(err.Error(), "not a socket") {
			t.Fatalf("err %v", err)
		}
	})
}

func TestOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts ServerOptions
		want string
	}{
		{"nothing", ServerOptions{}, "neither"},
		{"no token", ServerOptions{HTTPAddr: "127.0.0.1:0"}, "Token"},
		{"public", ServerOptions{HTTPAddr: "0.0.0.0:0", Token: testToken}, "loopback"},
		{"lan", ServerOptions{HTTPAddr: "192.168.1.1:0", Token: testToken}, "loopback"},
		{"no port", ServerOptions{HTTPAddr: "127.0.0.1", Token: testToken}, "port"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewServer(newFakeNode(), tc.opts)
			if err == nil {
				s.Close()
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestToken(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	dir := t.TempDir()
	path := TokenPath(dir)
	tok, err := WriteToken(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token mode %v, %v", fi.Mode(), err)
	}
	if got, err := ReadToken(path); err != nil || got != tok || len(tok) != 64 {
		t.Fatalf("ReadToken = %q, %v; wrote %q", got, err, tok)
	}
	tok2, err := WriteToken(path)
	if err != nil || tok2 == tok {
		t.Fatalf("second token %q, %v", tok2, err)
	}
	os.WriteFile(path, []byte("short\n"), 0o600)
	if _, err := ReadToken(path); !errors.Is(err, ErrBadToken) {
		t.Fatalf("malformed token: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("leftover temp files: %v", ents)
	}
}

// TestShutdown stops a server with open connections, a subscription and an
// HTTP client, and checks nothing leaks (goleak in TestMain) and clients
// notice.
func TestShutdown(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	e := newEnv(t)
	ctx := context.Background()
	sock, err := Dial(ctx, e.srv.SocketPath())
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	ws, err := DialWebSocket(ctx, "ws://"+e.srv.HTTPAddr()+"/ws", testToken)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	ev1, err := sock.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ev2, err := ws.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := e.srv.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	for _, ch := range []<-chan Event{ev1, ev2} {
		for range ch {
		}
	}
	if n := e.node.subscribers(); n != 0 {
		t.Fatalf("%d node subscriptions left", n)
	}
	if _, err := os.Lstat(e.srv.SocketPath()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket file left: %v", err)
	}
	if _, err := Dial(ctx, e.srv.SocketPath()); err == nil {
		t.Fatal("dial after shutdown succeeded")
	}
	if err := e.srv.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	sock.Close()
	ws.Close()
	e.http.CloseIdleConnections()
	goleak.VerifyNone(t, ignore)
}

func TestServe(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- e.srv.Serve(ctx) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := Dial(context.Background(), e.srv.SocketPath()); err == nil {
		t.Fatal("still serving")
	}
}
