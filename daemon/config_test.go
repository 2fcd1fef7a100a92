package daemon

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
)

func loadWith(t *testing.T, args []string, env ...string) (Config, string, error) {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	f := NewFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return LoadConfig(f, env)
}

func writeConfig(t *testing.T, dir, doc string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, ConfigFileName)
	if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigDefaultsWithoutFile(t *testing.T) {
	dir := t.TempDir()
	c, path, err := loadWith(t, []string{"--data-dir", dir})
	if err != nil {
		t.Fatal(err)
	}
	if path != "" {
		t.Errorf("config file %q, want none", path)
	}
	want := DefaultConfig()
	want.DataDir = dir
	if !reflect.DeepEqual(c, want) {
		t.Errorf("config\n%+v\nwant the defaults\n%+v", c, want)
	}
}

func TestConfigDataDirFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	c, _, err := loadWith(t, nil, "MESHD_DATA_DIR="+dir)
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != dir {
		t.Errorf("data dir %q, want %q", c.DataDir, dir)
	}
	c, _, err = loadWith(t, []string{"--data-dir", dir + "/x"}, "MESHD_DATA_DIR="+dir)
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != dir+"/x" {
		t.Errorf("flag should beat the environment: data dir %q", c.DataDir)
	}
}

func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	writeConfig(t, dir, `
api = "127.0.0.1:9001"
mdns = false
dht_mode = "client"
listen = ["/ip4/127.0.0.1/tcp/1111"]
[log]
level = "debug"
`)
	// File only.
	c, path, err := loadWith(t, []string{"--data-dir", dir})
	if err != nil {
		t.Fatal(err)
	}
	if path != filepath.Join(dir, ConfigFileName) {
		t.Errorf("config file %q", path)
	}
	if c.API != "127.0.0.1:9001" || c.MDNS || c.DHTMode != "client" || c.Log.Level != "debug" || c.Listen[0] != "/ip4/127.0.0.1/tcp/1111" {
		t.Errorf("file values not applied: %+v", c)
	}
	if c.Log.Format != "text" {
		t.Errorf("unset key lost its default: %q", c.Log.Format)
	}
	// The environment beats the file.
	c, _, err = loadWith(t, []string{"--data-dir", dir}, "MESHD_API=127.0.0.1:9002", "MESHD_MDNS=true",
		"MESHD_LISTEN=/ip4/127.0.0.1/tcp/2222, /ip4/127.0.0.1/udp/2222/quic-v1", "PATH=/bin")
	if err != nil {
		t.Fatal(err)
	}
	if c.API != "127.0.0.1:9002" || !c.MDNS || len(c.Listen) != 2 || c.DHTMode != "client" {
		t.Errorf("environment not applied over the file: %+v", c)
	}
	// Flags beat both.
	c, _, err = loadWith(t, []string{"--data-dir", dir, "--api", "127.0.0.1:9003", "--no-mdns",
		"--listen", "/ip4/127.0.0.1/tcp/0", "--dht-mode", "server"}, "MESHD_API=127.0.0.1:9002", "MESHD_MDNS=true")
	if err != nil {
		t.Fatal(err)
	}
	if c.API != "127.0.0.1:9003" || c.MDNS || len(c.Listen) != 1 || c.Listen[0] != "/ip4/127.0.0.1/tcp/0" || c.DHTMode != "server" {
		t.Errorf("flags not applied over environment and file: %+v", c)
	}
	c, _, err = loadWith(t, []string{"--data-dir", dir, "--api", "off"})
	if err != nil || c.API != "" {
		t.Errorf("--api off: %q, %v", c.API, err)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		args, env []string
		want      string
	}{
		{name: "unknown key", doc: "api = \"127.0.0.1:1\"\n[log]\nlevle = \"debug\"\n", want: `line 3, column 1: unknown field "log.levle"`},
		{name: "wrong type", doc: "mdns = \"yes\"\n", want: "line 1"},
		{name: "garbage", doc: "\x00\x01\x02 not toml", want: "config.toml"},
		{name: "bad duration", doc: "[routing]\nmessage_ttl = \"a week\"\n", want: "duration"},
		{name: "ttl too long", doc: "[routing]\nmessage_ttl = \"1000h\"\n", want: "routing.message_ttl"},
		{name: "bad listen", doc: "listen = [\"tcp://0.0.0.0:1\"]\n", want: "listen"},
		{name: "no listen", doc: "listen = []\n", want: "listen"},
		{name: "public api", doc: "api = \"0.0.0.0:7721\"\n", want: "not a loopback address"},
		{name: "bootstrap without peer", doc: "bootstrap = [\"/ip4/127.0.0.1/tcp/1\"]\n", want: "/p2p/"},
		{name: "dht mode", doc: "dht_mode = \"sometimes\"\n", want: "dht_mode"},
		{name: "history too long", doc: "[channels]\nhistory_size = 10001\n", want: "channels.history_size"},
		{name: "no history", doc: "[channels]\nhistory_size = 0\n", want: "channels.history_size"},
		{name: "conn limits", doc: "[limits]\nconn_low = 10\nconn_high = 5\n", want: "conn_low"},
		{name: "queue budget too small", doc: "[limits]\nqueue_budget = 1000\n", want: "limits.queue_budget: 1000 is below 1 MiB"},
		{name: "queue budget zero", doc: "[limits]\nqueue_budget = 0\n", want: "limits.queue_budget"},
		{name: "queue budget wrong type", doc: "[limits]\nqueue_budget = \"32MiB\"\n", want: "line 2"},
		{name: "fapp region", doc: "[fapp]\nregions = [\"1\"]\n", want: "fapp.regions"},
		{name: "fapp region not in use", doc: "[fapp]\nregions = [\"00\"]\n", want: "fapp.regions"},
		{name: "fapp issuer", doc: "[fapp]\ntrusted_issuers = [\"abc\"]\n", want: "fapp.trusted_issuers"},
		{name: "fapp epoch", doc: "[fapp]\nepoch = \"48h\"\n", want: "fapp.epoch"},
		{name: "unknown env", env: []string{"MESHD_LISTN=/ip4/127.0.0.1/tcp/0"}, want: "MESHD_LISTN is not a meshd setting"},
		{name: "bad env bool", env: []string{"MESHD_MDNS=perhaps"}, want: "MESHD_MDNS"},
		{name: "bad log level flag", args: []string{"--log-level", "loud"}, want: "log.level"},
		{name: "missing explicit file", args: []string{"--config", "/nonexistent/meshd.toml"}, want: "/nonexistent/meshd.toml"},
		{name: "tcp listen without port", doc: "[tcp]\nlisten = \"0.0.0.0\"\n", want: "tcp.listen"},
		{name: "tcp listen bad port", args: []string{"--tcp-listen", "0.0.0.0:99999"}, want: "tcp.listen"},
		{name: "tcp peer without port", doc: "[tcp]\npeers = [\"10.0.0.1\"]\n", want: "tcp.peers"},
		{name: "tcp peer port 0", args: []string{"--tcp-peer", "10.0.0.1:0"}, want: "port 0"},
		{name: "tcp peer bad address", args: []string{"--tcp-peer", "nothex@10.0.0.1:7723"}, want: "tcp.peers"},
		{name: "tcp peer twice", env: []string{"MESHD_TCP_PEERS=10.0.0.1:7723,10.0.0.1:7723"}, want: "listed twice"},
		{name: "tcp unknown key", doc: "[tcp]\nlisten_on = \"0.0.0.0:1\"\n", want: `unknown field "tcp.listen_on"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.doc != "" {
				writeConfig(t, dir, tc.doc)
			}
			_, _, err := loadWith(t, append([]string{"--data-dir", dir}, tc.args...), tc.env...)
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrConfig) {
				t.Errorf("error %v does not wrap ErrConfig", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

// TestConfigTCP: the [tcp] section, its variables and flags, with flags
// winning.
func TestConfigTCP(t *testing.T) {
	dir := t.TempDir()
	writeConfig(t, dir, "[tcp]\nlisten = \"0.0.0.0:7723\"\npeers = [\"router.lan:7723\", \"[fd00::1]:7723\"]\n")
	c, _, err := loadWith(t, []string{"--data-dir", dir})
	if err != nil || c.TCP.Listen != "0.0.0.0:7723" || len(c.TCP.Peers) != 2 {
		t.Fatalf("file: %+v, %v", c.TCP, err)
	}
	c, _, err = loadWith(t, []string{"--data-dir", dir}, "MESHD_TCP_LISTEN=127.0.0.1:1", "MESHD_TCP_PEERS=10.0.0.1:2")
	if err != nil || c.TCP.Listen != "127.0.0.1:1" || len(c.TCP.Peers) != 1 {
		t.Fatalf("environment: %+v, %v", c.TCP, err)
	}
	c, _, err = loadWith(t, []string{"--data-dir", dir, "--tcp-listen", "127.0.0.1:3", "--tcp-peer", "10.0.0.1:4", "--tcp-peer", "10.0.0.2:4"})
	if err != nil || c.TCP.Listen != "127.0.0.1:3" || len(c.TCP.Peers) != 2 || c.TCP.Peers[1] != "10.0.0.2:4" {
		t.Fatalf("flags: %+v, %v", c.TCP, err)
	}
}

func TestConfigDirectoryAsFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, ConfigFileName), 0o700); err != nil {
		t.Fatal(err)
	}
	_, _, err := loadWith(t, []string{"--data-dir", dir})
	if err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Fatalf("got %v", err)
	}
}

func TestInitTemplateIsTheDefaults(t *testing.T) {
	dir := t.TempDir()
	path, err := Init(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("config file mode %v", st.Mode().Perm())
	}
	c, got, err := loadWith(t, []string{"--data-dir", dir})
	if err != nil {
		t.Fatal(err)
	}
	if got != path {
		t.Errorf("loaded %q, want %q", got, path)
	}
	want := DefaultConfig()
	want.DataDir = dir
	if !reflect.DeepEqual(c, want) {
		t.Errorf("the init template does not decode to the defaults:\n%+v\n%+v", c, want)
	}
	if _, err := Init(dir); !errors.Is(err, ErrExists) {
		t.Errorf("second init: %v, want ErrExists", err)
	}
}

func TestConfigShowRoundTrips(t *testing.T) {
	c := DefaultConfig()
	c.DataDir = "/var/lib/meshd"
	c.Bootstrap = []string{"/ip4/127.0.0.1/tcp/7720/p2p/12D3KooWJ1n3P2Y6GUb4K3Eq7XG2GBUz3bTGyjF5oyjT2Kc3HhUm"}
	b, err := c.MarshalTOML()
	if err != nil {
		t.Fatal(err)
	}
	var back Config
	if err := decodeTOML(&back, b, "shown"); err != nil {
		t.Fatalf("config show output does not load: %v\n%s", err, b)
	}
	if !reflect.DeepEqual(back, c) {
		t.Errorf("round trip:\n%+v\n%+v", back, c)
	}
}

func TestIdentityFile(t *testing.T) {
	dir := t.TempDir()
	id1, created, err := LoadOrCreateIdentity(dir, nil)
	if err != nil || !created {
		t.Fatalf("first start: created=%v err=%v", created, err)
	}
	p := filepath.Join(dir, IdentityFileName)
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("identity file mode %v, want 0600", st.Mode().Perm())
	}
	id2, created, err := LoadOrCreateIdentity(dir, nil)
	if err != nil || created {
		t.Fatalf("second start: created=%v err=%v", created, err)
	}
	if id1.Address() != id2.Address() {
		t.Error("identity changed across starts")
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreateIdentity(dir, nil); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("world-readable key: %v", err)
	}
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(p)
	raw[10] ^= 1
	if err := os.WriteFile(p, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreateIdentity(dir, nil); err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Errorf("damaged key: %v", err)
	}
}

func TestIdentityCreatedOnceUnderRace(t *testing.T) {
	dir := t.TempDir()
	const n = 8
	addrs := make(chan string, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			id, _, err := LoadOrCreateIdentity(dir, nil)
			if err != nil {
				t.Error(err)
				return
			}
			addrs <- id.Address().String()
		})
	}
	wg.Wait()
	close(addrs)
	first := ""
	for a := range addrs {
		if first == "" {
			first = a
		} else if a != first {
			t.Fatalf("concurrent first starts got different identities: %s and %s", first, a)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("data directory holds %d files after the race, want only the key", len(entries))
	}
}

func TestMemoryLimit(t *testing.T) {
	cfg := DefaultConfig()
	t.Setenv("GOMEMLIMIT", "")
	os.Unsetenv("GOMEMLIMIT")
	if got, set := memoryLimit(cfg); !set || got != 64<<20+64<<20 {
		t.Errorf("default: %d, %v; want custody quota + 64 MiB", got, set)
	}
	cfg.Limits.MemoryLimit = 200 << 20
	if got, set := memoryLimit(cfg); !set || got != 200<<20 {
		t.Errorf("configured: %d, %v", got, set)
	}
	t.Setenv("GOMEMLIMIT", "off")
	if _, set := memoryLimit(cfg); set {
		t.Error("GOMEMLIMIT set, but meshd sets its own limit")
	}
	cfg.Limits.MemoryLimit = 1 << 20
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "limits.memory_limit") {
		t.Errorf("a 1 MiB limit: %v", err)
	}
}

// TestQueueBudgetConfig: limits.queue_budget defaults to 32 MiB and is at
// least 1 MiB.
func TestQueueBudgetConfig(t *testing.T) {
	cfg := DefaultConfig()
	if cfg.Limits.QueueBudget != 32<<20 {
		t.Errorf("default queue budget %d", cfg.Limits.QueueBudget)
	}
	cfg.Limits.QueueBudget = 512 << 10
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "limits.queue_budget") {
		t.Errorf("a 512 KiB budget: %v", err)
	}
}
