// Meshd is the meshd mesh networking daemon.
//
// Usage:
//
//	meshd [run] [flags]     run the daemon (on embedded defaults without a config file)
//	meshd init [flags]      write a commented config file into the data directory
//	meshd config show       print the effective configuration
//	meshd version           print the version (also: meshd --version)
//	meshd backup FILE       write a backup of the node into FILE
//	meshd restore FILE      restore a backup into an empty data directory
//
// Run `meshd --help` for the commands and `meshd run --help` for the flags;
// docs/operations.md describes every setting.
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
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"meshd.dev/meshd/daemon"
	"meshd.dev/meshd/internal/version"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // the daemon failed (bad configuration, a port in use, ...)
	exitUsage = 2 // wrong command line
)

// exitCode carries a command's exit code through cobra.
type exitCode int

func (c exitCode) Error() string { return fmt.Sprintf("exit %d", int(c)) }

func run(args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(defaultToRun(args))
	err := root.Execute()
	var code exitCode
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &code):
		return int(code)
	}
	fmt.Fprintf(stderr, "meshd: %v\n\n", err)
	fmt.Fprint(stderr, "Run \"meshd --help\" for the commands.\n")
	return exitUsage
}

// defaultToRun makes `meshd` and `meshd --data-dir x ...` mean `meshd run
// ...`, as they always did: run is the default command.
func defaultToRun(args []string) []string {
	if len(args) == 0 {
		return []string{"run"}
	}
	switch args[0] {
	case "-h", "-help", "--help", "--version", "-version", "-v":
		if args[0] == "-version" {
			return []string{"--version"}
		}
		if args[0] == "-help" {
			return []string{"--help"}
		}
		return args
	}
	if strings.HasPrefix(args[0], "-") {
		return append([]string{"run"}, args...)
	}
	return args
}

const rootLong = `meshd is a mesh networking daemon: it links to neighbours over libp2p (TCP,
QUIC), plain TCP and LoRa radios, routes end-to-end encrypted messages, and
keeps them in custody while a destination is away. meshctl talks to it.

Without a command meshd runs the daemon: "meshd --data-dir DIR" is
"meshd run --data-dir DIR".

Exit codes: 0 success; 1 the daemon or command failed (bad configuration, a
port in use, a shutdown that timed out); 2 wrong command line.`

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "meshd",
		Short: "The meshd mesh networking daemon",
		Long:  rootLong,
		Example: `  meshd init --data-dir ~/.local/share/meshd
  meshd --data-dir ~/.local/share/meshd --no-mdns
  meshd config show --data-dir ~/.local/share/meshd
  meshd --version`,
		Version:       version.String(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate("meshd {{.Version}}\n")
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(cmdRun(stderr), cmdInit(stdout, stderr), cmdConfig(stdout, stderr), cmdVersion(stdout),
		cmdStorage("backup", stdout, stderr), cmdStorage("restore", stdout, stderr))
	return root
}

// flagCommand builds a command whose flags are daemon.NewFlags. meshd
// parses them with the standard flag package (which reads both --flag and
// the older -flag), so cobra only shows them, in --flag style, in the help.
func flagCommand(use, short, example string, do func(cfg daemon.Config, path string) int, stderr io.Writer) *cobra.Command {
	gofs := flag.NewFlagSet("meshd "+use, flag.ContinueOnError)
	gofs.SetOutput(io.Discard)
	f := daemon.NewFlags(gofs)
	cmd := &cobra.Command{
		Use:                use + " [flags]",
		Short:              short,
		Example:            example,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, path, code := loadConfig(cmd, gofs, f, args, stderr)
			if code >= 0 {
				return exitCode(code)
			}
			return exitCode(do(cfg, path))
		},
	}
	cmd.Flags().AddGoFlagSet(gofs)
	cmd.Flags().VisitAll(func(fl *pflag.Flag) {
		// The help names a flag's type by its Go type; "multiFlag" means
		// nothing to an operator.
		if fl.Value.Type() == "multiFlag" {
			fl.Value = shownAs{fl.Value, "strings"}
		}
	})
	return cmd
}

// shownAs renames a flag value's type in the help. cobra only shows these
// flags: the standard flag package parses them (into the same values).
type shownAs struct {
	flag.Value
	typ string
}

func (v shownAs) Type() string { return v.typ }

func cmdVersion(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print the version",
		Example: "  meshd version\n  meshd --version",
		Args:    cobra.NoArgs,
		Run:     func(*cobra.Command, []string) { fmt.Fprintln(stdout, "meshd", version.String()) },
	}
}

func cmdConfig(stdout, stderr io.Writer) *cobra.Command {
	cfg := &cobra.Command{
		Use:     "config",
		Short:   "Inspect the configuration (config show)",
		Example: "  meshd config show --data-dir ~/.local/share/meshd",
		RunE: func(*cobra.Command, []string) error {
			fmt.Fprintln(stderr, "meshd: usage: meshd config show [flags]")
			return exitCode(exitUsage)
		},
	}
	show := flagCommand("show", "Print the effective configuration (file, environment, flags)",
		"  meshd config show --data-dir ~/.local/share/meshd\n  MESHD_API=off meshd config show",
		func(c daemon.Config, path string) int { return configShow(c, path, stdout, stderr) }, stderr)
	cfg.AddCommand(show)
	return cfg
}

// loadConfig parses flags and builds the effective configuration; a code
// >= 0 means: stop with that exit code.
func loadConfig(cmd *cobra.Command, fs *flag.FlagSet, f *daemon.Flags, args []string, stderr io.Writer) (daemon.Config, string, int) {
	name := cmd.CommandPath()
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			_ = cmd.Help()
			return daemon.Config{}, "", exitOK
		}
		// The flag package names flags with one dash; the help shows two.
		msg := strings.Replace(err.Error(), ": -", ": --", 1)
		fmt.Fprintf(stderr, "%s: %s\nRun \"%s --help\" for the flags.\n", name, msg, name)
		return daemon.Config{}, "", exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q\n", name, fs.Arg(0))
		return daemon.Config{}, "", exitUsage
	}
	cfg, path, err := daemon.LoadConfig(f, os.Environ())
	if err != nil {
		fmt.Fprintf(stderr, "meshd: %v\n", err)
		return daemon.Config{}, "", exitError
	}
	return cfg, path, -1
}

func cmdInit(stdout, stderr io.Writer) *cobra.Command {
	return flagCommand("init", "Write a commented config file, the identity and the host key into the data directory",
		"  meshd init --data-dir ~/.local/share/meshd\n  meshd init --data-dir /var/lib/meshd --no-mdns --relay",
		func(c daemon.Config, _ string) int { return initDataDir(c, stdout, stderr) }, stderr)
}

func initDataDir(cfg daemon.Config, stdout, stderr io.Writer) int {
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

func configShow(cfg daemon.Config, path string, stdout, stderr io.Writer) int {
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

func cmdRun(stderr io.Writer) *cobra.Command {
	return flagCommand("run", "Run the daemon (the default command)",
		`  meshd run --data-dir ~/.local/share/meshd
  meshd --data-dir /tmp/a --listen /ip4/127.0.0.1/tcp/7731 --api off --no-mdns
  MESHD_LOG_FORMAT=json meshd --tcp-peer 192.0.2.7:7725`,
		func(c daemon.Config, path string) int { return runDaemon(c, path, stderr) }, stderr)
}

func runDaemon(cfg daemon.Config, path string, stderr io.Writer) int {
	log := newLogger(cfg.Log, stderr)
	daemon.RouteStdLog(log) // libraries' standard-log lines (zeroconf) in the same format
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
