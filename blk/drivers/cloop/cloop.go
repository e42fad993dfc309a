// Package cloop is the read-only driver for compressed loop images
// (Linux's cloop, version 2.0), after QEMU's block/cloop.c: a shell
// script preamble, the block size and count at byte 128, a table of
// n+1 big-endian offsets, and blocks compressed with zlib. Like QEMU it
// cannot write, and refuses a read-write open.
package cloop

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"io"

	"gio/blk"

	"golang.org/x/sys/unix"
)

// Driver is the cloop format driver.
var Driver = &blk.Driver{
	Name:   "cloop",
	Format: true,
	Probe:  probe,
	Open:   open,
	// QEMU has no bdrv_reopen_prepare for it: every reopen fails.
	NoReopen: true,
}

const (
	magic = "#!/bin/sh\n" +
		"#V2.0 Format\n" +
		"modprobe cloop file=$0 && mount -r -t iso9660 /dev/cloop $1\n"
	headerOffset = 128
	sectorSize   = 512
	// maxBlockSize bounds the uncompressed block buffer, and twice it a
	// compressed block, as QEMU does (MAX_BLOCK_SIZE).
	maxBlockSize = 64 << 20
	// maxOffsetsSize bounds the offset table QEMU reads (512 MiB).
	maxOffsetsSize = 512 << 20
)

// probe is cloop_probe: the version 2.0 preamble. QEMU's score is low (2)
// because the preamble is a plain shell script. QEMU probes a zero-padded
// buffer, so a file shorter than the preamble never matches.
func probe(head []byte) int {
	if len(head) >= len(magic) && string(head[:len(magic)]) == magic {
		return 2
	}
	return 0
}

// state is an open image (BDRVCloopState). current caches the last
// block inflated, as QEMU does; mu keeps two requests from inflating into
// it at once.
type state struct {
	file            *blk.Child
	blockSize       uint32
	nBlocks         uint32
	offsets         []uint64
	sectorsPerBlock uint32
	current         int64 // -1: none
	block           []byte
	mu              blk.CoMutex
}

var _ blk.LimitsRefresher = (*state)(nil)

func open(a *blk.OpenArgs) (blk.Impl, error) {
	if err := a.ApplyAutoReadOnly(); err != nil {
		return nil, err
	}
	s := &state{current: -1}
	var err error
	if s.file, err = a.OpenChild("file", true, true); err != nil {
		return nil, err
	}
	if err := a.RunSync("cloop open", s.load); err != nil {
		return nil, err
	}
	return s, nil
}

// load is cloop_open after the child: the header and offset checks in
// QEMU's order, with its messages.
func (s *state) load(co *blk.Co) error {
	var h [8]byte
	if err := s.file.Node.PRead(co, headerOffset, h[:], 0); err != nil {
		return err
	}
	s.blockSize = binary.BigEndian.Uint32(h[:])
	switch {
	case s.blockSize%sectorSize != 0:
		return blk.Msgf(unix.EINVAL, "block_size %d must be a multiple of 512", s.blockSize)
	case s.blockSize == 0:
		return blk.Msgf(unix.EINVAL, "block_size cannot be zero")
	case s.blockSize > maxBlockSize:
		return blk.Msgf(unix.EINVAL, "block_size %d must be %d MB or less", s.blockSize, maxBlockSize>>20)
	}
	s.nBlocks = binary.BigEndian.Uint32(h[4:])
	const maxBlocks = (1<<32 - 2) / 8
	if s.nBlocks > maxBlocks {
		return blk.Msgf(unix.EINVAL, "n_blocks %d must be %d or less", s.nBlocks, maxBlocks)
	}
	size := (int64(s.nBlocks) + 1) * 8
	if size > maxOffsetsSize {
		return blk.Msgf(unix.EINVAL, "image requires too many offsets, try increasing block size")
	}
	// The table is read in pieces, so that a corrupt count in a small
	// file does not allocate 512 MiB before the read runs past the end.
	raw := make([]byte, 0, min(size, 1<<20))
	for at := int64(0); at < size; {
		n := min(size-at, 1<<20)
		piece := make([]byte, n)
		if err := s.file.Node.PRead(co, headerOffset+8+at, piece, 0); err != nil {
			return err
		}
		raw = append(raw, piece...)
		at += n
	}
	s.offsets = make([]uint64, s.nBlocks+1)
	for i := range s.offsets {
		s.offsets[i] = binary.BigEndian.Uint64(raw[8*i:])
		if i == 0 {
			continue
		}
		if s.offsets[i] < s.offsets[i-1] {
			return blk.Msgf(unix.EINVAL, "offsets not monotonically increasing at index %d, image file is corrupt", i)
		}
		if s.offsets[i]-s.offsets[i-1] > 2*maxBlockSize {
			return blk.Msgf(unix.EINVAL, "invalid compressed block size at index %d, image file is corrupt", i)
		}
	}
	s.sectorsPerBlock = s.blockSize / sectorSize
	return nil
}

// RefreshLimits: no sub-sector I/O.
func (s *state) RefreshLimits(l *blk.Limits) {
	l.RequestAlignment = max(l.RequestAlignment, sectorSize)
}

// errIO is what QEMU returns for any block it cannot read or inflate:
// the bare errno, as qemu-io prints it ("read failed: Input/output
// error").
const errIO = unix.EIO

// readBlock is cloop_read_block: inflate block i into s.block unless it
// is there already. The block must inflate to exactly the block size.
func (s *state) readBlock(co *blk.Co, i int64) error {
	if s.current == i {
		return nil
	}
	s.current = -1
	n := s.offsets[i+1] - s.offsets[i]
	comp := make([]byte, n)
	if err := s.file.Node.PRead(co, int64(s.offsets[i]), comp, 0); err != nil {
		return errIO
	}
	zr, err := zlib.NewReader(bytes.NewReader(comp))
	if err != nil {
		return errIO
	}
	if s.block == nil {
		s.block = make([]byte, s.blockSize)
	}
	if _, err := io.ReadFull(zr, s.block); err != nil {
		return errIO
	}
	// Z_FINISH must end the stream right at the block's end: more
	// output, or a stream that does not end, is an error in QEMU.
	var extra [1]byte
	if k, err := zr.Read(extra[:]); k != 0 || err != io.EOF {
		return errIO
	}
	s.current = i
	return nil
}

// PRead is cloop_co_preadv, under the lock that guards the cached block.
func (s *state) PRead(co *blk.Co, off int64, buf []byte, _ blk.ReqFlags) error {
	s.mu.Lock(co, "waits for the cloop lock")
	defer s.mu.Unlock()
	bs := int64(s.blockSize)
	for len(buf) > 0 {
		i, in := off/bs, off%bs
		if err := s.readBlock(co, i); err != nil {
			return err
		}
		n := copy(buf, s.block[in:])
		off, buf = off+int64(n), buf[n:]
	}
	return nil
}

// PWrite never runs: the node is always read-only.
func (s *state) PWrite(*blk.Co, int64, []byte, blk.ReqFlags) error {
	return blk.ErrReadOnly
}

// Length is n_blocks whole blocks.
func (s *state) Length(*blk.Co) (int64, error) {
	return int64(s.nBlocks) * int64(s.sectorsPerBlock) * sectorSize, nil
}

// Close has nothing to release.
func (s *state) Close() error { return nil }
