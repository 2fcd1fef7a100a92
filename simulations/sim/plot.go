package sim

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Plots are the figures WritePlots writes, each as NAME.png and NAME.svg.
var Plots = []string{"delivery_ratio", "latency_cdf", "airtime", "topology", "message_counts", "radio_links"}

// maxPlotLinks bounds the links the topology figure draws (more would make
// an unreadable, very large SVG); the title says when they are left out.
const maxPlotLinks = 20000

// WritePlots writes the run's figures into dir, as PNG and SVG: the
// delivery ratio over time, the latency CDF, the airtime per radio node and
// the topology coloured by delivery ratio.
func (s *Sim) WritePlots(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		make func() (*plot.Plot, error)
	}{
		{"delivery_ratio", s.plotDelivery},
		{"latency_cdf", s.plotLatency},
		{"airtime", s.plotAirtime},
		{"topology", s.plotTopology},
		{"message_counts", s.plotCounts},
		{"radio_links", s.plotRadioLinks},
	} {
		p, err := f.make()
		if err != nil {
			return fmt.Errorf("plot %s: %w", f.name, err)
		}
		w, h := 7*vg.Inch, 4.5*vg.Inch
		if f.name == "topology" || f.name == "radio_links" {
			w, h = 7*vg.Inch, 7*vg.Inch
		}
		for _, ext := range []string{".png", ".svg"} {
			if err := p.Save(w, h, filepath.Join(dir, f.name+ext)); err != nil {
				return fmt.Errorf("plot %s: %w", f.name, err)
			}
		}
	}
	return nil
}

func (s *Sim) newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	if s.sc.Name != "" {
		p.Title.Text = s.sc.Name + ": " + title
	}
	p.X.Label.Text = x
	p.Y.Label.Text = y
	p.Add(plotter.NewGrid())
	return p
}

// plotDelivery: per time bin, the share of the messages sent in it that
// were delivered (by the end of the run), and the running ratio of
// messages delivered so far to messages sent so far.
func (s *Sim) plotDelivery() (*plot.Plot, error) {
	dur := s.end.Sub(Epoch)
	unit, uname := time.Minute, "min"
	if dur > 3*time.Hour {
		unit, uname = time.Hour, "h"
	}
	p := s.newPlot("delivery ratio over time", "time ("+uname+")", "delivery ratio")
	p.Y.Min, p.Y.Max = 0, 1.05
	p.X.Min, p.X.Max = 0, float64(dur)/float64(unit)
	if len(s.msgs) == 0 {
		p.Title.Text += " (no messages)"
		return p, nil
	}
	const bins = 60
	width := dur / bins
	sent, deliv := make([]int, bins), make([]int, bins)
	for _, m := range s.msgs {
		b := min(int(m.sent.Sub(Epoch)/max(width, 1)), bins-1)
		sent[b]++
		if m.delivered {
			deliv[b]++
		}
	}
	var perBin plotter.XYs
	for b := range bins {
		if sent[b] > 0 {
			mid := time.Duration(b)*width + width/2
			perBin = append(perBin, plotter.XY{X: float64(mid) / float64(unit), Y: float64(deliv[b]) / float64(sent[b])})
		}
	}
	running := s.runningDelivered(bins, width, unit)
	l1, pts, err := plotter.NewLinePoints(perBin)
	if err != nil {
		return nil, err
	}
	l1.Color, pts.Color = color.RGBA{B: 200, A: 255}, color.RGBA{B: 200, A: 255}
	l2, err := plotter.NewLine(running)
	if err != nil {
		return nil, err
	}
	l2.Color = color.RGBA{R: 200, A: 255}
	l2.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	p.Add(l1, pts, l2)
	p.Legend.Add("sent in the interval, delivered by the end", l1, pts)
	p.Legend.Add("delivered so far / sent so far (not counting those in flight)", l2)
	p.Legend.Top = false
	return p, nil
}

// plotLatency: the empirical CDF of the delivered messages' latencies.
func (s *Sim) plotLatency() (*plot.Plot, error) {
	p := s.newPlot("latency CDF", "latency (s, log scale)", "share of delivered messages")
	var lat []float64
	for _, m := range s.msgs {
		if m.delivered {
			lat = append(lat, m.at.Sub(m.sent).Seconds())
		}
	}
	p.Y.Min, p.Y.Max = 0, 1
	if len(lat) == 0 {
		p.Title.Text += " (no deliveries)"
		p.X.Min, p.X.Max = 0, 1
		return p, nil
	}
	// A log scale needs positive values: below a millisecond is drawn at
	// a millisecond.
	for i := range lat {
		lat[i] = max(lat[i], 1e-3)
	}
	slices.Sort(lat)
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	xy := make(plotter.XYs, 0, 2*len(lat)+1)
	xy = append(xy, plotter.XY{X: lat[0], Y: 0})
	for i, v := range lat {
		xy = append(xy, plotter.XY{X: v, Y: float64(i) / float64(len(lat))}, plotter.XY{X: v, Y: float64(i+1) / float64(len(lat))})
	}
	l, err := plotter.NewLine(xy)
	if err != nil {
		return nil, err
	}
	l.Color = color.RGBA{B: 200, A: 255}
	p.Add(l)
	p.X.Min, p.X.Max = lat[0], max(lat[len(lat)-1], lat[0]*10)
	return p, nil
}

// plotAirtime: the airtime of every radio node, as bars with names for up
// to 60 nodes, otherwise ranked from the busiest, with the duty-cycle
// limit over the run as a dashed red line.
func (s *Sim) plotAirtime() (*plot.Plot, error) {
	var names []string
	var vals plotter.Values
	for _, n := range s.radioOf {
		names = append(names, n.name)
		vals = append(vals, n.stats.Airtime.Seconds())
	}
	if len(vals) == 0 {
		p := s.newPlot("airtime per node (no radio nodes)", "node", "airtime (s)")
		p.X.Min, p.X.Max, p.Y.Min, p.Y.Max = 0, 1, 0, 1
		return p, nil
	}
	if len(vals) <= 60 {
		p := s.newPlot("airtime per node", "", "airtime (s)")
		b, err := plotter.NewBarChart(vals, vg.Points(max(2, 300/float64(len(vals)))))
		if err != nil {
			return nil, err
		}
		b.Color = color.RGBA{B: 180, G: 90, A: 255}
		p.Add(b)
		p.NominalX(names...)
		p.X.Tick.Label.Rotation = math.Pi / 2
		p.X.Tick.Label.XAlign = draw.XRight
		p.X.Tick.Label.YAlign = draw.YCenter
		return p, s.addDutyLimit(p, -0.5, float64(len(vals))-0.5)
	}
	slices.SortFunc(vals, func(a, b float64) int { return -cmpFloat(a, b) })
	p := s.newPlot(fmt.Sprintf("airtime per node (%d radio nodes, busiest first)", len(vals)), "rank", "airtime (s)")
	xy := make(plotter.XYs, len(vals))
	for i, v := range vals {
		xy[i] = plotter.XY{X: float64(i + 1), Y: v}
	}
	l, err := plotter.NewLine(xy)
	if err != nil {
		return nil, err
	}
	l.Color = color.RGBA{B: 180, G: 90, A: 255}
	p.Add(l)
	p.Y.Min = 0
	return p, s.addDutyLimit(p, 1, float64(len(vals)))
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// deliveryColour goes from red (0) through yellow to green (1).
func deliveryColour(r float64) color.RGBA {
	r = max(0, min(1, r))
	if r < 0.5 {
		return color.RGBA{R: 220, G: uint8(440 * r), A: 255}
	}
	return color.RGBA{R: uint8(220 * (1 - r) * 2), G: 200, A: 255}
}

// segments draws line segments (the IP links) in data coordinates.
type segments struct {
	segs  [][4]float64
	style draw.LineStyle
}

func (sg segments) Plot(c draw.Canvas, plt *plot.Plot) {
	trX, trY := plt.Transforms(&c)
	for _, s := range sg.segs {
		c.StrokeLine2(sg.style, trX(s[0]), trY(s[1]), trX(s[2]), trY(s[3]))
	}
}

// plotTopology: every node at its position (nodes without one, such as a
// Barabasi-Albert overlay, on a circle around the others), IP links as grey
// lines, nodes coloured by the delivery ratio of the messages addressed to
// them (grey: none); radio nodes round, IP-only nodes square.
func (s *Sim) plotTopology() (*plot.Plot, error) {
	p := s.newPlot("topology by delivery ratio to the node", "x (m)", "y (m)")
	p.Title.Text += "\n(red 0, yellow 0.5, green 1, grey: no messages; round: radio, square: IP only)"
	pos := make([][2]float64, len(s.nodes))
	minX, minY, maxX, maxY := math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)
	var unplaced []int
	for i, n := range s.nodes {
		if !n.hasPos {
			unplaced = append(unplaced, i)
			continue
		}
		pos[i] = [2]float64{n.x, n.y}
		minX, maxX = min(minX, n.x), max(maxX, n.x)
		minY, maxY = min(minY, n.y), max(maxY, n.y)
	}
	if len(unplaced) > 0 {
		p.Title.Text += fmt.Sprintf("\n(%d nodes without a position placed on a circle)", len(unplaced))
		cx, cy, r := 0.0, 0.0, 1000.0
		if len(unplaced) < len(s.nodes) {
			cx, cy = (minX+maxX)/2, (minY+maxY)/2
			r = max(100, 0.6*math.Hypot(maxX-minX, maxY-minY))
		}
		for k, i := range unplaced {
			a := 2 * math.Pi * float64(k) / float64(len(unplaced))
			pos[i] = [2]float64{cx + r*math.Cos(a), cy + r*math.Sin(a)}
		}
	}
	if len(s.links) <= maxPlotLinks {
		sg := segments{style: draw.LineStyle{Color: color.Gray{Y: 170}, Width: vg.Points(0.4)}}
		for _, l := range s.links {
			a, b := pos[l.a.idx], pos[l.b.idx]
			sg.segs = append(sg.segs, [4]float64{a[0], a[1], b[0], b[1]})
		}
		p.Add(sg)
	} else {
		p.Title.Text += fmt.Sprintf("\n(%d IP links not drawn)", len(s.links))
	}
	to, ok := make([]int, len(s.nodes)), make([]int, len(s.nodes))
	for _, m := range s.msgs {
		to[m.dst.idx]++
		if m.delivered {
			ok[m.dst.idx]++
		}
	}
	xy := make(plotter.XYs, len(s.nodes))
	for i := range s.nodes {
		xy[i] = plotter.XY{X: pos[i][0], Y: pos[i][1]}
	}
	sc, err := plotter.NewScatter(xy)
	if err != nil {
		return nil, err
	}
	radius := vg.Points(3)
	switch {
	case len(s.nodes) > 5000:
		radius = vg.Points(0.8)
	case len(s.nodes) > 500:
		radius = vg.Points(1.5)
	}
	sc.GlyphStyleFunc = func(i int) draw.GlyphStyle {
		g := draw.GlyphStyle{Radius: radius, Shape: draw.CircleGlyph{}, Color: color.Gray{Y: 150}}
		if s.nodes[i].radioID < 0 {
			g.Shape = draw.BoxGlyph{}
		}
		if to[i] > 0 {
			g.Color = deliveryColour(float64(ok[i]) / float64(to[i]))
		}
		return g
	}
	p.Add(sc)
	if len(s.nodes) <= 40 {
		labels, err := plotter.NewLabels(plotter.XYLabels{XYs: xy, Labels: nodeNames(s.nodes)})
		if err == nil {
			for i := range labels.TextStyle {
				labels.TextStyle[i].Font.Size = vg.Points(7)
				labels.TextStyle[i].XAlign = draw.XCenter
			}
			labels.Offset = vg.Point{Y: radius + vg.Points(2)}
			p.Add(labels)
		}
	}
	// Equal scales on both axes, with a margin.
	x0, x1, y0, y1 := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, q := range pos {
		x0, x1 = min(x0, q[0]), max(x1, q[0])
		y0, y1 = min(y0, q[1]), max(y1, q[1])
	}
	span := max(x1-x0, y1-y0, 1) * 1.1
	cx, cy := (x0+x1)/2, (y0+y1)/2
	p.X.Min, p.X.Max = cx-span/2, cx+span/2
	p.Y.Min, p.Y.Max = cy-span/2, cy+span/2
	return p, nil
}

func nodeNames(ns []*node) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.name
	}
	return out
}
