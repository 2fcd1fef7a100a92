//go:build linux

package rnode

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// PTY is a modem plugged into a pseudo-terminal: a host opens Path (or
// Link) as it would open /dev/ttyACM0.
type PTY struct {
	// Name is the modem's name.
	Name string
	// Path is the terminal's device, /dev/pts/N.
	Path string
	// Link, if set, is a symbolic link to Path that exists while the modem
	// is plugged in: a stable name across unplug and replug, as udev gives
	// a real modem.
	Link string

	h             *Hub
	conn          *Conn
	master, slave *os.File
	once          sync.Once
	done          chan struct{}
}

// ServePTY plugs the modem name into a new pseudo-terminal and serves it
// until [PTY.Close] or the modem is unplugged. link may be empty.
//
// The emulator keeps the terminal's own side open too, in raw mode: the
// host may close and reopen it without the modem noticing (as with a
// real serial port), and bytes are never echoed or translated before the
// host sets its own mode.
func ServePTY(h *Hub, name, link string) (*PTY, error) {
	master, slave, err := pty.Open()
	if err != nil {
		return nil, fmt.Errorf("rnode: opening a pseudo-terminal (is /dev/ptmx there?): %w", err)
	}
	if master, err = pollable(master); err != nil {
		slave.Close()
		return nil, err
	}
	if err := makeRaw(slave); err != nil {
		master.Close()
		slave.Close()
		return nil, err
	}
	p := &PTY{Name: name, Path: slave.Name(), Link: link, h: h, master: master, slave: slave, done: make(chan struct{})}
	if link != "" {
		if err := replaceLink(slave.Name(), link); err != nil {
			p.closeFiles()
			return nil, err
		}
	}
	c, err := h.plug(name, false) // the host opens the terminal after the boot
	if err != nil {
		p.closeFiles()
		return nil, err
	}
	p.conn = c
	go p.toModem()
	go p.toHost()
	return p, nil
}

// pollable returns f as a file in non-blocking mode: creack/pty's ioctls
// call Fd, which puts the master in blocking mode, and a read blocked in the
// kernel would keep the master open after Close (the host would never see
// the hangup of an unplugged modem).
func pollable(f *os.File) (*os.File, error) {
	fd, err := unix.Dup(int(f.Fd()))
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("rnode: %w", err)
	}
	unix.CloseOnExec(fd)
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("rnode: %w", err)
	}
	return os.NewFile(uintptr(fd), "/dev/ptmx"), nil
}

// makeRaw sets a terminal to raw 8-bit mode (cfmakeraw).
func makeRaw(f *os.File) error {
	fd := int(f.Fd())
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return fmt.Errorf("rnode: reading terminal settings: %w", err)
	}
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB
	t.Cflag |= unix.CS8
	t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, t); err != nil {
		return fmt.Errorf("rnode: setting raw mode: %w", err)
	}
	return nil
}

// replaceLink points link at target, replacing a link (never a file)
// already there.
func replaceLink(target, link string) error {
	if fi, err := os.Lstat(link); err == nil {
		if fi.Mode()&os.ModeSymlink == 0 {
			return fmt.Errorf("%w: %s exists and is not a symbolic link", ErrConfig, link)
		}
		if err := os.Remove(link); err != nil {
			return fmt.Errorf("rnode: %w", err)
		}
	}
	if err := os.Symlink(target, link); err != nil {
		return fmt.Errorf("rnode: %w", err)
	}
	return nil
}

// toModem copies what the host writes to the modem.
func (p *PTY) toModem() {
	buf := make([]byte, 4096)
	for {
		n, err := p.master.Read(buf)
		if n > 0 {
			if _, werr := p.conn.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// toHost copies what the modem sends to the host, and tears the terminal
// down when the modem is unplugged.
func (p *PTY) toHost() {
	defer close(p.done)
	defer p.closeFiles()
	_, err := io.Copy(p.master, p.conn)
	if err != nil && !errors.Is(err, os.ErrClosed) {
		return
	}
}

func (p *PTY) closeFiles() {
	p.once.Do(func() {
		if p.Link != "" {
			if target, err := os.Readlink(p.Link); err == nil && target == p.Path {
				os.Remove(p.Link)
			}
		}
		p.master.Close()
		p.slave.Close()
	})
}

// Close unplugs the modem: the terminal disappears (the host's reads fail)
// and so does the link.
func (p *PTY) Close() error {
	err := p.h.Unplug(p.Name)
	p.closeFiles() // also unblocks a write to a host that stopped reading
	<-p.done
	return err
}
