// Command rnode-emu emulates RNode LoRa modems on pseudo-terminals, so that
// meshd (or Reticulum) can run a LoRa mesh on one machine without radios.
//
// Usage:
//
//	rnode-emu [--node NAME,X,Y[,TX_DBM[,GAIN_DBI]] ...] [--layout FILE] [--dir DIR] [--map FILE]
//	          [--control SOCKET] [--seed N] [--shadowing DB] [--capture DB] [--stats-interval D]
//	rnode-emu ctl --control SOCKET list | plug NAME | unplug NAME | fault NAME init-radio|tx-timeout|memory-low
//
// Each modem (from --node flags and/or a layout file: TOML [[modem]] tables
// or CSV name,x,y rows, positions in metres) gets a pseudo-terminal that
// speaks the RNode host protocol as RNode firmware 1.86 does, and all share
// one radio medium (meshsim's model: log-distance path loss, airtime,
// half-duplex, collisions and capture) in real time. rnode-emu prints which
// terminal is which modem and the link budget of every pair, then "ready".
// With --dir, DIR/NAME is a symbolic link to the modem's terminal while it
// is plugged in: give meshd --lora DIR/NAME. With --map, the same is written
// as JSON to FILE (rewritten at every plug and unplug). With --control, a
// unix socket takes the ctl commands: unplug makes the terminal vanish (the
// host's reads fail, the link goes away) and forgets the modem's settings,
// plug brings it back under the same link; fault makes the modem fail once.
//
// SIGINT or SIGTERM stops it (links and socket removed).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, nil); err != nil {
		fmt.Fprintln(os.Stderr, "rnode-emu:", err)
		if errors.Is(err, errUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

var errUsage = errors.New(`usage:
  rnode-emu [--node NAME,X,Y[,TX_DBM[,GAIN_DBI]] ...] [--layout FILE] [--dir DIR] [--map FILE]
            [--control SOCKET] [--seed N] [--shadowing DB] [--capture DB] [--stats-interval D]
  rnode-emu ctl --control SOCKET list | plug NAME | unplug NAME | fault NAME init-radio|tx-timeout|memory-low`)

// run runs the command; ready, if not nil, is called once the modems are
// served.
func run(ctx context.Context, args []string, stdout io.Writer, ready func()) error {
	if len(args) > 0 && args[0] == "ctl" {
		return ctl(args[1:], stdout)
	}
	return serve(ctx, args, stdout, ready)
}
