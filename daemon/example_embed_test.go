package daemon_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"meshd.dev/meshd/daemon"
	"meshd.dev/meshd/rpcapi"
)

// Two nodes embedded in one program, on loopback: b's address comes from
// Info, a connects to b, sends it a message, and b receives it through
// Subscribe, all in process without JSON-RPC.
func Example_embed() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var dirs []string
	defer func() {
		for _, d := range dirs {
			os.RemoveAll(d)
		}
	}()
	open := func() *daemon.Node {
		dir, err := os.MkdirTemp("", "meshd-embed")
		if err != nil {
			log.Fatal(err)
		}
		dirs = append(dirs, dir)
		cfg := daemon.DefaultConfig()
		cfg.MDNS = false // find no one but each other
		n, err := daemon.New(daemon.WithConfig(cfg), daemon.WithDataDir(dir), daemon.WithListen("/ip4/127.0.0.1/tcp/0"))
		if err != nil {
			log.Fatal(err)
		}
		if err := n.Start(ctx); err != nil {
			log.Fatal(err)
		}
		return n
	}
	a, b := open(), open()
	defer a.Close()
	defer b.Close()

	events, stop, err := b.Subscribe(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer stop()
	infoB, err := b.Info(ctx)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := a.Connect(ctx, infoB.ListenAddrs[0]); err != nil {
		log.Fatal(err)
	}
	if _, err := a.Send(ctx, rpcapi.SendParams{To: infoB.Address, Text: "hello from a"}); err != nil {
		log.Fatal(err)
	}
	for ev := range events {
		if ev.Kind == rpcapi.EventMessage {
			fmt.Println("b received:", ev.Message.Text)
			break
		}
	}
	// Close waits until each node has stopped; a second Close (the
	// deferred ones) is harmless.
	for _, n := range []*daemon.Node{a, b} {
		if err := n.Close(); err != nil {
			log.Fatal(err)
		}
	}
	_, err = a.Info(ctx)
	fmt.Println("after Close:", err)
	// Output:
	// b received: hello from a
	// after Close: node unavailable: daemon: node closed
}
