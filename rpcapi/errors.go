package rpcapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// Standard JSON-RPC 2.0 error codes, as the server sends them.
const (
	CodeParseError     = -32700 // the request is not valid JSON
	CodeInvalidRequest = -32600 // the JSON is not a valid request object
	CodeMethodNotFound = -32601 // no such method
	CodeInvalidParams  = -32602 // the parameters are missing, unknown or wrong
)

// Error is a JSON-RPC error as the client receives it: the stable code, the
// server's message and its optional data. errors.Is(err, ErrRefused) (and the
// other sentinels) holds for an *Error carrying the matching code, so callers
// can branch on the contract's sentinels whichever side of the socket they
// are on.
type Error struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data,omitempty"`
}

func (e *Error) Error() string {
	if len(e.Data) > 0 && string(e.Data) != "null" {
		return fmt.Sprintf("rpcapi: %s (code %d, data %s)", e.Message, e.Code, e.Data)
	}
	return fmt.Sprintf("rpcapi: %s (code %d)", e.Message, e.Code)
}

// Is reports whether target is the sentinel error matching e's code.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrInvalidParams:
		return e.Code == CodeInvalidParams
	case ErrRefused:
		return e.Code == CodeRefused
	case ErrConnect:
		return e.Code == CodeConnectFailed
	case ErrUnavailable:
		return e.Code == CodeUnavailable
	case ErrNotJoined:
		return e.Code == CodeNotJoined
	case ErrNotFound:
		return e.Code == CodeNotFound
	case ErrDiskFull:
		return e.Code == CodeDiskFull
	}
	return false
}

// ErrPushUnsupported is returned (as CodeMethodNotFound, -32601) for msg.subscribe
// over plain HTTP POST, which cannot carry notifications.
var ErrPushUnsupported = errors.New("rpcapi: msg.subscribe needs a connection that can carry notifications: use the unix socket or the WebSocket endpoint /ws")

// codeMessages are the fixed messages for the codes whose detail must not
// leak to the client.
const internalMessage = "internal error (details are in the daemon's log)"

// errorFor maps an error returned by a Node (or by parameter validation) to
// the wire error. It reports whether the error was unexpected, so the caller
// logs its detail: CodeInternal never carries the original text.
func errorFor(err error) (e *Error, unexpected bool) {
	var ae *Error
	switch {
	case errors.As(err, &ae):
		return ae, false
	case errors.Is(err, ErrInvalidParams):
		return &Error{Code: CodeInvalidParams, Message: err.Error()}, false
	case errors.Is(err, ErrRefused):
		return &Error{Code: CodeRefused, Message: err.Error()}, false
	case errors.Is(err, ErrConnect):
		return &Error{Code: CodeConnectFailed, Message: err.Error()}, false
	case errors.Is(err, ErrUnavailable):
		return &Error{Code: CodeUnavailable, Message: err.Error()}, false
	case errors.Is(err, ErrNotJoined):
		return &Error{Code: CodeNotJoined, Message: err.Error()}, false
	case errors.Is(err, ErrNotFound):
		return &Error{Code: CodeNotFound, Message: err.Error()}, false
	case errors.Is(err, ErrDiskFull):
		return &Error{Code: CodeDiskFull, Message: err.Error()}, false
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		// The client went away or the server is shutting down.
		return &Error{Code: CodeUnavailable, Message: "request cancelled: " + err.Error()}, false
	}
	return &Error{Code: CodeInternal, Message: internalMessage}, true
}

// invalidParams builds a -32602 error with a message for people.
func invalidParams(format string, args ...any) *Error {
	return &Error{Code: CodeInvalidParams, Message: "invalid params: " + fmt.Sprintf(format, args...)}
}
