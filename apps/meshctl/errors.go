package main

import (
	"errors"
	"strings"

	"meshd.dev/meshd/rpcapi"
)

// jargon are prefixes that mean something to a programmer, not to the
// person at the terminal: the Go package that produced an error and the
// JSON-RPC error class. --json output and the API keep them.
var jargon = []string{"rpcapi: ", "invalid params: ", "daemon: ", "routing: ", "protocol: ", "p2p: "}

// userError rewrites err for a terminal: the daemon's message without the
// JSON-RPC code, package prefixes or "invalid params". The exit code is
// still decided on the original error.
func userError(err error) error {
	msg := err.Error()
	var re *rpcapi.Error
	if errors.As(err, &re) {
		msg = re.Message
	}
	for {
		trimmed := msg
		for _, p := range jargon {
			trimmed = strings.TrimPrefix(trimmed, p)
		}
		if trimmed == msg {
			break
		}
		msg = trimmed
	}
	// Prefixes repeated inside a wrapped message (": rpcapi: ...").
	for _, p := range jargon {
		msg = strings.ReplaceAll(msg, ": "+p, ": ")
	}
	return errors.New(msg)
}
