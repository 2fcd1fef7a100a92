package daemon

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The [store] settings: defaults, and the bounds Validate holds.
func TestConfigStore(t *testing.T) {
	d := DefaultConfig()
	if time.Duration(d.Store.GCInterval) != DefaultGCInterval || d.Store.MinFree != DefaultMinFree {
		t.Errorf("defaults: %+v", d.Store)
	}
	for doc, want := range map[string]string{
		"[store]\ngc_interval = \"10s\"\n": "store.gc_interval",
		"[store]\nmin_free = 1048576\n":    "store.min_free",
		"[store]\nmin_fre = 1\n":           `unknown field "store.min_fre"`,
	} {
		dir := t.TempDir()
		writeConfig(t, dir, doc)
		_, _, err := loadWith(t, []string{"--data-dir", dir})
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an ErrConfig naming %s", doc, err, want)
		}
	}
}

// One upkeep round runs the GC and the free-space check and shows in the
// metrics; the upkeep goroutine ends with the node (noLeaks).
func TestUpkeepMetrics(t *testing.T) {
	noLeaks(t)
	n, stop := startNode(t, testConfig(t))
	defer stop()
	n.upkeep()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := startMetrics(n, "127.0.0.1:0", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer m.shutdown(ctx)
	resp, err := http.Get("http://" + m.Addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		"meshd_store_gc_runs_total 1", "meshd_store_gc_vlog_rewrites_total 0", "meshd_store_gc_errors_total 0",
		"meshd_store_disk_low 0", "meshd_store_disk_full_refused_total 0", "meshd_store_disk_bytes ",
		"meshd_store_gc_reclaimed_bytes_total ",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
