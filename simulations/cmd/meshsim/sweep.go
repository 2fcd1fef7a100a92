package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"

	"meshd.dev/meshd/simulations/sim"
)

// param is one --param: a dotted scenario key and its values.
type param struct {
	key    string
	values []string
}

// splitValues splits a --param value list at commas that are not inside
// brackets, braces or quotes, so that "[1, 2],[3]" is two values.
func splitValues(s string) ([]string, error) {
	var out []string
	depth, start := 0, 0
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '[' || c == '{':
			depth++
		case c == ']' || c == '}':
			depth--
		case c == ',' && depth == 0:
			out = append(out, strings.TrimSpace(s[start:i]))
			start = i + 1
		}
	}
	if quote != 0 || depth != 0 {
		return nil, fmt.Errorf("unbalanced quotes or brackets in %q", s)
	}
	out = append(out, strings.TrimSpace(s[start:]))
	for _, v := range out {
		if v == "" {
			return nil, fmt.Errorf("empty value in %q", s)
		}
	}
	return out, nil
}

func parseParams(raw []string) ([]param, error) {
	var ps []param
	seen := map[string]bool{}
	for _, r := range raw {
		k, v, ok := strings.Cut(r, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("--param %q: want key=v1,v2,...", r)
		}
		if seen[k] {
			return nil, fmt.Errorf("--param %s given twice", k)
		}
		seen[k] = true
		vals, err := splitValues(v)
		if err != nil {
			return nil, fmt.Errorf("--param %s: %w", k, err)
		}
		ps = append(ps, param{key: k, values: vals})
	}
	return ps, nil
}

// sweepRun is one simulation of a sweep.
type sweepRun struct {
	index  int
	dir    string
	values []string // per param
	seed   uint64
	sc     *sim.Scenario
	sum    sim.Summary
	err    error
}

// grid lists every combination of the parameters' values (the first
// parameter varies slowest).
func grid(ps []param) [][]string {
	points := [][]string{{}}
	for _, p := range ps {
		var next [][]string
		for _, pt := range points {
			for _, v := range p.values {
				next = append(next, append(append([]string(nil), pt...), v))
			}
		}
		points = next
	}
	return points
}

func sweepCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("meshsim sweep", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "directory for the outputs (required)")
	seeds := fs.Int("seeds", 1, "runs per grid point, with seeds seed, seed+1, ...")
	jobs := fs.Int("jobs", runtime.GOMAXPROCS(0), "simulations run in parallel")
	quiet := fs.Bool("quiet", false, "no progress bar")
	plots := fs.Bool("plots", false, "write every run's plots too")
	var sets, rawParams multi
	fs.Var(&sets, "set", "override a scenario field for every run, key=value (repeatable)")
	fs.Var(&rawParams, "param", "a swept field and its values, key=v1,v2,... (repeatable)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) != 1:
		return errUsage
	case *out == "":
		return fmt.Errorf("sweep needs --out")
	case *seeds < 1:
		return fmt.Errorf("--seeds %d: at least 1", *seeds)
	case *jobs < 1:
		return fmt.Errorf("--jobs %d: at least 1", *jobs)
	case len(rawParams) == 0 && *seeds == 1:
		return fmt.Errorf("sweep needs at least one --param or --seeds above 1")
	}
	ps, err := parseParams(rawParams)
	if err != nil {
		return err
	}
	for _, p := range ps {
		if p.key == "seed" && *seeds > 1 {
			return fmt.Errorf("--param seed and --seeds %d: give one or the other", *seeds)
		}
	}
	// Resolve and validate every run before the first one starts.
	var runs []*sweepRun
	for _, pt := range grid(ps) {
		pset := append([]string(nil), sets...)
		var desc []string
		for i, p := range ps {
			pset = append(pset, p.key+"="+pt[i])
			desc = append(desc, p.key+"="+pt[i])
		}
		base, err := sim.Load(pos[0], pset)
		if err != nil {
			return fmt.Errorf("sweep point %s: %w", strings.Join(desc, " "), err)
		}
		for k := range *seeds {
			r := &sweepRun{index: len(runs), values: pt, seed: base.Seed + uint64(k), sc: base}
			if k > 0 {
				if r.sc, err = sim.Load(pos[0], append(pset, "seed="+strconv.FormatUint(r.seed, 10))); err != nil {
					return fmt.Errorf("sweep point %s seed %d: %w", strings.Join(desc, " "), r.seed, err)
				}
			}
			r.dir = filepath.Join(*out, fmt.Sprintf("run-%04d", r.index))
			runs = append(runs, r)
		}
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	var bar *progressbar.ProgressBar
	if !*quiet && terminal(stderr) {
		bar = progressbar.NewOptions(len(runs), progressbar.OptionSetWriter(stderr), progressbar.OptionSetWidth(30),
			progressbar.OptionShowCount(), progressbar.OptionSetPredictTime(true), progressbar.OptionSetDescription("runs"),
			progressbar.OptionThrottle(250*time.Millisecond))
	}
	wallStart := time.Now()
	runAll(runs, *jobs, *plots, func() {
		if bar != nil {
			_ = bar.Add(1)
		}
	})
	wall := time.Since(wallStart)
	if bar != nil {
		_ = bar.Finish()
		fmt.Fprintln(stderr)
	}
	for _, r := range runs {
		if r.err != nil {
			return fmt.Errorf("run %d (%s): %w", r.index, r.dir, r.err)
		}
	}
	if err := writeSweepCSV(filepath.Join(*out, "sweep.csv"), ps, runs); err != nil {
		return err
	}
	var simulated float64
	for _, r := range runs {
		simulated += r.sc.Duration.Seconds()
	}
	fmt.Fprintf(stdout, "sweep           %d runs (%d grid points x %d seeds), %d at a time\n", len(runs), len(runs)/(*seeds), *seeds, min(*jobs, len(runs)))
	fmt.Fprintf(stdout, "wall time       %.3fs (%.0f simulated s per wall s in all)\n", wall.Seconds(), simulated/wall.Seconds())
	fmt.Fprintf(stdout, "outputs         %s\n", filepath.Join(*out, "sweep.csv"))
	return nil
}

// runAll runs every simulation, jobs at a time. Each simulation is
// single-threaded and shares nothing with the others, so the results do not
// depend on jobs or on the order in which runs finish.
func runAll(runs []*sweepRun, jobs int, plots bool, done func()) {
	work := make(chan *sweepRun)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for range min(jobs, len(runs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range work {
				r.err = r.run(plots)
				mu.Lock()
				done()
				mu.Unlock()
			}
		}()
	}
	for _, r := range runs {
		work <- r
	}
	close(work)
	wg.Wait()
}

func (r *sweepRun) run(plots bool) error {
	s, err := sim.New(r.sc, nil)
	if err != nil {
		return err
	}
	s.Run(nil)
	r.sum = s.Summary()
	if err := s.WriteOutputs(r.dir); err != nil {
		return err
	}
	if plots {
		return s.WritePlots(r.dir)
	}
	return nil
}

// sweepColumns are the summary metrics in sweep.csv.
var sweepColumns = []struct {
	name string
	get  func(*sim.Summary) string
}{
	{"nodes", func(s *sim.Summary) string { return strconv.Itoa(s.Nodes) }},
	{"events", func(s *sim.Summary) string { return u64(s.Events) }},
	{"messages_sent", func(s *sim.Summary) string { return strconv.Itoa(s.Sent) }},
	{"messages_delivered", func(s *sim.Summary) string { return strconv.Itoa(s.Delivered) }},
	{"messages_refused", func(s *sim.Summary) string { return strconv.Itoa(s.Refused) }},
	{"delivery_ratio", func(s *sim.Summary) string { return f64(s.DeliveryRatio) }},
	{"latency_p50_s", func(s *sim.Summary) string { return f64(s.LatencyP50) }},
	{"latency_p90_s", func(s *sim.Summary) string { return f64(s.LatencyP90) }},
	{"latency_p99_s", func(s *sim.Summary) string { return f64(s.LatencyP99) }},
	{"hops_mean", func(s *sim.Summary) string { return f64(s.HopsMean) }},
	{"hops_max", func(s *sim.Summary) string { return strconv.Itoa(s.HopsMax) }},
	{"broadcasts_sent", func(s *sim.Summary) string { return u64(s.Broadcasts) }},
	{"broadcast_deliveries", func(s *sim.Summary) string { return u64(s.BroadcastRx) }},
	{"broadcast_latency_p50_s", func(s *sim.Summary) string { return f64(s.BroadcastLatencyP50) }},
	{"broadcast_latency_p90_s", func(s *sim.Summary) string { return f64(s.BroadcastLatencyP90) }},
	{"broadcast_latency_p99_s", func(s *sim.Summary) string { return f64(s.BroadcastLatencyP99) }},
	{"channel_delivery_ratio", func(s *sim.Summary) string { return f64(s.ChannelDeliveryRatio) }},
	{"channel_delivery_ratio_min", func(s *sim.Summary) string { return f64(s.ChannelRatioMin) }},
	{"channel_full_reach_share", func(s *sim.Summary) string { return f64(s.ChannelFullReach) }},
	{"channel_duplicates_to_apps", func(s *sim.Summary) string { return u64(s.ChannelDuplicates) }},
	{"channel_duplicates_max_per_node", func(s *sim.Summary) string { return u64(s.ChannelDuplicatesMax) }},
	{"gossip_frames", func(s *sim.Summary) string { return u64(s.Frames["gossip"]) }},
	{"gossip_duplicates", func(s *sim.Summary) string { return u64(s.GossipDuplicates) }},
	{"lora_bulk_frames", func(s *sim.Summary) string { return u64(s.Frames["lora/bulk"]) }},
	{"airtime_s", func(s *sim.Summary) string { return f64(s.AirtimeS) }},
	{"collisions", func(s *sim.Summary) string { return u64(s.Collisions) }},
	{"half_duplex_losses", func(s *sim.Summary) string { return u64(s.HalfDuplex) }},
	{"carrier_sense_waits", func(s *sim.Summary) string { return u64(s.CarrierWaits) }},
	{"duty_cycle_deferrals", func(s *sim.Summary) string { return u64(s.Deferrals) }},
	{"duty_cycle_blocked_s", func(s *sim.Summary) string { return f64(s.BlockedS) }},
	{"node_crashes", func(s *sim.Summary) string { return u64(s.Crashes) }},
	{"node_downtime_s", func(s *sim.Summary) string { return f64(s.DowntimeS) }},
	{"engine_errors", func(s *sim.Summary) string { return u64(s.EngineErrors) }},
	{"fapp_announces", fappCol(func(f *sim.FAPPSummary) string { return strconv.Itoa(f.Announces) })},
	{"fapp_relay_reach", fappCol(func(f *sim.FAPPSummary) string { return f64(f.RelayReach) })},
	{"fapp_relay_latency_p50_s", fappCol(func(f *sim.FAPPSummary) string { return f64(f.RelayLatency.P50) })},
	{"fapp_relay_latency_p99_s", fappCol(func(f *sim.FAPPSummary) string { return f64(f.RelayLatency.P99) })},
	{"fapp_time_to_99pct_relays_share", fappCol(func(f *sim.FAPPSummary) string { return f64(f.Relay99.Share) })},
	{"fapp_time_to_99pct_relays_p50_s", fappCol(func(f *sim.FAPPSummary) string { return f64(f.Relay99.P50) })},
	{"fapp_time_to_99pct_relays_p99_s", fappCol(func(f *sim.FAPPSummary) string { return f64(f.Relay99.P99) })},
	{"fapp_time_to_99pct_relays_max_s", fappCol(func(f *sim.FAPPSummary) string { return f64(f.Relay99.Max) })},
	{"fapp_follower_reach", fappCol(func(f *sim.FAPPSummary) string { return f64(f.FollowerReach) })},
	{"fapp_queries", fappCol(func(f *sim.FAPPSummary) string { return strconv.Itoa(f.Queries) })},
	{"fapp_query_success", fappCol(func(f *sim.FAPPSummary) string { return f64(f.Success) })},
	{"fapp_query_recall", fappCol(func(f *sim.FAPPSummary) string { return f64(f.Recall) })},
	{"fapp_reservations", fappCol(func(f *sim.FAPPSummary) string { return strconv.Itoa(f.Reservations) })},
	{"fapp_confirmed", fappCol(func(f *sim.FAPPSummary) string { return strconv.Itoa(f.Confirmed) })},
	{"fapp_refused_not_on_offer", fappCol(func(f *sim.FAPPSummary) string { return strconv.Itoa(f.Refused) })},
	{"fapp_reservation_round_trip_p50_s", fappCol(func(f *sim.FAPPSummary) string { return f64(f.RoundTrip.P50) })},
	{"fapp_reservation_round_trip_p99_s", fappCol(func(f *sim.FAPPSummary) string { return f64(f.RoundTrip.P99) })},
	{"fapp_lora_airtime_s", fappCol(func(f *sim.FAPPSummary) string { return f64(f.LoRaAirtimeS) })},
	{"fapp_gossip_bytes", fappCol(func(f *sim.FAPPSummary) string { return u64(f.GossipBytes) })},
	{"trace_sha256", func(s *sim.Summary) string { return s.TraceSHA256 }},
}

// fappCol is a FAPP column: empty without a FAPP workload.
func fappCol(get func(*sim.FAPPSummary) string) func(*sim.Summary) string {
	return func(s *sim.Summary) string {
		if s.FAPP == nil {
			return ""
		}
		return get(s.FAPP)
	}
}

func u64(v uint64) string  { return strconv.FormatUint(v, 10) }
func f64(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

func writeSweepCSV(path string, ps []param, runs []*sweepRun) error {
	hdr := []string{"run", "dir"}
	for _, p := range ps {
		hdr = append(hdr, p.key)
	}
	hdr = append(hdr, "seed")
	for _, c := range sweepColumns {
		hdr = append(hdr, c.name)
	}
	rows := [][]string{hdr}
	for _, r := range runs {
		row := []string{strconv.Itoa(r.index), filepath.Base(r.dir)}
		row = append(row, r.values...)
		row = append(row, u64(r.seed))
		for _, c := range sweepColumns {
			row = append(row, c.get(&r.sum))
		}
		rows = append(rows, row)
	}
	return sim.WriteCSV(path, rows)
}
