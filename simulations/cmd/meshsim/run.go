package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"time"

	"github.com/schollz/progressbar/v3"

	"meshd.dev/meshd/simulations/sim"
)

func runCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("meshsim run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	seed := fs.String("seed", "", "override the scenario's seed")
	out := fs.String("out", "", "directory for the outputs")
	trace := fs.Bool("trace", false, "write trace.jsonl into --out")
	quiet := fs.Bool("quiet", false, "no progress bar")
	noPlots := fs.Bool("no-plots", false, "do not write the plots into --out")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the run to this file")
	memprofile := fs.String("memprofile", "", "write a heap profile at the end of the run to this file")
	noCache := fs.Bool("no-verify-cache", false, "every engine verifies every announce and opens every channel frame itself, as in the daemon (slower; same results)")
	noHuge := fs.Bool("no-huge-pages", false, "do not ask Linux for 2 MB pages for the heap (slower on large runs; same results)")
	var sets multi
	fs.Var(&sets, "set", "override a scenario field, key=value (dotted keys; repeatable)")
	workers := fs.Int("workers", min(2, runtime.GOMAXPROCS(0)), "goroutines that run the engines of a radio frame's receivers: 1, or 2 for a second core (same results)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
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
	if *workers < 1 || *workers > 2 {
		return fmt.Errorf("--workers %d: 1 or 2", *workers)
	}
	if *trace && *out == "" {
		return fmt.Errorf("--trace needs --out")
	}
	sc, err := sim.Load(pos[0], sets)
	if err != nil {
		return err
	}
	var tr *sim.Tracer
	var traceBuf *bufio.Writer
	var traceFile *os.File
	if *trace {
		if err := os.MkdirAll(*out, 0o755); err != nil {
			return err
		}
		traceFile, err = os.Create(filepath.Join(*out, "trace.jsonl"))
		if err != nil {
			return err
		}
		defer traceFile.Close() // on an early return; the run's end checks its error
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
	if !*noHuge {
		defer startHugePages()()
	}
	wallStart := time.Now() // wall time only for the performance report
	s, err := sim.NewWith(sc, sim.Options{Trace: tr, NoVerifyCache: *noCache, Workers: *workers})
	if err != nil {
		return err
	}
	built := time.Since(wallStart)
	var progress func(time.Duration, uint64)
	var bar *progressbar.ProgressBar
	if !*quiet && terminal(stderr) {
		bar = newRunBar(stderr, sc.Duration.Duration)
		runStart := time.Now()
		progress = func(simulated time.Duration, events uint64) {
			el := time.Since(runStart).Seconds()
			bar.Describe(fmt.Sprintf("%s simulated, %.0f events/s", simulated.Truncate(time.Second), float64(events)/max(el, 1e-9)))
			_ = bar.Set64(int64(simulated / time.Second))
		}
	}
	s.Run(progress)
	wall := time.Since(wallStart)
	if bar != nil {
		_ = bar.Finish()
		fmt.Fprintln(stderr)
	}
	if *memprofile != "" {
		f, err := os.Create(*memprofile)
		if err != nil {
			return err
		}
		runtime.GC()
		err = pprof.WriteHeapProfile(f)
		f.Close()
		if err != nil {
			return err
		}
	}
	sum := s.Summary()
	if traceBuf != nil {
		if err := tr.Err(); err != nil {
			return fmt.Errorf("trace: %w", err)
		}
		if err := traceBuf.Flush(); err != nil {
			return err
		}
		if err := traceFile.Close(); err != nil { // some file systems report a failed write only here
			return err
		}
	}
	if *out != "" {
		if err := s.WriteOutputs(*out); err != nil {
			return err
		}
		if !*noPlots {
			if err := s.WritePlots(*out); err != nil {
				return err
			}
		}
	}
	w := wall.Seconds()
	fmt.Fprintf(stdout, "scenario        %s (seed %d)\n", sum.Scenario, sum.Seed)
	fmt.Fprintf(stdout, "nodes           %d (%d radio), %d IP links\n", sum.Nodes, sum.RadioNodes, sum.IPLinks)
	fmt.Fprintf(stdout, "simulated       %s\n", sum.Simulated)
	fmt.Fprintf(stdout, "wall time       %.3fs (%.3fs building the network)\n", w, built.Seconds())
	fmt.Fprintf(stdout, "speed-up        %.0fx (simulated s per wall s)\n", sc.Duration.Seconds()/w)
	fmt.Fprintf(stdout, "events          %d (%.0f/s)\n", sum.Events, float64(sum.Events)/w)
	fmt.Fprintf(stdout, "messages        %d sent, %d delivered, %d refused: delivery ratio %.3f\n", sum.Sent, sum.Delivered, sum.Refused, sum.DeliveryRatio)
	fmt.Fprintf(stdout, "latency         p50 %.3fs  p90 %.3fs  p99 %.3fs; hops mean %.2f, max %d\n", sum.LatencyP50, sum.LatencyP90, sum.LatencyP99, sum.HopsMean, sum.HopsMax)
	fmt.Fprintf(stdout, "radio           %.1fs airtime, %d collisions, %d half-duplex losses, %d duty-cycle deferrals (%.1fs blocked)\n",
		sum.AirtimeS, sum.Collisions, sum.HalfDuplex, sum.Deferrals, sum.BlockedS)
	if sum.Broadcasts > 0 {
		fmt.Fprintf(stdout, "broadcasts      %d sent, %d deliveries\n", sum.Broadcasts, sum.BroadcastRx)
		fmt.Fprintf(stdout, "channel         %d members: delivery ratio %.4f (worst broadcast %.4f), %d duplicates to apps, latency p50 %.3fs  p90 %.3fs  p99 %.3fs, %d gossip messages (%d duplicates)\n",
			sum.ChannelMembers, sum.ChannelDeliveryRatio, sum.ChannelRatioMin, sum.ChannelDuplicates,
			sum.BroadcastLatencyP50, sum.BroadcastLatencyP90, sum.BroadcastLatencyP99, sum.Frames["gossip"], sum.GossipDuplicates)
	}
	if f := sum.FAPP; f != nil {
		fmt.Fprintf(stdout, "fapp            %d relays, %d therapists, %d patients in %d regions; %d announces: 99 %% of relays reached by %.1f %% of them, in p50 %.3fs  p99 %.3fs  max %.3fs\n",
			f.Relays, f.Therapists, f.Patients, f.Regions, f.Announces, 100*f.Relay99.Share, f.Relay99.P50, f.Relay99.P99, f.Relay99.Max)
		fmt.Fprintf(stdout, "fapp queries    %d: success %.4f, recall %.4f; %d reservations (%d confirmed, %d declined, %d unanswered of which %d refused: no longer on offer), round trip p50 %.3fs  p99 %.3fs\n",
			f.Queries, f.Success, f.Recall, f.Reservations, f.Confirmed, f.Declined, f.Unanswered, f.Refused, f.RoundTrip.P50, f.RoundTrip.P99)
	}
	if sum.Crashes > 0 {
		fmt.Fprintf(stdout, "churn           %d crashes, %.0fs down in all\n", sum.Crashes, sum.DowntimeS)
	}
	if hits, adds := s.VerifyCacheStats(); adds > 0 {
		fmt.Fprintf(stdout, "verify cache    %d announces verified, %d verifications saved\n", adds, hits)
	}
	if frames, steps, helper, stalls, idles := s.FanOutStats(); frames > 0 {
		fmt.Fprintf(stdout, "workers         2: %d frames fanned out, %d engine steps, %.0f %% of them on the helper; helper set aside %d times descheduled, %d times starved\n",
			frames, steps, 100*float64(helper)/float64(max(steps, 1)), stalls, idles)
		trials, won := s.FanOutTrials()
		fmt.Fprintf(stdout, "                the fan-out faster in %d of %d trials against the run's goroutine alone\n", won, trials)
	}
	fmt.Fprintf(stdout, "trace sha256    %s\n", sum.TraceSHA256)
	if *out != "" {
		fmt.Fprintf(stdout, "outputs         %s\n", *out)
	}
	return nil
}

// newRunBar is the progress bar of a run, in simulated seconds.
func newRunBar(w io.Writer, d time.Duration) *progressbar.ProgressBar {
	return progressbar.NewOptions64(int64(d/time.Second),
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(250*time.Millisecond),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionShowElapsedTimeOnFinish(),
		progressbar.OptionSetDescription("starting"),
	)
}
