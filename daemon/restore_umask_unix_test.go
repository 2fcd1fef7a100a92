//go:build unix

package daemon

import (
	"context"
	"io/fs"
	"path/filepath"
	"syscall"
	"testing"
)

// TestRestoreFilesPrivate: `meshd restore` runs without Main, so without
// its umask; badger creates its files 0666 and relies on the umask. The
// restored database (secret channel keys among it) must still be private
// under an ordinary umask of 022.
func TestRestoreFilesPrivate(t *testing.T) {
	n, stop := startNode(t, testConfig(t))
	path := backupOf(t, context.Background(), n, t.TempDir(), "n")
	stop()
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	cfg := restored(t, path)
	err := filepath.WalkDir(filepath.Join(cfg.DataDir, "db"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s: mode %04o, want private to its user", p, info.Mode().Perm())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
