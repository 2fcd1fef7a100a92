package sim

import (
	"errors"
	"fmt"
	"strconv"
)

// GMLGraph is a graph read from GML (Graph Modelling Language, Himsolt
// 1996), as exported by networkx, igraph, Gephi and the Internet Topology
// Zoo.
type GMLGraph struct {
	Directed bool
	Nodes    []GMLNode
	Edges    []GMLEdge
}

// GMLNode is one node: its id, optional label and optional position
// (graphics [ x X y Y ]).
type GMLNode struct {
	ID    int64
	Label string
	X, Y  *float64
	Line  int
}

// GMLEdge is one edge between node ids.
type GMLEdge struct {
	Source, Target int64
	Line           int
}

// ErrGML reports a GML document that cannot be read; the message names the
// line.
var ErrGML = errors.New("gml")

// maxGMLDepth bounds the nesting of lists.
const maxGMLDepth = 32

// ParseGML reads a GML document strictly: the syntax (key value pairs; a
// value is an integer, a real, a "string" or a [ list ]; # starts a comment
// to the end of the line), exactly one top-level graph, every node with
// exactly one integer id (unique), at most one string label (unique), at
// most one position, every edge with exactly one integer source and target
// naming nodes of the graph, no self-loops and no edge twice (in either
// direction). Other keys (Creator, directed, Longitude, ...) are read and
// ignored. Every error names the line.
func ParseGML(doc []byte) (*GMLGraph, error) {
	p := &gmlParser{doc: doc, line: 1}
	top, err := p.list(0, false)
	if err != nil {
		return nil, err
	}
	var graph *gmlValue
	for i := range top {
		if top[i].key == "graph" {
			if graph != nil {
				return nil, p.errAt(top[i].line, "a second graph (one graph per file)")
			}
			if top[i].list == nil && !top[i].isList {
				return nil, p.errAt(top[i].line, "graph is not a [ list ]")
			}
			graph = &top[i]
		}
	}
	if graph == nil {
		return nil, p.errAt(p.line, "no graph [ ... ] in the document")
	}
	g := &GMLGraph{}
	ids := map[int64]int{}
	labels := map[string]int{}
	type pair struct{ a, b int64 }
	edges := map[pair]int{}
	for _, kv := range graph.list {
		switch kv.key {
		case "directed":
			if kv.kind != gmlInt || (kv.i != 0 && kv.i != 1) {
				return nil, p.errAt(kv.line, "directed must be 0 or 1")
			}
			g.Directed = kv.i == 1
		case "node":
			if !kv.isList {
				return nil, p.errAt(kv.line, "node is not a [ list ]")
			}
			n, err := p.node(kv)
			if err != nil {
				return nil, err
			}
			if l, dup := ids[n.ID]; dup {
				return nil, p.errAt(n.Line, "node id %d already used on line %d", n.ID, l)
			}
			ids[n.ID] = n.Line
			if n.Label != "" {
				if l, dup := labels[n.Label]; dup {
					return nil, p.errAt(n.Line, "node label %q already used on line %d", n.Label, l)
				}
				labels[n.Label] = n.Line
			}
			g.Nodes = append(g.Nodes, n)
		case "edge":
			if !kv.isList {
				return nil, p.errAt(kv.line, "edge is not a [ list ]")
			}
			e, err := p.edge(kv)
			if err != nil {
				return nil, err
			}
			g.Edges = append(g.Edges, e)
		}
	}
	for _, e := range g.Edges {
		for _, end := range []struct {
			name string
			id   int64
		}{{"source", e.Source}, {"target", e.Target}} {
			if _, ok := ids[end.id]; !ok {
				return nil, p.errAt(e.Line, "edge %s %d: no node has that id", end.name, end.id)
			}
		}
		if e.Source == e.Target {
			return nil, p.errAt(e.Line, "edge from node %d to itself", e.Source)
		}
		k := pair{min(e.Source, e.Target), max(e.Source, e.Target)}
		if l, dup := edges[k]; dup {
			return nil, p.errAt(e.Line, "edge between %d and %d already given on line %d", e.Source, e.Target, l)
		}
		edges[k] = e.Line
	}
	return g, nil
}

type gmlKind uint8

const (
	gmlInt gmlKind = iota + 1
	gmlReal
	gmlString
	gmlList
)

type gmlValue struct {
	key    string
	line   int
	kind   gmlKind
	i      int64
	f      float64
	s      string
	list   []gmlValue
	isList bool
}

type gmlParser struct {
	doc  []byte
	pos  int
	line int
}

func (p *gmlParser) errAt(line int, format string, args ...any) error {
	return fmt.Errorf("%w: line %d: %s", ErrGML, line, fmt.Sprintf(format, args...))
}

// skip moves past white space and comments.
func (p *gmlParser) skip() {
	for p.pos < len(p.doc) {
		switch c := p.doc[p.pos]; {
		case c == '\n':
			p.line++
			p.pos++
		case c == ' ' || c == '\t' || c == '\r':
			p.pos++
		case c == '#':
			for p.pos < len(p.doc) && p.doc[p.pos] != '\n' {
				p.pos++
			}
		default:
			return
		}
	}
}

func isKeyStart(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' }
func isKeyByte(c byte) bool  { return isKeyStart(c) || c >= '0' && c <= '9' }

// list reads key value pairs until the end of the document (top level) or
// the closing bracket (nested).
func (p *gmlParser) list(depth int, nested bool) ([]gmlValue, error) {
	if depth > maxGMLDepth {
		return nil, p.errAt(p.line, "lists nested more than %d deep", maxGMLDepth)
	}
	var out []gmlValue
	for {
		p.skip()
		if p.pos >= len(p.doc) {
			if nested {
				return nil, p.errAt(p.line, "unexpected end of the document: a [ is not closed")
			}
			return out, nil
		}
		c := p.doc[p.pos]
		if c == ']' {
			if !nested {
				return nil, p.errAt(p.line, "] without a matching [")
			}
			p.pos++
			return out, nil
		}
		if !isKeyStart(c) {
			return nil, p.errAt(p.line, "expected a key, found %q", string(rune(c)))
		}
		start := p.pos
		for p.pos < len(p.doc) && isKeyByte(p.doc[p.pos]) {
			p.pos++
		}
		kv := gmlValue{key: string(p.doc[start:p.pos]), line: p.line}
		p.skip()
		if p.pos >= len(p.doc) {
			return nil, p.errAt(kv.line, "key %s has no value", kv.key)
		}
		switch c := p.doc[p.pos]; {
		case c == '[':
			p.pos++
			l, err := p.list(depth+1, true)
			if err != nil {
				return nil, err
			}
			kv.kind, kv.list, kv.isList = gmlList, l, true
		case c == '"':
			p.pos++
			s := p.pos
			for p.pos < len(p.doc) && p.doc[p.pos] != '"' {
				if p.doc[p.pos] == '\n' {
					p.line++
				}
				p.pos++
			}
			if p.pos >= len(p.doc) {
				return nil, p.errAt(kv.line, "the string of key %s is not closed", kv.key)
			}
			kv.kind, kv.s = gmlString, string(p.doc[s:p.pos])
			p.pos++
		case c == '-' || c == '+' || c == '.' || c >= '0' && c <= '9':
			s := p.pos
			for p.pos < len(p.doc) && !isSpaceOrBracket(p.doc[p.pos]) {
				p.pos++
			}
			tok := string(p.doc[s:p.pos])
			if i, err := strconv.ParseInt(tok, 10, 64); err == nil {
				kv.kind, kv.i, kv.f = gmlInt, i, float64(i)
			} else if f, err := strconv.ParseFloat(tok, 64); err == nil && !isNonFinite(f) && validReal(tok) {
				kv.kind, kv.f = gmlReal, f
			} else {
				return nil, p.errAt(kv.line, "key %s: %q is not a number", kv.key, tok)
			}
		default:
			return nil, p.errAt(kv.line, "key %s: expected a number, a \"string\" or a [ list ], found %q", kv.key, string(rune(c)))
		}
		out = append(out, kv)
	}
}

func isSpaceOrBracket(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '[' || c == ']' || c == '#' || c == '"'
}

func isNonFinite(f float64) bool {
	return f != f || f > 1.7976931348623157e308 || f < -1.7976931348623157e308
}

// validReal accepts the GML real syntax: sign, digits, a point, digits,
// an exponent (no hex floats, no "inf", no underscores).
func validReal(tok string) bool {
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if !(c >= '0' && c <= '9' || c == '.' || c == '-' || c == '+' || c == 'e' || c == 'E') {
			return false
		}
	}
	return true
}

// node reads a node [ ... ] list.
func (p *gmlParser) node(kv gmlValue) (GMLNode, error) {
	n := GMLNode{Line: kv.line}
	var hasID, hasLabel, hasPos bool
	for _, f := range kv.list {
		switch f.key {
		case "id":
			if hasID {
				return n, p.errAt(f.line, "node has a second id")
			}
			if f.kind != gmlInt {
				return n, p.errAt(f.line, "node id is not an integer")
			}
			n.ID, hasID = f.i, true
		case "label":
			if hasLabel {
				return n, p.errAt(f.line, "node has a second label")
			}
			if f.kind != gmlString {
				return n, p.errAt(f.line, "node label is not a \"string\"")
			}
			if f.s == "" {
				return n, p.errAt(f.line, "node label is empty")
			}
			n.Label, hasLabel = f.s, true
		case "graphics":
			if !f.isList {
				return n, p.errAt(f.line, "graphics is not a [ list ]")
			}
			for _, g := range f.list {
				if g.key != "x" && g.key != "y" {
					continue
				}
				if g.kind != gmlInt && g.kind != gmlReal {
					return n, p.errAt(g.line, "graphics %s is not a number", g.key)
				}
				v := g.f
				dst := &n.X
				if g.key == "y" {
					dst = &n.Y
				}
				if *dst != nil {
					return n, p.errAt(g.line, "node has a second %s", g.key)
				}
				*dst = &v
			}
			if hasPos {
				return n, p.errAt(f.line, "node has a second graphics")
			}
			hasPos = true
			if (n.X == nil) != (n.Y == nil) {
				return n, p.errAt(f.line, "graphics has x or y but not both")
			}
		}
	}
	if !hasID {
		return n, p.errAt(kv.line, "node without an id")
	}
	return n, nil
}

// edge reads an edge [ ... ] list.
func (p *gmlParser) edge(kv gmlValue) (GMLEdge, error) {
	e := GMLEdge{Line: kv.line}
	var hasS, hasT bool
	for _, f := range kv.list {
		var dst *int64
		var has *bool
		switch f.key {
		case "source":
			dst, has = &e.Source, &hasS
		case "target":
			dst, has = &e.Target, &hasT
		default:
			continue
		}
		if *has {
			return e, p.errAt(f.line, "edge has a second %s", f.key)
		}
		if f.kind != gmlInt {
			return e, p.errAt(f.line, "edge %s is not an integer node id", f.key)
		}
		*dst, *has = f.i, true
	}
	switch {
	case !hasS:
		return e, p.errAt(kv.line, "edge without a source")
	case !hasT:
		return e, p.errAt(kv.line, "edge without a target")
	}
	return e, nil
}
