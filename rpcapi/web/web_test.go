package web

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"meshd.dev/meshd/rpcapi"
)

const (
	host   = "127.0.0.1:7721"
	origin = "http://" + host
	token  = "the-api-token"
)

// clock is a settable test clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// counter is a deterministic "random" source: 0, 1, 2, ... byte values.
type counter struct{ n byte }

func (c *counter) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = c.n
		c.n++
	}
	return len(p), nil
}

// fakeAPI records what the bridge forwards.
type fakeAPI struct {
	calls  int
	auth   string
	cookie string
	path   string
	body   string
	filter func(string) bool
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.calls++
	f.auth, f.cookie, f.path = r.Header.Get("Authorization"), r.Header.Get("Cookie"), r.URL.Path
	b, _ := io.ReadAll(r.Body)
	f.body = string(b)
	w.Write([]byte(`{"jsonrpc":"2.0","id":1,"result":{}}`))
}

func newTestApp() (*App, *clock, *fakeAPI) {
	c := &clock{t: time.Date(2027, 1, 12, 10, 0, 0, 0, time.UTC)}
	return New(Options{Token: token, Now: c.now, Rand: &counter{}}), c, &fakeAPI{}
}

func do(a *App, api http.Handler, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	a.ServeApp(w, r, api)
	return w
}

func req(method, path, body string) *http.Request {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.Host = host
	return r
}

// loggedIn logs in with a fresh code and returns the cookie and CSRF token.
func loggedIn(t *testing.T, a *App, api http.Handler) (*http.Cookie, string) {
	t.Helper()
	code, _, err := a.NewLoginCode()
	if err != nil {
		t.Fatal(err)
	}
	w := do(a, api, req("GET", "/app/login?code="+code, ""))
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/app/" {
		t.Fatalf("login: %d %q", w.Code, w.Header().Get("Location"))
	}
	cs := w.Result().Cookies()
	if len(cs) != 1 {
		t.Fatalf("login set %d cookies", len(cs))
	}
	c := cs[0]
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || len(c.Value) != 43 {
		t.Fatalf("cookie %+v: want HttpOnly, SameSite=Strict, Path=/, 256 random bits", c)
	}
	r := req("POST", "/app/session", "")
	r.Header.Set("Origin", origin)
	r.AddCookie(c)
	w = do(a, api, r)
	var s struct{ CSRF string }
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &s) != nil || s.CSRF == "" {
		t.Fatalf("session: %d %s", w.Code, w.Body)
	}
	return c, s.CSRF
}

func rpcReq(c *http.Cookie, org, csrf, body string) *http.Request {
	r := req("POST", "/app/rpc", body)
	r.Header.Set("Content-Type", "application/json")
	if org != "" {
		r.Header.Set("Origin", org)
	}
	if csrf != "" {
		r.Header.Set(CSRFHeader, csrf)
	}
	if c != nil {
		r.AddCookie(c)
	}
	return r
}

const query = `{"jsonrpc":"2.0","id":1,"method":"fapp.slots"}`

func TestLoginAndBridge(t *testing.T) {
	a, _, api := newTestApp()
	c, csrf := loggedIn(t, a, api)
	w := do(a, api, rpcReq(c, origin, csrf, query))
	if w.Code != 200 || api.calls != 1 {
		t.Fatalf("rpc: %d %s, forwarded %d", w.Code, w.Body, api.calls)
	}
	if api.auth != "Bearer "+token || api.cookie != "" || api.path != "/" || api.body != query {
		t.Fatalf("forwarded auth %q cookie %q path %q body %q", api.auth, api.cookie, api.path, api.body)
	}
}

// TestRefusals: every way to use the cookie without the page's own origin
// and CSRF token is refused and forwards nothing.
func TestRefusals(t *testing.T) {
	a, _, api := newTestApp()
	c, csrf := loggedIn(t, a, api)
	tampered := *c
	tampered.Value = c.Value[:42] + "A"
	if tampered.Value == c.Value {
		tampered.Value = c.Value[:42] + "B"
	}
	cases := []struct {
		name string
		r    *http.Request
		code int
	}{
		{"no cookie", rpcReq(nil, origin, csrf, query), 401},
		{"tampered cookie", rpcReq(&tampered, origin, csrf, query), 401},
		{"missing CSRF header", rpcReq(c, origin, "", query), 403},
		{"wrong CSRF header", rpcReq(c, origin, csrf[:42]+"x", query), 403},
		{"no Origin", rpcReq(c, "", csrf, query), 403},
		{"forged Origin", rpcReq(c, "http://evil.example", csrf, query), 403},
		{"another loopback port", rpcReq(c, "http://127.0.0.1:8080", csrf, query), 403},
		{"localhost for 127.0.0.1", rpcReq(c, "http://localhost:7721", csrf, query), 403},
		{"https for http", rpcReq(c, "https://127.0.0.1:7721", csrf, query), 403},
		{"null Origin", rpcReq(c, "null", csrf, query), 403},
		{"method outside fapp", rpcReq(c, origin, csrf, `{"jsonrpc":"2.0","id":1,"method":"web.login"}`), 403},
		{"msg.send", rpcReq(c, origin, csrf, `{"jsonrpc":"2.0","id":1,"method":"msg.send","params":{}}`), 403},
		{"batch", rpcReq(c, origin, csrf, `[`+query+`]`), 403},
		{"GET rpc", func() *http.Request { r := rpcReq(c, origin, csrf, ""); r.Method = "GET"; return r }(), 405},
	}
	for _, tc := range cases {
		w := do(a, api, tc.r)
		if w.Code != tc.code {
			t.Errorf("%s: status %d, want %d (%s)", tc.name, w.Code, tc.code, w.Body)
		}
	}
	if api.calls != 0 {
		t.Fatalf("%d refused requests were forwarded", api.calls)
	}
	// The session endpoint hands the CSRF token only to the own origin.
	for _, o := range []string{"", "http://127.0.0.1:8080", "http://evil.example"} {
		r := req("POST", "/app/session", "")
		if o != "" {
			r.Header.Set("Origin", o)
		}
		r.AddCookie(c)
		if w := do(a, api, r); w.Code != 403 || strings.Contains(w.Body.String(), csrf) {
			t.Errorf("session from origin %q: %d %s", o, w.Code, w.Body)
		}
	}
}

func TestLoginCodes(t *testing.T) {
	a, clk, api := newTestApp()
	code, exp, _ := a.NewLoginCode()
	if exp.Sub(clk.t) != CodeTTL || len(code) != 43 {
		t.Fatalf("code %q expires %v", code, exp)
	}
	login := func(code string) int { return do(a, api, req("GET", "/app/login?code="+code, "")).Code }
	if got := login(code); got != http.StatusSeeOther {
		t.Fatalf("fresh code: %d", got)
	}
	if got := login(code); got != http.StatusForbidden {
		t.Fatalf("reused code: %d, want 403", got)
	}
	code, _, _ = a.NewLoginCode()
	clk.t = clk.t.Add(CodeTTL)
	if got := login(code); got != http.StatusForbidden {
		t.Fatalf("expired code: %d, want 403", got)
	}
	for _, bad := range []string{"", "x", strings.Repeat("A", 43)} {
		if got := login(bad); got != http.StatusForbidden {
			t.Fatalf("code %q: %d, want 403", bad, got)
		}
	}
	if w := do(a, api, req("GET", "/app/login?code=x", "")); len(w.Result().Cookies()) != 0 {
		t.Fatal("a failed login set a cookie")
	}
}

func TestSessionExpiryAndBounds(t *testing.T) {
	a, clk, api := newTestApp()
	c, csrf := loggedIn(t, a, api)
	clk.t = clk.t.Add(SessionTTL)
	if w := do(a, api, rpcReq(c, origin, csrf, query)); w.Code != 401 {
		t.Fatalf("expired session: %d, want 401", w.Code)
	}
	for range MaxSessions + 5 {
		loggedIn(t, a, api)
	}
	if n := len(a.sessions); n > MaxSessions {
		t.Fatalf("%d sessions held, bound %d", n, MaxSessions)
	}
	for range MaxCodes + 5 {
		a.NewLoginCode()
	}
	if n := len(a.codes); n > MaxCodes {
		t.Fatalf("%d codes held, bound %d", n, MaxCodes)
	}
}

func TestLogout(t *testing.T) {
	a, _, api := newTestApp()
	c, csrf := loggedIn(t, a, api)
	r := req("POST", "/app/logout", "")
	r.Header.Set("Origin", origin)
	r.Header.Set(CSRFHeader, csrf)
	r.AddCookie(c)
	if w := do(a, api, r); w.Code != http.StatusNoContent {
		t.Fatalf("logout: %d", w.Code)
	}
	if w := do(a, api, rpcReq(c, origin, csrf, query)); w.Code != 401 {
		t.Fatalf("after logout: %d", w.Code)
	}
}

func wsReq(c *http.Cookie, org string, protos ...string) *http.Request {
	r := req("GET", "/app/ws", "")
	r.Header.Set("Origin", org)
	r.Header.Set("Connection", "Upgrade")
	r.Header.Set("Upgrade", "websocket")
	if len(protos) > 0 {
		r.Header.Set("Sec-WebSocket-Protocol", strings.Join(protos, ", "))
	}
	if c != nil {
		r.AddCookie(c)
	}
	return r
}

func TestWebSocketChecks(t *testing.T) {
	a, _, api := newTestApp()
	c, csrf := loggedIn(t, a, api)
	for name, r := range map[string]*http.Request{
		"other port":  wsReq(c, "http://127.0.0.1:9999", "meshd.v1", "meshd.csrf."+csrf),
		"no csrf":     wsReq(c, origin, "meshd.v1"),
		"wrong csrf":  wsReq(c, origin, "meshd.v1", "meshd.csrf.nope"),
		"no cookie":   wsReq(nil, origin, "meshd.v1", "meshd.csrf."+csrf),
		"evil origin": wsReq(c, "http://evil.example", "meshd.v1", "meshd.csrf."+csrf),
	} {
		if w := do(a, api, r); w.Code < 400 {
			t.Errorf("%s: %d, want a refusal", name, w.Code)
		}
	}
	if api.calls != 0 {
		t.Fatalf("%d refused WebSockets were forwarded", api.calls)
	}
	do(a, api, wsReq(c, origin, "meshd.v1", "meshd.csrf."+csrf, "meshd.token.guess"))
	if api.calls != 1 || api.auth != "Bearer "+token || api.path != "/ws" {
		t.Fatalf("forwarded %d, auth %q path %q", api.calls, api.auth, api.path)
	}
}

func TestSecurityHeaders(t *testing.T) {
	a, _, api := newTestApp()
	for _, p := range []string{"/app/", "/app/app.js", "/app/login?code=bad", "/app/rpc"} {
		w := do(a, api, req("GET", p, ""))
		h := w.Header()
		if h.Get("Content-Security-Policy") != ContentSecurityPolicy || h.Get("X-Content-Type-Options") != "nosniff" ||
			h.Get("Referrer-Policy") != "no-referrer" || !strings.Contains(h.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
			t.Errorf("%s: headers %v", p, h)
		}
		if h.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("%s: CORS header %q", p, h.Get("Access-Control-Allow-Origin"))
		}
	}
	r := req("OPTIONS", "/app/rpc", "")
	r.Header.Set("Origin", "http://127.0.0.1:8080")
	if w := do(a, api, r); w.Code != 403 || w.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("preflight: %d %v", w.Code, w.Header())
	}
	// No inline script or style in the page: the CSP would block it.
	b, _ := staticFS.ReadFile("static/index.html")
	if bytes.Contains(b, []byte("<script>")) || bytes.Contains(b, []byte("style=")) || bytes.Contains(b, []byte("<style")) ||
		bytes.Contains(b, []byte("http://")) || bytes.Contains(b, []byte("https://")) {
		t.Fatal("index.html has inline script or style, or an external reference")
	}
}

var _ rpcapi.WebApp = (*App)(nil)
