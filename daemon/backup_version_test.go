package daemon

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"meshd.dev/meshd/daemon/store"
)

// badgerAt opens the badger database in dir directly, as an older meshd's
// store would find it.
func badgerAt(t *testing.T, dir string) *badger.DB {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil).WithMemTableSize(8 << 20).WithValueLogFileSize(64 << 20))
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// storeVersion reads m/version from the badger database in dir.
func storeVersion(t *testing.T, dir string) []byte {
	t.Helper()
	db := badgerAt(t, dir)
	defer db.Close()
	var v []byte
	if err := db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte("m/version"))
		if err != nil {
			return err
		}
		v, err = item.ValueCopy(nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestBackupStoppedKeepsFormatVersion: `meshd backup` of a stopped node
// whose store is format version 1 (written by a meshd before delivered
// records were keyed on their order) leaves the data directory at version
// 1, and the backup holds version 1: a backup is the way back to the older
// meshd (operations.md § 7), which refuses version 2, and taking one must
// not cut that way off for the directory it reads.
func TestBackupStoppedKeepsFormatVersion(t *testing.T) {
	cfg := testConfig(t)
	if _, _, err := LoadOrCreateIdentity(cfg.DataDir, nil); err != nil {
		t.Fatal(err)
	}
	dbDir := filepath.Join(cfg.DataDir, "db")
	st, err := store.Open(dbDir, store.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	db := badgerAt(t, dbDir)
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("m/version"), []byte{1}) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	path := filepath.Join(t.TempDir(), "old"+backupExtension)
	if _, _, err := BackupDataDir(cfg.DataDir, path, time.Now()); err != nil {
		t.Fatal(err)
	}
	if v := storeVersion(t, dbDir); len(v) != 1 || v[0] != 1 {
		t.Errorf("the data directory is at version %x after meshd backup, want 01", v)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, off, n, err := verifyBackup(f)
	if err != nil {
		t.Fatal(err)
	}
	loaded := t.TempDir()
	ldb := badgerAt(t, loaded)
	if err := ldb.Load(io.NewSectionReader(f, off, n), 16); err != nil {
		t.Fatal(err)
	}
	if err := ldb.Close(); err != nil {
		t.Fatal(err)
	}
	if v := storeVersion(t, loaded); len(v) != 1 || v[0] != 1 {
		t.Errorf("the backup holds version %x, want 01", v)
	}
}
