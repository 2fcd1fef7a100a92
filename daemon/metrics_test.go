package daemon

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"meshd.dev/meshd/rpcapi"
)

func TestSnakeCase(t *testing.T) {
	for in, want := range map[string]string{
		"CustodyHandedOff": "custody_handed_off", "FramesIn": "frames_in", "Routes": "routes",
		"PathRequestsAnswer": "path_requests_answer", "HopAcksIn": "hop_acks_in",
	} {
		if got := snakeCase(in); got != want {
			t.Errorf("snakeCase(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMetricsEndpoint(t *testing.T) {
	noLeaks(t)
	a, b, stop := twoNodes(t)
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ev, cancelSub, _ := b.Subscribe(ctx)
	defer cancelSub()
	if _, err := a.Send(ctx, rpcapi.SendParams{To: b.id.Address().String(), Text: "count me"}); err != nil {
		t.Fatal(err)
	}
	waitKind(t, ctx, ev, rpcapi.EventMessage)
	// The event goes out during the loop's drain, the snapshot metrics
	// read is stored at its end: one round trip through the loop orders
	// the two.
	if err := b.call(ctx, func() {}); err != nil {
		t.Fatal(err)
	}
	m, err := startMetrics(b, "127.0.0.1:0", slog.New(slog.DiscardHandler))
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
	text := string(body)
	if strings.Contains(text, "meshd_gossip_unpublished_total") {
		t.Error("/metrics still has meshd_gossip_unpublished_total: gossip publishes channel frames now")
	}
	for _, want := range []string{
		"# TYPE meshd_routing_delivered_total counter", "meshd_routing_delivered_total 1",
		"# TYPE meshd_routing_routes gauge", "meshd_links 1", "meshd_inbox_messages 1",
		"meshd_link_frames_dropped_total 0",
		"meshd_channels_joined 0", "meshd_gossip_published_total 0", "meshd_gossip_rejected_forged_total 0",
		"libp2p_rcmgr_", "libp2p_swarm_", // go-libp2p's own metrics from the default registry
		"# TYPE meshd_delivery_latency_seconds histogram", "meshd_delivery_hops_count 0", // b sent nothing
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
