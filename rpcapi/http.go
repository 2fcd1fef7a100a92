package rpcapi

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/coder/websocket"
	"github.com/creachadair/jrpc2"
)

// WebSocket subprotocols. A browser cannot set the Authorization header on
// a WebSocket, so it offers TokenSubprotocolPrefix+token next to
// Subprotocol; the server answers with Subprotocol and never echoes the
// token.
const (
	Subprotocol            = "meshd.v1"
	TokenSubprotocolPrefix = "meshd.token."
)

// HTTP paths.
const (
	PathRPC = "/"   // POST: JSON-RPC request or batch
	PathWS  = "/ws" // GET: WebSocket upgrade, JSON-RPC with notifications
)

// ServeHTTP serves JSON-RPC over HTTP POST on / and WebSocket on /ws, after
// checking Host, Origin and the bearer token.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.hostAllowed(r.Host) {
		httpError(w, http.StatusForbidden, "forbidden: the Host header must name this loopback listener (localhost, 127.0.0.1 or [::1] with port "+s.httpPort+")")
		return
	}
	if s.opts.Web != nil && (r.URL.Path == "/app" || strings.HasPrefix(r.URL.Path, PathApp)) {
		// The page checks its own session, exact Origin and CSRF token,
		// and never gets the loose loopback CORS answer below.
		s.opts.Web.ServeApp(w, r, s)
		return
	}
	origin := r.Header.Get("Origin")
	if origin != "" {
		if !originAllowed(origin) {
			httpError(w, http.StatusForbidden, "forbidden: cross-origin requests are accepted only from http(s)://localhost, 127.0.0.1 or [::1]")
			return
		}
		w.Header().Set("Access-Control-Allow-Origin", origin)
		w.Header().Add("Vary", "Origin")
	}
	if r.Method == http.MethodOptions && origin != "" {
		// CORS preflight from a page served on a loopback origin. It
		// carries no credentials; the actual request must.
		w.Header().Set("Access-Control-Allow-Methods", "POST, GET")
		w.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
		w.Header().Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	switch r.URL.Path {
	case PathRPC:
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			httpError(w, http.StatusMethodNotAllowed, "method not allowed: POST a JSON-RPC request to /, or open a WebSocket on /ws")
			return
		}
		if !s.authorized(r, false) {
			unauthorized(w)
			return
		}
		s.servePost(w, r)
	case PathWS:
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", "GET")
			httpError(w, http.StatusMethodNotAllowed, "method not allowed: /ws is a WebSocket endpoint")
			return
		}
		if !s.authorized(r, true) {
			unauthorized(w)
			return
		}
		s.serveWS(w, r)
	default:
		httpError(w, http.StatusNotFound, "not found: the API is POST / and GET /ws")
	}
}

func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	io.WriteString(w, msg+"\n")
}

func unauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="meshd"`)
	httpError(w, http.StatusUnauthorized, "unauthorized: send Authorization: Bearer <token>, the token is in the file api.token in meshd's data directory")
}

// hostAllowed implements the DNS-rebinding check: the Host header must be a
// loopback name with our port.
func (s *Server) hostAllowed(host string) bool {
	h, port, err := net.SplitHostPort(host)
	if err != nil {
		// No port: only right if we listen on 80.
		h, port = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"), "80"
	}
	return port == s.httpPort && isLoopbackName(h)
}

func isLoopbackName(h string) bool {
	return strings.EqualFold(h, "localhost") || h == "127.0.0.1" || h == "::1"
}

// originAllowed accepts pages served from a loopback origin (any port).
func originAllowed(origin string) bool {
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return false
	}
	return isLoopbackName(u.Hostname())
}

// authorized checks the bearer token in constant time. WebSocket clients
// may instead offer it as a subprotocol.
func (s *Server) authorized(r *http.Request, ws bool) bool {
	if scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
		return s.tokenOK(strings.TrimSpace(tok))
	}
	if ws {
		for _, v := range r.Header.Values("Sec-WebSocket-Protocol") {
			for p := range strings.SplitSeq(v, ",") {
				if tok, ok := strings.CutPrefix(strings.TrimSpace(p), TokenSubprotocolPrefix); ok {
					return s.tokenOK(tok)
				}
			}
		}
	}
	return false
}

func (s *Server) tokenOK(tok string) bool {
	return subtle.ConstantTimeCompare([]byte(tok), []byte(s.opts.Token)) == 1
}

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	if !s.track() {
		httpError(w, http.StatusServiceUnavailable, "meshd is shutting down")
		return
	}
	defer s.wg.Done()
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		Subprotocols: []string{Subprotocol},
		// Origin was checked above, more strictly than the library's
		// same-host rule (which would refuse pages on another loopback
		// port).
		InsecureSkipVerify: true,
	})
	if err != nil {
		s.log.Debug("rpcapi: WebSocket handshake", "err", err)
		return
	}
	s.serveConnAllow(newWSChannel(s.ctx, ws, MaxRequestBytes), "websocket", methodFilter(r.Context()))
}

// wireResponse is one JSON-RPC response as the HTTP bridge writes it.
type wireResponse struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Result  json.RawMessage `json:"result,omitempty"`
	Error   *Error          `json:"error,omitempty"`
}

// servePost answers a JSON-RPC request or batch in one HTTP exchange. It
// uses jrpc2's parser, so request validation matches the socket's; batch
// elements run one after another.
func (s *Server) servePost(w http.ResponseWriter, r *http.Request) {
	mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/json" {
		httpError(w, http.StatusUnsupportedMediaType, "unsupported media type: send Content-Type: application/json")
		return
	} else if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "utf8") {
		httpError(w, http.StatusUnsupportedMediaType, "unsupported charset: JSON-RPC bodies are UTF-8")
		return
	}
	// Refusing a large body: read (and drop) a bounded amount more first,
	// so that a client still sending gets the 413 rather than a reset
	// connection; beyond that the connection is closed.
	orig := r.Body
	tooLarge := func() {
		io.CopyN(io.Discard, orig, 4*MaxRequestBytes)
		writeJSON(w, http.StatusRequestEntityTooLarge, tooLargeResponse)
	}
	if r.ContentLength > MaxRequestBytes {
		tooLarge()
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, orig, MaxRequestBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			tooLarge()
			return
		}
		httpError(w, http.StatusBadRequest, "reading the request body: "+err.Error())
		return
	}
	out, ok := s.handleBody(r.Context(), body)
	if !ok {
		w.WriteHeader(http.StatusNoContent) // only notifications
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func writeJSON(w http.ResponseWriter, code int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	w.Write(body)
	w.Write([]byte{'\n'})
}

// handleBody answers one HTTP request body. It reports false when nothing is
// to be sent back (the body held only notifications).
func (s *Server) handleBody(ctx context.Context, body []byte) ([]byte, bool) {
	reqs, err := jrpc2.ParseRequests(body)
	if err != nil {
		return marshalResponses(false, []wireResponse{errorResponse(nil, toError(err))}), true
	}
	if len(reqs) == 0 {
		return marshalResponses(false, []wireResponse{errorResponse(nil, &Error{Code: CodeInvalidRequest, Message: "empty request batch"})}), true
	}
	batch := reqs[0].Batch
	ids := map[string]int{}
	for _, req := range reqs {
		if req.ID != "" && req.Error == nil {
			ids[req.ID]++
		}
	}
	env := &callEnv{srv: s}
	var out []wireResponse
	for _, req := range reqs {
		id := json.RawMessage(req.ID)
		var e *Error
		var res json.RawMessage
		switch {
		case req.Error != nil:
			e = toError(req.Error)
		case req.ID != "" && ids[req.ID] > 1:
			e = &Error{Code: CodeInvalidRequest, Message: "duplicate request ID", Data: json.RawMessage(req.ID)}
		case req.Method == "":
			e = &Error{Code: CodeInvalidRequest, Message: "empty method name"}
		default:
			m := s.method(req.Method)
			if allow := methodFilter(ctx); allow != nil && !allow(req.Method) {
				m = nil
			}
			if m == nil {
				e = &Error{Code: CodeMethodNotFound, Message: "method not found", Data: json.RawMessage(mustJSON(req.Method))}
				break
			}
			res, e = s.invoke(ctx, m, env, req.Params)
		}
		if req.ID == "" && (e == nil || (e.Code != CodeParseError && e.Code != CodeInvalidRequest)) {
			continue // a notification gets no response, except when invalid
		}
		if e != nil {
			out = append(out, errorResponse(id, e))
		} else {
			out = append(out, wireResponse{JSONRPC: "2.0", ID: id, Result: res})
		}
	}
	if len(out) == 0 {
		return nil, false
	}
	return marshalResponses(batch, out), true
}

func errorResponse(id json.RawMessage, e *Error) wireResponse {
	if len(id) == 0 {
		id = json.RawMessage("null")
	}
	return wireResponse{JSONRPC: "2.0", ID: id, Error: e}
}

func toError(err error) *Error {
	var je *jrpc2.Error
	if errors.As(err, &je) {
		return &Error{Code: int(je.Code), Message: je.Message, Data: je.Data}
	}
	return &Error{Code: CodeParseError, Message: err.Error()}
}

func marshalResponses(batch bool, rs []wireResponse) []byte {
	var v any = rs
	if !batch && len(rs) == 1 {
		v = rs[0]
	}
	b, err := json.Marshal(v)
	if err != nil {
		// Only results (already valid JSON) and our own errors go in.
		return fmt.Appendf(nil, `{"jsonrpc":"2.0","id":null,"error":{"code":%d,"message":%q}}`, CodeInternal, internalMessage)
	}
	return bytes.TrimSpace(b)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		return []byte("null")
	}
	return b
}

type filterKey struct{}

// WithMethodFilter marks a request (HTTP POST or WebSocket) as allowed to
// call only the methods allow accepts; the others are "method not found".
// The web page's bridge uses it so that its session reaches only the FAPP
// methods, over POST and over the WebSocket alike.
func WithMethodFilter(ctx context.Context, allow func(method string) bool) context.Context {
	return context.WithValue(ctx, filterKey{}, allow)
}

func methodFilter(ctx context.Context) func(string) bool {
	f, _ := ctx.Value(filterKey{}).(func(string) bool)
	return f
}
