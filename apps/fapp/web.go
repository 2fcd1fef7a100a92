package main

import (
	"context"
	"fmt"
	"os/exec"
	"runtime"

	"github.com/spf13/cobra"

	"meshd.dev/meshd/rpcapi"
)

// cmdWeb prints (and with --open opens) a one-time login link for the web
// page the daemon serves, so a person never handles the API token.
func cmdWeb(o *options) *cobra.Command {
	var open bool
	cmd := &cobra.Command{
		Use: "web",
		Short: o.t("Anmeldelink für die FAPP-Webseite des Daemons ausgeben (einmal gültig, 2 Minuten)",
			"Print a login link for the daemon's FAPP web page (works once, for 2 minutes)"),
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.withClient(cmd, func(ctx context.Context, c *rpcapi.Client) error {
				var res rpcapi.WebLoginResult
				if err := c.Call(ctx, rpcapi.MethodWebLogin, nil, &res); err != nil {
					return err
				}
				if o.json {
					return o.printJSON(res)
				}
				fmt.Fprintf(o.stdout, o.t("Im Browser öffnen (einmal gültig, bis %s):\n%s\n", "Open in a browser (works once, until %s):\n%s\n"),
					res.Expires.In(berlin).Format("15:04:05"), res.URL)
				if open {
					openBrowser(res.URL)
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&open, "open", false, o.t("den Link gleich im Browser öffnen", "open the link in the browser"))
	return cmd
}

// openBrowser starts the desktop's browser; failing is fine, the link is
// printed.
func openBrowser(url string) {
	name := "xdg-open"
	if runtime.GOOS == "darwin" {
		name = "open"
	}
	if cmd := exec.Command(name, url); cmd.Start() == nil {
		go cmd.Wait()
	}
}
