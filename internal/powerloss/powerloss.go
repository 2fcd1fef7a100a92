// Package powerloss is a test filesystem for power-loss tests: an
// in-memory filesystem, served over FUSE, that remembers what a sudden
// power cut would leave on a disk that honours fsync.
//
// The model (strict POSIX, as a careful application must assume):
//
//   - A file's content (its bytes and size) is durable as of its last
//     fsync or fdatasync. Writes after that, through write(2) or a shared
//     mmap, are lost at a power cut.
//   - A directory's entries (creates, renames, hard links, unlinks) are
//     durable as of the last fsync of that directory. A new file whose
//     directory was not synced afterwards is gone after a cut, however
//     often the file itself was synced; a rename is durable only once
//     both directories were synced.
//   - An fsync is atomic: it makes the whole file (or directory) durable
//     at once, and nothing is torn. There are no torn sector writes, no
//     reordering inside one fsync and no disk cache that acknowledges a
//     flush it did not do.
//
// Cut takes the durable state at one instant (while the program under
// test may still be writing: every operation after it fails with EIO) and
// New serves that state again, as the disk after the reboot. Only what
// the tests need is implemented: regular files and directories, hard
// links, truncate and fallocate; no symlinks, xattrs or special files.
// Mounting needs root and /dev/fuse (the FUSE mount is made with mount(2),
// no fusermount binary): see Mount.
package powerloss

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// ErrUnavailable reports that FUSE cannot be mounted here (no /dev/fuse,
// not root, or a kernel or sandbox that refuses the mount).
var ErrUnavailable = errors.New("powerloss: FUSE is not available")

// State is a durable filesystem image: what a Cut left.
type State struct {
	root *image
}

// image is one inode of a State. Hard links share the image.
type image struct {
	mode    uint32 // including the type bits
	data    []byte // the first bytes; the rest up to size are zero
	size    int
	entries map[string]*image
}

// node is one inode of the live filesystem.
type node struct {
	ino   uint64
	mode  uint32
	nlink uint32
	mtime time.Time
	// Files: the live bytes and the bytes as of the last fsync. A file is
	// size bytes long, of which data (or synced) holds the first ones and
	// the rest are zero: badger sizes its files to 16 and 128 MiB up front
	// and fills them slowly. dirtyLo..dirtyHi is what was written since
	// the last fsync (empty when dirtyLo >= dirtyHi), so an fsync copies
	// only that; resized says the file was truncated, so it copies all.
	data, synced     []byte
	size, syncedSize int
	dirtyLo, dirtyHi int
	resized          bool
	// Directories: the live entries and the entries as of the last fsync.
	entries, syncedEntries map[string]*node
}

func (n *node) isDir() bool { return n.mode&syscall.S_IFMT == syscall.S_IFDIR }

// FS is the live filesystem. Its methods are called by the FUSE server.
type FS struct {
	fuse.RawFileSystem // ENOSYS for everything not implemented here

	mu      sync.Mutex
	nodes   map[uint64]*node
	nextIno uint64
	dirs    map[uint64][]fuse.DirEntry // open directory handles
	nextFh  uint64
	cut     bool
}

// New returns a filesystem holding st (empty when st is nil), all of it
// durable.
func New(st *State) *FS {
	fs := &FS{
		RawFileSystem: fuse.NewDefaultRawFileSystem(),
		nodes:         map[uint64]*node{},
		nextIno:       fuse.FUSE_ROOT_ID,
		dirs:          map[uint64][]fuse.DirEntry{},
	}
	if st == nil {
		st = &State{root: &image{mode: syscall.S_IFDIR | 0o755, entries: map[string]*image{}}}
	}
	fs.restore(st.root, map[*image]*node{})
	return fs
}

// restore adds img and everything under it (the root first, so it gets
// FUSE_ROOT_ID).
func (fs *FS) restore(img *image, seen map[*image]*node) *node {
	if n, ok := seen[img]; ok {
		n.nlink++
		return n
	}
	n := fs.newNode(img.mode)
	seen[img] = n
	if n.isDir() {
		for name, child := range img.entries {
			c := fs.restore(child, seen)
			n.entries[name] = c
			n.syncedEntries[name] = c
		}
	} else {
		n.data = append([]byte(nil), img.data...)
		n.synced = append([]byte(nil), img.data...)
		n.size, n.syncedSize = img.size, img.size
	}
	return n
}

func (fs *FS) newNode(mode uint32) *node {
	n := &node{ino: fs.nextIno, mode: mode, nlink: 1, mtime: time.Now()}
	fs.nextIno++
	if n.isDir() {
		n.nlink = 2
		n.entries, n.syncedEntries = map[string]*node{}, map[string]*node{}
	}
	fs.nodes[n.ino] = n
	return n
}

// Cut cuts the power: it returns the durable state as of now, and every
// later operation on the filesystem fails with EIO.
func (fs *FS) Cut() *State {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.cut = true
	return &State{root: snapshot(fs.nodes[fuse.FUSE_ROOT_ID], map[*node]*image{})}
}

// snapshot copies the durable part of n: synced bytes, synced entries.
func snapshot(n *node, seen map[*node]*image) *image {
	if img, ok := seen[n]; ok {
		return img
	}
	img := &image{mode: n.mode}
	seen[n] = img
	if n.isDir() {
		img.entries = map[string]*image{}
		for name, c := range n.syncedEntries {
			img.entries[name] = snapshot(c, seen)
		}
	} else {
		img.data = append([]byte(nil), n.synced...)
		img.size = n.syncedSize
	}
	return img
}

// Files lists the durable regular files of st with their sizes, by path.
func (st *State) Files() map[string]int {
	out := map[string]int{}
	var walk func(string, *image)
	walk = func(dir string, img *image) {
		for name, c := range img.entries {
			p := dir + "/" + name
			if c.entries != nil {
				walk(p, c)
			} else {
				out[p] = c.size
			}
		}
	}
	walk("", st.root)
	return out
}

// Mount serves fs at dir with mount(2) (no fusermount). The caller
// unmounts with the server's Unmount. An error wraps ErrUnavailable when
// FUSE cannot be used here.
func Mount(fs *FS, dir string) (*fuse.Server, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("%w: mounting needs root (euid %d)", ErrUnavailable, os.Geteuid())
	}
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	f.Close()
	srv, err := fuse.NewServer(fs, dir, &fuse.MountOptions{
		FsName:             "powerloss",
		Name:               "powerloss",
		DirectMountStrict:  true,
		DisableReadDirPlus: true,
		DisableXAttrs:      true,
		MaxWrite:           1 << 20,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: mount: %v", ErrUnavailable, err)
	}
	go srv.Serve()
	if err := srv.WaitMount(); err != nil {
		srv.Unmount()
		return nil, fmt.Errorf("%w: mount: %v", ErrUnavailable, err)
	}
	return srv, nil
}

func (fs *FS) String() string { return "powerloss" }

// lock takes the lock and returns the node for id, or a status: EIO after
// a cut, ENOENT for an unknown node. On OK the caller unlocks.
func (fs *FS) lock(id uint64) (*node, fuse.Status) {
	fs.mu.Lock()
	if fs.cut {
		fs.mu.Unlock()
		return nil, fuse.EIO
	}
	n := fs.nodes[id]
	if n == nil {
		fs.mu.Unlock()
		return nil, fuse.ENOENT
	}
	return n, fuse.OK
}

func (n *node) fill(a *fuse.Attr) {
	a.Ino = n.ino
	a.Mode = n.mode
	a.Nlink = n.nlink
	a.Size = uint64(n.size)
	a.Blocks = (a.Size + 511) / 512
	a.Blksize = 4096
	t := uint64(n.mtime.Unix())
	ns := uint32(n.mtime.Nanosecond())
	a.Atime, a.Mtime, a.Ctime = t, t, t
	a.Atimensec, a.Mtimensec, a.Ctimensec = ns, ns, ns
}

// entry fills out for n. Timeouts are zero: the kernel asks again, so it
// never works from attributes this filesystem no longer has.
func (n *node) entry(out *fuse.EntryOut) {
	out.NodeId = n.ino
	out.Generation = 1
	n.fill(&out.Attr)
}

func (fs *FS) Lookup(_ <-chan struct{}, h *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	dir, st := fs.lock(h.NodeId)
	if !st.Ok() {
		return st
	}
	defer fs.mu.Unlock()
	c := dir.entries[name]
	if c == nil {
		return fuse.ENOENT
	}
	c.entry(out)
	return fuse.OK
}

// Forget: nodes live as long as the filesystem (tests are small).
func (fs *FS) Forget(uint64, uint64) {}

func (fs *FS) GetAttr(_ <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	n, st := fs.lock(in.NodeId)
	if !st.Ok() {
		return st
	}
	defer fs.mu.Unlock()
	n.fill(&out.Attr)
	return fuse.OK
}

func (fs *FS) SetAttr(_ <-chan struct{}, in *fuse.SetAttrIn, out *fuse.AttrOut) fuse.Status {
	n, st := fs.lock(in.NodeId)
	if !st.Ok() {
		return st
	}
	defer fs.mu.Unlock()
	if size, ok := in.GetSize(); ok {
		if n.isDir() {
			return fuse.EISDIR
		}
		n.truncate(int(size))
	}
	if mode, ok := in.GetMode(); ok {
		n.mode = n.mode&syscall.S_IFMT | mode&^syscall.S_IFMT
	}
	if t, ok := in.GetMTime(); ok {
		n.mtime = t
	}
	n.fill(&out.Attr)
	return fuse.OK
}

// touch records that data[lo:hi] changed since the last fsync.
func (n *node) touch(lo, hi int) {
	if n.dirtyLo >= n.dirtyHi {
		n.dirtyLo, n.dirtyHi = lo, hi
		return
	}
	n.dirtyLo, n.dirtyHi = min(n.dirtyLo, lo), max(n.dirtyHi, hi)
}

// sync makes the live bytes durable. synced never shares memory with
// data, so writes can go to data in place.
func (n *node) sync() {
	if !n.resized && len(n.synced) == len(n.data) && n.synced != nil {
		lo, hi := min(n.dirtyLo, len(n.data)), min(n.dirtyHi, len(n.data))
		if lo < hi {
			copy(n.synced[lo:hi], n.data[lo:hi])
		}
	} else {
		n.synced = append([]byte(nil), n.data...)
	}
	n.syncedSize = n.size
	n.dirtyLo, n.dirtyHi, n.resized = 0, 0, false
}

// truncate sets the file's size.
func (n *node) truncate(size int) {
	if size < len(n.data) {
		n.data = n.data[:size:size]
	}
	n.size = size
	n.resized = true
}

// add creates a node of mode named name in the directory id.
func (fs *FS) add(id uint64, name string, mode uint32, out *fuse.EntryOut) fuse.Status {
	dir, st := fs.lock(id)
	if !st.Ok() {
		return st
	}
	defer fs.mu.Unlock()
	if !dir.isDir() {
		return fuse.ENOTDIR
	}
	if dir.entries[name] != nil {
		return fuse.Status(syscall.EEXIST)
	}
	n := fs.newNode(mode)
	dir.entries[name] = n
	if n.isDir() {
		dir.nlink++
	}
	n.entry(out)
	return fuse.OK
}

func (fs *FS) Mkdir(_ <-chan struct{}, in *fuse.MkdirIn, name string, out *fuse.EntryOut) fuse.Status {
	return fs.add(in.NodeId, name, syscall.S_IFDIR|in.Mode&0o7777, out)
}

func (fs *FS) Mknod(_ <-chan struct{}, in *fuse.MknodIn, name string, out *fuse.EntryOut) fuse.Status {
	if in.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return fuse.ENOSYS
	}
	return fs.add(in.NodeId, name, in.Mode, out)
}

func (fs *FS) Create(_ <-chan struct{}, in *fuse.CreateIn, name string, out *fuse.CreateOut) fuse.Status {
	return fs.add(in.NodeId, name, syscall.S_IFREG|in.Mode&0o7777, &out.EntryOut)
}

func (fs *FS) remove(id uint64, name string, wantDir bool) fuse.Status {
	dir, st := fs.lock(id)
	if !st.Ok() {
		return st
	}
	defer fs.mu.Unlock()
	c := dir.entries[name]
	switch {
	case c == nil:
		return fuse.ENOENT
	case wantDir && !c.isDir():
		return fuse.ENOTDIR
	case !wantDir && c.isDir():
		return fuse.Status(syscall.EISDIR)
	case wantDir && len(c.entries) > 0:
		return fuse.Status(syscall.ENOTEMPTY)
	}
	delete(dir.entries, name)
	c.nlink--
	if wantDir {
		dir.nlink--
	}
	return fuse.OK
}

func (fs *FS) Unlink(_ <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	return fs.remove(h.NodeId, name, false)
}

func (fs *FS) Rmdir(_ <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	return fs.remove(h.NodeId, name, true)
}

func (fs *FS) Rename(_ <-chan struct{}, in *fuse.RenameIn, oldName, newName string) fuse.Status {
	from, st := fs.lock(in.NodeId)
	if !st.Ok() {
		return st
	}
	defer fs.mu.Unlock()
	to := fs.nodes[in.Newdir]
	c := from.entries[oldName]
	if to == nil || c == nil {
		return fuse.ENOENT
	}
	if in.Flags != 0 {
		return fuse.EINVAL // RENAME_NOREPLACE, RENAME_EXCHANGE: not needed
	}
	if old := to.entries[newName]; old != nil && old != c {
		if old.isDir() {
			return fuse.Status(syscall.EISDIR) // replacing directories: not needed
		}
		old.nlink--
	}
	delete(from.entries, oldName)
	to.entries[newName] = c
	if c.isDir() {
		from.nlink--
		to.nlink++
	}
	return fuse.OK
}

func (fs *FS) Link(_ <-chan struct{}, in *fuse.LinkIn, name string, out *fuse.EntryOut) fuse.Status {
	dir, st := fs.lock(in.NodeId)
	if !st.Ok() {
		return st
	}
	defer fs.mu.Unlock()
	c := fs.nodes[in.Oldnodeid]
	if c == nil {
		return fuse.ENOENT
	}
	if c.isDir() {
		return fuse.EPERM
	}
	if dir.entries[name] != nil {
		return fuse.Status(syscall.EEXIST)
	}
	dir.entries[name] = c
	c.nlink++
	c.entry(out)
	return fuse.OK
}

func (fs *FS) Open(_ <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	n, st := fs.lock(in.NodeId)
	if !st.Ok() {
		return st
	}
	defer fs.mu.Unlock()
	if n.isDir() {
		return fuse.EISDIR
	}
	if in.Flags&syscall.O_TRUNC != 0 {
		n.truncate(0)
	}
	return fuse.OK
}

func (fs *FS) Read(_ <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	n, st := fs.lock(in.NodeId)
	if !st.Ok() {
		return nil, st
	}
	defer fs.mu.Unlock()
	if in.Offset >= uint64(n.size) {
		return fuse.ReadResultData(nil), fuse.OK
	}
	buf = buf[:min(len(buf), n.size-int(in.Offset))]
	k := 0
	if in.Offset < uint64(len(n.data)) {
		k = copy(buf, n.data[in.Offset:])
	}
	clear(buf[k:]) // the zero tail
	return fuse.ReadResultData(buf), fuse.OK
}

func (fs *FS) Write(_ <-chan struct{}, in *fuse.WriteIn, data []byte) (uint32, fuse.Status) {
	n, st := fs.lock(in.NodeId)
	if !st.Ok() {
		return 0, st
	}
	defer fs.mu.Unlock()
	end := int(in.Offset) + len(data)
	if end > len(n.data) {
		n.data = append(n.data, make([]byte, end-len(n.data))...)
	}
	n.size = max(n.size, end)
	copy(n.data[in.Offset:], data)
	n.touch(int(in.Offset), end)
	n.mtime = time.Now()
	return uint32(len(data)), fuse.OK
}

func (fs *FS) Fallocate(_ <-chan struct{}, in *fuse.FallocateIn) fuse.Status {
	n, st := fs.lock(in.NodeId)
	if !st.Ok() {
		return st
	}
	defer fs.mu.Unlock()
	if in.Mode != 0 {
		return fuse.ENOSYS // punching holes, keep-size: not needed
	}
	n.size = max(n.size, int(in.Offset+in.Length))
	return fuse.OK
}

func (fs *FS) Flush(<-chan struct{}, *fuse.FlushIn) fuse.Status { return fuse.OK }

func (fs *FS) Release(<-chan struct{}, *fuse.ReleaseIn) {}

// Fsync makes a file's bytes durable.
func (fs *FS) Fsync(_ <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	n, st := fs.lock(in.NodeId)
	if !st.Ok() {
		return st
	}
	defer fs.mu.Unlock()
	n.sync()
	return fuse.OK
}

// FsyncDir makes a directory's entries durable.
func (fs *FS) FsyncDir(_ <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	n, st := fs.lock(in.NodeId)
	if !st.Ok() {
		return st
	}
	defer fs.mu.Unlock()
	n.syncedEntries = make(map[string]*node, len(n.entries))
	for name, c := range n.entries {
		n.syncedEntries[name] = c
	}
	return fuse.OK
}

func (fs *FS) OpenDir(_ <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	n, st := fs.lock(in.NodeId)
	if !st.Ok() {
		return st
	}
	defer fs.mu.Unlock()
	if !n.isDir() {
		return fuse.ENOTDIR
	}
	list := []fuse.DirEntry{{Name: ".", Ino: n.ino, Mode: syscall.S_IFDIR}, {Name: "..", Mode: syscall.S_IFDIR}}
	names := make([]string, 0, len(n.entries))
	for name := range n.entries {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		c := n.entries[name]
		list = append(list, fuse.DirEntry{Name: name, Ino: c.ino, Mode: c.mode})
	}
	fs.nextFh++
	fs.dirs[fs.nextFh] = list
	out.Fh = fs.nextFh
	return fuse.OK
}

func (fs *FS) ReadDir(_ <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	_, st := fs.lock(in.NodeId)
	if !st.Ok() {
		return st
	}
	defer fs.mu.Unlock()
	list := fs.dirs[in.Fh]
	for i := int(in.Offset); i < len(list); i++ {
		e := list[i]
		e.Off = uint64(i + 1)
		if !out.AddDirEntry(e) {
			break
		}
	}
	return fuse.OK
}

func (fs *FS) ReleaseDir(in *fuse.ReleaseIn) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	delete(fs.dirs, in.Fh)
}

func (fs *FS) StatFs(_ <-chan struct{}, _ *fuse.InHeader, out *fuse.StatfsOut) fuse.Status {
	out.Bsize, out.Frsize, out.NameLen = 4096, 4096, 255
	out.Blocks, out.Bfree, out.Bavail = 1<<20, 1<<19, 1<<19
	out.Files, out.Ffree = 1<<20, 1<<19
	return fuse.OK
}

func (fs *FS) Access(<-chan struct{}, *fuse.AccessIn) fuse.Status { return fuse.OK }
