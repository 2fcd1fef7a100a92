package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/spf13/cobra"

	"meshd.dev/meshd/internal/version"
	"meshd.dev/meshd/rpcapi"
)

// defaultWait is how long `status --wait` (without =TIMEOUT) waits: a cold
// start on a Raspberry Pi with a large store takes some seconds.
const defaultWait = time.Minute

// readyPoll is how often a waiting meshctl tries the socket again. meshd
// creates the socket only once it serves requests, so each try is one
// failed connect, cheap for both sides.
const readyPoll = 100 * time.Millisecond

// addWaitFlag gives cmd a --wait[=TIMEOUT] flag.
func addWaitFlag(cmd *cobra.Command, wait *time.Duration) {
	cmd.Flags().DurationVar(wait, "wait", 0, "wait until meshd answers, at most this long (--wait alone: "+defaultWait.String()+"; write --wait=TIMEOUT, with =)")
	cmd.Flags().Lookup("wait").NoOptDefVal = defaultWait.String()
}

// waitReady dials the daemon until it answers node.info or wait has passed.
// Only "not running yet" is retried; any other error (a socket of someone
// else, a daemon that answers with an error) ends the wait at once.
func (o *options) waitReady(ctx context.Context, wait time.Duration) (*rpcapi.Client, rpcapi.NodeInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	tick := time.NewTicker(readyPoll)
	defer tick.Stop()
	var last error = noDaemonError{errors.New("meshd has not answered yet")}
	for {
		c, err := o.dial(ctx)
		if err == nil {
			info, err := c.Info(ctx)
			if err == nil {
				return c, info, nil
			}
			c.Close()
			return nil, rpcapi.NodeInfo{}, err
		}
		// A dial cut short by the deadline says "i/o timeout"; the error
		// before it says why meshd is not there.
		var ne net.Error
		if ctx.Err() == nil && !(errors.As(err, &ne) && ne.Timeout()) {
			if !errors.As(err, new(noDaemonError)) {
				return nil, rpcapi.NodeInfo{}, err
			}
			last = err
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, rpcapi.NodeInfo{}, noDaemonError{fmt.Errorf("meshd did not become ready within %v: %w", wait, last)}
			}
			return nil, rpcapi.NodeInfo{}, last
		case <-tick.C:
		}
	}
}

func cmdWait(o *options) *cobra.Command {
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "wait",
		Short: "Wait until meshd answers on its socket (for scripts; like status --wait, quiet)",
		Long: `wait returns as soon as the meshd of --data-dir answers requests, and exits 3
if it does not within --for. It prints nothing but errors (the address with
--json), so a script can start meshd in the background and go on:

  meshd --data-dir /tmp/a & meshctl --data-dir /tmp/a wait && meshctl --data-dir /tmp/a status`,
		Example: "  meshctl wait\n  meshctl wait --for 2m\n  meshctl --data-dir /tmp/a wait && meshctl --data-dir /tmp/a status",
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if wait <= 0 {
				return usageError{fmt.Errorf("--for %v: want a positive duration, e.g. 30s", wait)}
			}
			c, info, err := o.waitReady(cmd.Context(), wait)
			if err != nil {
				return err
			}
			c.Close()
			if o.json {
				return o.printJSON(map[string]string{"address": info.Address, "version": info.Version})
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&wait, "for", defaultWait, "wait at most this long")
	return cmd
}

// versions is meshctl version's --json output.
type versions struct {
	Meshctl string `json:"meshctl"`
	Meshd   string `json:"meshd,omitempty"`
	// MeshdError says why the daemon's version is missing.
	MeshdError string `json:"meshd_error,omitempty"`
}

func cmdVersion(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print meshctl's version and, if it runs, meshd's",
		Long: `version prints meshctl's own version and, when the meshd of --data-dir
answers, the daemon's. It succeeds without a daemon.`,
		Example: "  meshctl version\n  meshctl version --json",
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := versions{Meshctl: version.String()}
			ctx, cancel := context.WithTimeout(cmd.Context(), min(o.timeout, 5*time.Second))
			defer cancel()
			if c, err := o.dial(ctx); err != nil {
				v.MeshdError = err.Error()
			} else {
				info, err := c.Info(ctx)
				c.Close()
				if err != nil {
					v.MeshdError = userError(err).Error()
				} else {
					v.Meshd = info.Version
				}
			}
			if o.json {
				return o.printJSON(v)
			}
			fmt.Fprintf(o.stdout, "meshctl %s\n", v.Meshctl)
			if v.Meshd != "" {
				fmt.Fprintf(o.stdout, "meshd   %s (%s)\n", v.Meshd, o.dataDir)
			} else {
				fmt.Fprintf(o.stdout, "meshd   not reachable at %s\n", o.dataDir)
			}
			return nil
		},
	}
}

// withReadyClient is withClient for commands that read node.info first: with
// wait > 0 it waits up to wait for the daemon to come up.
func (o *options) withReadyClient(cmd *cobra.Command, wait time.Duration, f func(ctx context.Context, c *rpcapi.Client, info rpcapi.NodeInfo) error) error {
	if wait < 0 {
		return usageError{fmt.Errorf("--wait=%v: want a positive duration, e.g. --wait=30s", wait)}
	}
	if wait == 0 {
		return o.withClient(cmd, func(ctx context.Context, c *rpcapi.Client) error {
			info, err := c.Info(ctx)
			if err != nil {
				return err
			}
			return f(ctx, c, info)
		})
	}
	c, info, err := o.waitReady(cmd.Context(), wait)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
	defer cancel()
	return f(ctx, c, info)
}
