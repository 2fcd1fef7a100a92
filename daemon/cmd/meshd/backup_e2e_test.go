package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// meshdCmd runs the meshd binary and returns its exit code and output.
func meshdCmd(t *testing.T, meshd string, args ...string) (int, string) {
	t.Helper()
	out, err := exec.Command(meshd, args...).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

// TestEndToEndBackupRestore: meshd backup of a running daemon (online,
// through its socket), meshd restore into a fresh data directory, and the
// restored daemon is the same node with its custody. Restores over a
// database, over another node and from a damaged file fail with a clear
// message.
func TestEndToEndBackupRestore(t *testing.T) {
	endToEnd(t, "runs meshd backup and restore against a real daemon")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p := newProc(t, "a")
	p.start(ctx)
	sent := p.send("00112233445566778899aabbccddeeff", "kept in custody")
	file := filepath.Join(t.TempDir(), "a.meshd-backup")
	code, out := meshdCmd(t, p.meshd, "backup", "--data-dir", p.dir, file)
	if code != 0 || !strings.Contains(out, "wrote "+file) || !strings.Contains(out, p.info.Address) {
		t.Fatalf("meshd backup: exit %d: %s", code, out)
	}
	if code, out := meshdCmd(t, p.meshd, "backup", "--data-dir", p.dir, file); code != 1 || !strings.Contains(out, "exists") {
		t.Errorf("backup over an existing file: exit %d: %s", code, out)
	}
	if code, out := meshdCmd(t, p.meshd, "restore", "--data-dir", p.dir, file); code != 1 || !strings.Contains(out, "without a database") {
		t.Errorf("restore into the running node's directory: exit %d: %s", code, out)
	}
	p.stop(ctx)

	other := filepath.Join(t.TempDir(), "other")
	if code, out := meshdCmd(t, p.meshd, "init", "--data-dir", other); code != 0 {
		t.Fatalf("init: %s", out)
	}
	if code, out := meshdCmd(t, p.meshd, "restore", "--data-dir", other, file); code != 1 || !strings.Contains(out, "another node") || !strings.Contains(out, "--force") {
		t.Errorf("restore over another node: exit %d: %s", code, out)
	}
	damaged, _ := os.ReadFile(file)
	bad := filepath.Join(t.TempDir(), "bad.meshd-backup")
	os.WriteFile(bad, damaged[:len(damaged)-100], 0o600)
	if code, out := meshdCmd(t, p.meshd, "restore", "--data-dir", filepath.Join(t.TempDir(), "x"), bad); code != 1 || !strings.Contains(out, "not a valid meshd backup") {
		t.Errorf("restore of a truncated file: exit %d: %s", code, out)
	}

	r := newProc(t, "restored")
	if code, out := meshdCmd(t, p.meshd, "restore", "--data-dir", r.dir, file); code != 0 || !strings.Contains(out, "restored node "+p.info.Address) {
		t.Fatalf("meshd restore: exit %d: %s", code, out)
	}
	r.start(ctx)
	defer r.stop(ctx)
	if r.info.Address != p.info.Address || r.info.PeerID != p.info.PeerID {
		t.Errorf("restored node %s/%s, want %s/%s", r.info.Address, r.info.PeerID, p.info.Address, p.info.PeerID)
	}
	st, err := r.client.StoreStats(ctx)
	if err != nil || st.Custody != 1 {
		t.Errorf("restored custody: %+v, %v (want %s kept)", st, err, sent.ID)
	}
}
