package file

import (
	"sync"

	"golang.org/x/sys/unix"
)

// A shadow is the file's bytes in memory while gio explore reruns one
// script on it thousands of times (Mark, rewind.go). Each run's reads
// and writes would otherwise be syscalls on a tmpfs file, and the
// rewind three more (two ftruncates that free and re-allocate pages):
// a third of a run's CPU time, and kernel work (page allocation, the
// memory cgroup's LRU lock) that two explore loops on two cores
// contend on.
//
// The contract is that the node answers every request exactly as
// without the shadow:
//   - reads, writes and flushes go to memory: pread sees what the
//     writes left, short at the end of the file; a write past the end
//     extends it, with zeroes in between; fdatasync succeeds, as
//     tmpfs's does (noop_fsync);
//   - every other use of the descriptor (fallocate, SEEK_DATA/HOLE,
//     ftruncate, fstat, fsync, reopen, close) first writes the pages
//     written since the last such sync back to the file, whole pages
//     clipped to the file's size. On tmpfs that allocates exactly the
//     pages the writes would have allocated (a write allocates every
//     page it touches), with the same bytes and size. An operation
//     that changes the file reloads the shadow from it.
//
// So a shadow is made only for a buffered, writable regular file on
// tmpfs (explore's scratch images in /dev/shm) of at most maxRewind
// bytes, when no other node of this process has the same file open: a
// second node would read the file behind the shadow's back. A write
// that would grow the file past maxRewind drops the shadow.
type shadow struct {
	data []byte // the file's bytes; len(data) is its size
	base []byte // the file at the mark
	// dirty are the pages written since the last sync, touched those
	// written since the mark (or the last rewind); the bit sets keep
	// the lists free of duplicates.
	dirty, touched       []int32
	dirtyBit, touchedBit []uint64
	// changed says the descriptor's file is no longer base: pages were
	// synced to it, or an operation changed it. A rewind must then
	// restore the file too.
	changed bool
}

// shadowPage is the unit of dirty tracking: the page size, which is
// tmpfs's unit of allocation.
var shadowPage = int64(unix.Getpagesize())

func newShadow(base []byte) *shadow {
	words := (maxRewind/shadowPage + 63) / 64
	s := &shadow{base: base, dirtyBit: make([]uint64, words), touchedBit: make([]uint64, words)}
	s.data = append(make([]byte, 0, len(base)), base...)
	return s
}

// resize sets the file's size to n: what grows reads as zeroes.
func (s *shadow) resize(n int64) {
	old := int64(len(s.data))
	if n <= int64(cap(s.data)) {
		s.data = s.data[:n]
		if n > old {
			clear(s.data[old:])
		}
		return
	}
	d := make([]byte, n, max(n, 2*int64(cap(s.data))))
	copy(d, s.data)
	s.data = d
}

func (s *shadow) pread(buf []byte, off int64) (int, error) {
	if off < 0 {
		return 0, unix.EINVAL
	}
	if off >= int64(len(s.data)) {
		return 0, nil
	}
	return copy(buf, s.data[off:]), nil
}

// pwrite writes buf at off; the caller has checked that the end fits
// in maxRewind.
func (s *shadow) pwrite(buf []byte, off int64) {
	end := off + int64(len(buf))
	if end > int64(len(s.data)) {
		s.resize(end)
	}
	copy(s.data[off:], buf)
	if len(buf) == 0 {
		return
	}
	for p := off / shadowPage; p <= (end-1)/shadowPage; p++ {
		w, b := p/64, uint64(1)<<(p%64)
		if s.dirtyBit[w]&b == 0 {
			s.dirtyBit[w] |= b
			s.dirty = append(s.dirty, int32(p))
		}
		if s.touchedBit[w]&b == 0 {
			s.touchedBit[w] |= b
			s.touched = append(s.touched, int32(p))
		}
	}
}

// sync writes the dirty pages to fd.
func (s *shadow) sync(fd int) error {
	for _, p := range s.dirty {
		s.dirtyBit[p/64] &^= 1 << (p % 64)
	}
	dirty := s.dirty
	s.dirty = s.dirty[:0]
	for _, p := range dirty {
		off := int64(p) * shadowPage
		if off >= int64(len(s.data)) {
			continue // cut off by a later truncation
		}
		s.changed = true
		page := s.data[off:min(off+shadowPage, int64(len(s.data)))]
		for len(page) > 0 {
			m, err := unix.Pwrite(fd, page, off)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return errnoOf(err)
			}
			if m == 0 {
				return unix.EIO
			}
			page, off = page[m:], off+int64(m)
		}
	}
	return nil
}

// reload reads the file behind fd again after an operation changed
// it; false when it no longer fits.
func (s *shadow) reload(fd int) bool {
	s.changed = true
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Size > maxRewind {
		return false
	}
	s.resize(st.Size)
	for done := 0; done < len(s.data); {
		m, err := unix.Pread(fd, s.data[done:], int64(done))
		if err == unix.EINTR {
			continue
		}
		if err != nil || m == 0 {
			return false
		}
		done += m
	}
	return true
}

// restore brings the shadow back to base, and reports whether the file
// behind it still is base (else the caller restores it).
func (s *shadow) restore() bool {
	for _, p := range s.dirty {
		s.dirtyBit[p/64] &^= 1 << (p % 64)
	}
	s.dirty = s.dirty[:0]
	if s.changed {
		clear(s.touchedBit)
		s.touched = s.touched[:0]
		s.data = append(s.data[:0], s.base...)
		s.changed = false
		return false
	}
	s.resize(int64(len(s.base)))
	for _, p := range s.touched {
		s.touchedBit[p/64] &^= 1 << (p % 64)
		off := int64(p) * shadowPage
		if off < int64(len(s.base)) {
			copy(s.data[off:], s.base[off:min(off+shadowPage, int64(len(s.base)))])
		}
	}
	s.touched = s.touched[:0]
	return true
}

// The node's uses of its descriptor go through these methods, which
// keep the shadow's contract (the engines and device paths, which
// never have a shadow, use the descriptor directly).

func (n *node) pread(buf []byte, off int64) (int, error) {
	if n.sh != nil {
		return n.sh.pread(buf, off)
	}
	return unix.Pread(n.fd, buf, off)
}

func (n *node) pwrite(buf []byte, off int64) (int, error) {
	if s := n.sh; s != nil {
		if off < 0 {
			return 0, unix.EINVAL
		}
		if off+int64(len(buf)) <= maxRewind {
			s.pwrite(buf, off)
			return len(buf), nil
		}
		if err := n.dropShadow(); err != nil {
			return 0, err
		}
	}
	return unix.Pwrite(n.fd, buf, off)
}

// fdatasyncFile is fdatasync(2); on a shadow's tmpfs file it does
// nothing, so it is not made.
func (n *node) fdatasyncFile() error {
	if n.sh != nil {
		return nil
	}
	return unix.Fdatasync(n.fd)
}

// syncShadow writes the shadow's dirty pages to the file before the
// descriptor is used for anything else than reads, writes and flushes.
func (n *node) syncShadow() error {
	if n.sh == nil {
		return nil
	}
	if err := n.sh.sync(n.fd); err != nil {
		n.clearShadow()
		return err
	}
	return nil
}

// changedFile follows an operation that may have changed the file.
func (n *node) changedFile() {
	if n.sh != nil && !n.sh.reload(n.fd) {
		n.clearShadow()
	}
}

// dropShadow syncs the shadow and goes back to the descriptor.
func (n *node) dropShadow() error {
	err := n.syncShadow()
	n.clearShadow()
	return err
}

func (n *node) fstat(st *unix.Stat_t) error {
	if err := n.syncShadow(); err != nil {
		return err
	}
	return unix.Fstat(n.fd, st)
}

func (n *node) seek(off int64, whence int) (int64, error) {
	if err := n.syncShadow(); err != nil {
		return 0, err
	}
	return unix.Seek(n.fd, off, whence)
}

func (n *node) ftruncate(size int64) error {
	if err := n.syncShadow(); err != nil {
		return err
	}
	defer n.changedFile()
	return unix.Ftruncate(n.fd, size)
}

func (n *node) fallocateFile(mode uint32, off, length int64) error {
	if err := n.syncShadow(); err != nil {
		return err
	}
	defer n.changedFile()
	return unix.Fallocate(n.fd, mode, off, length)
}

func (n *node) fsync() error {
	if err := n.syncShadow(); err != nil {
		return err
	}
	return unix.Fsync(n.fd)
}

// openFiles counts this process's nodes per open regular file, so
// that a file open twice gets no shadow, and knows the node that has a
// shadow of each file.
var openFiles struct {
	sync.Mutex
	n        map[fileID]int
	shadowed map[fileID]*node
}

type fileID struct{ dev, ino uint64 }

func idOf(st *unix.Stat_t) fileID { return fileID{uint64(st.Dev), st.Ino} }

// registerFile counts a node opening the file, and returns what
// uncounts it. A node that had a shadow of the file drops it: from now
// on another node reads the file. (A shadow is made by explore after a
// script's setup, and its runs open nothing; a command opening the
// file again would run in the same session, under the token.)
func registerFile(id fileID) func() {
	openFiles.Lock()
	if openFiles.n == nil {
		openFiles.n = map[fileID]int{}
		openFiles.shadowed = map[fileID]*node{}
	}
	openFiles.n[id]++
	other := openFiles.shadowed[id]
	openFiles.Unlock()
	if other != nil {
		_ = other.dropShadow()
	}
	return func() {
		openFiles.Lock()
		defer openFiles.Unlock()
		if openFiles.n[id]--; openFiles.n[id] <= 0 {
			delete(openFiles.n, id)
		}
	}
}

// setShadow gives n the shadow s, unless another node has the file
// open too.
func (n *node) setShadow(s *shadow) bool {
	openFiles.Lock()
	defer openFiles.Unlock()
	if n.unregister == nil || openFiles.n[n.id] != 1 {
		return false
	}
	n.sh = s
	openFiles.shadowed[n.id] = n
	return true
}

func (n *node) clearShadow() {
	if n.sh == nil {
		return
	}
	n.sh = nil
	openFiles.Lock()
	if openFiles.shadowed[n.id] == n {
		delete(openFiles.shadowed, n.id)
	}
	openFiles.Unlock()
}
