package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"meshd.dev/meshd/daemon/store"
	"meshd.dev/meshd/rpcapi"
)

// Backup implements rpcapi.BackupNode: an online backup of the store
// (badger's backup at one read timestamp, while the loop keeps writing)
// with the node's key files, written by the daemon into a new file.
func (n *Node) Backup(ctx context.Context, p rpcapi.BackupParams) (rpcapi.BackupResult, error) {
	if n.closing.Load() {
		return rpcapi.BackupResult{}, fmt.Errorf("%w: shutting down", rpcapi.ErrUnavailable)
	}
	if _, err := os.Lstat(p.Path); err == nil {
		return rpcapi.BackupResult{}, fmt.Errorf("%w: %s exists: a backup is never written over a file", rpcapi.ErrInvalidParams, p.Path)
	}
	if err := n.st.CheckRoom(filepath.Dir(p.Path)); errors.Is(err, store.ErrDiskFull) {
		return rpcapi.BackupResult{}, fmt.Errorf("%w: %v", rpcapi.ErrDiskFull, err)
	}
	h, size, err := WriteBackupFile(p.Path, n.st, n.cfg.DataDir, n.now())
	switch {
	case errors.Is(err, syscall.ENOSPC):
		return rpcapi.BackupResult{}, fmt.Errorf("%w: %v", rpcapi.ErrDiskFull, err)
	case errors.Is(err, os.ErrNotExist), errors.Is(err, os.ErrPermission), errors.Is(err, os.ErrExist):
		return rpcapi.BackupResult{}, fmt.Errorf("%w: %v", rpcapi.ErrInvalidParams, err)
	case err != nil:
		return rpcapi.BackupResult{}, err
	}
	n.log.Info("backup written", "file", p.Path, "bytes", size)
	return rpcapi.BackupResult{Path: p.Path, Bytes: size, Address: h.Address.String()}, nil
}
