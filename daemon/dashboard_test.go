package daemon

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// The Grafana dashboard and the Prometheus alert rules in packaging/ must
// use only metrics meshd exports: a renamed metric would leave an empty
// panel or an alert that can never fire, and nothing else would notice.

const (
	dashboardFile = "../packaging/grafana/meshd.json"
	alertsFile    = "../packaging/prometheus/meshd-alerts.yml"
)

// exportedMetrics are the names meshd's /metrics serves: its own
// collectors (described without a node: Describe reads no node state), the
// Go and process collectors of the default registry, and "up", which
// Prometheus adds to every scrape.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{"up": true}
	fq := regexp.MustCompile(`fqName: "([^"]+)"`)
	for _, c := range []prometheus.Collector{newCollector(nil), newLinkCollector(nil), newLoRaCollector(nil),
		upkeepCollector{}, newGuardCollector(nil)} {
		ch := make(chan *prometheus.Desc, 512)
		c.Describe(ch)
		close(ch)
		for d := range ch {
			m := fq.FindStringSubmatch(d.String())
			if m == nil {
				t.Fatalf("cannot read the name of %s", d)
			}
			names[m[1]] = true
		}
	}
	// The histograms are gathered, not described, so that their
	// _bucket, _count and _sum series are known too.
	hists := prometheus.NewRegistry()
	hists.MustRegister(newDeliveryLatency())
	mfs, err := prometheus.Gatherers{hists, prometheus.DefaultGatherer}.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		names[mf.GetName()] = true
		switch mf.GetType().String() {
		case "HISTOGRAM", "SUMMARY":
			for _, s := range []string{"_count", "_sum", "_bucket"} {
				names[mf.GetName()+s] = true
			}
		}
	}
	return names
}

var (
	promStrings   = regexp.MustCompile("\"(?:[^\"\\\\]|\\\\.)*\"|'(?:[^'\\\\]|\\\\.)*'|`[^`]*`")
	promMatchers  = regexp.MustCompile(`\{[^{}]*\}`)
	promRanges    = regexp.MustCompile(`\[[^\[\]]*\]`)
	promGrouping  = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)`)
	promIdent     = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	promKeywords  = []string{"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right", "inf", "nan", "atan2"}
	labelValuesFn = regexp.MustCompile(`^label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)`)
)

// metricNames returns the metric names a PromQL expression selects. A
// regexp reading, not a parser: it blanks strings, label matchers, ranges
// and grouping label lists, then takes every identifier that is not a
// function call or a keyword. An expression it cannot read yields no name,
// which the callers treat as an error.
func metricNames(expr string) []string {
	e := promStrings.ReplaceAllString(expr, `""`)
	e = promMatchers.ReplaceAllString(e, " ")
	e = promRanges.ReplaceAllString(e, " ")
	e = promGrouping.ReplaceAllString(e, " ")
	var out []string
	for _, loc := range promIdent.FindAllStringIndex(e, -1) {
		name := e[loc[0]:loc[1]]
		// A letter after a digit, a dot or $ is part of a number, a
		// duration (5m) or a Grafana variable, not a name.
		if loc[0] > 0 && strings.ContainsRune("0123456789.$", rune(e[loc[0]-1])) {
			continue
		}
		call := strings.HasPrefix(strings.TrimLeft(e[loc[1]:], " \t\n"), "(")
		if call || slices.Contains(promKeywords, strings.ToLower(name)) {
			continue
		}
		out = append(out, name)
	}
	return out
}

func TestMetricNamesReadsPromQL(t *testing.T) {
	for expr, want := range map[string][]string{
		`meshd_links`: {"meshd_links"},
		`sum by (instance, kind) (rate(meshd_link_bytes_in_total{kind="ip", instance=~"$instance"}[$__rate_interval]))`: {"meshd_link_bytes_in_total"},
		`increase(a_total[1h]) / on (instance) group_left (port) b offset 5m > bool 0.5`:                                {"a_total", "b"},
		`up{job="by (x) rate(y)"} == 0 unless absent(z)`:                                                                {"up", "z"},
		`histogram_quantile(0.99, sum by (le) (rate(x_bucket[5m])))`:                                                    {"x_bucket"},
		`-rate(x[1m]) * 1e3 + inf`: {"x"},
	} {
		if got := metricNames(expr); !slices.Equal(got, want) {
			t.Errorf("metricNames(%q) = %q, want %q", expr, got, want)
		}
	}
}

// checkExpr reports an expression that selects no metric or one meshd does
// not export.
func checkExpr(where, expr string, known map[string]bool) error {
	names := metricNames(expr)
	if len(names) == 0 {
		return fmt.Errorf("%s: no metric name in %q", where, expr)
	}
	for _, n := range names {
		if !known[n] {
			return fmt.Errorf("%s: %q is not a metric meshd exports (in %q)", where, n, expr)
		}
	}
	return nil
}

func TestCheckExprRefusesUnknownMetrics(t *testing.T) {
	known := exportedMetrics(t)
	for _, bad := range []string{
		`meshd_custody_depth`,                             // never existed
		`rate(meshd_routing_delivered{instance="x"}[5m])`, // counter without _total
		`sum(rate(meshd_links_total[5m]))`,
		`1 + 2`,
	} {
		if err := checkExpr("test", bad, known); err == nil {
			t.Errorf("checkExpr accepted %q", bad)
		}
	}
	if err := checkExpr("test", `rate(meshd_routing_delivered_total[5m]) and meshd_links > 0`, known); err != nil {
		t.Error(err)
	}
}

func TestAlertRulesUseExportedMetrics(t *testing.T) {
	known := exportedMetrics(t)
	doc, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	alerts := 0
	for i, line := range strings.Split(string(doc), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "- alert:") {
			alerts++
		}
		expr, ok := strings.CutPrefix(trimmed, "expr:")
		if !ok {
			continue
		}
		expr = strings.TrimSpace(expr)
		if expr == "" || strings.ContainsAny(expr[:1], "|>") {
			t.Errorf("%s:%d: write the expression on the expr: line itself", alertsFile, i+1)
			continue
		}
		if err := checkExpr(fmt.Sprintf("%s:%d", alertsFile, i+1), expr, known); err != nil {
			t.Error(err)
		}
	}
	if alerts == 0 {
		t.Fatalf("%s: no alerts found", alertsFile)
	}
}

// grafanaPanel is what the test reads of a dashboard panel.
type grafanaPanel struct {
	ID         int                 `json:"id"`
	Type       string              `json:"type"`
	Title      string              `json:"title"`
	GridPos    *struct{ H, W int } `json:"gridPos"`
	Datasource *struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"`
}

type grafanaDashboard struct {
	UID           string         `json:"uid"`
	Title         string         `json:"title"`
	SchemaVersion int            `json:"schemaVersion"`
	Panels        []grafanaPanel `json:"panels"`
	Templating    struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

func TestGrafanaDashboard(t *testing.T) {
	known := exportedMetrics(t)
	doc, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d grafanaDashboard
	if err := json.Unmarshal(doc, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if d.UID == "" || d.Title == "" || d.SchemaVersion == 0 || len(d.Panels) == 0 {
		t.Fatalf("%s: needs uid, title, schemaVersion and panels", dashboardFile)
	}
	checkTemplating(t, d, known)
	ids := map[int]string{}
	var walk func(ps []grafanaPanel)
	walk = func(ps []grafanaPanel) {
		for _, p := range ps {
			checkPanel(t, p, ids, known)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
}

// checkTemplating wants a Prometheus data source variable (so the dashboard
// imports into any Grafana) and template queries on exported metrics.
func checkTemplating(t *testing.T, d grafanaDashboard, known map[string]bool) {
	t.Helper()
	hasDS := false
	for _, v := range d.Templating.List {
		switch q := v.Query.(type) {
		case string:
			if v.Type == "datasource" && v.Name == "datasource" && q == "prometheus" {
				hasDS = true
			}
		case map[string]any:
			s, _ := q["query"].(string)
			m := labelValuesFn.FindStringSubmatch(s)
			if m == nil || !known[m[1]] {
				t.Errorf("variable %s: query %q is not label_values() of an exported metric", v.Name, s)
			}
		}
	}
	if !hasDS {
		t.Error(`no "datasource" variable of type datasource for prometheus`)
	}
}

func checkPanel(t *testing.T, p grafanaPanel, ids map[int]string, known map[string]bool) {
	t.Helper()
	if p.ID == 0 {
		t.Errorf("panel %q has no id", p.Title)
	} else if other, dup := ids[p.ID]; dup {
		t.Errorf("panels %q and %q share id %d", other, p.Title, p.ID)
	}
	ids[p.ID] = p.Title
	if p.Title == "" || p.Type == "" || p.GridPos == nil || p.GridPos.H == 0 || p.GridPos.W == 0 {
		t.Errorf("panel %d needs a title, a type and a gridPos", p.ID)
	}
	if p.Type == "row" || p.Type == "text" {
		return
	}
	if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
		t.Errorf("panel %q: datasource must be ${datasource}", p.Title)
	}
	if len(p.Targets) == 0 {
		t.Errorf("panel %q has no queries", p.Title)
	}
	refs := map[string]bool{}
	for _, tg := range p.Targets {
		if tg.RefID == "" || refs[tg.RefID] {
			t.Errorf("panel %q: missing or repeated refId %q", p.Title, tg.RefID)
		}
		refs[tg.RefID] = true
		if err := checkExpr("panel "+p.Title, tg.Expr, known); err != nil {
			t.Error(err)
		}
	}
}
