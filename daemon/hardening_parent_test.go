package daemon

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

// TestDataDirParentWritableRefused: a private data directory inside a
// directory other users can write to (without the sticky bit) is no
// safer: they can rename it away and put their own in its place. The same
// holds for a symlink to it that lives in such a directory. ssh's
// StrictModes checks the parents too.
func TestDataDirParentWritableRefused(t *testing.T) {
	base := t.TempDir()
	mk := func(path string, mode os.FileMode) string {
		t.Helper()
		if err := os.Mkdir(path, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		return path
	}
	log := slog.New(slog.DiscardHandler)
	open := mk(filepath.Join(base, "open"), 0o777)
	sticky := mk(filepath.Join(base, "sticky"), 0o777|os.ModeSticky)
	safe := mk(filepath.Join(base, "safe"), 0o755)
	inOpen := mk(filepath.Join(open, "data"), 0o700)
	inSticky := mk(filepath.Join(sticky, "data"), 0o700)
	target := mk(filepath.Join(safe, "data"), 0o700)
	link := filepath.Join(open, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	for dir, unsafe := range map[string]bool{inOpen: true, link: true, inSticky: false, target: false} {
		err := checkDataDirMode(dir, log)
		if got := errors.Is(err, ErrUnsafeDataDir); got != unsafe {
			t.Errorf("%s: %v, want refused: %v", dir, err, unsafe)
		}
	}
}
