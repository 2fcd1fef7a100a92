// Meshctl is the command-line client of a running meshd: status, peers, links,
// routes, sending and reading messages, broadcast channels. It talks to the daemon's JSON-RPC
// API on the unix socket in the daemon's data directory and holds no
// protocol logic of its own.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"meshd.dev/meshd/rpcapi"
)

func main() {
	os.Exit(Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// Exit codes.
const (
	exitOK       = 0
	exitError    = 1 // the daemon answered with an error, or I/O failed
	exitUsage    = 2 // wrong command line
	exitNoDaemon = 3 // meshd is not running on that data directory
)

type options struct {
	dataDir string
	json    bool
	timeout time.Duration
	stdin   io.Reader
	stdout  io.Writer
}

// usageError marks command-line mistakes (exit 2).
type usageError struct{ error }

// Main runs meshctl and returns its exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	o := &options{stdin: stdin, stdout: stdout}
	root := newRoot(o)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "meshctl: %v\n", userError(err))
	var ue usageError
	var ne noDaemonError
	switch {
	case errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &ne):
		return exitNoDaemon
	case strings.HasPrefix(err.Error(), "unknown command"):
		// cobra's own error for a command that does not exist
		return exitUsage
	}
	return exitError
}

func newRoot(o *options) *cobra.Command {
	root := &cobra.Command{
		Use:   "meshctl",
		Short: "Control a running meshd node",
		Long: `meshctl talks to a running meshd over the JSON-RPC unix socket in its data
directory (<data-dir>/api.sock). Use the same --data-dir (or MESHD_DATA_DIR)
as the daemon.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	def := os.Getenv("MESHD_DATA_DIR")
	if def == "" {
		def = rpcapi.DefaultDataDir()
	}
	root.PersistentFlags().StringVar(&o.dataDir, "data-dir", def, "the daemon's data directory (env MESHD_DATA_DIR)")
	root.PersistentFlags().BoolVar(&o.json, "json", false, "print JSON instead of text")
	root.PersistentFlags().DurationVar(&o.timeout, "timeout", 30*time.Second, "give up after this long")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(cmdStatus(o), cmdPeers(o), cmdConnect(o), cmdRoutes(o), cmdSend(o), cmdInbox(o), cmdAck(o), cmdWatch(o), cmdChannel(o))
	root.AddCommand(cmdLinks(o))
	root.AddCommand(cmdWait(o), cmdVersion(o))
	addToolCommands(root, o)
	addHelp(root)
	return root
}

type noDaemonError struct{ error }

// usageArgs makes an argument-count error a usage error (exit 2).
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}

// dial connects to the daemon of o.dataDir.
func (o *options) dial(ctx context.Context) (*rpcapi.Client, error) {
	c, err := rpcapi.DialDataDir(ctx, o.dataDir)
	switch {
	case err == nil:
		return c, nil
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ECONNREFUSED):
		// No socket, or nobody behind it: meshd is not running here.
		return nil, noDaemonError{fmt.Errorf("cannot reach meshd: %v (start it with: meshd --data-dir %s)", err, o.dataDir)}
	case errors.Is(err, fs.ErrPermission):
		return nil, fmt.Errorf("%v (the socket belongs to the user meshd runs as; run meshctl as that user)", err)
	}
	return nil, err
}

// withClient runs f with a connected client and a deadline.
func (o *options) withClient(cmd *cobra.Command, f func(ctx context.Context, c *rpcapi.Client) error) error {
	ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
	defer cancel()
	c, err := o.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	return f(ctx, c)
}

func (o *options) printJSON(v any) error {
	enc := json.NewEncoder(o.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printJSONLine prints v as one line of JSON (for streams).
func (o *options) printJSONLine(v any) error { return json.NewEncoder(o.stdout).Encode(v) }

func cmdStatus(o *options) *cobra.Command {
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the node's address, fingerprint, peer ID, listen addresses and counts",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.withReadyClient(cmd, wait, func(ctx context.Context, c *rpcapi.Client, info rpcapi.NodeInfo) error {
				if o.json {
					return o.printJSON(info)
				}
				w := tabwriter.NewWriter(o.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintf(w, "address:\t%s\n", info.Address)
				fmt.Fprintf(w, "fingerprint:\t%s\n", info.Fingerprint)
				fmt.Fprintf(w, "peer id:\t%s\n", info.PeerID)
				for i, a := range info.ListenAddrs {
					label := ""
					if i == 0 {
						label = "listening:"
					}
					fmt.Fprintf(w, "%s\t%s\n", label, a)
				}
				if info.TCPListen != "" {
					fmt.Fprintf(w, "tcp links on:\t%s\n", info.TCPListen)
				}
				fmt.Fprintf(w, "version:\t%s\n", info.Version)
				fmt.Fprintf(w, "up since:\t%s\n", stamp(info.Started))
				fmt.Fprintf(w, "peers:\t%d\n", info.Peers)
				fmt.Fprintf(w, "routes:\t%d\n", info.Routes)
				fmt.Fprintf(w, "custody:\t%d\n", info.Custody)
				fmt.Fprintf(w, "inbox:\t%d\n", info.Inbox)
				if info.DHTMode != "" {
					fmt.Fprintf(w, "dht:\t%s\n", info.DHTMode)
				}
				if info.Reachability != "" {
					fmt.Fprintf(w, "reachability:\t%s\n", info.Reachability)
				}
				return w.Flush()
			})
		},
	}
	addWaitFlag(cmd, &wait)
	return cmd
}

func cmdPeers(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "peers",
		Short: "List connected peers",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.withClient(cmd, func(ctx context.Context, c *rpcapi.Client) error {
				peers, err := c.Peers(ctx)
				if err != nil {
					return err
				}
				if o.json {
					return o.printJSON(peers)
				}
				if len(peers) == 0 {
					fmt.Fprintln(o.stdout, "no peers")
					return nil
				}
				names := contactsOf(ctx, c)
				w := tabwriter.NewWriter(o.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "PEER ID\tMESH ADDRESS\tLINK\tDIRECTION\tADDRESS")
				for _, p := range peers {
					addr := ""
					if len(p.Addrs) > 0 {
						addr = p.Addrs[0]
					}
					mesh := label(names, p.Address)
					if mesh == "" {
						mesh = "-"
					}
					fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\n", p.PeerID, mesh, p.Link, p.Direction, addr)
				}
				return w.Flush()
			})
		},
	}
}

func cmdConnect(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "connect MULTIADDR",
		Short: "Connect to a peer, e.g. /ip4/127.0.0.1/tcp/7720/p2p/12D3Koo...",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withClient(cmd, func(ctx context.Context, c *rpcapi.Client) error {
				p, err := c.Connect(ctx, args[0])
				if err != nil {
					return err
				}
				if o.json {
					return o.printJSON(p)
				}
				if p.NoLink != "" {
					return fmt.Errorf("connected to %s, but no meshd link formed: %s", p.PeerID, strings.TrimPrefix(p.NoLink, "p2p: "))
				}
				fmt.Fprintf(o.stdout, "connected to %s: meshd link up with %s\n", p.PeerID, p.Address)
				return nil
			})
		},
	}
}

func cmdRoutes(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "routes",
		Short: "Show the routing table",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.withClient(cmd, func(ctx context.Context, c *rpcapi.Client) error {
				routes, err := c.Routes(ctx)
				if err != nil {
					return err
				}
				if o.json {
					return o.printJSON(routes)
				}
				if len(routes) == 0 {
					fmt.Fprintln(o.stdout, "no routes")
					return nil
				}
				w := tabwriter.NewWriter(o.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "DESTINATION\tNEXT HOP\tLINK\tHOPS\tMETRIC\tSOURCE\tEXPIRES")
				for _, r := range routes {
					fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%d\t%s\t%s\n", r.Dest, r.NextHop, r.Link, r.Hops, r.Metric, r.Source, stamp(r.Expires))
				}
				return w.Flush()
			})
		},
	}
}

func cmdSend(o *options) *cobra.Command {
	var ttl time.Duration
	var sealed bool
	cmd := &cobra.Command{
		Use:   "send ADDRESS [TEXT]",
		Short: "Send a message; without TEXT (or with -) it is read from standard input",
		Long: `send hands a message for ADDRESS (32 hex characters) to meshd, which routes
it, or keeps it in custody until a route appears or its lifetime ends.

Without TEXT, or with -, the message is read from standard input (at most
64 KiB): UTF-8 text is sent as text with one trailing newline removed (what
echo and a heredoc add), anything else as binary data, unchanged.`,
		Example: `  meshctl send 0123456789abcdef0123456789abcdef "hello"
  echo "hello" | meshctl send 0123456789abcdef0123456789abcdef
  meshctl send --ttl 24h --sealed-sender 0123456789abcdef0123456789abcdef - < note.txt`,
		Args: usageArgs(cobra.RangeArgs(1, 2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			p := rpcapi.SendParams{To: args[0], TTL: int64(ttl / time.Second), SealedSender: sealed}
			if err := checkTTL(ttl); err != nil {
				return err
			}
			if len(args) == 2 && args[1] != "-" {
				p.Text = args[1]
			} else {
				b, err := io.ReadAll(io.LimitReader(o.stdin, 64<<10+1))
				if err != nil {
					return fmt.Errorf("reading standard input: %w", err)
				}
				if len(b) > 64<<10 {
					return usageError{errors.New("message on standard input is larger than 64 KiB")}
				}
				p.Text, p.Payload = stdinMessage(b)
			}
			if p.Text == "" && len(p.Payload) == 0 {
				return usageError{errors.New("the message is empty")}
			}
			return o.withClient(cmd, func(ctx context.Context, c *rpcapi.Client) error {
				to, err := resolve(ctx, c, p.To)
				if err != nil {
					return err
				}
				p.To = to
				res, err := c.Send(ctx, p)
				if err != nil {
					return err
				}
				if res.Warning != "" {
					fmt.Fprintf(cmd.ErrOrStderr(), "meshctl: warning: %s\n", res.Warning)
				}
				if o.json {
					return o.printJSON(res)
				}
				fmt.Fprintf(o.stdout, "%s %s\n", res.ID, res.Status)
				if res.Status == "custody" || res.Status == "awaiting-key" {
					fmt.Fprintf(o.stdout, "  %s (until %s)\n", res.Detail, stamp(res.Expires))
				}
				return nil
			})
		},
	}
	cmd.Flags().DurationVar(&ttl, "ttl", 0, "message lifetime, 1s to 720h, e.g. 24h (default: the daemon's)")
	cmd.Flags().BoolVar(&sealed, "sealed-sender", false, "hide the sender from every node but the recipient")
	return cmd
}

func cmdInbox(o *options) *cobra.Command {
	var after uint64
	var limit int
	var ack bool
	cmd := &cobra.Command{
		Use:   "inbox",
		Short: "List received messages (and with --ack remove them)",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 1 || limit > maxInboxLimit {
				return usageError{fmt.Errorf("--limit %d: want 1 to %d", limit, maxInboxLimit)}
			}
			return o.withClient(cmd, func(ctx context.Context, c *rpcapi.Client) error {
				page, err := c.Inbox(ctx, rpcapi.InboxParams{After: after, Limit: limit})
				if err != nil {
					return err
				}
				if o.json {
					if err := o.printJSON(page); err != nil {
						return err
					}
				} else {
					if len(page.Messages) == 0 {
						fmt.Fprintln(o.stdout, "inbox empty")
					}
					names := contactsOf(ctx, c)
					for _, m := range page.Messages {
						m.From = label(names, m.From)
						printMessage(o.stdout, &m)
					}
					if page.More {
						fmt.Fprintf(o.stdout, "more: meshctl inbox --after %d\n", page.Next)
					}
				}
				if ack && len(page.Messages) > 0 {
					seqs := make([]uint64, len(page.Messages))
					for i, m := range page.Messages {
						seqs[i] = m.Seq
					}
					if _, err := c.Ack(ctx, seqs); err != nil {
						return err
					}
				}
				return nil
			})
		},
	}
	cmd.Flags().Uint64Var(&after, "after", 0, "show messages after this sequence number")
	cmd.Flags().IntVar(&limit, "limit", 100, "at most this many messages (1 to 1000)")
	cmd.Flags().BoolVar(&ack, "ack", false, "remove the listed messages from the inbox")
	return cmd
}

func printMessage(w io.Writer, m *rpcapi.Message) {
	body := strings.TrimSuffix(m.Text, "\n")
	if m.Text == "" && len(m.Payload) > 0 {
		body = fmt.Sprintf("(%d bytes of binary data; use --json)", len(m.Payload))
	}
	fmt.Fprintf(w, "#%d %s from %s: %s\n", m.Seq, stamp(m.Received), m.From, displayText(body))
}

func cmdAck(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "ack SEQ...",
		Short: "Remove messages from the inbox by sequence number",
		Args:  usageArgs(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			seqs := make([]uint64, len(args))
			for i, a := range args {
				v, err := strconv.ParseUint(strings.TrimPrefix(a, "#"), 10, 64)
				if err != nil {
					return usageError{fmt.Errorf("%q is not a sequence number", a)}
				}
				seqs[i] = v
			}
			return o.withClient(cmd, func(ctx context.Context, c *rpcapi.Client) error {
				res, err := c.Ack(ctx, seqs)
				if err != nil {
					return err
				}
				if o.json {
					if err := o.printJSON(res); err != nil {
						return err
					}
				} else {
					fmt.Fprintf(o.stdout, "%d messages left in the inbox\n", res.Remaining)
				}
				return unknownSeqs(res.Unknown)
			})
		},
	}
}

func cmdWatch(o *options) *cobra.Command {
	var count int
	cmd := &cobra.Command{
		Use:   "watch",
		Short: "Print node events (messages, receipts, peers) as they happen",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			dctx, cancel := context.WithTimeout(ctx, o.timeout)
			c, err := o.dial(dctx)
			cancel()
			if err != nil {
				return err
			}
			defer c.Close()
			names := contactsOf(ctx, c)
			events, err := c.Subscribe(ctx)
			if err != nil {
				return err
			}
			var last uint64
			seen := 0
			for {
				select {
				case <-ctx.Done():
					return nil
				case ev, ok := <-events:
					if !ok {
						if ctx.Err() != nil {
							return nil
						}
						return errors.New("meshd closed the connection")
					}
					if last != 0 && ev.Seq > last+1 && !o.json {
						fmt.Fprintf(o.stdout, "(missed %d events; run meshctl inbox to catch up)\n", ev.Seq-last-1)
					}
					last = ev.Seq
					if o.json {
						if err := json.NewEncoder(o.stdout).Encode(ev); err != nil {
							return err
						}
					} else {
						labelEvent(names, &ev)
						printEvent(o.stdout, &ev)
					}
					seen++
					if count > 0 && seen >= count {
						return nil
					}
				}
			}
		},
	}
	cmd.Flags().IntVar(&count, "count", 0, "exit after this many events (0: run until interrupted)")
	return cmd
}

func printEvent(w io.Writer, ev *rpcapi.Event) {
	switch {
	case ev.Message != nil:
		printMessage(w, ev.Message)
	case ev.ChannelMessage != nil:
		printChannelMessage(w, ev.ChannelMessage)
	case ev.Peer != nil && ev.Peer.Kind != "":
		// A link that is not libp2p (TCP, LoRa) has no peer ID.
		fmt.Fprintf(w, "%s %s %s %s\n", ev.Kind, ev.Peer.Kind, strings.Join(ev.Peer.Addrs, ","), ev.Peer.Address)
	case ev.Peer != nil:
		fmt.Fprintf(w, "%s %s %s\n", ev.Kind, ev.Peer.PeerID, ev.Peer.Address)
	default:
		fmt.Fprintf(w, "%s %s\n", ev.Kind, ev.ID)
	}
}
