package archtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// modulePath is the module the rules are about.
const modulePath = "meshd.dev/meshd"

// pkg is the part of `go list -json` output the checks read.
type pkg struct {
	ImportPath     string
	Name           string
	Dir            string
	Doc            string
	Standard       bool
	DepOnly        bool
	GoFiles        []string
	CgoFiles       []string
	IgnoredGoFiles []string
	TestGoFiles    []string
	XTestGoFiles   []string
	Imports        []string
	Deps           []string
	Module         *struct {
		Path string
		Main bool
	}
	Error *struct {
		Err string
	}
	DepsErrors []*struct {
		Err string
	}
}

// violation is one broken rule. Where is an import path or a file position.
type violation struct {
	Where string
	What  string
}

func (v violation) String() string { return v.Where + ": " + v.What }

// ---------------------------------------------------------------------------
// Rules between the top-level folders (docs/architecture.md, section 2).

// rule says what the packages of one top-level folder (an "area") may import
// from the module. A package may always import packages of its own area.
type rule struct {
	pure     bool     // no I/O, no wall clock, no global randomness (section 3)
	any      bool     // may import any package of the module
	internal bool     // may import meshd.dev/meshd/internal/...
	may      []string // other areas it may import
}

// rules is docs/architecture.md section 2 as data. A top-level folder that is not
// listed here is a violation: add its rule when you add the folder.
var rules = map[string]rule{
	"protocol":    {pure: true},
	"routing":     {pure: true, may: []string{"protocol"}},
	"fapp":        {pure: true, may: []string{"protocol", "routing"}},
	"transports":  {internal: true, may: []string{"protocol"}},
	"rpcapi":      {internal: true, may: []string{"protocol", "fapp"}},
	"daemon":      {any: true},
	"apps":        {internal: true, may: []string{"rpcapi"}},
	"simulations": {internal: true, may: []string{"protocol", "routing", "fapp", "transports"}}, // transports: the RNode emulator speaks transports/lora/kiss
	// internal holds helpers for the impure areas. Its own imports are not
	// restricted here; they are checked at its importers, whose transitive
	// dependencies include everything an internal package pulls in.
	"internal": {any: true},
	// The module root package, if one appears (for example to hold tests).
	"": {any: true},
}

// areaOf returns the top-level folder of a module package ("" for the root
// package) and whether importPath is in the module at all.
func areaOf(importPath string) (area string, inModule bool) {
	if importPath == modulePath {
		return "", true
	}
	rest, ok := strings.CutPrefix(importPath, modulePath+"/")
	if !ok {
		return "", false
	}
	area, _, _ = strings.Cut(rest, "/")
	return area, true
}

// allowsDirect reports whether a package of area self may import a package
// of area other.
func (r rule) allowsDirect(self, other string) bool {
	switch {
	case r.any || other == self:
		return true
	case other == "internal":
		return r.internal
	default:
		return slices.Contains(r.may, other)
	}
}

// reachable returns the areas a package of area may depend on transitively:
// its own, the ones it may import, theirs, and so on. internal is not
// expanded (see rules). all is true if anything is allowed.
func reachable(area string) (set map[string]bool, all bool) {
	set = map[string]bool{}
	queue := []string{area}
	for len(queue) > 0 {
		a := queue[0]
		queue = queue[1:]
		if set[a] {
			continue
		}
		set[a] = true
		r := rules[a]
		if r.any && a != "internal" {
			return nil, true
		}
		if r.internal {
			set["internal"] = true
		}
		queue = append(queue, r.may...)
	}
	return set, false
}

// describe says in words what a package of area may import.
func describe(area string) string {
	r := rules[area]
	var parts []string
	for _, a := range r.may {
		parts = append(parts, a+"/...")
	}
	if r.internal {
		parts = append(parts, "internal/...")
	}
	if len(parts) == 0 {
		return fmt.Sprintf("%s/... may import nothing else from the module", area)
	}
	return fmt.Sprintf("%s/... may import only %s (and its own subpackages)", area, strings.Join(parts, ", "))
}

// importChain returns the shortest chain of imports from one package to
// another, as "a -> b -> c", using the Imports of the listed packages.
func importChain(index map[string]*pkg, from, to string) string {
	prev := map[string]string{from: ""}
	queue := []string{from}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		if cur == to {
			var chain []string
			for p := to; p != ""; p = prev[p] {
				chain = append(chain, p)
			}
			slices.Reverse(chain)
			return strings.Join(chain, " -> ")
		}
		p := index[cur]
		if p == nil {
			continue
		}
		for _, imp := range p.Imports {
			if _, seen := prev[imp]; !seen {
				prev[imp] = cur
				queue = append(queue, imp)
			}
		}
	}
	return from + " -> ... -> " + to + " (chain not found in the package list)"
}

func indexPackages(pkgs []pkg) map[string]*pkg {
	index := make(map[string]*pkg, len(pkgs))
	for i := range pkgs {
		index[pkgs[i].ImportPath] = &pkgs[i]
	}
	return index
}

// checkLayers checks the import rules between the top-level folders, on the
// direct imports and on the transitive dependencies of every module package.
func checkLayers(pkgs []pkg) []violation {
	index := indexPackages(pkgs)
	var vs []violation
	for _, p := range pkgs {
		area, in := areaOf(p.ImportPath)
		if !in {
			continue
		}
		r, known := rules[area]
		if !known {
			vs = append(vs, violation{p.ImportPath, fmt.Sprintf(
				"top-level folder %s/ has no import rule; add it to docs/architecture.md section 2 and to rules in internal/archtest", area)})
			continue
		}
		if r.any {
			continue
		}
		reported := map[string]bool{}
		for _, imp := range p.Imports {
			a, in := areaOf(imp)
			if in && !r.allowsDirect(area, a) {
				reported[imp] = true
				vs = append(vs, violation{p.ImportPath, fmt.Sprintf(
					"imports %s, but %s (docs/architecture.md section 2)", imp, describe(area))})
			}
		}
		ok, _ := reachable(area)
		for _, dep := range p.Deps {
			a, in := areaOf(dep)
			if !in || ok[a] || reported[dep] {
				continue
			}
			vs = append(vs, violation{p.ImportPath, fmt.Sprintf(
				"depends on %s through %s, but %s (docs/architecture.md section 2)",
				dep, importChain(index, p.ImportPath, dep), describe(area))})
		}
	}
	return vs
}

// ---------------------------------------------------------------------------
// The pure core (docs/architecture.md, section 3): imports and dependencies.

// forbiddenImports may not be imported directly by a pure package. A pattern
// ending in "/..." matches the packages below it (not the one named).
// math/rand/v2 is allowed (for *rand.Rand); what it may be used for is
// checked at source level.
var forbiddenImports = []string{
	"net", "net/...",
	"os", "os/...",
	"syscall", "syscall/...",
	"io/ioutil",
	"crypto/rand",
	"math/rand", // v1: global source
	"unsafe",
	"path/filepath",
	"log", "log/...",
	"runtime/cgo", "C",
	"plugin",
}

// forbiddenDeps may not be among the transitive dependencies of a pure
// package. (Standard packages such as os and syscall are allowed here: fmt
// and the crypto libraries depend on them. The direct-import rule is what
// keeps our own code pure.)
var forbiddenDeps = []string{
	"github.com/libp2p/...",
	"github.com/dgraph-io/...",
	"github.com/multiformats/...",
	"github.com/quic-go/...",
	"github.com/grandcat/...",
	"net/http", "net/http/...",
	"go.bug.st/serial", "go.bug.st/serial/...",
}

// matchAny reports whether path matches one of the patterns.
func matchAny(patterns []string, path string) bool {
	for _, pat := range patterns {
		if prefix, ok := strings.CutSuffix(pat, "/..."); ok {
			if strings.HasPrefix(path, prefix+"/") {
				return true
			}
		} else if path == pat {
			return true
		}
	}
	return false
}

func isPure(importPath string) bool {
	area, in := areaOf(importPath)
	return in && rules[area].pure
}

// checkPureImports checks the direct imports and transitive dependencies of
// the pure packages (their non-test files, which is what go list reports in
// Imports and Deps).
func checkPureImports(pkgs []pkg) []violation {
	index := indexPackages(pkgs)
	var vs []violation
	for _, p := range pkgs {
		if !isPure(p.ImportPath) {
			continue
		}
		for _, imp := range p.Imports {
			if matchAny(forbiddenImports, imp) {
				vs = append(vs, violation{p.ImportPath, fmt.Sprintf(
					"imports %s; a pure package does no I/O and takes time and randomness as inputs (docs/architecture.md section 3)", imp)})
			}
		}
		for _, dep := range p.Deps {
			if matchAny(forbiddenDeps, dep) {
				vs = append(vs, violation{p.ImportPath, fmt.Sprintf(
					"depends on %s through %s; networking, storage and serial libraries belong in transports/ or daemon/",
					dep, importChain(index, p.ImportPath, dep))})
			}
		}
	}
	return vs
}

// ---------------------------------------------------------------------------
// The pure core at source level.

// forbiddenTime are the functions of package time that read the wall clock
// or wait on it. Types (time.Time, time.Duration) and pure functions
// (time.Unix, time.Date) stay allowed.
var forbiddenTime = map[string]bool{
	"Now": true, "Since": true, "Until": true, "Sleep": true, "After": true,
	"AfterFunc": true, "NewTimer": true, "NewTicker": true, "Tick": true,
}

// allowedRand are the only names of package math/rand/v2 a pure package may
// use: the types, and the constructors of an explicitly seeded generator.
// Everything else there (rand.IntN, rand.Float64, rand.Shuffle, ...) draws
// from the global source. Listing what is allowed means a function added to
// math/rand/v2 later is forbidden by default.
var allowedRand = map[string]bool{
	"Rand": true, "Source": true, "PCG": true, "ChaCha8": true, "Zipf": true,
	"New": true, "NewPCG": true, "NewChaCha8": true, "NewZipf": true,
}

// checkPureSource checks one non-test source file of a pure package. name is
// used for positions and for parsing only; src is the file's text.
func checkPureSource(name string, src []byte) ([]violation, error) {
	fset := token.NewFileSet()
	// Object resolution stays on (no parser.SkipObjectResolution): it is how
	// an identifier that names a local variable (a parameter called rand, say)
	// is told apart from one that names an imported package.
	f, err := parser.ParseFile(fset, name, src, 0)
	if err != nil {
		return nil, err
	}
	var vs []violation
	at := func(n ast.Node, format string, args ...any) {
		vs = append(vs, violation{fset.Position(n.Pos()).String(), fmt.Sprintf(format, args...)})
	}

	// Local names of the imports whose use is restricted, however they are
	// imported (import t "time" is still time).
	watched := map[string]string{}
	for _, spec := range f.Imports {
		path, err := strconv.Unquote(spec.Path.Value)
		if err != nil {
			return nil, fmt.Errorf("%s: bad import path %s", fset.Position(spec.Pos()), spec.Path.Value)
		}
		if matchAny(forbiddenImports, path) {
			at(spec, "imports %s; a pure package does no I/O and takes time and randomness as inputs", path)
		}
		var local string
		switch path {
		case "time":
			local = "time"
		case "math/rand/v2":
			local = "rand"
		default:
			continue
		}
		if spec.Name != nil {
			local = spec.Name.Name
		}
		switch local {
		case "_":
		case ".":
			at(spec, "dot import of %s; import it by name so its uses can be checked", path)
		default:
			watched[local] = path
		}
	}

	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.GoStmt:
			at(n, "go statement; a pure package starts no goroutines, the caller drives it through Step/Tick")
		case *ast.SelectorExpr:
			id, ok := n.X.(*ast.Ident)
			// Obj is set when the parser resolved the name to a declaration in
			// this file, i.e. it is not the imported package.
			if !ok || id.Obj != nil {
				return true
			}
			switch watched[id.Name] {
			case "time":
				if forbiddenTime[n.Sel.Name] {
					at(n, "uses time.%s; a pure package takes now as a parameter and reports its next wake-up instead of waiting", n.Sel.Name)
				}
			case "math/rand/v2":
				if !allowedRand[n.Sel.Name] {
					at(n, "uses rand.%s (math/rand/v2), the global random source; draw from an injected *rand.Rand instead", n.Sel.Name)
				}
			}
		}
		return true
	})
	return vs, nil
}

// pureSourceFiles returns the non-test Go files of a pure package, including
// those excluded by build constraints on this machine.
func pureSourceFiles(p pkg) []string {
	var files []string
	for _, list := range [][]string{p.GoFiles, p.CgoFiles, p.IgnoredGoFiles} {
		for _, f := range list {
			if strings.HasSuffix(f, ".go") && !strings.HasSuffix(f, "_test.go") {
				files = append(files, filepath.Join(p.Dir, f))
			}
		}
	}
	return files
}

// ---------------------------------------------------------------------------
// Package documentation (docs/architecture.md, section 7).

// checkDocs checks that every module package with non-test files has a doc
// comment, starting with "Package <name>" except for commands.
func checkDocs(pkgs []pkg) []violation {
	var vs []violation
	for _, p := range pkgs {
		if _, in := areaOf(p.ImportPath); !in || len(p.GoFiles)+len(p.CgoFiles) == 0 {
			continue
		}
		doc := strings.TrimSpace(p.Doc)
		switch {
		case doc == "":
			vs = append(vs, violation{p.ImportPath, "has no package doc comment; say what the package is for (doc.go)"})
		case p.Name == "main":
			// Commands may start "Command meshd ..." or "Meshd runs ...".
		default:
			words := strings.Fields(doc)
			if len(words) < 2 || words[0] != "Package" || strings.TrimRight(words[1], ".,:;") != p.Name {
				vs = append(vs, violation{p.ImportPath, fmt.Sprintf("package doc should start with %q, starts with %q", "Package "+p.Name, firstWords(doc, 3))})
			}
		}
	}
	return vs
}

func firstWords(s string, n int) string {
	w := strings.Fields(s)
	if len(w) > n {
		w = w[:n]
	}
	return strings.Join(w, " ")
}

// ---------------------------------------------------------------------------
// Unit tests of the checkers on synthetic input.

const m = modulePath + "/"

func TestCheckLayers(t *testing.T) {
	pkgs := []pkg{
		// Good.
		{ImportPath: m + "protocol", Imports: []string{"fmt"}, Deps: []string{"fmt", "os"}},
		{ImportPath: m + "protocol/frame", Imports: []string{m + "protocol"}, Deps: []string{m + "protocol"}},
		{ImportPath: m + "routing", Imports: []string{m + "protocol", m + "routing/table"}, Deps: []string{m + "protocol", m + "routing/table"}},
		{ImportPath: m + "routing/table"},
		{ImportPath: m + "fapp", Imports: []string{m + "routing"}, Deps: []string{m + "protocol", m + "routing", m + "routing/table"}},
		{ImportPath: m + "rpcapi", Imports: []string{m + "fapp", m + "protocol"}, Deps: []string{m + "fapp", m + "protocol", m + "routing", m + "routing/table"}},
		{ImportPath: m + "apps/meshctl", Imports: []string{m + "rpcapi"}, Deps: []string{m + "fapp", m + "protocol", m + "routing", m + "routing/table", m + "rpcapi"}},
		{ImportPath: m + "internal/testutil", Imports: []string{m + "protocol"}, Deps: []string{m + "protocol"}},
		{ImportPath: m + "transports/mem", Imports: []string{m + "internal/testutil"}, Deps: []string{m + "internal/testutil", m + "protocol"}},
		{ImportPath: m + "daemon", Imports: []string{m + "transports/mem", m + "fapp", m + "rpcapi"}},
		{ImportPath: m + "simulations/sim", Imports: []string{m + "fapp"}, Deps: []string{m + "fapp", m + "protocol", m + "routing", m + "routing/table"}},
		{ImportPath: "github.com/other/x", Imports: []string{m + "daemon"}}, // not ours

		// Bad.
		{ImportPath: m + "protocol/bad", Imports: []string{m + "routing"}, Deps: []string{m + "protocol", m + "routing", m + "routing/table"}},
		{ImportPath: m + "routing/bad", Imports: []string{m + "internal/testutil"}, Deps: []string{m + "internal/testutil", m + "protocol"}},
		{ImportPath: m + "internal/leaky", Imports: []string{m + "routing"}, Deps: []string{m + "protocol", m + "routing", m + "routing/table"}},
		{ImportPath: m + "transports/bad", Imports: []string{m + "internal/leaky"}, Deps: []string{m + "internal/leaky", m + "protocol", m + "routing", m + "routing/table"}},
		{ImportPath: m + "apps/bad", Imports: []string{m + "protocol"}, Deps: []string{m + "protocol"}},
		{ImportPath: m + "tools/gen", Imports: []string{"fmt"}},
	}
	vs := checkLayers(pkgs)
	got := strings.Join(stringsOf(vs), "\n")

	for _, want := range []string{
		m + "protocol/bad: imports " + m + "routing, but protocol/... may import nothing else",
		m + "protocol/bad: depends on " + m + "routing/table through " + m + "protocol/bad -> " + m + "routing -> " + m + "routing/table",
		m + "routing/bad: imports " + m + "internal/testutil, but routing/... may import only protocol/...",
		m + "transports/bad: depends on " + m + "routing through " + m + "transports/bad -> " + m + "internal/leaky -> " + m + "routing, but transports/... may import only protocol/..., internal/...",
		m + "apps/bad: imports " + m + "protocol, but apps/... may import only rpcapi/..., internal/...",
		m + "tools/gen: top-level folder tools/ has no import rule",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("violation not reported: %s", want)
		}
	}
	for _, v := range vs {
		if !strings.HasSuffix(v.Where, "/bad") && v.Where != m+"tools/gen" {
			t.Errorf("good package reported: %s", v)
		}
	}
	if t.Failed() {
		t.Logf("violations:\n%s", got)
	}
}

func TestCheckPureImports(t *testing.T) {
	pkgs := []pkg{
		// Good: std deps of fmt and crypto are fine, v2 rand and time are fine.
		{ImportPath: m + "protocol", Imports: []string{"fmt", "crypto/sha256", "time", "math/rand/v2"}, Deps: []string{"fmt", "os", "syscall", "unsafe", "crypto/rand"}},
		// Impure areas may do anything.
		{ImportPath: m + "transports/tcp", Imports: []string{"net", "os"}, Deps: []string{"net", "net/http", "github.com/libp2p/go-libp2p"}},

		// Bad.
		{ImportPath: m + "protocol/fake", Imports: []string{"net"}, Deps: []string{"net"}},
		{ImportPath: m + "routing", Imports: []string{"math/rand", "os/exec", "log/slog", "unsafe"}},
		{ImportPath: m + "fapp", Imports: []string{"fmt", m + "fapp/store"}, Deps: []string{"fmt", m + "fapp/store", "github.com/dgraph-io/badger/v4"}},
		{ImportPath: m + "fapp/store", Imports: []string{"github.com/dgraph-io/badger/v4"}, Deps: []string{"github.com/dgraph-io/badger/v4"}},
	}
	vs := checkPureImports(pkgs)
	got := strings.Join(stringsOf(vs), "\n")
	for _, want := range []string{
		m + "protocol/fake: imports net;",
		m + "routing: imports math/rand;",
		m + "routing: imports os/exec;",
		m + "routing: imports log/slog;",
		m + "routing: imports unsafe;",
		m + "fapp: depends on github.com/dgraph-io/badger/v4 through " + m + "fapp -> " + m + "fapp/store -> github.com/dgraph-io/badger/v4;",
		m + "fapp/store: depends on github.com/dgraph-io/badger/v4 through",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("violation not reported: %s", want)
		}
	}
	for _, v := range vs {
		if v.Where == m+"protocol" || v.Where == m+"transports/tcp" {
			t.Errorf("good package reported: %s", v)
		}
	}
	if n := len(vs); n != 7 {
		t.Errorf("got %d violations, want 7", n)
	}
	if t.Failed() {
		t.Logf("violations:\n%s", got)
	}
}

func TestMatchAny(t *testing.T) {
	for path, want := range map[string]bool{
		"net": true, "net/netip": true, "net/http": true, "network": false,
		"os": true, "os/exec": true, "math/rand": true, "math/rand/v2": false,
		"log": true, "log/slog": true, "crypto/rand": true, "crypto/sha256": false,
		"time": false, "unsafe": true, "path": false, "path/filepath": true,
	} {
		if got := matchAny(forbiddenImports, path); got != want {
			t.Errorf("matchAny(forbiddenImports, %q) = %v, want %v", path, got, want)
		}
	}
}

func TestCheckPureSource(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string // substrings of the violations, in order; none for good code
	}{
		{"clock as parameter", `package p
import (
	"math/rand/v2"
	"time"
)
type Engine struct{ rng *rand.Rand; wake time.Time }
func New(seed uint64) *Engine { return &Engine{rng: rand.New(rand.NewPCG(seed, 1))} }
func (e *Engine) Tick(now time.Time) time.Duration {
	e.wake = now.Add(time.Duration(e.rng.IntN(10)) * time.Second)
	_ = time.Unix(0, 0)
	var z *rand.Zipf = rand.NewZipf(e.rng, 2, 1, 10)
	_ = rand.NewChaCha8([32]byte{})
	_ = z
	return e.wake.Sub(now)
}
`, nil},
		{"parameter named rand shadows the package", `package p
import "math/rand/v2"
func Pick(rand *rand.Rand, n int) int { return rand.IntN(n) }
`, nil},
		{"local variable named time shadows the package", `package p
import "time"
type clock struct{ Now func() int }
func f(c clock) int { time := c; return time.Now() }
`, nil},
		{"time.Now", `package p
import "time"
func f() time.Time { return time.Now() }
`, []string{"p.go:3:29: uses time.Now"}},
		{"time.Now through an alias", `package p
import clock "time"
func f() clock.Time { return clock.Now() }
`, []string{"uses time.Now"}},
		{"time.Now as a value", `package p
import "time"
var now = time.Now
`, []string{"uses time.Now"}},
		{"sleeping and timers", `package p
import "time"
func f(d time.Duration) {
	time.Sleep(d)
	<-time.After(d)
	time.AfterFunc(d, func() {})
	_ = time.NewTimer(d)
	_ = time.NewTicker(d)
	_ = time.Tick(d)
	_ = time.Since(time.Time{})
	_ = time.Until(time.Time{})
}
`, []string{"time.Sleep", "time.After", "time.AfterFunc", "time.NewTimer", "time.NewTicker", "time.Tick", "time.Since", "time.Until"}},
		{"go statement", `package p
func f(ch chan int) { go func() { ch <- 1 }() }
`, []string{"p.go:2:23: go statement"}},
		{"global rand", `package p
import "math/rand/v2"
func f(s []int) int {
	rand.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
	return rand.IntN(10) + int(rand.Float64())
}
`, []string{"rand.Shuffle", "rand.IntN", "rand.Float64"}},
		{"global rand through an alias", `package p
import r2 "math/rand/v2"
func f() uint64 { return r2.Uint64() }
`, []string{"rand.Uint64"}},
		{"dot import", `package p
import . "time"
func f() Time { return Now() }
`, []string{"dot import of time"}},
		{"forbidden imports", `package p
import (
	"math/rand"
	"net"
	"os"
)
var _ = rand.Int
var _ net.Conn
var _ = os.Getenv
`, []string{"imports math/rand;", "imports net;", "imports os;"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vs, err := checkPureSource("p.go", []byte(tt.src))
			if err != nil {
				t.Fatal(err)
			}
			got := stringsOf(vs)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d violations, want %d:\n%s", len(got), len(tt.want), strings.Join(got, "\n"))
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("violation %d = %q, want it to contain %q", i, got[i], w)
				}
			}
		})
	}
}

func TestCheckPureSourceSyntaxError(t *testing.T) {
	if _, err := checkPureSource("p.go", []byte("package p\nfunc {")); err == nil {
		t.Fatal("no error for a file that does not parse")
	}
}

func TestCheckDocs(t *testing.T) {
	pkgs := []pkg{
		// Good.
		{ImportPath: m + "protocol", Name: "protocol", GoFiles: []string{"doc.go"}, Doc: "Package protocol defines meshd's wire formats."},
		{ImportPath: m + "daemon/cmd/meshd", Name: "main", GoFiles: []string{"main.go"}, Doc: "Meshd runs a mesh node."},
		{ImportPath: m + "internal/testonly", Name: "testonly", TestGoFiles: []string{"x_test.go"}},
		{ImportPath: "example.com/nodoc", Name: "nodoc", GoFiles: []string{"a.go"}},

		// Bad.
		{ImportPath: m + "routing", Name: "routing", GoFiles: []string{"engine.go"}},
		{ImportPath: m + "fapp", Name: "fapp", GoFiles: []string{"fapp.go"}, Doc: "This package does FAPP."},
		{ImportPath: m + "rpcapi", Name: "rpcapi", GoFiles: []string{"rpc.go"}, Doc: "Package rpc serves the API."},
		{ImportPath: m + "apps/meshctl", Name: "main", GoFiles: []string{"main.go"}},
	}
	got := stringsOf(checkDocs(pkgs))
	want := []string{
		m + `routing: has no package doc comment`,
		m + `fapp: package doc should start with "Package fapp", starts with "This package does"`,
		m + `rpcapi: package doc should start with "Package rpcapi", starts with "Package rpc serves"`,
		m + `apps/meshctl: has no package doc comment`,
	}
	if len(got) != len(want) {
		t.Fatalf("got %d violations, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("violation %d = %q, want prefix %q", i, got[i], want[i])
		}
	}
}

func stringsOf(vs []violation) []string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = v.String()
	}
	return s
}

// ---------------------------------------------------------------------------
// The real module.

// moduleRoot returns the directory holding the module's go.mod.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside a module (go env GOMOD is empty)")
	}
	return filepath.Dir(gomod), nil
}

// module is what go list says about the module.
type module struct {
	root string // directory of go.mod
	pkgs []pkg  // the module's packages and all their dependencies
}

// listModule runs `go list -e -deps -json ./...` in the module root once.
var listModule = sync.OnceValues(func() (*module, error) {
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	if err := noteInputs(root); err != nil {
		return nil, err
	}
	cmd := exec.Command("go", "list", "-e", "-deps",
		"-json=ImportPath,Name,Dir,Doc,Standard,DepOnly,GoFiles,CgoFiles,IgnoredGoFiles,TestGoFiles,XTestGoFiles,Imports,Deps,Module,Error,DepsErrors",
		"./...")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list in %s: %w\n%s", root, err, stderr.Bytes())
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("decoding go list output: %w", err)
		}
		pkgs = append(pkgs, p)
	}
	for _, p := range pkgs {
		if p.Module != nil && p.Module.Main && p.Module.Path != modulePath {
			return nil, fmt.Errorf("main module is %s, the rules are written for %s", p.Module.Path, modulePath)
		}
	}
	return &module{root: root, pkgs: pkgs}, nil
})

// noteInputs opens every directory of the module that the go command would
// look into. go list reads the source in a child process, which the test
// cache does not see; a directory opened here is recorded together with the
// size and time of every file in it, so adding or editing a file anywhere in
// the module invalidates a cached pass of these tests.
func noteInputs(root string) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		name := d.Name()
		if path != root && (name == "testdata" || name == "vendor" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
			return filepath.SkipDir
		}
		if path != root {
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir // a nested module is not part of ./...
			}
		}
		return nil
	})
}

func loadModule(t *testing.T) *module {
	t.Helper()
	mod, err := listModule()
	if err != nil {
		t.Fatal(err)
	}
	return mod
}

func report(t *testing.T, vs []violation) {
	t.Helper()
	for _, v := range vs {
		t.Error(v)
	}
}

// TestModuleLists fails if go list could not load a package of the module:
// the other tests would then check incomplete information.
func TestModuleLists(t *testing.T) {
	n := 0
	for _, p := range loadModule(t).pkgs {
		if _, in := areaOf(p.ImportPath); !in {
			continue
		}
		n++
		if p.Error != nil {
			t.Errorf("%s: %s", p.ImportPath, p.Error.Err)
		}
		for _, e := range p.DepsErrors {
			t.Errorf("%s: dependency error: %s", p.ImportPath, e.Err)
		}
	}
	if n == 0 {
		t.Fatal("go list found no package of the module; is the test running inside it?")
	}
}

func TestImportRules(t *testing.T) {
	report(t, checkLayers(loadModule(t).pkgs))
}

func TestPureImports(t *testing.T) {
	report(t, checkPureImports(loadModule(t).pkgs))
}

func TestPureSource(t *testing.T) {
	mod := loadModule(t)
	checked := 0
	for _, p := range mod.pkgs {
		if !isPure(p.ImportPath) {
			continue
		}
		for _, file := range pureSourceFiles(p) {
			src, err := os.ReadFile(file)
			if err != nil {
				t.Error(err)
				continue
			}
			name := file
			if rel, err := filepath.Rel(mod.root, file); err == nil {
				name = rel
			}
			vs, err := checkPureSource(name, src)
			if err != nil {
				t.Error(err)
				continue
			}
			report(t, vs)
			checked++
		}
	}
	t.Logf("checked %d source files of the pure packages", checked)
}

func TestPackageDocs(t *testing.T) {
	report(t, checkDocs(loadModule(t).pkgs))
}

// ---------------------------------------------------------------------------
// The repository stands alone (docs/architecture.md): code and docs cite the
// project's own documents, never design notes that live outside it.

// outsideDocs are names of design notes kept beside the repository, not in
// it. They are spelled in pieces so this file does not cite them itself.
var outsideDocs = []string{
	"shared" + "/design", "GOALS" + ".md", "ARCHITECTURE" + ".md", "STYLE" + ".md",
	"LORA" + ".md", "FAPP" + ".md", "DEPENDENCIES" + ".md",
}

// checkSelfContained reports every line of src that cites an outside design
// note. docs/architecture.md is the project's own and is matched case
// sensitively, so it never counts as a citation of the upper-case note.
func checkSelfContained(name string, src []byte) []violation {
	var vs []violation
	for i, line := range strings.Split(string(src), "\n") {
		for _, d := range outsideDocs {
			if strings.Contains(line, d) {
				vs = append(vs, violation{fmt.Sprintf("%s:%d", name, i+1),
					fmt.Sprintf("cites %s, which is not in the repository; cite the project's own docs or the primary source", d)})
			}
		}
	}
	return vs
}

func TestCheckSelfContained(t *testing.T) {
	bad := []byte("ok line\n// as GOALS" + ".md says\nsee ../shared" + "/design/LORA" + ".md\n")
	got := stringsOf(checkSelfContained("x.go", bad))
	if len(got) != 3 || !strings.HasPrefix(got[0], "x.go:2:") || !strings.HasPrefix(got[1], "x.go:3:") {
		t.Errorf("violations = %q, want one on line 2 and two on line 3", got)
	}
	if vs := checkSelfContained("docs/a.md", []byte("see docs/architecture.md section 2\n")); len(vs) != 0 {
		t.Errorf("the project's own architecture doc counted as outside: %v", vs)
	}
}

// TestSelfContained scans the module's text files (Go, Markdown, TOML,
// scripts) for citations of outside design notes.
func TestSelfContained(t *testing.T) {
	root := loadModule(t).root
	scanned := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && (d.Name() == ".git" || d.Name() == "node_modules" || d.Name() == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		switch filepath.Ext(path) {
		case ".go", ".md", ".toml", ".sh", ".txt", ".yml", ".yaml", "":
		default:
			return nil
		}
		if info, err := d.Info(); err != nil || info.Size() > 1<<20 {
			return err
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		report(t, checkSelfContained(rel, src))
		scanned++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if scanned < 50 {
		t.Fatalf("scanned only %d files; is the walk looking at the module?", scanned)
	}
}
