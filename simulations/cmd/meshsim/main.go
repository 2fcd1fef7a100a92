// Command meshsim runs meshd's routing engine over simulated radios and
// links, deterministically, from a TOML scenario.
//
// Usage:
//
//	meshsim run SCENARIO [--seed N] [--out DIR] [--set key=value ...] [--trace] [--quiet] [--no-plots] [--no-verify-cache] [--no-huge-pages] [--workers N] [--cpuprofile FILE] [--memprofile FILE]
//	meshsim sweep SCENARIO --param key=v1,v2,... [--param ...] [--seeds N] [--jobs N] [--set key=value ...] --out DIR [--plots] [--quiet]
//	meshsim sweep ... --out DIR --emit slurm|k8s [--meshsim PATH] [--image IMAGE] [--pvc CLAIM] [--name NAME] [--partition P] [--parallel N]
//	meshsim task DIR [INDEX] [--plots]
//	meshsim merge DIR
//
// run prints a summary (simulated time, wall time, speed-up, events per
// second, delivery ratio, latency percentiles) and, with --out, writes the
// resolved scenario, summary.json, messages.csv, nodes.csv, the plots (PNG
// and SVG) and, with --trace, trace.jsonl into DIR. A progress bar on
// stderr shows the simulated time and events per second (not with --quiet,
// nor when stderr is not a terminal).
//
// sweep runs one simulation per point of the parameter grid and per seed,
// --jobs at a time (default GOMAXPROCS; every simulation is single-threaded
// and deterministic), writes each run's outputs into DIR/run-NNNN and
// DIR/sweep.csv with the parameters and the summary metrics of every run,
// and DIR/sweep-ci.csv with each grid point's means and 95 % confidence
// intervals across the seeds.
//
// sweep --emit writes the runs as a batch job instead of running them:
// DIR/tasks/task-NNNN.toml (each run's resolved scenario), DIR/sweep.json
// (the manifest) and DIR/sweep.slurm (a Slurm job array, one run per array
// index: sbatch DIR/sweep.slurm) or DIR/sweep-job.json (a Kubernetes
// Indexed Job; the sweep directory on the PersistentVolumeClaim --pvc).
// Each array task runs `meshsim task DIR INDEX` (INDEX defaults to
// $SLURM_ARRAY_TASK_ID or $JOB_COMPLETION_INDEX), which writes DIR/run-NNNN;
// `meshsim merge DIR` then writes the same sweep.csv and sweep-ci.csv as a
// local sweep.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "meshsim:", err)
		if errors.Is(err, errUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

var errUsage = errors.New(`usage:
  meshsim run SCENARIO [--seed N] [--out DIR] [--set key=value ...] [--trace] [--quiet] [--no-plots] [--no-verify-cache] [--no-huge-pages] [--workers N] [--cpuprofile FILE] [--memprofile FILE]
  meshsim sweep SCENARIO --param key=v1,v2,... [--param ...] [--seeds N] [--jobs N] [--set key=value ...] --out DIR [--plots] [--quiet]
  meshsim sweep ... --out DIR --emit slurm|k8s [--meshsim PATH] [--image IMAGE] [--pvc CLAIM] [--name NAME] [--partition P] [--parallel N]
  meshsim task DIR [INDEX] [--plots]
  meshsim merge DIR`)

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errUsage
	}
	switch args[0] {
	case "run":
		return runCmd(args[1:], stdout, stderr)
	case "sweep":
		return sweepCmd(args[1:], stdout, stderr)
	case "task":
		return taskCmd(args[1:], stdout, stderr)
	case "merge":
		return mergeCmd(args[1:], stdout, stderr)
	}
	return errUsage
}

// terminal reports whether w is a terminal (a character device).
func terminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// parseArgs parses fs over args, allowing flags before and after the
// positional arguments, which it returns.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, fmt.Errorf("%w: %w", errUsage, err)
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
