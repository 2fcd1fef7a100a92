package daemon

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// listenNotify opens a datagram socket like systemd's notify socket. The
// directory is short: unix socket paths are limited to 108 bytes.
func listenNotify(t *testing.T) (string, *net.UnixConn) {
	t.Helper()
	dir, err := os.MkdirTemp("", "sdn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return path, conn
}

func readDatagram(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	// A deadline, not a sleep: the datagram is already queued when
	// sdNotify returns, so this only bounds a failure.
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("reading the notify socket: %v", err)
	}
	return string(buf[:n])
}

func TestSDNotifySendsState(t *testing.T) {
	path, conn := listenNotify(t)
	t.Setenv("NOTIFY_SOCKET", path)
	sent, err := sdNotify("READY=1\nSTATUS=ready")
	if err != nil || !sent {
		t.Fatalf("sdNotify: sent %v, err %v", sent, err)
	}
	if got := readDatagram(t, conn); got != "READY=1\nSTATUS=ready" {
		t.Errorf("datagram %q", got)
	}
}

func TestSDNotifyAbstractSocket(t *testing.T) {
	name := "@meshd-test-" + filepath.Base(t.TempDir())
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: "\x00" + name[1:], Net: "unixgram"})
	if err != nil {
		t.Skipf("no abstract unix sockets here: %v", err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", name)
	if _, err := sdNotify("STOPPING=1"); err != nil {
		t.Fatal(err)
	}
	if got := readDatagram(t, conn); got != "STOPPING=1" {
		t.Errorf("datagram %q", got)
	}
}

func TestSDNotifyWithoutSocket(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if sent, err := sdNotify("READY=1"); sent || err != nil {
		t.Errorf("without NOTIFY_SOCKET: sent %v, err %v", sent, err)
	}
}

func TestSDNotifyBadSocket(t *testing.T) {
	for _, socket := range []string{"relative/path", filepath.Join(t.TempDir(), "nobody-listens")} {
		t.Setenv("NOTIFY_SOCKET", socket)
		if _, err := sdNotify("READY=1"); !errors.Is(err, ErrNotify) {
			t.Errorf("NOTIFY_SOCKET=%q: err %v, want ErrNotify", socket, err)
		}
	}
}
