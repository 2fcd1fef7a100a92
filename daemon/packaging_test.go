package daemon

import (
	"flag"
	"testing"
)

// The packages' default configurations (Debian: /etc/meshd/meshd.toml,
// OpenWrt: the same path) must load: a key renamed in Config would
// otherwise make the packaged service fail at its first start.
func TestPackagedConfigsLoad(t *testing.T) {
	for file, dataDir := range map[string]string{
		"../packaging/meshd.toml":         "/var/lib/meshd",
		"../packaging/openwrt/meshd.toml": "/etc/meshd/data",
	} {
		fs := flag.NewFlagSet("meshd", flag.ContinueOnError)
		f := NewFlags(fs)
		if err := fs.Parse([]string{"--config", file}); err != nil {
			t.Fatal(err)
		}
		cfg, path, err := LoadConfig(f, nil)
		if err != nil {
			t.Errorf("%s: %v", file, err)
			continue
		}
		if path != file || cfg.DataDir != dataDir {
			t.Errorf("%s: loaded %q with data_dir %q, want data_dir %q", file, path, cfg.DataDir, dataDir)
		}
	}
}
