package vmdk

import (
	"encoding/binary"

	"gio/blk"

	"golang.org/x/sys/unix"
)

// The two ESX sparse extent kinds QEMU 7.2 opens besides the hosted
// VMDK4 one: vmfsSparse (the COWD header of VMDK3, readable and
// writable as QEMU allows) and seSparse (read-only).

// openVmfsSparse is vmdk_open_vmfs_sparse: a COWD extent whose first
// bytes (at least the magic) are buf. Its grain tables have 4096
// entries; it has neither a redundant directory nor zeroed grains, and
// QEMU checks no version or flag.
func (s *state) openVmfsSparse(co *blk.Co, file *blk.Child, buf []byte) error {
	// The header after the magic: version, flags, disk_sectors,
	// granularity, l1dir_offset, l1dir_size, file_sectors and the
	// geometry, 32 bits each. A short file reads as zeroes past its end.
	var h [44]byte
	copy(h[:], buf)
	le := binary.LittleEndian
	sectors := le.Uint32(h[12:])
	granularity := le.Uint32(h[16:])
	l1Offset := le.Uint32(h[20:])
	l1Size := le.Uint32(h[24:])
	const l2Size = 4096
	e := &extent{
		file: file, sectors: int64(sectors),
		l1Offset: int64(l1Offset) << 9,
		l2Size:   l2Size, l1EntrySectors: int64(uint32(l2Size * granularity)),
		clusterSectors: int64(granularity),
	}
	if err := s.addExtent(co, e, l1Size); err != nil {
		return err
	}
	return e.initTables(co, l1Size)
}

// seSparse header magics.
const (
	seConstMagic    = 0xcafebabe
	seVolatileMagic = 0xcafecafe
)

// openSeSparse is vmdk_open_se_sparse: an ESXi seSparse extent, which
// QEMU reads only (a writable open fails). Its two headers are checked
// strictly, as QEMU does: the format is not documented.
func (s *state) openSeSparse(co *blk.Co, file *blk.Child, readOnly bool) error {
	if !readOnly {
		return blk.Msgf(unix.EACCES, "No write support for seSparse images available")
	}
	var ch [512]byte
	if err := preadPartial(co, file, 0, ch[:]); err != nil {
		return blk.Errorf(blk.ErrnoOf(err), "Could not read const header from file '%s'", file.Node.Filename())
	}
	u := func(i int) uint64 { return binary.LittleEndian.Uint64(ch[8*i:]) }
	// The const header: magic, version, capacity, grain_size,
	// grain_table_size, flags, reserved1..4, then offset/size pairs of
	// the volatile header, journal header, journal, grain directory,
	// grain tables, free bitmap, backmap and grains (in sectors).
	magic, version, capacity, grainSize, gtSize, flags := u(0), u(1), u(2), u(3), u(4), u(5)
	volOff := u(10)
	gdOff, gdSize, gtOff := u(16), u(17), u(18)
	grainsOff := u(24)
	switch {
	case magic != seConstMagic:
		return blk.Msgf(unix.EINVAL, "Bad const header magic: 0x%016x", magic)
	case version != 0x0000000200000001:
		return blk.Msgf(unix.ENOTSUP, "Unsupported version: 0x%016x", version)
	case grainSize != 8:
		return blk.Msgf(unix.ENOTSUP, "Unsupported grain size: %d", grainSize)
	case gtSize != 64:
		return blk.Msgf(unix.ENOTSUP, "Unsupported grain table size: %d", gtSize)
	case flags != 0:
		return blk.Msgf(unix.ENOTSUP, "Unsupported flags: 0x%016x", flags)
	case u(6) != 0 || u(7) != 0 || u(8) != 0 || u(9) != 0:
		return blk.Msgf(unix.ENOTSUP, "Unsupported reserved bits: 0x%016x 0x%016x 0x%016x 0x%016x", u(6), u(7), u(8), u(9))
	case !allZero(ch[208:]):
		return blk.Msgf(unix.ENOTSUP, "Unsupported non-zero const header padding")
	}
	var vh [512]byte
	if err := preadPartial(co, file, sectorOffset(volOff), vh[:]); err != nil {
		return blk.Errorf(blk.ErrnoOf(err), "Could not read volatile header from file '%s'", file.Node.Filename())
	}
	v := func(i int) uint64 { return binary.LittleEndian.Uint64(vh[8*i:]) }
	switch {
	case v(0) != seVolatileMagic:
		return blk.Msgf(unix.EINVAL, "Bad volatile header magic: 0x%016x", v(0))
	case v(3) != 0:
		return blk.Msgf(unix.ENOTSUP, "Image is dirty, Replaying journal not supported")
	case !allZero(vh[32:]):
		return blk.Msgf(unix.ENOTSUP, "Unsupported non-zero volatile header padding")
	}
	const l2Size = 64 * 512 / 8
	e := &extent{
		file: file, sectors: int64(capacity),
		l1Offset: sectorOffset(gdOff),
		l2Size:   l2Size, l1EntrySectors: l2Size * 8,
		clusterSectors: 8,
		sesparse:       true, seTables: gtOff, seGrains: grainsOff,
	}
	l1Size := uint32(gdSize * 512 / 8)
	if err := s.addExtent(co, e, l1Size); err != nil {
		return err
	}
	return e.initTables(co, l1Size)
}

// sectorOffset is a sector number as QEMU's int64_t byte offset (a
// wrapped product reads as an invalid, negative offset).
func sectorOffset(sector uint64) int64 { return int64(sector * 512) }

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
