package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	badger "github.com/dgraph-io/badger/v4"
)

// openBadger opens badger in dir. A power cut can leave one of badger's
// memtable logs ("00004.mem") at 0 bytes: its directory entry reached the
// disk (the store syncs the directory when badger switches memtables, and
// badger may create its next log in the meantime) but not its size, which
// badger sets right after creating it. Such a file holds nothing, not even
// its header, yet badger refuses to open a directory that has one ("while
// opening fid: 4 err: Create a new file"). When badger fails that way (it
// held the directory's lock while it failed, so no other process is using
// the directory), the empty logs are removed and badger is opened again.
// Nothing is lost: the file was empty, and what the store wrote since its
// last checkpoint is in its own write-ahead log, which the open replays.
// (badger's failed open leaves a size-polling goroutine and the mappings
// of the logs it read behind: once, in this recovery only.)
func openBadger(dir string, c *config) (*badger.DB, error) {
	db, err := badger.Open(badgerOptions(dir, c))
	if err == nil || !emptyMemtableErr(err) {
		return db, err
	}
	n, rerr := removeEmptyMemtables(dir)
	if rerr != nil {
		return nil, errors.Join(err, rerr)
	}
	if n == 0 {
		return nil, err
	}
	c.logger.Warn("store: removed empty memtable logs that a power cut left behind", "dir", dir, "files", n)
	return badger.Open(badgerOptions(dir, c))
}

// emptyMemtableErr reports whether err is badger refusing a memtable log
// of 0 bytes (badger formats the cause as text).
func emptyMemtableErr(err error) bool {
	m := err.Error()
	return strings.Contains(m, "while opening memtables") && strings.Contains(m, "Create a new file")
}

// removeEmptyMemtables removes dir's memtable logs of 0 bytes, syncs dir,
// and returns how many it removed.
func removeEmptyMemtables(dir string) (int, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("store: %w", err)
	}
	n := 0
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".mem") || !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return n, fmt.Errorf("store: %w", err)
		}
		if fi.Size() != 0 {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
			return n, fmt.Errorf("store: removing an empty memtable log: %w", err)
		}
		n++
	}
	if n > 0 {
		if err := syncDir(dir); err != nil {
			return n, fmt.Errorf("store: %w", err)
		}
	}
	return n, nil
}
