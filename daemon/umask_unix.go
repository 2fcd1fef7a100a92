//go:build unix

package daemon

import "syscall"

// privateUmask makes every file the process creates private to its user:
// badger creates its files 0666 and relies on the umask.
func privateUmask() { syscall.Umask(0o077) }
