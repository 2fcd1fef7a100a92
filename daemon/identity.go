package daemon

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"meshd.dev/meshd/protocol"
)

// IdentityFileName is the identity key file in the data directory.
const IdentityFileName = "identity.key"

// LoadOrCreateIdentity reads the node's identity from the data directory,
// creating it (file mode 0600, written atomically and synced) on first
// start. A key file readable by others is refused, as ssh does: the key is
// the node's address and its libp2p identity.
func LoadOrCreateIdentity(dataDir string, random io.Reader) (id *protocol.Identity, created bool, err error) {
	if random == nil {
		random = rand.Reader
	}
	path := filepath.Join(dataDir, IdentityFileName)
	raw, err := readSecret(path)
	if err == nil {
		id, err := protocol.ParseIdentity(raw)
		if err != nil {
			return nil, false, fmt.Errorf("identity key %s: %w (restore it from a backup, or move it away to start as a new node)", path, err)
		}
		return id, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, false, err
	}
	id, err = protocol.NewIdentity(random)
	if err != nil {
		return nil, false, err
	}
	raw, err = id.MarshalBinary()
	if err != nil {
		return nil, false, err
	}
	err = writeFileAtomic(path, raw, 0o600)
	if errors.Is(err, os.ErrExist) {
		// Another process created it first: use that one, so both agree.
		return LoadOrCreateIdentity(dataDir, random)
	}
	if err != nil {
		return nil, false, fmt.Errorf("writing identity key: %w", err)
	}
	return id, true, nil
}

// readSecret reads a small secret file, refusing one that group or others
// may read.
func readSecret(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s has mode %04o: it must be readable by its owner only (chmod 600 %s)", path, st.Mode().Perm(), path)
	}
	if st.Size() > 4096 {
		return nil, fmt.Errorf("%s is %d bytes: not a meshd key file", path, st.Size())
	}
	return os.ReadFile(path)
}

// writeFileAtomic creates path with data through a synced temporary file
// and a hard link, then syncs the directory, so a crash leaves no file or the
// whole one, never a torn one. It never replaces an existing file: if path
// exists it fails with an error wrapping os.ErrExist.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Link(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
