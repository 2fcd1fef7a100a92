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
//
// A value log file ("000007.vlog") can be left empty the same way (the
// store syncs a new one before the directory, durable.go, but badger may
// start one between the directory read and its sync), and badger refuses
// it too ("Open existing file: ... Create a new file"), after growing it
// to its full size (so that the file is no longer recognisably empty).
// So before badger opens, an empty value log file is given the header
// badger writes into a new one. It is not removed: its number would be
// given to badger's next file, and a value pointer into the lost file
// (kept by a memtable log for a write after the last checkpoint, which
// replay writes again) would read that file's bytes until then. (The
// header is written only into a file of 0 bytes: were another process
// running badger on the directory, a file it just created and not yet
// sized, its own header write would follow ours.)
func openBadger(dir string, c *config) (*badger.DB, error) {
	if n, err := repairEmptyVlogs(dir); err != nil {
		return nil, err
	} else if n > 0 {
		c.logger.Warn("store: gave empty value log files that a power cut left behind their header", "dir", dir, "files", n)
	}
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

// vlogHeaderSize is the size of the header badger starts a value log file
// with: the id of its encryption key (8 bytes, 0: none) and a base IV (12
// bytes, unused without encryption).
const vlogHeaderSize = 20

// removeEmptyMemtables removes dir's memtable logs of 0 bytes, syncs dir,
// and returns how many it removed.
func removeEmptyMemtables(dir string) (int, error) {
	return repairEmpty(dir, ".mem", func(path string) error { return os.Remove(path) })
}

// repairEmptyVlogs writes the header into dir's value log files of 0
// bytes, syncs them and dir, and returns how many it repaired.
func repairEmptyVlogs(dir string) (int, error) {
	return repairEmpty(dir, ".vlog", func(path string) error {
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		if fi, err := f.Stat(); err != nil || fi.Size() != 0 {
			return err
		}
		if _, err := f.WriteAt(make([]byte, vlogHeaderSize), 0); err != nil {
			return err
		}
		return f.Sync()
	})
}

// repairEmpty calls fix on every regular file of dir named *suffix that
// has 0 bytes, syncs dir if there was one, and returns how many.
func repairEmpty(dir, suffix string, fix func(path string) error) (int, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("store: %w", err)
	}
	n := 0
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), suffix) || !e.Type().IsRegular() {
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
		if err := fix(filepath.Join(dir, e.Name())); err != nil {
			return n, fmt.Errorf("store: repairing the empty badger log %s: %w", e.Name(), err)
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
