package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

func TestCLIInitAndConfigShow(t *testing.T) {
	t.Setenv("MESHD_DATA_DIR", "")
	dir := t.TempDir()
	code, out, errs := runCLI(t, "init", "--data-dir", dir)
	if code != 0 {
		t.Fatalf("init: exit %d: %s", code, errs)
	}
	if !strings.Contains(out, "wrote "+filepath.Join(dir, "config.toml")) || !strings.Contains(out, "created identity ") {
		t.Errorf("init output: %q", out)
	}
	code, _, errs = runCLI(t, "init", "--data-dir", dir)
	if code != 1 || !strings.Contains(errs, "already exists") {
		t.Errorf("second init: exit %d, %q", code, errs)
	}
	code, out, errs = runCLI(t, "config", "show", "--data-dir", dir, "--api", "127.0.0.1:9999")
	if code != 0 {
		t.Fatalf("config show: exit %d: %s", code, errs)
	}
	for _, want := range []string{"config file: " + filepath.Join(dir, "config.toml"), `api = '127.0.0.1:9999'`, "[routing]"} {
		if !strings.Contains(out, want) {
			t.Errorf("config show output lacks %q:\n%s", want, out)
		}
	}
}

func TestCLIBadConfigStopsStartUp(t *testing.T) {
	t.Setenv("MESHD_DATA_DIR", "")
	dir := t.TempDir()
	for _, tc := range []struct{ doc, want string }{
		{"listen = [\"/ip4/127.0.0.1/tcp/0\"]\nmdns = false\nrelay = \"maybe\"\n", "line 3"},
		{"[limits]\nconn_hgh = 5\n", `unknown field "limits.conn_hgh"`},
		{"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "config.toml"},
	} {
		if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(tc.doc), 0o600); err != nil {
			t.Fatal(err)
		}
		code, _, errs := runCLI(t, "run", "--data-dir", dir)
		if code != 1 || !strings.Contains(errs, tc.want) {
			t.Errorf("config %q: exit %d, stderr %q (want it to mention %q)", tc.doc, code, errs, tc.want)
		}
	}
}

func TestCLIUsage(t *testing.T) {
	code, out, _ := runCLI(t, "version")
	if code != 0 || !strings.HasPrefix(out, "meshd ") {
		t.Errorf("version: %d %q", code, out)
	}
	code, _, errs := runCLI(t, "frobnicate")
	if code != 2 || !strings.Contains(errs, `unknown command "frobnicate"`) {
		t.Errorf("unknown command: %d %q", code, errs)
	}
	code, _, errs = runCLI(t, "run", "--no-such-flag")
	if code != 2 || !strings.Contains(errs, "no-such-flag") {
		t.Errorf("unknown flag: %d %q", code, errs)
	}
	code, _, errs = runCLI(t, "config")
	if code != 2 || !strings.Contains(errs, "config show") {
		t.Errorf("config without show: %d %q", code, errs)
	}
	code, _, errs = runCLI(t, "run", "stray")
	if code != 2 || !strings.Contains(errs, `unexpected argument "stray"`) {
		t.Errorf("stray argument: %d %q", code, errs)
	}
}
