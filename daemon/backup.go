package daemon

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"meshd.dev/meshd/daemon/store"
	"meshd.dev/meshd/protocol"
)

// Backup file (meshd backup, store.backup; read by meshd restore):
//
//	magic      8 bytes "MESHDBAK"
//	version    1 byte: 1
//	address    16 bytes: the mesh address of the node it belongs to
//	created    8 bytes big endian: Unix seconds when it was written
//	identity   4 bytes big endian length (1 to 4096), the identity key file
//	host key   4 bytes big endian length (0 to 4096), the host key file
//	database   badger's backup stream, to the trailer
//	db length  8 bytes big endian: the database stream's length
//	checksum   32 bytes: SHA-256 of every byte before it
//
// The checksum is verified over the whole file before anything is
// restored, so a truncated or damaged file is refused with nothing
// written. The file holds the node's secret keys: it is created with mode
// 0600 and must be kept like the data directory.

// Backup errors.
var (
	// ErrBackupCorrupt: the file is not a whole meshd backup.
	ErrBackupCorrupt = errors.New("daemon: not a valid meshd backup (truncated or damaged)")
	// ErrOtherNode: the backup belongs to another node than the target
	// data directory's identity (meshd restore --force overrides).
	ErrOtherNode = errors.New("daemon: the backup is of another node")
	// ErrRestoreTarget: the target data directory already has a database.
	ErrRestoreTarget = errors.New("daemon: restore needs a data directory without a database")
)

const (
	backupMagic     = "MESHDBAK"
	backupVersion   = 1
	maxBackupKey    = 4096
	backupFixedLen  = len(backupMagic) + 1 + protocol.AddressSize + 8
	backupTrailer   = 8 + sha256.Size
	backupExtension = ".meshd-backup"
)

// BackupHeader is what a backup file says about itself.
type BackupHeader struct {
	Address  protocol.Address
	Created  time.Time
	Identity []byte // the identity key file
	HostKey  []byte // the host key file (empty if the node had none)
}

// encode is the header's bytes.
func (h *BackupHeader) encode() []byte {
	b := append([]byte(backupMagic), backupVersion)
	b = append(b, h.Address[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(h.Created.Unix()))
	b = binary.BigEndian.AppendUint32(b, uint32(len(h.Identity)))
	b = append(b, h.Identity...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(h.HostKey)))
	return append(b, h.HostKey...)
}

// DecodeBackupHeader reads a backup header from r, strictly: any deviation
// is an error wrapping ErrBackupCorrupt. It checks the identity key
// against the address.
func DecodeBackupHeader(r io.Reader) (BackupHeader, error) {
	var h BackupHeader
	fixed := make([]byte, backupFixedLen)
	if _, err := io.ReadFull(r, fixed); err != nil {
		return h, fmt.Errorf("%w: header: %v", ErrBackupCorrupt, err)
	}
	if string(fixed[:len(backupMagic)]) != backupMagic {
		return h, fmt.Errorf("%w: no meshd backup magic", ErrBackupCorrupt)
	}
	if v := fixed[len(backupMagic)]; v != backupVersion {
		return h, fmt.Errorf("%w: format version %d, this meshd reads %d", ErrBackupCorrupt, v, backupVersion)
	}
	copy(h.Address[:], fixed[len(backupMagic)+1:])
	h.Created = time.Unix(int64(binary.BigEndian.Uint64(fixed[len(fixed)-8:])), 0).UTC()
	var err error
	if h.Identity, err = readBackupKey(r, "identity key", 1); err != nil {
		return h, err
	}
	if h.HostKey, err = readBackupKey(r, "host key", 0); err != nil {
		return h, err
	}
	id, err := protocol.ParseIdentity(h.Identity)
	if err != nil {
		return h, fmt.Errorf("%w: identity key: %v", ErrBackupCorrupt, err)
	}
	if id.Address() != h.Address {
		return h, fmt.Errorf("%w: identity key is of %s, header says %s", ErrBackupCorrupt, id.Address(), h.Address)
	}
	if len(h.HostKey) > 0 {
		if _, err := parseHostKey(h.HostKey); err != nil {
			return h, fmt.Errorf("%w: %v", ErrBackupCorrupt, err)
		}
	}
	return h, nil
}

// readBackupKey reads a length-prefixed key file of minLen to maxBackupKey
// bytes.
func readBackupKey(r io.Reader, what string, minLen int) ([]byte, error) {
	var l [4]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return nil, fmt.Errorf("%w: %s length: %v", ErrBackupCorrupt, what, err)
	}
	n := binary.BigEndian.Uint32(l[:])
	if n < uint32(minLen) || n > maxBackupKey {
		return nil, fmt.Errorf("%w: %s of %d bytes", ErrBackupCorrupt, what, n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBackupCorrupt, what, err)
	}
	return b, nil
}

// countWriter counts and hashes what passes through it.
type countWriter struct {
	w io.Writer
	h hash.Hash
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.h.Write(p[:n])
	c.n += int64(n)
	return n, err
}

// writeBackup writes a backup of st, with dataDir's key files, to w and
// returns the header written.
func writeBackup(w io.Writer, st *store.Store, dataDir string, now time.Time) (BackupHeader, error) {
	h := BackupHeader{Created: now}
	var err error
	if h.Identity, err = readSecret(filepath.Join(dataDir, IdentityFileName)); err != nil {
		return h, fmt.Errorf("backup: identity key: %w", err)
	}
	id, err := protocol.ParseIdentity(h.Identity)
	if err != nil {
		return h, fmt.Errorf("backup: identity key: %w", err)
	}
	h.Address = id.Address()
	if h.HostKey, err = readSecret(filepath.Join(dataDir, HostKeyFileName)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return h, fmt.Errorf("backup: host key: %w", err)
	}
	cw := &countWriter{w: w, h: sha256.New()}
	if _, err := cw.Write(h.encode()); err != nil {
		return h, err
	}
	start := cw.n
	if err := st.Backup(cw); err != nil {
		return h, err
	}
	if _, err := cw.Write(binary.BigEndian.AppendUint64(nil, uint64(cw.n-start))); err != nil {
		return h, err
	}
	_, err = w.Write(cw.h.Sum(nil))
	return h, err
}

// WriteBackupFile writes a backup of st into a new file at path (never
// replacing one): through a synced temporary file in the same directory,
// linked into place, so a crash leaves no file or a whole one.
func WriteBackupFile(path string, st *store.Store, dataDir string, now time.Time) (BackupHeader, int64, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return BackupHeader{}, 0, fmt.Errorf("backup: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after success: the link is the file
	defer f.Close()
	if err := f.Chmod(0o600); err != nil {
		return BackupHeader{}, 0, fmt.Errorf("backup: %w", err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	h, err := writeBackup(bw, st, dataDir, now)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	var size int64
	if err == nil {
		size, err = f.Seek(0, io.SeekCurrent)
	}
	if err == nil {
		err = os.Link(tmp, path)
	}
	if err == nil {
		err = syncDirOf(path)
	}
	if err != nil {
		return h, 0, fmt.Errorf("backup: %w", err)
	}
	return h, size, nil
}

func syncDirOf(path string) error {
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// verifyBackup checks a backup file's checksum over its whole length, and
// returns its header and the offset and length of its database stream.
func verifyBackup(f *os.File) (BackupHeader, int64, int64, error) {
	st, err := f.Stat()
	if err != nil {
		return BackupHeader{}, 0, 0, err
	}
	size := st.Size()
	if size < int64(backupFixedLen+8+backupTrailer) {
		return BackupHeader{}, 0, 0, fmt.Errorf("%w: %d bytes is too short", ErrBackupCorrupt, size)
	}
	sum := sha256.New()
	if _, err := io.Copy(sum, io.NewSectionReader(f, 0, size-sha256.Size)); err != nil {
		return BackupHeader{}, 0, 0, err
	}
	want := make([]byte, sha256.Size)
	if _, err := f.ReadAt(want, size-sha256.Size); err != nil {
		return BackupHeader{}, 0, 0, err
	}
	if !bytes.Equal(sum.Sum(nil), want) {
		return BackupHeader{}, 0, 0, fmt.Errorf("%w: checksum mismatch", ErrBackupCorrupt)
	}
	cr := &countReader{r: bufio.NewReader(io.NewSectionReader(f, 0, size))}
	h, err := DecodeBackupHeader(cr)
	if err != nil {
		return h, 0, 0, err
	}
	var l [8]byte
	if _, err := f.ReadAt(l[:], size-backupTrailer); err != nil {
		return h, 0, 0, err
	}
	dbLen := int64(binary.BigEndian.Uint64(l[:]))
	if dbLen != size-backupTrailer-cr.n {
		return h, 0, 0, fmt.Errorf("%w: database length %d does not fit the file", ErrBackupCorrupt, dbLen)
	}
	return h, cr.n, dbLen, nil
}

// countReader counts what is read through it.
type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// BackupDataDir writes a backup of a stopped node's data directory into a
// new file at path (meshd backup when no node answers on the socket). The
// store's lock keeps a node from starting on dataDir meanwhile.
func BackupDataDir(dataDir, path string, now time.Time) (BackupHeader, int64, error) {
	privateUmask() // runs without Main; opening the store may create files
	dbDir := filepath.Join(dataDir, "db")
	if _, err := os.Stat(dbDir); err != nil {
		return BackupHeader{}, 0, fmt.Errorf("backup: no database in %s: %w", dataDir, err)
	}
	// KeepFormat: a backup must not move an older meshd's store (and
	// so the backup) to a format version that meshd refuses.
	st, err := store.Open(dbDir, store.WithLogger(slog.New(slog.DiscardHandler)), store.KeepFormat())
	if err != nil {
		return BackupHeader{}, 0, fmt.Errorf("backup: %w", err)
	}
	h, size, err := WriteBackupFile(path, st, dataDir, now)
	if cerr := st.Close(); err == nil && cerr != nil {
		return h, size, cerr
	}
	return h, size, err
}
