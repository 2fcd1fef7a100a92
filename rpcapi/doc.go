// Package rpcapi is meshd's local JSON-RPC 2.0 API: the method table, the
// server (unix socket, localhost HTTP and WebSocket, bearer token, Host and
// Origin checks), the OpenRPC document and the Go client apps use. It
// declares the Node interface it needs and does not import the daemon.
package rpcapi
