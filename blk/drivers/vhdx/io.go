package vhdx

import (
	"gio/blk"

	"golang.org/x/sys/unix"
)

// sectorInfo is VHDXSectorInfo: where a request's piece lives.
type sectorInfo struct {
	batIdx      uint32
	bytesAvail  int64  // bytes of the request inside this block
	fileOffset  uint64 // in the file (the block's start when its entry has offset 0)
	blockOffset uint64 // inside the block
}

// translate is vhdx_block_translate for a request at off of n bytes
// (both multiples of 512).
func (s *state) translate(off, n int64) sectorInfo {
	var si sectorInfo
	block := uint64(off) / uint64(s.blockSize)
	si.blockOffset = uint64(off) % uint64(s.blockSize)
	si.batIdx = uint32(block + block>>s.chunkRatioBits)
	si.bytesAvail = min(n, int64(uint64(s.blockSize)-si.blockOffset))
	si.fileOffset = s.batEntry(si.batIdx) & offsetMask
	if si.fileOffset != 0 {
		si.fileOffset += si.blockOffset
	}
	return si
}

// PRead is vhdx_co_readv: blocks that are not fully present read as
// zeroes; partially present ones (differencing) and unknown states fail.
func (s *state) PRead(co *blk.Co, off int64, buf []byte, _ blk.ReqFlags) error {
	s.mu.lock(co)
	defer s.mu.unlock()
	for len(buf) > 0 {
		si := s.translate(off, int64(len(buf)))
		n := si.bytesAvail
		switch s.batEntry(si.batIdx) & stateMask {
		case blockNotPresent, blockUndefined, blockUnmapped, blockUnmapped095, blockZero:
			clear(buf[:n])
		case blockFull:
			s.mu.unlock()
			err := s.file.Node.PRead(co, int64(si.fileOffset), buf[:n], 0)
			s.mu.lock(co)
			if err != nil {
				return err
			}
		default:
			return unix.EIO
		}
		off, buf = off+n, buf[n:]
	}
	return nil
}

// allocateBlock is vhdx_allocate_block: a new block at the end of the
// file rounded up to 1 MiB, the file grown over it (a regular file reads
// zeroes there, which QEMU's BDRV_REQ_ZERO_WRITE truncation relies on).
func (s *state) allocateBlock(co *blk.Co) (uint64, error) {
	flen, err := s.file.Node.Length(co)
	if err != nil {
		return 0, err
	}
	off := (uint64(flen) + mib - 1) &^ (mib - 1)
	if off > 1<<63-1-uint64(s.blockSize) {
		return 0, unix.EINVAL
	}
	return off, s.file.Node.Truncate(co, int64(off)+int64(s.blockSize), false, blk.PreallocOff)
}

// PWrite is vhdx_co_writev: the headers get a new data GUID on the first
// write; a block that is not present is allocated, its data written, and
// then its BAT entry goes through the log.
func (s *state) PWrite(co *blk.Co, off int64, buf []byte, _ blk.ReqFlags) error {
	s.mu.lock(co)
	defer s.mu.unlock()
	if err := s.userVisibleWrite(co); err != nil {
		return err
	}
	for len(buf) > 0 {
		si := s.translate(off, int64(len(buf)))
		n := si.bytesAvail
		prior, priorOff := s.batEntry(si.batIdx), si.fileOffset
		update := false
		switch prior & stateMask {
		case blockZero, blockNotPresent, blockUnmapped, blockUnmapped095, blockUndefined:
			start, err := s.allocateBlock(co)
			if err != nil {
				return err
			}
			s.setBATEntry(si.batIdx, start|blockFull)
			update = true
			si.fileOffset = start + si.blockOffset
			fallthrough
		case blockFull:
			if si.fileOffset < mib {
				// The header section: a corrupt entry.
				if update {
					s.restoreEntry(si.batIdx, prior, priorOff)
				}
				return unix.EFAULT
			}
			s.mu.unlock()
			err := s.file.Node.PWrite(co, int64(si.fileOffset), buf[:n], 0)
			s.mu.lock(co)
			if err != nil {
				if update {
					s.restoreEntry(si.batIdx, prior, priorOff)
				}
				return err
			}
		default:
			return unix.EIO
		}
		if update {
			var e [8]byte
			le.PutUint64(e[:], s.batEntry(si.batIdx))
			if err := s.logWriteAndFlush(co, e[:], s.batOffset+8*uint64(si.batIdx)); err != nil {
				return err
			}
		}
		off, buf = off+n, buf[n:]
	}
	return nil
}

// restoreEntry puts back a BAT entry after a failed write, as
// vhdx_update_bat_table_entry does with the prior state and file offset
// (the block's offset plus the offset inside it, as QEMU keeps it): the
// states without a block get offset 0.
func (s *state) restoreEntry(idx uint32, prior, priorOff uint64) {
	st := prior & stateMask
	switch st {
	case blockZero, blockUndefined, blockNotPresent, blockUnmapped:
		s.setBATEntry(idx, st)
	default:
		s.setBATEntry(idx, priorOff|st)
	}
}
