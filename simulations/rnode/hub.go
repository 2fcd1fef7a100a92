package rnode

import (
	"container/heap"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"meshd.dev/meshd/simulations/radio"
)

// Sentinel errors.
var (
	// ErrConfig reports an unusable emulator configuration.
	ErrConfig = errors.New("rnode: invalid configuration")
	// ErrUnknownModem reports a modem name the hub does not have.
	ErrUnknownModem = errors.New("rnode: unknown modem")
	// ErrUnplugged reports I/O on a modem whose cable was pulled.
	ErrUnplugged = errors.New("rnode: modem unplugged")
	// ErrPlugged reports plugging in a modem that is already plugged in.
	ErrPlugged = errors.New("rnode: modem already plugged in")
)

// NodeConfig places one modem.
type NodeConfig struct {
	// Name names the modem (unique, non-empty).
	Name string
	// X and Y are its position in metres.
	X, Y float64
	// TxPowerDBm is the power its frames propagate with (default 17, the
	// SX1276's maximum). The host's TXPOWER is echoed as the firmware
	// does but does not change the emulated range.
	TxPowerDBm float64
	// GainDBi is its antenna gain.
	GainDBi float64
}

// Config configures a Hub.
type Config struct {
	Nodes []NodeConfig
	// Clock defaults to the wall clock.
	Clock Clock
	// Seed seeds the shadowing key, the split headers' sequence numbers
	// and the CSMA back-off.
	Seed uint64
	// Model is the propagation model (default radio.DefaultModel(); set
	// ShadowSigmaDB 0 for no shadowing).
	Model *radio.Model
	// MediumOptions are passed to radio.NewMedium (capture threshold and
	// so on).
	MediumOptions []radio.Option
	// Identity is what the modems say they are (default DefaultIdentity).
	Identity *Identity
	// StatsInterval is how often a modem with its radio on reports channel
	// statistics (default 999 ms, as the firmware's 333 status samples of
	// 3 ms; negative: never).
	StatsInterval time.Duration
}

// Hub is a set of emulated RNode modems sharing one radio medium. Each
// modem speaks the RNode host protocol on a [Conn] (a pseudo-terminal in
// the emulator command, in-process in tests). The hub is a discrete-event
// scheduler that follows its clock: every entry point first runs what was
// due, at the exact time it was due, so airtime and back-off are exact
// even when the goroutine running them is late.
type Hub struct {
	mu       sync.Mutex
	clock    Clock
	identity Identity
	rng      *rand.Rand
	model    radio.Model
	med      *radio.Medium
	modems   []*modem
	byName   map[string]*modem
	stats    time.Duration

	events   eventQueue
	seq      uint64
	timer    Timer
	timerAt  time.Time
	now      time.Time
	flights  []*flight
	channels []int64 // centre frequencies seen, see channelOf
	rxBuf    []radio.Reception
}

// New creates the hub and its modems, all unplugged.
func New(cfg Config) (*Hub, error) {
	if len(cfg.Nodes) == 0 {
		return nil, fmt.Errorf("%w: no modems", ErrConfig)
	}
	h := &Hub{clock: cfg.Clock, identity: DefaultIdentity(), model: radio.DefaultModel(), byName: map[string]*modem{}, stats: cfg.StatsInterval}
	if h.clock == nil {
		h.clock = WallClock{}
	}
	if cfg.Identity != nil {
		h.identity = *cfg.Identity
	}
	if cfg.Model != nil {
		h.model = *cfg.Model
	}
	if h.stats == 0 {
		h.stats = 999 * time.Millisecond
	}
	h.rng = rand.New(rand.NewPCG(cfg.Seed, 0x726e6f6465))
	nodes := make([]radio.Node, len(cfg.Nodes))
	for i, n := range cfg.Nodes {
		if err := h.addModem(i, n); err != nil {
			return nil, err
		}
		p := n.TxPowerDBm
		if p == 0 {
			p = 17
		}
		nodes[i] = radio.Node{X: n.X, Y: n.Y, Device: radio.Device{TxPowerDBm: p, GainDBi: n.GainDBi}}
	}
	opts := append([]radio.Option{radio.WithModel(h.model)}, cfg.MediumOptions...)
	med, err := radio.NewMedium(nodes, rand.New(rand.NewPCG(cfg.Seed, 0x736861646f77)), opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	h.med = med
	h.now = h.clock.Now()
	return h, nil
}

func (h *Hub) addModem(i int, n NodeConfig) error {
	if n.Name == "" {
		return fmt.Errorf("%w: modem %d has no name", ErrConfig, i)
	}
	if _, dup := h.byName[n.Name]; dup {
		return fmt.Errorf("%w: two modems named %q", ErrConfig, n.Name)
	}
	m := &modem{h: h, idx: i, name: n.Name}
	m.csma.reset()
	h.modems = append(h.modems, m)
	h.byName[n.Name] = m
	return nil
}

// Names returns the modems' names in order.
func (h *Hub) Names() []string {
	names := make([]string, len(h.modems))
	for i, m := range h.modems {
		names[i] = m.name
	}
	return names
}

// Medium returns the radio medium (for its model and link budgets; do not
// transmit on it).
func (h *Hub) Medium() *radio.Medium { return h.med }

// do runs f on the hub's state at the clock's present, after everything
// that was due.
func (h *Hub) do(f func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.advance(h.clock.Now())
	f()
	h.arm()
}

func (h *Hub) lookup(name string) (*modem, error) {
	m, ok := h.byName[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownModem, name)
	}
	return m, nil
}

// Plug connects a modem's cable: it powers up, boots (announcing the boot
// with a RESET frame) and talks to the returned Conn.
func (h *Hub) Plug(name string) (*Conn, error) { return h.plug(name, true) }

// plug plugs a modem in; announce says whether its host is there to hear
// the boot announcement. A host that opens a serial port after plugging a
// modem in does not see it: the port appears once the modem has booted.
func (h *Hub) plug(name string, announce bool) (*Conn, error) {
	var c *Conn
	var err error
	h.do(func() {
		var m *modem
		if m, err = h.lookup(name); err != nil {
			return
		}
		if m.conn != nil {
			err = fmt.Errorf("%w: %q", ErrPlugged, name)
			return
		}
		c = newConn(h, m)
		m.conn = c
		m.boot(h.now, announce)
	})
	return c, err
}

// Unplug pulls a modem's cable: it loses power (a frame it is sending is
// cut off and reaches no one), its Conn reads EOF, and it forgets every
// setting. Unplugging an unplugged modem does nothing.
func (h *Hub) Unplug(name string) error {
	var err error
	h.do(func() {
		var m *modem
		if m, err = h.lookup(name); err != nil || m.conn == nil {
			return
		}
		h.powerOff(m)
	})
	return err
}

func (h *Hub) powerOff(m *modem) {
	h.abortTx(m, true)
	m.stopRadio()
	m.conn.close()
	m.conn = nil
	m.csma.reset()
}

// Fault makes a modem fail the next time the fault applies.
func (h *Hub) Fault(name string, f Fault) error {
	var err error
	h.do(func() {
		var m *modem
		if m, err = h.lookup(name); err != nil {
			return
		}
		err = m.faults.add(f)
	})
	return err
}

// input hands host bytes to c's modem, unless c was unplugged since.
func (h *Hub) input(c *Conn, p []byte) error {
	var err error
	h.do(func() {
		if c.m.conn != c {
			err = ErrUnplugged
			return
		}
		c.m.input(p)
	})
	return err
}

// Close stops the hub: every modem is unplugged and no timer stays.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range h.modems {
		if m.conn != nil {
			h.powerOff(m)
		}
	}
	h.events = nil
	if h.timer != nil {
		h.timer.Stop()
		h.timer = nil
	}
}

// Event scheduling.

type event struct {
	at  time.Time
	seq uint64
	fn  func()
}

type eventQueue []*event

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if !q[i].at.Equal(q[j].at) {
		return q[i].at.Before(q[j].at)
	}
	return q[i].seq < q[j].seq
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(*event)) }
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

// schedule runs fn at at (not before the hub's present).
func (h *Hub) schedule(at time.Time, fn func()) {
	if at.Before(h.now) {
		at = h.now
	}
	h.seq++
	heap.Push(&h.events, &event{at: at, seq: h.seq, fn: fn})
}

// advance runs every event due by now, each at its own time, in order.
func (h *Hub) advance(now time.Time) {
	for len(h.events) > 0 && !h.events[0].at.After(now) {
		e := heap.Pop(&h.events).(*event)
		h.now = e.at
		e.fn()
	}
	if now.After(h.now) {
		h.now = now
	}
}

// arm sets the timer for the next event.
func (h *Hub) arm() {
	if len(h.events) == 0 {
		return
	}
	next := h.events[0].at
	if h.timer != nil && h.timerAt.Equal(next) {
		return
	}
	if h.timer != nil {
		h.timer.Stop()
	}
	h.timerAt = next
	h.timer = h.clock.AfterFunc(next.Sub(h.clock.Now()), h.fire)
}

func (h *Hub) fire() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.timer = nil
	h.advance(h.clock.Now())
	h.arm()
}

// Status ticks.

func (h *Hub) startTicks(m *modem) {
	if h.stats < 0 {
		return
	}
	m.tickGen++
	gen := m.tickGen
	var tick func()
	tick = func() {
		if m.tickGen != gen {
			return
		}
		if m.phase != phaseSending { // the main loop does not run while sending
			m.checkModemStatus(h.now)
			h.kick(m)
		}
		h.schedule(h.now.Add(h.stats), tick)
	}
	h.schedule(h.now.Add(h.stats), tick)
}

func (h *Hub) stopTicks(m *modem) { m.tickGen++ }
