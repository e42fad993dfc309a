// Package bochs is the read-only driver for Bochs "growing" redolog
// images, after QEMU's block/bochs.c: a header, a catalog of extents and,
// in each allocated extent, a bitmap of the sectors written followed by
// the sectors. Like QEMU it cannot write, and refuses a read-write open.
package bochs

import (
	"bytes"
	"encoding/binary"
	"math/bits"

	"gio/blk"

	"golang.org/x/sys/unix"
)

// Driver is the bochs format driver.
var Driver = &blk.Driver{
	Name:   "bochs",
	Format: true,
	Probe:  probe,
	Open:   open,
	// QEMU has no bdrv_reopen_prepare for it: every reopen fails.
	NoReopen: true,
}

const (
	headerSize  = 512
	versionV2   = 0x00020000
	versionV1   = 0x00010000
	sectorSize  = 512
	unallocated = 0xffffffff
	// catalogMax bounds the catalog QEMU reads (the largest bximage
	// makes, ~8 TB), so that a corrupt count cannot allocate gigabytes.
	catalogMax = 0x100000
	extentMax  = 0x800000
)

// Header field offsets (struct bochs_header, little endian).
const (
	offMagic    = 0
	offType     = 32
	offSubtype  = 48
	offVersion  = 64
	offHeader   = 68
	offCatalog  = 72
	offBitmap   = 76
	offExtent   = 80
	offDiskV2   = 88 // redolog.disk, after a reserved word
	offDiskV1   = 84 // redolog_v1.disk
	magicLen    = 32
	typeLen     = 16
	magicString = "Bochs Virtual HD Image"
)

// cstr is the C string at b: up to the first NUL, as strcmp sees it.
func cstr(b []byte) []byte {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return b[:i]
	}
	return b
}

// valid is the test bochs_probe and bochs_open share: magic, type
// "Redolog", subtype "Growing", version 1 or 2.
func valid(h []byte) bool {
	v := binary.LittleEndian.Uint32(h[offVersion:])
	return string(cstr(h[offMagic:offMagic+magicLen])) == magicString &&
		string(cstr(h[offType:offType+typeLen])) == "Redolog" &&
		string(cstr(h[offSubtype:offSubtype+typeLen])) == "Growing" &&
		(v == versionV2 || v == versionV1)
}

func probe(head []byte) int {
	if len(head) >= headerSize && valid(head) {
		return 100
	}
	return 0
}

// state is an open image (BDRVBochsState). The catalog is read at open
// and never changes; requests only read.
type state struct {
	file    *blk.Child
	catalog []uint32
	// dataOffset, bitmapBlocks and extentBlocks keep QEMU's 32-bit
	// arithmetic (a corrupt header wraps them exactly as in QEMU).
	dataOffset   uint32
	bitmapBlocks uint32
	extentBlocks uint32
	extentSize   uint32
	size         int64
}

var _ blk.LimitsRefresher = (*state)(nil)

func open(a *blk.OpenArgs) (blk.Impl, error) {
	if err := a.ApplyAutoReadOnly(); err != nil {
		return nil, err
	}
	s := &state{}
	var err error
	if s.file, err = a.OpenChild("file", true, true); err != nil {
		return nil, err
	}
	if err := a.RunSync("bochs open", s.load); err != nil {
		return nil, err
	}
	return s, nil
}

// load is bochs_open after the child: the header checks in QEMU's order,
// with its messages, and the catalog.
func (s *state) load(co *blk.Co) error {
	var h [headerSize]byte
	if err := s.file.Node.PRead(co, 0, h[:], 0); err != nil {
		return err
	}
	if !valid(h[:]) {
		return blk.Msgf(unix.EINVAL, "Image not in Bochs format")
	}
	le32 := func(off int) uint32 { return binary.LittleEndian.Uint32(h[off:]) }
	disk := binary.LittleEndian.Uint64(h[offDiskV2:])
	if le32(offVersion) == versionV1 {
		disk = binary.LittleEndian.Uint64(h[offDiskV1:])
	}
	totalSectors := int64(disk / sectorSize)
	n := le32(offCatalog)
	if n > catalogMax {
		return blk.Msgf(unix.EFBIG, "Catalog size is too large")
	}
	raw := make([]byte, 4*int(n))
	if n > 0 {
		if err := s.file.Node.PRead(co, int64(le32(offHeader)), raw, 0); err != nil {
			return err
		}
	}
	s.catalog = make([]uint32, n)
	for i := range s.catalog {
		s.catalog[i] = binary.LittleEndian.Uint32(raw[4*i:])
	}
	s.dataOffset = le32(offHeader) + n*4
	s.bitmapBlocks = 1 + (le32(offBitmap)-1)/sectorSize
	s.extentBlocks = 1 + (le32(offExtent)-1)/sectorSize
	s.extentSize = le32(offExtent)
	switch {
	case s.extentSize < sectorSize:
		return blk.Msgf(unix.EINVAL, "Extent size must be at least 512")
	case bits.OnesCount32(s.extentSize) != 1:
		return blk.Msgf(unix.EINVAL, "Extent size %d is not a power of two", s.extentSize)
	case s.extentSize > extentMax:
		return blk.Msgf(unix.EINVAL, "Extent size %d is too large", s.extentSize)
	}
	perExtent := int64(s.extentSize / sectorSize)
	if int64(n) < (totalSectors+perExtent-1)/perExtent {
		return blk.Msgf(unix.EINVAL, "Catalog size is too small for this disk size")
	}
	s.size = totalSectors * sectorSize
	return nil
}

// RefreshLimits: no sub-sector I/O.
func (s *state) RefreshLimits(l *blk.Limits) {
	l.RequestAlignment = max(l.RequestAlignment, sectorSize)
}

// sectorOffset is seek_to_sector: where sector lies in the file, or 0
// when it was never written (its extent is not in the catalog, or its
// bit in the extent's bitmap is clear).
func (s *state) sectorOffset(co *blk.Co, sector int64) (int64, error) {
	off := uint64(sector) * sectorSize
	idx := off / uint64(s.extentSize)
	inExtent := (off % uint64(s.extentSize)) / sectorSize
	e := s.catalog[idx]
	if e == unallocated {
		return 0, nil
	}
	bitmapOff := uint64(s.dataOffset) + sectorSize*uint64(e)*uint64(s.extentBlocks+s.bitmapBlocks)
	var b [1]byte
	if err := s.file.Node.PRead(co, int64(bitmapOff+inExtent/8), b[:], 0); err != nil {
		return 0, err
	}
	if b[0]>>(inExtent%8)&1 == 0 {
		return 0, nil
	}
	return int64(bitmapOff + sectorSize*(uint64(s.bitmapBlocks)+inExtent)), nil
}

// PRead is bochs_co_preadv: sector by sector, unwritten sectors read as
// zeroes.
func (s *state) PRead(co *blk.Co, off int64, buf []byte, _ blk.ReqFlags) error {
	for i := int64(0); i < int64(len(buf)); i += sectorSize {
		at, err := s.sectorOffset(co, (off+i)/sectorSize)
		if err != nil {
			return err
		}
		sec := buf[i : i+sectorSize]
		if at <= 0 {
			clear(sec)
			continue
		}
		if err := s.file.Node.PRead(co, at, sec, 0); err != nil {
			return err
		}
	}
	return nil
}

// PWrite never runs: the node is always read-only.
func (s *state) PWrite(*blk.Co, int64, []byte, blk.ReqFlags) error {
	return blk.ErrReadOnly
}

// Length is the disk size of the header, in whole sectors.
func (s *state) Length(*blk.Co) (int64, error) { return s.size, nil }

// Close has nothing to release.
func (s *state) Close() error { return nil }
