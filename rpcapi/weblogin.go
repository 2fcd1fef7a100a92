package rpcapi

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// MethodWebLogin is the name of the method that makes a web-page login link.
const MethodWebLogin = "web.login"

// WebApp is the web page the HTTP listener serves under /app/ (package
// rpcapi/web). It is an interface so that this package does not import
// the page's.
type WebApp interface {
	// NewLoginCode makes a random one-time login code and when it expires.
	NewLoginCode() (code string, expires time.Time, err error)
	// ServeApp serves a request under /app/ whose Host was checked; api
	// answers the token-authenticated JSON-RPC paths (/ and /ws).
	ServeApp(w http.ResponseWriter, r *http.Request, api http.Handler)
}

// PathApp is the web page's path prefix on the HTTP listener.
const PathApp = "/app/"

// WebLoginResult is web.login's result.
type WebLoginResult struct {
	// URL opens the web page: it carries the one-time code, which the page
	// exchanges for a session cookie.
	URL string `json:"url"`
	// Expires is when the code stops working (it works once).
	Expires time.Time `json:"expires"`
}

func webMethods() []MethodSpec {
	return []MethodSpec{
		define(MethodWebLogin, "Make a one-time login link for the web page.",
			"Returns a URL on the loopback HTTP listener with a random one-time code (valid for two minutes, usable once). Opening it in a browser exchanges the code for a session cookie and shows the FAPP page, so the person never handles the API token. `fapp web` prints it. Only token-authenticated callers (the unix socket, HTTP with the bearer token) can call it; the web page's own session cannot.",
			[]int{CodeUnavailable, CodeInternal},
			func(ctx context.Context, env *callEnv, _ *noParams) (WebLoginResult, error) {
				s := env.srv
				if s.opts.Web == nil || s.httpLn == nil {
					return WebLoginResult{}, fmt.Errorf("%w: this daemon serves no web page (it needs the HTTP API listener)", ErrUnavailable)
				}
				code, exp, err := s.opts.Web.NewLoginCode()
				if err != nil {
					return WebLoginResult{}, err
				}
				return WebLoginResult{URL: "http://127.0.0.1:" + s.httpPort + PathApp + "login?code=" + code, Expires: exp.UTC()}, nil
			}),
	}
}
