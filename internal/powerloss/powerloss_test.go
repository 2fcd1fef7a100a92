package powerloss

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// mountT mounts fs on a new directory, skipping the test where FUSE is not
// available, and unmounts it at the end.
func mountT(t *testing.T, fs *FS) string {
	t.Helper()
	dir := t.TempDir()
	srv, err := Mount(fs, dir)
	if errors.Is(err, ErrUnavailable) {
		t.Skipf("power-loss layer not available here (needs root and /dev/fuse): %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
		}
	})
	return dir
}

func syncPath(t *testing.T, p string) {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

func writeSynced(t *testing.T, p, content string, sync bool) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(content); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
}

// cutAndRemount cuts the power on fs and mounts what survived.
func cutAndRemount(t *testing.T, fs *FS) string {
	t.Helper()
	return mountT(t, New(fs.Cut()))
}

func readOr(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return string(b)
}

// The model, each rule with a case that keeps data and one that loses it.
func TestModel(t *testing.T) {
	fs := New(nil)
	mnt := mountT(t, fs)
	j := func(name string) string { return filepath.Join(mnt, name) }

	writeSynced(t, j("kept"), "kept", true) // file and directory synced below
	writeSynced(t, j("unsynced"), "unsynced", false)
	writeSynced(t, j("grown"), "v1", true)
	if err := os.Mkdir(j("sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	writeSynced(t, j("sub/orphan"), "orphan", true) // sub itself is never synced
	writeSynced(t, j("renamed.tmp"), "renamed", true)
	writeSynced(t, j("gone"), "gone", true)
	syncPath(t, mnt)

	// After the directory sync: a write without fsync, a rename and an
	// unlink, none of them synced.
	f, err := os.OpenFile(j("grown"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(" and v2")
	f.Close()
	if err := os.Rename(j("renamed.tmp"), j("renamed")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(j("gone")); err != nil {
		t.Fatal(err)
	}
	if got := readOr(j("grown")); got != "v1 and v2" {
		t.Fatalf("live content %q", got)
	}

	after := cutAndRemount(t, fs)
	if _, err := os.Stat(j("kept")); !errors.Is(err, syscall.EIO) {
		t.Errorf("old mount after the cut: %v, want EIO", err)
	}
	a := func(name string) string { return readOr(filepath.Join(after, name)) }
	want := map[string]string{
		"kept":        "kept",
		"unsynced":    "",   // the name was synced, the bytes were not
		"grown":       "v1", // the append was not synced
		"renamed.tmp": "renamed",
		"gone":        "gone", // the unlink was not synced
	}
	for name, w := range want {
		if got := a(name); got != w {
			t.Errorf("%s after the cut: %q, want %q", name, got, w)
		}
	}
	if _, err := os.Stat(filepath.Join(after, "renamed")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("unsynced rename survived: %v", err)
	}
	if _, err := os.Stat(filepath.Join(after, "sub", "orphan")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("file in an unsynced directory survived: %v", err)
	}
}

// mmapChild names the file the child of TestModelMmap maps.
const mmapChild = "POWERLOSS_TEST_MMAP_CHILD"

func TestMain(m *testing.M) {
	if p, ok := os.LookupEnv(mmapChild); ok {
		os.Exit(runMmapChild(p))
	}
	os.Exit(m.Run())
}

// runMmapChild writes two pages of p through a shared mapping, msyncs the
// first only, says "done" and waits to be killed.
func runMmapChild(p string) int {
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	m, err := syscall.Mmap(int(f.Fd()), 0, 8192, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	copy(m, "synced page")
	if err := unix.Msync(m, unix.MS_SYNC); err != nil {
		fmt.Println(err)
		return 1
	}
	copy(m[4096:], "unsynced page")
	fmt.Println("done")
	io.Copy(io.Discard, os.Stdin) // until killed
	return 0
}

// Writes through a shared mapping are durable after msync, lost without.
// The mapping is made by a child process: a page fault on a FUSE mapping
// served by the faulting process itself can deadlock it.
func TestModelMmap(t *testing.T) {
	fs := New(nil)
	mnt := mountT(t, fs)
	p := filepath.Join(mnt, "mapped")
	writeSynced(t, p, string(make([]byte, 8192)), true)
	syncPath(t, mnt)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), mmapChild+"="+p)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	after := New(fs.Cut())
	cmd.Process.Kill()
	cmd.Wait()
	if line != "done\n" {
		t.Fatalf("child: %q", line)
	}
	got := readOr(filepath.Join(mountT(t, after), "mapped"))
	if got[:11] != "synced page" {
		t.Errorf("msynced page lost: %q", got[:11])
	}
	if got[4096:4096+13] == "unsynced page" {
		t.Error("a page never msynced survived the cut")
	}
}
