package main

import (
	"math"
	"strconv"
	"strings"

	"meshd.dev/meshd/simulations/sim"
)

// ciMetrics are the sweep.csv columns that sweep-ci.csv summarises across
// the seeds of each grid point.
var ciMetrics = []string{
	"delivery_ratio", "latency_p50_s", "latency_p99_s", "hops_mean",
	"channel_delivery_ratio", "broadcast_reach", "broadcast_transmissions_per_broadcast", "broadcast_airtime_s",
	"broadcast_latency_p50_s", "broadcast_latency_p99_s",
	"airtime_s", "collisions", "duty_cycle_blocked_s",
}

// tQuantile975 is Student's t 0.975 quantile for df degrees of freedom
// (the 95 % two-sided interval): the table for 1..30, then 40, 60, 120
// and the normal 1.96.
func tQuantile975(df int) float64 {
	table := [...]float64{12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
		2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
		2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042}
	switch {
	case df < 1:
		return math.NaN()
	case df <= len(table):
		return table[df-1]
	case df < 60:
		return 2.021
	case df < 120:
		return 2.000
	case df < 1000:
		return 1.980
	}
	return 1.960
}

// meanCI returns the mean of xs and the half-width of its 95 % confidence
// interval (t distribution; NaN for fewer than two values).
func meanCI(xs []float64) (mean, half float64) {
	n := float64(len(xs))
	for _, x := range xs {
		mean += x
	}
	mean /= n
	if len(xs) < 2 {
		return mean, math.NaN()
	}
	var ss float64
	for _, x := range xs {
		ss += (x - mean) * (x - mean)
	}
	sd := math.Sqrt(ss / (n - 1))
	return mean, tQuantile975(len(xs)-1) * sd / math.Sqrt(n)
}

// writeSweepCI writes sweep-ci.csv: per grid point (in grid order), the
// number of seeds and, per metric of ciMetrics, the mean and the
// half-width of its 95 % confidence interval across the seeds (empty for
// one seed, or where the metric does not apply).
func writeSweepCI(path string, ps []param, runs []*sweepRun) error {
	get := map[string]func(*sim.Summary) string{}
	for _, c := range sweepColumns {
		get[c.name] = c.get
	}
	hdr := []string{}
	for _, p := range ps {
		hdr = append(hdr, p.key)
	}
	hdr = append(hdr, "seeds")
	for _, m := range ciMetrics {
		hdr = append(hdr, m+"_mean", m+"_ci95")
	}
	rows := [][]string{hdr}
	var order []string
	groups := map[string][]*sweepRun{}
	for _, r := range runs {
		k := strings.Join(r.values, "\x00")
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], r)
	}
	for _, k := range order {
		g := groups[k]
		row := append(append([]string(nil), g[0].values...), strconv.Itoa(len(g)))
		for _, m := range ciMetrics {
			var xs []float64
			for _, r := range g {
				if v, err := strconv.ParseFloat(get[m](&r.sum), 64); err == nil {
					xs = append(xs, v)
				}
			}
			if len(xs) == 0 {
				row = append(row, "", "")
				continue
			}
			mean, half := meanCI(xs)
			h := ""
			if !math.IsNaN(half) {
				h = strconv.FormatFloat(half, 'g', 6, 64)
			}
			row = append(row, strconv.FormatFloat(mean, 'g', 6, 64), h)
		}
		rows = append(rows, row)
	}
	return sim.WriteCSV(path, rows)
}
