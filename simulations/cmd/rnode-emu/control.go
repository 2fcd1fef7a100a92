package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"meshd.dev/meshd/simulations/rnode"
)

// maxCommand bounds a control command line.
const maxCommand = 256

// listen serves the control socket until ctx ends; stop closes it.
func (e *emulator) listen(ctx context.Context) (stop func(), err error) {
	// A socket left by a killed emulator goes; anything else at the path
	// (a mistyped --control) stays, and Listen reports it.
	if fi, err := os.Lstat(e.o.control); err == nil && fi.Mode()&os.ModeSocket != 0 {
		os.Remove(e.o.control)
	}
	ln, err := net.Listen("unix", e.o.control)
	if err != nil {
		return nil, err
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { e.handle(c) })
		}
	})
	return func() {
		ln.Close()
		wg.Wait()
	}, nil
}

// handle answers one command: "ok" and any output lines, or "error: ...".
func (e *emulator) handle(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(io.LimitReader(c, maxCommand)).ReadString('\n')
	if err != nil && line == "" {
		return
	}
	out, err := e.command(line)
	if err != nil {
		fmt.Fprintf(c, "error: %v\n", err)
		return
	}
	fmt.Fprintf(c, "ok\n%s", out)
}

// request is a parsed control command.
type request struct {
	verb  string // list, plug, unplug, fault
	name  string
	fault rnode.Fault
}

// parseCommand parses a control command line.
func parseCommand(line string) (request, error) {
	f := strings.Fields(line)
	switch {
	case len(f) == 1 && f[0] == "list":
		return request{verb: "list"}, nil
	case len(f) == 2 && (f[0] == "plug" || f[0] == "unplug"):
		return request{verb: f[0], name: f[1]}, nil
	case len(f) == 3 && f[0] == "fault":
		kind, err := rnode.ParseFault(f[2])
		if err != nil {
			return request{}, err
		}
		return request{verb: "fault", name: f[1], fault: kind}, nil
	}
	return request{}, fmt.Errorf("unknown command %q (list, plug NAME, unplug NAME, fault NAME KIND)", strings.Join(f, " "))
}

func (e *emulator) command(line string) (string, error) {
	r, err := parseCommand(line)
	if err != nil {
		return "", err
	}
	switch r.verb {
	case "plug":
		return "", e.plug(r.name)
	case "unplug":
		return "", e.unplug(r.name)
	case "fault":
		return "", e.hub.Fault(r.name, r.fault)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var b strings.Builder
	for _, me := range e.entries() {
		state := "unplugged"
		if me.Plugged {
			state = "plugged " + me.PTY
		}
		fmt.Fprintf(&b, "%s %s\n", me.Name, state)
	}
	return b.String(), nil
}

var errCommand = errors.New("the emulator refused the command")

// ctl sends one command to a running emulator and prints its answer.
func ctl(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("rnode-emu ctl", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	sock := fs.String("control", "", "the emulator's control socket")
	if err := fs.Parse(args); err != nil || *sock == "" || fs.NArg() == 0 {
		return fmt.Errorf("ctl needs --control SOCKET and a command\n%w", errUsage)
	}
	c, err := net.DialTimeout("unix", *sock, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := fmt.Fprintln(c, strings.Join(fs.Args(), " ")); err != nil {
		return err
	}
	r := bufio.NewReader(c)
	status, err := r.ReadString('\n')
	if err != nil {
		return fmt.Errorf("no answer from the emulator: %w", err)
	}
	if msg, ok := strings.CutPrefix(strings.TrimSpace(status), "error: "); ok {
		return fmt.Errorf("%w: %s", errCommand, msg)
	}
	_, err = io.Copy(stdout, r)
	return err
}
