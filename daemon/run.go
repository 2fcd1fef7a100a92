package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"time"

	"meshd.dev/meshd/rpcapi"
	"meshd.dev/meshd/rpcapi/web"
)

// Main runs meshd until ctx ends (SIGINT, SIGTERM): it opens the node,
// serves the API on the unix socket and, if configured, on HTTP, runs the
// node loop, and on the way out stops accepting API requests, lets the loop
// finish its batch (synced), and closes libp2p and the store. A shutdown
// that takes longer than limits.shutdown_timeout returns an error.
func Main(ctx context.Context, cfg Config, log *slog.Logger) error {
	if limit, set := memoryLimit(cfg); set {
		debug.SetMemoryLimit(limit)
		log.Debug("soft memory limit", "bytes", limit)
	}
	n, err := Open(ctx, cfg, Options{Logger: log})
	if err != nil {
		return err
	}
	token, err := apiToken(rpcapi.TokenPath(cfg.DataDir))
	if err != nil {
		n.Close()
		return fmt.Errorf("writing the API token: %w", err)
	}
	srv, err := rpcapi.NewServer(n, rpcapi.ServerOptions{
		SocketPath: rpcapi.SocketPath(cfg.DataDir),
		HTTPAddr:   cfg.API,
		Token:      token,
		Logger:     log,
		Version:    Version,
		Web:        web.New(web.Options{Token: token}),
	})
	if err != nil {
		n.Close()
		return err
	}
	log.Info("API listening", "socket", srv.SocketPath(), "http", srv.HTTPAddr(), "token_file", rpcapi.TokenPath(cfg.DataDir))

	var metrics *metricsServer
	if cfg.Metrics != "" {
		if metrics, err = startMetrics(n, cfg.Metrics, log); err != nil {
			srv.Close()
			n.Close()
			return err
		}
		log.Info("metrics listening", "url", "http://"+metrics.Addr()+"/metrics")
	}

	loopCtx, stopLoop := context.WithCancel(context.Background())
	defer stopLoop()
	runErr := make(chan error, 1)
	go func() { runErr <- n.Run(loopCtx) }()

	var fatal error
	loopEnded := false
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case fatal = <-runErr:
		loopEnded = true
	}
	budget := time.Duration(cfg.Limits.ShutdownTimeout)
	done := make(chan error, 1)
	go func() {
		// Stop taking API requests first (half the budget for requests in
		// flight), then stop the loop (its last batch is synced before
		// Run returns), then close libp2p and the store.
		sctx, cancel := context.WithTimeout(context.Background(), budget/2)
		defer cancel()
		errSrv := srv.Shutdown(sctx)
		if metrics != nil {
			errSrv = errors.Join(errSrv, metrics.shutdown(sctx))
		}
		stopLoop()
		var errRun error
		if !loopEnded {
			errRun = <-runErr
		}
		errClose := n.Close()
		done <- errors.Join(errSrv, errRun, errClose)
	}()
	select {
	case err := <-done:
		if err == nil && fatal == nil {
			log.Info("stopped cleanly")
		}
		return errors.Join(fatal, err)
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
