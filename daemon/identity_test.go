package daemon

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"meshd.dev/meshd/daemon/store"
	"meshd.dev/meshd/internal/powerloss"
)

func TestHostKeyFile(t *testing.T) {
	dir := t.TempDir()
	id, _, err := LoadOrCreateIdentity(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	k1, created, err := LoadOrCreateHostKey(dir, nil)
	if err != nil || !created {
		t.Fatalf("first start: created=%v err=%v", created, err)
	}
	if bytes.Equal(k1, id.SigningKey()) || k1.Public().(ed25519.PublicKey).Equal(id.SigningKey().Public()) {
		t.Fatal("the host key is the identity key")
	}
	p := filepath.Join(dir, HostKeyFileName)
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("host key file mode %v, want 0600", st.Mode().Perm())
	}
	k2, created, err := LoadOrCreateHostKey(dir, nil)
	if err != nil || created || !bytes.Equal(k1, k2) {
		t.Fatalf("second start: created=%v err=%v same=%v", created, err, bytes.Equal(k1, k2))
	}
	if err := os.Chmod(p, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreateHostKey(dir, nil); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("group-readable key: %v", err)
	}
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(p)
	raw[10] ^= 1
	if err := os.WriteFile(p, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreateHostKey(dir, nil); !errors.Is(err, ErrHostKeyFile) {
		t.Errorf("damaged key: %v", err)
	}
}

// logBuffer collects a logger's output.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// openLogged opens a node on cfg, returns its peer ID and log, and closes
// it.
func openLogged(t *testing.T, cfg Config) (peer.ID, string) {
	t.Helper()
	var buf logBuffer
	n, err := Open(context.Background(), cfg, Options{Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	p := n.host.ID()
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	return p, buf.String()
}

// A data directory of an older meshd holds only the identity key, which
// was also the libp2p key. The first start creates a host key of its own,
// says once that the peer ID changed, and keeps the mesh address.
func TestOldDataDirMigrates(t *testing.T) {
	cfg := testConfig(t)
	id, _, err := LoadOrCreateIdentity(cfg.DataDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := crypto.UnmarshalEd25519PublicKey(id.SigningKey().Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	oldPeer, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	const warning = "peer ID has changed"

	p1, log1 := openLogged(t, cfg)
	if p1 == oldPeer {
		t.Fatal("the peer ID is still the identity key's")
	}
	if strings.Count(log1, warning) != 1 {
		t.Errorf("first start of an old data directory: want the peer ID warning once, log:\n%s", log1)
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, HostKeyFileName)); err != nil {
		t.Fatal(err)
	}
	again, _, err := LoadOrCreateIdentity(cfg.DataDir, nil)
	if err != nil || again.Address() != id.Address() {
		t.Fatalf("identity after migration: %v", err)
	}

	p2, log2 := openLogged(t, cfg)
	if p2 != p1 {
		t.Errorf("peer ID changed again on the next start: %s, then %s", p1, p2)
	}
	if strings.Contains(log2, warning) {
		t.Errorf("peer ID warning on a later start:\n%s", log2)
	}
}

// A new node (no identity yet) gets both keys and no migration warning.
func TestNewDataDirHasNoMigrationWarning(t *testing.T) {
	_, log := openLogged(t, testConfig(t))
	if strings.Contains(log, "peer ID has changed") {
		t.Errorf("peer ID warning on a new node:\n%s", log)
	}
}

// The key files are written so that a power cut right after they were
// created leaves them whole: on internal/powerloss, which keeps only what
// was fsynced, the keys read back after the cut are the ones created.
func TestKeyFilesSurvivePowerLoss(t *testing.T) {
	fs := powerloss.New(nil)
	mnt := t.TempDir()
	srv, err := powerloss.Mount(fs, mnt)
	if errors.Is(err, powerloss.ErrUnavailable) {
		t.Skipf("power-loss test skipped: %v (it needs root and /dev/fuse; CI runs it)", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(mnt, "data", "meshd")
	if err := store.MkdirDurable(dataDir); err != nil {
		t.Fatal(err)
	}
	id, _, err := LoadOrCreateIdentity(dataDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	key, _, err := LoadOrCreateHostKey(dataDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	after := powerloss.New(fs.Cut())
	if err := srv.Unmount(); err != nil {
		t.Fatal(err)
	}
	if srv, err = powerloss.Mount(after, mnt); err != nil {
		t.Fatal(err)
	}
	defer srv.Unmount()
	id2, created, err := LoadOrCreateIdentity(dataDir, nil)
	if err != nil || created || id2.Address() != id.Address() {
		t.Fatalf("identity after the power cut: created=%v err=%v", created, err)
	}
	key2, created, err := LoadOrCreateHostKey(dataDir, nil)
	if err != nil || created || !bytes.Equal(key2, key) {
		t.Fatalf("host key after the power cut: created=%v err=%v", created, err)
	}
}

// countingReader is a random source that counts its reads and fails
// after the first, so a loop that keeps generating keys shows.
type countingReader struct{ n int }

func (r *countingReader) Read(p []byte) (int, error) {
	r.n++
	if r.n > 1 {
		return 0, errors.New("read again")
	}
	for i := range p {
		p[i] = byte(i)
	}
	return len(p), nil
}

// TestDanglingKeySymlink: a key file that is a symlink to nothing (a
// secrets volume not mounted yet) must give a clear error at once. Before
// the fix Stat said "does not exist", the hard link said "exists", and the
// function called itself again without end, generating a key each time
// (until the stack ran out).
func TestDanglingKeySymlink(t *testing.T) {
	for _, name := range []string{HostKeyFileName, IdentityFileName} {
		dir := t.TempDir()
		if err := os.Symlink(filepath.Join(dir, "missing", "key"), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
		r := &countingReader{}
		var err error
		if name == HostKeyFileName {
			_, _, err = LoadOrCreateHostKey(dir, r)
		} else {
			_, _, err = LoadOrCreateIdentity(dir, r)
		}
		if err == nil || r.n > 1 || strings.Contains(err.Error(), "read again") {
			t.Errorf("%s: error %v after %d random reads, want a clear error after at most one", name, err, r.n)
		}
	}
}
