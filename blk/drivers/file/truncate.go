package file

import (
	"gio/blk"

	"golang.org/x/sys/unix"
)

// Truncate resizes the file to exactly size (raw_co_truncate for regular
// files, which ignores exact), with QEMU's messages. Preallocation applies
// only to growing: falloc allocates the new part, full writes zeroes into
// it and syncs; metadata has no meaning for a plain file.
func (n *node) Truncate(co *blk.Co, size int64, exact bool, prealloc blk.Prealloc) error {
	if err := n.needPerm(blk.PermWrite | blk.PermResize); err != nil {
		return err
	}
	if n.kind != kindFile {
		return n.truncateDevice(size, exact, prealloc)
	}
	err := n.truncate(size, prealloc)
	co.ChargeIO(0)
	co.YieldIO()
	return err
}

// truncate is handle_aiocb_truncate.
func (n *node) truncate(size int64, prealloc blk.Prealloc) error {
	var st unix.Stat_t
	if err := n.fstat(&st); err != nil {
		return blk.Errorf(errnoOf(err), "Could not stat file")
	}
	cur := st.Size
	if cur > size && prealloc != blk.PreallocOff {
		return blk.Msgf(unix.ENOTSUP, "Cannot use preallocation for shrinking files")
	}
	var err error
	switch prealloc {
	case blk.PreallocOff:
		if err := n.ftruncate(size); err != nil {
			return blk.Errorf(errnoOf(err), "Could not resize file")
		}
		if cur == 0 && size > 0 {
			// Optimise future alignment probing; failures do not matter.
			n.allocateFirstBlock(size)
		}
		return nil
	case blk.PreallocFalloc:
		if size != cur {
			if e := n.posixFallocate(cur, size-cur); e != nil {
				err = blk.Errorf(errnoOf(e), "Could not preallocate new data")
			} else if cur == 0 {
				// fallocated blocks read fine at any alignment, which
				// would fool the O_DIRECT probe; write the first one.
				n.allocateFirstBlock(size)
			}
		}
	case blk.PreallocFull:
		err = n.preallocFull(cur, size)
	default:
		return blk.Msgf(unix.ENOTSUP, "Unsupported preallocation mode: %s", prealloc)
	}
	if err != nil {
		// Undo a partial extension; QEMU only reports a failure here.
		_ = n.ftruncate(cur)
	}
	return err
}

// preallocFull sets the final size first (which lets the filesystem plan
// the allocation), then writes zeroes over the new part and syncs.
func (n *node) preallocFull(cur, size int64) error {
	if err := n.ftruncate(size); err != nil {
		return blk.Errorf(errnoOf(err), "Could not resize file")
	}
	// QEMU writes from a plain 64 KiB buffer, which an O_DIRECT file
	// refuses (EINVAL); an aligned one is used here, so that works.
	// TODO(file): decide whether to reproduce QEMU's failure with -n.
	align := 1
	if n.direct {
		align = int(n.memAlign)
	}
	buf := AlignedBuffer(65536, align)
	for off := cur; off < size; {
		num := min(size-off, int64(len(buf)))
		if err := n.pwriteLoop(off, buf[:num]); err != nil {
			return blk.Errorf(errnoOf(err), "Could not write zeros for preallocation")
		}
		off += num
	}
	for {
		err := n.fsync()
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return blk.Errorf(errnoOf(err), "Could not flush file to disk")
		}
		return nil
	}
}

// posixFallocate is posix_fallocate(3): fallocate, or where the
// filesystem cannot, zeroes written over the range (which is what glibc
// falls back to).
func (n *node) posixFallocate(off, length int64) error {
	err := n.fallocate(0, off, length)
	if err != unix.ENOTSUP {
		return err
	}
	if err := n.ftruncate(off + length); err != nil {
		return errnoOf(err)
	}
	buf := AlignedBuffer(65536, int(max(n.memAlign, 1)))
	for end := off + length; off < end; {
		num := min(end-off, int64(len(buf)))
		if err := n.pwriteLoop(off, buf[:num]); err != nil {
			return err
		}
		off += num
	}
	return nil
}

// allocateFirstBlock writes zeroes over the first block of a file that was
// empty (QEMU's allocate_first_block): O_DIRECT reads of holes or
// preallocated extents succeed at any alignment, so without data there the
// alignment probe would learn nothing. Errors are ignored.
func (n *node) allocateFirstBlock(maxSize int64) {
	size := maxBlockSize
	if maxSize < maxBlockSize {
		size = 512
	}
	_ = n.pwriteLoop(0, AlignedBuffer(size, maxAlign()))
}
