package main

import (
	"context"
	"io/fs"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestDataFilesPrivate: whatever the umask meshd is started with (here
// 022, under which badger would create 0644 files), every file and
// directory it creates in its data directory is closed to other users.
func TestDataFilesPrivate(t *testing.T) {
	endToEnd(t, "starts meshd")
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := newProc(t, "modes")
	p.start(ctx)
	p.stop(ctx)
	n := 0
	err := filepath.WalkDir(p.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSocket == 0 && info.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s: mode %04o, want no group or other bits", path, info.Mode().Perm())
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 5 {
		t.Fatalf("only %d entries in the data directory", n)
	}
}
