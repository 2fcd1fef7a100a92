// Meshd is the meshd mesh networking daemon.
//
// Usage:
//
//	meshd [run] [flags]     run the daemon (on embedded defaults without a config file)
//	meshd init [flags]      write a commented config file into the data directory
//	meshd config show       print the effective configuration
//	meshd version           print the version
//
// Run `meshd run -h` for the flags; docs/operations.md describes every
// setting.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"meshd.dev/meshd/daemon"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: meshd [command] [flags]

commands:
  run           run the daemon (the default)
  init          write a commented config file into the data directory
  config show   print the effective configuration (file, environment, flags)
  version       print the version

Run "meshd run -h" for the flags.
`

func run(args []string, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "run":
		return cmdRun(args, stderr)
	case "init":
		return cmdInit(args, stdout, stderr)
	case "config":
		if len(args) == 0 || args[0] != "show" {
			fmt.Fprintln(stderr, "meshd: usage: meshd config show [flags]")
			return 2
		}
		return cmdConfigShow(args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "meshd", version())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "meshd: unknown command %q\n\n%s", cmd, usage)
	return 2
}

func version() string {
	if daemon.Version != "devel" {
		return daemon.Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return daemon.Version
}

// loadConfig parses flags and builds the effective configuration.
func loadConfig(name string, args []string, stderr io.Writer) (daemon.Config, string, int) {
	fs := flag.NewFlagSet("meshd "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	f := daemon.NewFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return daemon.Config{}, "", 0
		}
		return daemon.Config{}, "", 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "meshd %s: unexpected argument %q\n", name, fs.Arg(0))
		return daemon.Config{}, "", 2
	}
	cfg, path, err := daemon.LoadConfig(f, os.Environ())
	if err != nil {
		fmt.Fprintf(stderr, "meshd: %v\n", err)
		return daemon.Config{}, "", 1
	}
	return cfg, path, -1
}

func cmdInit(args []string, stdout, stderr io.Writer) int {
	cfg, _, code := loadConfig("init", args, stderr)
	if code >= 0 {
		return code
	}
	path, err := daemon.Init(cfg.DataDir)
	if err != nil {
		fmt.Fprintf(stderr, "meshd init: %v\n", err)
		return 1
	}
	id, created, err := daemon.LoadOrCreateIdentity(cfg.DataDir, nil)
	if err != nil {
		fmt.Fprintf(stderr, "meshd init: %v\n", err)
		return 1
	}
	// The host key too, so that the first start of a new node is not
	// taken for the migration of an old data directory.
	_, hostCreated, err := daemon.LoadOrCreateHostKey(cfg.DataDir, nil)
	if err != nil {
		fmt.Fprintf(stderr, "meshd init: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "wrote %s\n", path)
	if created {
		fmt.Fprintf(stdout, "created identity %s\n", id.Address())
	} else {
		fmt.Fprintf(stdout, "kept identity %s\n", id.Address())
		if hostCreated {
			fmt.Fprintf(stdout, "created a libp2p host key of its own: the peer ID changed (the address did not); see docs/operations.md, Upgrade\n")
		}
	}
	return 0
}

func cmdConfigShow(args []string, stdout, stderr io.Writer) int {
	cfg, path, code := loadConfig("config show", args, stderr)
	if code >= 0 {
		return code
	}
	b, err := cfg.MarshalTOML()
	if err != nil {
		fmt.Fprintf(stderr, "meshd config show: %v\n", err)
		return 1
	}
	if path == "" {
		path = "none (embedded defaults)"
	}
	fmt.Fprintf(stdout, "# effective configuration; config file: %s\n", path)
	stdout.Write(b)
	return 0
}

func cmdRun(args []string, stderr io.Writer) int {
	cfg, path, code := loadConfig("run", args, stderr)
	if code >= 0 {
		return code
	}
	log := newLogger(cfg.Log, stderr)
	if path == "" {
		log.Info("no config file; running on embedded defaults", "data_dir", cfg.DataDir)
	} else {
		log.Info("config loaded", "file", path)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// After the first signal, restore the default handling: a second
	// Ctrl-C ends meshd at once (what was acknowledged is on disk).
	go func() { <-ctx.Done(); stop() }()
	if err := daemon.Main(ctx, cfg, log); err != nil {
		log.Error("meshd stopped", "err", err)
		return 1
	}
	return 0
}

func newLogger(c daemon.LogConfig, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.Level)) // validated with the config
	daemon.LogLevel.Set(lvl)               // node.loglevel changes it later
	opts := &slog.HandlerOptions{Level: daemon.LogLevel}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
