package sim

import (
	"fmt"
	"image/color"
	"math"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"meshd.dev/meshd/simulations/radio"
)

// runningDelivered is the running delivery ratio at the ends of the bins
// (width each): messages delivered by t over messages sent by t, leaving
// out of both those still in flight at t (sent by t, delivered after it),
// so that the curve does not dip while messages are under way. Messages
// never delivered count from when they were sent.
func (s *Sim) runningDelivered(bins int, width time.Duration, unit time.Duration) plotter.XYs {
	var out plotter.XYs
	for b := 1; b <= bins; b++ {
		t := Epoch.Add(time.Duration(b) * width)
		sent, deliv := 0, 0
		for _, m := range s.msgs {
			if m.sent.After(t) {
				continue
			}
			switch {
			case !m.delivered:
				sent++
			case !m.at.After(t):
				sent++
				deliv++
			}
		}
		if sent > 0 {
			out = append(out, plotter.XY{X: float64(t.Sub(Epoch)) / float64(unit), Y: float64(deliv) / float64(sent)})
		}
	}
	return out
}

// plotCounts: per time bin, the messages sent, the messages (sent then)
// delivered by the end, and the broadcasts sent: the counts behind the
// delivery ratio per bin.
func (s *Sim) plotCounts() (*plot.Plot, error) {
	dur := s.end.Sub(Epoch)
	unit, uname := time.Minute, "min"
	if dur > 3*time.Hour {
		unit, uname = time.Hour, "h"
	}
	const bins = 60
	width := max(dur/bins, 1)
	p := s.newPlot(fmt.Sprintf("messages per %s bin", width.Round(time.Second)), "time ("+uname+")", "count")
	p.X.Min, p.X.Max = 0, float64(dur)/float64(unit)
	p.Y.Min = 0
	sent, deliv, bc := make([]float64, bins), make([]float64, bins), make([]float64, bins)
	for _, m := range s.msgs {
		b := min(int(m.sent.Sub(Epoch)/width), bins-1)
		sent[b]++
		if m.delivered {
			deliv[b]++
		}
	}
	for _, at := range s.bcastAt {
		bc[min(int(at.Sub(Epoch)/width), bins-1)]++
	}
	for i, series := range []struct {
		name string
		v    []float64
		c    color.RGBA
	}{
		{"unicast sent", sent, color.RGBA{B: 200, A: 255}},
		{"unicast delivered (by the end)", deliv, color.RGBA{G: 150, A: 255}},
		{"broadcasts sent", bc, color.RGBA{R: 200, A: 255}},
	} {
		xy := make(plotter.XYs, bins)
		for b := range bins {
			xy[b] = plotter.XY{X: (float64(b) + 0.5) * float64(width) / float64(unit), Y: series.v[b]}
		}
		l, err := plotter.NewLine(xy)
		if err != nil {
			return nil, err
		}
		l.Color = series.c
		if i == 1 {
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		}
		p.Add(l)
		p.Legend.Add(series.name, l)
	}
	p.Legend.Top = true
	return p, nil
}

// dutyLimitLine is the airtime a node may use in the run under the
// sub-band's duty cycle (the hourly limit times the hours run), as a
// horizontal line from x0 to x1; nil without a duty-cycle limit.
func (s *Sim) dutyLimitLine(x0, x1 float64) (*plotter.Line, float64, error) {
	if s.dutyLimit == 0 || s.radioCfg.DutyCycle != "eu868" {
		return nil, 0, nil
	}
	limit := s.dutyLimit.Seconds() * s.end.Sub(Epoch).Hours()
	l, err := plotter.NewLine(plotter.XYs{{X: x0, Y: limit}, {X: x1, Y: limit}})
	if err != nil {
		return nil, 0, err
	}
	l.Color = color.RGBA{R: 220, A: 255}
	l.Dashes = []vg.Length{vg.Points(6), vg.Points(3)}
	return l, limit, nil
}

// addDutyLimit draws the duty-cycle limit on an airtime plot spanning x0
// to x1.
func (s *Sim) addDutyLimit(p *plot.Plot, x0, x1 float64) error {
	l, limit, err := s.dutyLimitLine(x0, x1)
	if err != nil || l == nil {
		return err
	}
	p.Add(l)
	p.Legend.Add(fmt.Sprintf("duty-cycle limit (%.0f s/h of the sub-band)", s.dutyLimit.Seconds()), l)
	p.Legend.Top = true
	p.Y.Max = max(p.Y.Max, limit*1.05)
	return nil
}

// snrColour goes from red (at or below -15 dB) through yellow (0 dB) to
// green (+15 dB and above).
func snrColour(snr float64) color.RGBA { return deliveryColour((snr + 15) / 30) }

// plotRadioLinks: every radio node at its position and every radio link
// (a pair whose mean received power, shadowing included, reaches the
// receiver's threshold) coloured by its SNR; the weaker direction of
// each pair is drawn.
func (s *Sim) plotRadioLinks() (*plot.Plot, error) {
	p := s.newPlot("radio links by SNR", "x (m)", "y (m)")
	p.Title.Text += "\n(red -15 dB or less, yellow 0 dB, green +15 dB or more)"
	if s.medium == nil {
		p.Title.Text += " (no radio nodes)"
		p.X.Min, p.X.Max, p.Y.Min, p.Y.Max = 0, 1, 0, 1
		return p, nil
	}
	model := s.medium.Model()
	type link struct {
		a, b int
		snr  float64
	}
	var links []link
	total := 0
	for i := range s.radioOf {
		nb, err := s.medium.Neighbours(s.radioOf[i].radioID, s.params)
		if err != nil {
			return nil, err
		}
		for _, j := range nb {
			if int(j) <= i {
				continue
			}
			total++
			if len(links) >= maxPlotLinks {
				continue
			}
			ab, _ := s.medium.RxPowerDBm(radio.NodeID(i), j)
			ba, _ := s.medium.RxPowerDBm(j, radio.NodeID(i))
			links = append(links, link{a: i, b: int(j), snr: model.SNRDB(s.params, min(ab, ba))})
		}
	}
	if total > len(links) {
		p.Title.Text += fmt.Sprintf("\n(%d of %d links drawn)", len(links), total)
	}
	// One layer per whole dB of SNR (-15..+15), weakest first.
	layers := make([]segments, 31)
	for k := range layers {
		layers[k].style = draw.LineStyle{Color: snrColour(float64(k - 15)), Width: vg.Points(0.8)}
	}
	for _, l := range links {
		a, b := s.radioOf[l.a], s.radioOf[l.b]
		k := int(math.Round(max(-15, min(15, l.snr)))) + 15
		layers[k].segs = append(layers[k].segs, [4]float64{a.x, a.y, b.x, b.y})
	}
	for _, l := range layers {
		if len(l.segs) > 0 {
			p.Add(l)
		}
	}
	xy := make(plotter.XYs, len(s.radioOf))
	x0, x1, y0, y1 := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for i, n := range s.radioOf {
		xy[i] = plotter.XY{X: n.x, Y: n.y}
		x0, x1, y0, y1 = min(x0, n.x), max(x1, n.x), min(y0, n.y), max(y1, n.y)
	}
	sc, err := plotter.NewScatter(xy)
	if err != nil {
		return nil, err
	}
	sc.GlyphStyle = draw.GlyphStyle{Radius: vg.Points(1.5), Shape: draw.CircleGlyph{}, Color: color.Gray{Y: 60}}
	p.Add(sc)
	span := max(x1-x0, y1-y0, 1) * 1.1
	cx, cy := (x0+x1)/2, (y0+y1)/2
	p.X.Min, p.X.Max = cx-span/2, cx+span/2
	p.Y.Min, p.Y.Max = cy-span/2, cy+span/2
	return p, nil
}
