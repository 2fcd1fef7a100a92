package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"meshd.dev/meshd/internal/version"
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

func TestCLIVersionEverywhere(t *testing.T) {
	old := version.Version
	t.Cleanup(func() { version.Version = old })
	version.Version = "v1.2.3-test"
	for _, args := range [][]string{{"version"}, {"--version"}, {"-version"}, {"-v"}} {
		code, out, errs := runCLI(t, args...)
		if code != 0 || out != "meshd v1.2.3-test\n" {
			t.Errorf("meshd %v: exit %d, stdout %q, stderr %q", args, code, out, errs)
		}
	}
}

func TestCLIHelpListsEveryCommand(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		code, out, _ := runCLI(t, args...)
		if code != 0 {
			t.Errorf("meshd %v: exit %d", args, code)
		}
		for _, want := range []string{"run ", "init ", "config ", "version ", "Exit codes:"} {
			if !strings.Contains(out, want) {
				t.Errorf("meshd %v does not list %q:\n%s", args, want, out)
			}
		}
	}
	code, out, _ := runCLI(t, "run", "--help")
	if code != 0 || !strings.Contains(out, "--data-dir string") || !strings.Contains(out, "--listen strings") || !strings.Contains(out, "--no-mdns") || strings.Contains(out, "  -data-dir") {
		t.Errorf("meshd run --help: exit %d, want every flag in --flag style:\n%s", code, out)
	}
	code, out, _ = runCLI(t, "config", "show", "-h")
	if code != 0 || !strings.Contains(out, "meshd config show [flags]") {
		t.Errorf("meshd config show -h: exit %d:\n%s", code, out)
	}
}

// Flags without a command still mean run, and the flag package's one-dash
// spelling keeps working for scripts written against older meshd.
func TestCLIOldInvocationsStillWork(t *testing.T) {
	t.Setenv("MESHD_DATA_DIR", "")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte("relay = \"maybe\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"--data-dir", dir}, {"-data-dir", dir}, {"-data-dir=" + dir}} {
		code, _, errs := runCLI(t, args...)
		if code != 1 || !strings.Contains(errs, "line 1") {
			t.Errorf("meshd %v: exit %d, stderr %q (want it to run and reject the config)", args, code, errs)
		}
	}
	code, out, errs := runCLI(t, "config", "show", "-data-dir", t.TempDir(), "-api=off")
	if code != 0 || !strings.Contains(out, "api = ''") {
		t.Errorf("config show with one-dash flags: exit %d, %q %q", code, out, errs)
	}
}
