package sim

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"

	"meshd.dev/meshd/internal/tomlerr"
	"meshd.dev/meshd/simulations/radio"
)

// ErrScenario reports a scenario that cannot run; the message names the
// field.
var ErrScenario = errors.New("sim: bad scenario")

// Duration is a time.Duration written as a Go duration string ("90s",
// "10m") in TOML.
type Duration struct{ time.Duration }

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// MarshalText writes a Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.Duration.String()), nil }

// Scenario is a meshsim scenario file. Every field is documented in
// simulations/scenarios/README.md.
type Scenario struct {
	// Name is a label for reports.
	Name string `toml:"name"`
	// Seed derives every random choice of the run.
	Seed uint64 `toml:"seed"`
	// Duration is the simulated time to run.
	Duration Duration `toml:"duration"`
	// Radio configures every LoRa node (one shared channel).
	Radio Radio `toml:"radio"`
	// Engine overrides routing.Config defaults for every node.
	Engine Engine `toml:"engine"`
	// Nodes lists nodes explicitly.
	Nodes []NodeSpec `toml:"nodes"`
	// Links lists IP links explicitly, by node name.
	Links []LinkSpec `toml:"links"`
	// Topology generates nodes (and IP links) in bulk.
	Topology []Topology `toml:"topology"`
	// Traffic is the application workload.
	Traffic Traffic `toml:"traffic"`
	// Dynamics are changes during the run (partitions and heals).
	Dynamics []Dynamic `toml:"dynamics"`
	// Churn crashes and restarts nodes at random (MTBF/MTTR).
	Churn Churn `toml:"churn"`
	// Gossip is the model of gossipsub on the IP side.
	Gossip Gossip `toml:"gossip"`
	// FAPP is the appointment workload (on when it has regions).
	FAPP FAPP `toml:"fapp,omitempty"`
	// Broadcast chooses how broadcasts are flooded: meshd's engine or a
	// baseline (naive, meshtastic); Unicast the same for unicast messages.
	Broadcast BroadcastStrategy `toml:"broadcast"`
	Unicast   UnicastStrategy   `toml:"unicast"`
}

// Gossip configures the gossipsub model that carries channel frames between
// the members of the channel over IP links (docs/simulations.md): every
// member keeps a mesh of up to MeshDegree member neighbours (grafts refused
// above MeshDegreeHigh), a publisher sends to all its member neighbours
// (flood publishing) or to its mesh (a non-member: to D of them), and every
// member forwards a message it
// sees for the first time to its mesh peers, each hop after the link's
// latency and jitter plus HopDelay.
type Gossip struct {
	// MeshDegree is gossipsub's D (default 6, go-libp2p-pubsub's default).
	MeshDegree int `toml:"mesh_degree"`
	// MeshDegreeHigh is Dhi: a node with this many mesh peers refuses
	// further grafts (default 12).
	MeshDegreeHigh int `toml:"mesh_degree_high"`
	// FloodPublish sends a node's own publication to every member
	// neighbour, not only its mesh ("on", the default as in
	// go-libp2p-pubsub, or "off").
	FloodPublish string `toml:"flood_publish"`
	// HopDelay is added to every gossip hop (validation and processing).
	HopDelay Duration `toml:"hop_delay"`
	// Lazy turns gossipsub's IHAVE/IWANT gossip on ("on", the default) or
	// off: every Heartbeat a member announces the IDs of the messages it
	// saw in the last 3 heartbeats to LazyDegree (Dlazy, default 6) or a
	// quarter of its non-mesh member neighbours, whichever is more; one
	// that misses some asks for them with IWANT and gets them from the
	// message cache (5 heartbeats).
	Lazy       string   `toml:"lazy"`
	LazyDegree int      `toml:"lazy_degree"`
	Heartbeat  Duration `toml:"heartbeat"`
}

// Churn makes nodes fail and recover at random: each node of Nodes (all if
// empty) stays up for an exponentially distributed time with mean MTBF,
// then down (a crash, as dynamics' "down") for an exponentially distributed
// time with mean MTTR, and so on. The draws come from the node's own
// generator (derived from the seed and the node index), so adding churn to
// a scenario changes no other random choice. Failures happen between Start
// and Stop (0: the end of the run); a node down at Stop still recovers.
type Churn struct {
	MTBF  Duration `toml:"mtbf"`
	MTTR  Duration `toml:"mttr"`
	Nodes []string `toml:"nodes"`
	Start Duration `toml:"start"`
	Stop  Duration `toml:"stop"`
}

// enabled reports whether the scenario asks for churn at all.
func (c Churn) enabled() bool {
	return c.MTBF.Duration != 0 || c.MTTR.Duration != 0 || len(c.Nodes) > 0 || c.Start.Duration != 0 || c.Stop.Duration != 0
}

// Radio is the LoRa configuration shared by all radio nodes.
type Radio struct {
	SF              int     `toml:"sf"`
	BandwidthHz     int     `toml:"bandwidth_hz"`
	CR              int     `toml:"cr"` // denominator of 4/cr: 5..8
	PreambleSymbols int     `toml:"preamble_symbols"`
	TxPowerDBm      float64 `toml:"tx_power_dbm"`
	FrequencyHz     int64   `toml:"frequency_hz"`
	// ShadowSigmaDB is the per-link static shadowing (default 3.57 dB; 0
	// turns it off).
	ShadowSigmaDB *float64 `toml:"shadow_sigma_db"`
	// CaptureDB is the same-channel capture threshold (default 6 dB; 0
	// means 0 dB).
	CaptureDB *float64 `toml:"capture_db"`
	// DutyCycle enforces EU868 duty cycle ("eu868", the default, or "off").
	DutyCycle string `toml:"duty_cycle"`
	// CarrierSense makes a radio wait for a clear channel before it sends,
	// as RNode's firmware does ("csma", the default, or "off").
	CarrierSense string `toml:"carrier_sense"`
	// Propagation is the path-loss model and the antennas
	// (radio_config.go).
	Propagation Propagation `toml:"propagation"`
	// Reception is the receiver model (reception_config.go).
	Reception Reception `toml:"reception"`
}

// Engine holds routing.Config overrides.
type Engine struct {
	AnnounceInterval Duration `toml:"announce_interval"`
	RetryBase        Duration `toml:"retry_base"`
	RetryMax         Duration `toml:"retry_max"`
	MessageTTL       Duration `toml:"message_ttl"`
	// IPAdvertRadius is routing.Config.IPAdvertRadius: announces are
	// re-advertised on IP links only for destinations fewer than this many
	// hops away (0: the engine's default, 4).
	IPAdvertRadius int `toml:"ip_advert_radius"`
	// FloodPolicy is how radio nodes rebroadcast channel frames: managed
	// (the engine's defaults), naive (every node rebroadcasts every new
	// frame once: nothing cancels) or meshtastic (Meshtastic-like: a short
	// SNR-ordered window of 4 airtimes, cancelled on hearing one
	// rebroadcast). Default managed.
	FloodPolicy string `toml:"flood_policy"`
	// Sessions carries unicast over route sessions instead of sealed
	// envelopes (default true; false sets routing.Config.NoSessions).
	Sessions *bool `toml:"sessions"`
}

// NodeSpec is one node. A node with lora = true needs a position.
type NodeSpec struct {
	Name    string   `toml:"name"`
	X       *float64 `toml:"x"`
	Y       *float64 `toml:"y"`
	LoRa    bool     `toml:"lora"`
	Mailbox bool     `toml:"mailbox"`
	// HeightM and GainDBi override the radio's antenna for this node
	// ([radio.propagation]).
	HeightM *float64 `toml:"height_m"`
	GainDBi *float64 `toml:"gain_dbi"`
	// SF and FrequencyHz put this node on its own channel (0: the
	// radio's); it hears only frames on its channel (radio_channels.go).
	SF          int   `toml:"sf"`
	FrequencyHz int64 `toml:"frequency_hz"`
}

// IPParams are the properties of a point-to-point link.
type IPParams struct {
	// Kind is ip (a libp2p connection: broadcasts go by gossip) or tcp (a
	// framed TCP mesh link that takes part in flooding). Default ip.
	Kind    string   `toml:"kind"`
	Latency Duration `toml:"latency"`
	Jitter  Duration `toml:"jitter"`
	Loss    float64  `toml:"loss"`
	MTU     int      `toml:"mtu"`
	// BandwidthBps serialises frames per direction; 0 means unlimited.
	BandwidthBps int64 `toml:"bandwidth_bps"`
}

// LinkSpec is an explicit IP link between two named nodes.
type LinkSpec struct {
	A string `toml:"a"`
	B string `toml:"b"`
	IPParams
}

// Topology generates N nodes named Prefix0..Prefix(N-1).
type Topology struct {
	// Kind is grid, ring, random or ba (Barabasi-Albert preferential
	// attachment, ip only: each new node links to M existing ones).
	Kind   string `toml:"kind"`
	M      int    `toml:"m"`
	N      int    `toml:"n"`
	Prefix string `toml:"prefix"`
	// Link is lora (nodes join the radio medium; the radio decides who
	// hears whom) or ip (IP links between neighbours: grid and ring
	// neighbours, or pairs within Reach for random).
	Link string `toml:"link"`
	// Geometry in metres: grid spacing and columns, ring radius, random
	// area.
	Spacing float64 `toml:"spacing"`
	Cols    int     `toml:"cols"`
	Radius  float64 `toml:"radius"`
	Width   float64 `toml:"width"`
	Height  float64 `toml:"height"`
	OriginX float64 `toml:"origin_x"`
	OriginY float64 `toml:"origin_y"`
	// Reach connects random ip nodes closer than this; 0 means the radio
	// link budget's mean range.
	Reach float64 `toml:"reach"`
	// IP is the generated IP links' properties.
	IP IPParams `toml:"ip"`
	// NodesFile and LinksFile import a topology (kind = "csv"): CSV files
	// with a header, "name,x,y" (x and y in metres, needed for lora) and
	// "a,b". Paths are relative to the scenario file. The resolved
	// scenario lists the imported nodes and links explicitly.
	NodesFile string `toml:"nodes_file"`
	LinksFile string `toml:"links_file"`
	// File is the graph of kind = "gml" (see ParseGML), relative to the
	// scenario file. Nodes are named Prefix + label (or Prefix + id without
	// a label); with link = "ip" every edge is an IP link, with link = "lora"
	// every node needs a position (graphics [ x X y Y ], metres) and the
	// graph has no edges.
	File string `toml:"file"`
}

// Traffic is a unicast workload and optional broadcasts.
type Traffic struct {
	// Pattern chooses the unicast workload: "poisson" (the default: each
	// sender sends at Rate to a destination drawn uniformly), "hotspot"
	// (the same, but a share HotspotShare of the messages goes to a few
	// hot destinations), "all-to-all" (each sender sends one message to
	// every destination, Rounds times, in a random order, at Rate) or
	// "local" (the destination is drawn uniformly among the destinations
	// within LocalRadiusM of the sender, on the plane; no message when
	// there is none, or when the sender has no position).
	Pattern string `toml:"pattern"`
	// LocalRadiusM is the "local" pattern's radius in metres.
	LocalRadiusM float64 `toml:"local_radius_m"`
	// Rate is messages per second per sending node (Poisson arrivals).
	Rate float64 `toml:"rate"`
	// Hotspots is how many hot destinations to draw (uniformly, from the
	// seed) among Destinations; HotspotNodes names them instead.
	Hotspots     int      `toml:"hotspots"`
	HotspotNodes []string `toml:"hotspot_nodes"`
	// HotspotShare is the share of messages sent to a hot destination
	// (default 0.8).
	HotspotShare float64 `toml:"hotspot_share"`
	// Rounds is how often an all-to-all sender goes through every
	// destination (default 1).
	Rounds int `toml:"rounds"`
	// Size is the message body in bytes.
	Size int `toml:"size"`
	// Start and Stop bound the sending period (Stop 0 means the end of
	// the run).
	Start Duration `toml:"start"`
	Stop  Duration `toml:"stop"`
	// Senders and Destinations restrict the endpoints (node names); empty
	// means all nodes.
	Senders      []string `toml:"senders"`
	Destinations []string `toml:"destinations"`
	// BroadcastRate is channel broadcasts per second per node.
	BroadcastRate float64 `toml:"broadcast_rate"`
	// ChannelMembers are the nodes that join the channel (and broadcast on
	// it); empty means all. Non-members still relay frames on mesh links
	// and publish what they hear there to gossip, but gossip delivers
	// nothing to them.
	ChannelMembers []string `toml:"channel_members"`
}

// Dynamic is a change at a given time: "partition" takes the listed
// explicit links down, "heal" brings them back up (links are named "a-b");
// "down" stops the listed nodes (a crash: their stores survive), "up"
// restarts them from their stores.
type Dynamic struct {
	At     Duration `toml:"at"`
	Action string   `toml:"action"`
	Links  []string `toml:"links"`
	Nodes  []string `toml:"nodes"`
}

// Load reads, decodes, overrides (sets are key=value with dotted keys, as
// --set takes them) and validates a scenario file.
func Load(path string, sets []string) (*Scenario, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrScenario, err)
	}
	return ParseDir(b, sets, filepath.Dir(path))
}

// Parse is Load on the file's contents; imported files are looked up in
// the current directory.
func Parse(doc []byte, sets []string) (*Scenario, error) { return ParseDir(doc, sets, ".") }

// ParseDir is Parse with imported files looked up relative to dir.
func ParseDir(doc []byte, sets []string, dir string) (*Scenario, error) {
	orig := doc // for the positions of keys in errors
	if len(sets) > 0 {
		var err error
		if doc, err = applySets(doc, sets); err != nil {
			return nil, err
		}
	}
	var sc Scenario
	dec := toml.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sc); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrScenario, tomlerr.Describe(err))
	}
	sc.applyDefaults()
	if err := sc.validateBaseline(orig, sets); err != nil {
		return nil, err
	}
	if err := sc.expandImports(dir); err != nil {
		return nil, err
	}
	if err := sc.Validate(); err != nil {
		return nil, err
	}
	if err := sc.validateRadioModels(keyPositions(doc)); err != nil {
		return nil, err
	}
	return &sc, nil
}

// maxImportBytes bounds an imported CSV file.
const maxImportBytes = 64 << 20

// readCSV reads a CSV file with a header and returns the rows as maps from
// the header's column names.
func readCSV(field, dir, name string, want ...string) ([]map[string]string, error) {
	if name == "" {
		return nil, nil
	}
	path := name
	if !filepath.IsAbs(path) {
		path = filepath.Join(dir, name)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, bad(field, "%v", err)
	}
	if !st.Mode().IsRegular() || st.Size() > maxImportBytes {
		return nil, bad(field, "%s is not a regular file of at most %d bytes", path, maxImportBytes)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, bad(field, "%v", err)
	}
	defer f.Close()
	r := csv.NewReader(io.LimitReader(f, maxImportBytes))
	r.TrimLeadingSpace = true
	recs, err := r.ReadAll()
	if err != nil {
		return nil, bad(field, "%s: %v", path, err)
	}
	if len(recs) == 0 {
		return nil, bad(field, "%s: no header", path)
	}
	hdr := recs[0]
	for _, w := range want {
		if !slices.Contains(hdr, w) {
			return nil, bad(field, "%s: the header has no %q column", path, w)
		}
	}
	rows := make([]map[string]string, 0, len(recs)-1)
	for _, rec := range recs[1:] {
		m := make(map[string]string, len(hdr))
		for i, h := range hdr {
			m[h] = rec[i]
		}
		rows = append(rows, m)
	}
	return rows, nil
}

// expandImports replaces every kind = "csv" topology by the nodes and
// links of its files.
func (sc *Scenario) expandImports(dir string) error {
	var keep []Topology
	for i, t := range sc.Topology {
		if t.Kind == "gml" {
			if err := sc.importGML(i, t, dir); err != nil {
				return err
			}
			continue
		}
		if t.File != "" {
			return bad(fmt.Sprintf("topology[%d].file", i), "only a gml topology reads a file")
		}
		if t.Kind != "csv" {
			if t.NodesFile != "" || t.LinksFile != "" {
				return bad(fmt.Sprintf("topology[%d].nodes_file", i), "only a csv topology imports files")
			}
			keep = append(keep, t)
			continue
		}
		f := fmt.Sprintf("topology[%d]", i)
		if t.NodesFile == "" {
			return bad(f+".nodes_file", "a csv topology needs a nodes file")
		}
		if t.Link != "lora" && t.Link != "ip" {
			return bad(f+".link", "%q is not lora or ip", t.Link)
		}
		want := []string{"name"}
		if t.Link == "lora" {
			want = append(want, "x", "y")
		}
		rows, err := readCSV(f+".nodes_file", dir, t.NodesFile, want...)
		if err != nil {
			return err
		}
		if len(sc.Nodes)+len(rows) > maxNodes {
			return bad(f+".nodes_file", "more than %d nodes", maxNodes)
		}
		for j, row := range rows {
			n := NodeSpec{Name: row["name"], LoRa: t.Link == "lora"}
			for _, c := range []struct {
				col string
				dst **float64
			}{{"x", &n.X}, {"y", &n.Y}} {
				v, ok := row[c.col]
				if !ok || v == "" {
					continue
				}
				x, err := strconv.ParseFloat(v, 64)
				if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
					return bad(f+".nodes_file", "row %d: %s %q is not a number", j+2, c.col, v)
				}
				*c.dst = &x
			}
			sc.Nodes = append(sc.Nodes, n)
		}
		rows, err = readCSV(f+".links_file", dir, t.LinksFile, "a", "b")
		if err != nil {
			return err
		}
		for _, row := range rows {
			sc.Links = append(sc.Links, LinkSpec{A: row["a"], B: row["b"], IPParams: t.IP})
		}
	}
	sc.Topology = keep
	return nil
}

// importGML adds the nodes and links of a kind = "gml" topology.
func (sc *Scenario) importGML(i int, t Topology, dir string) error {
	f := fmt.Sprintf("topology[%d]", i)
	switch {
	case t.File == "":
		return bad(f+".file", "a gml topology needs a file")
	case t.NodesFile != "" || t.LinksFile != "":
		return bad(f+".nodes_file", "a gml topology reads file, not nodes_file or links_file")
	case t.Link != "lora" && t.Link != "ip":
		return bad(f+".link", "%q is not lora or ip", t.Link)
	}
	path := t.File
	if !filepath.IsAbs(path) {
		path = filepath.Join(dir, path)
	}
	st, err := os.Stat(path)
	if err != nil {
		return bad(f+".file", "%v", err)
	}
	if !st.Mode().IsRegular() || st.Size() > maxImportBytes {
		return bad(f+".file", "%s is not a regular file of at most %d bytes", path, maxImportBytes)
	}
	doc, err := os.ReadFile(path)
	if err != nil {
		return bad(f+".file", "%v", err)
	}
	g, err := ParseGML(doc)
	if err != nil {
		return bad(f+".file", "%s: %v", path, err)
	}
	if len(sc.Nodes)+len(g.Nodes) > maxNodes {
		return bad(f+".file", "more than %d nodes", maxNodes)
	}
	names := make(map[int64]string, len(g.Nodes))
	for _, n := range g.Nodes {
		name := t.Prefix + n.Label
		if n.Label == "" {
			name = t.Prefix + strconv.FormatInt(n.ID, 10)
		}
		names[n.ID] = name
		if t.Link == "lora" && n.X == nil {
			return bad(f+".file", "%s: line %d: node %d is a radio node without a position (graphics [ x X y Y ], metres)", path, n.Line, n.ID)
		}
		x, y := n.X, n.Y
		if x != nil {
			x, y = ptr(*x+t.OriginX), ptr(*y+t.OriginY)
		}
		sc.Nodes = append(sc.Nodes, NodeSpec{Name: name, X: x, Y: y, LoRa: t.Link == "lora"})
	}
	if t.Link == "lora" && len(g.Edges) > 0 {
		return bad(f+".file", "%s: line %d: a radio topology has no edges (the radio model decides who hears whom); use link = \"ip\" for a graph of links", path, g.Edges[0].Line)
	}
	for _, e := range g.Edges {
		sc.Links = append(sc.Links, LinkSpec{A: names[e.Source], B: names[e.Target], IPParams: t.IP})
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

// applySets sets dotted keys in the document. Values are TOML values
// ("12", "true", "\"10m\"", "[1, 2]"); a value that does not parse as TOML
// is taken as a string (so --set duration=10m works).
func applySets(doc []byte, sets []string) ([]byte, error) {
	var m map[string]any
	if err := toml.Unmarshal(doc, &m); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrScenario, tomlerr.Describe(err))
	}
	for _, s := range sets {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%w: --set %q: want key=value", ErrScenario, s)
		}
		var val any = v
		var tmp map[string]any
		if err := toml.Unmarshal([]byte("v = "+v), &tmp); err == nil {
			val = tmp["v"]
		}
		path := strings.Split(k, ".")
		cur := m
		for i, p := range path[:len(path)-1] {
			next, ok := cur[p].(map[string]any)
			if !ok {
				if _, exists := cur[p]; exists {
					return nil, fmt.Errorf("%w: --set %s: %s is not a table", ErrScenario, k, strings.Join(path[:i+1], "."))
				}
				next = map[string]any{}
				cur[p] = next
			}
			cur = next
		}
		cur[path[len(path)-1]] = val
	}
	return toml.Marshal(m)
}

func (sc *Scenario) applyDefaults() {
	r := &sc.Radio
	if r.SF == 0 {
		r.SF = 9
	}
	if r.BandwidthHz == 0 {
		r.BandwidthHz = 125000
	}
	if r.CR == 0 {
		r.CR = 5
	}
	if r.PreambleSymbols == 0 {
		r.PreambleSymbols = 8
	}
	if r.TxPowerDBm == 0 {
		r.TxPowerDBm = 14
	}
	if r.FrequencyHz == 0 {
		r.FrequencyHz = 868_100_000
	}
	if r.ShadowSigmaDB == nil {
		v := radio.DefaultPathLoss().ShadowSigmaDB
		r.ShadowSigmaDB = &v
	}
	if r.CaptureDB == nil {
		v := 6.0
		r.CaptureDB = &v
	}
	if r.DutyCycle == "" {
		r.DutyCycle = "eu868"
	}
	if r.CarrierSense == "" {
		r.CarrierSense = "csma"
	}
	r.applyRadioModelDefaults()
	if sc.Engine.FloodPolicy == "" {
		sc.Engine.FloodPolicy = "managed"
	}
	sc.applyBaselineDefaults()
	g := &sc.Gossip
	if g.MeshDegree == 0 {
		g.MeshDegree = 6
	}
	if g.MeshDegreeHigh == 0 {
		g.MeshDegreeHigh = max(12, g.MeshDegree)
	}
	if g.FloodPublish == "" {
		g.FloodPublish = "on"
	}
	if g.Lazy == "" {
		g.Lazy = "on"
	}
	if g.LazyDegree == 0 {
		g.LazyDegree = 6
	}
	if g.Heartbeat.Duration == 0 {
		g.Heartbeat.Duration = time.Second
	}
	tr := &sc.Traffic
	if tr.Size == 0 {
		tr.Size = 32
	}
	if tr.Pattern == "" {
		tr.Pattern = "poisson"
	}
	if tr.Pattern == "hotspot" && tr.HotspotShare == 0 {
		tr.HotspotShare = 0.8
	}
	if tr.Pattern == "all-to-all" && tr.Rounds == 0 {
		tr.Rounds = 1
	}
	sc.FAPP.applyDefaults()
	for i := range sc.Topology {
		t := &sc.Topology[i]
		if t.Prefix == "" && t.Kind != "gml" {
			t.Prefix = fmt.Sprintf("t%d-", i)
		}
	}
}

// Params returns the radio's modulation parameters.
func (r Radio) Params() radio.Params {
	p := radio.NewParams(r.SF, r.BandwidthHz, radio.CodingRate(r.CR-4))
	p.PreambleSymbols = r.PreambleSymbols
	return p
}

// maxNodes bounds a generated topology.
const maxNodes = 1_000_000

func bad(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrScenario, field, fmt.Sprintf(format, args...))
}

func (p IPParams) validate(field string) error {
	switch {
	case p.Kind != "" && p.Kind != "ip" && p.Kind != "tcp":
		return bad(field+".kind", "%q is not ip or tcp", p.Kind)
	case p.Latency.Duration < 0:
		return bad(field+".latency", "%v is negative", p.Latency)
	case p.Jitter.Duration < 0:
		return bad(field+".jitter", "%v is negative", p.Jitter)
	case !(p.Loss >= 0 && p.Loss <= 1):
		return bad(field+".loss", "%v not in 0..1", p.Loss)
	case p.MTU != 0 && p.MTU < 64:
		return bad(field+".mtu", "%d below 64", p.MTU)
	case p.BandwidthBps < 0:
		return bad(field+".bandwidth_bps", "%d is negative", p.BandwidthBps)
	}
	return nil
}

// Validate checks the scenario before a run; errors name the field.
func (sc *Scenario) Validate() error {
	if sc.Duration.Duration <= 0 {
		return bad("duration", "must be positive (for example \"10m\")")
	}
	r := sc.Radio
	switch {
	case r.SF < 7 || r.SF > 12:
		return bad("radio.sf", "%d not in 7..12", r.SF)
	case r.CR < 5 || r.CR > 8:
		return bad("radio.cr", "%d not in 5..8 (the coding rate 4/5..4/8)", r.CR)
	case r.TxPowerDBm < -4 || r.TxPowerDBm > 30:
		return bad("radio.tx_power_dbm", "%v not in -4..30", r.TxPowerDBm)
	case *r.ShadowSigmaDB < 0:
		return bad("radio.shadow_sigma_db", "%v is negative", *r.ShadowSigmaDB)
	case r.CaptureDB != nil && !(*r.CaptureDB >= 0 && *r.CaptureDB <= 30):
		return bad("radio.capture_db", "%v not in 0..30 dB", *r.CaptureDB)
	case r.CarrierSense != "csma" && r.CarrierSense != "off" && r.CarrierSense != "cad":
		return bad("radio.carrier_sense", "%q is not csma, cad or off", r.CarrierSense)
	case r.DutyCycle != "eu868" && r.DutyCycle != "off":
		return bad("radio.duty_cycle", "%q is not eu868 or off", r.DutyCycle)
	}
	if err := r.Params().Validate(); err != nil {
		return bad("radio", "%v", err)
	}
	if r.DutyCycle == "eu868" {
		if _, err := radio.EU868().Find(r.FrequencyHz, r.BandwidthHz); err != nil {
			return bad("radio.frequency_hz", "%d: %v (set radio.duty_cycle = \"off\" outside EU868)", r.FrequencyHz, err)
		}
	}
	e := sc.Engine
	for _, d := range []struct {
		field string
		v     time.Duration
	}{{"engine.announce_interval", e.AnnounceInterval.Duration}, {"engine.retry_base", e.RetryBase.Duration},
		{"engine.retry_max", e.RetryMax.Duration}, {"engine.message_ttl", e.MessageTTL.Duration}} {
		if d.v < 0 {
			return bad(d.field, "%v is negative", d.v)
		}
	}
	if _, ok := floodPolicies[e.FloodPolicy]; !ok {
		return bad("engine.flood_policy", "%q is not managed, naive or meshtastic", e.FloodPolicy)
	}
	if e.IPAdvertRadius < 0 || e.IPAdvertRadius > 255 {
		return bad("engine.ip_advert_radius", "%d not in 0..255 (0: the engine's default, 4)", e.IPAdvertRadius)
	}
	names := map[string]bool{}
	addName := func(field, n string) error {
		if n == "" {
			return bad(field, "empty node name")
		}
		if names[n] {
			return bad(field, "duplicate node name %q", n)
		}
		names[n] = true
		return nil
	}
	for i, n := range sc.Nodes {
		f := fmt.Sprintf("nodes[%d]", i)
		if err := addName(f+".name", n.Name); err != nil {
			return err
		}
		if n.LoRa && (n.X == nil || n.Y == nil) {
			return bad(f+".x", "radio node %q has no position (x and y, in metres)", n.Name)
		}
	}
	total := len(sc.Nodes)
	for i, t := range sc.Topology {
		f := fmt.Sprintf("topology[%d]", i)
		if t.N > 0 {
			total += t.N
		}
		if total > maxNodes {
			return bad(f+".n", "more than %d nodes in all", maxNodes)
		}
		switch {
		case t.Kind != "grid" && t.Kind != "ring" && t.Kind != "random" && t.Kind != "ba":
			return bad(f+".kind", "%q is not grid, ring, random, ba, csv or gml", t.Kind)
		case t.Kind == "ba" && t.Link != "ip":
			return bad(f+".link", "a ba (Barabasi-Albert) topology is an IP overlay: link = \"ip\"")
		case t.Kind == "ba" && (t.M < 1 || t.M >= t.N):
			return bad(f+".m", "%d not in 1..n-1 (%d)", t.M, t.N-1)
		case t.N <= 0 || t.N > maxNodes:
			return bad(f+".n", "%d not in 1..%d", t.N, maxNodes)
		case t.Link != "lora" && t.Link != "ip":
			return bad(f+".link", "%q is not lora or ip", t.Link)
		case t.Kind == "grid" && !(t.Spacing > 0):
			return bad(f+".spacing", "grid needs a positive spacing in metres")
		case t.Kind == "grid" && t.Cols < 0:
			return bad(f+".cols", "%d is negative", t.Cols)
		case t.Kind == "ring" && t.Link == "lora" && !(t.Radius > 0):
			return bad(f+".radius", "a radio ring needs a positive radius in metres")
		case t.Kind == "random" && (!(t.Width > 0) || !(t.Height > 0)):
			return bad(f+".width", "random needs a positive width and height in metres")
		case t.Reach < 0:
			return bad(f+".reach", "%v is negative", t.Reach)
		}
		if err := t.IP.validate(f + ".ip"); err != nil {
			return err
		}
		for j := range t.N {
			if err := addName(f+".prefix", fmt.Sprintf("%s%d", t.Prefix, j)); err != nil {
				return err
			}
		}
	}
	if len(names) == 0 {
		return bad("nodes", "the scenario has no nodes")
	}
	links := map[string]bool{}
	for i, l := range sc.Links {
		f := fmt.Sprintf("links[%d]", i)
		if !names[l.A] {
			return bad(f+".a", "unknown node %q", l.A)
		}
		if !names[l.B] {
			return bad(f+".b", "unknown node %q", l.B)
		}
		if l.A == l.B {
			return bad(f+".b", "a link from %q to itself", l.A)
		}
		if err := l.IPParams.validate(f); err != nil {
			return err
		}
		links[l.A+"-"+l.B] = true
	}
	tr := sc.Traffic
	switch {
	case tr.Rate < 0:
		return bad("traffic.rate", "%v is negative", tr.Rate)
	case tr.BroadcastRate < 0:
		return bad("traffic.broadcast_rate", "%v is negative", tr.BroadcastRate)
	case tr.Size < 1 || tr.Size > 64<<10:
		return bad("traffic.size", "%d not in 1..65536", tr.Size)
	case tr.Start.Duration < 0:
		return bad("traffic.start", "%v is negative", tr.Start)
	case tr.Stop.Duration < 0 || tr.Stop.Duration != 0 && tr.Stop.Duration < tr.Start.Duration:
		return bad("traffic.stop", "%v is before traffic.start", tr.Stop)
	}
	for i, n := range tr.Senders {
		if !names[n] {
			return bad(fmt.Sprintf("traffic.senders[%d]", i), "unknown node %q", n)
		}
	}
	for i, n := range tr.Destinations {
		if !names[n] {
			return bad(fmt.Sprintf("traffic.destinations[%d]", i), "unknown node %q", n)
		}
	}
	for i, n := range tr.ChannelMembers {
		if !names[n] {
			return bad(fmt.Sprintf("traffic.channel_members[%d]", i), "unknown node %q", n)
		}
	}
	if err := sc.Gossip.validate(); err != nil {
		return err
	}
	if err := tr.validatePattern(names); err != nil {
		return err
	}
	if err := sc.Churn.validate(names); err != nil {
		return err
	}
	if err := sc.FAPP.validate(names); err != nil {
		return err
	}
	for i, d := range sc.Dynamics {
		f := fmt.Sprintf("dynamics[%d]", i)
		if d.At.Duration < 0 {
			return bad(f+".at", "%v is negative", d.At)
		}
		switch d.Action {
		case "partition", "heal":
			if len(d.Links) == 0 || len(d.Nodes) > 0 {
				return bad(f+".links", "%s takes links (and no nodes)", d.Action)
			}
		case "down", "up":
			if len(d.Nodes) == 0 || len(d.Links) > 0 {
				return bad(f+".nodes", "%s takes nodes (and no links)", d.Action)
			}
		default:
			return bad(f+".action", "%q is not partition, heal, down or up", d.Action)
		}
		for j, n := range d.Nodes {
			if !names[n] {
				return bad(fmt.Sprintf("%s.nodes[%d]", f, j), "unknown node %q", n)
			}
		}
		for j, l := range d.Links {
			if !links[l] {
				return bad(fmt.Sprintf("%s.links[%d]", f, j), "%q is not an explicit link (\"a-b\" as in [[links]])", l)
			}
		}
	}
	return nil
}

// validatePattern checks the workload pattern's fields.
func (tr Traffic) validatePattern(names map[string]bool) error {
	dests := len(tr.Destinations)
	if dests == 0 {
		dests = len(names)
	}
	if tr.Pattern != "hotspot" {
		switch {
		case tr.Hotspots != 0:
			return bad("traffic.hotspots", "only with pattern = \"hotspot\"")
		case len(tr.HotspotNodes) > 0:
			return bad("traffic.hotspot_nodes", "only with pattern = \"hotspot\"")
		case tr.HotspotShare != 0:
			return bad("traffic.hotspot_share", "only with pattern = \"hotspot\"")
		}
	}
	if tr.Pattern != "all-to-all" && tr.Rounds != 0 {
		return bad("traffic.rounds", "only with pattern = \"all-to-all\"")
	}
	if tr.Pattern != "local" && tr.LocalRadiusM != 0 {
		return bad("traffic.local_radius_m", "only with pattern = \"local\"")
	}
	switch tr.Pattern {
	case "poisson":
	case "local":
		if !(tr.LocalRadiusM > 0 && tr.LocalRadiusM <= 1e7) {
			return bad("traffic.local_radius_m", "%v not in (0, 10,000,000] metres", tr.LocalRadiusM)
		}
	case "hotspot":
		switch {
		case tr.Hotspots != 0 && len(tr.HotspotNodes) > 0:
			return bad("traffic.hotspots", "give hotspots or hotspot_nodes, not both")
		case tr.Hotspots == 0 && len(tr.HotspotNodes) == 0:
			return bad("traffic.hotspots", "a hotspot workload needs hotspots (how many) or hotspot_nodes (which)")
		case tr.Hotspots < 0 || tr.Hotspots > dests:
			return bad("traffic.hotspots", "%d not in 1..%d (the destinations)", tr.Hotspots, dests)
		case !(tr.HotspotShare > 0 && tr.HotspotShare <= 1):
			return bad("traffic.hotspot_share", "%v not in (0, 1]", tr.HotspotShare)
		}
		seen := map[string]bool{}
		for i, n := range tr.HotspotNodes {
			f := fmt.Sprintf("traffic.hotspot_nodes[%d]", i)
			switch {
			case !names[n]:
				return bad(f, "unknown node %q", n)
			case seen[n]:
				return bad(f, "%q listed twice", n)
			case len(tr.Destinations) > 0 && !slices.Contains(tr.Destinations, n):
				return bad(f, "%q is not one of traffic.destinations", n)
			}
			seen[n] = true
		}
	case "all-to-all":
		switch {
		case tr.Rate <= 0:
			return bad("traffic.rate", "an all-to-all workload needs a positive rate (messages per second per sender)")
		case tr.Rounds < 1 || tr.Rounds > 1000:
			return bad("traffic.rounds", "%d not in 1..1000", tr.Rounds)
		}
	default:
		return bad("traffic.pattern", "%q is not poisson, hotspot, all-to-all or local", tr.Pattern)
	}
	return nil
}

func (g Gossip) validate() error {
	switch {
	case g.MeshDegree < 1 || g.MeshDegree > 1000:
		return bad("gossip.mesh_degree", "%d not in 1..1000", g.MeshDegree)
	case g.MeshDegreeHigh < g.MeshDegree || g.MeshDegreeHigh > 1000:
		return bad("gossip.mesh_degree_high", "%d not in mesh_degree (%d)..1000", g.MeshDegreeHigh, g.MeshDegree)
	case g.FloodPublish != "on" && g.FloodPublish != "off":
		return bad("gossip.flood_publish", "%q is not on or off", g.FloodPublish)
	case g.HopDelay.Duration < 0:
		return bad("gossip.hop_delay", "%v is negative", g.HopDelay)
	case g.Lazy != "on" && g.Lazy != "off":
		return bad("gossip.lazy", "%q is not on or off", g.Lazy)
	case g.LazyDegree < 1 || g.LazyDegree > 1000:
		return bad("gossip.lazy_degree", "%d not in 1..1000", g.LazyDegree)
	case g.Heartbeat.Duration < time.Millisecond:
		return bad("gossip.heartbeat", "%v is under 1ms", g.Heartbeat)
	}
	return nil
}

func (c Churn) validate(names map[string]bool) error {
	if !c.enabled() {
		return nil
	}
	switch {
	case c.MTBF.Duration < time.Second:
		return bad("churn.mtbf", "%v: churn needs a mean time between failures of at least 1s", c.MTBF)
	case c.MTTR.Duration < time.Second:
		return bad("churn.mttr", "%v: churn needs a mean time to repair of at least 1s", c.MTTR)
	case c.Start.Duration < 0:
		return bad("churn.start", "%v is negative", c.Start)
	case c.Stop.Duration < 0 || c.Stop.Duration != 0 && c.Stop.Duration <= c.Start.Duration:
		return bad("churn.stop", "%v is not after churn.start", c.Stop)
	}
	for i, n := range c.Nodes {
		if !names[n] {
			return bad(fmt.Sprintf("churn.nodes[%d]", i), "unknown node %q", n)
		}
	}
	return nil
}

// Marshal writes the resolved scenario (defaults filled in) as TOML.
func (sc *Scenario) Marshal() ([]byte, error) {
	return toml.Marshal(sc)
}
