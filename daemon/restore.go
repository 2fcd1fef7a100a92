package daemon

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"meshd.dev/meshd/daemon/store"
	"meshd.dev/meshd/protocol"
)

// RestoreOptions are meshd restore's choices.
type RestoreOptions struct {
	// Force restores a backup of another node than the one whose identity
	// key is in the data directory: that key (and host key) is moved aside
	// to <name>.replaced and the backup's take its place.
	Force bool
	// Logger receives badger's messages while loading (default: none).
	Logger *slog.Logger
}

// Restore restores the backup file at path into dataDir, which must have
// no database (it may be new, or hold a config file and keys from meshd
// init). The whole file is verified before anything is written. A backup
// of another node than dataDir's identity key is refused (ErrOtherNode)
// unless opt.Force. The database is loaded into a scratch directory and
// renamed into place last, so an interrupted restore leaves no database
// and can be run again. It sets the process umask to 077, as Main does.
func Restore(dataDir, path string, opt RestoreOptions) (BackupHeader, error) {
	privateUmask() // `meshd restore` runs without Main: badger's files would be 0644
	f, err := os.Open(path)
	if err != nil {
		return BackupHeader{}, fmt.Errorf("restore: %w", err)
	}
	defer f.Close()
	h, off, dbLen, err := verifyBackup(f)
	if err != nil {
		return h, err
	}
	if err := store.CheckBackupStream(io.NewSectionReader(f, off, dbLen), dbLen); err != nil {
		return h, fmt.Errorf("%w: %v", ErrBackupCorrupt, err)
	}
	dbDir := filepath.Join(dataDir, "db")
	if ents, err := os.ReadDir(dbDir); err == nil && len(ents) > 0 {
		return h, fmt.Errorf("%w: %s exists (stop the node and move it away first)", ErrRestoreTarget, dbDir)
	}
	if err := store.MkdirDurable(dataDir); err != nil {
		return h, fmt.Errorf("restore: %w", err)
	}
	if err := checkRestoreIdentity(dataDir, h.Address, opt.Force); err != nil {
		return h, err
	}
	scratch := filepath.Join(dataDir, ".db.restoring")
	if err := os.RemoveAll(scratch); err != nil {
		return h, fmt.Errorf("restore: %w", err)
	}
	logger := opt.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	db := bufio.NewReaderSize(io.NewSectionReader(f, off, dbLen), 1<<20)
	if err := store.Load(scratch, db, store.WithLogger(logger)); err != nil {
		os.RemoveAll(scratch)
		if errors.Is(err, store.ErrCorrupt) {
			return h, fmt.Errorf("%w: %v", ErrBackupCorrupt, err)
		}
		return h, fmt.Errorf("restore: %w", err)
	}
	if err := installKeys(dataDir, &h); err != nil {
		os.RemoveAll(scratch)
		return h, err
	}
	if err := os.Remove(dbDir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return h, fmt.Errorf("restore: %w", err)
	}
	if err := os.Rename(scratch, dbDir); err != nil {
		return h, fmt.Errorf("restore: %w", err)
	}
	if err := syncDirOf(dbDir); err != nil {
		return h, fmt.Errorf("restore: %w", err)
	}
	return h, nil
}

// checkRestoreIdentity refuses a backup of another node than dataDir's
// identity key, unless force: then it moves dataDir's key files aside.
func checkRestoreIdentity(dataDir string, addr protocol.Address, force bool) error {
	path := filepath.Join(dataDir, IdentityFileName)
	raw, err := readSecret(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err == nil {
		var id *protocol.Identity
		if id, err = protocol.ParseIdentity(raw); err == nil && id.Address() == addr {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("%w: it holds %s, the data directory is %s (restore with --force to replace this node's identity)", ErrOtherNode, addr, id.Address())
		}
	}
	if !force {
		return err
	}
	for _, name := range []string{IdentityFileName, HostKeyFileName} {
		p := filepath.Join(dataDir, name)
		if err := os.Rename(p, p+".replaced"); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("restore: moving %s aside: %w", name, err)
		}
	}
	return nil
}

// installKeys writes the backup's key files into dataDir where they are
// missing; present ones are the same node's (checkRestoreIdentity).
func installKeys(dataDir string, h *BackupHeader) error {
	files := []struct {
		name string
		data []byte
	}{{IdentityFileName, h.Identity}, {HostKeyFileName, h.HostKey}}
	for _, k := range files {
		if len(k.data) == 0 {
			continue
		}
		err := writeFileAtomic(filepath.Join(dataDir, k.name), k.data, 0o600)
		if err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("restore: writing %s: %w", k.name, err)
		}
	}
	return nil
}
