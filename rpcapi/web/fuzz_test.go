package web

import (
	"net/http"
	"testing"
)

// FuzzServeApp: any path, code, Origin, CSRF header and body from a
// browser without the session cookie never panics and is never forwarded
// to the API; with the cookie, only the exact Origin and CSRF token pass.
func FuzzServeApp(f *testing.F) {
	f.Add("POST", "/app/rpc", "", origin, "", query, true)
	f.Add("GET", "/app/login", "AAAA", "", "", "", false)
	f.Add("GET", "/app/ws", "", "http://127.0.0.1:1", "x", "", true)
	f.Add("GET", "/app/../../etc/passwd", "", "", "", "", false)
	f.Add("POST", "/app/rpc", "", origin, "x", `[{"method":"fapp.slots"}]`, true)
	f.Fuzz(func(t *testing.T, method, path, code, org, csrfHdr, body string, withCookie bool) {
		a, _, api := newTestApp()
		c, csrf := loggedIn(t, a, api)
		r, err := http.NewRequest(method, "http://"+host+"/", nil)
		if err != nil {
			return
		}
		r.URL.Path = path
		r.URL.RawQuery = "code=" + code
		r.Host = host
		if org != "" {
			r.Header.Set("Origin", org)
		}
		if csrfHdr != "" {
			r.Header.Set(CSRFHeader, csrfHdr)
		}
		if withCookie {
			r.AddCookie(c)
		}
		r.Body = http.NoBody
		if body != "" {
			r = rpcReq(nil, "", "", body)
			r.Method, r.URL.Path, r.Host = method, path, host
			r.Header.Set("Origin", org)
			r.Header.Set(CSRFHeader, csrfHdr)
			if withCookie {
				r.AddCookie(c)
			}
		}
		do(a, api, r)
		if api.calls > 0 && (!withCookie || org != origin || (path == "/app/rpc" && csrfHdr != csrf)) {
			t.Fatalf("forwarded %s %s with cookie %v, origin %q, csrf %q", method, path, withCookie, org, csrfHdr)
		}
	})
}
