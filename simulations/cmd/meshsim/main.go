// Command meshsim runs meshd's routing engine over simulated radios and
// links, deterministically, from a TOML scenario.
//
// Usage:
//
//	meshsim run SCENARIO [--seed N] [--out DIR] [--set key=value ...] [--trace] [--quiet] [--cpuprofile FILE]
//
// It prints a summary (simulated time, wall time, speed-up, events per
// second, delivery ratio, latency percentiles) and, with --out, writes the
// resolved scenario, summary.json, messages.csv, nodes.csv and, with
// --trace, trace.jsonl into DIR.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"meshd.dev/meshd/simulations/sim"
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

var errUsage = errors.New("usage: meshsim run SCENARIO [--seed N] [--out DIR] [--set key=value ...] [--trace] [--quiet]")

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "run" {
		return errUsage
	}
	fs := flag.NewFlagSet("meshsim run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	seed := fs.String("seed", "", "override the scenario's seed")
	out := fs.String("out", "", "directory for the outputs")
	trace := fs.Bool("trace", false, "write trace.jsonl into --out")
	quiet := fs.Bool("quiet", false, "no progress line")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the run to this file")
	var sets multi
	fs.Var(&sets, "set", "override a scenario field, key=value (dotted keys; repeatable)")
	// Flags may come before or after the scenario path.
	var pos []string
	rest := args[1:]
	for {
		if err := fs.Parse(rest); err != nil {
			return fmt.Errorf("%w: %w", errUsage, err)
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if len(pos) != 1 {
		return errUsage
	}
	if *seed != "" {
		if _, err := strconv.ParseUint(*seed, 10, 64); err != nil {
			return fmt.Errorf("--seed %q: %w", *seed, err)
		}
		sets = append(sets, "seed="+*seed)
	}
	if *trace && *out == "" {
		return fmt.Errorf("--trace needs --out")
	}
	sc, err := sim.Load(pos[0], sets)
	if err != nil {
		return err
	}
	var tr *sim.Tracer
	var traceFile *os.File
	var traceBuf *bufio.Writer
	if *trace {
		if err := os.MkdirAll(*out, 0o755); err != nil {
			return err
		}
		traceFile, err = os.Create(filepath.Join(*out, "trace.jsonl"))
		if err != nil {
			return err
		}
		defer traceFile.Close()
		traceBuf = bufio.NewWriterSize(traceFile, 1<<20)
		tr = sim.NewTracer(traceBuf)
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	wallStart := time.Now() // wall time only for the performance report
	s, err := sim.New(sc, tr)
	if err != nil {
		return err
	}
	var progress func(time.Duration, uint64)
	lastPrint := wallStart
	if !*quiet {
		progress = func(simulated time.Duration, events uint64) {
			if now := time.Now(); now.Sub(lastPrint) >= 200*time.Millisecond {
				lastPrint = now
				el := now.Sub(wallStart).Seconds()
				fmt.Fprintf(stderr, "\r%s / %s simulated, %.0f events/s   ", simulated, sc.Duration.Duration, float64(events)/el)
			}
		}
	}
	s.Run(progress)
	wall := time.Since(wallStart)
	if progress != nil && lastPrint != wallStart {
		fmt.Fprintln(stderr)
	}
	sum := s.Summary()
	if traceBuf != nil {
		if err := traceBuf.Flush(); err != nil {
			return err
		}
	}
	if *out != "" {
		if err := s.WriteOutputs(*out); err != nil {
			return err
		}
	}
	w := wall.Seconds()
	fmt.Fprintf(stdout, "scenario        %s (seed %d)\n", sum.Scenario, sum.Seed)
	fmt.Fprintf(stdout, "nodes           %d (%d radio), %d IP links\n", sum.Nodes, sum.RadioNodes, sum.IPLinks)
	fmt.Fprintf(stdout, "simulated       %s\n", sum.Simulated)
	fmt.Fprintf(stdout, "wall time       %.3fs\n", w)
	fmt.Fprintf(stdout, "speed-up        %.0fx (simulated s per wall s)\n", sc.Duration.Seconds()/w)
	fmt.Fprintf(stdout, "events          %d (%.0f/s)\n", sum.Events, float64(sum.Events)/w)
	fmt.Fprintf(stdout, "messages        %d sent, %d delivered, %d refused: delivery ratio %.3f\n", sum.Sent, sum.Delivered, sum.Refused, sum.DeliveryRatio)
	fmt.Fprintf(stdout, "latency         p50 %.3fs  p90 %.3fs  p99 %.3fs\n", sum.LatencyP50, sum.LatencyP90, sum.LatencyP99)
	fmt.Fprintf(stdout, "radio           %.1fs airtime, %d collisions, %d half-duplex losses, %d duty-cycle deferrals (%.1fs blocked)\n",
		sum.AirtimeS, sum.Collisions, sum.HalfDuplex, sum.Deferrals, sum.BlockedS)
	if sum.Broadcasts > 0 {
		fmt.Fprintf(stdout, "broadcasts      %d sent, %d deliveries\n", sum.Broadcasts, sum.BroadcastRx)
	}
	fmt.Fprintf(stdout, "trace sha256    %s\n", sum.TraceSHA256)
	if *out != "" {
		fmt.Fprintf(stdout, "outputs         %s\n", *out)
	}
	return nil
}
