package daemon

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/multiformats/go-multiaddr"
	"github.com/pelletier/go-toml/v2"

	"meshd.dev/meshd/fapp"
	"meshd.dev/meshd/internal/tomlerr"
	"meshd.dev/meshd/rpcapi"
	"meshd.dev/meshd/transports/tcp"
)

// Default ports. 4001 is kubo's; meshd keeps clear of it so both can run on
// one machine.
const (
	DefaultP2PPort = 7720
	DefaultAPIAddr = "127.0.0.1:7721"
)

// ErrConfig marks a configuration problem: a bad file, variable or flag.
var ErrConfig = errors.New("configuration")

// Duration is a time.Duration written as "30m" or "1h30m" in TOML.
type Duration time.Duration

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("duration %q: want a number with a unit such as 90s, 30m or 168h", b)
	}
	*d = Duration(v)
	return nil
}

// Config is meshd's configuration. The zero value is not useful; start from
// DefaultConfig. Every field has a TOML key, a MESHD_ environment variable
// and (for the common ones) a flag; see docs/operations.md.
type Config struct {
	// DataDir holds the identity, the database, the API socket and token.
	DataDir string `toml:"data_dir"`
	// Listen are libp2p multiaddrs to listen on.
	Listen []string `toml:"listen"`
	// API is the HTTP/WebSocket API address; it must be a loopback
	// address. Empty turns the HTTP API off (the unix socket stays).
	API string `toml:"api"`
	// Metrics is the address of the Prometheus endpoint (/metrics), such as
	// "127.0.0.1:7722"; empty turns it off. A non-loopback address needs
	// MetricsPublic.
	Metrics string `toml:"metrics"`
	// MetricsPublic allows Metrics on an address other hosts can reach;
	// /metrics then asks for the API token (as a bearer token or as the
	// password of HTTP basic auth). Without it such an address is refused.
	MetricsPublic bool `toml:"metrics_public"`
	// Bootstrap are multiaddrs (with /p2p/) of DHT bootstrap peers, dialled
	// at start.
	Bootstrap []string `toml:"bootstrap"`
	// MDNS finds and connects meshd nodes on the local network.
	MDNS bool `toml:"mdns"`
	// SharePort lets meshd start although another process (another meshd)
	// already listens on one of its libp2p ports. libp2p binds with
	// SO_REUSEPORT, so without this check both would bind and dials would
	// reach either node at random.
	SharePort bool `toml:"share_port"`
	// Relay runs the node as a relay: DHT server, circuit relay service,
	// mailbox custody for offline peers.
	Relay bool `toml:"relay"`
	// RelayLimits bound the circuit relay service in relay mode.
	RelayLimits RelayLimitsConfig `toml:"relay_limits"`
	// DHTMode is "auto", "client" or "server".
	DHTMode string `toml:"dht_mode"`
	// Reachability is "auto", "private" (behind NAT: reserve a slot on a
	// circuit relay at once) or "public".
	Reachability string `toml:"reachability"`

	Log     LogConfig     `toml:"log"`
	Limits  LimitsConfig  `toml:"limits"`
	Routing RoutingConfig `toml:"routing"`
	// Channels configures broadcast channels.
	Channels ChannelsConfig `toml:"channels"`
	// FAPP configures appointment discovery (docs/fapp.md).
	FAPP FAPPConfig `toml:"fapp"`
	// TCP configures plain TCP links.
	TCP TCPConfig `toml:"tcp"`
	// Store configures the database's upkeep (upkeep.go).
	Store StoreConfig `toml:"store"`
	// Access says who may link (private mesh, allow and deny lists).
	Access AccessConfig `toml:"access"`
	// LoRa are the RNode-compatible LoRa modems, one [[lora]] section each
	// (see lora.go).
	LoRa []LoRaConfig `toml:"lora,omitempty"`
	// Mailbox names this node's mailbox relays (mailbox.go).
	Mailbox MailboxConfig `toml:"mailbox"`
}

// TCPConfig configures plain TCP links (transports/tcp): authenticated and
// encrypted links to other meshd nodes, without libp2p.
type TCPConfig struct {
	// Listen is the host:port to accept TCP links on; empty accepts none.
	Listen string `toml:"listen"`
	// Peers are dialled and kept up: "HOST:PORT", or "ADDRESS@HOST:PORT"
	// to accept only the node with that mesh address there.
	Peers []string `toml:"peers"`
}

// FAPPConfig configures FAPP in the daemon.
type FAPPConfig struct {
	// Regions are the 2-digit PLZ regions whose announces the node follows
	// (keeps in its index and answers local queries from). Apps may follow
	// more with fapp.follow.
	Regions []string `toml:"regions"`
	// Relay follows every region and answers other nodes' remote queries.
	Relay bool `toml:"relay"`
	// TrustedIssuers are the hex Ed25519 keys of credential issuers (a
	// chamber, a KV, a community registry) whose credentials this node
	// accepts.
	TrustedIssuers []string `toml:"trusted_issuers"`
	// Epoch is the batching interval of the node's slot status changes:
	// they are published at epoch boundaries only, so an announce's timing
	// does not tell when a reservation happened. The therapist's own edits
	// go out at once, a few per epoch (fappEarlyReleases).
	Epoch Duration `toml:"epoch"`
}

// DefaultFAPPEpoch is the default batching interval of own slot changes.
const DefaultFAPPEpoch = 10 * time.Minute

// ChannelsConfig configures broadcast channels.
type ChannelsConfig struct {
	// HistorySize is how many of the latest messages the node keeps per
	// joined channel (1 to MaxChannelHistory), for channel.history.
	HistorySize int `toml:"history_size"`
}

// Channel history bounds.
const (
	DefaultChannelHistory = 256
	MaxChannelHistory     = 10_000
)

// LogConfig configures logging.
type LogConfig struct {
	// Level is debug, info, warn or error.
	Level string `toml:"level"`
	// Format is text or json.
	Format string `toml:"format"`
}

// LimitsConfig bounds resources.
type LimitsConfig struct {
	// ConnLow and ConnHigh are the libp2p connection manager's watermarks:
	// above ConnHigh connections it trims down to ConnLow.
	ConnLow  int `toml:"conn_low"`
	ConnHigh int `toml:"conn_high"`
	// ShutdownTimeout bounds a clean shutdown.
	ShutdownTimeout Duration `toml:"shutdown_timeout"`
	// MemoryLimit is the Go runtime's soft memory limit in bytes (see
	// runtime/debug.SetMemoryLimit): the collector works harder as the heap
	// nears it, instead of letting the heap grow to twice what is live.
	// Zero means routing.custody_max_bytes + 64 MiB, which holds a full
	// custody store and the database's buffers. A GOMEMLIMIT environment
	// variable (for example GOMEMLIMIT=off) takes precedence.
	MemoryLimit int64 `toml:"memory_limit"`
	// QueueBudget bounds, in bytes, the frames the node holds for all its
	// links together: the routing engine's queues, the link send queues
	// it filled, and the messages sent that wait for a hop ack
	// (routing.Config.QueueBudget). Past it a link holds
	// no more than its share, and the links that hold the most (slow
	// readers) lose frames first; custody sends its messages again.
	QueueBudget int `toml:"queue_budget"`

	// What one peer may send (per libp2p peer and per TCP link; see
	// guard.go): PeerFrameRate frames per second with bursts of
	// PeerFrameBurst, and PeerByteRate bytes per second. A peer beyond
	// them is paced (its link's reader waits), not refused; a peer with
	// more than PeerStrikes refused frames (too large, of no known kind,
	// or refused by the engine as malformed or forged) within 10 seconds
	// is disconnected and refused for CoolDown.
	PeerFrameRate  float64  `toml:"peer_frame_rate"`
	PeerFrameBurst int      `toml:"peer_frame_burst"`
	PeerByteRate   int      `toml:"peer_byte_rate"`
	PeerStrikes    int      `toml:"peer_strikes"`
	CoolDown       Duration `toml:"cool_down"`
}

// StoreConfig configures the upkeep of the message store.
type StoreConfig struct {
	// GCInterval is how often the node runs badger's value log garbage
	// collection and checks the free disk space.
	GCInterval Duration `toml:"gc_interval"`
	// MinFree is the free disk space (bytes) below which the node takes
	// no new custody: msg.send fails with CodeDiskFull and envelopes from
	// neighbours are dropped (their senders keep them and retry). What
	// the store holds can still be delivered, acknowledged and expired.
	MinFree int64 `toml:"min_free"`
}

// Queue budget default and bounds (limits.queue_budget). Past the budget
// each link still gets its share (at least 256 KiB), so with every
// connection (limits.conn_high, 128) held by a slow reader the node can
// hold the budget and 32 MiB more (docs/operations.md section 17); the
// least is four of the largest frames, with room for a fast link.
const (
	DefaultQueueBudget = 32 << 20
	minQueueBudget     = 1 << 20
)

// Store upkeep defaults and bounds.
const (
	// DefaultGCInterval: deleted inbox entries and custody records are
	// garbage in badger's value log until a GC run rewrites their file
	// (daemon/store, badgerOptions), so the run comes often; one that
	// finds nothing costs a directory walk.
	DefaultGCInterval = time.Minute
	DefaultMinFree    = 64 << 20
	// minMinFree is the smallest reserve: one memtable file (16 MiB:
	// badger writes it through a mapping, and a write the full disk cannot
	// back kills the process with SIGBUS) and the flush of one to a table.
	minMinFree = 32 << 20
)

// RoutingConfig tunes the routing engine (zero means the engine's default).
type RoutingConfig struct {
	AnnounceInterval Duration `toml:"announce_interval"`
	MessageTTL       Duration `toml:"message_ttl"`
	CustodyMaxBytes  int      `toml:"custody_max_bytes"`
	// Sessions sends the node's own unicast messages over route sessions
	// (docs/routing.md section 12; default true). False sends every
	// message as a sealed envelope; the node still relays and receives
	// session frames either way.
	Sessions bool `toml:"sessions"`
}

// DefaultConfig returns the embedded defaults meshd runs on without any
// configuration.
func DefaultConfig() Config {
	p := strconv.Itoa(DefaultP2PPort)
	c := Config{
		DataDir: rpcapi.DefaultDataDir(),
		Listen: []string{
			"/ip4/0.0.0.0/tcp/" + p,
			"/ip4/0.0.0.0/udp/" + p + "/quic-v1",
			"/ip6/::/tcp/" + p,
			"/ip6/::/udp/" + p + "/quic-v1",
		},
		API:       DefaultAPIAddr,
		Bootstrap: []string{},
		MDNS:      true,
		DHTMode:   "auto",
		Log:       LogConfig{Level: "info", Format: "text"},
		Limits:    LimitsConfig{ConnLow: 64, ConnHigh: 128, ShutdownTimeout: Duration(10 * time.Second), QueueBudget: DefaultQueueBudget},
		Routing:   RoutingConfig{AnnounceInterval: Duration(30 * time.Minute), MessageTTL: Duration(7 * 24 * time.Hour), CustodyMaxBytes: 64 << 20, Sessions: true},
		Channels:  ChannelsConfig{HistorySize: DefaultChannelHistory},
		Store:     StoreConfig{GCInterval: Duration(DefaultGCInterval), MinFree: DefaultMinFree},
		FAPP:      FAPPConfig{Regions: []string{}, TrustedIssuers: []string{}, Epoch: Duration(DefaultFAPPEpoch)},
		TCP:       TCPConfig{Peers: []string{}},
		Mailbox:   MailboxConfig{Relays: []string{}, CircuitRelays: []string{}, CollectInterval: Duration(DefaultCollectInterval), StampBits: DefaultStampBits},
	}
	c.Limits.setGuardDefaults()
	c.RelayLimits, c.Reachability = defaultRelayLimits(), "auto"
	c.Access = AccessConfig{Allow: []string{}, Deny: []string{}}
	return c
}

// ConfigFileName is the configuration file's name inside the data
// directory.
const ConfigFileName = "config.toml"

// maxConfigBytes bounds a configuration file.
const maxConfigBytes = 1 << 20

// Validate checks the configuration and names the first wrong field.
func (c *Config) Validate() error {
	bad := func(field, format string, a ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrConfig, field, fmt.Sprintf(format, a...))
	}
	if c.DataDir == "" {
		return bad("data_dir", "empty")
	}
	if len(c.Listen) == 0 {
		return bad("listen", "no listen address (give at least one multiaddr, e.g. /ip4/127.0.0.1/tcp/0)")
	}
	for _, l := range c.Listen {
		if _, err := multiaddr.NewMultiaddr(l); err != nil {
			return bad("listen", "%q is not a multiaddr: %v", l, err)
		}
	}
	if err := validatePeerAddrs("bootstrap", c.Bootstrap, bad); err != nil {
		return err
	}
	if c.API != "" {
		host, port, err := net.SplitHostPort(c.API)
		if err != nil {
			return bad("api", "%q is not host:port: %v", c.API, err)
		}
		ip := net.ParseIP(host)
		if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return bad("api", "%q is not a loopback address; the API is for local apps only", c.API)
		}
		if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
			return bad("api", "port %q is not a number from 0 to 65535", port)
		}
	}
	if c.Metrics != "" {
		if _, port, err := net.SplitHostPort(c.Metrics); err != nil {
			return bad("metrics", "%q is not host:port: %v", c.Metrics, err)
		} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
			return bad("metrics", "port %q is not a number from 0 to 65535", port)
		}
		if !c.MetricsPublic && !isLoopbackHostPort(c.Metrics) {
			return bad("metrics", "%q is not a loopback address; set metrics_public = true (or --metrics-public) to serve /metrics there, behind the API token", c.Metrics)
		}
	}
	if !slices.Contains([]string{"auto", "client", "server"}, c.DHTMode) {
		return bad("dht_mode", "%q: want auto, client or server", c.DHTMode)
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level) {
		return bad("log.level", "%q: want debug, info, warn or error", c.Log.Level)
	}
	if !slices.Contains([]string{"text", "json"}, c.Log.Format) {
		return bad("log.format", "%q: want text or json", c.Log.Format)
	}
	if c.Limits.ConnLow < 1 || c.Limits.ConnHigh < c.Limits.ConnLow {
		return bad("limits", "conn_low %d and conn_high %d: want 1 <= conn_low <= conn_high", c.Limits.ConnLow, c.Limits.ConnHigh)
	}
	if c.Limits.ShutdownTimeout <= 0 {
		return bad("limits.shutdown_timeout", "must be positive")
	}
	if c.Limits.MemoryLimit != 0 && c.Limits.MemoryLimit < 32<<20 {
		return bad("limits.memory_limit", "%d is below 32 MiB (0 means automatic)", c.Limits.MemoryLimit)
	}
	if c.Limits.QueueBudget < minQueueBudget {
		return bad("limits.queue_budget", "%d is below 1 MiB", c.Limits.QueueBudget)
	}
	if c.Store.GCInterval < Duration(time.Minute) {
		return bad("store.gc_interval", "%v is below one minute", time.Duration(c.Store.GCInterval))
	}
	if c.Store.MinFree < minMinFree {
		return bad("store.min_free", "%d is below %d bytes (32 MiB): badger needs that much to finish what it holds", c.Store.MinFree, minMinFree)
	}
	if err := c.validateGuard(bad); err != nil {
		return err
	}
	if c.Routing.AnnounceInterval < Duration(time.Minute) {
		return bad("routing.announce_interval", "%v is below one minute", time.Duration(c.Routing.AnnounceInterval))
	}
	if c.Routing.MessageTTL < Duration(time.Minute) || c.Routing.MessageTTL > Duration(30*24*time.Hour) {
		return bad("routing.message_ttl", "%v: want one minute to 30 days", time.Duration(c.Routing.MessageTTL))
	}
	if c.Routing.CustodyMaxBytes < 1<<20 {
		return bad("routing.custody_max_bytes", "%d is below 1 MiB", c.Routing.CustodyMaxBytes)
	}
	if c.Channels.HistorySize < 1 || c.Channels.HistorySize > MaxChannelHistory {
		return bad("channels.history_size", "%d: want 1 to %d", c.Channels.HistorySize, MaxChannelHistory)
	}
	if err := c.validateLoRa(bad); err != nil {
		return err
	}
	if err := c.validateTCP(bad); err != nil {
		return err
	}
	if err := validateReachability(c.Reachability, c.Relay, bad); err != nil {
		return err
	}
	if err := c.RelayLimits.validate(bad); err != nil {
		return err
	}
	if err := c.Mailbox.validate(bad); err != nil {
		return err
	}
	return c.FAPP.validate(bad)
}

// validateTCP checks the [tcp] section.
func (c *Config) validateTCP(bad func(field, format string, a ...any) error) error {
	if c.TCP.Listen != "" {
		if _, port, err := net.SplitHostPort(c.TCP.Listen); err != nil {
			return bad("tcp.listen", "%q is not host:port (for example 0.0.0.0:7723): %v", c.TCP.Listen, err)
		} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
			return bad("tcp.listen", "port %q is not a number from 0 to 65535", port)
		}
	}
	seen := map[string]bool{}
	for _, p := range c.TCP.Peers {
		peer, err := tcp.ParsePeer(p)
		if err != nil {
			return bad("tcp.peers", "%q: want HOST:PORT or ADDRESS@HOST:PORT (ADDRESS: the peer's mesh address in hex)", p)
		}
		if _, port, _ := net.SplitHostPort(peer.Addr); port == "0" {
			return bad("tcp.peers", "%q: port 0 cannot be dialled", p)
		} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return bad("tcp.peers", "%q: port %q is not a number from 1 to 65535", p, port)
		}
		if seen[peer.Addr] {
			return bad("tcp.peers", "%q is listed twice", peer.Addr)
		}
		seen[peer.Addr] = true
	}
	return nil
}

func (f *FAPPConfig) validate(bad func(field, format string, a ...any) error) error {
	for _, r := range f.Regions {
		if _, err := fapp.ParseRegion(r); err != nil {
			return bad("fapp.regions", "%v", err)
		}
	}
	for _, k := range f.TrustedIssuers {
		if _, err := fapp.ParseIssuerKey(k); err != nil {
			return bad("fapp.trusted_issuers", "%v", err)
		}
	}
	// The publisher works in whole minutes (at least one): shorter or
	// broken values are rounded down, with a floor of one minute.
	if f.Epoch < Duration(time.Second) || f.Epoch > Duration(24*time.Hour) {
		return bad("fapp.epoch", "%v: want one second to 24 hours (used in whole minutes, at least one)", time.Duration(f.Epoch))
	}
	return nil
}

// decodeTOML reads a configuration document over c, rejecting unknown keys
// with their line and column.
func decodeTOML(c *Config, doc []byte, name string) error {
	dec := toml.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(c); err != nil {
		return fmt.Errorf("%w: %s: %s", ErrConfig, name, tomlerr.Describe(err))
	}
	return nil
}

// Flags are the command-line settings of `meshd run`. Only the flags given
// on the command line override the file and the environment.
type Flags struct {
	fs         *flag.FlagSet
	configPath string
	dataDir    string
	listen     multiFlag
	api        string
	metrics    string
	bootstrap  multiFlag
	noMDNS     bool
	sharePort  bool
	relay      bool
	dhtMode    string
	logLevel   string
	logFormat  string
	tcpListen  string
	tcpPeers   multiFlag
	lora       multiFlag

	// metricsPublic is --metrics-public.
	metricsPublic bool
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// NewFlags registers meshd's flags on fs.
func NewFlags(fs *flag.FlagSet) *Flags {
	f := &Flags{fs: fs}
	fs.StringVar(&f.configPath, "config", "", "configuration file (default <data-dir>/config.toml if it exists; env MESHD_CONFIG)")
	fs.StringVar(&f.dataDir, "data-dir", "", "data directory (default $XDG_DATA_HOME/meshd or ~/.local/share/meshd; env MESHD_DATA_DIR)")
	fs.Var(&f.listen, "listen", "libp2p listen multiaddr, repeatable (env MESHD_LISTEN, comma-separated)")
	fs.StringVar(&f.api, "api", "", "HTTP/WebSocket API address, loopback only; \"off\" disables it (default "+DefaultAPIAddr+"; env MESHD_API)")
	fs.StringVar(&f.metrics, "metrics", "", "Prometheus /metrics address, e.g. 127.0.0.1:7722; \"off\" disables it (default off; env MESHD_METRICS)")
	fs.BoolVar(&f.metricsPublic, "metrics-public", false, "allow --metrics on a non-loopback address, served with the API token (config metrics_public)")
	fs.Var(&f.bootstrap, "bootstrap", "DHT bootstrap peer multiaddr with /p2p/, repeatable (env MESHD_BOOTSTRAP)")
	fs.BoolVar(&f.noMDNS, "no-mdns", false, "do not discover or announce on the LAN with mDNS (env MESHD_MDNS=false)")
	fs.BoolVar(&f.sharePort, "share-port", false, "start even if another process (another meshd) already listens on a libp2p port (env MESHD_SHARE_PORT)")
	fs.BoolVar(&f.relay, "relay", false, "relay mode: DHT server, circuit relay, mailbox for offline peers (env MESHD_RELAY)")
	fs.StringVar(&f.dhtMode, "dht-mode", "", "DHT mode: auto, client or server (env MESHD_DHT_MODE)")
	fs.StringVar(&f.logLevel, "log-level", "", "log level: debug, info, warn, error (env MESHD_LOG_LEVEL)")
	fs.StringVar(&f.logFormat, "log-format", "", "log format: text or json (env MESHD_LOG_FORMAT)")
	fs.StringVar(&f.tcpListen, "tcp-listen", "", "accept plain TCP links on HOST:PORT (env MESHD_TCP_LISTEN)")
	fs.Var(&f.tcpPeers, "tcp-peer", "keep a plain TCP link to HOST:PORT or ADDRESS@HOST:PORT, repeatable (env MESHD_TCP_PEERS, comma-separated)")
	fs.Var(&f.lora, "lora", "RNode LoRa modem serial port, repeatable; a port without a [[lora]] section gets EU868 869.525 MHz SF9 (env MESHD_LORA, comma-separated)")
	return f
}

// envVars are the MESHD_ variables meshd understands; any other MESHD_
// variable is an error (a misspelt variable silently ignored is a bad day).
var envVars = []string{
	"MESHD_CONFIG", "MESHD_DATA_DIR", "MESHD_LISTEN", "MESHD_API", "MESHD_METRICS", "MESHD_BOOTSTRAP", "MESHD_MDNS",
	"MESHD_RELAY", "MESHD_DHT_MODE", "MESHD_LOG_LEVEL", "MESHD_LOG_FORMAT",
	"MESHD_TCP_LISTEN", "MESHD_TCP_PEERS",
	"MESHD_LORA",
	"MESHD_SHARE_PORT",
}

// LoadConfig builds the effective configuration: embedded defaults, then
// the TOML file, then MESHD_ environment variables, then flags (flags win).
// environ is os.Environ() in production. The data directory is settled first
// (flag, environment, default), because the file lives in it.
func LoadConfig(f *Flags, environ []string) (Config, string, error) {
	env := map[string]string{}
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(k, "MESHD_") {
			continue
		}
		if !slices.Contains(envVars, k) {
			return Config{}, "", fmt.Errorf("%w: environment variable %s is not a meshd setting (known: %s)", ErrConfig, k, strings.Join(envVars, ", "))
		}
		env[k] = v
	}
	set := map[string]bool{}
	if f.fs != nil {
		f.fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	}

	c := DefaultConfig()
	dataDirGiven := false
	if v, ok := env["MESHD_DATA_DIR"]; ok && v != "" {
		c.DataDir, dataDirGiven = v, true
	}
	if set["data-dir"] {
		c.DataDir, dataDirGiven = f.dataDir, true
	}
	path, explicit := filepath.Join(c.DataDir, ConfigFileName), false
	if v, ok := env["MESHD_CONFIG"]; ok && v != "" {
		path, explicit = v, true
	}
	if set["config"] {
		path, explicit = f.configPath, true
	}
	doc, err := readConfigFile(path)
	switch {
	case err == nil:
		dataDir := c.DataDir
		if err := decodeTOML(&c, doc, path); err != nil {
			return Config{}, "", err
		}
		if dataDirGiven { // the flag or variable beats the file
			c.DataDir = dataDir
		}
	case errors.Is(err, os.ErrNotExist) && !explicit:
		path = "" // no file: embedded defaults
	default:
		return Config{}, "", fmt.Errorf("%w: %v", ErrConfig, err)
	}

	if err := applyEnv(&c, env); err != nil {
		return Config{}, "", err
	}
	if set["listen"] {
		c.Listen = slices.Clone(f.listen)
	}
	if set["api"] {
		c.API = f.api
	}
	if set["metrics"] {
		c.Metrics = f.metrics
	}
	if set["metrics-public"] {
		c.MetricsPublic = f.metricsPublic
	}
	if set["bootstrap"] {
		c.Bootstrap = slices.Clone(f.bootstrap)
	}
	if set["no-mdns"] {
		c.MDNS = !f.noMDNS
	}
	if set["relay"] {
		c.Relay = f.relay
	}
	if set["share-port"] {
		c.SharePort = f.sharePort
	}
	if set["dht-mode"] {
		c.DHTMode = f.dhtMode
	}
	if set["log-level"] {
		c.Log.Level = f.logLevel
	}
	if set["log-format"] {
		c.Log.Format = f.logFormat
	}
	if set["tcp-listen"] {
		c.TCP.Listen = f.tcpListen
	}
	if set["tcp-peer"] {
		c.TCP.Peers = slices.Clone(f.tcpPeers)
	}
	if set["lora"] {
		c.LoRa = loraPorts(c.LoRa, f.lora)
	}
	if c.API == "off" {
		c.API = ""
	}
	if c.Metrics == "off" {
		c.Metrics = ""
	}
	if abs, err := filepath.Abs(c.DataDir); err == nil {
		c.DataDir = abs
	}
	if err := c.Validate(); err != nil {
		return Config{}, "", err
	}
	return c, path, nil
}

func readConfigFile(path string) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return nil, fmt.Errorf("config file %s is a directory", path)
	}
	if st.Size() > maxConfigBytes {
		return nil, fmt.Errorf("config file %s is %d bytes, more than %d: is it really a meshd configuration?", path, st.Size(), maxConfigBytes)
	}
	doc := make([]byte, st.Size())
	if _, err := fh.ReadAt(doc, 0); err != nil && st.Size() > 0 {
		return nil, fmt.Errorf("reading config file %s: %w", path, err)
	}
	return doc, nil
}

func applyEnv(c *Config, env map[string]string) error {
	list := func(v string) []string {
		var out []string
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
		return out
	}
	boolean := func(k, v string) (bool, error) {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return false, fmt.Errorf("%w: %s=%q: want true or false", ErrConfig, k, v)
		}
		return b, nil
	}
	var err error
	for k, v := range env {
		switch k {
		case "MESHD_LISTEN":
			c.Listen = list(v)
		case "MESHD_API":
			c.API = v
		case "MESHD_METRICS":
			c.Metrics = v
		case "MESHD_BOOTSTRAP":
			c.Bootstrap = list(v)
		case "MESHD_MDNS":
			c.MDNS, err = boolean(k, v)
		case "MESHD_RELAY":
			c.Relay, err = boolean(k, v)
		case "MESHD_SHARE_PORT":
			c.SharePort, err = boolean(k, v)
		case "MESHD_DHT_MODE":
			c.DHTMode = v
		case "MESHD_LOG_LEVEL":
			c.Log.Level = v
		case "MESHD_LOG_FORMAT":
			c.Log.Format = v
		case "MESHD_TCP_LISTEN":
			c.TCP.Listen = v
		case "MESHD_TCP_PEERS":
			c.TCP.Peers = list(v)
		case "MESHD_LORA":
			c.LoRa = loraPorts(c.LoRa, list(v))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// MarshalTOML renders the configuration as TOML (for `meshd config show`).
func (c *Config) MarshalTOML() ([]byte, error) {
	var buf bytes.Buffer
	enc := toml.NewEncoder(&buf)
	enc.SetIndentTables(true)
	if err := enc.Encode(c); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
