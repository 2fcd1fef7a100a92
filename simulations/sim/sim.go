package sim

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/routing"
	"meshd.dev/meshd/simulations/radio"
)

// Epoch is the simulated instant at which every run starts.
var Epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// loraLinkID is the engine link ID of every node's radio.
const loraLinkID routing.LinkID = 1

type evKind uint8

const (
	evTick        evKind = iota + 1
	evInput              // deliver in to node
	evLoRaEnd            // a radio transmission ends
	evLoRaRetry          // a node's duty cycle allows its held frame
	evCarrier            // a node's carrier-sense backoff is over
	evSend               // a node's next Poisson message
	evBroadcast          // a node's next broadcast
	evDynamic            // scenario dynamics
	evChurn              // a node's next failure or repair (MTBF/MTTR)
	evGossip             // a gossip message reaches node from a neighbour
	evHeartbeat          // a node's gossipsub heartbeat (IHAVE gossip)
	evIHave              // IHAVE message IDs reach node from a neighbour
	evIWant              // IWANT message IDs reach node from a neighbour
	evFAPPSetup          // therapist dyn sets up its offer
	evFAPPRelease        // therapist dyn's publisher has an announce due
	evFAPPPlace          // therapist dyn has a new therapy place
	evFAPPQuery          // a patient query in region dyn
	evFAPPDecide         // a therapist answers request dyn
	evBaseline           // a baseline strategy's timer (bl)
)

type event struct {
	at   time.Time
	key  int64 // at in nanoseconds since Epoch: the heap's order
	seq  uint64
	kind evKind
	node *node
	from *node       // evGossip, evIHave, evIWant: the neighbour that sent it
	ids  []gossipKey // evIHave, evIWant: the message IDs
	// topic is the gossip topic of evGossip, evIHave, evIWant.
	topic *topic
	gen   uint64
	in    routing.Input
	tx    radio.TxID
	dyn   int
	// bl is evBaseline's rebroadcast or retransmission.
	bl *blPending
}

// qent is a queued event with its order (time, then sequence number)
// inline, so that the heap compares without following pointers to events
// scattered over memory. Sequence numbers are unique, so the order is
// total: the events come out in the same order whatever the heap's shape.
type qent struct {
	key int64
	seq uint64
	e   *event
}

type eventQueue []qent

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if q[i].key != q[j].key {
		return q[i].key < q[j].key
	}
	return q[i].seq < q[j].seq
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }

// NodeStats are one node's counts for nodes.csv.
type NodeStats struct {
	FramesSent, BytesSent         uint64
	FramesReceived, BytesReceived uint64
	Airtime                       time.Duration
	DutyPeak                      float64 // highest share of the hourly limit used
	Blocked                       time.Duration
	Deferrals                     uint64
	CarrierWaits                  uint64 // times the channel was busy when the node wanted to send
	Collisions                    uint64 // frames lost here to collisions
	HalfDuplex                    uint64 // frames lost here while transmitting
	LinkLoss                      uint64 // frames this node sent that an IP link lost
	QueueDrops                    uint64 // engine queue drops
	CustodyPeak                   uint64
	Delivered                     uint64 // messages delivered to this node's app
	Crashes                       uint64 // times the node went down (dynamics or churn)
	Downtime                      time.Duration
	// Channel broadcasts (numbered ones: bodies of 8 bytes or more).
	BroadcastsDelivered uint64 // distinct broadcasts delivered to this node's app
	BroadcastDuplicates uint64 // deliveries to the app of a broadcast it already had
	GossipReceived      uint64 // gossip messages that reached the node
	GossipDuplicates    uint64 // of those, ones gossipsub's seen cache dropped
}

type node struct {
	// The fields the run touches at most of a node's events come first,
	// so that an event touches few of its cache lines (a large run has
	// thousands of nodes, none of them in a cache): its state, its
	// engine and radio, the start of its stats. Then the rest.
	idx int
	// up is false while the node is down; gen counts restarts, so events
	// of a previous life are recognised.
	up   bool
	busy bool
	// blocked: the duty cycle holds its next frame; sensing: it waits for
	// a clear channel.
	blocked bool
	sensing bool
	// Radio (radioID < 0 for none).
	radioID radio.NodeID
	gen     uint64
	eng     *routing.Engine
	mac     *rand.Rand // carrier-sense backoff
	ledger  *radio.Ledger
	held    []routing.Transmit // frames handed to the radio, not yet sent
	wakeAt  time.Time
	wgen    uint64
	stats   NodeStats

	blockedAt time.Time
	x, y      float64
	name      string
	id        *protocol.Identity
	addr      routing.Address
	cfg       routing.Config
	store     map[string][]byte
	rng       *rand.Rand // the workload
	churn     *rand.Rand // failures and repairs (nil without churn)

	// All-to-all workload: the destinations still to send to, in order.
	a2a []*node
	// member: the node joins the traffic channel (its meshes are in the
	// topics), gseen gossipsub's seen cache (message IDs), bseen the numbers of the
	// broadcasts delivered to its application (kept across restarts, so a
	// restarted node that delivers one again counts a duplicate).
	member bool
	gseen  map[gossipKey]struct{}
	bseen  map[uint64]struct{}
	// mcache is gossipsub's message cache (what IWANT can fetch and IHAVE
	// announces); hbOn says a heartbeat is scheduled.
	mcache []gossipMsg
	hbOn   bool

	// churnDown: churn took the node down (and will bring it up).
	churnDown bool
	downAt    time.Time
	hasPos    bool

	links []*ipLink
	// bl is the baseline strategies' state (nil until used).
	bl *blNode
}

type ipLink struct {
	id   routing.LinkID
	name string
	a, b *node
	p    IPParams
	up   bool
	busy [2]time.Time // per direction: when the sender's queue drains
	last [2]time.Time // per direction: latest arrival (keeps order)
}

func (l *ipLink) other(n *node) *node {
	if n == l.a {
		return l.b
	}
	return l.a
}

// usable reports whether the link carries frames: up, both ends up.
func (l *ipLink) usable() bool { return l.up && l.a.up && l.b.up }

func (l *ipLink) kind() routing.LinkKind {
	if l.p.Kind == "tcp" {
		return routing.LinkTCP
	}
	return routing.LinkIP
}

func (l *ipLink) info(n *node) routing.LinkInfo {
	return routing.LinkInfo{ID: l.id, Kind: l.kind(), MTU: l.p.MTU, Peer: l.other(n).addr}
}

// message is one application message of the workload.
type message struct {
	ref       uint64
	src, dst  *node
	sent      time.Time
	id        MessageID
	hasID     bool
	refused   bool
	delivered bool
	at        time.Time
	hops      uint8
}

// MessageID is an envelope's ID.
type MessageID = protocol.MessageID

// Sim is one run of a scenario.
type Sim struct {
	preIDs identities // made ahead by build (identities.go)
	sc     *Scenario
	now    time.Time
	end    time.Time
	q      eventQueue
	free   []*event // events popped, for push to reuse
	seq    uint64
	nodes  []*node
	byName map[string]*node
	links  []*ipLink
	lByNm  map[string]*ipLink
	rng    *rand.Rand // link models
	// frameIn is the input of stepFrame, reused.
	frameIn routing.FrameReceived
	// warmSink keeps what warm reads, so that the reads are not dropped.
	warmSink uint64

	medium   *radio.Medium
	params   radio.Params
	radioCfg Radio
	radioOf  []*node // by radio.NodeID
	// radioUp, radioIdx and radioLost are, by radio.NodeID, the node's up,
	// its index and its frames lost to collisions and half-duplex not yet
	// added to its stats: dense copies, so that judging a frame at its
	// candidate receivers, most of them lost in a busy run, does not visit
	// each receiver's node (a cache miss per receiver).
	radioUp   []bool
	radioIdx  []int32
	radioLost []lostCount
	// dutyLimit is the hourly airtime the channel's sub-band allows.
	dutyLimit time.Duration
	// hearsUntil is, per radio node, the latest end of the transmissions
	// it can hear (is a candidate receiver of) that started so far: the
	// node hears one in progress if and only if that is after now
	// (for carrier sense).
	hearsUntil []time.Time
	// chans is, per radio node, its channel when some node has its own
	// (nil: every node on the radio's; radio_channels.go).
	chans []radioChan
	// cadFrom is, per radio node, when its channel activity detection
	// started (zero: none under way; radio_cad.go).
	cadFrom []time.Time
	// csma is, per radio node, its contention for the next frame with
	// radio.carrier_sense = "csma" (radio_csma.go).
	csma []csmaState
	// csmaT is the radios' contention slot and detection latency, one
	// per radio node, or one for all when they share a modulation.
	csmaT []csmaTiming

	msgs    []*message
	byID    map[MessageID]*message
	senders []*node
	dests   []*node
	hot     []*node // hotspot destinations
	// byX holds the destinations with a position by x (then index), for
	// the local pattern; near is its scratch list.
	byX     []*node
	near    []*node
	channel protocol.ChannelKey
	bcasts  uint64
	bcastRx uint64
	// bcastAt is when each broadcast was sent (its body starts with its
	// 1-based index), bcastLat how long each delivery took, bcastFrom who
	// sent it and bcastReach how many other members it reached.
	bcastAt    []time.Time
	bcastLat   []float64
	bcastFrom  []*node
	bcastReach []int
	bcastLast  []time.Time // the latest first delivery to a member
	// bcastLatBy is bcastLat by path: "SENDERSIDE_to_RECEIVERSIDE".
	bcastLatBy map[string][]float64
	members    int
	// topics are the gossip topics (the traffic channel first), topicByID
	// finds them by channel.
	topics    []*topic
	topicByID map[protocol.ChannelID]*topic
	// gossipRng draws the gossipsub meshes; meshDirty says links or nodes
	// changed since the meshes were drawn.
	gossipRng *rand.Rand
	meshDirty bool
	// lazyRng draws heartbeat phases and IHAVE peers (its own stream, so
	// turning IHAVE gossip on or off moves no other draw).
	lazyRng *rand.Rand

	trace  *Tracer
	events uint64
	errs   uint64
	frames map[string]uint64 // per kind: "lora", "ip", "gossip", priority names
	bytes  map[string]uint64
	rx     []radio.Reception
	vcache *verifyCache
	ocache *openCache // with vcache (opencache.go)
	// fapp is the FAPP workload (nil without one).
	fapp *fappState
	// pathLoss is Options.PathLoss.
	pathLoss *radio.PathLoss
	// airtimeBy is the radio airtime per frame kind (frames' keys).
	airtimeBy map[string]time.Duration
	// airtimeLoRa is the airtime of meshd's radio frames by priority
	// (loraKinds), not yet in airtimeBy (foldAirtime).
	airtimeLoRa     [len(loraKinds)]time.Duration
	airtimeLoRaSeen [len(loraKinds)]bool
	// workers is Options.Workers; fan, during Run with two workers, runs
	// the engines' Steps of each frame's fan-out (fanout.go), fanOf is
	// radioEndFan's job per reception.
	workers  int
	fan      *fanout
	fanOf    []int32
	fanStats fanStats
	fanKeep  bool // tests: fan every frame out, even with a starved helper
}

// verifyCache is the routing.VerifyCache shared by all engines of a run
// (see routing.VerifyCache: each announce's signature is checked once per
// run, and no result changes). It forgets everything when it reaches
// maxVerifyCache entries, which costs only speed.
//
// It locks: with two workers, the engines of one frame's receivers ask it
// at the same time (fanout.go). They verify the same announce at the same
// time with the same result, so when two of them miss it and both verify
// it, the second one's AddVerified counts the verification a serial run
// would have saved: the counts come out as in a serial run.
type verifyCache struct {
	mu         sync.Mutex
	m          map[[32]byte]struct{}
	hits, adds uint64
}

const maxVerifyCache = 1 << 22

func (c *verifyCache) Verified(d [32]byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.m[d]
	if ok {
		c.hits++
	}
	return ok
}

func (c *verifyCache) AddVerified(d [32]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[d]; ok {
		c.hits++ // verified at the same time by another worker
		return
	}
	if len(c.m) >= maxVerifyCache {
		clear(c.m)
	}
	c.m[d] = struct{}{}
	c.adds++
}

// Options are how to run a scenario, beyond the scenario itself.
type Options struct {
	// Trace, if not nil, receives the JSONL event trace.
	Trace *Tracer
	// NoVerifyCache makes every engine verify every announce and open
	// every channel frame itself, as in the daemon (slower; the results
	// are the same).
	NoVerifyCache bool
	// PathLoss, if not nil, replaces the radio's path-loss model (the
	// scenario's shadowing still applies): for reproducing another
	// simulator's model in tests.
	PathLoss *radio.PathLoss
	// Workers is how many goroutines run the engines' Steps of a radio
	// frame's receivers (fanout.go): 0 or 1 the run's goroutine alone, 2
	// (or more, the same) a helper too, for a second core. The run is the
	// same, byte for byte, with any number.
	Workers int
}

// seedBytes derives a 32-byte ChaCha8 seed from the scenario seed, a node
// index and a purpose.
func seedBytes(seed uint64, index int, purpose byte) [32]byte {
	var s [32]byte
	copy(s[:], "meshsim")
	s[7] = purpose
	binary.LittleEndian.PutUint64(s[8:], seed)
	binary.LittleEndian.PutUint64(s[16:], uint64(index))
	return s
}

// Seed purposes.
const (
	seedIdentity byte = iota + 1
	seedEngine
	seedTraffic
	seedLinks
	seedRadio
	seedTopology
	seedChannel
	seedMAC
	seedChurn
	seedHotspot
	seedGossip
	seedGossipLazy
	seedFAPP
	seedFAPPTherapist
	seedFAPPSeal
)

// New builds the network of sc. trace, if not nil, receives the JSONL
// event trace.
func New(sc *Scenario, trace *Tracer) (*Sim, error) {
	return NewWith(sc, Options{Trace: trace})
}

// NewWith builds the network of sc with options.
func NewWith(sc *Scenario, o Options) (*Sim, error) {
	trace := o.Trace
	s := &Sim{
		sc: sc, now: Epoch, end: Epoch.Add(sc.Duration.Duration),
		byName: map[string]*node{}, lByNm: map[string]*ipLink{},
		rng:    rand.New(rand.NewChaCha8(seedBytes(sc.Seed, -1, seedLinks))),
		params: sc.Radio.Params(), radioCfg: sc.Radio,
		byID:  map[MessageID]*message{},
		trace: trace, frames: map[string]uint64{}, bytes: map[string]uint64{},
		pathLoss: o.PathLoss, workers: o.Workers,
	}
	if s.trace == nil {
		s.trace = newTracer(nil)
	}
	if !o.NoVerifyCache {
		s.vcache = &verifyCache{m: map[[32]byte]struct{}{}}
		s.ocache = &openCache{m: map[[32]byte]protocol.ChannelMessage{}}
	}
	if err := s.build(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Sim) addNode(name string, lora bool, x, y float64, hasPos, mailbox bool) error {
	i := len(s.nodes)
	id, err := s.preIDs.take(s.sc.Seed, i)
	if err != nil {
		return err
	}
	n := &node{
		idx: i, name: name, id: id, addr: id.Address(), store: map[string][]byte{},
		rng:     rand.New(rand.NewChaCha8(seedBytes(s.sc.Seed, i, seedTraffic))),
		mac:     rand.New(rand.NewChaCha8(seedBytes(s.sc.Seed, i, seedMAC))),
		radioID: -1, x: x, y: y, hasPos: hasPos, up: true,
	}
	e := s.sc.Engine
	n.cfg = routing.Config{
		Identity:         id,
		Rand:             rand.NewChaCha8(seedBytes(s.sc.Seed, i, seedEngine)),
		Mailbox:          mailbox,
		AnnounceInterval: e.AnnounceInterval.Duration,
		RetryBase:        e.RetryBase.Duration,
		RetryMax:         e.RetryMax.Duration,
		MessageTTL:       e.MessageTTL.Duration,
		IPAdvertRadius:   uint8(e.IPAdvertRadius),
		NoSessions:       e.Sessions != nil && !*e.Sessions,
	}
	if s.vcache != nil {
		n.cfg.VerifyCache = s.vcache
		n.cfg.OpenCache = s.ocache
	}
	if policy, ok := floodPolicies[e.FloodPolicy]; ok {
		policy(&n.cfg)
	}
	if mailbox {
		n.cfg.Capabilities |= protocol.CapMailbox
	}
	if lora {
		n.radioID = radio.NodeID(len(s.radioOf))
		s.radioOf = append(s.radioOf, n)
		if s.sc.Radio.DutyCycle == "eu868" {
			n.ledger = radio.NewLedger(radio.EU868())
		}
	}
	s.nodes = append(s.nodes, n)
	s.byName[name] = n
	return nil
}

func (s *Sim) addLink(a, b string, p IPParams) {
	l := &ipLink{id: routing.LinkID(len(s.links) + 2), name: a + "-" + b, a: s.byName[a], b: s.byName[b], p: p, up: true}
	if l.p.MTU == 0 {
		l.p.MTU = 64 << 10
	}
	s.links = append(s.links, l)
	s.lByNm[l.name] = l
	l.a.links = append(l.a.links, l)
	l.b.links = append(l.b.links, l)
}

// build creates the nodes, links, radio medium and engines.
func (s *Sim) build() error {
	sc := s.sc
	total := len(sc.Nodes)
	for _, t := range sc.Topology {
		total += t.N
	}
	s.preIDs = makeIdentities(sc.Seed, total)
	defer func() { s.preIDs = identities{} }()
	for _, n := range sc.Nodes {
		var x, y float64
		if n.X != nil {
			x = *n.X
		}
		if n.Y != nil {
			y = *n.Y
		}
		if err := s.addNode(n.Name, n.LoRa, x, y, n.X != nil && n.Y != nil, n.Mailbox); err != nil {
			return err
		}
	}
	topoRng := rand.New(rand.NewChaCha8(seedBytes(sc.Seed, -1, seedTopology)))
	devOf := sc.devices()
	dev := devOf("")
	model, err := sc.Radio.model()
	if err != nil {
		return err
	}
	if s.pathLoss != nil { // Options.PathLoss (tests) replaces the scenario's propagation model
		model.PathLoss = *s.pathLoss
		model.PathLoss.ShadowSigmaDB = *sc.Radio.ShadowSigmaDB
	}
	for _, t := range sc.Topology {
		lora := t.Link == "lora"
		first := len(s.nodes)
		cols := t.Cols
		if cols == 0 {
			cols = int(math.Ceil(math.Sqrt(float64(t.N))))
		}
		for j := range t.N {
			var x, y float64
			switch t.Kind {
			case "grid":
				x, y = float64(j%cols)*t.Spacing, float64(j/cols)*t.Spacing
			case "ring":
				a := 2 * math.Pi * float64(j) / float64(t.N)
				x, y = t.Radius*math.Cos(a), t.Radius*math.Sin(a)
			case "random":
				x, y = topoRng.Float64()*t.Width, topoRng.Float64()*t.Height
			}
			if err := s.addNode(fmt.Sprintf("%s%d", t.Prefix, j), lora, t.OriginX+x, t.OriginY+y, t.Kind != "ba" && (t.Kind != "ring" || t.Radius > 0), false); err != nil {
				return err
			}
		}
		if lora {
			continue
		}
		gen := s.nodes[first:]
		name := func(j int) string { return gen[j].name }
		switch t.Kind {
		case "grid":
			for j := range gen {
				if (j+1)%cols != 0 && j+1 < len(gen) {
					s.addLink(name(j), name(j+1), t.IP)
				}
				if j+cols < len(gen) {
					s.addLink(name(j), name(j+cols), t.IP)
				}
			}
		case "ring":
			for j := range gen {
				if len(gen) > 1 && (j+1 < len(gen) || len(gen) > 2) {
					s.addLink(name(j), name((j+1)%len(gen)), t.IP)
				}
			}
		case "ba":
			// A clique of M+1 nodes, then each node links to M distinct
			// earlier ones drawn with probability proportional to degree
			// (ends is the list of link endpoints).
			var ends []int
			for a := 0; a <= t.M; a++ {
				for b := a + 1; b <= t.M; b++ {
					s.addLink(name(a), name(b), t.IP)
					ends = append(ends, a, b)
				}
			}
			for j := t.M + 1; j < len(gen); j++ {
				var chosen []int
				for len(chosen) < t.M {
					c := ends[topoRng.IntN(len(ends))]
					if !slices.Contains(chosen, c) {
						chosen = append(chosen, c)
					}
				}
				for _, c := range chosen {
					s.addLink(name(c), name(j), t.IP)
					ends = append(ends, c, j)
				}
			}
		case "random":
			reach := t.Reach
			if reach == 0 {
				reach = model.MaxRange(s.params, dev, dev)
			}
			for a := range gen {
				for b := a + 1; b < len(gen); b++ {
					dx, dy := gen[a].x-gen[b].x, gen[a].y-gen[b].y
					if dx*dx+dy*dy <= reach*reach {
						s.addLink(name(a), name(b), t.IP)
					}
				}
			}
		}
	}
	for _, l := range sc.Links {
		s.addLink(l.A, l.B, l.IPParams)
	}
	if band, err := radio.EU868().Find(sc.Radio.FrequencyHz, sc.Radio.BandwidthHz); err == nil {
		s.dutyLimit = band.AirtimePerHour()
	}
	if len(s.radioOf) > 0 {
		rn := make([]radio.Node, len(s.radioOf))
		for i, n := range s.radioOf {
			rn[i] = radio.Node{X: n.x, Y: n.y, Device: devOf(n.name)}
		}
		m, err := radio.NewMedium(rn, rand.New(rand.NewChaCha8(seedBytes(sc.Seed, -1, seedRadio))),
			append([]radio.Option{radio.WithModel(model), radio.WithCaptureThreshold(sc.Radio.captureDB())}, sc.Radio.mediumOptions()...)...)
		if err != nil {
			return fmt.Errorf("%w: radio: %w", ErrScenario, err)
		}
		s.medium = m
		s.hearsUntil = make([]time.Time, len(s.radioOf))
		s.radioUp = make([]bool, len(s.radioOf))
		s.radioIdx = make([]int32, len(s.radioOf))
		s.radioLost = make([]lostCount, len(s.radioOf))
		for i, n := range s.radioOf {
			s.radioUp[i], s.radioIdx[i] = n.up, int32(n.idx)
		}
		s.setupChannels()
	}
	// Workload endpoints.
	pick := func(names []string) []*node {
		if len(names) == 0 {
			return s.nodes
		}
		var out []*node
		for _, nm := range names {
			out = append(out, s.byName[nm])
		}
		return out
	}
	s.senders = pick(sc.Traffic.Senders)
	s.dests = pick(sc.Traffic.Destinations)
	if sc.Traffic.Pattern == "hotspot" {
		if len(sc.Traffic.HotspotNodes) > 0 {
			s.hot = pick(sc.Traffic.HotspotNodes)
		} else {
			// k distinct destinations, uniformly, from their own stream.
			hrng := rand.New(rand.NewChaCha8(seedBytes(sc.Seed, -1, seedHotspot)))
			pool := slices.Clone(s.dests)
			for i := range sc.Traffic.Hotspots {
				j := i + hrng.IntN(len(pool)-i)
				pool[i], pool[j] = pool[j], pool[i]
			}
			s.hot = pool[:sc.Traffic.Hotspots]
		}
	}
	if sc.Traffic.Pattern == "local" {
		for _, d := range s.dests {
			if d.hasPos {
				s.byX = append(s.byX, d)
			}
		}
		slices.SortFunc(s.byX, func(a, b *node) int { return cmp.Or(cmp.Compare(a.x, b.x), cmp.Compare(a.idx, b.idx)) })
	}
	var ck [32]byte
	crng := rand.NewChaCha8(seedBytes(sc.Seed, -1, seedChannel))
	_, _ = crng.Read(ck[:])
	s.channel = protocol.ChannelKey(ck)
	s.gossipRng = rand.New(rand.NewChaCha8(seedBytes(sc.Seed, -1, seedGossip)))
	s.lazyRng = rand.New(rand.NewChaCha8(seedBytes(sc.Seed, -1, seedGossipLazy)))
	s.meshDirty = true
	traffic := s.addTopic(s.channel.ID())
	for _, n := range pick(sc.Traffic.ChannelMembers) {
		if !n.member {
			n.member = true
			traffic.member[n.idx] = true
			s.members++
		}
	}
	if err := s.buildFAPP(); err != nil {
		return err
	}
	if err := s.makeEngines(); err != nil {
		return err
	}
	for _, n := range s.nodes {
		s.nodeUp(n)
	}
	// Workload and dynamics.
	start := Epoch.Add(sc.Traffic.Start.Duration)
	if sc.Traffic.Rate > 0 && len(s.dests) > 0 {
		for _, n := range s.senders {
			s.push(event{at: start.Add(expDur(n.rng, sc.Traffic.Rate)), kind: evSend, node: n})
		}
	}
	if sc.Traffic.BroadcastRate > 0 {
		for _, n := range s.nodes {
			if !n.member {
				continue
			}
			s.push(event{at: start.Add(expDur(n.rng, sc.Traffic.BroadcastRate)), kind: evBroadcast, node: n})
		}
	}
	for i, d := range sc.Dynamics {
		s.push(event{at: Epoch.Add(d.At.Duration), kind: evDynamic, dyn: i})
	}
	if sc.Churn.enabled() {
		for _, n := range pick(sc.Churn.Nodes) {
			n.churn = rand.New(rand.NewChaCha8(seedBytes(sc.Seed, n.idx, seedChurn)))
			at := Epoch.Add(sc.Churn.Start.Duration).Add(expDur(n.churn, 1/sc.Churn.MTBF.Seconds()))
			s.push(event{at: at, kind: evChurn, node: n})
		}
	}
	return nil
}

// churnEvent is a node's next failure (if churn did not take it down) or
// repair (if it did).
func (s *Sim) churnEvent(n *node) {
	c := s.sc.Churn
	if n.churnDown {
		n.churnDown = false
		if !n.up {
			s.start(n)
		}
	} else if stop := c.Stop.Duration; stop == 0 || s.now.Before(Epoch.Add(stop)) {
		if n.up {
			s.stop(n)
			n.churnDown = true
			s.push(event{at: s.now.Add(expDur(n.churn, 1/c.MTTR.Seconds())), kind: evChurn, node: n})
			return
		}
	} else {
		return // no failures after churn.stop
	}
	s.push(event{at: s.now.Add(expDur(n.churn, 1/c.MTBF.Seconds())), kind: evChurn, node: n})
}

// expDur draws an exponential inter-arrival time for rate per second.
func expDur(r *rand.Rand, rate float64) time.Duration {
	return time.Duration(r.ExpFloat64() / rate * float64(time.Second))
}

// push queues a copy of e, in an event from the free list when there is
// one: a large run queues millions of events, and recycling them spares
// the allocator and the collector.
func (s *Sim) push(e event) {
	s.seq++
	e.seq = s.seq
	e.key = int64(e.at.Sub(Epoch))
	var p *event
	if n := len(s.free); n > 0 {
		p = s.free[n-1]
		s.free = s.free[:n-1]
	} else {
		p = new(event)
	}
	*p = e
	s.q.push(qent{key: e.key, seq: e.seq, e: p})
}

func (s *Sim) step(n *node, in routing.Input) {
	if !n.up {
		return
	}
	if err := n.eng.Step(s.now, in); err != nil {
		s.errs++
	}
	s.process(n)
}

// stepFrame steps n with a copy of a radio frame received at snr dB. The
// input goes by pointer to a FrameReceived the simulator reuses (Step
// keeps no pointer to it): boxing one per reception was millions of
// allocations a run.
func (s *Sim) stepFrame(n *node, frame []byte, snr float64) {
	s.frameIn = routing.FrameReceived{Link: loraLinkID, Frame: rxCopy(frame), SNR: snr, HasSNR: true}
	s.step(n, &s.frameIn)
	s.frameIn.Frame = nil
}

// rxCopy is the frame a receiver's engine gets: its own copy, as a
// daemon's engine gets the bytes its radio read, except for a path
// request, which the engine parses and never keeps or changes (it builds
// the requests it passes on anew), so every receiver reads the sender's
// held frame. Path requests are most of the frames of a busy radio run:
// millions of copies fewer.
func rxCopy(frame []byte) []byte {
	if len(frame) > 0 && protocol.Kind(frame[0]) == protocol.KindPathRequest {
		return frame
	}
	return append([]byte(nil), frame...)
}

// txDoneLoRa is the TxDone of one LoRa frame, boxed once.
var txDoneLoRa routing.Input = routing.TxDone{Link: loraLinkID, Frames: 1}

// process carries out the node's Ready in the documented order: persist,
// transmit and publish, deliver and notify, Advance.
func (s *Sim) process(n *node) {
	for n.eng.HasReady() {
		rd := n.eng.Ready()
		s.handleReady(n, &rd)
	}
	s.scheduleTick(n)
}

// handleReady carries out one Ready of n's engine and advances the engine.
func (s *Sim) handleReady(n *node, rd *routing.Ready) {
	for _, r := range rd.Persist {
		n.store[r.Key] = append([]byte(nil), r.Value...)
	}
	for _, k := range rd.Deletes {
		delete(n.store, k)
	}
	for _, tx := range rd.Transmits {
		s.transmit(n, tx)
	}
	for _, p := range rd.Publish {
		s.gossip(n, p)
	}
	for i := range rd.Deliveries {
		s.deliver(n, &rd.Deliveries[i])
	}
	for i := range rd.Events {
		s.engineEvent(n, &rd.Events[i])
	}
	if c := rd.Counters; c != nil {
		n.stats.CustodyPeak = max(n.stats.CustodyPeak, c.CustodyCount)
		n.stats.QueueDrops = c.QueueDrops
	}
	n.eng.Advance()
}

func (s *Sim) scheduleTick(n *node) { s.scheduleWake(n, n.eng.NextWake()) }

// scheduleWake is scheduleTick with the engine's NextWake w worked out.
func (s *Sim) scheduleWake(n *node, w time.Time) {
	if w.IsZero() {
		return
	}
	if !n.wakeAt.IsZero() && !w.Before(n.wakeAt) && n.wakeAt.After(s.now) {
		return
	}
	if w.Before(s.now) {
		w = s.now
	}
	n.wgen++
	n.wakeAt = w
	s.push(event{at: w, kind: evTick, node: n, gen: n.wgen})
}

// loraKinds are the frame counters' names of the radio's priorities,
// made once rather than concatenated for every frame.
var loraKinds = func() (k [5]string) {
	for i := range k {
		k[i] = "lora/" + routing.Priority(i).String()
	}
	return k
}()

func loraKind(p routing.Priority) string { return loraKinds[min(int(p), len(loraKinds)-1)] }

func (s *Sim) count(kind string, size int) {
	s.frames[kind]++
	s.bytes[kind] += uint64(size)
}

func (s *Sim) transmit(n *node, tx routing.Transmit) {
	if tx.Link == loraLinkID && n.radioID >= 0 {
		s.count(loraKind(tx.Priority), len(tx.Frame))
		s.fappFrame(tx.Frame, true)
		n.held = append(n.held, routing.Transmit{Link: tx.Link, To: tx.To, Frame: append([]byte(nil), tx.Frame...), Priority: tx.Priority})
		s.radioSend(n)
		return
	}
	for _, l := range n.links {
		if l.id == tx.Link {
			s.count(l.kind().String()+"/"+tx.Priority.String(), len(tx.Frame))
			s.fappFrame(tx.Frame, false)
			s.ipSend(n, l, tx)
			return
		}
	}
	s.errs++
}

// ipSend models an IP link: per-direction serialisation at the link's
// bandwidth, latency plus uniform jitter (order kept, as a stream
// transport keeps it) and random loss.
func (s *Sim) ipSend(n *node, l *ipLink, tx routing.Transmit) {
	n.stats.FramesSent++
	n.stats.BytesSent += uint64(len(tx.Frame))
	to := l.other(n)
	s.trace.frame(s.now, "tx", n.idx, int(l.id), tx.Frame)
	if !l.usable() || len(tx.Frame) > l.p.MTU {
		s.trace.rec(s.now, "drop", n.idx, int(l.id), "down-or-mtu")
		return
	}
	if l.p.Loss > 0 && s.rng.Float64() < l.p.Loss {
		n.stats.LinkLoss++
		s.trace.rec(s.now, "drop", n.idx, int(l.id), "loss")
		return
	}
	dir := 0
	if n == l.b {
		dir = 1
	}
	start := s.now
	if l.busy[dir].After(start) {
		start = l.busy[dir]
	}
	if l.p.BandwidthBps > 0 {
		start = start.Add(time.Duration(int64(len(tx.Frame)) * 8 * int64(time.Second) / l.p.BandwidthBps))
	}
	l.busy[dir] = start
	at := start.Add(l.p.Latency.Duration)
	if l.p.Jitter.Duration > 0 {
		at = at.Add(time.Duration(s.rng.Int64N(int64(l.p.Jitter.Duration))))
	}
	if at.Before(l.last[dir]) {
		at = l.last[dir]
	}
	l.last[dir] = at
	s.push(event{at: at, kind: evInput, node: to, in: routing.FrameReceived{Link: l.id, Frame: append([]byte(nil), tx.Frame...)}})
}

// radioSend starts the node's next held frame if the radio is idle and the
// duty cycle allows it; otherwise the frame waits (for the end of the
// current frame, or until the ledger says it may go).
func (s *Sim) radioSend(n *node) {
	if !n.up || n.busy || n.blocked || n.sensing || len(n.held) == 0 {
		return
	}
	if s.radioCfg.CarrierSense == "csma" {
		// The RNode's contention: a DIFS and a random window of slots
		// of free channel before every frame; a baseline's frame
		// contends as Meshtastic's radio does (radio_csma.go).
		if n.held[0].Link == baselineLink && s.mtCarrierWait(n) || n.held[0].Link != baselineLink && s.csmaWait(n) {
			return
		}
	}
	if s.radioCfg.CarrierSense == "cad" && s.cadWait(n) {
		return
	}
	tx := n.held[0]
	air, err := s.paramsOf(n).TimeOnAir(len(tx.Frame))
	if err != nil {
		// Larger than a LoRa frame: the engine fragments to the MTU, so
		// this is a bug; drop it and say so.
		s.errs++
		s.dropHeld(n)
		return
	}
	freq, bw := s.freqOf(n), s.paramsOf(n).BandwidthHz
	if n.ledger != nil {
		ok, earliest, err := n.ledger.CanTransmit(s.now, freq, bw, air)
		if err != nil || earliest.IsZero() && !ok {
			s.errs++
			s.dropHeld(n)
			return
		}
		if !ok {
			n.blocked = true
			n.blockedAt = s.now
			n.stats.Deferrals++
			s.trace.rec(s.now, "defer", n.idx, int(loraLinkID), earliest.Sub(Epoch).String())
			s.push(event{at: earliest, kind: evLoRaRetry, node: n, gen: n.gen})
			return
		}
	}
	id, end, err := s.medium.StartTx(n.radioID, s.now, freq, s.paramsOf(n), len(tx.Frame))
	if err != nil {
		s.errs++
		return
	}
	n.busy = true
	s.countAirtime(tx, air)
	if s.radioCfg.CarrierSense == "csma" {
		c, err := s.medium.Candidates(id)
		if err != nil {
			s.errs++
		}
		for _, r := range c {
			if end.After(s.hearsUntil[r]) && s.sameChannel(n, s.radioOf[r]) && s.medium.Hears(id, r) {
				s.csmaHeard(r)
				s.hearsUntil[r] = end
			}
		}
	}
	if n.ledger != nil {
		if err := n.ledger.Record(s.now, freq, bw, air); err != nil {
			s.errs++
		}
		used, _ := n.ledger.Used(end, freq, bw)
		n.stats.DutyPeak = max(n.stats.DutyPeak, float64(used)/float64(s.dutyLimitOf(n)))
	}
	n.stats.FramesSent++
	n.stats.BytesSent += uint64(len(tx.Frame))
	n.stats.Airtime += air
	if s.fapp != nil && isRegionFrame(s.fapp, tx.Frame) {
		s.fapp.traffic.airtime += air
	}
	s.trace.frame(s.now, "tx", n.idx, int(loraLinkID), tx.Frame)
	s.push(event{at: end, kind: evLoRaEnd, node: n, tx: id, gen: n.gen})
}

// dropHeld drops the node's first held frame (it cannot be sent) and tells
// the engine if it was the engine's.
func (s *Sim) dropHeld(n *node) {
	tx := n.held[0]
	n.held = n.held[1:]
	if tx.Link != baselineLink {
		s.step(n, routing.TxDone{Link: loraLinkID, Frames: 1})
	}
}

// channelBusy reports whether n hears a transmission in progress (its
// received power reaches the threshold: the medium's candidates), and
// until when the latest one it hears lasts. Hidden nodes stay hidden.
// Transmissions that ended have ends at or before now, those in progress
// after it, so the latest end of all the node could hear is the latest of
// those in progress whenever it is after now.
func (s *Sim) channelBusy(n *node) (until time.Time, busy bool) {
	u := s.hearsUntil[n.radioID]
	return u, u.After(s.now)
}

// warm reads, for every receiver of a frame that will step its engine,
// the node and the parts of the engine its Step touches first
// (routing.Engine.Warm), before any of them steps: the loads of all of
// them overlap, where each Step would wait for its own in turn (a large
// run has thousands of nodes and engines, none of them in a cache). It
// changes nothing.
func (s *Sim) warm(rx []radio.Reception) {
	v := s.warmSink
	for _, r := range rx {
		if r.Status == radio.Received && s.radioUp[r.Receiver] {
			n := s.radioOf[r.Receiver]
			v += uint64(n.wgen) + uint64(n.stats.FramesReceived) + n.eng.Warm()
		}
	}
	s.warmSink = v
}

// radioEnd judges a finished radio frame at every candidate receiver and
// reports TxDone to the sender.
func (s *Sim) radioEnd(n *node, id radio.TxID, gen uint64) {
	n.busy = false
	tx := n.held[0]
	n.held = n.held[1:]
	if s.fan != nil && tx.Link != baselineLink && s.fan.shared() {
		s.radioEndFan(n, id, gen, tx) // the same, the Steps on two cores (fanout.go)
		return
	}
	var err error
	s.rx, err = s.medium.Outcomes(id, s.rx[:0])
	if err != nil {
		s.errs++
	}
	s.warm(s.rx)
	for _, r := range s.rx {
		if !s.radioUp[r.Receiver] {
			continue
		}
		switch r.Status {
		case radio.Collision:
			if s.chans == nil { // else sameChannel must look at the node
				s.radioLost[r.Receiver].collisions++
				s.trace.rec(s.now, "lost", int(s.radioIdx[r.Receiver]), int(loraLinkID), "collision")
				continue
			}
		case radio.HalfDuplex:
			if s.chans == nil {
				s.radioLost[r.Receiver].halfDuplex++
				s.trace.rec(s.now, "lost", int(s.radioIdx[r.Receiver]), int(loraLinkID), "half-duplex")
				continue
			}
		}
		to := s.radioOf[r.Receiver]
		if !s.sameChannel(n, to) {
			continue
		}
		switch r.Status {
		case radio.Received:
			s.trace.rx(s.now, to.idx, int(loraLinkID), n.idx, r.SNRDB)
			if tx.Link == baselineLink {
				s.blReceive(to, tx.Frame, r.SNRDB)
			} else {
				s.stepFrame(to, tx.Frame, r.SNRDB)
			}
			to.stats.FramesReceived++
			to.stats.BytesReceived += uint64(len(tx.Frame))
		case radio.Collision:
			to.stats.Collisions++
			s.trace.rec(s.now, "lost", to.idx, int(loraLinkID), "collision")
		case radio.HalfDuplex:
			to.stats.HalfDuplex++
			s.trace.rec(s.now, "lost", to.idx, int(loraLinkID), "half-duplex")
		}
	}
	// A frame sent before the node crashed still reached the others, but
	// the restarted engine never handed it over and waits for no TxDone.
	if gen == n.gen && tx.Link != baselineLink {
		s.step(n, txDoneLoRa)
	}
	s.radioSend(n)
}

func (s *Sim) deliver(n *node, d *routing.Delivery) {
	s.trace.rec(s.now, "deliver", n.idx, 0, fmt.Sprintf("%x", d.ID[:8]))
	if s.fapp != nil && s.fappDeliver(n, d) {
		return
	}
	if d.Broadcast {
		s.bcastRx++
		if len(d.Body) >= 8 {
			if i := binary.BigEndian.Uint64(d.Body); i >= 1 && i <= uint64(len(s.bcastAt)) {
				s.broadcastDelivered(n, i)
			}
		}
		return
	}
	m := s.byID[d.ID]
	if m == nil || m.dst != n || m.delivered {
		return
	}
	m.delivered, m.at, m.hops = true, s.now, d.Hops
	n.stats.Delivered++
}

func (s *Sim) engineEvent(n *node, ev *routing.Event) {
	s.trace.rec(s.now, "event", n.idx, 0, fmt.Sprintf("%v ref=%d", ev.Kind, ev.Ref))
	if ev.Ref == 0 || ev.Ref > uint64(len(s.msgs)) {
		return
	}
	m := s.msgs[ev.Ref-1]
	if m.src != n {
		return
	}
	switch ev.Kind {
	case routing.EventAccepted:
		m.id, m.hasID = ev.ID, true
		s.byID[ev.ID] = m
	case routing.EventRefused:
		m.refused = true
	}
}

func (s *Sim) sendMessage(n *node) {
	tr := s.sc.Traffic
	if stop := tr.Stop.Duration; stop == 0 || s.now.Before(Epoch.Add(stop)) {
		if !n.up {
			// A stopped node's application sends nothing; the process
			// goes on.
			s.push(event{at: s.now.Add(expDur(n.rng, tr.Rate)), kind: evSend, node: n})
			return
		}
		dst := s.destination(n)
		if dst == nil && tr.Pattern == "all-to-all" {
			return // this sender is done
		}
		if dst != nil {
			m := &message{ref: uint64(len(s.msgs) + 1), src: n, dst: dst, sent: s.now}
			s.msgs = append(s.msgs, m)
			body := make([]byte, tr.Size)
			binary.BigEndian.PutUint64(body[:min(8, len(body))], m.ref)
			s.trace.rec(s.now, "send", n.idx, dst.idx, fmt.Sprintf("ref=%d", m.ref))
			if s.sc.Unicast.Strategy != StrategyMeshd && n.radioID >= 0 {
				s.blOriginate(n, dst, m.ref)
			} else {
				s.step(n, routing.SendRequest{Ref: m.ref, Dest: dst.addr, Body: body})
			}
		}
		s.push(event{at: s.now.Add(expDur(n.rng, tr.Rate)), kind: evSend, node: n})
	}
}

// destination draws the destination of n's next message, or nil (no
// destination other than n itself was drawn; for all-to-all: none left).
func (s *Sim) destination(n *node) *node {
	tr := s.sc.Traffic
	switch tr.Pattern {
	case "all-to-all":
		if n.a2a == nil {
			// The first message: every destination but n, Rounds times,
			// each round in its own random order.
			for range tr.Rounds {
				var round []*node
				for _, d := range s.dests {
					if d != n {
						round = append(round, d)
					}
				}
				n.rng.Shuffle(len(round), func(i, j int) { round[i], round[j] = round[j], round[i] })
				n.a2a = append(n.a2a, round...)
			}
			if n.a2a == nil {
				n.a2a = []*node{}
			}
		}
		if len(n.a2a) == 0 {
			return nil
		}
		d := n.a2a[0]
		n.a2a = n.a2a[1:]
		return d
	case "local":
		return s.localDestination(n)
	case "hotspot":
		pool := s.dests
		if n.rng.Float64() < tr.HotspotShare {
			pool = s.hot
		}
		for range 8 {
			if c := pool[n.rng.IntN(len(pool))]; c != n {
				return c
			}
		}
		return nil
	}
	for range 8 {
		if c := s.dests[n.rng.IntN(len(s.dests))]; c != n {
			return c
		}
	}
	return nil
}

func (s *Sim) sendBroadcast(n *node) {
	tr := s.sc.Traffic
	if stop := tr.Stop.Duration; stop == 0 || s.now.Before(Epoch.Add(stop)) {
		if !n.up {
			s.push(event{at: s.now.Add(expDur(n.rng, tr.BroadcastRate)), kind: evBroadcast, node: n})
			return
		}
		s.bcasts++
		body := make([]byte, min(tr.Size, 64))
		if len(body) >= 8 {
			// Numbered, so deliveries give the broadcast's latency.
			binary.BigEndian.PutUint64(body, s.bcasts)
			s.bcastAt = append(s.bcastAt, s.now)
			s.bcastFrom = append(s.bcastFrom, n)
			s.bcastReach = append(s.bcastReach, 0)
			s.bcastLast = append(s.bcastLast, time.Time{})
			// The sender's application has it: a delivery back to the
			// sender is a duplicate.
			if n.bseen == nil {
				n.bseen = map[uint64]struct{}{}
			}
			n.bseen[s.bcasts] = struct{}{}
		}
		s.trace.rec(s.now, "bcast", n.idx, 0, "")
		if s.sc.Broadcast.Strategy != StrategyMeshd && n.radioID >= 0 {
			s.blOriginate(n, nil, s.bcasts)
		} else {
			s.step(n, routing.Broadcast{Ref: 1 << 62, Channel: s.channel, Body: body})
		}
		s.push(event{at: s.now.Add(expDur(n.rng, tr.BroadcastRate)), kind: evBroadcast, node: n})
	}
}

func (s *Sim) dynamic(i int) {
	d := s.sc.Dynamics[i]
	for _, name := range d.Nodes {
		n := s.byName[name]
		if d.Action == "down" && n.up {
			s.stop(n)
		} else if d.Action == "up" && !n.up {
			s.start(n)
		}
	}
	up := d.Action == "heal"
	for _, name := range d.Links {
		l := s.lByNm[name]
		if l == nil || l.up == up {
			continue
		}
		was := l.usable()
		l.up = up
		s.meshDirty = true
		s.trace.rec(s.now, d.Action, l.a.idx, int(l.id), name)
		if was == l.usable() {
			continue
		}
		for _, n := range []*node{l.a, l.b} {
			if up {
				s.step(n, routing.LinkUp{Link: l.info(n)})
			} else {
				s.step(n, routing.LinkDown{Link: l.id})
			}
		}
	}
}

// stop crashes a node: its engine and everything in memory are gone, its
// store survives; the neighbours of its point-to-point links see them go
// down. A frame already on the air finishes.
func (s *Sim) stop(n *node) {
	s.trace.rec(s.now, "down", n.idx, 0, n.name)
	n.stats.Crashes++
	n.downAt = s.now
	var down []*ipLink
	for _, l := range n.links {
		if l.usable() {
			down = append(down, l)
		}
	}
	n.up = false
	s.setRadioUp(n)
	s.meshDirty = true
	n.gen++
	n.wgen++
	n.wakeAt = time.Time{}
	n.sensing = false
	if n.blocked {
		n.blocked = false
		n.stats.Blocked += s.now.Sub(n.blockedAt)
	}
	if n.busy {
		n.held = n.held[:1] // the frame on the air
	} else {
		n.held = nil
	}
	for _, l := range down {
		s.step(l.other(n), routing.LinkDown{Link: l.id})
	}
}

// start restarts a node from its store with fresh randomness (derived from
// the seed, its index and how often it restarted).
func (s *Sim) start(n *node) {
	s.trace.rec(s.now, "up", n.idx, 0, n.name)
	n.stats.Downtime += s.now.Sub(n.downAt)
	keys := make([]string, 0, len(n.store))
	for k := range n.store {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	recs := make([]routing.Record, 0, len(keys))
	for _, k := range keys {
		recs = append(recs, routing.Record{Key: k, Value: n.store[k]})
	}
	n.cfg.Rand = rand.NewChaCha8(seedBytes(s.sc.Seed, n.idx|int(n.gen)<<32, seedEngine))
	eng, err := routing.New(n.cfg, s.now, recs)
	if err != nil {
		s.errs++
		return
	}
	n.eng = eng
	n.up = true
	s.setRadioUp(n)
	n.gseen = nil // gossipsub's seen cache and message cache are memory
	n.bl = nil    // so are a baseline's seen packets and timers
	n.mcache = nil
	n.hbOn = false
	s.meshDirty = true
	s.nodeUp(n)
	for _, l := range n.links {
		if l.usable() {
			s.step(l.other(n), routing.LinkUp{Link: l.info(l.other(n))})
		}
	}
}

// nodeUp tells a node's engine about its channel and links.
func (s *Sim) nodeUp(n *node) {
	if s.sc.Traffic.BroadcastRate > 0 && n.member {
		s.step(n, routing.JoinChannel{Key: s.channel})
	}
	s.fappJoin(n)
	if n.radioID >= 0 {
		info := routing.LinkInfo{
			ID: loraLinkID, Kind: routing.LinkLoRa, Window: 1, MTU: radio.MaxPayload,
			Bitrate: max(1, int(s.paramsOf(n).Bitrate())),
		}
		if n.ledger != nil {
			// The engine budgets adverts against the airtime the sub-band
			// really allows, as the daemon's LoRa transport will tell it.
			if band, err := radio.EU868().Find(s.freqOf(n), s.paramsOf(n).BandwidthHz); err == nil {
				info.DutyCycle = band.DutyCycle
			}
		}
		s.step(n, routing.LinkUp{Link: info})
	}
	for _, l := range n.links {
		if l.usable() {
			s.step(n, routing.LinkUp{Link: l.info(n)})
		}
	}
	s.process(n)
}

// Run processes events until the scenario's duration has passed. progress,
// if not nil, is called now and then (every simulated second, and every
// 32,768 events) with the simulated time reached and the events so far.
func (s *Sim) Run(progress func(simulated time.Duration, events uint64)) {
	// The trace file is complete when Run returns, and when it panics (a
	// Step's or progress's panic): the lines so far, none still being
	// written on the tracer's goroutine when the caller recovers.
	defer s.trace.drain()
	if s.workers >= 2 && s.fapp == nil && s.medium != nil {
		// FAPP's deliveries call other engines at once (fanout.go).
		s.fan = newFanout(&s.events)
		s.fan.keep = s.fanKeep
		defer func() { s.fanStats = s.fan.stop(); s.fan = nil }()
	}
	next := time.Second
	// The queue's keys are the events' times, so the loop needs no look at
	// the next event (a cache miss) before pop.
	endKey := int64(s.end.Sub(Epoch))
	for s.q.Len() > 0 && s.q[0].key <= endKey {
		// The handlers below take the event's fields, never the event:
		// it goes back to the free list at once.
		p := s.q.pop()
		ev := *p
		*p = event{}
		s.free = append(s.free, p)
		e := &ev
		s.now = e.at
		s.events++
		if progress != nil && (s.now.Sub(Epoch) >= next || s.events&(1<<15-1) == 0) {
			progress(s.now.Sub(Epoch), s.events)
			next = s.now.Sub(Epoch).Truncate(time.Second) + time.Second
		}
		if e.node != nil && !e.node.up && e.kind != evLoRaEnd && e.kind != evSend && e.kind != evBroadcast && e.kind != evChurn {
			continue
		}
		switch e.kind {
		case evTick:
			if e.gen != e.node.wgen {
				continue
			}
			e.node.wakeAt = time.Time{}
			e.node.eng.Tick(s.now)
			s.process(e.node)
		case evInput:
			if fr, ok := e.in.(routing.FrameReceived); ok {
				e.node.stats.FramesReceived++
				e.node.stats.BytesReceived += uint64(len(fr.Frame))
				s.trace.rec(s.now, "rx", e.node.idx, int(fr.Link), "")
			}
			s.step(e.node, e.in)
		case evLoRaEnd:
			s.radioEnd(e.node, e.tx, e.gen)
		case evCarrier:
			if e.gen != e.node.gen {
				continue
			}
			e.node.sensing = false
			s.radioSend(e.node)
		case evLoRaRetry:
			n := e.node
			if e.gen != n.gen {
				continue
			}
			n.blocked = false
			n.stats.Blocked += s.now.Sub(n.blockedAt)
			s.radioSend(n)
		case evSend:
			s.sendMessage(e.node)
		case evBroadcast:
			s.sendBroadcast(e.node)
		case evDynamic:
			s.dynamic(e.dyn)
		case evChurn:
			s.churnEvent(e.node)
		case evGossip:
			s.gossipReceived(e.node, e.from, e.topic, e.in.(routing.GossipReceived).Frame)
		case evHeartbeat:
			if e.gen == e.node.gen {
				s.heartbeat(e.node)
			}
		case evIHave:
			s.iHave(e.node, e.from, e.topic, e.ids)
		case evIWant:
			s.iWant(e.node, e.from, e.ids)
		case evFAPPSetup:
			s.fappSetup(s.fapp.therapists[e.dyn])
		case evFAPPRelease:
			s.fappRelease(s.fapp.therapists[e.dyn], e.gen)
		case evFAPPPlace:
			s.fappPlace(s.fapp.therapists[e.dyn])
		case evFAPPQuery:
			s.fappQuery(e.dyn)
		case evFAPPDecide:
			s.fappDecide(e.dyn)
		case evBaseline:
			s.blTimer(e.node, e.bl, e.gen)
		}
	}
	s.now = s.end
	s.addLost()
	// A node still blocked (or down) at the end counts its wait so far.
	for _, n := range s.nodes {
		if n.blocked {
			n.stats.Blocked += s.now.Sub(n.blockedAt)
			n.blockedAt = s.now
		}
		if !n.up {
			n.stats.Downtime += s.now.Sub(n.downAt)
			n.downAt = s.now
		}
	}
}

// floodPolicies are the values of engine.flood_policy: routing.Config
// settings applied to every node.
var floodPolicies = map[string]func(*routing.Config){
	"managed": func(*routing.Config) {},
	"naive": func(c *routing.Config) {
		c.FloodCancelAfter = 1 << 20
		c.FloodCloseMargin = -1
	},
	"meshtastic": func(c *routing.Config) {
		c.FloodCancelAfter = 1
		c.FloodCloseMargin = -1
		c.FloodWindow = 4
	},
}

// lostCount is what a radio lost since its stats were last brought up to
// date (Sim.radioLost).
type lostCount struct{ collisions, halfDuplex uint64 }

// setRadioUp copies n.up to the dense radioUp.
func (s *Sim) setRadioUp(n *node) {
	if n.radioID >= 0 && int(n.radioID) < len(s.radioUp) {
		s.radioUp[n.radioID] = n.up
	}
}

// addLost adds the dense loss counts into the nodes' stats.
func (s *Sim) addLost() {
	for i, c := range s.radioLost {
		st := &s.radioOf[i].stats
		st.Collisions += c.collisions
		st.HalfDuplex += c.halfDuplex
		s.radioLost[i] = lostCount{}
	}
}

// localDestination draws a destination uniformly among those within
// traffic.local_radius_m of n (n itself excluded), or returns nil.
func (s *Sim) localDestination(n *node) *node {
	if !n.hasPos {
		return nil
	}
	r := s.sc.Traffic.LocalRadiusM
	lo, _ := slices.BinarySearchFunc(s.byX, n.x-r, func(d *node, x float64) int { return cmp.Compare(d.x, x) })
	s.near = s.near[:0]
	for _, d := range s.byX[lo:] {
		if d.x > n.x+r {
			break
		}
		dx, dy := d.x-n.x, d.y-n.y
		if d != n && dx*dx+dy*dy <= r*r {
			s.near = append(s.near, d)
		}
	}
	if len(s.near) == 0 {
		return nil
	}
	return s.near[n.rng.IntN(len(s.near))]
}
