// Package web serves the FAPP web page on meshd's loopback HTTP listener
// under /app/: embedded static files, a one-time-code login that sets a
// session cookie, and a narrow JSON-RPC bridge (fapp.* methods and the
// event WebSocket) for that cookie.
//
// The security model (docs/fapp.md, "The web page"): the cookie alone
// never authenticates. Every state-changing request must carry an Origin
// exactly equal to the page's own origin and the session's CSRF token in
// a header; SameSite does not separate ports of localhost, and the API's
// CORS rule accepts any loopback origin, so neither is enough on its own.
package web

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"io"
	"sync"
	"time"
)

// Limits and lifetimes.
const (
	CodeTTL     = 2 * time.Minute // a login code works this long, once
	SessionTTL  = 12 * time.Hour  // a session lasts this long after login
	MaxCodes    = 16              // pending login codes kept; the oldest goes first
	MaxSessions = 32              // sessions kept; the oldest goes first
	CookieName  = "meshd_session" // followed by "_" and the listener's port
	CSRFHeader  = "X-Meshd-Csrf"
	secretBytes = 32 // 256-bit codes, cookies and CSRF tokens
)

// Errors.
var (
	ErrBadCode = errors.New("web: the login code is unknown, used or expired")
)

// Options configure an App.
type Options struct {
	// Token is the daemon's API token; the bridge adds it to forwarded
	// requests. The browser never sees it.
	Token string
	// Now is the clock (nil: time.Now). Tests inject it.
	Now func() time.Time
	// Rand is the source of codes, cookies and CSRF tokens (nil:
	// crypto/rand). Tests inject it.
	Rand io.Reader
}

// App is the web page. It implements rpcapi.WebApp.
type App struct {
	opts Options

	mu       sync.Mutex
	codes    map[[32]byte]time.Time // SHA-256 of a code -> expiry
	sessions map[[32]byte]*session  // SHA-256 of a cookie value -> session
}

type session struct {
	csrf    string
	created time.Time
	expires time.Time
}

// New makes an App.
func New(opts Options) *App {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Rand == nil {
		opts.Rand = rand.Reader
	}
	return &App{opts: opts, codes: map[[32]byte]time.Time{}, sessions: map[[32]byte]*session{}}
}

// secret returns a fresh random 256-bit value in base64url.
func (a *App) secret() (string, error) {
	b := make([]byte, secretBytes)
	if _, err := io.ReadFull(a.opts.Rand, b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// key hashes a secret for the tables, so a lookup's timing says nothing
// about the secrets held.
func key(s string) [32]byte { return sha256.Sum256([]byte(s)) }

// NewLoginCode makes a one-time login code valid for CodeTTL.
func (a *App) NewLoginCode() (string, time.Time, error) {
	code, err := a.secret()
	if err != nil {
		return "", time.Time{}, err
	}
	now := a.opts.Now()
	exp := now.Add(CodeTTL)
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, e := range a.codes {
		if !now.Before(e) {
			delete(a.codes, k)
		}
	}
	if len(a.codes) >= MaxCodes {
		deleteOldest(a.codes, func(e time.Time) time.Time { return e })
	}
	a.codes[key(code)] = exp
	return code, exp, nil
}

// login spends a code and opens a session: it returns the cookie value.
func (a *App) login(code string) (string, *session, error) {
	now := a.opts.Now()
	a.mu.Lock()
	exp, ok := a.codes[key(code)]
	delete(a.codes, key(code)) // single use, even when expired
	a.mu.Unlock()
	if !ok || !now.Before(exp) {
		return "", nil, ErrBadCode
	}
	cookie, err := a.secret()
	if err != nil {
		return "", nil, err
	}
	csrf, err := a.secret()
	if err != nil {
		return "", nil, err
	}
	s := &session{csrf: csrf, created: now, expires: now.Add(SessionTTL)}
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, v := range a.sessions {
		if !now.Before(v.expires) {
			delete(a.sessions, k)
		}
	}
	if len(a.sessions) >= MaxSessions {
		deleteOldest(a.sessions, func(s *session) time.Time { return s.created })
	}
	a.sessions[key(cookie)] = s
	return cookie, s, nil
}

// session returns the live session of a cookie value, or nil.
func (a *App) session(cookie string) *session {
	if cookie == "" {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.sessions[key(cookie)]
	if s == nil || !a.opts.Now().Before(s.expires) {
		return nil
	}
	return s
}

func (a *App) logout(cookie string) {
	a.mu.Lock()
	delete(a.sessions, key(cookie))
	a.mu.Unlock()
}

// csrfOK compares a request's CSRF header with the session's in constant time.
func (s *session) csrfOK(h string) bool {
	return h != "" && subtle.ConstantTimeCompare([]byte(h), []byte(s.csrf)) == 1
}

func deleteOldest[V any](m map[[32]byte]V, when func(V) time.Time) {
	var oldest [32]byte
	var t time.Time
	first := true
	for k, v := range m {
		if w := when(v); first || w.Before(t) {
			oldest, t, first = k, w, false
		}
	}
	delete(m, oldest)
}
