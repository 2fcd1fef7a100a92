package main

import (
	"bytes"
	"encoding/csv"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestSplitValues(t *testing.T) {
	for in, want := range map[string][]string{
		"7,8,9":             {"7", "8", "9"},
		` "10m", 20m `:      {`"10m"`, "20m"},
		"[1, 2],[3]":        {"[1, 2]", "[3]"},
		`"a,b",c`:           {`"a,b"`, "c"},
		"{ latency = 1 },x": {"{ latency = 1 }", "x"},
	} {
		got, err := splitValues(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%q: %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "1,,2", "[1,2", `"a`} {
		if _, err := splitValues(in); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
}

func sweepArgs(dir, jobs string) []string {
	return []string{"sweep", "../../scenarios/quickstart.toml", "--out", dir, "--quiet", "--jobs", jobs,
		"--set", "duration=8m", "--set", "traffic.start=1m", "--set", "traffic.rate=0.01",
		"--param", "radio.sf=7,8", "--param", "radio.carrier_sense=csma,off", "--seeds", "2"}
}

// TestSweepDeterministic: the sweep's results do not depend on --jobs.
func TestSweepDeterministic(t *testing.T) {
	var csvs [][]byte
	var summaries []string
	for _, jobs := range []string{"1", "3"} {
		dir := t.TempDir()
		var stdout, stderr bytes.Buffer
		if err := run(sweepArgs(dir, jobs), &stdout, &stderr); err != nil {
			t.Fatalf("%v\n%s", err, stderr.String())
		}
		b, err := os.ReadFile(filepath.Join(dir, "sweep.csv"))
		if err != nil {
			t.Fatal(err)
		}
		csvs = append(csvs, b)
		var all strings.Builder
		for i := range 8 {
			s, err := os.ReadFile(filepath.Join(dir, "run-000"+string(rune('0'+i)), "summary.json"))
			if err != nil {
				t.Fatal(err)
			}
			all.Write(s)
		}
		summaries = append(summaries, all.String())
		if !strings.Contains(stdout.String(), "8 runs (4 grid points x 2 seeds)") {
			t.Errorf("stdout: %s", stdout.String())
		}
	}
	if !bytes.Equal(csvs[0], csvs[1]) || summaries[0] != summaries[1] {
		t.Fatalf("--jobs 1 and --jobs 3 differ:\n%s\n%s", csvs[0], csvs[1])
	}
	rows, err := csv.NewReader(bytes.NewReader(csvs[0])).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 9 {
		t.Fatalf("%d rows", len(rows))
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	for _, c := range []string{"run", "dir", "radio.sf", "radio.carrier_sense", "seed", "delivery_ratio", "latency_p50_s", "hops_mean", "broadcast_latency_p99_s", "channel_delivery_ratio", "channel_duplicates_to_apps", "gossip_duplicates", "trace_sha256"} {
		if _, ok := col[c]; !ok {
			t.Fatalf("no column %s in %v", c, rows[0])
		}
	}
	// Grid order: the first parameter slowest, seeds innermost.
	want := [][3]string{{"7", "csma", "1"}, {"7", "csma", "2"}, {"7", "off", "1"}, {"7", "off", "2"}, {"8", "csma", "1"}}
	hashes := map[string]bool{}
	for i, r := range rows[1:] {
		if i < len(want) && (r[col["radio.sf"]] != want[i][0] || r[col["radio.carrier_sense"]] != want[i][1] || r[col["seed"]] != want[i][2]) {
			t.Errorf("row %d: %v", i, r)
		}
		hashes[r[col["trace_sha256"]]] = true
		if r[col["messages_sent"]] == "0" {
			t.Errorf("row %d sent nothing", i)
		}
	}
	if len(hashes) != 8 {
		t.Errorf("%d distinct runs of 8", len(hashes))
	}
}

// TestSweepBadInput: bad sweeps fail before any run, naming the field.
func TestSweepBadInput(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--param", "radio.sf=7,13"}, "radio.sf=13"},
		{[]string{"--param", "radio.sf=7,13"}, "radio.sf: 13 not in 7..12"},
		{[]string{"--param", "traffic.colour=1,2"}, "colour"},
		{[]string{"--param", "radio.sf"}, "key=v1,v2"},
		{[]string{"--param", "radio.sf=7,,8"}, "empty value"},
		{[]string{"--param", "radio.sf=7", "--param", "radio.sf=8"}, "twice"},
		{[]string{"--param", "seed=1,2", "--seeds", "2"}, "one or the other"},
		{[]string{"--seeds", "0", "--param", "radio.sf=7"}, "--seeds"},
		{[]string{"--jobs", "0", "--param", "radio.sf=7"}, "--jobs"},
		{nil, "at least one --param"},
	} {
		dir := t.TempDir()
		args := append([]string{"sweep", "../../scenarios/quickstart.toml", "--out", dir, "--quiet"}, tc.args...)
		var stdout, stderr bytes.Buffer
		err := run(args, &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.args, err, tc.want)
		}
		if m, _ := filepath.Glob(filepath.Join(dir, "run-*")); len(m) > 0 {
			t.Errorf("%q: runs written before the error", tc.args)
		}
	}
	var stdout, stderr bytes.Buffer
	if err := run([]string{"sweep", "../../scenarios/quickstart.toml", "--param", "radio.sf=7"}, &stdout, &stderr); err == nil || !strings.Contains(err.Error(), "--out") {
		t.Errorf("no --out: %v", err)
	}
}
