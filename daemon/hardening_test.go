package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
)

// TestMetricsPublicRefused: --metrics on an address other hosts can reach
// is refused unless metrics_public allows it.
func TestMetricsPublicRefused(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:7722", "[::]:7722", ":7722", "192.0.2.1:7722"} {
		c := testConfig(t)
		c.Metrics = addr
		err := c.Validate()
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "metrics_public") {
			t.Errorf("metrics %q: %v, want a refusal naming metrics_public", addr, err)
		}
		c.MetricsPublic = true
		if err := c.Validate(); err != nil {
			t.Errorf("metrics %q with metrics_public: %v", addr, err)
		}
	}
	c := testConfig(t)
	c.Metrics = "127.0.0.1:7722"
	if err := c.Validate(); err != nil {
		t.Errorf("loopback metrics: %v", err)
	}
}

// TestMetricsPublicAuth: public metrics are served only with the API token
// (as a bearer token or a basic-auth password).
func TestMetricsPublicAuth(t *testing.T) {
	n, stop := startNode(t, testConfig(t))
	defer stop()
	m, err := startMetricsAuth(n, "127.0.0.1:0", "s3cret", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer m.shutdown(context.Background())
	get := func(mod func(*http.Request)) int {
		req, _ := http.NewRequest("GET", "http://"+m.Addr()+"/metrics", nil)
		mod(req)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for name, c := range map[string]struct {
		mod  func(*http.Request)
		want int
	}{
		"none":         {func(*http.Request) {}, http.StatusUnauthorized},
		"wrong bearer": {func(r *http.Request) { r.Header.Set("Authorization", "Bearer nope") }, http.StatusUnauthorized},
		"wrong basic":  {func(r *http.Request) { r.SetBasicAuth("prometheus", "nope") }, http.StatusUnauthorized},
		"bearer":       {func(r *http.Request) { r.Header.Set("Authorization", "Bearer s3cret") }, http.StatusOK},
		"basic":        {func(r *http.Request) { r.SetBasicAuth("prometheus", "s3cret") }, http.StatusOK},
	} {
		if got := get(c.mod); got != c.want {
			t.Errorf("%s: status %d, want %d", name, got, c.want)
		}
	}
}

// TestDataDirWritableRefused: a data directory other users can write to is
// refused (they could swap the identity key or the database), as ssh's
// StrictModes refuses such a home directory.
func TestDataDirWritableRefused(t *testing.T) {
	for _, mode := range []os.FileMode{0o770, 0o707, 0o777} {
		c := testConfig(t)
		if err := os.Chmod(c.DataDir, mode); err != nil {
			t.Fatal(err)
		}
		n, err := Open(context.Background(), c, Options{})
		if err == nil {
			n.Close()
		}
		if !errors.Is(err, ErrUnsafeDataDir) || !strings.Contains(err.Error(), "chmod") {
			t.Errorf("mode %04o: %v, want ErrUnsafeDataDir with a chmod hint", mode, err)
		}
	}
}
