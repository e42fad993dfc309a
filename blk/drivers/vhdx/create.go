package vhdx

import (
	"fmt"
	"unicode/utf16"

	"gio/blk"

	"golang.org/x/sys/unix"
)

// creator is what qemu-img 7.2 on this machine (QEMU_VERSION 7.2.22)
// writes into the file identifier.
const creator = "QEMU v7.2.22"

// create is vhdx_co_create_opts and vhdx_co_create: the file identifier,
// two headers, two region tables, the BAT (zero-state blocks unless
// block_state_zero=off; allocated ones for subformat=fixed), and the
// metadata, in QEMU's order and layout:
//
//	0: file identifier, 64K/128K: headers, 192K/256K: region tables,
//	1M: log, then the BAT (a multiple of 1 MiB), then 1 MiB of metadata,
//	then 5 MiB of free space before the data.
//
// Options: subformat (dynamic, fixed), log_size, block_size (0: from the
// disk size), block_state_zero. QEMU's random GUIDs and header sequence
// number are derived from the size and options here.
func create(co *blk.Co, a *blk.CreateArgs) error {
	o := a.Opts
	logSize, _, err := o.TakeSize("log_size", mib)
	if err != nil {
		return err
	}
	blockSize, _, err := o.TakeSize("block_size", 0)
	if err != nil {
		return err
	}
	fixed := false
	if v, ok := o.TakeString("subformat"); ok {
		switch v {
		case "dynamic":
		case "fixed":
			fixed = true
		default:
			return blk.Msgf(unix.EINVAL, "Parameter 'subformat' does not accept value '%s'", v)
		}
	}
	zeroBlocks, err := o.TakeBool("block_state_zero", true)
	if err != nil {
		return err
	}
	if a.Size < 0 {
		return blk.Msgf(unix.EINVAL, "Image size must be non-negative")
	}
	// Silent rounding (vhdx_co_create_opts).
	size := (uint64(a.Size) + 511) &^ 511
	logSize = (logSize + mib - 1) &^ (mib - 1)
	blockSize = (blockSize + mib - 1) &^ (mib - 1)
	blockSize = min(blockSize, blockSizeMax)

	if size > maxImageSize {
		return blk.Msgf(unix.EINVAL, "Image size too large; max of 64TB")
	}
	if logSize > 1<<32-1 {
		return blk.Msgf(unix.EINVAL, "Log size must be smaller than 4 GB")
	}
	if logSize < mib || logSize%mib != 0 {
		return blk.Msgf(unix.EINVAL, "Log size must be a multiple of 1 MB")
	}
	if blockSize == 0 {
		switch {
		case size > 32<<40:
			blockSize = 64 * mib
		case size > 100<<30:
			blockSize = 32 * mib
		case size > 1<<30:
			blockSize = 16 * mib
		default:
			blockSize = 8 * mib
		}
	}
	if blockSize&(blockSize-1) != 0 {
		return blk.Msgf(unix.EINVAL, "Block size must be a power of two")
	}

	seed := fmt.Appendf(nil, "gio vhdx %d %d %d %v %v", size, logSize, blockSize, fixed, zeroBlocks)
	gen := func(what string) guid { return derivedGUID(append(seed, what...)) }

	// (A) the file identifier.
	id := []byte("vhdxfile")
	for _, u := range utf16.Encode([]rune(creator)) {
		id = append(id, byte(u), byte(u>>8))
	}
	if err := a.File.PWrite(co, 0, id[:8], 0); err != nil {
		return blk.Errorf(blk.ErrnoOf(err), "Failed to write file signature")
	}
	if err := a.File.PWrite(co, 8, id[8:], 0); err != nil {
		return blk.Errorf(blk.ErrnoOf(err), "Failed to write creator field")
	}

	// (B), (C) the headers.
	h := make([]byte, headerCRCSize)
	le.PutUint32(h[hSig:], headerSig)
	sg := gen("seq")
	seq := uint64(le.Uint32(sg[:]))
	le.PutUint64(h[hSeq:], seq)
	fg, dg := gen("file"), gen("data")
	copy(h[hFileGUID:], fg[:])
	copy(h[hDataGUID:], dg[:])
	le.PutUint16(h[hVersion:], 1)
	le.PutUint32(h[hLogLength:], uint32(logSize))
	le.PutUint64(h[hLogOffset:], headerSection)
	for i, off := range []int64{header1Offset, header2Offset} {
		le.PutUint64(h[hSeq:], seq+uint64(i))
		setChecksum(h, hChecksum)
		if err := a.File.PWrite(co, off, h[:headerLen], 0); err == nil {
			err = a.File.Flush(co)
		}
		if err != nil {
			return blk.Errorf(blk.ErrnoOf(err), "Failed to write image headers")
		}
	}

	// (D), (E) the region tables, and (G) the BAT.
	s := &state{blockSize: uint32(blockSize), diskSize: int64(size)}
	s.sectorsPerBlock = s.blockSize / 512
	s.chunkRatio = maxSectorsPerBlock * 512 / blockSize
	for r := s.chunkRatio; r > 1; r >>= 1 {
		s.chunkRatioBits++
	}
	s.calcBATEntries()
	// rt_bat->length is a uint32.
	batLength := uint64(uint32((uint64(s.batEntries)*8 + mib - 1) &^ (mib - 1)))
	batOffset := (headerSection + logSize + mib - 1) &^ (mib - 1)
	metaOffset := (batOffset + batLength + mib - 1) &^ (mib - 1)
	rt := make([]byte, headerBlockSize)
	le.PutUint32(rt, regionSig)
	le.PutUint32(rt[8:], 2)
	copy(rt[16:], batGUID[:])
	le.PutUint64(rt[32:], batOffset)
	le.PutUint32(rt[40:], uint32(batLength))
	copy(rt[48:], metadataGUID[:])
	le.PutUint64(rt[64:], metaOffset)
	le.PutUint32(rt[72:], mib)
	setChecksum(rt, 4)

	dataStart := batOffset + batLength + 5*mib
	end := dataStart
	if fixed {
		end += size
	}
	if err := a.File.Truncate(co, int64(end), false, blk.PreallocOff); err != nil {
		return err
	}
	if fixed || zeroBlocks {
		bat := make([]byte, batLength)
		st := uint64(blockZero)
		if !zeroBlocks {
			st = blockFull
		}
		for sector := uint64(0); sector < size/512; sector += uint64(s.sectorsPerBlock) {
			si := s.translate(int64(sector*512), int64(blockSize))
			e := st
			if st == blockFull {
				e |= (dataStart + sector*512 + mib - 1) &^ (mib - 1)
			}
			le.PutUint64(bat[8*uint64(si.batIdx):], e)
		}
		if err := a.File.PWrite(co, int64(batOffset), bat, 0); err != nil {
			return blk.Errorf(blk.ErrnoOf(err), "Failed to write the BAT")
		}
	}
	if err := a.File.PWrite(co, regionOffset, rt, 0); err != nil {
		return blk.Errorf(blk.ErrnoOf(err), "Failed to write first region table")
	}
	if err := a.File.PWrite(co, region2Offset, rt, 0); err != nil {
		return blk.Errorf(blk.ErrnoOf(err), "Failed to write second region table")
	}

	// (H) the metadata: the table, then the five items after 64 KiB.
	mt := make([]byte, headerBlockSize)
	le.PutUint64(mt, metadataSig)
	le.PutUint16(mt[10:], 5)
	items := []struct {
		g     guid
		len   uint32
		flags uint32
	}{
		{fileParamGUID, 8, metaRequired},
		{virtualSizeGUID, 8, metaRequired | 2},
		{page83GUID, 16, metaRequired | 2},
		{logicalSectGUID, 4, metaRequired | 2},
		{physSectorGUID, 4, metaRequired | 2},
	}
	off := uint32(64 * kib)
	for i, it := range items {
		e := mt[32+32*i:]
		copy(e, it.g[:])
		le.PutUint32(e[16:], off)
		le.PutUint32(e[20:], it.len)
		le.PutUint32(e[24:], it.flags)
		off += it.len
	}
	ib := make([]byte, 40)
	le.PutUint32(ib, uint32(blockSize))
	if fixed {
		le.PutUint32(ib[4:], paramsLeaveAlloced)
	}
	le.PutUint64(ib[8:], size)
	p83 := gen("page83")
	copy(ib[16:], p83[:])
	le.PutUint32(ib[32:], 512)
	le.PutUint32(ib[36:], 512)
	if err := a.File.PWrite(co, int64(metaOffset), mt, 0); err == nil {
		err = a.File.PWrite(co, int64(metaOffset)+64*kib, ib, 0)
	}
	if err != nil {
		return blk.Errorf(blk.ErrnoOf(err), "Failed to initialize metadata")
	}
	return nil
}
