package sim

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// badAt is bad for a key of doc, with the line and column where doc sets
// it (when it does: a default has no position), or naming the --set that
// set it.
func badAt(doc []byte, sets []string, key, format string, args ...any) error {
	for _, st := range slices.Backward(sets) {
		if k, _, _ := strings.Cut(st, "="); strings.TrimSpace(k) == key {
			return fmt.Errorf("%w: --set %s: %s", ErrScenario, st, fmt.Sprintf(format, args...))
		}
	}
	if l, c, ok := keyPosition(doc, key); ok {
		return fmt.Errorf("%w: line %d, column %d: %s: %s", ErrScenario, l, c, key, fmt.Sprintf(format, args...))
	}
	return bad(key, format, args...)
}

// keyPosition finds where doc sets the dotted key (in a [table] or with a
// dotted key), as 1-based line and column.
func keyPosition(doc []byte, key string) (line, col int, ok bool) {
	p := unstable.Parser{}
	p.Reset(doc)
	var table []string
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table:
			table = keyParts(e.Key())
		case unstable.ArrayTable:
			table = nil // array tables hold no baseline keys
		case unstable.KeyValue:
			k := e.Key()
			parts := append(append([]string(nil), table...), keyParts(k)...)
			if strings.Join(parts, ".") != key {
				continue
			}
			k = e.Key()
			k.Next()
			sh := p.Shape(k.Node().Raw)
			return sh.Start.Line, sh.Start.Column, true
		}
	}
	return 0, 0, false
}

func keyParts(it unstable.Iterator) []string {
	var out []string
	for it.Next() {
		out = append(out, string(bytes.Clone(it.Node().Data)))
	}
	return out
}
