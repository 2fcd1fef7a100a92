package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"meshd.dev/meshd/rpcapi"
)

// cmdChannel is "meshctl channel ...": broadcast channels.
func cmdChannel(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "channel",
		Short: "Broadcast channels: create, join, share, leave, list, send, history, watch",
		Long: `A broadcast channel is a shared secret key: every node that holds it reads
and writes the channel. Create one on a node, print its share string with
"channel share", and join it on the other nodes with "channel join". A channel
is named by its ID (8 hex characters) or its name.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageError{errors.New("channel needs a subcommand: create, join, share, leave, list, send, history or watch")}
		},
	}
	cmd.AddCommand(cmdChannelCreate(o), cmdChannelJoin(o), cmdChannelShare(o), cmdChannelLeave(o),
		cmdChannelList(o), cmdChannelSend(o), cmdChannelHistory(o), cmdChannelWatch(o))
	return cmd
}

func (o *options) printChannel(verb string, c rpcapi.Channel) error {
	if o.json {
		return o.printJSON(c)
	}
	fmt.Fprintf(o.stdout, "%s %s %s\n", verb, c.ID, c.Name)
	return nil
}

func cmdChannelCreate(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "create NAME",
		Short: "Create a channel with a fresh random key and join it",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := rpcapi.CheckChannelName(args[0]); err != nil {
				return usageError{err}
			}
			return o.withClient(cmd, func(ctx context.Context, c *rpcapi.Client) error {
				ch, err := c.ChannelCreate(ctx, args[0])
				if err != nil {
					return err
				}
				return o.printChannel("created", ch)
			})
		},
	}
}

func cmdChannelJoin(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "join SHARE",
		Short: "Join a channel from its share string (meshd-channel:<name>:<key>); - reads it from standard input",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			share := args[0]
			if share == "-" {
				b, err := io.ReadAll(io.LimitReader(o.stdin, 4096))
				if err != nil {
					return fmt.Errorf("reading standard input: %w", err)
				}
				share = string(b)
			}
			if _, _, err := rpcapi.ParseChannelShare(share); err != nil {
				return usageError{err}
			}
			return o.withClient(cmd, func(ctx context.Context, c *rpcapi.Client) error {
				ch, err := c.ChannelJoin(ctx, share)
				if err != nil {
					return err
				}
				return o.printChannel("joined", ch)
			})
		},
	}
}

func cmdChannelShare(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "share CHANNEL",
		Short: "Print a channel's share string (it holds the channel's secret key)",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withClient(cmd, func(ctx context.Context, c *rpcapi.Client) error {
				s, err := c.ChannelShare(ctx, args[0])
				if err != nil {
					return err
				}
				if o.json {
					return o.printJSON(s)
				}
				fmt.Fprintln(o.stdout, s.Share)
				return nil
			})
		},
	}
}

func cmdChannelLeave(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "leave CHANNEL",
		Short: "Leave a channel: delivery stops and its key and history are deleted",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withClient(cmd, func(ctx context.Context, c *rpcapi.Client) error {
				ch, err := c.ChannelLeave(ctx, args[0])
				if err != nil {
					return err
				}
				return o.printChannel("left", ch)
			})
		},
	}
}

func cmdChannelList(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the joined channels",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.withClient(cmd, func(ctx context.Context, c *rpcapi.Client) error {
				list, err := c.ChannelList(ctx)
				if err != nil {
					return err
				}
				if o.json {
					return o.printJSON(list)
				}
				if len(list) == 0 {
					fmt.Fprintln(o.stdout, "no channels")
					return nil
				}
				w := tabwriter.NewWriter(o.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "ID\tNAME\tJOINED")
				for _, ch := range list {
					fmt.Fprintf(w, "%s\t%s\t%s\n", ch.ID, ch.Name, stamp(ch.Joined))
				}
				return w.Flush()
			})
		},
	}
}

func cmdChannelSend(o *options) *cobra.Command {
	var signed bool
	cmd := &cobra.Command{
		Use:   "send CHANNEL [TEXT]",
		Short: "Publish a message on a channel; without TEXT (or with -) it is read from standard input",
		Long: `send publishes TEXT on a joined channel. Without TEXT, or with -, the message
is read from standard input: UTF-8 text is sent as text with one trailing
newline removed, anything else as binary data, unchanged.`,
		Args: usageArgs(cobra.RangeArgs(1, 2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			p := rpcapi.ChannelPublishParams{Channel: args[0], Signed: signed}
			if len(args) == 2 && args[1] != "-" {
				p.Text = args[1]
			} else {
				b, err := io.ReadAll(io.LimitReader(o.stdin, rpcapi.MaxChannelBody+1))
				if err != nil {
					return fmt.Errorf("reading standard input: %w", err)
				}
				if len(b) > rpcapi.MaxChannelBody {
					return usageError{fmt.Errorf("message on standard input is larger than %d bytes", rpcapi.MaxChannelBody)}
				}
				p.Text, p.Payload = stdinMessage(b)
			}
			return o.withClient(cmd, func(ctx context.Context, c *rpcapi.Client) error {
				res, err := c.ChannelPublish(ctx, p)
				if err != nil {
					return err
				}
				if o.json {
					return o.printJSON(res)
				}
				fmt.Fprintf(o.stdout, "sent #%d on %s\n", res.Seq, res.Channel)
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&signed, "sign", false, "sign the message so members see (and can verify) who sent it")
	return cmd
}

func cmdChannelHistory(o *options) *cobra.Command {
	var after uint64
	var limit int
	cmd := &cobra.Command{
		Use:   "history CHANNEL",
		Short: "List the latest messages this node received (or sent) on a channel",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withClient(cmd, func(ctx context.Context, c *rpcapi.Client) error {
				page, err := c.ChannelHistory(ctx, rpcapi.ChannelHistoryParams{Channel: args[0], After: after, Limit: limit})
				if err != nil {
					return err
				}
				if o.json {
					return o.printJSON(page)
				}
				if len(page.Messages) == 0 {
					fmt.Fprintln(o.stdout, "no messages")
				}
				for _, m := range page.Messages {
					printChannelMessage(o.stdout, &m)
				}
				if page.More {
					fmt.Fprintf(o.stdout, "more: meshctl channel history %s --after %d\n", args[0], page.Next)
				}
				return nil
			})
		},
	}
	cmd.Flags().Uint64Var(&after, "after", 0, "show messages after this sequence number")
	cmd.Flags().IntVar(&limit, "limit", 100, "at most this many messages (1 to 1000)")
	return cmd
}

func printChannelMessage(w io.Writer, m *rpcapi.ChannelMessage) {
	body := strings.TrimSuffix(m.Text, "\n")
	if m.Text == "" && len(m.Payload) > 0 {
		body = fmt.Sprintf("(%d bytes of binary data; use --json)", len(m.Payload))
	}
	from := "(unsigned)"
	switch {
	case m.Local:
		from = "me"
	case m.Signed:
		from = m.From
	}
	fmt.Fprintf(w, "#%d %s [%s] %s: %s\n", m.Seq, stamp(m.Received), m.ChannelName, from, displayText(body))
}

func cmdChannelWatch(o *options) *cobra.Command {
	var count int
	cmd := &cobra.Command{
		Use:   "watch [CHANNEL]",
		Short: "Print channel messages as they arrive (all joined channels, or one)",
		Args:  usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			dctx, cancel := context.WithTimeout(ctx, o.timeout)
			c, err := o.dial(dctx)
			if err != nil {
				cancel()
				return err
			}
			defer c.Close()
			want := ""
			if len(args) == 1 {
				// Resolve the name once, so the filter is by ID.
				s, err := c.ChannelShare(dctx, args[0])
				if err != nil {
					cancel()
					return err
				}
				want = s.Channel
			}
			events, err := c.Subscribe(dctx)
			cancel()
			if err != nil {
				return err
			}
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
					m := ev.ChannelMessage
					if m == nil || (want != "" && m.Channel != want) {
						continue
					}
					if o.json {
						if err := o.printJSONLine(m); err != nil {
							return err
						}
					} else {
						printChannelMessage(o.stdout, m)
					}
					seen++
					if count > 0 && seen >= count {
						return nil
					}
				}
			}
		},
	}
	cmd.Flags().IntVar(&count, "count", 0, "exit after this many messages (0: run until interrupted)")
	return cmd
}
