//go:build unix

package loratest

import (
	"net"
	"os"
	"syscall"
	"time"

	"github.com/creack/pty"
)

// PTY runs a fake modem on the master side of a pseudo-terminal; the host
// opens the returned path as its serial port. Closing the modem's Conn
// makes the port vanish (reads on it fail). Call Run yourself, after
// setting the knobs. keep is the test's own descriptor of the slave: until
// the host has opened the path, it keeps the master readable (with no
// slave open, reading the master fails); close it after the host opened
// the port, or the line stays up when the modem's Conn closes.
func PTY() (m *Modem, path string, keep *os.File, err error) {
	master, slave, err := pty.Open()
	if err != nil {
		return nil, "", nil, err
	}
	// creack/pty calls Fd() on the master, which switches it to blocking
	// mode; Close then cannot interrupt a Read in progress and the
	// descriptor stays open. A dup made non-blocking and wrapped by
	// os.NewFile is polled by the runtime, so Close ends a pending Read.
	fd, err := syscall.Dup(int(master.Fd()))
	master.Close()
	if err != nil {
		slave.Close()
		return nil, "", nil, err
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		slave.Close()
		return nil, "", nil, err
	}
	mf := os.NewFile(uintptr(fd), "/dev/ptmx")
	m, _ = New()
	m.Conn = fileConn{mf}
	return m, slave.Name(), slave, nil
}

// fileConn gives the pty master the net.Conn shape Modem holds.
type fileConn struct{ *os.File }

func (fileConn) LocalAddr() net.Addr                  { return nil }
func (fileConn) RemoteAddr() net.Addr                 { return nil }
func (f fileConn) SetDeadline(t time.Time) error      { return f.File.SetDeadline(t) }
func (f fileConn) SetReadDeadline(t time.Time) error  { return f.File.SetReadDeadline(t) }
func (f fileConn) SetWriteDeadline(t time.Time) error { return f.File.SetWriteDeadline(t) }
