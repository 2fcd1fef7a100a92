package store

import (
	"os"

	"golang.org/x/sys/unix"
)

// datasync makes f's data durable (fdatasync: the file's size and blocks,
// not its times).
func datasync(f *os.File) error { return unix.Fdatasync(int(f.Fd())) }
