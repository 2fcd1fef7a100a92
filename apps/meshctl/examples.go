package main

import (
	"strings"

	"github.com/spf13/cobra"
)

// exitCodes is the exit code table, in the root command's help and in
// docs/operations.md.
const exitCodes = `Exit codes:
  0  success
  1  meshd answered with an error, or I/O failed
  2  wrong command line (unknown command or flag, bad argument)
  3  meshd is not running on that data directory (or did not become ready
     within --wait / wait --for)`

// examples are the Example sections of the commands that do not set their
// own, by command path. TestEveryCommandHasExamples requires one for every
// command, so a new command without examples fails the tests.
var examples = map[string]string{
	"meshctl contacts": `  meshctl contacts add alice 0123456789abcdef0123456789abcdef
  meshctl contacts list
  meshctl send alice "hello"`,
	"meshctl log": `  meshctl log level
  meshctl log level debug`,
	"meshctl msg": `  meshctl msg status 3f2a0c9e5b7d4e1a8c6b0d2f4e6a8c0b
  meshctl msg cancel 3f2a0c9e5b7d4e1a8c6b0d2f4e6a8c0b`,
	"meshctl stats": `  meshctl stats bw
  meshctl stats bw --interval 5s`,
	"meshctl": `  meshctl status
  meshctl --data-dir /var/lib/meshd peers
  MESHD_DATA_DIR=/tmp/a meshctl send 0123456789abcdef0123456789abcdef "hello"`,
	"meshctl status": `  meshctl status
  meshctl status --wait          # wait up to a minute for meshd to answer
  meshctl status --wait=10s --json | jq -r .address`,
	"meshctl peers": `  meshctl peers
  meshctl peers --json | jq -r '.[].peer_id'`,
	"meshctl connect": `  meshctl connect /ip4/192.0.2.7/tcp/7720/p2p/12D3KooWExample
  meshctl connect "$(meshctl --data-dir /tmp/b status --json | jq -r '.listen_addrs[0]')"`,
	"meshctl routes": `  meshctl routes
  meshctl routes --json`,
	"meshctl inbox": `  meshctl inbox
  meshctl inbox --after 100 --limit 20
  meshctl inbox --ack            # list, then remove what was listed`,
	"meshctl ack": `  meshctl ack 3
  meshctl ack 1 2 '#5'`,
	"meshctl watch": `  meshctl watch
  meshctl watch --count 1 --json`,
	"meshctl links": `  meshctl links
  meshctl links --json`,
	"meshctl channel": `  meshctl channel create ops
  meshctl channel join "$(cat share.txt)"
  meshctl channel send --sign ops "hello channel"`,
	"meshctl channel create": `  meshctl channel create ops`,
	"meshctl channel join": `  meshctl channel join meshd-channel:ops:<key>
  meshctl channel join - < share.txt`,
	"meshctl channel share": `  meshctl channel share ops > share.txt`,
	"meshctl channel leave": `  meshctl channel leave ops`,
	"meshctl channel list": `  meshctl channel list
  meshctl channel list --json`,
	"meshctl channel send": `  meshctl channel send ops "hello channel"
  echo "signed hello" | meshctl channel send --sign ops`,
	"meshctl channel history": `  meshctl channel history ops
  meshctl channel history ops --after 10 --limit 5 --json`,
	"meshctl channel watch": `  meshctl channel watch
  meshctl channel watch ops --count 1`,
	"meshctl completion": `  meshctl completion bash > /etc/bash_completion.d/meshctl
  meshctl completion zsh > "${fpath[1]}/_meshctl"`,
}

// addHelp puts the examples and the exit codes into the help of root's
// command tree.
func addHelp(root *cobra.Command) {
	root.Long = strings.TrimRight(root.Long, "\n") + "\n\n" + exitCodes
	root.InitDefaultCompletionCmd()
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Example == "" {
			c.Example = examples[c.CommandPath()]
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}
