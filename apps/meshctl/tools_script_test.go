package main

import (
	"context"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"meshd.dev/meshd/rpcapi"
)

// outboxid NAME VAR sets VAR to the ID of the oldest message in the outbox
// of the daemon in $WORK/NAME (for msg status and cancel).
func cmdOutboxID(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: outboxid NAME VAR")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := rpcapi.DialDataDir(ctx, ts.MkAbs(args[0]))
	if err != nil {
		ts.Fatalf("%v", err)
	}
	defer c.Close()
	var out []rpcapi.OutboxEntry
	if err := c.Call(ctx, rpcapi.MethodMsgOutbox, nil, &out); err != nil {
		ts.Fatalf("%v", err)
	}
	if len(out) == 0 {
		ts.Fatalf("outbox of %s is empty", args[0])
	}
	ts.Setenv(args[1], out[0].ID)
}
