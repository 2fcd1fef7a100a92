package lora

import (
	"context"
	"errors"
	"meshd.dev/meshd/transports/lora/loratest"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
)

// ptyModem runs the fake modem on the master side of a pseudo-terminal and
// returns the slave's path, which the driver opens as a serial port.
func ptyModem(t *testing.T) (*loratest.Modem, *os.File, *os.File) {
	t.Helper()
	master, slave, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	master = pollable(t, master)
	m := &loratest.Modem{Conn: fileConn{master}, DetectResp: 0x46, Firmware: [2]byte{1, 0x56}, MaxTxPower: 17,
		Override: map[byte]func() []byte{}}
	go m.Run()
	return m, master, slave
}

// pollable returns the pty master as a non-blocking, runtime-polled file.
// creack/pty calls Fd() on the master, which switches it to blocking mode;
// Close then cannot interrupt a Read in progress and the descriptor stays
// open (the modem would never "vanish"). A dup made non-blocking and
// wrapped by os.NewFile is polled, so Close ends a pending Read.
func pollable(t *testing.T, f *os.File) *os.File {
	t.Helper()
	fd, err := syscall.Dup(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := syscall.SetNonblock(fd, true); err != nil {
		t.Fatal(err)
	}
	return os.NewFile(uintptr(fd), "/dev/ptmx")
}

// fileConn adapts the pty master to the net.Conn the fake modem holds.
type fileConn struct{ *os.File }

func (fileConn) LocalAddr() net.Addr                { return nil }
func (fileConn) RemoteAddr() net.Addr               { return nil }
func (f fileConn) SetDeadline(t time.Time) error    { return f.File.SetDeadline(t) }
func (f fileConn) SetReadDeadline(time.Time) error  { return nil }
func (f fileConn) SetWriteDeadline(time.Time) error { return nil }

// TestDriverOverPTY runs start-up, a received packet, a send and an unplug
// over a real pseudo-terminal through go.bug.st/serial.
func TestDriverOverPTY(t *testing.T) {
	m, master, slave := ptyModem(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	port, err := OpenSerial(ctx, slave.Name())
	if err != nil {
		t.Fatal(err)
	}
	// Until the driver had its own descriptor, this one kept the master
	// readable (with no slave open, reading the master fails); now it
	// must go, or the line would stay up after the master closes.
	slave.Close()
	d, err := Start(ctx, port, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	m.Receive([]byte{0xC0, 1, 0xDB}, -110, -3.5)
	select {
	case p := <-d.Packets():
		if len(p.Data) != 3 || p.RSSI != -110 || p.SNR != -3.5 {
			t.Fatalf("packet %+v", p)
		}
	case <-ctx.Done():
		t.Fatal("no packet over the pty")
	}
	if err := d.Send(ctx, []byte{0xC0, 0xDB, 7}); err != nil {
		t.Fatal(err)
	}
	master.Close() // the modem vanishes
	select {
	case <-d.Done():
	case <-ctx.Done():
		t.Fatal("driver did not notice the pty closing")
	}
	if !errors.Is(d.Err(), ErrPort) {
		t.Fatalf("driver ended with %v, want ErrPort", d.Err())
	}
}
