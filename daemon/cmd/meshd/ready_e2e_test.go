package main

import (
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// stampedVersion is what the release build's -ldflags put into both
// binaries; every place that reports a version must say it.
const stampedVersion = "v0.0.0-readytest"

// buildStamped builds meshd and meshctl as a release would, with the version
// stamped by the linker.
func buildStamped(t *testing.T) (meshd, meshctl string) {
	t.Helper()
	dir := t.TempDir()
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	ldflags := "-X meshd.dev/meshd/internal/version.Version=" + stampedVersion
	for _, pkg := range []string{"meshd.dev/meshd/daemon/cmd/meshd", "meshd.dev/meshd/apps/meshctl"} {
		out, err := exec.Command(gobin, "build", "-ldflags", ldflags, "-o", dir, pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	return filepath.Join(dir, "meshd"), filepath.Join(dir, "meshctl")
}

// TestReadinessAndVersions runs meshd as systemd's Type=notify would: with
// a real notify socket. It must say READY=1 once the API answers, log a
// "ready" line with the version and addresses, say STOPPING=1 on SIGTERM,
// and report the stamped version everywhere.
func TestReadinessAndVersions(t *testing.T) {
	endToEnd(t, "starts meshd")
	meshd, meshctl := buildStamped(t)
	sockDir, err := os.MkdirTemp("", "sdn") // short: socket paths are limited to 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(sockDir)
	notifyPath := filepath.Join(sockDir, "notify")
	notify, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notifyPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer notify.Close()

	dir := filepath.Join(t.TempDir(), "a")
	logPath := filepath.Join(t.TempDir(), "meshd.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(meshd, "--data-dir", dir, "--listen", "/ip4/127.0.0.1/tcp/0", "--api", "off", "--no-mdns", "--log-format", "json")
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+notifyPath, "MESHD_DATA_DIR=")
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
		}
	}()

	if got := readNotify(t, notify); !strings.HasPrefix(got, "READY=1\n") {
		t.Fatalf("first notification %q, want READY=1", got)
	}
	// READY=1 means the API answers: no waiting from here on.
	out, err := exec.Command(meshctl, "--data-dir", dir, "status", "--json").Output()
	if err != nil {
		t.Fatalf("meshctl status right after READY=1: %v", err)
	}
	var info struct{ Address, Version string }
	if err := json.Unmarshal(out, &info); err != nil || info.Version != stampedVersion {
		t.Errorf("node.info version %q (err %v), want %s", info.Version, err, stampedVersion)
	}
	out, err = exec.Command(meshctl, "--data-dir", dir, "version").Output()
	if err != nil || string(out) != "meshctl "+stampedVersion+"\nmeshd   "+stampedVersion+" ("+dir+")\n" {
		t.Errorf("meshctl version: %v\n%s", err, out)
	}
	for _, args := range [][]string{{"version"}, {"--version"}} {
		out, err = exec.Command(meshd, args...).Output()
		if err != nil || string(out) != "meshd "+stampedVersion+"\n" {
			t.Errorf("meshd %v: %v %q", args, err, out)
		}
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if got := readNotify(t, notify); got != "STOPPING=1" {
		t.Errorf("notification after SIGTERM %q, want STOPPING=1", got)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("meshd exited with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("meshd did not stop within 30 s of SIGTERM")
	}
	logText, _ := os.ReadFile(logPath)
	var ready map[string]any
	for _, line := range strings.Split(string(logText), "\n") {
		if strings.Contains(line, `"msg":"ready"`) {
			_ = json.Unmarshal([]byte(line), &ready)
		}
	}
	if ready["version"] != stampedVersion || ready["address"] != info.Address || ready["api_socket"] != filepath.Join(dir, "api.sock") {
		t.Errorf("ready log line %v; want version %s, address %s, the socket\n%s", ready, stampedVersion, info.Address, logText)
	}
	if l, _ := ready["listen"].([]any); len(l) == 0 {
		t.Errorf("ready log line without listen addresses: %v", ready)
	}
}

func readNotify(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	// A bound on failure, not a sleep: start-up is seconds.
	c.SetReadDeadline(time.Now().Add(60 * time.Second))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no notification from meshd: %v", err)
	}
	return string(buf[:n])
}
