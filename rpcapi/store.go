package rpcapi

import (
	"context"
	"errors"
	"path/filepath"
)

// MethodStoreBackup writes an online backup of the node's store.
const MethodStoreBackup = "store.backup"

// ErrDiskFull: the node's disk has less free space than its reserve
// (store.min_free), so it takes no new custody. CodeDiskFull. Messages
// already in custody are kept and still delivered; the call succeeds again
// once space is freed.
var ErrDiskFull = errors.New("disk full")

// CodeDiskFull is the code of ErrDiskFull.
const CodeDiskFull = -32010

// BackupNode is implemented by a node that can back up its store. The
// server answers store.backup only for such a node.
type BackupNode interface {
	// Backup writes a backup file at p.Path (absolute, new: never an
	// existing file) while the node runs.
	Backup(ctx context.Context, p BackupParams) (BackupResult, error)
}

// BackupParams are store.backup's parameters.
type BackupParams struct {
	// Path is the absolute path of the backup file the daemon creates. It
	// must not exist; its directory must.
	Path string `json:"path"`
}

// BackupResult is store.backup's result.
type BackupResult struct {
	// Path is the file written.
	Path string `json:"path"`
	// Bytes is its size.
	Bytes int64 `json:"bytes"`
	// Address is the mesh address of the node the backup belongs to.
	Address string `json:"address"`
}

func storeMethods() []MethodSpec {
	return []MethodSpec{
		define(MethodStoreBackup, "Write an online backup of the node's store.",
			"The daemon writes a consistent snapshot of its database, with the node's identity and host keys, into a new file at `path` (mode 0600; it holds the node's secret keys) while the node keeps running. `meshd restore` reads it. See docs/operations.md, Backup and restore.",
			[]int{CodeInvalidParams, CodeMethodNotFound, CodeDiskFull, CodeUnavailable, CodeInternal},
			func(ctx context.Context, env *callEnv, p *BackupParams) (BackupResult, error) {
				bn, ok := env.srv.node.(BackupNode)
				if !ok {
					return BackupResult{}, &Error{Code: CodeMethodNotFound, Message: "method not found: this node cannot write backups"}
				}
				if p.Path == "" || !filepath.IsAbs(p.Path) {
					return BackupResult{}, invalidParams("path %q: want an absolute path for a new file", p.Path)
				}
				return bn.Backup(ctx, *p)
			}),
	}
}

// Backup calls store.backup.
func (c *Client) Backup(ctx context.Context, p BackupParams) (BackupResult, error) {
	var v BackupResult
	return v, c.Call(ctx, MethodStoreBackup, p, &v)
}
