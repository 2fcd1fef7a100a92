package routing_test

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A small data-driven test reader in the manner of cockroachdb's datadriven
// and etcd raft's interaction tests. A script is a sequence of commands, each
// followed by a line "----" and the command's expected output, which ends at
// the next blank line (or the end of the file):
//
//	# Comments and blank lines before a command are kept as they are.
//	send a e "hello" ttl=1m
//	----
//	a: accepted m1 to e status=routed
//
// Output never contains blank lines (the scenario harness guarantees it), so
// a blank line always ends a block. With -update the expected output is
// replaced by what the commands produced and the file is rewritten.

// scriptCmd is one command of a script with its expected output.
type scriptCmd struct {
	pre  []string // comment and blank lines before the command
	line int      // line number of the command, from 1
	text string   // the command line
	want string   // expected output, lines joined by "\n"
}

type script struct {
	cmds []scriptCmd
	tail []string // comment and blank lines after the last command
}

func parseScript(name, data string) (*script, error) {
	lines := strings.Split(strings.ReplaceAll(data, "\r\n", "\n"), "\n")
	if len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1] // the final newline
	}
	s := &script{}
	var pre []string
	for i := 0; i < len(lines); i++ {
		ln := lines[i]
		if strings.TrimSpace(ln) == "" || strings.HasPrefix(strings.TrimSpace(ln), "#") {
			pre = append(pre, ln)
			continue
		}
		c := scriptCmd{pre: pre, line: i + 1, text: strings.TrimSpace(ln)}
		pre = nil
		if i+1 >= len(lines) || lines[i+1] != "----" {
			return nil, fmt.Errorf("%s:%d: command %q is not followed by a line \"----\"", name, i+1, c.text)
		}
		i += 2
		var out []string
		for ; i < len(lines) && strings.TrimSpace(lines[i]) != ""; i++ {
			out = append(out, lines[i])
		}
		// lines[i] is the blank line that ends the block (or past the end).
		c.want = strings.Join(out, "\n")
		s.cmds = append(s.cmds, c)
	}
	s.tail = pre
	return s, nil
}

// format renders the script back, with the expected outputs it holds now.
func (s *script) format() string {
	var b strings.Builder
	for i, c := range s.cmds {
		for _, p := range c.pre {
			b.WriteString(p + "\n")
		}
		b.WriteString(c.text + "\n----\n")
		if c.want != "" {
			b.WriteString(c.want + "\n")
		}
		if i < len(s.cmds)-1 || len(s.tail) > 0 {
			b.WriteString("\n")
		}
	}
	for _, p := range s.tail {
		b.WriteString(p + "\n")
	}
	return b.String()
}

// runScript runs every command of the script at path through do and
// compares (or, with update, replaces) the expected output. An error from do
// is a mistake in the script and stops the test.
func runScript(t *testing.T, path string, update bool, do func(cmd string) (string, error)) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := parseScript(path, string(data))
	if err != nil {
		t.Fatal(err)
	}
	for i := range s.cmds {
		c := &s.cmds[i]
		got, err := do(c.text)
		if err != nil {
			t.Fatalf("%s:%d: %s: %v", path, c.line, c.text, err)
		}
		got = strings.TrimRight(got, "\n")
		if strings.Contains(got, "\n\n") || strings.HasPrefix(got, "\n") {
			t.Fatalf("%s:%d: %s: output has a blank line (harness bug):\n%s", path, c.line, c.text, got)
		}
		if got == c.want {
			continue
		}
		if update {
			c.want = got
			continue
		}
		t.Errorf("%s:%d: %s\n--- want:\n%s\n--- got:\n%s", path, c.line, c.text, c.want, got)
	}
	if update {
		if out := s.format(); out != string(data) {
			if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("updated %s", path)
		}
	}
}

// cmdArgs is a parsed command line: a name, positional arguments (quoted
// strings are unquoted) and key=value options.
type cmdArgs struct {
	name string
	pos  []string
	opts map[string]string
	keys []string // option keys in the order given
	used map[string]bool
	err  error
}

// splitCommand splits a command line into words; a double-quoted part (Go
// syntax) may contain spaces and may follow "key=".
func splitCommand(line string) (*cmdArgs, error) {
	a := &cmdArgs{opts: map[string]string{}, used: map[string]bool{}}
	rest := strings.TrimSpace(line)
	var words []string
	var isOpt []bool // the word has a "=" outside quotes: key=value
	for rest != "" {
		var w strings.Builder
		opt := false
		for rest != "" && rest[0] != ' ' && rest[0] != '\t' {
			if rest[0] == '"' {
				q, err := strconv.QuotedPrefix(rest)
				if err != nil {
					return nil, fmt.Errorf("bad quoted string in %q", rest)
				}
				u, _ := strconv.Unquote(q)
				w.WriteString(u)
				rest = rest[len(q):]
				continue
			}
			if rest[0] == '=' && !opt && w.Len() > 0 {
				opt = true
			}
			w.WriteByte(rest[0])
			rest = rest[1:]
		}
		words = append(words, w.String())
		isOpt = append(isOpt, opt)
		rest = strings.TrimLeft(rest, " \t")
	}
	if len(words) == 0 {
		return nil, fmt.Errorf("empty command")
	}
	a.name = words[0]
	for i, w := range words[1:] {
		if !isOpt[i+1] {
			a.pos = append(a.pos, w)
			continue
		}
		k, v, _ := strings.Cut(w, "=")
		if _, dup := a.opts[k]; dup {
			return nil, fmt.Errorf("option %s given twice", k)
		}
		a.opts[k] = v
		a.keys = append(a.keys, k)
	}
	return a, nil
}

func (a *cmdArgs) fail(err error) {
	if a.err == nil {
		a.err = err
	}
}

func (a *cmdArgs) has(k string) bool {
	_, ok := a.opts[k]
	if ok {
		a.used[k] = true
	}
	return ok
}

func (a *cmdArgs) str(k, def string) string {
	if v, ok := a.opts[k]; ok {
		a.used[k] = true
		return v
	}
	return def
}

func (a *cmdArgs) dur(k string, def time.Duration) time.Duration {
	v, ok := a.opts[k]
	if !ok {
		return def
	}
	a.used[k] = true
	d, err := time.ParseDuration(v)
	if err != nil {
		a.fail(fmt.Errorf("option %s: %v", k, err))
	}
	return d
}

func (a *cmdArgs) num(k string, def int) int {
	v, ok := a.opts[k]
	if !ok {
		return def
	}
	a.used[k] = true
	n, err := strconv.Atoi(v)
	if err != nil {
		a.fail(fmt.Errorf("option %s: %v", k, err))
	}
	return n
}

func (a *cmdArgs) float(k string, def float64) float64 {
	v, ok := a.opts[k]
	if !ok {
		return def
	}
	a.used[k] = true
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		a.fail(fmt.Errorf("option %s: %v", k, err))
	}
	return f
}

// done reports the first parse error or an option nobody asked for.
func (a *cmdArgs) done() error {
	if a.err != nil {
		return a.err
	}
	for _, k := range a.keys {
		if !a.used[k] {
			return fmt.Errorf("unknown option %s", k)
		}
	}
	return nil
}

func TestParseScript(t *testing.T) {
	tests := []struct {
		name, in string
		cmds     []string // command, then its expected output, for each
		err      bool
	}{
		{name: "empty", in: ""},
		{name: "comments only", in: "# a\n\n# b\n"},
		{
			name: "two commands",
			in:   "# c\nrun 1s\n----\nok\n\nroutes a\n----\nb via b\nc via b\n",
			cmds: []string{"run 1s", "ok", "routes a", "b via b\nc via b"},
		},
		{name: "no output", in: "stop a\n----\n\nstart a\n----\n", cmds: []string{"stop a", "", "start a", ""}},
		{name: "trailing comment", in: "run 1s\n----\nok\n\n# end\n", cmds: []string{"run 1s", "ok"}},
		{name: "no separator", in: "run 1s\nok\n", err: true},
		{name: "separator missing at end", in: "run 1s\n", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := parseScript("test", tt.in)
			if tt.err {
				if err == nil {
					t.Fatalf("no error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, c := range s.cmds {
				got = append(got, c.text, c.want)
			}
			if strings.Join(got, "|") != strings.Join(tt.cmds, "|") {
				t.Errorf("commands %q, want %q", got, tt.cmds)
			}
			if out := s.format(); out != tt.in {
				t.Errorf("format:\n%q\nwant\n%q", out, tt.in)
			}
		})
	}
}

func TestSplitCommand(t *testing.T) {
	tests := []struct {
		name, in string
		want     string // name|pos,...|k=v,...
		err      bool
	}{
		{name: "plain", in: "routes a b", want: "routes|a,b|"},
		{name: "quoted", in: `send a e "hello, world" ttl=1m`, want: "send|a,e,hello, world|ttl=1m"},
		{name: "escapes", in: `send a e "say \"hi\""`, want: `send|a,e,say "hi"|`},
		{name: "quoted value", in: `broadcast a c "x" name="two words"`, want: "broadcast|a,c,x|name=two words"},
		{name: "equals inside quotes", in: `send a b "k=v"`, want: "send|a,b,k=v|"},
		{name: "spaces", in: "  run   5m  quiet ", want: "run|5m,quiet|"},
		{name: "unterminated", in: `send a b "oops`, err: true},
		{name: "twice", in: "run 1s x=1 x=2", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := splitCommand(tt.in)
			if tt.err {
				if err == nil {
					t.Fatalf("no error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var kv []string
			for _, k := range a.keys {
				kv = append(kv, k+"="+a.opts[k])
			}
			if got := a.name + "|" + strings.Join(a.pos, ",") + "|" + strings.Join(kv, ","); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
