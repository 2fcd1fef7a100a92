package rpcapi

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// fakeWeb is a WebApp that forwards /app/rpc to the API with the token
// and a method filter, as package web does.
type fakeWeb struct{ codes int }

func (f *fakeWeb) NewLoginCode() (string, time.Time, error) {
	f.codes++
	return "code", time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), nil
}

func (f *fakeWeb) ServeApp(w http.ResponseWriter, r *http.Request, api http.Handler) {
	if r.URL.Path != "/app/rpc" {
		w.WriteHeader(http.StatusTeapot)
		return
	}
	fwd := r.Clone(WithMethodFilter(r.Context(), func(m string) bool { return strings.HasPrefix(m, "fapp.") }))
	fwd.URL.Path = "/"
	fwd.Header.Set("Authorization", "Bearer "+testToken)
	api.ServeHTTP(w, fwd)
}

func TestWebLogin(t *testing.T) {
	e := newEnv(t)
	code, body := e.post(t, `{"jsonrpc":"2.0","id":1,"method":"web.login"}`, nil)
	want := `"url":"http://127.0.0.1:` + e.srv.httpPort + `/app/login?code=code"`
	if code != 200 || !strings.Contains(string(body), want) {
		t.Fatalf("web.login: %d %s, want %s", code, body, want)
	}
	// Without the token, no code.
	code, _ = e.post(t, `{"jsonrpc":"2.0","id":1,"method":"web.login"}`, func(r *http.Request) { r.Header.Del("Authorization") })
	if code != http.StatusUnauthorized {
		t.Fatalf("web.login without token: %d", code)
	}
}

// TestWebRoutingAndFilter: /app/ goes to the page (never the loose CORS
// answer), and a filtered request cannot reach other methods.
func TestWebRoutingAndFilter(t *testing.T) {
	e := newEnv(t)
	req, _ := http.NewRequest("GET", e.url("/app/"), nil)
	req.Header.Set("Origin", "http://127.0.0.1:1")
	resp, err := e.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTeapot || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("/app/: %d %v", resp.StatusCode, resp.Header)
	}
	post := func(body string) string {
		req, _ := http.NewRequest("POST", e.url("/app/rpc"), strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := e.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	for _, m := range []string{"web.login", "msg.send", "node.connect"} {
		if got := post(`{"jsonrpc":"2.0","id":1,"method":"` + m + `","params":{}}`); !strings.Contains(got, "-32601") {
			t.Errorf("%s through the filter: %s", m, got)
		}
	}
	if got := post(`{"jsonrpc":"2.0","id":1,"method":"fapp.slots"}`); !strings.Contains(got, `"result"`) {
		t.Errorf("fapp.slots through the filter: %s", got)
	}
}
