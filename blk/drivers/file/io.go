package file

import (
	"gio/blk"

	"golang.org/x/sys/unix"
)

// bounceChunk bounds the bounce buffer used when an O_DIRECT request
// arrives with a misaligned buffer: large requests go through it piece by
// piece instead of allocating their full size. It is a multiple of every
// alignment the probe can find.
const bounceChunk = 1 << 20

// PRead reads len(buf) bytes at off (raw_co_preadv). Bytes past the
// physical end of the file read as zeroes, since blk rounds the length up
// to 512 and a short read there is expected.
func (n *node) PRead(co *blk.Co, off int64, buf []byte, flags blk.ReqFlags) error {
	if n.eng != nil {
		return n.eng.do(co, n, opRead, off, buf)
	}
	co.ChargeIO(int64(len(buf)))
	// The transfer is the request's effect: a chooser (gio explore) may
	// place it after other requests' effects.
	return co.DoIO(func() error {
		return inPieces(co, buf, func(done int, piece []byte) error { return n.readAt(off+int64(done), piece) })
	})
}

// ioPiece bounds one synchronous transfer of the deterministic engine,
// so that Ctrl-C at the shell stops a 1 GiB request within a piece
// (a few hundredths of a second, a tenth on a slow disk) instead of after the whole transfer.
// Pieces are invisible: no event, no limit, one request.
const ioPiece = 16 << 20

// inPieces calls do on consecutive pieces of buf of at most ioPiece
// bytes, stopping with blk.ErrInterrupted between pieces when the loop is
// interrupted (the pieces already done stay done, as with a killed
// qemu-io).
func inPieces(co *blk.Co, buf []byte, do func(done int, piece []byte) error) error {
	for done := 0; done < len(buf); {
		if done > 0 && co.Loop().Interrupted() {
			return blk.ErrInterrupted
		}
		k := min(len(buf)-done, ioPiece)
		if err := do(done, buf[done:done+k]); err != nil {
			return err
		}
		done += k
	}
	return nil
}

// PWrite writes buf at off (raw_co_pwritev); writing past the end extends
// the file.
func (n *node) PWrite(co *blk.Co, off int64, buf []byte, flags blk.ReqFlags) error {
	if err := n.needPerm(blk.PermWrite); err != nil {
		return err
	}
	if n.eng != nil {
		return n.eng.do(co, n, opWrite, off, buf)
	}
	co.ChargeIO(int64(len(buf)))
	return co.DoIO(func() error {
		return inPieces(co, buf, func(done int, piece []byte) error { return n.writeAt(off+int64(done), piece) })
	})
}

func (n *node) readAt(off int64, buf []byte) error {
	if n.direct && !isAligned(buf, n.memAlign) {
		bounce := AlignedBuffer(min(len(buf), bounceChunk), int(n.memAlign))
		for done := 0; done < len(buf); {
			chunk := bounce[:min(len(buf)-done, len(bounce))]
			got, err := n.preadLoop(off+int64(done), chunk)
			if err != nil {
				return err
			}
			copy(buf[done:], chunk[:got])
			if got < len(chunk) {
				clear(buf[done+got:])
				return nil
			}
			done += got
		}
		return nil
	}
	got, err := n.preadLoop(off, buf)
	if err != nil {
		return err
	}
	clear(buf[got:])
	return nil
}

// preadLoop is the read half of handle_aiocb_rw_linear: it returns how
// many bytes it read before end of file.
func (n *node) preadLoop(off int64, buf []byte) (int, error) {
	done := 0
	for done < len(buf) {
		m, err := n.pread(buf[done:], off+int64(done))
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EINVAL && n.direct && done > 0:
			// An O_DIRECT pread may fail with EINVAL when a short read
			// left the offset unaligned; short O_DIRECT reads happen only
			// at end of file, so this is EOF, not an error.
			return done, nil
		case err != nil:
			return done, errnoOf(err)
		case m == 0:
			return done, nil
		}
		done += m
	}
	return done, nil
}

func (n *node) writeAt(off int64, buf []byte) error {
	if n.direct && !isAligned(buf, n.memAlign) {
		bounce := AlignedBuffer(min(len(buf), bounceChunk), int(n.memAlign))
		for done := 0; done < len(buf); {
			chunk := bounce[:copy(bounce, buf[done:])]
			if err := n.pwriteLoop(off+int64(done), chunk); err != nil {
				return err
			}
			done += len(chunk)
		}
		return nil
	}
	return n.pwriteLoop(off, buf)
}

// pwriteLoop is the write half of handle_aiocb_rw_linear. A write that
// makes no progress is EINVAL, as in QEMU.
func (n *node) pwriteLoop(off int64, buf []byte) error {
	for done := 0; done < len(buf); {
		m, err := n.pwrite(buf[done:], off+int64(done))
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return errnoOf(err)
		case m == 0:
			return unix.EINVAL
		}
		done += m
	}
	return nil
}

// fallocate is QEMU's do_fallocate: retry on EINTR, and report every way
// of saying "not supported" as ENOTSUP (translate_err).
func (n *node) fallocate(mode uint32, off, length int64) error {
	for {
		err := n.fallocateFile(mode, off, length)
		switch err {
		case nil:
			return nil
		case unix.EINTR:
			continue
		case unix.ENODEV, unix.ENOSYS, unix.EOPNOTSUPP, unix.ENOTTY:
			return unix.ENOTSUP
		}
		return errnoOf(err)
	}
}

const punchHole = unix.FALLOC_FL_PUNCH_HOLE | unix.FALLOC_FL_KEEP_SIZE

// PWriteZeroes is raw_co_pwrite_zeroes. It returns ENOTSUP (which matches
// errors.ErrUnsupported) when the filesystem offers no way, and blk then
// writes a zero buffer unless the request says NoFallback.
//
// With MayUnmap the range is punched (FALLOC_FL_KEEP_SIZE), so like QEMU a
// zero write that reaches past the physical end does not extend the file:
// the bytes there read as zeroes anyway. Without it, FALLOC_FL_ZERO_RANGE
// extends the file.
//
// TODO(file): QEMU makes a zero write past the end serialising up to
// infinity (an XFS workaround for concurrent extending writes). Drivers
// cannot reach their tracked request in blk; it would need a hook there.
func (n *node) PWriteZeroes(co *blk.Co, off, bytes int64, flags blk.ReqFlags) error {
	if err := n.needPerm(blk.PermWrite); err != nil {
		return err
	}
	var err error
	if flags&blk.MayUnmap != 0 {
		err = n.writeZeroesUnmap(off, bytes)
	} else {
		err = n.writeZeroes(off, bytes)
	}
	co.ChargeIO(0) // the efficient path: no data moves
	co.YieldIO()
	return err
}

// writeZeroesUnmap is handle_aiocb_write_zeroes_unmap: punch a hole if the
// filesystem can, else zero without unmapping.
func (n *node) writeZeroesUnmap(off, bytes int64) error {
	switch err := n.fallocate(punchHole, off, bytes); err {
	case unix.ENOTSUP, unix.EINVAL, unix.EBUSY:
	default:
		return err
	}
	return n.writeZeroes(off, bytes)
}

// writeZeroes is handle_aiocb_write_zeroes for regular files: ZERO_RANGE,
// else punch a hole and allocate it again, else (only past the end)
// allocate.
func (n *node) writeZeroes(off, bytes int64) error {
	if n.hasWriteZeroes {
		err := n.fallocate(unix.FALLOC_FL_ZERO_RANGE, off, bytes)
		if err == unix.ENOTSUP {
			n.hasWriteZeroes = false
		} else if err != unix.EINVAL {
			// Some filesystems refuse unaligned ranges with EINVAL
			// although they should not; those go on to the fallbacks.
			return err
		}
	}
	if n.hasDiscard && n.hasFallocate {
		err := n.fallocate(punchHole, off, bytes)
		switch err {
		case nil:
			err = n.fallocate(0, off, bytes)
			if err != unix.ENOTSUP {
				return err
			}
			n.hasFallocate = false
		case unix.EINVAL:
			// A misbehaving filesystem (QEMU warns once): try the last
			// resort.
		case unix.ENOTSUP:
			n.hasDiscard = false
		default:
			return err
		}
	}
	if n.hasFallocate {
		var st unix.Stat_t
		if n.fstat(&st) == nil && off >= st.Size {
			err := n.fallocate(0, off, bytes)
			if err != unix.ENOTSUP {
				return err
			}
			n.hasFallocate = false
		}
	}
	return unix.ENOTSUP
}

// PDiscard punches a hole (handle_aiocb_discard). After the filesystem
// has once said it cannot, the driver stops trying.
func (n *node) PDiscard(co *blk.Co, off, bytes int64) error {
	if err := n.needPerm(blk.PermWrite); err != nil {
		return err
	}
	err := error(unix.ENOTSUP)
	if n.hasDiscard {
		err = n.fallocate(punchHole, off, bytes)
		if err == unix.ENOTSUP {
			n.hasDiscard = false
		}
	}
	co.ChargeIO(0)
	co.YieldIO()
	return err
}

// BlockStatus is raw_co_block_status. Without wantZero everything is
// data. With it, lseek(SEEK_DATA/SEEK_HOLE) tells data from holes: in a
// trailing hole (or past the physical end) the rest of the range is zero;
// in data, the answer runs to the next hole, rounded up to the request
// alignment when that hole is the unaligned end of the file; in a hole, it
// runs to the next data. Without usable information everything is data.
// The answer is never empty and never longer than bytes.
func (n *node) BlockStatus(co *blk.Co, wantZero bool, off, bytes int64) (blk.Status, error) {
	st := blk.Status{Pnum: bytes, Map: off, File: n.self}
	if !wantZero {
		st.Flags = blk.StatusData | blk.StatusOffsetValid
		return st, nil
	}
	data, hole, err := n.findAllocation(off)
	switch {
	case err == unix.ENXIO:
		st.Flags = blk.StatusZero
	case err != nil:
		st.Flags = blk.StatusData
	case data == off:
		pnum := hole - off
		if a := n.reqAlign; pnum%a != 0 {
			pnum = (pnum + a - 1) / a * a
		}
		st.Pnum = min(pnum, bytes)
		st.Flags = blk.StatusData
	default:
		st.Pnum = min(data-off, bytes)
		st.Flags = blk.StatusZero
	}
	st.Flags |= blk.StatusOffsetValid
	return st, nil
}

// findAllocation is QEMU's find_allocation: where the data extent
// containing start ends, or where the hole containing start ends. ENXIO
// means start lies in a trailing hole or past the end; other errors mean
// nothing was learned.
func (n *node) findAllocation(start int64) (data, hole int64, err error) {
	offs, err := n.seek(start, unix.SEEK_DATA)
	if err != nil {
		return 0, 0, errnoOf(err)
	}
	if offs < start {
		return 0, 0, unix.EIO // not a valid answer from lseek
	}
	if offs > start {
		return offs, start, nil // in a hole, data at offs
	}
	offs, err = n.seek(start, unix.SEEK_HOLE)
	if err != nil {
		return 0, 0, errnoOf(err)
	}
	if offs < start {
		return 0, 0, unix.EIO
	}
	if offs > start {
		return start, offs, nil // in data, hole at offs
	}
	// A hole was dug between the two lseeks.
	return 0, 0, unix.EBUSY
}

// FlushToDisk is handle_aiocb_flush: fdatasync. In buffered mode a
// failure is sticky, because the kernel may already have marked the lost
// pages clean and a later fdatasync would wrongly succeed.
func (n *node) FlushToDisk(co *blk.Co) error {
	if n.eng != nil {
		if n.pageCacheInconsistent != 0 {
			return n.pageCacheInconsistent
		}
		err := n.eng.do(co, n, opFlush, 0, nil)
		if e, ok := err.(unix.Errno); ok && !n.direct {
			n.pageCacheInconsistent = e
		}
		return err
	}
	err := n.fdatasync()
	co.ChargeIO(0)
	co.YieldIO()
	return err
}

func (n *node) fdatasync() error {
	if n.pageCacheInconsistent != 0 {
		return n.pageCacheInconsistent
	}
	for {
		err := n.fdatasyncFile()
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			e := errnoOf(err)
			if !n.direct {
				n.pageCacheInconsistent = e
			}
			return e
		}
		return nil
	}
}
