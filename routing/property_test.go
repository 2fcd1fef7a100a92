package routing_test

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"pgregory.net/rapid"

	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/routing"
)

// Property tests: on random connected topologies of IP, TCP and LoRa links,
// every message is delivered exactly once, every sender learns that it was,
// and nothing circulates forever. They run on the virtual-time network of
// net_test.go, so each case is deterministic given rapid's draws; rapid
// prints the seed (-rapid.seed) that reproduces a failure.

// Unless -rapid.checks (or RAPID_CHECKS) says otherwise, the properties run
// fewer cases than rapid's default of 100: a case simulates up to 25 nodes
// with real signatures and sealing, and the suite should stay within a few
// seconds. -short divides the count by 5, as rapid does.
var rapidChecksUserSet = sync.OnceValue(func() bool {
	set := os.Getenv("RAPID_CHECKS") != ""
	flag.Visit(func(f *flag.Flag) {
		if f.Name == "rapid.checks" {
			set = true
		}
	})
	return set
})

func rapidChecks(t *testing.T, n int) {
	if rapidChecksUserSet() {
		return
	}
	f := flag.Lookup("rapid.checks")
	if f == nil {
		return
	}
	old := f.Value.String()
	if err := f.Value.Set(strconv.Itoa(n)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Value.Set(old) })
}

// propEdge is a point-to-point link of a generated topology.
type propEdge struct {
	a, b    int
	kind    routing.LinkKind
	latency time.Duration
}

// propTopo is a generated connected topology: a random tree whose edges a
// LoRa medium may replace (between two of its members), plus extra edges.
type propTopo struct {
	n     int
	edges []propEdge
	lora  []int // members of the one LoRa medium; empty for none
	loss  float64
	// radius is Config.IPAdvertRadius: 0 for the default (announces stop
	// after a few IP hops and farther destinations are found by path
	// requests), or large enough for every table to fill.
	radius uint8
}

func (tp propTopo) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d nodes;", tp.n)
	for _, e := range tp.edges {
		fmt.Fprintf(&b, " n%d-n%d/%v/%v", e.a, e.b, e.kind, e.latency)
	}
	if len(tp.lora) > 0 {
		fmt.Fprintf(&b, "; lora %v loss %.2f", tp.lora, tp.loss)
	}
	fmt.Fprintf(&b, "; IP advert radius %d", tp.radius)
	return b.String()
}

var latencies = []time.Duration{0, time.Millisecond, 10 * time.Millisecond, 50 * time.Millisecond, 200 * time.Millisecond}

func drawTopo(t *rapid.T, maxNodes int, withLoss bool) propTopo {
	tp := propTopo{n: rapid.IntRange(2, maxNodes).Draw(t, "nodes")}
	tp.radius = rapid.SampledFrom([]uint8{0, 32}).Draw(t, "ipAdvertRadius")
	onLoRa := make([]bool, tp.n)
	if rapid.Bool().Draw(t, "lora") {
		tp.lora = rapid.SliceOfNDistinct(rapid.IntRange(0, tp.n-1), 2, min(tp.n, 8), rapid.ID).Draw(t, "loraNodes")
		for _, i := range tp.lora {
			onLoRa[i] = true
		}
		if withLoss {
			tp.loss = rapid.SampledFrom([]float64{0, 0.05, 0.2}).Draw(t, "loraLoss")
		}
	}
	linked := map[[2]int]bool{}
	add := func(a, b int) {
		if a > b {
			a, b = b, a
		}
		if a == b || linked[[2]int{a, b}] {
			return
		}
		linked[[2]int{a, b}] = true
		tp.edges = append(tp.edges, propEdge{
			a: a, b: b,
			kind:    rapid.SampledFrom([]routing.LinkKind{routing.LinkIP, routing.LinkTCP}).Draw(t, "kind"),
			latency: rapid.SampledFrom(latencies).Draw(t, "latency"),
		})
	}
	for i := 1; i < tp.n; i++ {
		p := rapid.IntRange(0, i-1).Draw(t, "parent")
		if onLoRa[i] && onLoRa[p] && rapid.Bool().Draw(t, "viaLoRa") {
			continue // the medium connects them
		}
		add(p, i)
	}
	extra := rapid.IntRange(0, tp.n).Draw(t, "extraEdges")
	for range extra {
		add(rapid.IntRange(0, tp.n-1).Draw(t, "ea"), rapid.IntRange(0, tp.n-1).Draw(t, "eb"))
	}
	return tp
}

// propNet is a testNet built from a propTopo, with the links in order:
// the point-to-point edges, then the LoRa medium.
type propNet struct {
	*testNet
	nodes []*tnode
	links []*tlink
	// loseSessions: some restarts come back without their session
	// records (state lost).
	loseSessions bool
	// reopens: some faults have one node reopen a link under a new id
	// of its own (a modem unplugged and plugged in again) while the
	// others keep theirs; nextID numbers them.
	reopens bool
	nextID  routing.LinkID
}

func buildNet(tb testing.TB, seed uint64, tp propTopo, cfg func(*routing.Config)) *propNet {
	n := newTestNet(tb, seed)
	n.cfg = func(c *routing.Config) {
		c.IPAdvertRadius = tp.radius
		if cfg != nil {
			cfg(c)
		}
	}
	pn := &propNet{testNet: n}
	for i := range tp.n {
		pn.nodes = append(pn.nodes, n.addNode(fmt.Sprintf("n%d", i)))
	}
	for _, e := range tp.edges {
		pn.links = append(pn.links, n.addLink(e.kind, e.latency, 0, pn.nodes[e.a].name, pn.nodes[e.b].name))
	}
	if len(tp.lora) > 0 {
		var names []string
		for _, i := range tp.lora {
			names = append(names, pn.nodes[i].name)
		}
		pn.links = append(pn.links, n.addLink(routing.LinkLoRa, 0, tp.loss, names...))
	}
	return pn
}

// converged reports whether every node has a route to every other.
func (pn *propNet) converged() bool {
	for _, nd := range pn.nodes {
		if len(nd.eng.Routes()) < len(pn.nodes)-1 {
			return false
		}
	}
	return true
}

// settle runs the network until a minute passes without a frame, at most
// for limit, and reports whether it fell quiet.
func (pn *propNet) settle(limit time.Duration) bool {
	for end := pn.now.Add(limit); pn.now.Before(end); {
		before := pn.linkFrames()
		pn.run(time.Minute)
		if pn.linkFrames() == before && pn.framesInFlight() == 0 {
			return true
		}
	}
	return false
}

// framesInFlight counts frames sent but not yet received.
func (pn *propNet) framesInFlight() int {
	k := 0
	for _, e := range pn.q {
		if _, ok := e.in.(routing.FrameReceived); ok {
			k++
		}
	}
	return k
}

func (pn *propNet) linkFrames() int {
	k := 0
	for _, l := range pn.links {
		k += l.frames
	}
	return k
}

// propMsg is one application message of a property run.
type propMsg struct {
	ref      uint64
	from, to int
	sealed   bool
	id       routing.MessageID
	accepted bool
}

func drawMessages(t *rapid.T, n, max int) []*propMsg {
	k := rapid.IntRange(1, max).Draw(t, "messages")
	var ms []*propMsg
	for i := range k {
		from := rapid.IntRange(0, n-1).Draw(t, "from")
		to := rapid.IntRange(0, n-2).Draw(t, "to")
		if to >= from {
			to++
		}
		ms = append(ms, &propMsg{ref: uint64(i + 1), from: from, to: to, sealed: rapid.Bool().Draw(t, "sealedSender")})
	}
	return ms
}

func (pn *propNet) send(m *propMsg) {
	from, to := pn.nodes[m.from], pn.nodes[m.to]
	pn.step(from, routing.SendRequest{
		Ref: m.ref, Dest: to.id.Address(), SealedSender: m.sealed,
		Body: []byte(fmt.Sprintf("message %d from %s to %s", m.ref, from.name, to.name)),
	})
}

// collectIDs finds each message's ID in its sender's EventAccepted.
func (pn *propNet) collectIDs(t *rapid.T, ms []*propMsg) {
	for _, m := range ms {
		for _, ev := range pn.nodes[m.from].events {
			if ev.Ref == m.ref && ev.Kind == routing.EventAccepted {
				m.id, m.accepted = ev.ID, true
			}
		}
		if !m.accepted {
			t.Fatalf("message %d from n%d to n%d not accepted: events %+v", m.ref, m.from, m.to, pn.nodes[m.from].events)
		}
	}
}

// checkOnce checks that no message was delivered twice, nor to the wrong
// node, and that no node got a message nobody sent. With complete set, it
// also checks that every message was delivered and its sender told so.
func (pn *propNet) checkOnce(t *rapid.T, ms []*propMsg, complete bool) {
	byID := map[routing.MessageID]*propMsg{}
	for _, m := range ms {
		byID[m.id] = m
	}
	got := map[routing.MessageID]int{}
	for i, nd := range pn.nodes {
		for _, d := range nd.inbox {
			if d.Broadcast {
				continue // checkBroadcast
			}
			m := byID[d.ID]
			switch {
			case m == nil:
				t.Fatalf("%s got a message nobody sent: %x %q", nd.name, d.ID, d.Body)
			case m.to != i:
				t.Fatalf("%s got message %d meant for n%d", nd.name, m.ref, m.to)
			case d.From != pn.nodes[m.from].id.Address():
				t.Fatalf("%s got message %d from %v, want n%d", nd.name, m.ref, pn.names(d.From), m.from)
			}
			got[d.ID]++
			if got[d.ID] > 1 {
				t.Fatalf("message %d from n%d delivered %d times to %s", m.ref, m.from, got[d.ID], nd.name)
			}
		}
	}
	for _, m := range ms {
		var delivered, expired int
		for _, ev := range pn.nodes[m.from].events {
			if ev.ID != m.id {
				continue
			}
			switch ev.Kind {
			case routing.EventDelivered:
				delivered++
			case routing.EventExpired, routing.EventRefused:
				expired++
			}
		}
		if delivered > 1 || expired > 0 {
			t.Fatalf("message %d from n%d to n%d: %d delivered events, %d expired/refused: %+v",
				m.ref, m.from, m.to, delivered, expired, pn.nodes[m.from].events)
		}
		if complete && (got[m.id] != 1 || delivered != 1) {
			pn.dump(t)
			t.Fatalf("message %d from n%d to n%d: delivered %d times, %d delivered events (sender events %+v)",
				m.ref, m.from, m.to, got[m.id], delivered, pn.nodes[m.from].events)
		}
	}
}

// checkBroadcast checks that no node got the broadcast body twice, nor the
// broadcaster src its own, and, with complete set, that every other node
// got it.
func (pn *propNet) checkBroadcast(t *rapid.T, src int, body string, complete bool) {
	for i, nd := range pn.nodes {
		k := 0
		for _, d := range nd.inbox {
			if d.Broadcast && string(d.Body) == body {
				k++
			}
		}
		switch {
		case i == src && k > 0:
			t.Fatalf("%s got its own broadcast %d times", nd.name, k)
		case k > 1:
			t.Fatalf("%s got the broadcast %d times", nd.name, k)
		case complete && i != src && k == 0:
			pn.dump(t)
			t.Fatalf("%s did not get the broadcast of n%d", nd.name, src)
		}
	}
}

func (pn *propNet) dump(t *rapid.T) {
	for _, nd := range pn.nodes {
		if !nd.up {
			t.Logf("%s: down", nd.name)
			continue
		}
		c := nd.eng.Counters()
		t.Logf("%s: routes\n%s\ncounters %+v", nd.name, pn.routesOf(nd), c)
	}
}

// propConfig is the engine configuration of the property runs: the test
// defaults of net_test.go, with announces rare enough that a quiet network
// is really quiet.
func propConfig(interval time.Duration) func(*routing.Config) {
	return func(c *routing.Config) {
		c.AnnounceInterval = interval
	}
}

// TestPropertyExactlyOnce: on a static random topology, after the routes
// converged, every message is delivered exactly once and acknowledged, no
// envelope runs out of hops, and the network falls quiet.
func TestPropertyExactlyOnce(tt *testing.T) {
	rapidChecks(tt, 25)
	rapid.Check(tt, func(t *rapid.T) {
		tp := drawTopo(t, 25, false)
		t.Logf("topology: %v", tp)
		seed := rapid.Uint64().Draw(t, "seed")
		pn := buildNet(tt, seed, tp, propConfig(24*time.Hour))
		// Converge: announces flood at once on IP; LoRa spends its budget.
		// With announces a day apart, the network then falls quiet.
		if !pn.settle(3 * time.Hour) {
			pn.dump(t)
			t.Fatalf("still sending after 3 h: %v", tp)
		}
		if tp.radius > uint8(tp.n) && !pn.converged() {
			pn.dump(t)
			t.Fatalf("tables incomplete after convergence: %v", tp)
		}
		ms := drawMessages(t, tp.n, 12)
		for _, m := range ms {
			pn.run(rapid.SampledFrom([]time.Duration{0, time.Millisecond, 100 * time.Millisecond, time.Second}).Draw(t, "gap"))
			pn.send(m)
		}
		pn.collectIDs(t, ms)
		// And a broadcast: every other node is a member of the channel.
		key, err := protocol.NewChannelKey(rand.NewChaCha8(seedBytes("channel", seed, 5)))
		if err != nil {
			t.Fatal(err)
		}
		for _, nd := range pn.nodes {
			pn.step(nd, routing.JoinChannel{Key: key})
		}
		src := rapid.IntRange(0, tp.n-1).Draw(t, "broadcaster")
		pn.step(pn.nodes[src], routing.Broadcast{Ref: 99, Channel: key, Body: []byte("to everyone"), HopLimit: protocol.MaxChannelHops})
		pn.run(time.Hour)
		pn.checkOnce(t, ms, true)
		pn.checkBroadcast(t, src, "to everyone", tp.n <= protocol.MaxChannelHops)
		// Quiet: nothing in flight, nothing kept, nothing sent for a while.
		before := pn.linkFrames()
		pn.run(30 * time.Minute)
		if k := pn.framesInFlight(); k > 0 {
			t.Fatalf("%d frames still in flight after the run: %v", k, tp)
		}
		if d := pn.linkFrames() - before; d > 0 {
			pn.dump(t)
			t.Fatalf("%d frames sent in the last 30 min of a quiet network: %v", d, tp)
		}
		// A message and its receipt each cross at most n-1 forwarders;
		// allow twice that for end-to-end retries over slow radio paths.
		fw := 0
		for _, nd := range pn.nodes {
			fw += int(nd.eng.Counters().Forwarded)
		}
		if limit := 2 * 2 * (tp.n - 1) * len(ms); fw > limit {
			pn.dump(t)
			t.Fatalf("%d envelopes forwarded for %d messages on %d nodes (limit %d): %v", fw, len(ms), tp.n, limit, tp)
		}
		for _, nd := range pn.nodes {
			c := nd.eng.Counters()
			if c.HopLimitDrops != 0 {
				t.Fatalf("%s: %d hop limit drops on a static topology: %v", nd.name, c.HopLimitDrops, tp)
			}
			if c.CustodyCount != 0 || c.QueuedFrames != 0 {
				pn.dump(t)
				t.Fatalf("%s: %d records in custody, %d frames queued after delivery: %v", nd.name, c.CustodyCount, c.QueuedFrames, tp)
			}
		}
	})
}

// fault takes a link or a node down, or brings it back, during a run.
type fault struct {
	after time.Duration
	link  int // index into propNet.links, or -1
	node  int // index into propNet.nodes, if link is -1
	up    bool
	// reopen: node, one of link's, reopens it under a new id.
	reopen bool
}

func drawFaults(t *rapid.T, pn *propNet, restarts bool) []fault {
	var fs []fault
	for range rapid.IntRange(1, 12).Draw(t, "faults") {
		f := fault{
			after: rapid.SampledFrom([]time.Duration{0, 10 * time.Millisecond, time.Second, 30 * time.Second, 5 * time.Minute}).Draw(t, "after"),
			link:  -1,
			up:    rapid.Bool().Draw(t, "up"),
		}
		if restarts && rapid.IntRange(0, 3).Draw(t, "faultKind") == 0 {
			f.node = rapid.IntRange(0, len(pn.nodes)-1).Draw(t, "node")
		} else {
			f.link = rapid.IntRange(0, len(pn.links)-1).Draw(t, "link")
		}
		if pn.reopens && f.link >= 0 && rapid.Bool().Draw(t, "reopen") {
			f.reopen = true
			f.node = rapid.IntRange(0, len(pn.links[f.link].nodes)-1).Draw(t, "reopener")
		}
		fs = append(fs, f)
	}
	return fs
}

func (pn *propNet) apply(f fault) {
	if f.reopen {
		l := pn.links[f.link]
		nd := l.nodes[f.node]
		if nd.up && l.up {
			pn.step(nd, routing.LinkDown{Link: l.id})
		}
		pn.nextID++
		pn.reopen(nd, l, 1000+pn.nextID)
		return
	}
	if f.link >= 0 {
		pn.setLink(pn.links[f.link], f.up)
		return
	}
	switch nd := pn.nodes[f.node]; {
	case f.up && !nd.up:
		if pn.loseSessions && f.after == 0 {
			for k := range nd.store {
				if strings.HasPrefix(k, "s/") {
					delete(nd.store, k)
				}
			}
		}
		pn.start(nd)
	case !f.up && nd.up:
		pn.stop(nd)
	}
}

// heal brings every node and link back.
func (pn *propNet) heal() {
	for _, nd := range pn.nodes {
		if !nd.up {
			pn.start(nd)
		}
	}
	for _, l := range pn.links {
		pn.setLink(l, true)
	}
}

// TestPropertyLinkFailures: links fail and heal while messages are under
// way. No message is ever delivered twice, and once every link is back and
// enough time passed, every message is delivered and acknowledged.
func TestPropertyLinkFailures(tt *testing.T) {
	rapidChecks(tt, 25)
	rapid.Check(tt, func(t *rapid.T) { faultProperty(tt, t, false) })
}

// TestPropertyRestarts: as TestPropertyLinkFailures, and nodes crash and
// restart from what they persisted (Ready's Persist and Deletes), which
// must keep delivery exactly once across restarts.
func TestPropertyRestarts(tt *testing.T) {
	rapidChecks(tt, 25)
	rapid.Check(tt, func(t *rapid.T) { faultProperty(tt, t, true) })
}

func faultProperty(tt *testing.T, t *rapid.T, restarts bool) {
	faultPropertyWith(tt, t, restarts, false, false)
}

// TestPropertySessions: the restart property with unicast over route
// sessions, and with session state lost (a node restarts from a store
// whose session records are gone, as after a restore of an older backup):
// every message is delivered exactly once and acknowledged.
func TestPropertySessions(tt *testing.T) {
	rapidChecks(tt, 25)
	rapid.Check(tt, func(t *rapid.T) { faultPropertyWith(tt, t, true, true, false) })
}

// TestPropertySessionsReopen: the sessions property with links that one
// of their nodes reopens under a new id of its own while the others keep
// theirs (a relay's modem unplugged and plugged in again, whose relay
// entries then answer the old path's frames with resets): still every
// message exactly once and acknowledged.
func TestPropertySessionsReopen(tt *testing.T) {
	rapidChecks(tt, 25)
	rapid.Check(tt, func(t *rapid.T) { faultPropertyWith(tt, t, true, true, true) })
}

func faultPropertyWith(tt *testing.T, t *rapid.T, restarts, sessions, reopens bool) {
	tp := drawTopo(t, faultNodes, true)
	t.Logf("topology: %v", tp)
	seed := rapid.Uint64().Draw(t, "seed")
	cfg := propConfig(10 * time.Minute)
	if sessions {
		cfg = func(c *routing.Config) {
			c.AnnounceInterval = 10 * time.Minute
			c.NoSessions = false
		}
	}
	pn := buildNet(tt, seed, tp, cfg)
	pn.loseSessions = sessions
	pn.reopens = reopens
	warm := rapid.Bool().Draw(t, "warm")
	if warm {
		pn.settle(time.Hour)
	}
	ms := drawMessages(t, tp.n, 8)
	fs := drawFaults(t, pn, restarts)
	drawn := fs
	// Interleave sends and faults. A node that is down sends nothing.
	// reachable: sent on a settled IP network before any fault, so its
	// destination had a key and a route and it must go over a session (a
	// message to a destination out of reach is sealed into an envelope).
	var sent, reachable []*propMsg
	for i := 0; i < len(ms) || len(fs) > 0; i++ {
		if i < len(ms) && pn.nodes[ms[i].from].up {
			pn.send(ms[i])
			sent = append(sent, ms[i])
			// A fault drawn to come at once (after 0) can break the
			// route before the session frame leaves; the message then
			// goes on as an envelope (session_fallback.go).
			if warm && len(fs) == len(drawn) && len(tp.lora) == 0 && (len(fs) == 0 || fs[0].after >= time.Minute) {
				reachable = append(reachable, ms[i])
			}
		}
		if len(fs) > 0 {
			pn.run(fs[0].after)
			pn.apply(fs[0])
			fs = fs[1:]
			pn.checkOnceSoFar(t)
		}
	}
	pn.collectIDs(t, sent)
	pn.checkOnce(t, sent, false)
	pn.heal()
	pn.run(3 * time.Hour)
	pn.checkOnce(t, sent, true)
	if sessions {
		pn.checkSessionsUsed(t, reachable)
	}
	// Nothing is kept or retried once everything arrived.
	for _, nd := range pn.nodes {
		if c := nd.eng.Counters(); c.HopLimitDrops != 0 {
			pn.dump(t)
			t.Fatalf("%s: %d hop limit drops: %v", nd.name, c.HopLimitDrops, tp)
		}
		if c := nd.eng.Counters(); c.CustodyCount != 0 {
			pn.dump(t)
			t.Fatalf("%s: %d records still in custody: %v", nd.name, c.CustodyCount, tp)
		}
	}
}

// checkSessionsUsed checks that the messages that were not sealed sender
// travelled in session frames, not envelopes.
func (pn *propNet) checkSessionsUsed(t *rapid.T, ms []*propMsg) {
	want := 0
	for _, m := range ms {
		if !m.sealed {
			want++
		}
	}
	if k := pn.kinds[protocol.KindSessionData]; k < want {
		t.Fatalf("%d session frames sent for %d messages over sessions", k, want)
	}
}

// checkOnceSoFar checks, in the middle of a run, that nothing was delivered
// twice.
func (pn *propNet) checkOnceSoFar(t *rapid.T) {
	seen := map[routing.MessageID]bool{}
	for _, nd := range pn.nodes {
		for _, d := range nd.inbox {
			if seen[d.ID] {
				t.Fatalf("%s: message %x delivered twice", nd.name, d.ID)
			}
			seen[d.ID] = true
		}
	}
}

// faultNodes bounds the topologies of the fault properties, which simulate
// hours of retries.
var faultNodes = 12

// TestPathAnswerOnSaturatedLoRa is a case TestPropertyRestarts found (with
// 25 nodes): a LoRa link whose advertisement budget is saturated by nearer
// destinations must still carry the answer to a path request, or a far
// destination stays unreachable over it for good. R has twenty IP
// neighbours whose announces (every 10 min) use up its LoRa budget; L, on
// the radio, wants F, six hops beyond R.
func TestPathAnswerOnSaturatedLoRa(t *testing.T) {
	n := newTestNet(t, 5)
	n.cfg = propConfig(10 * time.Minute)
	for _, nm := range []string{"l", "r", "c1", "c2", "c3", "c4", "f"} {
		n.addNode(nm)
	}
	n.addLink(routing.LinkLoRa, 0, 0, "l", "r")
	prev := "r"
	for _, nm := range []string{"c1", "c2", "c3", "c4", "f"} {
		n.addLink(routing.LinkIP, time.Millisecond, 0, prev, nm)
		prev = nm
	}
	for i := range 20 {
		nm := fmt.Sprintf("x%d", i)
		n.addNode(nm)
		n.addLink(routing.LinkIP, time.Millisecond, 0, "r", nm)
	}
	n.run(time.Hour)
	n.send("l", "f", "far away")
	n.run(time.Hour)
	if got := len(n.node("f").inbox); got != 1 {
		t.Fatalf("f got %d messages; l: %+v\nr: %+v", got, n.node("l").eng.Counters(), n.node("r").eng.Counters())
	}
}
