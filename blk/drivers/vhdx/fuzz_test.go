package vhdx

import (
	"testing"

	"gio/blk/blktest"
)

// The fuzz inputs are compact images: input bytes [0, 512K) are the
// file's first 512 KiB (the header section, BAT and metadata of
// compactImage), the rest lands at 1 MiB, where the log must start; the
// file is at least 2 MiB long, so that new blocks go after the log.
const (
	splitAt = 512 * kib
	fuzzBAT = 320 * kib
	fuzzMD  = 384 * kib
)

func expand(in []byte) []byte {
	f := make([]byte, max(2*mib, mib+len(in)-splitAt))
	copy(f, in[:min(len(in), splitAt)])
	if len(in) > splitAt {
		copy(f[mib:], in[splitAt:])
	}
	return f
}

// compactImage is a small valid image laid out inside 512 KiB (QEMU
// does not care where the regions lie): a 4 MiB disk of 1 MiB blocks,
// block 1 in the zero state. With log set, a log entry at 1 MiB (input
// offset 512K) waits to be replayed: it rewrites the BAT sector (block 2
// undefined) and zeroes 4 KiB at 300K.
func compactImage(log bool) []byte {
	img := make([]byte, splitAt)
	copy(img, "vhdxfile")
	lg := guid{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	for i, off := range []int{header1Offset, header2Offset} {
		h := img[off : off+headerCRCSize]
		le.PutUint32(h[hSig:], headerSig)
		le.PutUint64(h[hSeq:], uint64(10+i))
		le.PutUint16(h[hVersion:], 1)
		le.PutUint32(h[hLogLength:], mib)
		le.PutUint64(h[hLogOffset:], mib)
		if log {
			copy(h[hLogGUID:], lg[:])
		}
		setChecksum(h, hChecksum)
	}
	rt := img[regionOffset : regionOffset+headerBlockSize]
	le.PutUint32(rt, regionSig)
	le.PutUint32(rt[8:], 2)
	copy(rt[16:], batGUID[:])
	le.PutUint64(rt[32:], fuzzBAT)
	le.PutUint32(rt[40:], 64*kib)
	copy(rt[48:], metadataGUID[:])
	le.PutUint64(rt[64:], fuzzMD)
	le.PutUint32(rt[72:], 128*kib)
	setChecksum(rt, 4)
	le.PutUint64(img[fuzzBAT+8:], blockZero)
	mt := img[fuzzMD:]
	le.PutUint64(mt, metadataSig)
	le.PutUint16(mt[10:], 5)
	items := []guid{fileParamGUID, virtualSizeGUID, page83GUID, logicalSectGUID, physSectorGUID}
	lens := []uint32{8, 8, 16, 4, 4}
	off := uint32(64 * kib)
	for i, g := range items {
		e := mt[32+32*i:]
		copy(e, g[:])
		le.PutUint32(e[16:], off)
		le.PutUint32(e[20:], lens[i])
		le.PutUint32(e[24:], metaRequired)
		off += lens[i]
	}
	it := mt[64*kib:]
	le.PutUint32(it, mib)
	le.PutUint64(it[8:], 4*mib)
	le.PutUint32(it[32:], 512)
	le.PutUint32(it[36:], 512)
	if !log {
		return img
	}
	// One entry: a header sector with two descriptors, one data sector.
	e := make([]byte, 2*logSector)
	le.PutUint32(e[lSig:], logSig)
	le.PutUint32(e[lEntryLen:], uint32(len(e)))
	le.PutUint64(e[lSeq:], 7)
	le.PutUint32(e[lDescCount:], 2)
	copy(e[lLogGUID:], lg[:])
	flen := uint64(2 * mib)
	le.PutUint64(e[lFlushedOff:], flen)
	le.PutUint64(e[lLastOff:], flen)
	sector := append([]byte(nil), img[fuzzBAT:fuzzBAT+logSector]...)
	le.PutUint64(sector[16:], blockUndefined)
	d := e[logEntryHdr:]
	le.PutUint32(d, logDescSig)
	copy(d[4:8], sector[4092:])
	copy(d[8:16], sector[:8])
	le.PutUint64(d[16:], fuzzBAT)
	le.PutUint64(d[24:], 7)
	d = d[logDescSize:]
	le.PutUint32(d, logZeroSig)
	le.PutUint64(d[8:], logSector)
	le.PutUint64(d[16:], 300*kib)
	le.PutUint64(d[24:], 7)
	ds := e[logSector:]
	le.PutUint32(ds, logDataSig)
	copy(ds[8:4092], sector[8:4092])
	le.PutUint32(ds[4092:], 7)
	setChecksum(e, lChecksum)
	return append(img, e...)
}

// FuzzOpen feeds corrupted VHDX images (headers, region table,
// metadata, BAT, log) to the driver and runs a few requests on each.
func FuzzOpen(f *testing.F) {
	f.Add(compactImage(false), []byte{0, 1, 2, 3, 4, 5, 6, 7})
	f.Add(compactImage(true), []byte{1, 0, 4, 9, 2})
	f.Fuzz(func(t *testing.T, in, ops []byte) { blktest.FuzzFormat(t, Driver, expand(in), ops) })
}
