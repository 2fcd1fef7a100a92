package sim

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// keyPos is where a scenario document sets a key, 1-based.
type keyPos struct{ line, col int }

func (p keyPos) String() string { return fmt.Sprintf("line %d, column %d", p.line, p.col) }

// keyPositions maps the dotted keys doc sets ("radio.propagation.model",
// "nodes.2.height_m" for the third [[nodes]] entry) to where they start,
// so that validation errors can point at the key. It is the one index of
// key positions for every validation (radio models, channels, baselines).
// Keys inside inline tables are not indexed (their errors name the key
// only); of a key set twice (a parse error the decoder reports) the first
// is kept.
func keyPositions(doc []byte) map[string]keyPos {
	pos := map[string]keyPos{}
	var p unstable.Parser
	p.Reset(doc)
	var prefix []string
	arrays := map[string]int{}
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table:
			prefix = keyParts(e.Key())
		case unstable.ArrayTable:
			k := keyParts(e.Key())
			name := strings.Join(k, ".")
			prefix = append(k, strconv.Itoa(arrays[name]))
			arrays[name]++
		case unstable.KeyValue:
			it := e.Key()
			if !it.Next() {
				continue
			}
			// The first part's Raw range covers the key as written (with
			// its quotes), so the column is where the key starts.
			sh := p.Shape(it.Node().Raw)
			key := strings.Join(append(slices.Clone(prefix), keyParts(e.Key())...), ".")
			if _, dup := pos[key]; !dup {
				pos[key] = keyPos{sh.Start.Line, sh.Start.Column}
			}
		}
	}
	return pos // a parse error was reported by the decoder already
}

// badAt is bad for a key of doc, with the line and column where doc sets
// it (when it does: a default has no position), or naming the --set that
// set it.
func badAt(doc []byte, sets []string, key, format string, args ...any) error {
	for _, st := range slices.Backward(sets) {
		if k, _, _ := strings.Cut(st, "="); strings.TrimSpace(k) == key {
			return fmt.Errorf("%w: --set %s: %s", ErrScenario, st, fmt.Sprintf(format, args...))
		}
	}
	return radioBad(keyPositions(doc), key, format, args...)
}

func keyParts(it unstable.Iterator) []string {
	var out []string
	for it.Next() {
		out = append(out, string(bytes.Clone(it.Node().Data)))
	}
	return out
}
