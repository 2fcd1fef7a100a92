package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"time"

	"meshd.dev/meshd/rpcapi"
)

// Main runs meshd until ctx ends (SIGINT, SIGTERM) through the embedding
// API (New with the API served, Start, Close): it opens the node, serves
// the API on the unix socket and, if configured, on HTTP, runs the node
// loop, and on the way out stops accepting API requests, lets the loop
// finish its batch (synced), and closes libp2p and the store. A shutdown
// that takes longer than limits.shutdown_timeout returns an error.
func Main(ctx context.Context, cfg Config, log *slog.Logger) error {
	// Every file the daemon creates (badger's, the socket, the token) is
	// private to its user; the process is meshd's own, so Main sets it
	// (an embedding program decides for itself).
	privateUmask()
	if limit, set := memoryLimit(cfg); set {
		debug.SetMemoryLimit(limit)
		log.Debug("soft memory limit", "bytes", limit)
	}
	n, err := New(WithConfig(cfg), WithLogger(log), WithAPI())
	if err != nil {
		return err
	}
	if err := n.Start(ctx); err != nil && ctx.Err() == nil {
		// The loop stopped at once; Close returns why.
		if cerr := n.Close(); cerr != nil {
			return cerr
		}
		return err
	}
	if ctx.Err() == nil {
		announceReady(log, n, n.emb.srv.SocketPath(), n.emb.srv.HTTPAddr())
	}
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case <-n.Done(): // a fatal error, which Close returns
	}
	notify(log, "STOPPING=1")
	budget := time.Duration(cfg.Limits.ShutdownTimeout)
	done := make(chan error, 1)
	go func() { done <- n.Close() }()
	select {
	case err := <-done:
		if err == nil {
			log.Info("stopped cleanly")
		}
		return err
	case <-time.After(budget):
		return fmt.Errorf("shutdown took longer than %v; exiting anyway (acknowledged data is on disk)", budget)
	}
}

// apiToken keeps the token of earlier runs, so apps configured with it keep
// working across restarts; it writes a new one when there is none (or the
// file is damaged or readable by others).
func apiToken(path string) (string, error) {
	if st, err := os.Stat(path); err == nil && st.Mode().Perm()&0o077 == 0 {
		if tok, err := rpcapi.ReadToken(path); err == nil {
			return tok, nil
		}
	}
	return rpcapi.WriteToken(path)
}

// memoryLimit returns the soft memory limit meshd sets, and false when the
// GOMEMLIMIT environment variable is set (the runtime already applied it).
// Without a limit the heap may grow to twice what is live between
// collections: a node whose custody store fills (a flood of junk from many
// neighbours) would use about four times the custody quota.
func memoryLimit(cfg Config) (int64, bool) {
	if _, ok := os.LookupEnv("GOMEMLIMIT"); ok {
		return 0, false
	}
	if cfg.Limits.MemoryLimit > 0 {
		return cfg.Limits.MemoryLimit, true
	}
	return int64(cfg.Routing.CustodyMaxBytes) + 64<<20, true
}
