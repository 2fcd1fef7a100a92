package radio

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"
)

// NodeID names a node of a [Medium]: its index in the slice given to
// [NewMedium].
type NodeID int32

// TxID names a transmission on a [Medium]. IDs start at 1 and increase in
// the order of [Medium.StartTx] calls; 0 is never an ID.
type TxID uint64

// Node is a node as the medium sees it: a position on a plane, in metres,
// and its radio.
type Node struct {
	// X and Y are the position in metres on a plane.
	X, Y float64
	// Device is the node's radio.
	Device
}

// Status is the fate of a frame at one receiver.
type Status uint8

const (
	// Received: the frame was demodulated.
	Received Status = iota + 1
	// BelowSensitivity: the received power was below the sensitivity or
	// the SNR below the SF's floor.
	BelowSensitivity
	// Collision: another frame on the same channel destroyed it.
	Collision
	// HalfDuplex: the receiver was transmitting during part of the frame.
	HalfDuplex
)

// String returns the status name.
func (s Status) String() string {
	switch s {
	case Received:
		return "received"
	case BelowSensitivity:
		return "below-sensitivity"
	case Collision:
		return "collision"
	case HalfDuplex:
		return "half-duplex"
	}
	return "Status(" + strconv.Itoa(int(s)) + ")"
}

// Reception is the fate of one frame at one receiver.
type Reception struct {
	// Receiver is the node asked about.
	Receiver NodeID
	// Status says whether the frame was received, and if not, why. When
	// several reasons apply, the first of HalfDuplex, BelowSensitivity,
	// Collision is given.
	Status Status
	// RSSIDBm is the frame's received power at the receiver, shadowing
	// included (set whatever the status).
	RSSIDBm float64
	// SNRDB is RSSIDBm minus the receiver's noise floor in the frame's
	// bandwidth (thermal noise only; interference is judged by the capture
	// rule, not added to the noise).
	SNRDB float64
	// Interferer is, for a Collision, a transmission that destroyed the
	// frame (the first one found, if several did).
	Interferer TxID
}

// Transmission describes a transmission the medium still remembers.
type Transmission struct {
	ID          TxID      // the transmission
	Node        NodeID    // its sender
	FrequencyHz int64     // its centre frequency
	Params      Params    // its modulation
	Size        int       // its payload, in bytes
	Start, End  time.Time // when its first and last symbols go out
}

// Option configures a Medium.
type Option func(*mediumConfig)

type mediumConfig struct {
	model        Model
	capture      float64
	laterCapture bool
	retention    time.Duration
	// Reception models (reception.go, fading.go); the zero values keep
	// the hard threshold and one-at-a-time capture rule.
	fading     Fading
	ricianK    float64 // linear
	curve      bool
	sum        bool
	rejection  *RejectionMatrix
	window     float64 // symbols
	turnaround time.Duration
}

// WithModel sets the propagation and receiver model (default
// [DefaultModel]: LoRaSim's log-distance path loss with 3.57 dB shadowing
// and a 6 dB noise figure). A model with ShadowSigmaDB 0 has no shadowing.
func WithModel(m Model) Option { return func(c *mediumConfig) { c.model = m } }

// WithCaptureThreshold sets by how many dB a frame must be stronger than a
// same-channel interferer to survive it (default 6 dB, as ns-3's lorawan
// module and LoRaSim; FLoRa uses 1 dB).
func WithCaptureThreshold(dB float64) Option { return func(c *mediumConfig) { c.capture = dB } }

// WithLaterCapture lets a frame that arrives while the receiver is already
// locked on an earlier one still win it if it is stronger by the capture
// threshold, as LoRaSim and FLoRa model it. By default the receiver stays
// locked on the first frame it detected, and a later frame whose critical
// preamble section overlaps that frame is lost.
func WithLaterCapture() Option { return func(c *mediumConfig) { c.laterCapture = true } }

// WithRetention sets how long after a frame ends its outcomes may still be
// asked for (default 0: at its end, the clock not past it). A scheduler
// that asks at the frame's end event needs none; one that asks later
// needs that much slack, paid for in memory.
func WithRetention(d time.Duration) Option { return func(c *mediumConfig) { c.retention = d } }

// Medium is one shared radio medium: a fixed set of nodes with positions,
// their transmissions and the rules that decide, per receiver, whether a
// frame arrived. It is what meshsim's scheduler consults; it holds no
// timers of its own.
//
// # Use
//
// At the instant node n starts sending, the scheduler calls StartTx, which
// returns the frame's ID and end time. [Medium.Candidates] lists the
// nodes that could receive it (received power at or above the threshold,
// shadowing included); at the end time the scheduler asks
// [Medium.Outcome] for each of them (or [Medium.Outcomes] for all). Calls
// must come in time order: StartTx and Advance never go back in time, and
// the outcome of a frame must be asked for once every transmission that
// starts before the frame's end has been started, and before the medium's
// clock (the latest StartTx or Advance) passes the frame's end plus the
// retention ([WithRetention], default 0): that is, at the frame's end
// event. Later, Outcome returns ErrUnknownTx. The medium forgets a
// transmission twice the longest time on air seen after it ended (plus the
// retention), so memory is bounded by the traffic in flight, not by the
// length of the run.
//
// # Channels
//
// A transmission occupies a channel: its centre frequency, spreading
// factor and bandwidth. Frames on different channels never interfere:
// different frequencies are assumed not to overlap (the scheduler should
// not put channels closer than their bandwidth), and different spreading
// factors, or bandwidths, are treated as orthogonal, unless
// [WithSFRejection] makes spreading factors on one frequency and bandwidth
// interfere. The medium does not
// know what each receiver is tuned to: ask only about receivers listening
// on the frame's channel.
//
// # Reception rules
//
// A frame F from sender s is received at r unless, in this order:
//
//  1. r transmitted during any part of F (HalfDuplex);
//  2. F's received power at r is below [Model.ThresholdDBm]: below the
//     sensitivity or with an SNR below the SF's floor (BelowSensitivity);
//  3. another transmission I on F's channel, overlapping F in time,
//     destroys it (Collision). I is harmless if it ends at or before the
//     start of F's critical section, F.start + (preamble - 5) Tsym (the
//     preamble rule of LoRaSim: the receiver needs the last 5 preamble
//     symbols clean). Otherwise F is lost if r was locked on I when F came
//     (I started strictly before F, I's power at r reaches the threshold,
//     and r was not transmitting during I's preamble; unless
//     [WithLaterCapture]), or if F is not at least the capture threshold
//     stronger than I at r.
//
// Interferers are judged one at a time, not summed, as in LoRaSim and
// FLoRa ([WithSummedInterference] sums them). An interferer too weak to be
// received itself still destroys a frame that is less than the capture
// threshold above it. The optional models (fading.go, reception.go) adjust
// these rules: fading adds a per-frame gain to every received power, the
// error curve replaces rule 2's SNR floor, [WithCaptureWindow] and
// [WithLaterCapture] release the lock, [WithTurnaround] extends rule 1.
//
// # Cost
//
// The first use of a spreading factor and bandwidth computes, for every
// node, the nodes that can receive its frames and the nodes whose frames
// can matter at it (received at the threshold minus the capture threshold
// or more), on a grid of cells as large as the longest possible
// interference range (the strongest transmitter, the best shadowing
// draw): the cost grows with N times the nodes within that range, not
// with N^2. The outcome of a frame at a receiver looks at the receiver's
// potential interferers and, for those whose latest transmission ended
// after the frame's critical section began, at their transmissions
// overlapping it. With summed interference or inter-SF rejection, the
// transmissions overlapping the frame are first gathered from the cells
// of a coarser grid (the 3 x 3 around its sender), where transmissions are
// filed. Either way the cost depends on the density and traffic around
// the frame, not on the size of the network. StartTx costs O(1),
// amortised.
type Medium struct {
	cfg     mediumConfig
	nodes   []Node
	last    []lastTx // per node: its latest transmission
	shadow  LinkShadowing
	classes [(MaxSF - MinSF + 1) * len(bandwidths)]*class

	// Keys of the per-frame draws (fading, packet-error curve), drawn
	// after the shadowing's key and only when the model is on.
	fadeKey, curveKey uint64

	txs       ring[txRec] // retained transmissions, oldest first
	first     TxID        // ID of txs' front
	next      TxID        // next ID to issue
	epoch     time.Time   // time of offset 0: the first time the caller gave
	begun     bool        // epoch is set
	now       int64       // latest time given, ns since epoch
	maxAir    int64       // longest time on air seen, ns
	rivals    []*txRec    // gathered by gather for rivalsFor
	rivalsFor TxID        // 0 when rivals is stale (pointers into txs move)
	path      int         // tests: 1 forces the rivals search, 2 the scan
}

// lastTx is a node's latest transmission, in a dense array that outcomes
// scan: its end, ns since the epoch (math.MinInt64 if none), and its ID,
// from which txRec.prev leads to the node's earlier ones.
type lastTx struct {
	end int64
	id  TxID
}

// txRec is a transmission; times are ns since the epoch.
type txRec struct {
	id         TxID
	start, end int64
	cs         int64 // start of the critical section: start + (preamble - 5) Tsym
	preEnd     int64 // end of the preamble: start + (preamble + 4.25) Tsym
	freq       int64
	p          Params
	size       int
	node       NodeID
	cls        int
	// prev is the sender's transmission before this one (0 if none): a
	// node's transmissions follow one another, so walking prev from
	// Medium.last goes back in time, until an ID no longer retained.
	prev TxID
	// filed: t is in its class's frame grid (only when usesRivals).
	filed bool
}

// class holds what depends on a spreading factor and bandwidth: the
// thresholds, each node's receivers, and the grid of transmissions.
type class struct {
	threshold float64    // weakest receivable power, dBm
	noise     float64    // noise floor, dBm
	out       [][]NodeID // out[s]: nodes that can receive s, ascending
	in        [][]NodeID // in[r]: nodes whose frames reach r at floor or above, ascending (while building)
	// outPw[s][i] is rxPower of the link of out[s][i], computed once by
	// the same function: the outcomes of a frame need it for every
	// receiver and rival, and computing the path loss and shadowing again
	// each time was a tenth of a busy run.
	outPw [][]float64
	// inNode[inOff[r]:inOff[r+1]] is in[r], and inPw the same span of
	// each link's rxPower. Judging a frame at r reads r's senders to skip
	// those that sent nothing lately, and the power of the few left: the
	// senders alone are a quarter of the bytes, and the offsets no slice
	// header to load first (the 10,000-node run's lists are 4 MB, more
	// than a core's cache).
	inOff  []int32
	inNode []NodeID
	inPw   []float64
	// No frame reaches threshold farther than rxRange from its sender, and
	// none reaches floor (threshold minus capture threshold, below which
	// it cannot hurt a received frame) farther than intRange.
	rxRange, intRange float64
	cell              float64 // frame-grid cell: >= rxRange + intRange
	frames            map[cellKey]*ring[cellTx]
}

// inOf returns the nodes whose frames reach r at floor or above, in
// ascending order, and their powers there before fading.
func (c *class) inOf(r NodeID) ([]NodeID, []float64) {
	lo, hi := c.inOff[r], c.inOff[r+1]
	return c.inNode[lo:hi:hi], c.inPw[lo:hi:hi]
}

// inPower returns the power of node's frames at r before fading, if node
// is among r's interferers.
func (c *class) inPower(r, node NodeID) (float64, bool) {
	nodes, pw := c.inOf(r)
	if j, ok := slices.BinarySearch(nodes, node); ok {
		return pw[j], true
	}
	return 0, false
}

// cellTx is a transmission as filed in a cell of the frame grid: with the
// fields gather filters on, so that it reads the ring in order instead of
// visiting every retained transmission and its sender.
type cellTx struct {
	id             TxID
	start, end, cs int64
	freq           int64
	x, y           float64 // the sender's position
}

// cellKey names a cell of a grid.
type cellKey struct{ x, y int64 }

// NewMedium returns a medium over nodes (node i gets NodeID i). rng draws
// the key of the per-link shadowing ([LinkShadowing]); it may be nil if the
// model has no shadowing. Defaults: [DefaultModel], a 6 dB capture
// threshold, receivers that stay locked on the first frame, no extra
// retention.
func NewMedium(nodes []Node, rng *rand.Rand, opts ...Option) (*Medium, error) {
	cfg := mediumConfig{model: DefaultModel(), capture: 6}
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.model.Validate(); err != nil {
		return nil, err
	}
	if !(cfg.capture >= 0) || !finite(cfg.capture) {
		return nil, fmt.Errorf("%w: capture threshold %v dB must be zero or positive", ErrInvalidModel, cfg.capture)
	}
	if cfg.retention < 0 {
		return nil, fmt.Errorf("%w: retention %v is negative", ErrInvalidModel, cfg.retention)
	}
	if err := cfg.validateReception(); err != nil {
		return nil, err
	}
	if len(nodes) > math.MaxInt32 {
		return nil, fmt.Errorf("%w: %d nodes is too many", ErrInvalidNode, len(nodes))
	}
	for i, n := range nodes {
		if !finite(n.X) || !finite(n.Y) {
			return nil, fmt.Errorf("%w: node %d: position (%v, %v) is not finite", ErrInvalidNode, i, n.X, n.Y)
		}
		if err := n.Device.Validate(); err != nil {
			return nil, fmt.Errorf("node %d: %w", i, err)
		}
	}
	sigma := cfg.model.PathLoss.ShadowSigmaDB
	if sigma > 0 && rng == nil {
		return nil, fmt.Errorf("%w: shadowing sigma %v dB needs a random generator", ErrNoRand, sigma)
	}
	if (cfg.fading != NoFading || cfg.curve) && rng == nil {
		return nil, fmt.Errorf("%w: fading and the error curve need a random generator", ErrNoRand)
	}
	last := make([]lastTx, len(nodes))
	for i := range last {
		last[i].end = math.MinInt64
	}
	m := &Medium{
		cfg:    cfg,
		nodes:  slices.Clone(nodes),
		last:   last,
		shadow: NewLinkShadowing(rng, sigma),
		first:  1,
		next:   1,
	}
	if cfg.fading != NoFading {
		m.fadeKey = rng.Uint64()
	}
	if cfg.curve {
		m.curveKey = rng.Uint64()
	}
	return m, nil
}

// Model returns the medium's propagation and receiver model.
func (m *Medium) Model() Model { return m.cfg.model }

// Shadowing returns the medium's per-link shadowing.
func (m *Medium) Shadowing() LinkShadowing { return m.shadow }

// Len returns the number of nodes.
func (m *Medium) Len() int { return len(m.nodes) }

// Retained returns how many transmissions the medium remembers.
func (m *Medium) Retained() int { return m.txs.len() }

// Node returns the position and radio of node id.
func (m *Medium) Node(id NodeID) (Node, error) {
	if err := m.checkNode(id); err != nil {
		return Node{}, err
	}
	return m.nodes[id], nil
}

func (m *Medium) checkNode(id NodeID) error {
	if id < 0 || int(id) >= len(m.nodes) {
		return fmt.Errorf("%w: %d (the medium has %d nodes)", ErrUnknownNode, id, len(m.nodes))
	}
	return nil
}

// rxPower is the received power of a frame from s at r, shadowing
// included. Every decision uses this function or, for the reach lists,
// linkPower with the same loss and shadowing, so the lists and the
// outcomes agree to the last bit.
func (m *Medium) rxPower(s, r NodeID) float64 {
	a, b := &m.nodes[s], &m.nodes[r]
	dx, dy := a.X-b.X, a.Y-b.Y
	return m.linkPower(s, r, m.cfg.model.PathLoss.LossDB(math.Sqrt(dx*dx+dy*dy), a.HeightM, b.HeightM), m.shadow.DB(s, r))
}

// linkPower is the power from s at r given the link's mean loss and
// shadowing, the same sum as Model.RxPowerDBm.
func (m *Medium) linkPower(s, r NodeID, lossDB, shadowDB float64) float64 {
	return m.nodes[s].TxPowerDBm + m.nodes[s].GainDBi + m.nodes[r].GainDBi - lossDB - shadowDB
}

// RxPowerDBm returns the power at which from's frames arrive at to,
// shadowing included.
func (m *Medium) RxPowerDBm(from, to NodeID) (float64, error) {
	if err := m.checkNode(from); err != nil {
		return 0, err
	}
	if err := m.checkNode(to); err != nil {
		return 0, err
	}
	return m.rxPower(from, to), nil
}

// Neighbours returns the nodes that can receive node's frames sent with
// parameters p (received power at or above [Model.ThresholdDBm], the
// link's shadowing included), in ascending order: the links of a radio
// topology. The slice belongs to the medium and must not be modified.
func (m *Medium) Neighbours(node NodeID, p Params) ([]NodeID, error) {
	if err := m.checkNode(node); err != nil {
		return nil, err
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	out := m.class(classIndex(p)).out[node]
	return out[:len(out):len(out)], nil
}

func classIndex(p Params) int { return (p.SF-MinSF)*len(bandwidths) + bandwidthIndex(p.BandwidthHz) }

// class returns the class of index k, computing it on first use. k must
// come from valid Params.
func (m *Medium) class(k int) *class {
	if c := m.classes[k]; c != nil {
		return c
	}
	// Implicit header, so that SF6 is valid too; only SF and bandwidth
	// matter here.
	p := Params{SF: MinSF + k/len(bandwidths), BandwidthHz: bandwidths[k%len(bandwidths)].hz, CodingRate: CR45, PreambleSymbols: 8}
	c := &class{threshold: m.cfg.model.ThresholdDBm(p), noise: m.cfg.model.NoiseFloorDBm(p)}
	if m.cfg.curve {
		c.threshold = c.noise + p.SNRFloorDB() - CurveMarginDB
	}
	c.rxRange = m.reach(c.threshold)
	// The margin absorbs rounding: the range may be a hair too long, never
	// too short.
	c.intRange = m.reach(c.threshold - m.cfg.capture - 1e-9)
	c.cell = m.cellSize(c.rxRange + c.intRange)
	c.frames = make(map[cellKey]*ring[cellTx])
	m.buildReach(c)
	m.classes[k] = c
	return c
}

// reach returns a distance beyond which no node's frames arrive anywhere
// at powerDBm or above, whatever the link's shadowing.
func (m *Medium) reach(powerDBm float64) float64 {
	maxTx, maxGain, maxH := math.Inf(-1), math.Inf(-1), 0.0
	for _, nd := range m.nodes {
		maxTx = max(maxTx, nd.TxPowerDBm+nd.GainDBi)
		maxGain = max(maxGain, nd.GainDBi)
		maxH = max(maxH, nd.HeightM)
	}
	pl := m.cfg.model.PathLoss
	if maxH == 0 || pl.height(0) > maxH {
		maxH = pl.height(0) // nodes without a height have the default
	}
	// The loss never increases with either antenna's height: the highest
	// pair of antennas bounds every link.
	budget := maxTx + maxGain + m.shadow.MaxDB() + m.fadeMaxDB() - powerDBm
	return pl.DistanceAtLossM(budget, maxH, maxH) * (1 + 1e-9)
}

// cellSize returns a grid cell size of at least size, larger if the nodes
// lie so far out that cell numbers would leave int64's comfort zone.
func (m *Medium) cellSize(size float64) float64 {
	maxAbs := 0.0
	for _, nd := range m.nodes {
		maxAbs = max(maxAbs, math.Abs(nd.X), math.Abs(nd.Y))
	}
	cell := max(size, maxAbs/(1<<40))
	if !(cell > 0) || math.IsInf(cell, 0) {
		cell = math.MaxFloat64
	}
	return cell
}

func cellOf(nd *Node, cell float64) cellKey {
	return cellKey{int64(math.Floor(nd.X / cell)), int64(math.Floor(nd.Y / cell))}
}

// buildReach fills c.out, c.outPw and the in lists. Nodes go into cells of c.intRange, so
// the nodes a node reaches lie in its own and the 8 surrounding cells.
func (m *Medium) buildReach(c *class) {
	n := len(m.nodes)
	c.out = make([][]NodeID, n)
	c.in = make([][]NodeID, n)
	if n == 0 {
		return
	}
	// Frames weaker than floor can neither be received nor destroy a
	// received frame (it is more than the capture threshold above them).
	// The margin absorbs rounding: the lists may hold a pair too many,
	// never one too few.
	floor := c.threshold - m.cfg.capture - 1e-9
	cell := m.cellSize(c.intRange)
	// Nodes sorted by cell, and each cell's span in that order.
	order := make([]NodeID, n)
	keys := make([]cellKey, n)
	for i := range n {
		order[i] = NodeID(i)
		keys[i] = cellOf(&m.nodes[i], cell)
	}
	slices.SortFunc(order, func(a, b NodeID) int {
		ka, kb := keys[a], keys[b]
		return cmp.Or(cmp.Compare(ka.x, kb.x), cmp.Compare(ka.y, kb.y), cmp.Compare(a, b))
	})
	type span struct{ lo, hi int }
	cells := make(map[cellKey]span)
	for i := 0; i < n; {
		j := i
		for j < n && keys[order[j]] == keys[order[i]] {
			j++
		}
		cells[keys[order[i]]] = span{i, j}
		i = j
	}
	r2 := c.intRange * c.intRange
	// Fading can lift a frame by up to fm: the lists hold every link it
	// may lift over the thresholds.
	fm := m.fadeMaxDB()
	maxShadow := m.shadow.MaxDB() + fm
	pl := m.cfg.model.PathLoss
	// Each unordered pair once: loss and shadowing are symmetric, only the
	// transmit powers and gains differ between the two directions.
	for a := range NodeID(n) {
		k := keys[a]
		na := &m.nodes[a]
		for dx := int64(-1); dx <= 1; dx++ {
			for dy := int64(-1); dy <= 1; dy++ {
				sp, ok := cells[cellKey{k.x + dx, k.y + dy}]
				if !ok {
					continue
				}
				for _, b := range order[sp.lo:sp.hi] {
					if b <= a {
						continue
					}
					nb := &m.nodes[b]
					ddx, ddy := na.X-nb.X, na.Y-nb.Y
					d2 := ddx*ddx + ddy*ddy
					if d2 > r2 {
						continue
					}
					loss := pl.LossDB(math.Sqrt(d2), na.HeightM, nb.HeightM)
					// Skip the shadowing draw when neither direction can
					// reach floor even with the best draw.
					if m.linkPower(a, b, loss, -maxShadow) < floor && m.linkPower(b, a, loss, -maxShadow) < floor {
						continue
					}
					x := m.shadow.DB(a, b)
					c.link(a, b, m.linkPower(a, b, loss, x)+fm, floor)
					c.link(b, a, m.linkPower(b, a, loss, x)+fm, floor)
				}
			}
		}
	}
	c.outPw = make([][]float64, n)
	total := 0
	for i := range NodeID(n) {
		slices.Sort(c.out[i])
		slices.Sort(c.in[i])
		c.outPw[i] = make([]float64, len(c.out[i]))
		for j, r := range c.out[i] {
			c.outPw[i][j] = m.rxPower(i, r)
		}
		total += len(c.in[i])
	}
	if total > math.MaxInt32 {
		panic("radio: more than 2^31 interference links") // 80 GB of lists and more
	}
	c.inOff = make([]int32, n+1)
	c.inNode = make([]NodeID, 0, total)
	c.inPw = make([]float64, 0, total)
	for i := range NodeID(n) {
		for _, s := range c.in[i] {
			c.inNode = append(c.inNode, s)
			c.inPw = append(c.inPw, m.rxPower(s, i))
		}
		c.inOff[i+1] = int32(len(c.inNode))
	}
	c.in = nil
}

// link files the link from s to r, at power pw, in the lists.
func (c *class) link(s, r NodeID, pw, floor float64) {
	if pw >= floor {
		c.in[r] = append(c.in[r], s)
	}
	if pw >= c.threshold {
		c.out[s] = append(c.out[s], r)
	}
}

// offset converts at to ns since the epoch, setting the epoch on first use.
func (m *Medium) offset(at time.Time) int64 {
	if !m.begun {
		m.epoch, m.begun = at, true
	}
	return int64(at.Sub(m.epoch))
}

func (m *Medium) timeOf(off int64) time.Time { return m.epoch.Add(time.Duration(off)) }

// Advance tells the medium that time has reached now, so it can forget
// transmissions that no longer matter. StartTx does the same; call Advance
// when no one transmits for a long time, if memory matters.
func (m *Medium) Advance(now time.Time) error {
	off := m.offset(now)
	if off < m.now {
		return fmt.Errorf("%w: %v is before %v", ErrTimeOrder, now, m.timeOf(m.now))
	}
	m.advance(off)
	return nil
}

// advance moves the clock to now and forgets what ended long enough ago.
// Outcomes of a frame F are asked for by F.end + retention. F is judged
// against transmissions T overlapping it, so T.end > F.start >= F.end -
// maxAir; and the lock rule looks at the receiver's transmissions X
// during such a T's preamble, so X.end > T.start > F.start - maxAir >=
// F.end - 2 maxAir. Keeping every transmission for 2 maxAir + retention
// after its end keeps all of them.
func (m *Medium) advance(now int64) {
	m.now = now
	m.rivalsFor = 0
	keep := 2*m.maxAir + int64(m.cfg.retention) + int64(m.cfg.turnaround)
	for m.txs.len() > 0 {
		t := m.txs.at(0)
		if t.end+keep >= now {
			break
		}
		if t.filed {
			c := m.classes[t.cls]
			key := cellOf(&m.nodes[t.node], c.cell)
			fr := c.frames[key]
			fr.popFront()
			if fr.len() == 0 {
				delete(c.frames, key)
			}
		}
		m.txs.popFront()
		m.first++
	}
}

// StartTx records that node starts sending a size-byte payload on
// frequency freqHz with parameters p at time at, and returns the
// transmission's ID and the time its last symbol ends. at must not be
// before any time given earlier, and the node must have finished its
// previous transmission (ErrBusy).
func (m *Medium) StartTx(node NodeID, at time.Time, freqHz int64, p Params, size int) (TxID, time.Time, error) {
	if err := m.checkNode(node); err != nil {
		return 0, time.Time{}, err
	}
	air, err := p.TimeOnAir(size)
	if err != nil {
		return 0, time.Time{}, err
	}
	if freqHz <= 0 {
		return 0, time.Time{}, fmt.Errorf("%w: frequency %d Hz must be positive", ErrInvalidParams, freqHz)
	}
	start := m.offset(at)
	if start < m.now {
		return 0, time.Time{}, fmt.Errorf("%w: transmission at %v, but the medium is at %v", ErrTimeOrder, at, m.timeOf(m.now))
	}
	if m.last[node].end > start {
		return 0, time.Time{}, fmt.Errorf("%w: node %d sends until %v, asked to start at %v", ErrBusy, node, m.timeOf(m.last[node].end), at)
	}
	k := classIndex(p)
	c := m.class(k)
	m.advance(start)
	tsym := int64(p.SymbolTime())
	id := m.next
	rec := txRec{
		id:     id,
		start:  start,
		end:    start + int64(air),
		cs:     start + int64(p.PreambleSymbols-5)*tsym,
		preEnd: start + int64(p.PreambleTime()),
		freq:   freqHz,
		p:      p,
		size:   size,
		node:   node,
		cls:    k,
		prev:   m.last[node].id,
	}
	m.next++
	m.rivalsFor = 0
	// Only gather reads the grid: without it, filing is wasted work.
	rec.filed = m.usesRivals()
	m.txs.push(rec)
	m.last[node] = lastTx{end: rec.end, id: id}
	if rec.filed {
		m.file(&rec, c)
	}
	m.maxAir = max(m.maxAir, int64(air))
	return id, m.timeOf(rec.end), nil
}

// file files t in class c's frame grid, for gather.
func (m *Medium) file(t *txRec, c *class) {
	nd := &m.nodes[t.node]
	key := cellOf(nd, c.cell)
	fr := c.frames[key]
	if fr == nil {
		fr = new(ring[cellTx])
		c.frames[key] = fr
	}
	fr.push(cellTx{id: t.id, start: t.start, end: t.end, cs: t.cs, freq: t.freq, x: nd.X, y: nd.Y})
}

// rec returns the retained transmission id, or nil.
func (m *Medium) rec(id TxID) *txRec {
	if id < m.first || id >= m.next {
		return nil
	}
	return m.txs.at(int(id - m.first))
}

func (m *Medium) lookup(id TxID) (*txRec, error) {
	t := m.rec(id)
	if t == nil {
		return nil, fmt.Errorf("%w: %d", ErrUnknownTx, id)
	}
	return t, nil
}

// judgeable returns transmission id if its outcomes may still be asked
// for: until the retention after its end. Past that, the transmissions
// that decide them may be forgotten.
func (m *Medium) judgeable(id TxID) (*txRec, error) {
	t, err := m.lookup(id)
	if err != nil {
		return nil, err
	}
	if m.now-t.end > int64(m.cfg.retention) {
		return nil, fmt.Errorf("%w: outcome of %d asked for at %v, %v after it ended (retention %v)",
			ErrUnknownTx, id, m.timeOf(m.now), time.Duration(m.now-t.end), m.cfg.retention)
	}
	return t, nil
}

// Transmission returns what the medium remembers of transmission id.
func (m *Medium) Transmission(id TxID) (Transmission, error) {
	t, err := m.lookup(id)
	if err != nil {
		return Transmission{}, err
	}
	return Transmission{
		ID: id, Node: t.node, FrequencyHz: t.freq, Params: t.p, Size: t.size,
		Start: m.timeOf(t.start), End: m.timeOf(t.end),
	}, nil
}

// Candidates returns the nodes that could receive transmission id: those
// whose received power reaches the threshold, in ascending order. For any
// other node Outcome says HalfDuplex or BelowSensitivity. The slice belongs to the
// medium and must not be modified.
func (m *Medium) Candidates(id TxID) ([]NodeID, error) {
	t, err := m.lookup(id)
	if err != nil {
		return nil, err
	}
	out := m.classes[t.cls].out[t.node]
	return out[:len(out):len(out)], nil
}

// Outcome returns the fate of transmission id at receiver (see the rules
// in the type's documentation). Ask at the frame's end or later.
func (m *Medium) Outcome(id TxID, receiver NodeID) (Reception, error) {
	t, err := m.judgeable(id)
	if err != nil {
		return Reception{}, err
	}
	if err := m.checkNode(receiver); err != nil {
		return Reception{}, err
	}
	if receiver == t.node {
		return Reception{}, fmt.Errorf("%w: node %d sent transmission %d", ErrSameNode, receiver, id)
	}
	if m.usesRivals() {
		m.gather(t)
	}
	return m.outcome(t, receiver, m.rxPower(t.node, receiver)), nil
}

// Outcomes appends to dst the fate of transmission id at each of its
// [Medium.Candidates], in that order, and returns the extended slice.
func (m *Medium) Outcomes(id TxID, dst []Reception) ([]Reception, error) {
	t, err := m.judgeable(id)
	if err != nil {
		return dst, err
	}
	if m.usesRivals() {
		m.gather(t)
	}
	c := m.classes[t.cls]
	pw := c.outPw[t.node]
	for i, r := range c.out[t.node] {
		dst = append(dst, m.outcome(t, r, pw[i]))
	}
	return dst, nil
}

// usesRivals reports whether outcomes judge a frame against its rivals
// (gather): with summed interference or other spreading factors, or when
// a test asks. Otherwise destroyer scans each receiver's interferers,
// which is exact and cheaper than gathering: in a busy 10,000-node run
// gathering looked at about 400 filed frames to keep 70 rivals per frame,
// and most of those rivals reach none of the frame's receivers.
func (m *Medium) usesRivals() bool {
	return m.path == 1 || m.cfg.sum || m.cfg.rejection != nil
}

// gather collects in m.rivals the transmissions that may destroy f at
// some receiver: same channel, overlapping f past the start of its
// critical section, sent from within reach plus interference range of f's
// sender (so from f's cell or the 8 around it).
func (m *Medium) gather(f *txRec) {
	if m.rivalsFor == f.id {
		return
	}
	m.rivalsFor = f.id
	m.rivals = m.rivals[:0]
	c := m.classes[f.cls]
	m.gatherFrom(f, c, c.rxRange+c.intRange)
	if m.cfg.rejection == nil {
		return
	}
	// Other spreading factors on the same bandwidth interfere too.
	for k, o := range m.classes {
		if o != nil && k != f.cls && k%len(bandwidths) == f.cls%len(bandwidths) {
			m.gatherFrom(f, o, c.rxRange+o.intRange)
		}
	}
}

// gatherFrom adds to m.rivals the transmissions filed in class c's grid
// that overlap f on its frequency, sent within lim of f's sender.
func (m *Medium) gatherFrom(f *txRec, c *class, lim float64) {
	k := cellOf(&m.nodes[f.node], c.cell)
	fn := &m.nodes[f.node]
	lim2 := lim * lim
	span := max(1, int64(math.Ceil(lim/c.cell)))
	for dx := -span; dx <= span; dx++ {
		for dy := -span; dy <= span; dy++ {
			fr := c.frames[cellKey{k.x + dx, k.y + dy}]
			if fr == nil {
				continue
			}
			// Newest first; a transmission that starts maxAir or more
			// before f cannot overlap it, nor can any older one.
			for i := fr.len() - 1; i >= 0; i-- {
				t := fr.at(i)
				if t.start+m.maxAir <= f.start {
					break
				}
				if t.id == f.id || t.start >= f.end || t.end <= f.cs || t.freq != f.freq {
					continue
				}
				ddx, ddy := t.x-fn.X, t.y-fn.Y
				if ddx*ddx+ddy*ddy > lim2 {
					continue
				}
				m.rivals = append(m.rivals, m.rec(t.id))
			}
		}
	}
}

// outcome judges f at r, where its power is pw before fading, against the
// rivals gathered for f.
func (m *Medium) outcome(f *txRec, r NodeID, pw float64) Reception {
	c := m.classes[f.cls]
	rssi := pw + m.fadeDB(f.id, r)
	res := Reception{Receiver: r, RSSIDBm: rssi, SNRDB: rssi - c.noise}
	switch {
	case m.sending(r, f.start, f.end):
		res.Status = HalfDuplex
	case rssi < c.threshold:
		res.Status = BelowSensitivity
	case m.cfg.curve && !m.survivesCurve(f, r, res.SNRDB):
		res.Status = BelowSensitivity
	default:
		res.Status = Received
		if t := m.destroyer(f, r, rssi, c); t != nil {
			res.Status, res.Interferer = Collision, t.id
		}
	}
	return res
}

// destroyer returns a transmission that destroys f (received at rssi) at
// r, or nil. Two exact ways to find it: among the rivals gathered for f,
// or by a scan of r's interferers.
func (m *Medium) destroyer(f *txRec, r NodeID, rssi float64, c *class) *txRec {
	if m.cfg.sum {
		return m.destroyerSum(f, r, rssi, c)
	}
	if !m.usesRivals() || m.path == 2 {
		return m.destroyerScan(f, r, rssi, c)
	}
	// Other spreading factors' frames are only among the rivals. Keep
	// those whose sender reaches r at floor.
	rn := &m.nodes[r]
	int2 := c.intRange * c.intRange
	for _, t := range m.rivals {
		tn := &m.nodes[t.node]
		ddx, ddy := tn.X-rn.X, tn.Y-rn.Y
		if t.node == r || ddx*ddx+ddy*ddy > int2 {
			continue
		}
		if pw, ok := c.inPower(r, t.node); ok && m.destroys(t, f, r, rssi, pw, c) {
			return t
		}
	}
	return nil
}

// destroyerScan walks the nodes that reach r at floor and their
// transmissions on f's channel overlapping f. A sender whose latest
// transmission ends by the start of f's critical section has none that
// can destroy f (its earlier ones end earlier still): one look at the
// dense last array skips it.
func (m *Medium) destroyerScan(f *txRec, r NodeID, rssi float64, c *class) *txRec {
	nodes, pw := c.inOf(r)
	for i, s := range nodes {
		lt := m.last[s]
		if lt.end <= f.cs || s == f.node {
			continue
		}
		for t := m.rec(lt.id); t != nil && t.end > f.start; t = m.rec(t.prev) {
			if t.start >= f.end || t.freq != f.freq || t.cls != f.cls {
				continue
			}
			if m.destroys(t, f, r, rssi, pw[i], c) {
				return t
			}
		}
	}
	return nil
}

// sending reports whether node transmitted during any part of [from, to).
func (m *Medium) sending(node NodeID, from, to int64) bool {
	// With a turnaround, the radio is deaf that long after each frame.
	from -= int64(m.cfg.turnaround)
	lt := m.last[node]
	if lt.end <= from {
		return false
	}
	// The node's transmissions follow one another: go back from the
	// newest until one ends before from.
	for t := m.rec(lt.id); t != nil && t.end > from; t = m.rec(t.prev) {
		if t.start < to {
			return true
		}
	}
	return false
}

// destroys reports whether interferer t, overlapping f in time on f's
// channel, destroys f (received at rssi) at r, where t's power is pw
// before fading.
func (m *Medium) destroys(t, f *txRec, r NodeID, rssi, pw float64, c *class) bool {
	if t.end <= f.cs {
		return false // the preamble rule: f's last preamble symbols were clean
	}
	pt := pw + m.fadeDB(t.id, r)
	if m.locked(t, f, r, rssi, pt, c) {
		return true
	}
	return rssi-pt < m.rejectionDB(f, t)
}

// locked reports whether r was locked on t, received at pt, when f
// (received at rssi) came: t is on f's channel and spreading factor,
// started first, reaches the threshold, r was not sending during t's
// preamble, and f did not come early and strong enough to take over.
func (m *Medium) locked(t, f *txRec, r NodeID, rssi, pt float64, c *class) bool {
	if m.cfg.laterCapture || t.cls != f.cls || t.start >= f.start || pt < c.threshold || m.sending(r, t.start, t.preEnd) {
		return false
	}
	if m.cfg.window > 0 && float64(f.start-t.start) < m.cfg.window*float64(t.p.SymbolTime()) && rssi-pt >= m.cfg.capture {
		return false // t's preamble was still young: f captures the receiver
	}
	return true
}

// destroyerSum is destroyer with summed interference: f is lost if r was
// locked on a rival, or if f is weaker than the sum of the rivals'
// powers, each raised by the SIR f needs against it. The sum covers the
// rivals whose power at r reaches the capture threshold below the receive
// threshold (those within the interference range of r): weaker ones are
// left out, which keeps the cost of a frame independent of how many
// distant transmissions overlap it.
func (m *Medium) destroyerSum(f *txRec, r NodeID, rssi float64, c *class) *txRec {
	var sum float64
	var worst *txRec
	worstDB := math.Inf(-1)
	rn := &m.nodes[r]
	int2 := c.intRange * c.intRange
	for _, t := range m.rivals {
		tn := &m.nodes[t.node]
		ddx, ddy := tn.X-rn.X, tn.Y-rn.Y
		if t.node == r || ddx*ddx+ddy*ddy > int2 {
			continue
		}
		pw, ok := c.inPower(r, t.node)
		if !ok {
			continue
		}
		pt := pw + m.fadeDB(t.id, r)
		if m.locked(t, f, r, rssi, pt, c) {
			return t
		}
		w := pt + m.rejectionDB(f, t)
		sum += math.Pow(10, w/10)
		if w > worstDB {
			worst, worstDB = t, w
		}
	}
	if worst != nil && rssi < 10*math.Log10(sum) {
		return worst
	}
	return nil
}
