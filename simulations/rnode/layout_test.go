package rnode

import (
	"errors"
	"testing"
)

func TestParseLayout(t *testing.T) {
	toml := []byte("[[modem]]\nname = \"A\"\nx = 0\ny = 0\n\n[[modem]]\nname = \"B\"\nx = 150.5\ny = -3\ntx_power_dbm = 14\n")
	nodes, err := ParseLayout(toml, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 2 || nodes[1] != (NodeConfig{Name: "B", X: 150.5, Y: -3, TxPowerDBm: 14}) {
		t.Fatalf("got %+v", nodes)
	}
	csv := []byte("name,x,y,tx_power_dbm\n# a comment\nA,0,0\nB,150.5,-3,14\n")
	if got, err := ParseLayout(csv, true); err != nil || len(got) != 2 || got[1] != nodes[1] {
		t.Fatalf("CSV: %+v, %v", got, err)
	}
	for _, bad := range []struct {
		doc string
		csv bool
	}{
		{"[[modem]]\nname = \"A\"\nz = 1\n", false},                   // unknown key
		{"[[modem]]\nname = \"A\"\n[[modem]]\nname = \"A\"\n", false}, // duplicate
		{"", false},             // empty
		{"A,1\n", true},         // too few fields
		{"A,x,1\n", true},       // not a number
		{"A,NaN,1\n", true},     // not finite
		{"../A,1,1\n", true},    // a path
		{"A,1,1,1,1,1\n", true}, // too many
	} {
		if _, err := ParseLayout([]byte(bad.doc), bad.csv); !errors.Is(err, ErrLayout) {
			t.Errorf("%q: got %v, want ErrLayout", bad.doc, err)
		}
	}
	if n, err := ParseNode("C=1,2"); err != nil || n != (NodeConfig{Name: "C", X: 1, Y: 2}) {
		t.Errorf("ParseNode: %+v, %v", n, err)
	}
}

func FuzzParseLayout(f *testing.F) {
	f.Add([]byte("[[modem]]\nname = \"A\"\nx = 1\ny = 2\n"), false)
	f.Add([]byte("name,x,y\nA,1,2,17,2\n"), true)
	f.Fuzz(func(t *testing.T, doc []byte, csv bool) {
		nodes, err := ParseLayout(doc, csv)
		if err != nil {
			if !errors.Is(err, ErrLayout) {
				t.Fatalf("error %v does not wrap ErrLayout", err)
			}
			return
		}
		if err := ValidateLayout(nodes); err != nil {
			t.Fatalf("accepted an invalid layout: %v", err)
		}
	})
}
