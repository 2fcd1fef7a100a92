package main

import (
	"context"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"meshd.dev/meshd/rpcapi"
)

// cmdFollow is "fapp follow REGION..." (or unfollow).
func cmdFollow(o *options, follow bool) *cobra.Command {
	use, de, en := "follow", "PLZ-Regionen folgen (zweistellig, z. B. 10): Suchen darin bleiben lokal", "Follow PLZ regions (2 digits, e.g. 10): searches in them stay local"
	if !follow {
		use, de, en = "unfollow", "PLZ-Regionen nicht mehr folgen", "Stop following PLZ regions"
	}
	return &cobra.Command{
		Use:   use + " REGION...",
		Short: o.t(de, en),
		Args:  usageArgs(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withClient(cmd, func(ctx context.Context, c *rpcapi.Client) error {
				var r rpcapi.FAPPRegions
				var err error
				if follow {
					r, err = c.FAPPFollow(ctx, args...)
				} else {
					r, err = c.FAPPUnfollow(ctx, args...)
				}
				if err != nil {
					return err
				}
				return o.printRegions(r)
			})
		},
	}
}

func cmdRegions(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "regions",
		Short: o.t("Gefolgte Regionen und ihre Ankündigungen anzeigen", "Show followed regions and their announces"),
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.withClient(cmd, func(ctx context.Context, c *rpcapi.Client) error {
				r, err := c.FAPPRegions(ctx)
				if err != nil {
					return err
				}
				return o.printRegions(r)
			})
		},
	}
}

func (o *options) printRegions(r rpcapi.FAPPRegions) error {
	if o.json {
		return o.printJSON(r)
	}
	if r.Relay {
		fmt.Fprintln(o.stdout, o.t("FAPP-Relay: folgt allen Regionen", "FAPP relay: follows every region"))
	}
	if len(r.Followed) == 0 {
		fmt.Fprintln(o.stdout, o.t("keine Regionen gefolgt", "no regions followed"))
		return nil
	}
	rows := make([][]string, len(r.Followed))
	for i, x := range r.Followed {
		rows[i] = []string{x.Region, strconv.Itoa(x.Announces), strconv.Itoa(x.Slots)}
	}
	return table(o.stdout, o.t("REGION\tANKÜNDIGUNGEN\tFREIE TERMINE", "REGION\tANNOUNCES\tFREE SLOTS"), rows)
}
