package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"meshd.dev/meshd/simulations/radio"
	"meshd.dev/meshd/simulations/rnode"
)

type nodeFlags []rnode.NodeConfig

func (n *nodeFlags) String() string { return fmt.Sprint(len(*n), " modems") }
func (n *nodeFlags) Set(v string) error {
	c, err := rnode.ParseNode(v)
	if err != nil {
		return err
	}
	*n = append(*n, c)
	return nil
}

type options struct {
	nodes     nodeFlags
	layout    string
	dir       string
	mapFile   string
	control   string
	seed      uint64
	shadowing float64
	capture   float64
	stats     time.Duration
}

func parseServe(args []string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("rnode-emu", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Var(&o.nodes, "node", "a modem: NAME,X,Y[,TX_DBM[,GAIN_DBI]] (metres; repeatable)")
	fs.StringVar(&o.layout, "layout", "", "layout file: TOML [[modem]] tables, or CSV (.csv) rows name,x,y[,tx_power_dbm[,gain_dbi]]")
	fs.StringVar(&o.dir, "dir", "", "directory for a symbolic link per modem (DIR/NAME)")
	fs.StringVar(&o.mapFile, "map", "", "write the modem-to-terminal map as JSON to this file")
	fs.StringVar(&o.control, "control", "", "unix socket for ctl commands")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the shadowing, split headers and back-off")
	fs.Float64Var(&o.shadowing, "shadowing", 0, "log-normal shadowing sigma in dB (0: every link at its mean)")
	fs.Float64Var(&o.capture, "capture", 6, "capture threshold in dB")
	fs.DurationVar(&o.stats, "stats-interval", 999*time.Millisecond, "channel statistics report interval (negative: none)")
	if err := fs.Parse(args); err != nil {
		return nil, fmt.Errorf("%w\n%w", err, errUsage)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q\n%w", fs.Arg(0), errUsage)
	}
	if o.layout != "" {
		doc, err := os.ReadFile(o.layout)
		if err != nil {
			return nil, err
		}
		nodes, err := rnode.ParseLayout(doc, strings.HasSuffix(strings.ToLower(o.layout), ".csv"))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", o.layout, err)
		}
		o.nodes = append(o.nodes, nodes...)
	}
	if len(o.nodes) == 0 {
		return nil, fmt.Errorf("no modems: give --node or --layout\n%w", errUsage)
	}
	if err := rnode.ValidateLayout(o.nodes); err != nil {
		return nil, err
	}
	if !(o.shadowing >= 0 && o.shadowing < 100) || !(o.capture >= 0 && o.capture < 100) {
		return nil, fmt.Errorf("--shadowing and --capture must be 0..100 dB")
	}
	return o, nil
}

// emulator is the running command: the hub, its terminals, the map.
type emulator struct {
	o    *options
	hub  *rnode.Hub
	out  io.Writer
	mu   sync.Mutex
	ptys map[string]*rnode.PTY
}

func serve(ctx context.Context, args []string, stdout io.Writer, ready func()) error {
	o, err := parseServe(args)
	if err != nil {
		return err
	}
	model := radio.DefaultModel()
	model.PathLoss.ShadowSigmaDB = o.shadowing
	hub, err := rnode.New(rnode.Config{Nodes: o.nodes, Seed: o.seed, Model: &model,
		MediumOptions: []radio.Option{radio.WithCaptureThreshold(o.capture)}, StatsInterval: o.stats})
	if err != nil {
		return err
	}
	defer hub.Close()
	e := &emulator{o: o, hub: hub, out: stdout, ptys: map[string]*rnode.PTY{}}
	if o.dir != "" {
		if err := os.MkdirAll(o.dir, 0o755); err != nil {
			return err
		}
	}
	defer e.unplugAll()
	for _, n := range o.nodes {
		if err := e.plug(n.Name); err != nil {
			return err
		}
	}
	e.printTable()
	if o.control != "" {
		stop, err := e.listen(ctx)
		if err != nil {
			return err
		}
		defer stop()
	}
	fmt.Fprintln(stdout, "ready")
	if ready != nil {
		ready()
	}
	<-ctx.Done()
	return nil
}

func (e *emulator) link(name string) string {
	if e.o.dir == "" {
		return ""
	}
	return filepath.Join(e.o.dir, name)
}

func (e *emulator) plug(name string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.ptys[name]; ok {
		return fmt.Errorf("%w: %q", rnode.ErrPlugged, name)
	}
	p, err := rnode.ServePTY(e.hub, name, e.link(name))
	if err != nil {
		return err
	}
	e.ptys[name] = p
	return e.writeMap()
}

func (e *emulator) unplug(name string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	p, ok := e.ptys[name]
	if !ok {
		if !e.known(name) {
			return fmt.Errorf("%w: %q", rnode.ErrUnknownModem, name)
		}
		return nil
	}
	delete(e.ptys, name)
	if err := p.Close(); err != nil {
		return err
	}
	return e.writeMap()
}

func (e *emulator) known(name string) bool {
	for _, n := range e.o.nodes {
		if n.Name == name {
			return true
		}
	}
	return false
}

func (e *emulator) unplugAll() {
	for _, n := range e.o.nodes {
		e.unplug(n.Name)
	}
}

// mapEntry is one modem in the --map file.
type mapEntry struct {
	Name    string  `json:"name"`
	PTY     string  `json:"pty,omitempty"`
	Link    string  `json:"link,omitempty"`
	X       float64 `json:"x"`
	Y       float64 `json:"y"`
	Plugged bool    `json:"plugged"`
}

func (e *emulator) entries() []mapEntry {
	var out []mapEntry
	for _, n := range e.o.nodes {
		me := mapEntry{Name: n.Name, X: n.X, Y: n.Y}
		if p, ok := e.ptys[n.Name]; ok {
			me.PTY, me.Link, me.Plugged = p.Path, p.Link, true
		}
		out = append(out, me)
	}
	return out
}

// writeMap replaces the map file atomically.
func (e *emulator) writeMap() error {
	if e.o.mapFile == "" {
		return nil
	}
	b, err := json.MarshalIndent(map[string]any{"modems": e.entries()}, "", "  ")
	if err != nil {
		return err
	}
	tmp := e.o.mapFile + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, e.o.mapFile)
}

// printTable says which terminal is which modem, and which pairs can hear
// each other at which spreading factors (125 kHz; the power includes the link's shadowing).
func (e *emulator) printTable() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, me := range e.entries() {
		where := me.PTY
		if me.Link != "" {
			where += " (" + me.Link + ")"
		}
		fmt.Fprintf(e.out, "modem %s: %s at (%g, %g) m\n", me.Name, where, me.X, me.Y)
	}
	med := e.hub.Medium()
	model := med.Model()
	for i := range e.o.nodes {
		for j := i + 1; j < len(e.o.nodes); j++ {
			a, b := e.o.nodes[i], e.o.nodes[j]
			p, _ := med.RxPowerDBm(radio.NodeID(i), radio.NodeID(j))
			reach := "out of range"
			for sf := 7; sf <= 12; sf++ {
				if p >= model.ThresholdDBm(radio.NewParams(sf, 125000, radio.CR45)) {
					reach = fmt.Sprintf("in range at SF%d and above", sf)
					break
				}
			}
			fmt.Fprintf(e.out, "link %s-%s: %.0f m, %.1f dBm, %s\n", a.Name, b.Name, math.Hypot(a.X-b.X, a.Y-b.Y), p, reach)
		}
	}
}
