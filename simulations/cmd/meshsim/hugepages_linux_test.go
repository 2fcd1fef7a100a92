//go:build linux

package main

import (
	"os"
	"path/filepath"
	"testing"
)

// anonRange picks the Go heap's mappings out of /proc/self/maps and
// nothing else: advising a file mapping or a stack would be wrong.
func TestAnonRange(t *testing.T) {
	for _, tc := range []struct {
		line   string
		lo, hi uintptr
		ok     bool
	}{
		{"c000000000-c004000000 rw-p 00000000 00:00 0 ", 0xc000000000, 0xc004000000, true},
		{"7f1c2a000000-7f1c2e000000 rw-p 00000000 00:00 0                          [anon: Go: heap]", 0x7f1c2a000000, 0x7f1c2e000000, true},
		{"7ffd1a2b3000-7ffd1a2d4000 rw-p 00000000 00:00 0                          [stack]", 0, 0, false},
		{"0c4ba000-0c4db000 rw-p 00000000 00:00 0                                  [heap]", 0, 0, false},
		{"7f1c2a000000-7f1c2e000000 r--p 00000000 00:00 0 ", 0, 0, false},
		{"7f1c2a000000-7f1c2e000000 rw-s 00000000 00:05 123 /dev/zero (deleted)", 0, 0, false},
		{"00400000-00600000 rw-p 00000000 08:01 42 /usr/bin/meshsim", 0, 0, false},
		{"c004000000-c000000000 rw-p 00000000 00:00 0 ", 0, 0, false},
		{"zz-c000000000 rw-p 00000000 00:00 0 ", 0, 0, false},
		{"garbage", 0, 0, false},
	} {
		lo, hi, ok := anonRange([]byte(tc.line))
		if lo != tc.lo || hi != tc.hi || ok != tc.ok {
			t.Errorf("%q: %#x-%#x %v, want %#x-%#x %v", tc.line, lo, hi, ok, tc.lo, tc.hi, tc.ok)
		}
	}
}

// A pass over the test binary's own mappings and a stop that waits for
// the goroutine: nothing to see but no crash and no leak (run under -race).
func TestHugePagesStartStop(t *testing.T) {
	hugePagesPass(make(map[uintptr]bool))
	stop := startHugePages()
	stop()
}

// With transparent huge pages set to never (or no THP in the kernel), the
// pass asks the kernel for nothing: MADV_COLLAPSE would collapse pages
// regardless of the administrator's setting.
func TestHugePagesRespectNever(t *testing.T) {
	dir := t.TempDir()
	oldFile, oldFn := thpEnabled, madviseFn
	t.Cleanup(func() { thpEnabled, madviseFn = oldFile, oldFn })
	calls := 0
	madviseFn = func(addr, n uintptr, advice int) { calls++ }
	for _, tc := range []struct {
		mode string // "" for no file
		want bool   // madvise called
	}{
		{"always madvise [never]\n", false},
		{"", false},
		{"always [madvise] never\n", true},
		{"[always] madvise never\n", true},
	} {
		thpEnabled = filepath.Join(dir, "missing")
		if tc.mode != "" {
			thpEnabled = filepath.Join(dir, "enabled")
			if err := os.WriteFile(thpEnabled, []byte(tc.mode), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		calls = 0
		hugePagesPass(make(map[uintptr]bool))
		if got := calls > 0; got != tc.want {
			t.Errorf("THP mode %q: %d madvise calls, want calls %v", tc.mode, calls, tc.want)
		}
	}
}
