package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// syncBuffer is a bytes.Buffer safe for the emulator's goroutine and the
// test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestEmulatorCommand: the command serves the modems of flags and a layout
// file, prints the table, keeps the map and the links, obeys ctl, and
// removes links and socket when stopped.
func TestEmulatorCommand(t *testing.T) {
	if _, err := os.Stat("/dev/ptmx"); err != nil {
		t.Skip("no /dev/ptmx")
	}
	dir := t.TempDir()
	layout := filepath.Join(dir, "layout.csv")
	if err := os.WriteFile(layout, []byte("name,x,y\nC,2000,0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	links, mapFile, sock := filepath.Join(dir, "tty"), filepath.Join(dir, "map.json"), filepath.Join(dir, "ctl.sock")
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--node", "A,0,0", "--node", "B=150,0,14", "--layout", layout,
			"--dir", links, "--map", mapFile, "--control", sock}, &out, func() { close(ready) })
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("the emulator stopped: %v", err)
	}
	for _, want := range []string{"modem A: /dev/pts/", "link A-B: 150 m", "in range at SF7", "link A-C: 2000 m", "out of range", "ready"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	ctlOut := func(args ...string) (string, error) {
		var b bytes.Buffer
		err := run(ctx, append([]string{"ctl", "--control", sock}, args...), &b, nil)
		return b.String(), err
	}
	if got, err := ctlOut("list"); err != nil || !strings.Contains(got, "B plugged /dev/pts/") {
		t.Fatalf("list: %q, %v", got, err)
	}
	if _, err := ctlOut("unplug", "B"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(links, "B")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("B's link after unplug: %v", err)
	}
	var m struct{ Modems []mapEntry }
	b, _ := os.ReadFile(mapFile)
	if err := json.Unmarshal(b, &m); err != nil || len(m.Modems) != 3 || m.Modems[1].Plugged || !m.Modems[0].Plugged {
		t.Errorf("map after unplug: %s (%v)", b, err)
	}
	if _, err := ctlOut("plug", "B"); err != nil {
		t.Fatal(err)
	}
	if target, err := os.Readlink(filepath.Join(links, "B")); err != nil || !strings.HasPrefix(target, "/dev/pts/") {
		t.Errorf("B's link after plug: %q, %v", target, err)
	}
	for _, bad := range [][]string{{"plug", "B"}, {"unplug", "Z"}, {"fault", "A", "nope"}, {"dance"}} {
		if _, err := ctlOut(bad...); !errors.Is(err, errCommand) {
			t.Errorf("%v: %v, want a refusal", bad, err)
		}
	}
	if _, err := ctlOut("fault", "A", "tx-timeout"); err != nil {
		t.Error(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(links, "A"), filepath.Join(links, "C"), sock} {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s after stop: %v", p, err)
		}
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{{}, {"--node", "A"}, {"--bogus"}, {"--node", "A,1,1", "extra"}, {"ctl"}, {"--node", "A,0,0", "--node", "A,1,1"}} {
		if err := run(context.Background(), args, &bytes.Buffer{}, nil); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
}

func FuzzControlCommand(f *testing.F) {
	for _, s := range []string{"list\n", "plug A", "unplug  B ", "fault A tx-timeout", "fault A nope", "", "dance"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		r, err := parseCommand(line)
		if err != nil {
			return
		}
		switch r.verb {
		case "list":
		case "plug", "unplug":
			if r.name == "" || strings.ContainsAny(r.name, " \t\n") {
				t.Fatalf("%q: name %q", line, r.name)
			}
		case "fault":
			if r.fault.String() == "" || r.name == "" {
				t.Fatalf("%q: %+v", line, r)
			}
		default:
			t.Fatalf("%q: verb %q", line, r.verb)
		}
	})
}

// TestControlDoesNotDeleteAFile: --control naming a file that is not a
// socket (a typo, "--control emu.toml") must fail, not delete the file.
func TestControlDoesNotDeleteAFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(path, []byte("keep me\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e := &emulator{o: &options{control: path}}
	stop, err := e.listen(context.Background())
	if err == nil {
		stop()
	}
	if b, rerr := os.ReadFile(path); rerr != nil || string(b) != "keep me\n" {
		t.Fatalf("the control socket replaced a regular file (listen err %v; file now %q, %v)", err, b, rerr)
	}
	if err == nil {
		t.Fatal("listen on a regular file's path succeeded")
	}
}
