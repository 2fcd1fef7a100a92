package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"meshd.dev/meshd/rpcapi"
)

// cmdLinks lists the node's links of every kind, like Reticulum's
// rnstatus: what each link is, to whom, how busy, and on radios the
// signal and the airtime left this hour.
func cmdLinks(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "links",
		Short: "List links of every kind (libp2p, TCP, LoRa) with traffic, queues, signal and airtime",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.withClient(cmd, func(ctx context.Context, c *rpcapi.Client) error {
				links, err := c.Links(ctx)
				if err != nil {
					return err
				}
				if o.json {
					return o.printJSON(links)
				}
				if len(links) == 0 {
					fmt.Fprintln(o.stdout, "no links")
					return nil
				}
				w := tabwriter.NewWriter(o.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "LINK\tKIND\tSTATE\tPEER OR MODEM\tMESH ADDRESS\tDIR\tIN\tOUT\tQUEUE\tSIGNAL\tAIRTIME USED/LEFT (HOUR)")
				var notes []string
				for _, l := range links {
					if l.ID == 0 { // not up: a configured peer or modem being retried
						fmt.Fprintf(w, "-\t%s\t%s\t%s\t-\t-\t-\t-\t-\t-\t-\n", l.Kind, l.State, l.Name)
						notes = append(notes, waitingNote(l, time.Now()))
						continue
					}
					fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
						l.ID, l.Kind, l.State, l.Name, dash(l.Peer), dash(l.Direction),
						traffic(l.FramesIn, l.BytesIn), traffic(l.FramesOut, l.BytesOut),
						fmt.Sprintf("%d (%s)", l.QueueFrames, size(uint64(l.QueueBytes))), radioSignal(l.Radio), airtime(l.Radio))
				}
				if err := w.Flush(); err != nil {
					return err
				}
				for _, n := range notes {
					fmt.Fprintln(o.stdout, n)
				}
				return nil
			})
		},
	}
}

// waitingNote says why a link is not up and when it is tried again.
func waitingNote(l rpcapi.Link, now time.Time) string {
	s := fmt.Sprintf("%s %s: %s", l.Kind, l.Name, l.State)
	if l.Retry != nil {
		s += fmt.Sprintf(", next attempt in %v", max(l.Retry.Sub(now), 0).Round(time.Second))
	}
	if l.Error != "" {
		s += ": " + l.Error
	}
	return s
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// traffic is "frames (bytes)".
func traffic(frames, bytes uint64) string { return fmt.Sprintf("%d (%s)", frames, size(bytes)) }

func size(b uint64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%d B", b)
}

func radioSignal(r *rpcapi.LinkRadio) string {
	if r == nil || r.RSSI == nil || r.SNR == nil {
		return "-"
	}
	return fmt.Sprintf("%.0f dBm / %.1f dB", *r.RSSI, *r.SNR)
}

func airtime(r *rpcapi.LinkRadio) string {
	if r == nil {
		return "-"
	}
	used := time.Duration(r.AirtimeUsedMS) * time.Millisecond
	left := time.Duration(r.AirtimeLeftMS) * time.Millisecond
	s := fmt.Sprintf("%v / %v", used.Round(100*time.Millisecond), left.Round(100*time.Millisecond))
	if r.DutyCycle > 0 {
		s += fmt.Sprintf(" (%g%% duty cycle)", r.DutyCycle*100)
	}
	return s
}
