package daemon

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"meshd.dev/meshd/daemon/store"
	"meshd.dev/meshd/rpcapi"
)

// Attack: store.backup wrote its file whatever the free space. A backup
// into the store's own file system (the data directory's disk, the usual
// case) ate the store.min_free reserve that badger needs to finish its
// memtable, so the next write into the mapped memtable could kill meshd
// with SIGBUS; an API client could do that on purpose by asking for
// backups until the disk was full. A backup needs the store's size plus
// the reserve free on the target's file system.
func TestBackupRefusedWithoutRoom(t *testing.T) {
	// A reserve no disk has: every check finds too little room.
	st, err := store.Open(t.TempDir(), store.WithLogger(slog.New(slog.DiscardHandler)), store.WithMinFree(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	dataDir := t.TempDir()
	if _, _, err := LoadOrCreateIdentity(dataDir, rand.Reader); err != nil {
		t.Fatal(err)
	}
	n := &Node{st: st, log: slog.New(slog.DiscardHandler), now: func() time.Time { return time.Unix(1_800_000_000, 0) }}
	n.cfg.DataDir = dataDir
	path := filepath.Join(t.TempDir(), "node.bak")
	_, err = n.Backup(context.Background(), rpcapi.BackupParams{Path: path})
	if !errors.Is(err, rpcapi.ErrDiskFull) {
		t.Fatalf("backup without room for it: %v, want ErrDiskFull", err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused backup left %s: %v", path, err)
	}
}
