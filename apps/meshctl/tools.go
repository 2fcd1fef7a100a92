package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"meshd.dev/meshd/rpcapi"
)

// The outbox (outbox, msg status, msg cancel), the diagnostics (ping, path,
// nodes, log level, stats bw) and the contacts. Contact names are accepted
// wherever an address is, and shown beside addresses.

func addToolCommands(root *cobra.Command, o *options) {
	root.AddCommand(cmdOutbox(o), cmdMsg(o), cmdCancel(o), cmdPing(o), cmdPath(o), cmdNodes(o), cmdLog(o), cmdStats(o), cmdContacts(o))
}

// needsSub is the RunE of a command that only groups subcommands.
func needsSub(name, subs string) func(*cobra.Command, []string) error {
	return func(*cobra.Command, []string) error {
		return usageError{fmt.Errorf("%s needs a subcommand: %s", name, subs)}
	}
}

// contactsOf fetches the daemon's contacts: address -> name. A daemon
// without contacts gives none (names are a convenience).
func contactsOf(ctx context.Context, c *rpcapi.Client) map[string]string {
	var cs []rpcapi.Contact
	m := map[string]string{}
	if c.Call(ctx, rpcapi.MethodContactsList, nil, &cs) == nil {
		for _, x := range cs {
			m[x.Address] = x.Name
		}
	}
	return m
}

// label is an address with its contact name beside it.
func label(names map[string]string, addr string) string {
	if n := names[addr]; n != "" {
		return fmt.Sprintf("%s (%s)", addr, n)
	}
	return addr
}

// resolve turns a contact name into its address; an address stays as it is.
func resolve(ctx context.Context, c *rpcapi.Client, s string) (string, error) {
	if b, err := hex.DecodeString(s); err == nil && len(b) == 16 {
		return strings.ToLower(s), nil
	}
	for addr, name := range contactsOf(ctx, c) {
		if name == s {
			return addr, nil
		}
	}
	return "", fmt.Errorf("%q is not a mesh address (32 hex characters) nor a contact name (see meshctl contacts list)", s)
}

func cmdOutbox(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "outbox",
		Short: "List this node's messages waiting for a receipt",
		Example: `  meshctl outbox
  meshctl outbox --json`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.withClient(cmd, func(ctx context.Context, c *rpcapi.Client) error {
				var out []rpcapi.OutboxEntry
				if err := c.Call(ctx, rpcapi.MethodMsgOutbox, nil, &out); err != nil {
					return err
				}
				if o.json {
					return o.printJSON(out)
				}
				if len(out) == 0 {
					fmt.Fprintln(o.stdout, "outbox empty")
					return nil
				}
				w := tabwriter.NewWriter(o.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "ID\tTO\tSTATE\tATTEMPTS\tNEXT RETRY\tEXPIRES")
				for _, e := range out {
					next := "-"
					if e.NextRetry != nil {
						next = e.NextRetry.Local().Format(time.RFC3339)
					}
					to := e.To
					if e.ToName != "" {
						to += " (" + e.ToName + ")"
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\n", e.ID, to, e.State, e.Attempts, next, e.Expires.Local().Format(time.RFC3339))
				}
				return w.Flush()
			})
		},
	}
}

// checkID refuses what cannot be a message ID before dialling.
func checkID(s string) error {
	if b, err := hex.DecodeString(s); err != nil || len(b) != 16 {
		return usageError{fmt.Errorf("%q is not a message ID: want the 32 hex characters meshctl send printed", s)}
	}
	return nil
}

func cmdMsg(o *options) *cobra.Command {
	msg := &cobra.Command{Use: "msg", Short: "Ask about or cancel a sent message: status, cancel", Args: usageArgs(cobra.NoArgs), RunE: needsSub("msg", "status or cancel")}
	msg.AddCommand(&cobra.Command{
		Use:     "status ID",
		Short:   "Say what became of a sent message: pending, forwarded, delivered, expired or cancelled",
		Example: "  meshctl msg status 4f1c0a7e9b2d3c4e5f60718293a4b5c6",
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkID(args[0]); err != nil {
				return err
			}
			return o.withClient(cmd, func(ctx context.Context, c *rpcapi.Client) error {
				var st rpcapi.MsgStatus
				if err := c.Call(ctx, rpcapi.MethodMsgStatus, rpcapi.MsgIDParams{ID: args[0]}, &st); err != nil {
					return err
				}
				if o.json {
					return o.printJSON(st)
				}
				to := st.To
				if st.ToName != "" {
					to += " (" + st.ToName + ")"
				}
				fmt.Fprintf(o.stdout, "%s %s to %s", st.ID, st.State, to)
				if !st.Updated.IsZero() {
					fmt.Fprintf(o.stdout, " at %s", st.Updated.Local().Format(time.RFC3339))
				} else if !st.Expires.IsZero() {
					fmt.Fprintf(o.stdout, ", expires %s", st.Expires.Local().Format(time.RFC3339))
				}
				fmt.Fprintln(o.stdout)
				return nil
			})
		},
	})
	msg.AddCommand(cmdCancel(o))
	return msg
}

func cmdCancel(o *options) *cobra.Command {
	return &cobra.Command{
		Use:     "cancel ID",
		Short:   "Cancel a message in custody: it is never sent again, not even after a restart",
		Example: "  meshctl cancel 4f1c0a7e9b2d3c4e5f60718293a4b5c6",
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkID(args[0]); err != nil {
				return err
			}
			return o.withClient(cmd, func(ctx context.Context, c *rpcapi.Client) error {
				var res rpcapi.CancelResult
				if err := c.Call(ctx, rpcapi.MethodMsgCancel, rpcapi.MsgIDParams{ID: args[0]}, &res); err != nil {
					return err
				}
				if o.json {
					return o.printJSON(res)
				}
				fmt.Fprintf(o.stdout, "cancelled %s\n", res.ID)
				return nil
			})
		},
	}
}

func cmdPing(o *options) *cobra.Command {
	var count int
	var wait, interval time.Duration
	cmd := &cobra.Command{
		Use:   "ping ADDRESS|CONTACT",
		Short: "Measure the round trip and hop count to a node through the mesh",
		Long: `ping sends echo requests through the mesh, end to end, and waits for each
one's answer (its receipt). The first round trip includes finding the node's
key and route if they were not known. Nodes answer at most 2 pings a second.
Exit code 1 if no ping was answered.`,
		Example: `  meshctl ping 0123456789abcdef0123456789abcdef
  meshctl ping alice --count 3`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if count < 1 || wait < time.Second || interval < 0 {
				return usageError{errors.New("--count must be at least 1, --wait at least 1s, --interval not negative")}
			}
			ctx := cmd.Context()
			c, err := o.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			answered := 0
			for i := range count {
				if i > 0 {
					select {
					case <-ctx.Done():
						return ctx.Err()
					case <-time.After(interval):
					}
				}
				var res rpcapi.PingResult
				err := c.Call(ctx, rpcapi.MethodNodePing, rpcapi.PingParams{To: args[0], Timeout: int64(wait / time.Second)}, &res)
				switch {
				case err != nil && count == 1:
					return err
				case err != nil:
					fmt.Fprintf(cmd.ErrOrStderr(), "meshctl: %v\n", err)
					continue
				}
				answered++
				if o.json {
					if err := o.printJSONLine(res); err != nil {
						return err
					}
					continue
				}
				to := res.To
				if res.ToName != "" {
					to += " (" + res.ToName + ")"
				}
				fmt.Fprintf(o.stdout, "answer from %s: time=%.1f ms hops=%d\n", to, res.RTTMillis, res.Hops)
			}
			if answered == 0 {
				return fmt.Errorf("no answer to %d pings", count)
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&count, "count", 1, "send this many pings")
	cmd.Flags().DurationVar(&wait, "wait", 10*time.Second, "wait this long for each answer")
	cmd.Flags().DurationVar(&interval, "interval", time.Second, "pause between pings")
	return cmd
}

func cmdPath(o *options) *cobra.Command {
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "path ADDRESS|CONTACT",
		Short: "Show the route to a node; with --wait, ask the mesh for one",
		Long: `path shows the route the node uses to reach a destination: next hop, link,
hops and metric. Without a route, --wait sends a path request through the
mesh and waits that long for an answer. Exit code 1 if there is no route.`,
		Example: `  meshctl path 0123456789abcdef0123456789abcdef
  meshctl path alice --wait 10s --json`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if wait < 0 || wait > 300*time.Second {
				return usageError{fmt.Errorf("--wait %v: want 0 to 5m", wait)}
			}
			return o.withClient(cmd, func(ctx context.Context, c *rpcapi.Client) error {
				var res rpcapi.PathResult
				if err := c.Call(ctx, rpcapi.MethodNodePath, rpcapi.PathParams{To: args[0], Wait: int64((wait + time.Second - 1) / time.Second)}, &res); err != nil {
					return err
				}
				if o.json {
					if err := o.printJSON(res); err != nil {
						return err
					}
				}
				to := res.To
				if res.ToName != "" {
					to += " (" + res.ToName + ")"
				}
				if res.Route == nil {
					hint := "; meshctl path --wait 10s asks the mesh for one"
					if res.Requested {
						hint = "; a path request went unanswered"
					}
					return fmt.Errorf("no route to %s%s", to, hint)
				}
				if !o.json {
					r := res.Route
					fmt.Fprintf(o.stdout, "%s is %d hops away via %s on %s link %d, metric %d, route expires %s\n",
						to, r.Hops, r.NextHop, res.LinkKind, r.Link, r.Metric, r.Expires.Local().Format(time.RFC3339))
				}
				return nil
			})
		},
	}
	cmd.Flags().DurationVar(&wait, "wait", 0, "without a route, ask the mesh and wait this long (e.g. 10s)")
	return cmd
}

func cmdNodes(o *options) *cobra.Command {
	return &cobra.Command{
		Use:     "nodes",
		Short:   "List every node heard of: last heard, hops, link kind, capabilities",
		Example: "  meshctl nodes\n  meshctl nodes --json",
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.withClient(cmd, func(ctx context.Context, c *rpcapi.Client) error {
				var ns []rpcapi.NodeEntry
				if err := c.Call(ctx, rpcapi.MethodNodeNodes, nil, &ns); err != nil {
					return err
				}
				if o.json {
					return o.printJSON(ns)
				}
				if len(ns) == 0 {
					fmt.Fprintln(o.stdout, "no nodes heard")
					return nil
				}
				w := tabwriter.NewWriter(o.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "ADDRESS\tNAME\tLAST HEARD\tHOPS\tLINK\tCAPABILITIES\tKEY")
				for _, x := range ns {
					heard, hops, key := "-", "-", "no"
					if x.LastHeard != nil {
						heard = x.LastHeard.Local().Format(time.RFC3339)
					}
					if x.NextHop != "" {
						hops = fmt.Sprint(x.Hops)
					}
					if x.HasKey {
						key = "yes"
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", x.Address, dash(x.Name), heard, hops, dash(x.LinkKind),
						dash(strings.Join(x.Capabilities, ",")), key)
				}
				return w.Flush()
			})
		},
	}
}

func cmdLog(o *options) *cobra.Command {
	lg := &cobra.Command{Use: "log", Short: "The daemon's logging: level", Args: usageArgs(cobra.NoArgs), RunE: needsSub("log", "level")}
	lg.AddCommand(&cobra.Command{
		Use:   "level [debug|info|warn|error]",
		Short: "Show or change the daemon's log level until it restarts",
		Example: `  meshctl log level
  meshctl log level debug`,
		Args: usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			p := rpcapi.LogLevelParams{}
			if len(args) == 1 {
				p.Level = strings.ToLower(args[0])
				switch p.Level {
				case "debug", "info", "warn", "error":
				default:
					return usageError{fmt.Errorf("log level %q: want debug, info, warn or error", args[0])}
				}
			}
			return o.withClient(cmd, func(ctx context.Context, c *rpcapi.Client) error {
				var res rpcapi.LogLevelResult
				if err := c.Call(ctx, rpcapi.MethodNodeLogLevel, p, &res); err != nil {
					return err
				}
				if o.json {
					return o.printJSON(res)
				}
				fmt.Fprintf(o.stdout, "log level %s\n", res.Level)
				return nil
			})
		},
	})
	return lg
}

// linkRate is one link's traffic over a stats bw interval.
type linkRate struct {
	ID          uint32  `json:"id"`
	Kind        string  `json:"kind"`
	Name        string  `json:"name"`
	Peer        string  `json:"peer,omitempty"`
	InBytesSec  float64 `json:"in_bytes_per_sec"`
	OutBytesSec float64 `json:"out_bytes_per_sec"`
	BytesIn     uint64  `json:"bytes_in"`
	BytesOut    uint64  `json:"bytes_out"`
}

func cmdStats(o *options) *cobra.Command {
	st := &cobra.Command{Use: "stats", Short: "Traffic statistics: bw", Args: usageArgs(cobra.NoArgs), RunE: needsSub("stats", "bw")}
	var interval time.Duration
	bw := &cobra.Command{
		Use:   "bw",
		Short: "Bandwidth per link and in total, measured over --interval",
		Example: `  meshctl stats bw
  meshctl stats bw --interval 5s --json`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if interval < 100*time.Millisecond || interval > time.Minute {
				return usageError{fmt.Errorf("--interval %v: want 100ms to 1m", interval)}
			}
			return o.withClient(cmd, func(ctx context.Context, c *rpcapi.Client) error {
				rates, err := sampleRates(ctx, c, interval)
				if err != nil {
					return err
				}
				if o.json {
					return o.printJSON(rates)
				}
				return printRates(o.stdout, rates, contactsOf(ctx, c))
			})
		},
	}
	bw.Flags().DurationVar(&interval, "interval", time.Second, "measure over this long")
	st.AddCommand(bw)
	return st
}

// sampleRates reads node.links twice, interval apart; links that came up
// in between count from zero.
func sampleRates(ctx context.Context, c *rpcapi.Client, interval time.Duration) ([]linkRate, error) {
	first, err := c.Links(ctx)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(interval):
	}
	second, err := c.Links(ctx)
	if err != nil {
		return nil, err
	}
	secs := time.Since(t0).Seconds()
	before := map[uint32]rpcapi.Link{}
	for _, l := range first {
		before[l.ID] = l
	}
	rates := []linkRate{}
	for _, l := range second {
		if l.ID == 0 {
			continue
		}
		b := before[l.ID]
		if b.BytesIn > l.BytesIn || b.BytesOut > l.BytesOut {
			b = rpcapi.Link{} // another link under a reused ID
		}
		rates = append(rates, linkRate{ID: l.ID, Kind: l.Kind, Name: l.Name, Peer: l.Peer, BytesIn: l.BytesIn, BytesOut: l.BytesOut,
			InBytesSec: float64(l.BytesIn-b.BytesIn) / secs, OutBytesSec: float64(l.BytesOut-b.BytesOut) / secs})
	}
	return rates, nil
}

func printRates(out io.Writer, rates []linkRate, names map[string]string) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "LINK\tKIND\tPEER\tIN/S\tOUT/S\tTOTAL IN\tTOTAL OUT")
	var in, outR float64
	var tin, tout uint64
	for _, r := range rates {
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Kind, dash(label(names, r.Peer)),
			size(uint64(r.InBytesSec)), size(uint64(r.OutBytesSec)), size(r.BytesIn), size(r.BytesOut))
		in, outR, tin, tout = in+r.InBytesSec, outR+r.OutBytesSec, tin+r.BytesIn, tout+r.BytesOut
	}
	fmt.Fprintf(w, "total\t\t\t%s\t%s\t%s\t%s\n", size(uint64(in)), size(uint64(outR)), size(tin), size(tout))
	return w.Flush()
}

func cmdContacts(o *options) *cobra.Command {
	ct := &cobra.Command{
		Use:   "contacts",
		Short: "Local names for mesh addresses (kept on this node, never sent)",
		Long: `Contacts name mesh addresses. The node keeps them in its data directory and
never sends them. A contact name is accepted wherever meshctl takes an address
(send, ping, path), and shown beside the address in inbox, peers, nodes and watch.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: needsSub("contacts", "add, rm or list"),
	}
	ct.AddCommand(&cobra.Command{
		Use:     "add NAME ADDRESS",
		Short:   "Name an address (or rename its contact)",
		Example: "  meshctl contacts add alice 0123456789abcdef0123456789abcdef",
		Args:    usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := rpcapi.CheckContactName(args[0]); err != nil {
				return usageError{errors.New(strings.TrimPrefix(err.Error(), rpcapi.ErrInvalidParams.Error()+": "))}
			}
			return o.withClient(cmd, func(ctx context.Context, c *rpcapi.Client) error {
				var res rpcapi.Contact
				if err := c.Call(ctx, rpcapi.MethodContactsAdd, rpcapi.Contact{Name: args[0], Address: args[1]}, &res); err != nil {
					return err
				}
				if o.json {
					return o.printJSON(res)
				}
				fmt.Fprintf(o.stdout, "%s is %s\n", res.Name, res.Address)
				return nil
			})
		},
	})
	ct.AddCommand(&cobra.Command{
		Use:     "rm NAME|ADDRESS",
		Aliases: []string{"remove"},
		Short:   "Remove a contact",
		Example: "  meshctl contacts rm alice",
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withClient(cmd, func(ctx context.Context, c *rpcapi.Client) error {
				var res rpcapi.Contact
				if err := c.Call(ctx, rpcapi.MethodContactsRemove, rpcapi.ContactRemoveParams{Contact: args[0]}, &res); err != nil {
					return err
				}
				if o.json {
					return o.printJSON(res)
				}
				fmt.Fprintf(o.stdout, "removed %s (%s)\n", res.Name, res.Address)
				return nil
			})
		},
	})
	ct.AddCommand(&cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the contacts",
		Example: "  meshctl contacts list --json",
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.withClient(cmd, func(ctx context.Context, c *rpcapi.Client) error {
				var cs []rpcapi.Contact
				if err := c.Call(ctx, rpcapi.MethodContactsList, nil, &cs); err != nil {
					return err
				}
				if o.json {
					return o.printJSON(cs)
				}
				if len(cs) == 0 {
					fmt.Fprintln(o.stdout, "no contacts")
					return nil
				}
				w := tabwriter.NewWriter(o.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "NAME\tADDRESS")
				for _, x := range cs {
					fmt.Fprintf(w, "%s\t%s\n", x.Name, x.Address)
				}
				return w.Flush()
			})
		},
	})
	return ct
}

// labelEvent puts contact names beside the addresses of an event for
// printing.
func labelEvent(names map[string]string, ev *rpcapi.Event) {
	if ev.Message != nil {
		m := *ev.Message
		m.From = label(names, m.From)
		ev.Message = &m
	}
	if ev.Peer != nil {
		p := *ev.Peer
		p.Address = label(names, p.Address)
		ev.Peer = &p
	}
}

// printLinkRates is meshctl links --rate: the traffic rates after the table.
func printLinkRates(ctx context.Context, o *options, c *rpcapi.Client, interval time.Duration) error {
	if interval < 100*time.Millisecond || interval > time.Minute {
		return usageError{fmt.Errorf("--rate %v: want 100ms to 1m", interval)}
	}
	rates, err := sampleRates(ctx, c, interval)
	if err != nil {
		return err
	}
	fmt.Fprintf(o.stdout, "\nrates over %v:\n", interval)
	return printRates(o.stdout, rates, contactsOf(ctx, c))
}
