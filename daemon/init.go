package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ConfigTemplate returns a commented configuration file holding the
// embedded defaults, as `meshd init` writes it.
func ConfigTemplate() string {
	d := DefaultConfig()
	q := func(ss []string) string {
		parts := make([]string, len(ss))
		for i, s := range ss {
			parts[i] = strconv.Quote(s)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	dur := func(v Duration) string { return strconv.Quote(time.Duration(v).String()) }
	return withGuardTemplate(d, fmt.Sprintf(`# meshd configuration. Precedence: this file < MESHD_* environment variables
# < command-line flags. Unknown keys are errors. docs/operations.md explains
# every setting.

# data_dir holds the identity and host keys, the database, the API socket and token.
# It is normally chosen with --data-dir or MESHD_DATA_DIR (which win over
# this setting), because this file lives inside it; set here, it moves the
# data directory away from where this file is.
# data_dir = %q

# libp2p listen addresses (TCP and QUIC, IPv4 and IPv6). Use
# "/ip4/127.0.0.1/tcp/0" for a node reachable only from this machine.
listen = %s

# HTTP and WebSocket API, loopback only; requests need the bearer token in
# <data_dir>/api.token. "off" disables it; the unix socket
# <data_dir>/api.sock is always served.
api = %q

# Prometheus metrics at http://<metrics>/metrics, e.g. "127.0.0.1:7722".
# Empty: off. A non-loopback address needs metrics_public = true, and then
# every scrape needs the API token (bearer token or basic-auth password).
metrics = ""

# DHT bootstrap peers: multiaddrs ending in /p2p/<peer ID>.
bootstrap = []

# Find and connect meshd nodes on the local network (multicast DNS).
mdns = %t

# Relay mode, for hosts with a public address: DHT server, circuit relay
# service for nodes behind NAT, mailbox custody for offline peers.
relay = %t

# DHT mode: "auto" (server once reachable from the internet), "client" or
# "server".
dht_mode = %q

[log]
  # debug, info, warn or error
  level = %q
  # text or json
  format = %q

[limits]
  # libp2p connection manager: above conn_high connections, trim to conn_low.
  conn_low = %d
  conn_high = %d
  # How long a clean shutdown (SIGINT, SIGTERM) may take.
  shutdown_timeout = %s
  # The Go runtime's soft memory limit in bytes; 0 means custody_max_bytes
  # plus 64 MiB. The GOMEMLIMIT environment variable takes precedence.
  memory_limit = %d
  # Bytes of frames held for all links together (queued for them, or in
  # their send queues); past it the links that hold the most, slow
  # readers, lose frames first (at least 1 MiB).
  queue_budget = %d

[routing]
  # How often the node announces itself to the mesh.
  announce_interval = %s
  # Default lifetime of sent messages (at most 720h).
  message_ttl = %s
  # Bytes of messages kept in custody for unreachable recipients.
  custody_max_bytes = %d
  # Unicast over route sessions; false sends every message as a sealed
  # envelope (slower, 1.1 KB more per message).
  sessions = %v

[channels]
  # Latest messages kept per joined channel for channel.history (1 to 10000).
  history_size = %d

[fapp]
  # 2-digit PLZ regions whose slot announces this node follows, e.g. ["10", "12"].
  regions = []
  # FAPP relay: follow every region and answer other nodes' remote queries.
  relay = %t
  # Hex keys of the credential issuers this node trusts.
  trusted_issuers = []
  # Slot status changes (reservations) go out at epoch boundaries only.
  epoch = %s
[tcp]
  # Plain TCP links (authenticated, encrypted), for routers and tunnels.
  # Accept them on this host:port, e.g. "0.0.0.0:7723"; empty: none.
  listen = ""
  # Keep links to these: "HOST:PORT", or "ADDRESS@HOST:PORT" to accept only
  # the node with that mesh address there.
  peers = []

[store]
  # How often badger's value log is garbage-collected and the free disk
  # space checked.
  gc_interval = %s
  # Free disk space (bytes) below which the node takes no new custody:
  # msg.send fails with code -32010, envelopes from neighbours are dropped
  # until space returns (at least 32 MiB).
  min_free = %d
`, d.DataDir, q(d.Listen), d.API, d.MDNS, d.Relay, d.DHTMode, d.Log.Level, d.Log.Format,
		d.Limits.ConnLow, d.Limits.ConnHigh, dur(d.Limits.ShutdownTimeout), d.Limits.MemoryLimit, d.Limits.QueueBudget,
		dur(d.Routing.AnnounceInterval), dur(d.Routing.MessageTTL), d.Routing.CustodyMaxBytes, d.Routing.Sessions, d.Channels.HistorySize,
		d.FAPP.Relay, dur(d.FAPP.Epoch), dur(d.Store.GCInterval), d.Store.MinFree))
}

// ErrExists is returned by Init when the configuration file exists.
var ErrExists = errors.New("already exists")

// Init creates the data directory (mode 0700) and writes the commented
// default configuration into it. It refuses to overwrite a file.
func Init(dataDir string) (string, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", fmt.Errorf("creating data directory: %w", err)
	}
	path := filepath.Join(dataDir, ConfigFileName)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return path, fmt.Errorf("%s %w; remove it first to start from the defaults", path, ErrExists)
	}
	if err != nil {
		return "", err
	}
	if _, err := f.WriteString(ConfigTemplate()); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return "", err
	}
	return path, f.Close()
}
