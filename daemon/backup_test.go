package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"meshd.dev/meshd/rpcapi"
)

// backupOf writes an online backup of n into dir and returns its path.
func backupOf(t *testing.T, ctx context.Context, n *Node, dir, name string) string {
	t.Helper()
	path := filepath.Join(dir, name+backupExtension)
	res, err := n.Backup(ctx, rpcapi.BackupParams{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	if res.Address != n.id.Address().String() || res.Bytes <= 0 {
		t.Fatalf("backup result %+v", res)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v, %v (want mode 0600: it holds the secret keys)", st, err)
	}
	return path
}

// restored restores path into a new data directory and returns a config
// for it.
func restored(t *testing.T, path string) Config {
	t.Helper()
	cfg := testConfig(t)
	if _, err := Restore(cfg.DataDir, path, RestoreOptions{}); err != nil {
		t.Fatalf("restore %s: %v", filepath.Base(path), err)
	}
	return cfg
}

// TestBackupRestoreExactlyOnce backs up running nodes and restores them
// into fresh data directories: the restored node still holds its custody
// and delivers it exactly once, and a message it had delivered before the
// backup, sent again by a sender restored from a backup older than the
// receipt, is acknowledged but not delivered a second time.
func TestBackupRestoreExactlyOnce(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfgA := testConfig(t)
	a0, stopA0 := startNode(t, cfgA)
	b, stopB := startNode(t, testConfig(t))
	c, stopC := startNode(t, testConfig(t))
	defer stopC()

	// b learns a's key over a link, a goes away, and b holds m1 for a,
	// sealed; b is backed up so.
	evB, cancelB, _ := b.Subscribe(ctx)
	if _, err := a0.Connect(ctx, b.host.Addrs()[0]); err != nil {
		t.Fatal(err)
	}
	waitKind(t, ctx, evB, rpcapi.EventPeerUp)
	stopA0()
	waitKind(t, ctx, evB, rpcapi.EventPeerDown)
	m1, err := b.Send(ctx, rpcapi.SendParams{To: a0.id.Address().String(), Text: "m1"})
	if err != nil {
		t.Fatal(err)
	}
	fileB := backupOf(t, ctx, b, dir, "b")
	// a comes back, holds m2 for c, receives m1, and is backed up with
	// both.
	a, stopA := startNode(t, cfgA)
	m2, err := a.Send(ctx, rpcapi.SendParams{To: c.id.Address().String(), Text: "m2"})
	if err != nil {
		t.Fatal(err)
	}
	evA, cancelA, _ := a.Subscribe(ctx)
	if _, err := a.Connect(ctx, b.host.Addrs()[0]); err != nil {
		t.Fatal(err)
	}
	if got := waitKind(t, ctx, evA, rpcapi.EventMessage); got.Message.ID != m1.ID {
		t.Fatalf("a got %s, want m1 %s", got.Message.ID, m1.ID)
	}
	waitKind(t, ctx, evB, rpcapi.EventDelivered)
	cancelA()
	cancelB()
	fileA := backupOf(t, ctx, a, dir, "a")
	stopA()
	stopB()

	a2, stopA2 := startNode(t, restored(t, fileA))
	defer stopA2()
	b2, stopB2 := startNode(t, restored(t, fileB))
	defer stopB2()
	if a2.id.Address() != a.id.Address() || b2.id.Address() != b.id.Address() {
		t.Fatal("restored nodes have other addresses")
	}
	st, err := a2.StoreStats(ctx)
	if err != nil || st.Custody != 1 || st.Delivered != 1 || st.Inbox != 1 {
		t.Fatalf("restored a: %+v, %v (want m2 in custody, m1 delivered and in the inbox)", st, err)
	}

	evA2, cancelA2, _ := a2.Subscribe(ctx)
	defer cancelA2()
	evB2, cancelB2, _ := b2.Subscribe(ctx)
	defer cancelB2()
	evC, cancelC, _ := c.Subscribe(ctx)
	defer cancelC()
	// b2 sends m1 again; a2 answers with a receipt and delivers nothing.
	if _, err := b2.Connect(ctx, a2.host.Addrs()[0]); err != nil {
		t.Fatal(err)
	}
	if got := waitKind(t, ctx, evB2, rpcapi.EventDelivered); got.ID != m1.ID {
		t.Fatalf("b2's receipt for %s, want m1 %s", got.ID, m1.ID)
	}
	// a2's custody of m2 reaches c once.
	if _, err := a2.Connect(ctx, c.host.Addrs()[0]); err != nil {
		t.Fatal(err)
	}
	if got := waitKind(t, ctx, evC, rpcapi.EventMessage); got.Message.ID != m2.ID {
		t.Fatalf("c got %s, want m2 %s", got.Message.ID, m2.ID)
	}
	if got := waitKind(t, ctx, evA2, rpcapi.EventDelivered); got.ID != m2.ID {
		t.Fatalf("a2's receipt for %s, want m2 %s", got.ID, m2.ID)
	}
	// The receipt for m1 came before; every event a2 published since
	// was read up to m2's receipt: none may be a delivery.
	for {
		select {
		case ev := <-evA2:
			if ev.Kind == rpcapi.EventMessage {
				t.Errorf("restored a delivered %s again", ev.Message.ID)
			}
			continue
		default:
		}
		break
	}
	sa, _ := a2.StoreStats(ctx)
	sc, _ := c.StoreStats(ctx)
	if sa.Inbox != 1 || sa.Custody != 0 || sc.Inbox != 1 {
		t.Errorf("after: a2 %+v, c %+v (want a2's inbox 1 and custody 0, c's inbox 1)", sa, sc)
	}
}

// A backup of another node is refused unless forced; a forced restore
// moves the data directory's keys aside and makes it the backup's node.
func TestRestoreAnotherNodeRefused(t *testing.T) {
	dir := t.TempDir()
	n, stop := startNode(t, testConfig(t))
	path := backupOf(t, context.Background(), n, dir, "n")
	stop()

	other := t.TempDir()
	if _, _, err := LoadOrCreateIdentity(other, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(other, path, RestoreOptions{}); !errors.Is(err, ErrOtherNode) {
		t.Fatalf("restore over another identity: %v, want ErrOtherNode", err)
	}
	if _, err := os.Stat(filepath.Join(other, "db")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused restore left a database: %v", err)
	}
	h, err := Restore(other, path, RestoreOptions{Force: true})
	if err != nil {
		t.Fatalf("forced: %v", err)
	}
	id, _, err := LoadOrCreateIdentity(other, nil)
	if err != nil || id.Address() != h.Address || h.Address != n.id.Address() {
		t.Fatalf("after a forced restore the identity is %v (%v), want %s", id.Address(), err, n.id.Address())
	}
	if _, err := os.Stat(filepath.Join(other, IdentityFileName+".replaced")); err != nil {
		t.Errorf("the replaced identity key was not kept: %v", err)
	}
	// A second restore into the now full directory is refused.
	if _, err := Restore(other, path, RestoreOptions{}); !errors.Is(err, ErrRestoreTarget) {
		t.Errorf("restore over a database: %v, want ErrRestoreTarget", err)
	}
}

// Truncated and damaged backups are refused with ErrBackupCorrupt before
// anything is written.
func TestRestoreCorruptBackup(t *testing.T) {
	dir := t.TempDir()
	n, stop := startNode(t, testConfig(t))
	path := backupOf(t, context.Background(), n, dir, "n")
	stop()
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte {
		b := append([]byte(nil), good...)
		b[i] ^= 0x40
		return b
	}
	for name, data := range map[string][]byte{
		"empty":           {},
		"header only":     good[:backupFixedLen],
		"truncated":       good[:len(good)/2],
		"no checksum":     good[:len(good)-32],
		"flipped magic":   flip(0),
		"flipped address": flip(10),
		"flipped db":      flip(len(good) - backupTrailer - 5),
		"flipped sum":     flip(len(good) - 1),
		"not a backup":    []byte("#!/bin/sh\necho hello\n"),
	} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "bad"+backupExtension)
			if err := os.WriteFile(p, data, 0o600); err != nil {
				t.Fatal(err)
			}
			target := filepath.Join(t.TempDir(), "data")
			if _, err := Restore(target, p, RestoreOptions{}); !errors.Is(err, ErrBackupCorrupt) {
				t.Fatalf("restore: %v, want ErrBackupCorrupt", err)
			}
			if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a refused restore touched the data directory: %v", err)
			}
		})
	}
}

// A backup whose checksum is right but whose database stream is crafted
// (a chunk length past the end, or chunks that are not badger's) is
// refused with ErrBackupCorrupt: the checksum is no signature, anyone can
// compute it.
func TestRestoreCraftedStream(t *testing.T) {
	hdr := fuzzHeader(t)
	for name, stream := range map[string][]byte{
		"huge chunk":    {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 1, 2, 3},
		"garbage chunk": {5, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff},
		"stray bytes":   {1, 2, 3},
	} {
		t.Run(name, func(t *testing.T) {
			b := append(append([]byte(nil), hdr...), stream...)
			b = binary.BigEndian.AppendUint64(b, uint64(len(stream)))
			sum := sha256.Sum256(b)
			p := filepath.Join(t.TempDir(), "crafted"+backupExtension)
			if err := os.WriteFile(p, append(b, sum[:]...), 0o600); err != nil {
				t.Fatal(err)
			}
			target := filepath.Join(t.TempDir(), "data")
			if _, err := Restore(target, p, RestoreOptions{}); !errors.Is(err, ErrBackupCorrupt) {
				t.Fatalf("restore: %v, want ErrBackupCorrupt", err)
			}
			if _, err := os.Stat(filepath.Join(target, "db")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a refused restore left a database: %v", err)
			}
		})
	}
}
