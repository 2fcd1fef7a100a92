//go:build !linux

package store

import "os"

// datasync makes f's data durable: a full fsync where fdatasync is not
// offered (on macOS, os.File.Sync asks the drive to flush its cache too).
func datasync(f *os.File) error { return f.Sync() }
