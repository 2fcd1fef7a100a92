package rnode

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"

	"meshd.dev/meshd/internal/tomlerr"
)

// ErrLayout reports an unusable layout file or --node flag.
var ErrLayout = errors.New("rnode: invalid layout")

// maxModems bounds a layout: every modem is a pseudo-terminal.
const maxModems = 256

// ParseLayout reads modem positions from a layout file: TOML
//
//	[[modem]]
//	name = "A"
//	x = 0.0           # metres
//	y = 0.0
//	tx_power_dbm = 17 # optional
//	gain_dbi = 0      # optional
//
// or, when csv is true, CSV rows "name,x,y[,tx_power_dbm[,gain_dbi]]" with
// an optional header row starting with "name".
func ParseLayout(doc []byte, csv bool) ([]NodeConfig, error) {
	var nodes []NodeConfig
	var err error
	if csv {
		nodes, err = parseCSVLayout(doc)
	} else {
		nodes, err = parseTOMLLayout(doc)
	}
	if err != nil {
		return nil, err
	}
	return nodes, ValidateLayout(nodes)
}

func parseTOMLLayout(doc []byte) ([]NodeConfig, error) {
	var f struct {
		Modem []struct {
			Name       string  `toml:"name"`
			X          float64 `toml:"x"`
			Y          float64 `toml:"y"`
			TxPowerDBm float64 `toml:"tx_power_dbm"`
			GainDBi    float64 `toml:"gain_dbi"`
		} `toml:"modem"`
	}
	dec := toml.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrLayout, tomlerr.Describe(err))
	}
	nodes := make([]NodeConfig, 0, len(f.Modem))
	for _, m := range f.Modem {
		nodes = append(nodes, NodeConfig{Name: m.Name, X: m.X, Y: m.Y, TxPowerDBm: m.TxPowerDBm, GainDBi: m.GainDBi})
	}
	return nodes, nil
}

func parseCSVLayout(doc []byte) ([]NodeConfig, error) {
	r := csv.NewReader(bytes.NewReader(doc))
	r.FieldsPerRecord = -1
	r.Comment = '#'
	var nodes []NodeConfig
	for line := 1; ; line++ {
		rec, err := r.Read()
		if err == io.EOF {
			return nodes, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrLayout, err)
		}
		if line == 1 && strings.EqualFold(strings.TrimSpace(rec[0]), "name") {
			continue
		}
		n, err := ParseNode(strings.Join(rec, ","))
		if err != nil {
			return nil, fmt.Errorf("CSV row %d: %w", line, err)
		}
		nodes = append(nodes, n)
		if len(nodes) > maxModems {
			return nil, fmt.Errorf("%w: more than %d modems", ErrLayout, maxModems)
		}
	}
}

// ParseNode parses "NAME,X,Y[,TX_POWER_DBM[,GAIN_DBI]]" (also
// "NAME=X,Y,..."), as the --node flag takes it.
func ParseNode(s string) (NodeConfig, error) {
	s = strings.Replace(s, "=", ",", 1)
	f := strings.Split(s, ",")
	if len(f) < 3 || len(f) > 5 {
		return NodeConfig{}, fmt.Errorf("%w: %q: want NAME,X,Y[,TX_POWER_DBM[,GAIN_DBI]]", ErrLayout, s)
	}
	n := NodeConfig{Name: strings.TrimSpace(f[0])}
	vals := []*float64{&n.X, &n.Y, &n.TxPowerDBm, &n.GainDBi}
	for i, v := range f[1:] {
		x, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			return NodeConfig{}, fmt.Errorf("%w: %q: %q is not a number", ErrLayout, s, v)
		}
		*vals[i] = x
	}
	return n, nil
}

// ValidateLayout checks names (non-empty, unique, usable as file names)
// and numbers (finite; power 0 means the default 17 dBm).
func ValidateLayout(nodes []NodeConfig) error {
	if len(nodes) == 0 {
		return fmt.Errorf("%w: no modems", ErrLayout)
	}
	if len(nodes) > maxModems {
		return fmt.Errorf("%w: %d modems, at most %d", ErrLayout, len(nodes), maxModems)
	}
	seen := map[string]bool{}
	for i, n := range nodes {
		switch {
		case n.Name == "" || n.Name == "." || n.Name == ".." || strings.ContainsAny(n.Name, "/\x00 \t\n") || len(n.Name) > 64:
			return fmt.Errorf("%w: modem %d: name %q must be 1-64 characters, no slash or space", ErrLayout, i, n.Name)
		case seen[n.Name]:
			return fmt.Errorf("%w: two modems named %q", ErrLayout, n.Name)
		}
		for _, v := range []float64{n.X, n.Y, n.TxPowerDBm, n.GainDBi} {
			if math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > 1e9 {
				return fmt.Errorf("%w: modem %q: %v is not a usable number", ErrLayout, n.Name, v)
			}
		}
		seen[n.Name] = true
	}
	return nil
}
