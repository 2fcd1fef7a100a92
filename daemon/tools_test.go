package daemon

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"meshd.dev/meshd/rpcapi"
)

// lineOf starts n nodes in process and links them in a line, each to the
// next; it returns once every link is up.
func lineOf(t *testing.T, n int) ([]*Node, func()) {
	t.Helper()
	var nodes []*Node
	var stops []func()
	stopAll := func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	for range n {
		nd, stop := startNode(t, testConfig(t))
		nodes = append(nodes, nd)
		stops = append(stops, stop)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; i+1 < n; i++ {
		ev, unsub, _ := nodes[i+1].Subscribe(ctx)
		if _, err := nodes[i].Connect(ctx, nodes[i+1].host.Addrs()[0]); err != nil {
			stopAll()
			t.Fatal(err)
		}
		waitKind(t, ctx, ev, rpcapi.EventPeerUp)
		unsub()
	}
	return nodes, stopAll
}

// meshctl ping and meshctl path answer over a three-hop mesh (a-b-c-d).
func TestPingAndPathOverThreeHops(t *testing.T) {
	nodes, stop := lineOf(t, 4)
	defer stop()
	a, d := nodes[0], nodes[3]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	to := d.id.Address().String()
	path, err := a.Path(ctx, rpcapi.PathParams{To: to, Wait: 30})
	if err != nil {
		t.Fatal(err)
	}
	if path.Route == nil || path.Route.Hops != 3 || path.Route.NextHop != nodes[1].id.Address().String() || path.LinkKind != "ip" {
		t.Fatalf("path to d: %+v (route %+v)", path, path.Route)
	}
	if _, err := a.AddContact(ctx, rpcapi.Contact{Name: "dora", Address: to}); err != nil {
		t.Fatal(err)
	}
	res, err := a.Ping(ctx, rpcapi.PingParams{To: "dora", Timeout: 30})
	if err != nil {
		t.Fatal(err)
	}
	if res.Hops != 3 || res.RTTMillis <= 0 || res.To != to || res.ToName != "dora" {
		t.Fatalf("ping d: %+v", res)
	}
	// The echo request reached neither d's inbox nor a's outbox.
	if d.st.InboxLen() != 0 {
		t.Errorf("d's inbox holds %d messages after a ping", d.st.InboxLen())
	}
	if out, _ := a.MsgOutbox(ctx); len(out) != 0 {
		t.Errorf("a's outbox after a ping: %+v", out)
	}
	nodesA, err := a.Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var sawD bool
	for _, x := range nodesA {
		if x.Address == to {
			sawD = x.Name == "dora" && x.Hops == 3 && x.LastHeard != nil && x.LinkKind == "ip"
		}
	}
	if !sawD {
		t.Errorf("node.nodes: %+v", nodesA)
	}
	if _, err := a.Ping(ctx, rpcapi.PingParams{To: "nobody"}); !errors.Is(err, rpcapi.ErrInvalidParams) {
		t.Errorf("ping of an unknown name: %v", err)
	}
}

// A mistyped address: msg.send warns, msg.outbox lists it, msg.cancel
// removes it durably (not back after a restart), msg.status says so.
func TestOutboxCancelSurvivesRestart(t *testing.T) {
	cfg := testConfig(t)
	n, stop := startNode(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := n.Send(ctx, rpcapi.SendParams{To: "00112233445566778899aabbccddeeff", Text: "typo"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.Warning, "never heard of") {
		t.Errorf("no warning for an unknown destination: %+v", res)
	}
	out, err := n.MsgOutbox(ctx)
	if err != nil || len(out) != 1 || out[0].ID != res.ID || out[0].To != "00112233445566778899aabbccddeeff" {
		t.Fatalf("outbox: %+v, %v", out, err)
	}
	if st, err := n.MsgStatus(ctx, res.ID); err != nil || st.State == "cancelled" {
		t.Fatalf("status before cancel: %+v, %v", st, err)
	}
	if c, err := n.MsgCancel(ctx, res.ID); err != nil || c.Cancelled != 1 {
		t.Fatalf("cancel: %+v, %v", c, err)
	}
	if st, err := n.MsgStatus(ctx, res.ID); err != nil || st.State != "cancelled" {
		t.Fatalf("status after cancel: %+v, %v", st, err)
	}
	if _, err := n.MsgCancel(ctx, res.ID); !errors.Is(err, rpcapi.ErrNotFound) {
		t.Fatalf("second cancel: %v", err)
	}
	if _, err := n.MsgStatus(ctx, "ffeeddccbbaa99887766554433221100"); !errors.Is(err, rpcapi.ErrNotFound) {
		t.Fatalf("status of an unknown ID: %v", err)
	}
	stop()
	n, stop = startNode(t, cfg)
	defer stop()
	if out, err := n.MsgOutbox(ctx); err != nil || len(out) != 0 {
		t.Fatalf("outbox after restart: %+v, %v", out, err)
	}
	// A known destination (this node) gets no warning.
	res, err = n.Send(ctx, rpcapi.SendParams{To: n.id.Address().String(), Text: "self"})
	if err != nil || res.Warning != "" {
		t.Fatalf("send to self: %+v, %v", res, err)
	}
	if st, err := n.MsgStatus(ctx, res.ID); err != nil || st.State != "delivered" {
		t.Fatalf("status of a message to self: %+v, %v", st, err)
	}
}

// Contacts are validated, unique and survive a restart.
func TestContacts(t *testing.T) {
	cfg := testConfig(t)
	n, stop := startNode(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a1, a2 := "00112233445566778899aabbccddeeff", "ffeeddccbbaa99887766554433221100"
	if _, err := n.AddContact(ctx, rpcapi.Contact{Name: "alice", Address: a1}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.AddContact(ctx, rpcapi.Contact{Name: "alice", Address: a2}); !errors.Is(err, rpcapi.ErrRefused) {
		t.Errorf("duplicate name: %v", err)
	}
	if _, err := n.AddContact(ctx, rpcapi.Contact{Name: "evil\x1b[2J", Address: a2}); !errors.Is(err, rpcapi.ErrInvalidParams) {
		t.Errorf("escape sequence in a name: %v", err)
	}
	stop()
	n, stop = startNode(t, cfg)
	defer stop()
	cs, err := n.Contacts(ctx)
	if err != nil || len(cs) != 1 || cs[0].Name != "alice" || cs[0].Address != a1 {
		t.Fatalf("contacts after restart: %+v, %v", cs, err)
	}
	if _, err := n.RemoveContact(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.RemoveContact(ctx, "alice"); !errors.Is(err, rpcapi.ErrNotFound) {
		t.Errorf("removing twice: %v", err)
	}
}

// A ping nobody answers times out with a clear error, and its echo
// request does not stay in custody to be retried for nothing.
func TestPingTimeoutLeavesNoCustody(t *testing.T) {
	n, stop := startNode(t, testConfig(t))
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := n.Ping(ctx, rpcapi.PingParams{To: "00112233445566778899aabbccddeeff", Timeout: 1})
	if !errors.Is(err, rpcapi.ErrRefused) || !strings.Contains(err.Error(), "no answer") {
		t.Fatalf("ping of nobody: %v", err)
	}
	// Asked on the loop: the node answers the ping in the middle of the
	// batch whose end refreshes node.info's figures.
	var custody uint64
	if err := n.call(ctx, func() { custody = n.eng.Counters().CustodyCount }); err != nil || custody != 0 {
		t.Fatalf("custody after a ping timed out: %d (%v)", custody, err)
	}
	var left int
	if err := n.call(ctx, func() { left = len(n.tools.pings) }); err != nil || left != 0 {
		t.Fatalf("%d pings still waited for (%v)", left, err)
	}
	// A caller that gives up before the timeout: the echo request (30 s
	// lifetime) is cancelled at once, not left to expire.
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancelShort()
	if _, err := n.Ping(short, rpcapi.PingParams{To: "00112233445566778899aabbccddeeff", Timeout: 30}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ping given up: %v", err)
	}
	if err := n.call(ctx, func() { custody = n.eng.Counters().CustodyCount; left = len(n.tools.pings) }); err != nil || custody != 0 || left != 0 {
		t.Fatalf("after a ping was given up: custody %d, pings %d (%v)", custody, left, err)
	}
}
