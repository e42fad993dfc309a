package file

import (
	"errors"

	"gio/blk"

	"golang.org/x/sys/unix"
)

// maxRewind is the largest file Mark copies (explore's scratch images
// are small; a larger one is opened afresh per run instead).
const maxRewind = 16 << 20

var _ blk.Rewinder = (*node)(nil)

// extent is data Mark copied: the bytes of an allocated range.
type extent struct {
	off  int64
	data []byte
}

// Mark implements blk.Rewinder: the file's length, its allocated
// ranges with their bytes, and the capabilities learnt from failing
// syscalls. Rewind empties the file and writes the allocated ranges
// back, so that reads and block status (holes stay holes) answer as at
// the mark. Regular files only, without O_DIRECT or an I/O engine.
// On tmpfs the runs go on a shadow of the file (shadow.go), and a
// rewind after a run that only read, wrote and flushed restores the
// pages it wrote in memory, with no syscall.
func (n *node) Mark() (func() error, error) {
	if n.kind != kindFile || n.direct || n.eng != nil {
		return nil, errors.New("not a buffered regular file")
	}
	if err := n.dropShadow(); err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(n.fd, &st); err != nil {
		return nil, err
	}
	size := st.Size
	if size > maxRewind {
		return nil, errors.New("file too large to copy")
	}
	var exts []extent
	for off := int64(0); off < size; {
		start, err := unix.Seek(n.fd, off, unix.SEEK_DATA)
		if err == unix.ENXIO {
			break // nothing but a hole up to the end
		}
		if err != nil {
			return nil, err
		}
		end, err := unix.Seek(n.fd, start, unix.SEEK_HOLE)
		if err != nil {
			return nil, err
		}
		end = min(end, size)
		buf := make([]byte, end-start)
		if _, err := unix.Pread(n.fd, buf, start); err != nil {
			return nil, err
		}
		exts = append(exts, extent{off: start, data: buf})
		off = end
	}
	wz, disc, fa, pci := n.hasWriteZeroes, n.hasDiscard, n.hasFallocate, n.pageCacheInconsistent
	// Runs go on a shadow of the file when they can (shadow.go).
	var base []byte
	if shadowable(n.fd) {
		base = make([]byte, size)
		for _, e := range exts {
			copy(base[e.off:], e.data)
		}
		n.setShadow(newShadow(base))
	}
	restoreFile := func() error {
		if err := unix.Ftruncate(n.fd, 0); err != nil {
			return err
		}
		if err := unix.Ftruncate(n.fd, size); err != nil {
			return err
		}
		for _, e := range exts {
			if _, err := unix.Pwrite(n.fd, e.data, e.off); err != nil {
				return err
			}
		}
		return nil
	}
	return func() error {
		switch {
		case n.sh != nil:
			// The shadow is base again; the file too unless the run
			// used it.
			if !n.sh.restore() {
				if err := restoreFile(); err != nil {
					return err
				}
			}
		default:
			if err := restoreFile(); err != nil {
				return err
			}
			if base != nil {
				n.setShadow(newShadow(base))
			}
		}
		n.hasWriteZeroes, n.hasDiscard, n.hasFallocate, n.pageCacheInconsistent = wz, disc, fa, pci
		return nil
	}, nil
}

// tmpfsMagic is TMPFS_MAGIC, statfs's f_type of a tmpfs.
const tmpfsMagic = 0x01021994

// shadowable reports whether fd is a writable file on tmpfs, where a
// shadow answers as the file would (shadow.go).
func shadowable(fd int) bool {
	var fs unix.Statfs_t
	if unix.Fstatfs(fd, &fs) != nil || fs.Type != tmpfsMagic {
		return false
	}
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	return err == nil && fl&unix.O_ACCMODE == unix.O_RDWR
}
