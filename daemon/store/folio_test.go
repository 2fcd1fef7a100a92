package store

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestSegmentSmallFolios checks that a new log segment is cached in small
// folios. The kernel counts write_bytes when a page-cache folio becomes
// dirty, by the whole folio: a 4 KB pwrite into a clean folio of a
// segment counts that folio's size. A segment written in one 16 MiB write
// lives in folios of up to 2 MiB (and each record's pwrite then walks all
// of a folio's block buffers); one written by writeFileSynced must count
// at most walWriteChunk per record. The test skips where the file system
// or the kernel does not build large folios from one big write (the
// reference file below shows the effect first).
func TestSegmentSmallFolios(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("write_bytes accounting of /proc/thread-self/io is Linux's")
	}
	runtime.LockOSThread() // /proc/thread-self/io counts this thread
	defer runtime.UnlockOSThread()
	dir := t.TempDir()
	const size = 4 << 20
	big := filepath.Join(dir, "one-write")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(make([]byte, size)); err != nil { // the old way
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if perRecord(t, big) <= walWriteChunk {
		t.Skip("this kernel or file system caches a big write in small folios")
	}
	seg := filepath.Join(dir, "chunked")
	if err := writeFileSynced(seg, make([]byte, size), false); err != nil {
		t.Fatal(err)
	}
	// One page of slack: the thread's write_bytes once counted a page
	// besides the record's folio (69,632 bytes, under -race in CI), while
	// the folios of a big write count 128 KiB to 2 MiB.
	if got := perRecord(t, seg); got > walWriteChunk+4096 {
		t.Fatalf("a 4 KB record dirtied %d bytes of page cache: the segment is cached in folios above %d bytes", got, walWriteChunk)
	}
}

// perRecord syncs name, writes 4 KB records into it one after another,
// each at the middle of a fresh 256 KiB stretch and synced, and returns
// the most write_bytes one record added for this thread.
func perRecord(t *testing.T, name string) int64 {
	t.Helper()
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		t.Fatal(err)
	}
	rec := bytes.Repeat([]byte{0xa5}, 4096)
	var most int64
	for off := int64(128 << 10); off < 4<<20; off += 256 << 10 {
		before := writeBytes(t)
		if _, err := f.WriteAt(rec, off); err != nil {
			t.Fatal(err)
		}
		most = max(most, writeBytes(t)-before)
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			t.Fatal(err)
		}
	}
	return most
}

// writeBytes reads write_bytes of /proc/thread-self/io.
func writeBytes(t *testing.T) int64 {
	t.Helper()
	f, err := os.Open("/proc/thread-self/io")
	if err != nil {
		t.Skip("no /proc/thread-self/io:", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "write_bytes: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Skip("no write_bytes in /proc/thread-self/io (task I/O accounting off)")
	return 0
}
