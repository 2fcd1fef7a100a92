package daemon

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"meshd.dev/meshd/daemon/store"
	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/rpcapi"
)

// smallDisk mounts a tmpfs of size bytes on a new directory and returns
// it; the mount is removed at the end of the test. It needs root (CI runs
// as root; .ci/run fails if this skips there).
func smallDisk(t *testing.T, size int64) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs (run as root, or in a user namespace: unshare -rm go test ...)")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+itoa(size)+",mode=0700"); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

func itoa(n int64) string { return string(appendInt(nil, n)) }

func appendInt(b []byte, n int64) []byte {
	if n >= 10 {
		b = appendInt(b, n/10)
	}
	return append(b, byte('0'+n%10))
}

// fillDisk writes a file into dir until only about leave bytes are free,
// and returns its path.
func fillDisk(t *testing.T, dir string, leave int64) string {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	free := int64(st.Bavail) * st.Bsize
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 1<<20)
	for n := free - leave; n > 0; n -= int64(len(chunk)) {
		if _, err := f.Write(chunk[:min(int64(len(chunk)), n)]); err != nil {
			t.Fatalf("filling the disk: %v", err)
		}
	}
	return path
}

// TestDiskFullRefusesNewCustody fills the file system under a running
// node's data directory below store.min_free: msg.send must fail with
// CodeDiskFull and take nothing; the message already in custody must stay
// and be delivered once the recipient appears; after space is freed the
// node takes messages again, without a restart. Before the reserve
// existed the send was accepted into the last megabytes of the disk.
func TestDiskFullRefusesNewCustody(t *testing.T) {
	disk := smallDisk(t, 96<<20)
	cfg := testConfig(t)
	cfg.DataDir = filepath.Join(disk, "data")
	cfg.Store.MinFree = 32 << 20
	a, stopA := startNode(t, cfg)
	defer stopA()
	b, stopB := startNode(t, testConfig(t))
	defer stopB()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	to := b.id.Address().String()

	kept, err := a.Send(ctx, rpcapi.SendParams{To: to, Text: "in custody before the disk filled"})
	if err != nil {
		t.Fatal(err)
	}
	filler := fillDisk(t, disk, 8<<20)
	_, err = a.Send(ctx, rpcapi.SendParams{To: to, Text: "refused"})
	if !errors.Is(err, rpcapi.ErrDiskFull) {
		t.Fatalf("send with 8 MiB free, reserve 32 MiB: %v, want ErrDiskFull", err)
	}
	st, err := a.StoreStats(ctx)
	if err != nil || st.Custody != 1 {
		t.Fatalf("custody while full: %+v, %v (want the one message kept)", st, err)
	}
	if !a.upkeepStats.diskLow.Load() || a.upkeepStats.refused.Load() != 1 {
		t.Errorf("disk_low %v, refused %d", a.upkeepStats.diskLow.Load(), a.upkeepStats.refused.Load())
	}

	// Space returns: the node takes messages again, and delivers both.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	again, err := a.Send(ctx, rpcapi.SendParams{To: to, Text: "after space returned"})
	if err != nil {
		t.Fatalf("send after space returned: %v", err)
	}
	evB, cancelB, _ := b.Subscribe(ctx)
	defer cancelB()
	if _, err := a.Connect(ctx, b.host.Addrs()[0]); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for len(got) < 2 {
		ev := waitKind(t, ctx, evB, rpcapi.EventMessage)
		got[ev.Message.ID]++
	}
	if got[kept.ID] != 1 || got[again.ID] != 1 {
		t.Errorf("delivered %v, want %s and %s once each", got, kept.ID, again.ID)
	}
}

// TestDiskLowDropsIncomingEnvelopes: while the disk is below the reserve,
// frames that would put a message into custody are dropped before the
// engine sees them; receipts and routing frames still pass. The frame path
// notices a full disk by itself, rechecking at most once a second.
func TestDiskLowDropsIncomingEnvelopes(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	// A reserve no disk has: every check finds the disk full.
	st, err := store.Open(t.TempDir(), store.WithLogger(slog.New(slog.DiscardHandler)), store.WithMinFree(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	n := &Node{st: st, log: slog.New(slog.DiscardHandler), now: func() time.Time { return now }}
	env := []byte{byte(protocol.KindEnvelope), 1, 2}
	if !n.refuseFrame(env) {
		t.Fatal("an envelope passed: the first one did not check the disk")
	}
	if !n.refuseFrame([]byte{byte(protocol.KindHop)}) || !n.refuseFrame([]byte{byte(protocol.KindCustodyOffer)}) {
		t.Error("a custody-carrying frame passed while the disk is low")
	}
	receipt := []byte{byte(protocol.KindReceipt), 1, 2}
	if n.refuseFrame(receipt) || n.refuseFrame([]byte{byte(protocol.KindAdvert)}) || n.refuseFrame(nil) {
		t.Error("a receipt, an advert or an empty frame was dropped")
	}
	if got := n.upkeepStats.refused.Load(); got != 3 {
		t.Errorf("refused %d, want 3", got)
	}
	// Space returns (the flag as a send would find it): within the second
	// the flag holds, after it the next frame rechecks.
	n.upkeepStats.diskLow.Store(false)
	if n.refuseFrame(env) {
		t.Error("dropped within the second although the last check found space")
	}
	now = now.Add(time.Second)
	if !n.refuseFrame(env) {
		t.Error("a second later the frame path did not recheck the disk")
	}
}

// A channel message is taken like a direct one: below the reserve
// channel.publish fails with CodeDiskFull like msg.send (it wrote the
// node's own copy into the history and flooded it to neighbours as if the
// disk had room).
func TestDiskFullRefusesChannelPublish(t *testing.T) {
	cfg := testConfig(t)
	cfg.Store.MinFree = 1 << 62 // a reserve no disk has
	n, stop := startNode(t, cfg)
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := n.ChannelCreate(ctx, "ops")
	if err != nil {
		t.Fatal(err)
	}
	_, err = n.ChannelPublish(ctx, rpcapi.ChannelPublishParams{Channel: c.ID, Text: "refused"})
	if !errors.Is(err, rpcapi.ErrDiskFull) {
		t.Fatalf("publish with the disk below the reserve: %v, want ErrDiskFull", err)
	}
	page, err := n.ChannelHistory(ctx, rpcapi.ChannelHistoryParams{Channel: c.ID})
	if err != nil || len(page.Messages) != 0 {
		t.Errorf("history after a refused publish: %+v, %v", page, err)
	}
}
