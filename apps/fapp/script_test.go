package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// The scripts in testdata/script run fapp (this package's Main, in
// process); some start real meshd daemons with the startd command.

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"fapp": func() { os.Exit(Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) },
	})
}

func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			env.Setenv("MESHD_DATA_DIR", "") // never the developer's own node
			env.Setenv("LANG", "")
			slotDates(env, time.Now())
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"startd": cmdStartd,
		},
		Condition: func(cond string) (bool, error) {
			if cond == "short" {
				return testing.Short(), nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
	})
}

// slotDates sets the dates the scripts publish slots at: the node refuses
// slots in the past and more than 400 days ahead, so they are relative to
// now. SLOT is a Tuesday 18:00 (Europe/Berlin) one to two weeks ahead,
// GROUP a week later and GROUP_BIS eleven weeks after GROUP; the _EN, _DE
// and _UTC variants are how fapp shows them.
func slotDates(env *testscript.Env, now time.Time) {
	d := now.In(berlin).AddDate(0, 0, 7)
	for d.Weekday() != time.Tuesday {
		d = d.AddDate(0, 0, 1)
	}
	slot := time.Date(d.Year(), d.Month(), d.Day(), 18, 0, 0, 0, berlin)
	group := slot.AddDate(0, 0, 7)
	bis := group.AddDate(0, 0, 77)
	en, de := &options{lang: "en"}, &options{lang: "de"}
	for k, v := range map[string]string{
		"SLOT": slot.Format("2006-01-02 15:04"), "SLOT_EN": en.when(slot), "SLOT_DE": de.when(slot),
		"GROUP": group.Format("2006-01-02 15:04"), "GROUP_EN": en.when(group), "GROUP_DE": de.when(group),
		"GROUP_UTC": group.UTC().Format(time.RFC3339),
		"GROUP_BIS": bis.Format("2006-01-02 15:04"), "GROUP_BIS_EN": en.date(bis), "GROUP_BIS_DE": de.date(bis),
		"FAR": now.AddDate(2, 0, 0).In(berlin).Format("2006-01-02 15:04"),
	} {
		env.Setenv(k, v)
	}
}

var (
	meshdOnce sync.Once
	meshdBin  string
	meshdErr  error
)

// buildMeshd builds the real daemon once per test binary.
func buildMeshd() (string, error) {
	meshdOnce.Do(func() {
		dir, err := os.MkdirTemp("", "fapp-test-meshd")
		if err != nil {
			meshdErr = err
			return
		}
		meshdBin = filepath.Join(dir, "meshd")
		gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
		out, err := exec.Command(gobin, "build", "-o", meshdBin, "meshd.dev/meshd/daemon/cmd/meshd").CombinedOutput()
		if err != nil {
			meshdErr = fmt.Errorf("go build meshd: %v\n%s", err, out)
		}
	})
	return meshdBin, meshdErr
}

// startd NAME [ISSUERDIR] starts meshd with data directory $WORK/NAME on
// loopback with mDNS and HTTP off (trusting the issuer of $WORK/ISSUERDIR,
// made by fapp issuer init), waits until it runs, and stops it when the
// script ends.
func cmdStartd(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 1 || len(args) > 2 {
		ts.Fatalf("usage: startd NAME [ISSUERDIR]")
	}
	if len(args) == 2 {
		pub := strings.TrimSpace(ts.ReadFile(filepath.Join(args[1], "issuer.pub")))
		ts.Check(os.MkdirAll(ts.MkAbs(args[0]), 0o700))
		ts.Check(os.WriteFile(filepath.Join(ts.MkAbs(args[0]), "config.toml"), []byte(fmt.Sprintf("[fapp]\ntrusted_issuers = [%q]\n", pub)), 0o600))
	}
	bin, err := buildMeshd()
	if err != nil {
		ts.Fatalf("%v", err)
	}
	cmd := exec.Command(bin, "--data-dir", ts.MkAbs(args[0]), "--listen", "/ip4/127.0.0.1/tcp/0", "--api", "off", "--no-mdns")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		ts.Fatalf("%v", err)
	}
	if err := cmd.Start(); err != nil {
		ts.Fatalf("%v", err)
	}
	running, exited := make(chan struct{}), make(chan struct{})
	var log strings.Builder
	var mu sync.Mutex
	go func() {
		defer close(exited)
		sc := bufio.NewScanner(stderr)
		once := sync.Once{}
		for sc.Scan() {
			mu.Lock()
			log.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if strings.Contains(sc.Text(), "meshd running") {
				once.Do(func() { close(running) })
			}
		}
		io.Copy(io.Discard, stderr)
		cmd.Wait()
	}()
	ts.Defer(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	select {
	case <-running:
	case <-exited:
		mu.Lock()
		defer mu.Unlock()
		ts.Fatalf("meshd %s exited during start-up:\n%s", args[0], log.String())
	case <-time.After(60 * time.Second):
		ts.Fatalf("meshd %s did not start within a minute", args[0])
	}
}
