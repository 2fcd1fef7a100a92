package web

import (
	"bytes"
	"embed"
	"encoding/json"
	"io"
	"io/fs"
	"net"
	"net/http"
	"strings"

	"meshd.dev/meshd/rpcapi"
)

//go:embed static
var staticFS embed.FS

// ContentSecurityPolicy allows only the page's own files: no inline
// script or style, nothing from elsewhere, no framing.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// maxRPCBody bounds a bridged JSON-RPC request.
const maxRPCBody = 64 << 10

// allowedMethod says what the page's session may call: the FAPP methods
// and the event subscription. Never web.login (a session cannot mint
// more sessions) or the messaging and node-management methods.
func allowedMethod(m string) bool {
	return strings.HasPrefix(m, "fapp.") || m == "node.info" || m == "msg.subscribe"
}

func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
}

func refuse(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	io.WriteString(w, msg+"\n")
}

// sameOrigin: the Origin header must be exactly the page's own origin.
// Host was checked by the API server (a loopback name with its port), so
// "http://"+Host is this listener; a page on another loopback port, or
// on "localhost" when the page is on 127.0.0.1, does not match.
// cookieName carries the listener's port: cookies are per host, not per
// port, so two daemons on one machine would otherwise overwrite each
// other's session in the same browser.
func cookieName(r *http.Request) string {
	_, port, _ := net.SplitHostPort(r.Host)
	return CookieName + "_" + port
}

func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	return o != "" && o == "http://"+r.Host
}

// ServeApp implements rpcapi.WebApp.
func (a *App) ServeApp(w http.ResponseWriter, r *http.Request, api http.Handler) {
	securityHeaders(w.Header())
	path := strings.TrimPrefix(r.URL.Path, "/app")
	switch {
	case r.Method == http.MethodOptions:
		// No CORS for the page: a preflight from elsewhere fails.
		refuse(w, http.StatusForbidden, "forbidden: the web page answers only its own origin")
	case path == "/login":
		a.serveLogin(w, r)
	case path == "/session":
		a.serveSession(w, r)
	case path == "/logout":
		a.serveLogout(w, r)
	case path == "/rpc":
		a.serveRPC(w, r, api)
	case path == "/ws":
		a.serveWS(w, r, api)
	default:
		a.serveStatic(w, r, path)
	}
}

func (a *App) serveStatic(w http.ResponseWriter, r *http.Request, path string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		refuse(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	if path == "" {
		http.Redirect(w, r, "/app/", http.StatusSeeOther)
		return
	}
	if path == "/" {
		path = "/index.html"
	}
	name := "static" + path
	b, err := fs.ReadFile(staticFS, name)
	if err != nil || strings.Contains(path, "..") {
		refuse(w, http.StatusNotFound, "not found")
		return
	}
	switch {
	case strings.HasSuffix(name, ".html"):
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
	case strings.HasSuffix(name, ".js"):
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	case strings.HasSuffix(name, ".css"):
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
	case strings.HasSuffix(name, ".svg"):
		w.Header().Set("Content-Type", "image/svg+xml")
	}
	w.Write(b)
}

// serveLogin exchanges a one-time code for a session cookie and sends the
// browser on to /app/, so the code leaves the address bar and history.
func (a *App) serveLogin(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		refuse(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	cookie, _, err := a.login(r.URL.Query().Get("code"))
	if err != nil {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, loginFailedPage)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: cookieName(r), Value: cookie, Path: "/",
		HttpOnly: true, SameSite: http.SameSiteStrictMode,
		MaxAge: int(SessionTTL.Seconds()),
	})
	http.Redirect(w, r, "/app/", http.StatusSeeOther)
}

const loginFailedPage = `<!doctype html><html lang="de"><head><meta charset="utf-8"><title>FAPP</title></head><body>
<h1>Anmeldelink ungültig</h1><p>Der Link ist abgelaufen oder wurde schon benutzt. Rufen Sie <code>fapp web</code> erneut auf.</p>
<p lang="en">This login link expired or was used already. Run <code>fapp web</code> again.</p></body></html>`

// authed returns the request's session when the cookie is live and the
// Origin is exactly the page's own; with csrf, the CSRF header must match
// too. It writes the refusal otherwise.
func (a *App) authed(w http.ResponseWriter, r *http.Request, csrf bool) *session {
	if !sameOrigin(r) {
		refuse(w, http.StatusForbidden, "forbidden: the Origin must be this page's own origin")
		return nil
	}
	c, err := r.Cookie(cookieName(r))
	var s *session
	if err == nil {
		s = a.session(c.Value)
	}
	if s == nil {
		refuse(w, http.StatusUnauthorized, "unauthorized: no valid session; run `fapp web` for a login link")
		return nil
	}
	if csrf && !s.csrfOK(r.Header.Get(CSRFHeader)) {
		refuse(w, http.StatusForbidden, "forbidden: missing or wrong CSRF token")
		return nil
	}
	return s
}

// serveSession hands the page its CSRF token. POST with the exact Origin:
// another origin cannot read the answer (no CORS) nor even get one.
func (a *App) serveSession(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		refuse(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	s := a.authed(w, r, false)
	if s == nil {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"csrf": s.csrf, "expires": s.expires.UTC()})
}

func (a *App) serveLogout(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		refuse(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	if a.authed(w, r, true) == nil {
		return
	}
	c, _ := r.Cookie(cookieName(r))
	a.logout(c.Value)
	http.SetCookie(w, &http.Cookie{Name: cookieName(r), Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	w.WriteHeader(http.StatusNoContent)
}

// serveRPC forwards one JSON-RPC request of an allowed method to the API
// with the token.
func (a *App) serveRPC(w http.ResponseWriter, r *http.Request, api http.Handler) {
	if r.Method != http.MethodPost {
		refuse(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	if a.authed(w, r, true) == nil {
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRPCBody))
	if err != nil {
		refuse(w, http.StatusRequestEntityTooLarge, "request too large")
		return
	}
	var req struct {
		Method string `json:"method"`
	}
	// One request object (no batch) whose method the page may call.
	if t := bytes.TrimSpace(body); len(t) == 0 || t[0] != '{' || json.Unmarshal(t, &req) != nil || !allowedMethod(req.Method) {
		refuse(w, http.StatusForbidden, "forbidden: the web page may call only fapp.* methods, one request at a time")
		return
	}
	fwd := r.Clone(rpcapi.WithMethodFilter(r.Context(), allowedMethod))
	fwd.URL.Path = "/"
	fwd.Body = io.NopCloser(bytes.NewReader(body))
	fwd.ContentLength = int64(len(body))
	a.withToken(fwd)
	api.ServeHTTP(w, fwd)
}

// serveWS forwards the event WebSocket. A browser cannot set headers on a
// WebSocket, so the CSRF token comes as a subprotocol next to meshd.v1;
// the exact Origin is checked as for every cookie request.
func (a *App) serveWS(w http.ResponseWriter, r *http.Request, api http.Handler) {
	s := a.authed(w, r, false)
	if s == nil {
		return
	}
	var keep []string
	ok := false
	for _, v := range r.Header.Values("Sec-WebSocket-Protocol") {
		for p := range strings.SplitSeq(v, ",") {
			p = strings.TrimSpace(p)
			if tok, isCSRF := strings.CutPrefix(p, "meshd.csrf."); isCSRF {
				ok = ok || s.csrfOK(tok)
			} else if !strings.HasPrefix(p, "meshd.token.") {
				keep = append(keep, p)
			}
		}
	}
	if !ok {
		refuse(w, http.StatusForbidden, "forbidden: missing or wrong CSRF token")
		return
	}
	fwd := r.Clone(rpcapi.WithMethodFilter(r.Context(), allowedMethod))
	fwd.URL.Path = "/ws"
	fwd.Header.Del("Sec-WebSocket-Protocol")
	if len(keep) > 0 {
		fwd.Header.Set("Sec-WebSocket-Protocol", strings.Join(keep, ", "))
	}
	a.withToken(fwd)
	api.ServeHTTP(w, fwd)
}

func (a *App) withToken(r *http.Request) {
	r.Header.Del("Cookie")
	r.Header.Set("Authorization", "Bearer "+a.opts.Token)
}
