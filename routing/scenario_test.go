package routing_test

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/routing"
)

// Scenario scripts (testdata/scenarios/*.txt) drive a virtual-time network
// of engines (net_test.go) and print what happened, in the manner of etcd
// raft's interaction tests. Run them with
//
//	go test ./routing -run Scenario
//	go test ./routing -run Scenario -update   # rewrite the expected output
//
// Output is deterministic: nodes go by their names, messages by labels (m1,
// m2, ... in the order they were sent, b1, b2, ... for broadcasts), times by
// the virtual clock since the start of the scenario (hh:mm:ss.mmm), and all
// randomness is seeded. The file format (command, "----", expected output,
// blank line) is described in script_test.go. Commands:
//
//	seed N                                  seed of the run (first command; default 1)
//	node NAME... [config...]                add nodes (config: see below)
//	grid RxC [ip|tcp] [link options]        add nodes rXcY in a grid, linked to their neighbours
//	star HUB LEAF... [ip|tcp] [link options]  link HUB to each LEAF (nodes are created as needed)
//	set NODE... config...                   change config; a running node restarts to apply it
//	link A B [ip|tcp|lora] [latency=D] [loss=P] [bitrate=N] [cost=N] [name=L]
//	radio NAME NODE... [bitrate=N] [loss=P] [latency=D]   a shared LoRa medium
//	linkdown LINK | linkdown A B            take a link down (by name, or the link between A and B)
//	linkup LINK | linkup A B
//	stop NODE...                            crash a node (its persisted records survive)
//	start NODE...                           restart it from its persisted records
//	run DURATION [quiet] [watch=C1,C2]      advance the clock; print deliveries and events
//	                                        (quiet: only their number), watch: counter deltas
//	                                        summed over all nodes
//	send FROM TO "BODY" [ttl=D] [count=N] [sealed-sender]
//	send-sample N [seed=S]                  N messages between random pairs of running nodes
//	broadcast FROM CHANNEL "BODY" [signed] [hops=N]
//	join NODE... CHANNEL                    deliver a channel's broadcasts to the nodes
//	routes NODE [DEST...]                   the routing table (or some entries of it)
//	path FROM TO                            follow next hops from FROM to TO
//	paths [NODE...]                         follow next hops between all pairs (from NODEs) and
//	                                        compare with the cheapest path in the topology
//	inbox NODE                              everything delivered to NODE's application
//	events NODE                             every event NODE's application got
//	messages [summary]                      the fate of every message sent with send
//	counters NODE...|* NAME... [total]      counters (of the node's current engine: a restart
//	                                        resets them); total: only the sum
//	traffic LINK [reset]                    frames and bytes sent on a link per sender since
//	                                        the last reset (or the link's creation)
//	budget LINK                             routing bytes per sender on LINK since the last reset
//	                                        against AnnounceShare*bitrate/8*duration+AnnounceBurst
//	loss LINK P                             set a link's loss rate (0..1)
//	clock NODE OFFSET                       set how far NODE's clock is ahead (+1m) or behind (-1m)
//	drop NODE CLASS [n=N] | drop NODE CLASS off
//	                                        lose the next N (default: all) frames of CLASS that NODE
//	                                        sends (advert, path-request, hop-ack, envelope, receipt,
//	                                        control, channel, fragment, session-data, any)
//
// Node config (node, set): mailbox=true (also announces the mailbox
// capability), caps=relay,mailbox,..., custody-max-bytes=N,
// custody-max-per-dest=N, announce-interval=D, route-ttl=D,
// announce-share=F, announce-burst=N, retry-base=D, retry-max=D,
// hand-off-after=N, hop-limit=N, message-ttl=D, hop-ack-retries=N,
// flood-hop-limit=N, flood-cancel-after=N, path-request-interval=D,
// ip-advert-radius=N, sessions=false (own unicast as envelopes).

var update = flag.Bool("update", false, "rewrite the expected output of the scenario scripts in testdata/scenarios")

func TestScenario(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "scenarios", "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no scenario scripts")
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".txt")
		t.Run(name, func(t *testing.T) {
			s := newScenario(t)
			runScript(t, f, *update, s.do)
		})
	}
}

// smsg is a message or broadcast sent by the script.
type smsg struct {
	label    string
	ref      uint64
	from, to *tnode
	body     string
	id       routing.MessageID
	hasID    bool
}

type trafficMark struct {
	at   time.Time
	sent map[*tnode]txStats
}

type dropRule struct {
	node  *tnode
	class string
	left  int // -1: without end
}

type scenario struct {
	t       *testing.T
	n       *testNet
	started bool // a command other than seed ran

	refs    uint64
	byRef   map[uint64]*smsg
	byID    map[routing.MessageID]*smsg
	msgs    []*smsg
	nbcast  int
	chans   map[string]protocol.ChannelKey
	chanIDs map[protocol.ChannelID]string

	cursor int // next trace item to print
	marks  map[*tlink]trafficMark
	drops  []*dropRule
}

func newScenario(t *testing.T) *scenario {
	s := &scenario{
		t: t, byRef: map[uint64]*smsg{}, byID: map[routing.MessageID]*smsg{},
		chans: map[string]protocol.ChannelKey{}, chanIDs: map[protocol.ChannelID]string{},
		marks: map[*tlink]trafficMark{},
	}
	s.reset(1)
	return s
}

func (s *scenario) reset(seed uint64) {
	s.n = newTestNet(s.t, seed)
	s.n.drop = s.dropFrame
}

func (s *scenario) do(line string) (string, error) {
	a, err := splitCommand(line)
	if err != nil {
		return "", err
	}
	h, ok := scenarioCmds[a.name]
	if !ok {
		return "", fmt.Errorf("unknown command %q", a.name)
	}
	if a.name != "seed" {
		s.started = true
	}
	out, err := h(s, a)
	if err != nil {
		return "", err
	}
	if err := a.done(); err != nil {
		return "", err
	}
	return out, nil
}

var scenarioCmds map[string]func(*scenario, *cmdArgs) (string, error)

func init() {
	scenarioCmds = map[string]func(*scenario, *cmdArgs) (string, error){
		"seed":        (*scenario).cmdSeed,
		"node":        (*scenario).cmdNode,
		"grid":        (*scenario).cmdGrid,
		"star":        (*scenario).cmdStar,
		"set":         (*scenario).cmdSet,
		"link":        (*scenario).cmdLink,
		"radio":       (*scenario).cmdRadio,
		"linkdown":    func(s *scenario, a *cmdArgs) (string, error) { return s.cmdLinkState(a, false) },
		"linkup":      func(s *scenario, a *cmdArgs) (string, error) { return s.cmdLinkState(a, true) },
		"stop":        (*scenario).cmdStop,
		"start":       (*scenario).cmdStart,
		"run":         (*scenario).cmdRun,
		"send":        (*scenario).cmdSend,
		"send-sample": (*scenario).cmdSendSample,
		"broadcast":   (*scenario).cmdBroadcast,
		"join":        (*scenario).cmdJoin,
		"routes":      (*scenario).cmdRoutes,
		"path":        (*scenario).cmdPath,
		"paths":       (*scenario).cmdPaths,
		"inbox":       (*scenario).cmdInbox,
		"events":      (*scenario).cmdEvents,
		"messages":    (*scenario).cmdMessages,
		"counters":    (*scenario).cmdCounters,
		"traffic":     (*scenario).cmdTraffic,
		"budget":      (*scenario).cmdBudget,
		"drop":        (*scenario).cmdDrop,
		"clock":       (*scenario).cmdClock,
		"loss":        (*scenario).cmdLoss,
	}
}

// --- topology ---

func (s *scenario) cmdSeed(a *cmdArgs) (string, error) {
	if s.started {
		return "", fmt.Errorf("seed must be the first command")
	}
	if len(a.pos) != 1 {
		return "", fmt.Errorf("usage: seed N")
	}
	seed, err := strconv.ParseUint(a.pos[0], 10, 64)
	if err != nil {
		return "", err
	}
	s.reset(seed)
	return "", nil
}

func (s *scenario) node(name string) (*tnode, error) {
	nd := s.n.nodes[name]
	if nd == nil {
		return nil, fmt.Errorf("no node %q", name)
	}
	return nd, nil
}

func (s *scenario) nodes(names []string) ([]*tnode, error) {
	var out []*tnode
	for _, nm := range names {
		nd, err := s.node(nm)
		if err != nil {
			return nil, err
		}
		out = append(out, nd)
	}
	return out, nil
}

// configOpts turns a command's options into a Config change.
func configOpts(a *cmdArgs) (func(*routing.Config), error) {
	var fs []func(*routing.Config)
	for _, k := range a.keys {
		v := a.opts[k]
		a.used[k] = true
		var f func(*routing.Config)
		var err error
		dur := func(set func(*routing.Config, time.Duration)) {
			var d time.Duration
			if d, err = time.ParseDuration(v); err == nil {
				f = func(c *routing.Config) { set(c, d) }
			}
		}
		num := func(set func(*routing.Config, int)) {
			var n int
			if n, err = strconv.Atoi(v); err == nil {
				f = func(c *routing.Config) { set(c, n) }
			}
		}
		switch k {
		case "mailbox":
			var on bool
			if on, err = strconv.ParseBool(v); err == nil {
				f = func(c *routing.Config) {
					c.Mailbox = on
					if on {
						c.Capabilities |= protocol.CapMailbox
					} else {
						c.Capabilities &^= protocol.CapMailbox
					}
				}
			}
		case "sessions":
			var on bool
			if on, err = strconv.ParseBool(v); err == nil {
				f = func(c *routing.Config) { c.NoSessions = !on }
			}
		case "caps":
			var caps protocol.Capabilities
			for _, nm := range strings.Split(v, ",") {
				c, ok := capByName[nm]
				if !ok {
					err = fmt.Errorf("unknown capability %q", nm)
				}
				caps |= c
			}
			f = func(c *routing.Config) { c.Capabilities = caps }
		case "custody-max-bytes":
			num(func(c *routing.Config, n int) { c.CustodyMaxBytes = n })
		case "custody-max-per-dest":
			num(func(c *routing.Config, n int) { c.CustodyMaxPerDest = n })
		case "announce-interval":
			dur(func(c *routing.Config, d time.Duration) { c.AnnounceInterval = d })
		case "route-ttl":
			dur(func(c *routing.Config, d time.Duration) { c.RouteTTL = d })
		case "announce-share":
			var x float64
			if x, err = strconv.ParseFloat(v, 64); err == nil {
				f = func(c *routing.Config) { c.AnnounceShare = x }
			}
		case "announce-burst":
			num(func(c *routing.Config, n int) { c.AnnounceBurst = n })
		case "retry-base":
			dur(func(c *routing.Config, d time.Duration) { c.RetryBase = d })
		case "retry-max":
			dur(func(c *routing.Config, d time.Duration) { c.RetryMax = d })
		case "hand-off-after":
			num(func(c *routing.Config, n int) { c.HandOffAfter = n })
		case "hop-limit":
			num(func(c *routing.Config, n int) { c.HopLimit = uint8(n) })
		case "message-ttl":
			dur(func(c *routing.Config, d time.Duration) { c.MessageTTL = d })
		case "hop-ack-retries":
			num(func(c *routing.Config, n int) { c.HopAckRetries = n })
		case "flood-hop-limit":
			num(func(c *routing.Config, n int) { c.FloodHopLimit = uint8(n) })
		case "flood-cancel-after":
			num(func(c *routing.Config, n int) { c.FloodCancelAfter = n })
		case "path-request-interval":
			dur(func(c *routing.Config, d time.Duration) { c.PathRequestInterval = d })
		case "ip-advert-radius":
			num(func(c *routing.Config, n int) { c.IPAdvertRadius = uint8(n) })
		default:
			return nil, fmt.Errorf("unknown config option %s", k)
		}
		if err != nil {
			return nil, fmt.Errorf("option %s: %v", k, err)
		}
		fs = append(fs, f)
	}
	return func(c *routing.Config) {
		for _, f := range fs {
			f(c)
		}
	}, nil
}

var capByName = map[string]protocol.Capabilities{
	"relay": protocol.CapRelay, "mailbox": protocol.CapMailbox, "fapp-relay": protocol.CapFAPPRelay,
	"bridge": protocol.CapBridge, "dht-server": protocol.CapDHTServer, "lora": protocol.CapLoRa,
}

func (s *scenario) cmdNode(a *cmdArgs) (string, error) {
	if len(a.pos) == 0 {
		return "", fmt.Errorf("usage: node NAME... [config...]")
	}
	f, err := configOpts(a)
	if err != nil {
		return "", err
	}
	for _, nm := range a.pos {
		if s.n.nodes[nm] != nil {
			return "", fmt.Errorf("node %q exists", nm)
		}
		if strings.ContainsAny(nm, " =\"*") {
			return "", fmt.Errorf("bad node name %q", nm)
		}
		s.n.cfg = f
		s.n.addNode(nm)
		s.n.cfg = nil
	}
	return s.flush(false), nil
}

func (s *scenario) cmdSet(a *cmdArgs) (string, error) {
	nds, err := s.nodes(a.pos)
	if err != nil || len(nds) == 0 {
		return "", fmt.Errorf("usage: set NODE... config...: %v", err)
	}
	f, err := configOpts(a)
	if err != nil {
		return "", err
	}
	for _, nd := range nds {
		f(&nd.cfg)
		if nd.up {
			s.n.stop(nd)
			s.n.start(nd)
		}
	}
	return s.flush(false), nil
}

func (s *scenario) linkOpts(a *cmdArgs, kind routing.LinkKind) *tlink {
	l := &tlink{kind: kind}
	l.latency = a.dur("latency", 0)
	l.loss = a.float("loss", 0)
	l.bitrate = a.num("bitrate", 0)
	l.cost = uint16(a.num("cost", 0))
	l.name = a.str("name", "")
	return l
}

func linkKind(s string) (routing.LinkKind, bool) {
	switch s {
	case "ip":
		return routing.LinkIP, true
	case "tcp":
		return routing.LinkTCP, true
	case "lora":
		return routing.LinkLoRa, true
	}
	return 0, false
}

func (s *scenario) addLink(l *tlink, names ...string) error {
	if l.name != "" && s.linkByName(l.name) != nil {
		return fmt.Errorf("link %q exists", l.name)
	}
	if _, err := s.nodes(names); err != nil {
		return err
	}
	s.n.connect(l, names...)
	s.marks[l] = trafficMark{at: s.n.now, sent: map[*tnode]txStats{}}
	return nil
}

func (s *scenario) cmdLink(a *cmdArgs) (string, error) {
	if len(a.pos) < 2 || len(a.pos) > 3 {
		return "", fmt.Errorf("usage: link A B [ip|tcp|lora] [options]")
	}
	kind := routing.LinkIP
	if len(a.pos) == 3 {
		k, ok := linkKind(a.pos[2])
		if !ok {
			return "", fmt.Errorf("unknown link kind %q", a.pos[2])
		}
		kind = k
	}
	if err := s.addLink(s.linkOpts(a, kind), a.pos[0], a.pos[1]); err != nil {
		return "", err
	}
	return s.flush(false), nil
}

func (s *scenario) cmdRadio(a *cmdArgs) (string, error) {
	if len(a.pos) < 3 {
		return "", fmt.Errorf("usage: radio NAME NODE NODE... [options]")
	}
	l := s.linkOpts(a, routing.LinkLoRa)
	l.name = a.pos[0]
	if err := s.addLink(l, a.pos[1:]...); err != nil {
		return "", err
	}
	return s.flush(false), nil
}

func (s *scenario) cmdGrid(a *cmdArgs) (string, error) {
	if len(a.pos) < 1 || len(a.pos) > 2 {
		return "", fmt.Errorf("usage: grid RxC [ip|tcp] [options]")
	}
	rs, cs, ok := strings.Cut(a.pos[0], "x")
	rows, err1 := strconv.Atoi(rs)
	cols, err2 := strconv.Atoi(cs)
	if !ok || err1 != nil || err2 != nil || rows < 1 || cols < 1 {
		return "", fmt.Errorf("grid size %q", a.pos[0])
	}
	kind := routing.LinkIP
	if len(a.pos) == 2 {
		k, ok := linkKind(a.pos[1])
		if !ok || k == routing.LinkLoRa {
			return "", fmt.Errorf("grid link kind %q", a.pos[1])
		}
		kind = k
	}
	proto := s.linkOpts(a, kind)
	name := func(r, c int) string { return fmt.Sprintf("r%dc%d", r, c) }
	for r := range rows {
		for c := range cols {
			s.n.addNode(name(r, c))
		}
	}
	for r := range rows {
		for c := range cols {
			if c+1 < cols {
				l := *proto
				if err := s.addLink(&l, name(r, c), name(r, c+1)); err != nil {
					return "", err
				}
			}
			if r+1 < rows {
				l := *proto
				if err := s.addLink(&l, name(r, c), name(r+1, c)); err != nil {
					return "", err
				}
			}
		}
	}
	return s.flush(false), nil
}

func (s *scenario) cmdStar(a *cmdArgs) (string, error) {
	if len(a.pos) < 2 {
		return "", fmt.Errorf("usage: star HUB LEAF... [ip|tcp] [options]")
	}
	names := a.pos
	kind := routing.LinkIP
	if k, ok := linkKind(names[len(names)-1]); ok {
		if k == routing.LinkLoRa {
			return "", fmt.Errorf("star links are point to point: use radio for LoRa")
		}
		kind, names = k, names[:len(names)-1]
	}
	proto := s.linkOpts(a, kind)
	for _, nm := range names {
		if s.n.nodes[nm] == nil {
			s.n.addNode(nm)
		}
	}
	for _, leaf := range names[1:] {
		l := *proto
		if err := s.addLink(&l, names[0], leaf); err != nil {
			return "", err
		}
	}
	return s.flush(false), nil
}

func (s *scenario) linkByName(name string) *tlink {
	for _, l := range s.n.links {
		if l.name == name {
			return l
		}
	}
	return nil
}

// findLink finds a link by its name, or the point-to-point link between two
// nodes.
func (s *scenario) findLink(args []string) (*tlink, error) {
	switch len(args) {
	case 1:
		if l := s.linkByName(args[0]); l != nil {
			return l, nil
		}
		return nil, fmt.Errorf("no link %q", args[0])
	case 2:
		x, err := s.nodes(args)
		if err != nil {
			return nil, err
		}
		for _, l := range s.n.links {
			if len(l.nodes) == 2 && slices.Contains(l.nodes, x[0]) && slices.Contains(l.nodes, x[1]) {
				return l, nil
			}
		}
		return nil, fmt.Errorf("no link between %s and %s", args[0], args[1])
	}
	return nil, fmt.Errorf("name a link, or its two nodes")
}

func (s *scenario) cmdLinkState(a *cmdArgs, up bool) (string, error) {
	l, err := s.findLink(a.pos)
	if err != nil {
		return "", err
	}
	s.n.setLink(l, up)
	return s.flush(false), nil
}

func (s *scenario) cmdStop(a *cmdArgs) (string, error) {
	nds, err := s.nodes(a.pos)
	if err != nil {
		return "", err
	}
	for _, nd := range nds {
		if !nd.up {
			return "", fmt.Errorf("node %s is not running", nd.name)
		}
		s.n.stop(nd)
	}
	return s.flush(false), nil
}

func (s *scenario) cmdStart(a *cmdArgs) (string, error) {
	nds, err := s.nodes(a.pos)
	if err != nil {
		return "", err
	}
	for _, nd := range nds {
		if nd.up {
			return "", fmt.Errorf("node %s is running", nd.name)
		}
		s.n.start(nd)
	}
	return s.flush(false), nil
}

// --- time ---

func fmtTime(t time.Time) string {
	d := t.Sub(epoch).Truncate(time.Millisecond)
	ms := d.Milliseconds()
	return fmt.Sprintf("%02d:%02d:%02d.%03d", ms/3_600_000, ms/60_000%60, ms/1000%60, ms%1000)
}

func (s *scenario) cmdRun(a *cmdArgs) (string, error) {
	if len(a.pos) < 1 {
		return "", fmt.Errorf("usage: run DURATION [quiet] [watch=C1,C2]")
	}
	d, err := time.ParseDuration(a.pos[0])
	if err != nil {
		return "", err
	}
	quiet := false
	for _, p := range a.pos[1:] {
		if p != "quiet" {
			return "", fmt.Errorf("unknown word %q", p)
		}
		quiet = true
	}
	var watch []string
	if w := a.str("watch", ""); w != "" {
		watch = strings.Split(w, ",")
		for _, c := range watch {
			if _, ok := counterValue(routing.Counters{}, c); !ok {
				return "", fmt.Errorf("unknown counter %q", c)
			}
		}
	}
	before := s.snapshot()
	s.n.run(d)
	var lines []string
	if quiet {
		lines = append(lines, s.summarizeTrace())
	} else if out := s.flush(true); out != "ok" || len(watch) == 0 {
		lines = append(lines, out)
	}
	if len(watch) > 0 {
		after := s.snapshot()
		var parts []string
		for _, c := range watch {
			var delta uint64
			for nd, cur := range after {
				v, _ := counterValue(cur.c, c)
				if old, ok := before[nd]; ok && old.eng == cur.eng {
					o, _ := counterValue(old.c, c)
					v -= o
				}
				delta += v
			}
			parts = append(parts, fmt.Sprintf("%s +%d", c, delta))
		}
		lines = append(lines, strings.Join(parts, " "))
	}
	return strings.Join(lines, "\n"), nil
}

type counterSnap struct {
	eng *routing.Engine
	c   routing.Counters
}

func (s *scenario) snapshot() map[*tnode]counterSnap {
	m := map[*tnode]counterSnap{}
	for _, nd := range s.n.order {
		m[nd] = counterSnap{eng: nd.eng, c: nd.eng.Counters()}
	}
	return m
}

func counterValue(c routing.Counters, name string) (uint64, bool) {
	var v uint64
	found := false
	c.Each(func(n string, x uint64) {
		if n == name {
			v, found = x, true
		}
	})
	return v, found
}

// --- the trace ---

func (s *scenario) msgLabel(ref uint64, id routing.MessageID) string {
	if m := s.byRef[ref]; m != nil {
		return m.label
	}
	if m := s.byID[id]; m != nil {
		return m.label
	}
	return "?"
}

// nameAddrs replaces the hex addresses of nodes in text by their names.
func (s *scenario) nameAddrs(text string) string {
	for _, nd := range s.n.order {
		text = strings.ReplaceAll(text, nd.id.Address().String(), nd.name)
	}
	return text
}

func (s *scenario) itemLine(it traceItem) string {
	nd := it.node
	if d := it.del; d != nil {
		from := s.n.names(d.From)
		if d.Broadcast {
			if !d.Signed {
				from = "anyone"
			}
			return fmt.Sprintf("%s: %s from %s %q", nd.name, s.chanIDs[d.Channel], from, d.Body)
		}
		return fmt.Sprintf("%s: got %s from %s %q", nd.name, s.msgLabel(0, d.ID), from, d.Body)
	}
	ev := it.ev
	if m := s.byRef[ev.Ref]; m != nil && ev.Kind == routing.EventAccepted && !m.hasID {
		m.id, m.hasID = ev.ID, true
		s.byID[ev.ID] = m
	}
	lbl := s.msgLabel(ev.Ref, ev.ID)
	var line string
	switch ev.Kind {
	case routing.EventAccepted:
		line = fmt.Sprintf("%s: accepted %s to %s status=%v", nd.name, lbl, s.n.names(ev.Dest), ev.Status)
	case routing.EventBroadcast:
		line = fmt.Sprintf("%s: broadcast %s", nd.name, lbl)
	default:
		line = fmt.Sprintf("%s: %v %s", nd.name, ev.Kind, lbl)
	}
	if ev.Err != nil {
		line += ": " + s.nameAddrs(ev.Err.Error())
	}
	return line
}

// flush prints the trace items since the last flush, with their times if
// timed, or "ok" if there are none.
func (s *scenario) flush(timed bool) string {
	var lines []string
	for ; s.cursor < len(s.n.trace); s.cursor++ {
		it := s.n.trace[s.cursor]
		line := s.itemLine(it)
		if timed {
			line = fmtTime(it.at) + " " + line
		}
		lines = append(lines, line)
	}
	if len(lines) == 0 {
		return "ok"
	}
	return strings.Join(lines, "\n")
}

// summarizeTrace counts the trace items since the last flush.
func (s *scenario) summarizeTrace() string {
	deliveries := 0
	kinds := map[string]int{}
	for ; s.cursor < len(s.n.trace); s.cursor++ {
		it := s.n.trace[s.cursor]
		s.itemLine(it) // learns message IDs
		switch {
		case it.del != nil:
			deliveries++
		case it.ev.Kind == routing.EventAccepted:
			kinds["accepted status="+it.ev.Status.String()]++
		default:
			kinds[it.ev.Kind.String()]++
		}
	}
	out := fmt.Sprintf("%d deliveries", deliveries)
	var ks []string
	for k := range kinds {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	for _, k := range ks {
		out += fmt.Sprintf(", %d %s", kinds[k], k)
	}
	return out
}

// --- messages ---

func (s *scenario) newMsg(from, to *tnode, body string, bcast bool) *smsg {
	s.refs++
	m := &smsg{ref: s.refs, from: from, to: to, body: body}
	if bcast {
		s.nbcast++
		m.label = fmt.Sprintf("b%d", s.nbcast)
	} else {
		m.label = fmt.Sprintf("m%d", len(s.msgs)+1)
		s.msgs = append(s.msgs, m)
	}
	s.byRef[s.refs] = m
	return m
}

func (s *scenario) cmdSend(a *cmdArgs) (string, error) {
	if len(a.pos) < 3 || len(a.pos) > 4 {
		return "", fmt.Errorf(`usage: send FROM TO "BODY" [ttl=D] [count=N] [sealed-sender]`)
	}
	sealed := false
	if len(a.pos) == 4 {
		if a.pos[3] != "sealed-sender" {
			return "", fmt.Errorf("unknown word %q", a.pos[3])
		}
		sealed = true
	}
	nds, err := s.nodes(a.pos[:2])
	if err != nil {
		return "", err
	}
	ttl := a.dur("ttl", 0)
	count := a.num("count", 1)
	for i := range count {
		body := a.pos[2]
		if count > 1 {
			body = fmt.Sprintf("%s #%d", body, i+1)
		}
		s.newMsg(nds[0], nds[1], body, false)
		s.n.step(nds[0], routing.SendRequest{
			Ref: s.refs, Dest: nds[1].id.Address(), Body: []byte(body), TTL: ttl, SealedSender: sealed,
		})
	}
	return s.flush(false), nil
}

func (s *scenario) cmdSendSample(a *cmdArgs) (string, error) {
	if len(a.pos) != 1 {
		return "", fmt.Errorf("usage: send-sample N [seed=S]")
	}
	count, err := strconv.Atoi(a.pos[0])
	if err != nil {
		return "", err
	}
	seed := uint64(a.num("seed", 1))
	rng := rand.New(rand.NewPCG(seed, seed+1))
	var up []*tnode
	for _, nd := range s.n.order {
		if nd.up {
			up = append(up, nd)
		}
	}
	if len(up) < 2 {
		return "", fmt.Errorf("fewer than two nodes are running")
	}
	for i := range count {
		from := up[rng.IntN(len(up))]
		to := up[rng.IntN(len(up)-1)]
		if to == from {
			to = up[len(up)-1]
		}
		body := fmt.Sprintf("sample %d", i+1)
		s.newMsg(from, to, body, false)
		s.n.step(from, routing.SendRequest{Ref: s.refs, Dest: to.id.Address(), Body: []byte(body)})
	}
	return s.summarizeTrace(), nil
}

func (s *scenario) channel(name string) protocol.ChannelKey {
	k, ok := s.chans[name]
	if !ok {
		k, _ = protocol.NewChannelKey(rand.NewChaCha8(seedBytes("chan:"+name, 0, 4)))
		s.chans[name] = k
		s.chanIDs[k.ID()] = name
	}
	return k
}

func (s *scenario) cmdBroadcast(a *cmdArgs) (string, error) {
	if len(a.pos) < 3 || len(a.pos) > 4 {
		return "", fmt.Errorf(`usage: broadcast FROM CHANNEL "BODY" [signed] [hops=N]`)
	}
	signed := false
	if len(a.pos) == 4 {
		if a.pos[3] != "signed" {
			return "", fmt.Errorf("unknown word %q", a.pos[3])
		}
		signed = true
	}
	nd, err := s.node(a.pos[0])
	if err != nil {
		return "", err
	}
	hops := a.num("hops", 0)
	s.newMsg(nd, nil, a.pos[2], true)
	s.n.step(nd, routing.Broadcast{
		Ref: s.refs, Channel: s.channel(a.pos[1]), Body: []byte(a.pos[2]), Signed: signed, HopLimit: uint8(hops),
	})
	return s.flush(false), nil
}

func (s *scenario) cmdJoin(a *cmdArgs) (string, error) {
	if len(a.pos) < 2 {
		return "", fmt.Errorf("usage: join NODE... CHANNEL")
	}
	nds, err := s.nodes(a.pos[:len(a.pos)-1])
	if err != nil {
		return "", err
	}
	k := s.channel(a.pos[len(a.pos)-1])
	for _, nd := range nds {
		s.n.step(nd, routing.JoinChannel{Key: k})
	}
	return s.flush(false), nil
}

// --- looking at the state ---

func (s *scenario) routeLine(r routing.Route) string {
	ln := "?"
	if l := s.n.byID[r.Link]; l != nil {
		ln = l.name
	}
	return fmt.Sprintf("%s via %s link %s metric %d hops %d", s.n.names(r.Dest), s.n.names(r.Via), ln, r.Metric, r.Hops)
}

func (s *scenario) cmdRoutes(a *cmdArgs) (string, error) {
	if len(a.pos) < 1 {
		return "", fmt.Errorf("usage: routes NODE [DEST...]")
	}
	nd, err := s.node(a.pos[0])
	if err != nil {
		return "", err
	}
	dests, err := s.nodes(a.pos[1:])
	if err != nil {
		return "", err
	}
	var lines []string
	for _, r := range nd.eng.Routes() {
		if len(dests) > 0 && !slices.ContainsFunc(dests, func(x *tnode) bool { return x.id.Address() == r.Dest }) {
			continue
		}
		lines = append(lines, s.routeLine(r))
	}
	for _, d := range dests {
		if !slices.ContainsFunc(nd.eng.Routes(), func(r routing.Route) bool { return r.Dest == d.id.Address() }) {
			lines = append(lines, d.name+" no route")
		}
	}
	slices.Sort(lines)
	if len(lines) == 0 {
		return "no routes", nil
	}
	return strings.Join(lines, "\n"), nil
}

// neighbours reports whether a and b share a link that is up, with both
// ends running.
func (s *scenario) adjacent(l *tlink, a, b *tnode) bool {
	return l != nil && l.up && a.up && b.up && slices.Contains(l.nodes, a) && slices.Contains(l.nodes, b)
}

// linkMetric is what one hop over l adds to a route's metric. It mirrors the
// engine's formula (engine.go, linkCost): 16 per hop, the airtime of a
// 256-byte frame in 10 ms units, and the link's cost.
func linkMetric(l *tlink) int {
	br := l.bitrate
	if br == 0 {
		br = map[routing.LinkKind]int{routing.LinkIP: 100_000_000, routing.LinkTCP: 10_000_000, routing.LinkLoRa: 1760}[l.kind]
	}
	return 16 + min(256*8*100/br, 4096) + int(l.cost)
}

// distances returns the least metric and the least number of hops from src
// to every node it can reach over links that are up, between running nodes.
func (s *scenario) distances(src *tnode) (metric, hops map[*tnode]int) {
	metric, hops = map[*tnode]int{src: 0}, map[*tnode]int{src: 0}
	done := map[*tnode]bool{}
	for {
		// Dijkstra; the networks are small.
		var cur *tnode
		for _, nd := range s.n.order {
			if m, ok := metric[nd]; ok && !done[nd] && (cur == nil || m < metric[cur]) {
				cur = nd
			}
		}
		if cur == nil {
			break
		}
		done[cur] = true
		for _, l := range s.n.links {
			if !l.up || !slices.Contains(l.nodes, cur) {
				continue
			}
			for _, o := range l.nodes {
				if o == cur || !o.up {
					continue
				}
				if m, ok := metric[o]; !ok || metric[cur]+linkMetric(l) < m {
					metric[o] = metric[cur] + linkMetric(l)
				}
				if h, ok := hops[o]; !ok || hops[cur]+1 < h {
					hops[o] = hops[cur] + 1
				}
			}
		}
	}
	return metric, hops
}

type pathResult struct {
	nodes  []*tnode
	kind   string // "ok", "no-route", "loop", "broken"
	metric uint16 // as the first table says
	hops   uint8  // as the first table says
	cost   int    // the sum of the link metrics along the path
}

// follow follows next hops from src to dst through the routing tables.
func (s *scenario) follow(src, dst *tnode, tables map[*tnode]map[routing.Address]routing.Route) pathResult {
	res := pathResult{nodes: []*tnode{src}}
	seen := map[*tnode]bool{src: true}
	cur := src
	for cur != dst {
		r, ok := tables[cur][dst.id.Address()]
		if !ok {
			res.kind = "no-route"
			return res
		}
		if cur == src {
			res.metric, res.hops = r.Metric, r.Hops
		}
		next := s.n.nodeByAddr(r.Via)
		if next == nil || !s.adjacent(s.n.byID[r.Link], cur, next) {
			res.kind = "broken"
			return res
		}
		res.nodes = append(res.nodes, next)
		res.cost += linkMetric(s.n.byID[r.Link])
		if seen[next] {
			res.kind = "loop"
			return res
		}
		seen[next] = true
		cur = next
	}
	res.kind = "ok"
	return res
}

func (s *scenario) tables() map[*tnode]map[routing.Address]routing.Route {
	m := map[*tnode]map[routing.Address]routing.Route{}
	for _, nd := range s.n.order {
		t := map[routing.Address]routing.Route{}
		if nd.up {
			for _, r := range nd.eng.Routes() {
				t[r.Dest] = r
			}
		}
		m[nd] = t
	}
	return m
}

func pathString(res pathResult) string {
	var names []string
	for _, nd := range res.nodes {
		names = append(names, nd.name)
	}
	return strings.Join(names, " > ")
}

func (s *scenario) cmdPath(a *cmdArgs) (string, error) {
	if len(a.pos) != 2 {
		return "", fmt.Errorf("usage: path FROM TO")
	}
	nds, err := s.nodes(a.pos)
	if err != nil {
		return "", err
	}
	res := s.follow(nds[0], nds[1], s.tables())
	p := pathString(res)
	switch res.kind {
	case "ok":
		metric, hops := s.distances(nds[0])
		return fmt.Sprintf("%s: %d hops, metric %d (table: hops %d metric %d; best: %d hops, metric %d)",
			p, len(res.nodes)-1, res.cost, res.hops, res.metric, hops[nds[1]], metric[nds[1]]), nil
	case "no-route":
		return fmt.Sprintf("%s: no route at %s", p, res.nodes[len(res.nodes)-1].name), nil
	}
	return fmt.Sprintf("%s: %s", p, strings.ToUpper(res.kind)), nil
}

func (s *scenario) cmdPaths(a *cmdArgs) (string, error) {
	from, err := s.nodes(a.pos)
	if err != nil {
		return "", err
	}
	if len(from) == 0 {
		from = s.n.order
	}
	tables := s.tables()
	var pairs, reached, cheapest, partitioned, absent, loops, broken int
	var bad []string
	note := func(line string) {
		if len(bad) < 10 {
			bad = append(bad, line)
		}
	}
	for _, src := range from {
		if !src.up {
			continue
		}
		metric, _ := s.distances(src)
		for _, dst := range s.n.order {
			if dst == src || !dst.up {
				continue
			}
			pairs++
			res := s.follow(src, dst, tables)
			best, connected := metric[dst]
			switch {
			case res.kind == "ok":
				reached++
				if res.cost == best {
					cheapest++
				} else {
					note(fmt.Sprintf("costly: %s metric %d (best %d)", pathString(res), res.cost, best))
				}
			case res.kind == "no-route" && !connected:
				partitioned++
			case res.kind == "no-route":
				absent++
				note(fmt.Sprintf("no route: %s > %s", pathString(res), dst.name))
			case res.kind == "loop":
				loops++
				note("LOOP: " + pathString(res))
			default:
				broken++
				note(fmt.Sprintf("broken: %s > %s", pathString(res), dst.name))
			}
		}
	}
	out := fmt.Sprintf("%d pairs: %d reached (%d by the cheapest path), %d no route (%d partitioned), %d loops, %d broken",
		pairs, reached, cheapest, absent+partitioned, partitioned, loops, broken)
	if len(bad) > 0 {
		out += "\n" + strings.Join(bad, "\n")
	}
	return out, nil
}

func (s *scenario) cmdInbox(a *cmdArgs) (string, error) {
	if len(a.pos) != 1 {
		return "", fmt.Errorf("usage: inbox NODE")
	}
	nd, err := s.node(a.pos[0])
	if err != nil {
		return "", err
	}
	var lines []string
	for i := range nd.inbox {
		line := s.itemLine(traceItem{node: nd, del: &nd.inbox[i]})
		lines = append(lines, strings.TrimPrefix(line, nd.name+": "))
	}
	if len(lines) == 0 {
		return "empty", nil
	}
	return strings.Join(lines, "\n"), nil
}

func (s *scenario) cmdEvents(a *cmdArgs) (string, error) {
	if len(a.pos) != 1 {
		return "", fmt.Errorf("usage: events NODE")
	}
	nd, err := s.node(a.pos[0])
	if err != nil {
		return "", err
	}
	var lines []string
	for i := range nd.events {
		line := s.itemLine(traceItem{node: nd, ev: &nd.events[i]})
		lines = append(lines, strings.TrimPrefix(line, nd.name+": "))
	}
	if len(lines) == 0 {
		return "none", nil
	}
	return strings.Join(lines, "\n"), nil
}

// fate sums up what became of a message: how often its recipient's
// application got it and what its sender heard.
func (s *scenario) fate(m *smsg) (copies int, sender []string) {
	if m.hasID {
		for _, d := range m.to.inbox {
			if d.ID == m.id {
				copies++
			}
		}
	}
	for _, ev := range m.from.events {
		if ev.Ref == m.ref && ev.Kind != routing.EventAccepted {
			sender = append(sender, ev.Kind.String())
		}
	}
	return copies, sender
}

func (s *scenario) cmdMessages(a *cmdArgs) (string, error) {
	summary := false
	for _, p := range a.pos {
		if p != "summary" {
			return "", fmt.Errorf("usage: messages [summary]")
		}
		summary = true
	}
	if !summary {
		var lines []string
		for _, m := range s.msgs {
			copies, sender := s.fate(m)
			st := "nothing yet"
			if len(sender) > 0 {
				st = strings.Join(sender, ", ")
			}
			lines = append(lines, fmt.Sprintf("%s %s>%s %q: received %d, sender: %s", m.label, m.from.name, m.to.name, m.body, copies, st))
		}
		if len(lines) == 0 {
			return "none", nil
		}
		return strings.Join(lines, "\n"), nil
	}
	var once, more, none, receipts, expired, refused int
	for _, m := range s.msgs {
		copies, sender := s.fate(m)
		switch {
		case copies == 1:
			once++
		case copies > 1:
			more++
		default:
			none++
		}
		receipts += countOf(sender, "delivered")
		expired += countOf(sender, "expired")
		refused += countOf(sender, "refused")
	}
	return fmt.Sprintf("%d sent: %d received once, %d more than once, %d not received; senders saw %d delivered, %d expired, %d refused",
		len(s.msgs), once, more, none, receipts, expired, refused), nil
}

func countOf(xs []string, x string) int {
	n := 0
	for _, y := range xs {
		if y == x {
			n++
		}
	}
	return n
}

func (s *scenario) cmdCounters(a *cmdArgs) (string, error) {
	var nds []*tnode
	var names []string
	total := false
	for _, p := range a.pos {
		switch {
		case p == "*":
			nds = append(nds, s.n.order...)
		case p == "total":
			total = true
		case s.n.nodes[p] != nil:
			nds = append(nds, s.n.nodes[p])
		default:
			if _, ok := counterValue(routing.Counters{}, p); !ok {
				return "", fmt.Errorf("%q is neither a node nor a counter", p)
			}
			names = append(names, p)
		}
	}
	if len(nds) == 0 || len(names) == 0 {
		return "", fmt.Errorf("usage: counters NODE...|* NAME... [total]")
	}
	sums := make([]uint64, len(names))
	var lines []string
	for _, nd := range nds {
		c := nd.eng.Counters()
		var parts []string
		for i, nm := range names {
			v, _ := counterValue(c, nm)
			sums[i] += v
			parts = append(parts, fmt.Sprintf("%s=%d", nm, v))
		}
		lines = append(lines, nd.name+": "+strings.Join(parts, " "))
	}
	if total || len(nds) > 1 {
		var parts []string
		for i, nm := range names {
			parts = append(parts, fmt.Sprintf("%s=%d", nm, sums[i]))
		}
		if total {
			lines = nil
		}
		lines = append(lines, "total: "+strings.Join(parts, " "))
	}
	return strings.Join(lines, "\n"), nil
}

// sentSince returns what each node sent on l since its mark.
func (s *scenario) sentSince(l *tlink) (time.Duration, []*tnode, map[*tnode]txStats) {
	mark := s.marks[l]
	out := map[*tnode]txStats{}
	var senders []*tnode
	for _, nd := range l.nodes {
		cur := l.sent[nd]
		if cur == nil {
			continue
		}
		old := mark.sent[nd]
		d := txStats{frames: cur.frames - old.frames, bytes: cur.bytes - old.bytes, routingBytes: cur.routingBytes - old.routingBytes}
		if d.frames > 0 {
			out[nd] = d
			senders = append(senders, nd)
		}
	}
	return s.n.now.Sub(mark.at), senders, out
}

func (s *scenario) cmdTraffic(a *cmdArgs) (string, error) {
	if len(a.pos) < 1 || len(a.pos) > 2 {
		return "", fmt.Errorf("usage: traffic LINK [reset]")
	}
	l := s.linkByName(a.pos[0])
	if l == nil {
		return "", fmt.Errorf("no link %q", a.pos[0])
	}
	if len(a.pos) == 2 {
		if a.pos[1] != "reset" {
			return "", fmt.Errorf("unknown word %q", a.pos[1])
		}
		m := trafficMark{at: s.n.now, sent: map[*tnode]txStats{}}
		for nd, st := range l.sent {
			m.sent[nd] = *st
		}
		s.marks[l] = m
		return "ok", nil
	}
	d, senders, st := s.sentSince(l)
	var frames, bytes int
	var lines []string
	for _, nd := range senders {
		x := st[nd]
		frames += x.frames
		bytes += x.bytes
		lines = append(lines, fmt.Sprintf("  %s: %d frames, %d bytes, %d routing bytes", nd.name, x.frames, x.bytes, x.routingBytes))
	}
	head := fmt.Sprintf("%s in %v: %d frames, %d bytes", l.name, d, frames, bytes)
	return strings.Join(append([]string{head}, lines...), "\n"), nil
}

func (s *scenario) cmdBudget(a *cmdArgs) (string, error) {
	if len(a.pos) != 1 {
		return "", fmt.Errorf("usage: budget LINK")
	}
	l := s.linkByName(a.pos[0])
	if l == nil {
		return "", fmt.Errorf("no link %q", a.pos[0])
	}
	d, senders, st := s.sentSince(l)
	bitrate := l.bitrate
	if bitrate == 0 {
		bitrate = map[routing.LinkKind]int{routing.LinkIP: 100_000_000, routing.LinkTCP: 10_000_000, routing.LinkLoRa: 1760}[l.kind]
	}
	lines := []string{fmt.Sprintf("%s: %d bit/s, %v", l.name, bitrate, d)}
	for _, nd := range senders {
		share, burst := nd.cfg.AnnounceShare, nd.cfg.AnnounceBurst
		if share <= 0 || share > 1 {
			share = 0.02
		}
		if burst <= 0 {
			burst = 2048
		}
		bound := share*float64(bitrate)/8*d.Seconds() + float64(burst)
		verdict := "within"
		if float64(st[nd].routingBytes) > bound {
			verdict = "OVER"
		}
		lines = append(lines, fmt.Sprintf("  %s: routing %d bytes, bound %g*%d/8*%gs+%d = %.0f: %s (%.0f%%)",
			nd.name, st[nd].routingBytes, share, bitrate, d.Seconds(), burst, bound, verdict, 100*float64(st[nd].routingBytes)/bound))
	}
	return strings.Join(lines, "\n"), nil
}

// --- fault injection ---

// frameClass names what a frame carries, looking inside a hop wrapper.
func frameClass(frame []byte) string {
	k, err := protocol.PeekKind(frame)
	if err != nil {
		return "malformed"
	}
	if k == protocol.KindHop {
		if _, inner, err := protocol.ParseHop(frame); err == nil {
			return frameClass(inner)
		}
		return "malformed"
	}
	switch k {
	case protocol.KindEnvelope:
		if len(frame) > 1 {
			switch protocol.Type(frame[1]) {
			case protocol.TypeReceipt:
				return "receipt"
			case protocol.TypeControl:
				return "control"
			}
		}
		return "envelope"
	case protocol.KindChannel, protocol.KindChannelSigned:
		return "channel"
	}
	return k.String()
}

var frameClasses = []string{"advert", "path-request", "hop-ack", "envelope", "receipt", "control", "channel", "fragment", "session-data", "any"}

func (s *scenario) cmdDrop(a *cmdArgs) (string, error) {
	if len(a.pos) < 2 || len(a.pos) > 3 {
		return "", fmt.Errorf("usage: drop NODE CLASS [n=N] | drop NODE CLASS off")
	}
	nd, err := s.node(a.pos[0])
	if err != nil {
		return "", err
	}
	class := a.pos[1]
	if !slices.Contains(frameClasses, class) {
		return "", fmt.Errorf("unknown frame class %q (%s)", class, strings.Join(frameClasses, ", "))
	}
	s.drops = slices.DeleteFunc(s.drops, func(r *dropRule) bool { return r.node == nd && r.class == class })
	if len(a.pos) == 3 {
		if a.pos[2] != "off" {
			return "", fmt.Errorf("unknown word %q", a.pos[2])
		}
		return "ok", nil
	}
	s.drops = append(s.drops, &dropRule{node: nd, class: class, left: a.num("n", -1)})
	return "ok", nil
}

func (s *scenario) cmdLoss(a *cmdArgs) (string, error) {
	if len(a.pos) != 2 {
		return "", fmt.Errorf("usage: loss LINK P")
	}
	l := s.linkByName(a.pos[0])
	if l == nil {
		return "", fmt.Errorf("no link %q", a.pos[0])
	}
	p, err := strconv.ParseFloat(a.pos[1], 64)
	if err != nil || p < 0 || p > 1 {
		return "", fmt.Errorf("loss %q", a.pos[1])
	}
	l.loss = p
	return "ok", nil
}

func (s *scenario) cmdClock(a *cmdArgs) (string, error) {
	if len(a.pos) != 2 {
		return "", fmt.Errorf("usage: clock NODE OFFSET")
	}
	nd, err := s.node(a.pos[0])
	if err != nil {
		return "", err
	}
	d, err := time.ParseDuration(a.pos[1])
	if err != nil {
		return "", err
	}
	nd.skew = d
	// Wake the node on its new clock.
	nd.wakeAt = time.Time{}
	s.n.scheduleTick(nd)
	return "ok", nil
}

func (s *scenario) dropFrame(from *tnode, _ *tlink, tx routing.Transmit) bool {
	for _, r := range s.drops {
		if r.node != from || r.left == 0 || (r.class != "any" && r.class != frameClass(tx.Frame)) {
			continue
		}
		if r.left > 0 {
			r.left--
		}
		return true
	}
	return false
}

// nodeByAddr finds the node with address a.
func (n *testNet) nodeByAddr(a routing.Address) *tnode {
	for _, nd := range n.order {
		if nd.id.Address() == a {
			return nd
		}
	}
	return nil
}
