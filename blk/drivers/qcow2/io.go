package qcow2

import (
	"errors"

	"gio/blk"

	"golang.org/x/sys/unix"
)

// This file holds the request entry points (QEMU's qcow2_co_preadv_part,
// qcow2_co_pwritev_part, qcow2_co_pwrite_zeroes, qcow2_co_pdiscard,
// qcow2_co_block_status, qcow2_co_flush_to_os, qcow2_co_truncate). blk
// calls them with byte-granular requests inside the image.

const maxChunk = 1<<31 - 1 // INT_MAX: the most one mapping step covers

func (s *state) check() error {
	if s.broken {
		return blk.Msgf(unix.ENOMEDIUM, "No medium found")
	}
	return nil
}

// clearPiece bounds one step of clearInterruptibly.
const clearPiece = 16 << 20

// clearInterruptibly zeroes buf in pieces, stopping between them on
// Ctrl-C at the shell: one mapping step can cover 2 GiB of zero clusters.
func clearInterruptibly(co *blk.Co, buf []byte) error {
	for len(buf) > 0 {
		if co.Loop().Interrupted() {
			return blk.ErrInterrupted
		}
		k := min(len(buf), clearPiece)
		clear(buf[:k])
		buf = buf[k:]
	}
	return nil
}

// maxWorkers is QCOW2_MAX_WORKERS: the tasks one request keeps in flight.
const maxWorkers = 8

// PRead reads guest data: zeroes, the backing file, compressed or normal
// clusters, one mapping step at a time. Like QEMU, it maps a step and
// hands its I/O to a task of a pool before mapping the next, so that all
// the steps' reads are submitted before the request waits for one; a
// request whose only I/O is its last step does it itself, without a pool
// (qcow2_co_preadv_part).
func (s *state) PRead(co *blk.Co, off int64, buf []byte, flags blk.ReqFlags) error {
	if err := s.check(); err != nil {
		return err
	}
	var pool *blk.TaskPool
	var err error
	for first := true; len(buf) > 0 && pool.Err() == nil; first = false {
		if !first && co.Loop().Interrupted() {
			err = blk.ErrInterrupted // Ctrl-C at the shell, between steps
			break
		}
		var n int64
		var host uint64
		var typ clusterType
		s.mu.lock(co)
		n, host, typ, err = s.getHostOffset(co, off, s.cryptStep(off, min(int64(len(buf)), maxChunk), false))
		s.mu.unlock()
		if err != nil {
			break
		}
		piece := buf[:n]
		if typ == clusterZeroPlain || typ == clusterZeroAlloc || isUnallocated(typ) && s.backing == nil {
			if err = clearInterruptibly(co, piece); err != nil {
				break
			}
		} else {
			at := off
			task := func(co *blk.Co) error { return s.readTask(co, typ, host, at, piece) }
			if pool == nil && n != int64(len(buf)) {
				pool = blk.NewTaskPool(co, maxWorkers)
			}
			if pool == nil {
				if err = task(co); err != nil {
					break
				}
			} else {
				pool.Start(task)
			}
		}
		buf = buf[n:]
		off += n
	}
	if pool != nil {
		pool.WaitAll()
		if err == nil {
			err = pool.Err()
		}
	}
	return err
}

// readTask reads one mapping step that is not zeroes
// (qcow2_co_preadv_task).
func (s *state) readTask(co *blk.Co, typ clusterType, host uint64, off int64, buf []byte) error {
	switch {
	case isUnallocated(typ):
		s.file.Event(co, blk.EvReadBackingAIO)
		return s.backing.Node.PRead(co, off, buf, 0)
	case typ == clusterCompressed:
		return s.readCompressed(co, host, off, buf)
	}
	s.file.Event(co, blk.EvReadAIO)
	if err := s.readHost(co, int64(host), buf); err != nil {
		return err
	}
	if s.encrypted() {
		s.decrypt(int64(host), off, buf)
	}
	return nil
}

// readHost reads from the file, with zeroes for what lies past its end
// (reads never leave the file).
func (s *state) readHost(co *blk.Co, host int64, buf []byte) error {
	return s.readFrom(co, s.data, host, buf)
}

// readFrom reads from child c (the file, or the data file), with zeroes
// past its end.
func (s *state) readFrom(co *blk.Co, c *blk.Child, host int64, buf []byte) error {
	flen, err := c.Node.Length(co)
	if err != nil {
		return err
	}
	n := min(int64(len(buf)), max(0, flen-host))
	if n > 0 {
		if err := c.Node.PRead(co, host, buf[:n], 0); err != nil {
			return err
		}
	}
	clear(buf[n:])
	return nil
}

// readCompressed inflates a compressed cluster (raw deflate, as QEMU's
// zlib mode writes it) and copies the part asked for
// (qcow2_co_preadv_compressed).
func (s *state) readCompressed(co *blk.Co, entry uint64, off int64, buf []byte) error {
	coff, csize := s.compressedRange(entry)
	in := make([]byte, csize)
	s.file.Event(co, blk.EvReadCompressed)
	if err := s.readFrom(co, s.file, coff, in); err != nil {
		return err
	}
	out, err := s.decompressCluster(in)
	if err != nil {
		return unix.EIO
	}
	copy(buf, out[s.offsetIntoCluster(off):])
	return nil
}

var errNotCompressible = errors.New("qcow2: cluster not compressible")

// PWrite writes guest data: each step allocates (or finds) a contiguous
// host area under the lock, then hands the rest to a task (writeTask):
// write the data without the lock, then link the new clusters into the
// L2 table. As in QEMU, the steps' tasks run in a pool, so every step's
// data write is submitted before the request waits for any; a request of
// one step runs its task itself (qcow2_co_pwritev_part).
func (s *state) PWrite(co *blk.Co, off int64, buf []byte, flags blk.ReqFlags) error {
	if err := s.check(); err != nil {
		return err
	}
	var pool *blk.TaskPool
	var err error
	lastLook := true // QEMU's path past the loop that takes the lock once more
	for first := true; len(buf) > 0 && pool.Err() == nil; first = false {
		if !first && co.Loop().Interrupted() {
			// Ctrl-C at the shell: the steps started are written and
			// linked; the rest is not written.
			err = blk.ErrInterrupted
			lastLook = false
			break
		}
		cur := s.cryptStep(off, min(int64(len(buf)), maxChunk), true)
		s.mu.lock(co)
		var host int64
		var m *l2meta
		host, m, err = s.allocHostOffset(co, off, &cur)
		if err == nil {
			err = s.dataOverlapCheck(host, cur)
		}
		if err != nil {
			_ = s.handleL2Meta(co, &m, false)
			s.mu.unlock()
			lastLook = false
			break
		}
		s.trackWrite(off, cur, 1)
		s.mu.unlock()
		at, data := off, s.encryptedCopy(host, off, buf[:cur])
		task := func(co *blk.Co) error {
			err := s.writeTask(co, host, at, data, m)
			s.trackWrite(at, int64(len(data)), -1)
			return err
		}
		if pool == nil && cur != int64(len(buf)) {
			pool = blk.NewTaskPool(co, maxWorkers)
		}
		if pool == nil {
			if err = task(co); err != nil {
				lastLook = false // QEMU's fail_nometa
				break
			}
		} else {
			pool.Start(task)
		}
		buf = buf[cur:]
		off += cur
	}
	if lastLook {
		// QEMU takes the lock once more before it waits for its
		// tasks (to free metadata that is never left here): a wait
		// while a task or another request holds it.
		s.mu.lock(co)
		s.mu.unlock()
	}
	if pool != nil {
		pool.WaitAll()
		if err == nil {
			err = pool.Err()
		}
	}
	return err
}

// writeTask is qcow2_co_pwritev_task: zero the new clusters efficiently
// when the COW would copy zeroes anyway, write the data (with the COW
// regions when they can go in the same request), link the clusters.
func (s *state) writeTask(co *blk.Co, host, off int64, data []byte, m *l2meta) error {
	err := s.handleAllocSpace(co, m)
	if err == nil && !mergeCOW(off, data, m) {
		s.file.Event(co, blk.EvWriteAIO)
		err = s.data.Node.PWrite(co, host, data, 0)
	}
	s.mu.lock(co)
	if err == nil {
		err = s.handleL2Meta(co, &m, true)
	}
	_ = s.handleL2Meta(co, &m, false)
	s.mu.unlock()
	return err
}

// mergeCOW attaches the guest data to the allocation whose COW regions
// surround it exactly, so that COW and data go in one write (merge_cow).
func mergeCOW(off int64, data []byte, m *l2meta) bool {
	for ; m != nil; m = m.next {
		if m.cowStart.nbBytes == 0 && m.cowEnd.nbBytes == 0 || m.skipCOW {
			continue
		}
		if m.cowStartOffset()+m.cowStart.nbBytes != off {
			continue
		}
		if m.offset+m.cowEnd.offset != off+int64(len(data)) {
			continue
		}
		m.data = data
		return true
	}
	return false
}

// handleAllocSpace zeroes newly allocated clusters with one efficient
// zero write when their COW regions read as zeroes, and skips the COW
// (handle_alloc_space).
func (s *state) handleAllocSpace(co *blk.Co, m *l2meta) error {
	if s.file.Node.Limits().SupportedZeroFlags&blk.NoFallback == 0 || s.encrypted() {
		return nil
	}
	for ; m != nil; m = m.next {
		if m.cowStart.nbBytes == 0 && m.cowEnd.nbBytes == 0 {
			continue
		}
		zero, err := s.isZeroCOW(co, m)
		if err != nil {
			return err
		}
		if !zero {
			continue
		}
		start := m.allocOffset + m.cowStart.offset
		n := m.cowEnd.offset + m.cowEnd.nbBytes - m.cowStart.offset
		if err := s.dataOverlapCheck(start, n); err != nil {
			return err
		}
		s.file.Event(co, blk.EvClusterAllocSpace)
		if err := s.data.Node.PWriteZeroes(co, start, n, blk.NoFallback); err != nil {
			if errors.Is(err, unix.ENOTSUP) || errors.Is(err, errors.ErrUnsupported) || errors.Is(err, unix.EAGAIN) {
				continue
			}
			return err
		}
		m.skipCOW = true
	}
	return nil
}

func (s *state) isZeroCOW(co *blk.Co, m *l2meta) (bool, error) {
	z, err := s.isZeroFast(co, m.offset+m.cowStart.offset, m.cowStart.nbBytes)
	if err != nil || !z {
		return false, err
	}
	return s.isZeroFast(co, m.offset+m.cowEnd.offset, m.cowEnd.nbBytes)
}

// isZeroFast is bdrv_co_is_zero_fast: block status without want_zero says
// the whole range reads as zeroes.
func (s *state) isZeroFast(co *blk.Co, off, n int64) (bool, error) {
	if n == 0 {
		return true, nil
	}
	st, err := s.statusAbove(co, false, off, n)
	if err != nil {
		return false, err
	}
	return st.Pnum == n && st.Flags&blk.StatusZero != 0, nil
}

// isZero is is_zero in qcow2.c: the range (clipped to the image) reads as
// zeroes through the whole backing chain.
func (s *state) isZero(co *blk.Co, off, n int64) bool {
	if off+n > s.size {
		n = s.size - off
	}
	if n <= 0 {
		return true
	}
	for {
		st, err := s.statusAbove(co, true, off, n)
		if err != nil || st.Flags&blk.StatusZero == 0 {
			return false
		}
		off += st.Pnum
		n -= st.Pnum
		if st.Pnum == 0 || n == 0 {
			return n == 0
		}
	}
}

// statusAbove is bdrv_co_common_block_status_above from this node down
// its backing chain.
func (s *state) statusAbove(co *blk.Co, wantZero bool, off, n int64) (blk.Status, error) {
	st, err := s.self.BlockStatus(co, wantZero, off, n)
	if err != nil || st.Pnum == 0 || st.Flags&blk.StatusAllocated != 0 {
		return st, err
	}
	eof := int64(-1)
	if st.Flags&blk.StatusEOF != 0 {
		eof = off + st.Pnum
	}
	n = st.Pnum
	for p := s.self.Backing(); p != nil; p = p.Backing() {
		st, err = p.BlockStatus(co, wantZero, off, n)
		if err != nil {
			return st, err
		}
		if st.Pnum == 0 {
			st = blk.Status{Flags: blk.StatusZero | blk.StatusAllocated, Pnum: n, File: p}
			break
		}
		if st.Flags&blk.StatusAllocated != 0 {
			st.Flags &^= blk.StatusEOF
			break
		}
		n = st.Pnum
	}
	if off+st.Pnum == eof {
		st.Flags |= blk.StatusEOF
	}
	return st, nil
}

// PWriteZeroes turns whole clusters into zero clusters. A partial cluster
// is done only when the rest of it already reads as zeroes; otherwise
// ENOTSUP sends blk to its zero-buffer fallback (qcow2_co_pwrite_zeroes).
func (s *state) PWriteZeroes(co *blk.Co, off, n int64, flags blk.ReqFlags) error {
	if err := s.check(); err != nil {
		return err
	}
	scSize := int64(1) << s.subclusterBits
	head := off & (scSize - 1)
	tail := (off+n+scSize-1)&^(scSize-1) - (off + n)
	if off+n == s.size {
		tail = 0
	}
	if head != 0 || tail != 0 {
		if !s.isZero(co, off-head, head) || !s.isZero(co, off+n, tail) {
			return unix.ENOTSUP
		}
		s.mu.lock(co)
		off -= head
		n = scSize
		_, _, typ, err := s.getHostOffset(co, off, n)
		if err != nil || typ == clusterNormal || typ == clusterCompressed {
			s.mu.unlock()
			if err != nil {
				return err
			}
			return unix.ENOTSUP
		}
	} else {
		s.mu.lock(co)
	}
	err := s.clusterZeroize(co, off, n, flags)
	s.mu.unlock()
	return err
}

// PDiscard frees whole clusters; partial ones are ignored, except a
// partial last cluster (qcow2_co_pdiscard).
func (s *state) PDiscard(co *blk.Co, off, n int64) error {
	if err := s.check(); err != nil {
		return err
	}
	if s.version < 3 && s.backing != nil {
		// Without zero clusters, discarding would show the backing file.
		return unix.ENOTSUP
	}
	if (off|n)&(s.clusterSize-1) != 0 {
		if s.offsetIntoCluster(off) != 0 || off+n != s.size {
			return unix.ENOTSUP
		}
	}
	s.mu.lock(co)
	for !s.noDiscardWait && s.writing(off, n) {
		s.writesDone.wait(co, &s.mu, "waits for writes to the clusters it discards")
	}
	err := s.clusterDiscard(co, off, n, discardRequest, false)
	s.mu.unlock()
	return err
}

// trackWrite counts a data write of guest [off, off+n) in (d 1) or out
// (d -1) of flight, waking the discards that wait for it.
func (s *state) trackWrite(off, n int64, d int) {
	if s.dataWrites == nil {
		s.dataWrites = map[int64]int{}
	}
	for c := off >> s.clusterBits; c <= (off+n-1)>>s.clusterBits; c++ {
		if s.dataWrites[c] += d; s.dataWrites[c] == 0 {
			delete(s.dataWrites, c)
		}
	}
	if d < 0 {
		s.writesDone.restartAll()
	}
}

// writing reports whether a data write is in flight on a cluster of
// guest [off, off+n).
func (s *state) writing(off, n int64) bool {
	if len(s.dataWrites) == 0 || n <= 0 {
		return false
	}
	for c := off >> s.clusterBits; c <= (off+n-1)>>s.clusterBits; c++ {
		if s.dataWrites[c] > 0 {
			return true
		}
	}
	return false
}

// BlockStatus answers for this layer only: data with its host offset,
// zero clusters (with the host offset they keep), or nothing (the backing
// file or zeroes show through) (qcow2_co_block_status).
func (s *state) BlockStatus(co *blk.Co, wantZero bool, off, n int64) (blk.Status, error) {
	if err := s.check(); err != nil {
		return blk.Status{}, err
	}
	s.mu.lock(co)
	if !s.metaPreallocChecked {
		s.metaPrealloc = s.detectMetadataPreallocation(co)
		s.metaPreallocChecked = true
	}
	pnum, host, typ, err := s.getHostOffset(co, off, min(n, maxChunk))
	s.mu.unlock()
	if err != nil {
		return blk.Status{}, err
	}
	st := blk.Status{Pnum: pnum}
	if (typ == clusterNormal || typ == clusterZeroAlloc || typ == clusterUnallocAlloc) && !s.encrypted() {
		st.Map, st.File = int64(host), s.data.Node
		st.Flags |= blk.StatusOffsetValid
	}
	switch typ {
	case clusterZeroPlain, clusterZeroAlloc:
		st.Flags |= blk.StatusZero
	case clusterNormal, clusterCompressed:
		st.Flags |= blk.StatusData
	}
	if s.metaPrealloc && st.Flags&blk.StatusData != 0 && st.Flags&blk.StatusOffsetValid != 0 {
		// Preallocated clusters may lie past the file's end or in
		// holes: the file tells whether they read as zeroes.
		st.Flags |= blk.StatusRecurse
	}
	return st, nil
}

// FlushToOS writes the metadata caches back (qcow2_co_flush_to_os); blk
// then flushes the file.
func (s *state) FlushToOS(co *blk.Co) error {
	if s.broken || s.readOnly {
		return nil
	}
	s.mu.lock(co)
	err := s.writeCaches(co)
	s.mu.unlock()
	return err
}

// Truncate grows or shrinks the image (qcow2_co_truncate, with the
// zero-fill bdrv_co_truncate asks for when a larger backing file would
// otherwise show through the new area), with QEMU's preallocation modes
// for the new area (preallocate.go).
func (s *state) Truncate(co *blk.Co, size int64, exact bool, prealloc blk.Prealloc) error {
	if err := s.check(); err != nil {
		return err
	}
	switch prealloc {
	case blk.PreallocOff, blk.PreallocMetadata, blk.PreallocFalloc, blk.PreallocFull:
	default:
		return blk.Msgf(unix.ENOTSUP, "Unsupported preallocation mode '%s'", prealloc)
	}
	if size%512 != 0 {
		return blk.Msgf(unix.EINVAL, "The new size must be a multiple of 512")
	}
	zeroFill := false
	if size > s.size && s.backing != nil {
		bl, err := s.backing.Node.Length(co)
		if err != nil {
			return blk.Errorf(blk.ErrnoOf(err), "Could not get backing file size")
		}
		zeroFill = bl > s.size
	}
	s.mu.lock(co)
	defer s.mu.unlock()
	if err := s.truncate(co, size, zeroFill, prealloc, exact); err != nil {
		return err
	}
	for _, b := range s.dirtyBitmaps {
		b.truncate(s.size)
	}
	return nil
}

func (s *state) truncate(co *blk.Co, size int64, zeroFill bool, prealloc blk.Prealloc, exact bool) error {
	if s.nbSnapshots > 0 && s.version < 3 {
		return blk.Msgf(unix.ENOTSUP, "Can't resize a v2 image which has snapshots")
	}
	if err := s.truncateBitmapsCheck(co); err != nil {
		return err
	}
	old := s.size
	newL1 := s.sizeToL1(size)
	if size < old {
		if prealloc != blk.PreallocOff {
			return blk.Msgf(unix.EINVAL, "Preallocation can't be used for shrinking an image")
		}
		if from := (size + s.clusterSize - 1) &^ (s.clusterSize - 1); from < old {
			if err := s.clusterDiscard(co, from, old-from, discardAlways, true); err != nil {
				return blk.Errorf(blk.ErrnoOf(err), "Failed to discard cropped clusters")
			}
		}
		if err := s.shrinkL1(co, newL1); err != nil {
			return blk.Errorf(blk.ErrnoOf(err), "Failed to reduce the number of L2 tables")
		}
		if err := s.shrinkReftable(co); err != nil {
			return blk.Errorf(blk.ErrnoOf(err), "Failed to discard unused refblocks")
		}
		flen, err := s.file.Node.Length(co)
		if err != nil {
			return blk.Errorf(blk.ErrnoOf(err), "Failed to inquire current file length")
		}
		last, err := s.getLastCluster(co, flen)
		if err != nil {
			return blk.Errorf(blk.ErrnoOf(err), "Failed to find the last cluster")
		}
		if (last+1)*s.clusterSize < flen {
			// A failure here only leaves the file longer.
			_ = s.file.Node.Truncate(co, (last+1)*s.clusterSize, false, blk.PreallocOff)
		}
	} else {
		if err := s.growL1(co, newL1, true); err != nil {
			return blk.Errorf(blk.ErrnoOf(err), "Failed to grow the L1 table")
		}
		if s.hasDataFile() && s.autoclear&autoclearDataFileRaw != 0 && prealloc == blk.PreallocOff {
			// A raw data file needs its mapping in the metadata too.
			prealloc = blk.PreallocMetadata
		}
	}
	var err error
	if zeroFill, err = s.preallocateArea(co, old, size, zeroFill, prealloc, exact); err != nil {
		return err
	}
	if zeroFill && size > old {
		zstart := (old + s.clusterSize - 1) &^ (s.clusterSize - 1)
		s.size = size // the zeroized range may end at the new end
		if size > zstart {
			if err := s.clusterZeroize(co, zstart, size-zstart, 0); err != nil {
				s.size = old
				return blk.Errorf(blk.ErrnoOf(err), "Failed to zero out new clusters")
			}
		}
		if zstart > old {
			s.mu.unlock()
			err := s.PWrite(co, old, make([]byte, min(zstart, size)-old), 0)
			s.mu.lock(co)
			if err != nil {
				s.size = old
				return blk.Errorf(blk.ErrnoOf(err), "Failed to zero out the new area")
			}
		}
	}
	if prealloc != blk.PreallocOff {
		// The metadata reaches the file before the new size does.
		if err := s.writeCaches(co); err != nil {
			return blk.Errorf(blk.ErrnoOf(err), "Failed to flush the preallocated area to disk")
		}
	}
	s.size = size
	var b [8]byte
	b[0], b[1], b[2], b[3] = byte(size>>56), byte(size>>48), byte(size>>40), byte(size>>32)
	b[4], b[5], b[6], b[7] = byte(size>>24), byte(size>>16), byte(size>>8), byte(size)
	if err := s.pwriteSync(co, 24, b[:]); err != nil {
		return blk.Errorf(blk.ErrnoOf(err), "Failed to update the image size")
	}
	s.l1VMStateIndex = newL1
	return nil
}
