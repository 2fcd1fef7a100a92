package sim

import (
	"bytes"
	"encoding/xml"
	"errors"
	"image"
	_ "image/png"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// checkPlots: every figure exists as a PNG that decodes and an SVG that is
// well-formed XML with an svg root.
func checkPlots(t *testing.T, dir string) {
	t.Helper()
	for _, name := range Plots {
		b, err := os.ReadFile(filepath.Join(dir, name+".png"))
		if err != nil {
			t.Fatal(err)
		}
		img, format, err := image.Decode(bytes.NewReader(b))
		if err != nil || format != "png" || img.Bounds().Dx() < 100 {
			t.Fatalf("%s.png: %v, format %q", name, err, format)
		}
		svg, err := os.ReadFile(filepath.Join(dir, name+".svg"))
		if err != nil {
			t.Fatal(err)
		}
		dec := xml.NewDecoder(bytes.NewReader(svg))
		root := ""
		for {
			tok, err := dec.Token()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s.svg: %v", name, err)
			}
			if se, ok := tok.(xml.StartElement); ok && root == "" {
				root = se.Name.Local
			}
		}
		if root != "svg" {
			t.Fatalf("%s.svg: root element %q", name, root)
		}
	}
}

func TestWritePlots(t *testing.T) {
	for _, tc := range []struct {
		name string
		sc   *Scenario
	}{
		{"small", load(t, "testdata/small.toml")},
		// No positions (a Barabasi-Albert overlay), no radio, no messages.
		{"ba", parse(t, "seed = 1\nduration = \"1m\"\n[[topology]]\nkind = \"ba\"\nn = 30\nm = 2\nlink = \"ip\"\n")},
		// More than 60 radio nodes: airtime ranked.
		{"radio", parse(t, "seed = 1\nduration = \"3m\"\n[radio]\nfrequency_hz = 869525000\n[[topology]]\nkind = \"random\"\nn = 80\nlink = \"lora\"\nwidth = 2000.0\nheight = 2000.0\n")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := runScenario(t, tc.sc, nil)
			dir := t.TempDir()
			if err := s.WritePlots(dir); err != nil {
				t.Fatal(err)
			}
			checkPlots(t, dir)
		})
	}
}
