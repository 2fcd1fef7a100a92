package daemon

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"meshd.dev/meshd/protocol"
)

// Key files in the data directory.
const (
	// IdentityFileName is the identity key file: the node's mesh address.
	IdentityFileName = "identity.key"
	// HostKeyFileName is the libp2p host key file: the node's peer ID.
	HostKeyFileName = "host.key"
)

// Host key file format (37 bytes): version 0x01, the Ed25519 seed (32),
// and the first 4 bytes of SHA-256 over the preceding bytes, which catch a
// damaged file before it silently becomes another peer ID.
const (
	hostKeyVersion  = 1
	hostKeyFileSize = 1 + ed25519.SeedSize + 4
)

// ErrHostKeyFile reports a host key file that is not a meshd host key.
var ErrHostKeyFile = errors.New("daemon: damaged host key file")

// LoadOrCreateIdentity reads the node's identity from the data directory,
// creating it (file mode 0600, written atomically and synced) on first
// start. A key file readable by others is refused, as ssh does: the key is
// the node's address.
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
		// Unless the name exists but leads nowhere (a dangling symlink):
		// reading would say "does not exist" again, without end.
		if err := stillThere(path); err != nil {
			return nil, false, fmt.Errorf("identity key: %w", err)
		}
		return LoadOrCreateIdentity(dataDir, random)
	}
	if err != nil {
		return nil, false, fmt.Errorf("writing identity key: %w", err)
	}
	return id, true, nil
}

// LoadOrCreateHostKey reads the node's libp2p host key from the data
// directory, creating it on first start (or on the first start of a data
// directory from before the host key was a key of its own, which changes
// the peer ID). Like the identity key it is written atomically with mode
// 0600 and refused when others may read it.
func LoadOrCreateHostKey(dataDir string, random io.Reader) (key ed25519.PrivateKey, created bool, err error) {
	if random == nil {
		random = rand.Reader
	}
	path := filepath.Join(dataDir, HostKeyFileName)
	raw, err := readSecret(path)
	if err == nil {
		key, err := parseHostKey(raw)
		if err != nil {
			return nil, false, fmt.Errorf("host key %s: %w (move it away to start with a new peer ID)", path, err)
		}
		return key, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, false, err
	}
	seed := make([]byte, ed25519.SeedSize)
	if _, err := io.ReadFull(random, seed); err != nil {
		return nil, false, fmt.Errorf("host key: random source: %w", err)
	}
	err = writeFileAtomic(path, marshalHostKey(seed), 0o600)
	if errors.Is(err, os.ErrExist) {
		// Another process created it first: use that one, so both agree.
		// Unless the name exists but leads nowhere (a dangling symlink):
		// reading would say "does not exist" again, without end.
		if err := stillThere(path); err != nil {
			return nil, false, fmt.Errorf("host key: %w", err)
		}
		return LoadOrCreateHostKey(dataDir, random)
	}
	if err != nil {
		return nil, false, fmt.Errorf("writing host key: %w", err)
	}
	return ed25519.NewKeyFromSeed(seed), true, nil
}

func marshalHostKey(seed []byte) []byte {
	b := append([]byte{hostKeyVersion}, seed...)
	sum := sha256.Sum256(b)
	return append(b, sum[:4]...)
}

func parseHostKey(b []byte) (ed25519.PrivateKey, error) {
	if len(b) != hostKeyFileSize {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrHostKeyFile, len(b), hostKeyFileSize)
	}
	if b[0] != hostKeyVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrHostKeyFile, b[0], hostKeyVersion)
	}
	body := b[:len(b)-4]
	if sum := sha256.Sum256(body); !bytes.Equal(sum[:4], b[len(body):]) {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrHostKeyFile)
	}
	return ed25519.NewKeyFromSeed(body[1:]), nil
}

// stillThere checks that a key file which another process seems to have
// created can be read through its name.
func stillThere(path string) error {
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("%s exists but cannot be opened (a dangling symlink?): %w", path, err)
	}
	return nil
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
