package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// meshd with mDNS on (the default) starts in a network namespace whose only
// interface, lo, has no MULTICAST flag: it warns and runs, and every log
// line, zeroconf's included, is JSON. Today's exits 1 with "p2p: mDNS:
// register _meshd._udp: No supported interface".
func TestEndToEndNoMulticastStartup(t *testing.T) {
	endToEnd(t, "builds binaries and runs meshd in a network namespace")
	if err := exec.Command("unshare", "-rn", "true").Run(); err != nil {
		t.Skipf("no unprivileged network namespaces here (unshare -rn: %v); .ci/run runs the p2p no-multicast test", err)
	}
	meshd, _ := binaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := filepath.Join(t.TempDir(), "n")
	cmd := exec.CommandContext(ctx, "unshare", "-rn", "sh", "-c",
		`ip link set lo up && exec "$0" run --data-dir "$1" --listen /ip4/127.0.0.1/tcp/0 --api off --log-format json`, meshd, dir)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	var running, warned bool
	var lines []string
	sc := bufio.NewScanner(stderr)
	for (!running || !warned) && sc.Scan() {
		line := sc.Text()
		lines = append(lines, line)
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("log line is not JSON: %q", line)
			continue
		}
		running = running || rec["msg"] == "meshd running"
		warned = warned || rec["msg"] == "mDNS LAN discovery unavailable; running without it and retrying"
	}
	if !running || !warned {
		t.Fatalf("running %v, warned %v; log:\n%s", running, warned, strings.Join(lines, "\n"))
	}
}
