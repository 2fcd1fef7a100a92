package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"meshd.dev/meshd/daemon"
	"meshd.dev/meshd/rpcapi"
)

// cmdStorage wraps the storage subcommands (backup, restore) for cobra;
// they parse their own flags (the daemon's, for the data directory, plus
// their own) with the standard flag package.
func cmdStorage(name string, stdout, stderr io.Writer) *cobra.Command {
	do, short, example := cmdBackup, "Write a backup of the node (online through its API) into FILE",
		"  meshd backup --data-dir ~/.local/share/meshd /var/backups/meshd.bak"
	if name == "restore" {
		do, short, example = cmdRestore, "Restore a backup into a data directory without a database",
			"  meshd restore --data-dir ~/.local/share/meshd /var/backups/meshd.bak\n  meshd restore --force --data-dir DIR other-node.bak"
	}
	return &cobra.Command{
		Use:                name + " [flags] FILE",
		Short:              short,
		Example:            example,
		DisableFlagParsing: true,
		RunE: func(_ *cobra.Command, args []string) error {
			return exitCode(do(args, stdout, stderr))
		},
	}
}

// storageFlags parses the daemon's flags (for the data directory) plus
// the command's own, and one positional FILE.
func storageFlags(name string, args []string, stderr io.Writer, own func(*flag.FlagSet)) (daemon.Config, string, int) {
	fs := flag.NewFlagSet("meshd "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: meshd %s [flags] FILE\n", name)
		fs.PrintDefaults()
	}
	f := daemon.NewFlags(fs)
	if own != nil {
		own(fs)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return daemon.Config{}, "", 0
		}
		return daemon.Config{}, "", 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintf(stderr, "meshd %s: want one FILE after the flags, got %d arguments\n", name, fs.NArg())
		return daemon.Config{}, "", 2
	}
	cfg, _, err := daemon.LoadConfig(f, os.Environ())
	if err != nil {
		fmt.Fprintf(stderr, "meshd %s: %v\n", name, err)
		return daemon.Config{}, "", 1
	}
	file, err := filepath.Abs(fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "meshd %s: %v\n", name, err)
		return daemon.Config{}, "", 1
	}
	return cfg, file, -1
}

// cmdBackup writes a backup of the node on the data directory into a new
// FILE: through the running node's API (store.backup: the daemon writes
// the file, online), or, when no node answers on the socket, from the
// stopped node's data directory directly.
func cmdBackup(args []string, stdout, stderr io.Writer) int {
	cfg, file, code := storageFlags("backup", args, stderr, nil)
	if code >= 0 {
		return code
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	var res rpcapi.BackupResult
	c, err := rpcapi.DialDataDir(ctx, cfg.DataDir)
	if err == nil {
		defer c.Close()
		res, err = c.Backup(ctx, rpcapi.BackupParams{Path: file})
	} else {
		var h daemon.BackupHeader
		h, res.Bytes, err = daemon.BackupDataDir(cfg.DataDir, file, time.Now())
		res.Path, res.Address = file, h.Address.String()
	}
	if err != nil {
		fmt.Fprintf(stderr, "meshd backup: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "wrote %s (%d bytes): node %s; it holds the node's secret keys, keep it like the data directory\n", res.Path, res.Bytes, res.Address)
	return 0
}

// cmdRestore restores FILE into the data directory, which must have no
// database; see daemon.Restore.
func cmdRestore(args []string, stdout, stderr io.Writer) int {
	var force bool
	cfg, file, code := storageFlags("restore", args, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&force, "force", false, "restore a backup of another node than the data directory's identity key (which is moved aside to identity.key.replaced)")
	})
	if code >= 0 {
		return code
	}
	h, err := daemon.Restore(cfg.DataDir, file, daemon.RestoreOptions{Force: force})
	if err != nil {
		fmt.Fprintf(stderr, "meshd restore: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "restored node %s (backup of %s) into %s\n", h.Address, h.Created.Format(time.RFC3339), cfg.DataDir)
	return 0
}
