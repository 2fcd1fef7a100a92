package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRunWritesOutputs(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	err := run([]string{"run", "../../scenarios/quickstart.toml", "--out", dir, "--trace", "--quiet", "--seed", "3", "--set", "duration=20m"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	for _, w := range []string{"simulated       20m0s", "speed-up", "events", "delivery ratio", "p50", "p99", "trace sha256"} {
		if !strings.Contains(stdout.String(), w) {
			t.Errorf("summary lacks %q:\n%s", w, stdout.String())
		}
	}
	for _, f := range []string{"scenario.toml", "summary.json", "messages.csv", "broadcasts.csv", "nodes.csv", "trace.jsonl",
		"delivery_ratio.png", "latency_cdf.svg", "airtime.png", "topology.svg"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	// The summary's hash is the SHA-256 of the trace file.
	trace, err := os.ReadFile(filepath.Join(dir, "trace.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var sum struct {
		Seed uint64 `json:"seed"`
		Hash string `json:"trace_sha256"`
	}
	b, _ := os.ReadFile(filepath.Join(dir, "summary.json"))
	if err := json.Unmarshal(b, &sum); err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(trace)
	if sum.Hash != hex.EncodeToString(h[:]) || sum.Seed != 3 {
		t.Fatalf("summary seed %d hash %s, trace file hash %x", sum.Seed, sum.Hash, h)
	}
}

func TestRunBadInput(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"sweep"},
		{"walk"},
		{"run"},
		{"run", "a.toml", "b.toml"},
		{"run", "../../scenarios/quickstart.toml", "--seed", "x"},
		{"run", "../../scenarios/quickstart.toml", "--trace"},
		{"run", "no-such.toml"},
		{"run", "../../scenarios/quickstart.toml", "--set", "radio.sf=13"},
		{"run", "../../scenarios/quickstart.toml", "--no-such-flag"},
		{"run", "../../scenarios/quickstart.toml", "--workers", "0"},
		{"run", "../../scenarios/quickstart.toml", "--workers", "3"},
	} {
		var out, errb bytes.Buffer
		if err := run(args, &out, &errb); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
}

// TestProgressOnlyOnTerminals: no progress bar when stderr is not a
// terminal (here a buffer), even without --quiet.
func TestProgressOnlyOnTerminals(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := run([]string{"run", "../../scenarios/quickstart.toml", "--set", "duration=5m"}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if stderr.Len() != 0 {
		t.Fatalf("stderr: %q", stderr.String())
	}
	if terminal(&stderr) {
		t.Fatal("a buffer is not a terminal")
	}
	// The bar itself renders simulated time and events per second.
	var b bytes.Buffer
	bar := newRunBar(&b, time.Hour)
	bar.Describe("90s simulated, 1234 events/s")
	_ = bar.Set64(90)
	_ = bar.Finish()
	if !strings.Contains(b.String(), "90s simulated, 1234 events/s") {
		t.Fatalf("bar: %q", b.String())
	}
}

// TestRunTraceDiskFull: a trace file that cannot be written (here a
// symbolic link to /dev/full: every write fails with ENOSPC) makes the run
// fail with that error, with one worker and with two (the trace's lines
// are written on another goroutine, a chunk at a time).
func TestRunTraceDiskFull(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full")
	}
	for _, workers := range []string{"1", "2"} {
		dir := t.TempDir()
		if err := os.Symlink("/dev/full", filepath.Join(dir, "trace.jsonl")); err != nil {
			t.Fatal(err)
		}
		var stdout, stderr bytes.Buffer
		err := run([]string{"run", "../../scenarios/quickstart.toml", "--out", dir, "--trace", "--quiet", "--no-plots",
			"--workers", workers, "--set", "duration=20m"}, &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), "no space") {
			t.Errorf("workers %s: err %v, want no space left on device", workers, err)
		}
	}
}
