package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// readmeBlock is one ```sh block of README.md.
type readmeBlock struct {
	line int    // of the opening fence
	text string // the commands, as written
	skip string // why the test does not run it ("" to run it)
}

// skipMarker is the HTML comment (invisible on a rendered page) that must
// stand right before a block the test cannot run, with the reason.
var skipMarker = regexp.MustCompile(`^<!-- readme-test: skip \((.+)\) -->$`)

// readmeBlocks extracts the shell blocks of a Markdown document.
func readmeBlocks(doc string) ([]readmeBlock, error) {
	var blocks []readmeBlock
	var cur *readmeBlock
	prev := ""
	sc := bufio.NewScanner(strings.NewReader(doc))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur != nil && line == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.text += line + "\n"
		case line == "```sh" || line == "```bash" || line == "```shell":
			cur = &readmeBlock{line: n}
			if m := skipMarker.FindStringSubmatch(prev); m != nil {
				cur.skip = m[1]
			} else if strings.HasPrefix(prev, "<!-- readme-test") {
				return nil, fmt.Errorf("line %d: malformed marker %q (want <!-- readme-test: skip (REASON) -->)", n-1, prev)
			}
		}
		if strings.TrimSpace(line) != "" {
			prev = line
		}
	}
	if cur != nil {
		return nil, fmt.Errorf("line %d: the block never ends", cur.line)
	}
	return blocks, nil
}

func TestReadmeBlocksParse(t *testing.T) {
	doc := "x\n```sh\necho a\n```\n<!-- readme-test: skip (needs a radio) -->\n\n```bash\necho b\n```\n```ini\n[x]\n```\n"
	blocks, err := readmeBlocks(doc)
	if err != nil || len(blocks) != 2 || blocks[0].text != "echo a\n" || blocks[0].skip != "" || blocks[1].skip != "needs a radio" || blocks[1].line != 7 {
		t.Fatalf("readmeBlocks = %+v, %v", blocks, err)
	}
	if _, err := readmeBlocks("<!-- readme-test: skp -->\n```sh\necho\n```\n"); err == nil {
		t.Error("a misspelt marker was accepted")
	}
	if _, err := readmeBlocks("```sh\necho\n"); err == nil {
		t.Error("an unterminated block was accepted")
	}
}

// TestReadme runs README.md's shell blocks literally, in order, in one bash
// (as a newcomer pasting them into one terminal would), with meshd and
// meshctl installed into a private PATH and HOME, XDG directories and
// TMPDIR of the test's own: the walkthrough's data directories come from
// mktemp and its ports are 0, so it cannot clash with anything. Blocks
// marked skip in the README are reported with their reason.
func TestReadme(t *testing.T) {
	endToEnd(t, "installs and runs the README's daemons")
	for _, tool := range []string{"bash", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			// .ci/run installs both, so there this never skips.
			t.Skipf("the README's blocks need %s, which is not installed (Debian: apt-get install %s)", tool, tool)
		}
	}
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := readmeBlocks(string(doc))
	if err != nil {
		t.Fatalf("README.md: %v", err)
	}
	script := "set -euo pipefail\n" +
		// Whatever happens, the daemons the blocks started in the
		// background stop with the script.
		"trap 'kill $(jobs -p) 2>/dev/null; wait' EXIT\n"
	ran := 0
	for _, b := range blocks {
		if b.skip != "" {
			t.Logf("README.md:%d: skipped: %s", b.line, b.skip)
			continue
		}
		script += fmt.Sprintf("echo '>>> README.md:%d'\n%s", b.line, b.text)
		ran++
	}
	if ran < 3 {
		t.Fatalf("only %d runnable blocks in README.md; the walkthrough is gone or marked skip", ran)
	}

	tmp := t.TempDir()
	env := readmeEnv(t, tmp)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Dir = root
	cmd.Env = env
	// Its own process group, so that the daemons die with it whatever the
	// script did.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	if cmd.Process != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	if err != nil {
		t.Fatalf("README blocks failed: %v\n%s", err, out)
	}
	// What the walkthrough's comments promise.
	for _, want := range []string{`from [0-9a-f]{32}: hello bob`, `\[ops\] [0-9a-f]{32}: hello channel`, `(?m)^[0-9a-f]{32} (routed|custody)$`, `tcp +up +127\.0\.0\.1:`, `from [0-9a-f]{32}: hello over tcp`} {
		if !regexp.MustCompile(want).Match(out) {
			t.Errorf("the README run never printed %q:\n%s", want, out)
		}
	}
}

// readmeEnv is the environment of the README run: the caller's, minus any
// MESHD_ setting, with a private PATH entry for go install, HOME, XDG
// directories and TMPDIR, but the caller's Go caches (a cold build would
// take minutes).
func readmeEnv(t *testing.T, tmp string) []string {
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	goenv := map[string]string{}
	for _, k := range []string{"GOCACHE", "GOMODCACHE", "GOPATH"} {
		v, err := exec.Command(gobin, "env", k).Output()
		if err != nil {
			t.Fatalf("go env %s: %v", k, err)
		}
		goenv[k] = strings.TrimSpace(string(v))
	}
	bin := filepath.Join(tmp, "bin")
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "MESHD_"), strings.HasPrefix(k, "XDG_"),
			k == "HOME", k == "TMPDIR", k == "PATH", k == "GOBIN", goenv[k] != "":
			continue
		}
		env = append(env, kv)
	}
	for k, v := range goenv {
		env = append(env, k+"="+v)
	}
	for _, d := range []string{"home", "tmp", "data", "config", "state", "runtime"} {
		if err := os.MkdirAll(filepath.Join(tmp, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	return append(env,
		"GOBIN="+bin,
		"PATH="+bin+":"+filepath.Dir(gobin)+":"+os.Getenv("PATH"),
		"HOME="+filepath.Join(tmp, "home"),
		"TMPDIR="+filepath.Join(tmp, "tmp"),
		"XDG_DATA_HOME="+filepath.Join(tmp, "data"),
		"XDG_CONFIG_HOME="+filepath.Join(tmp, "config"),
		"XDG_STATE_HOME="+filepath.Join(tmp, "state"),
		"XDG_RUNTIME_DIR="+filepath.Join(tmp, "runtime"),
	)
}
