// Package parallels is the Parallels (Virtuozzo) disk image driver,
// after QEMU's block/parallels.c and parallels-ext.c: a 64-byte header,
// a block allocation table (BAT) of 32-bit cluster offsets right after
// it, and data clusters appended as they are first written.
//
// The driver reaches its image only through its "file" child. A
// writable open marks the header in use (written and flushed at once)
// and a clean close clears the mark and truncates the file to the end
// of the data; an image still marked refuses a writable open, as in
// QEMU. An allocating write grows the file (by the prealloc-size
// option, 128 MiB by default, zeroed or truncated as prealloc-mode
// says), writes the data, and changes the BAT only in memory: the BAT
// blocks it touched reach the file at the next flush, after the data,
// so a crash before the flush loses the write, never points the BAT at
// unwritten data. The format extension (dirty bitmaps) is checked on a
// read-only open and ignored, with QEMU's warning, on a writable one.
package parallels

import (
	"bytes"
	"crypto/md5"
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"

	"gio/blk"

	"golang.org/x/sys/unix"
)

// Driver is the parallels format driver.
var Driver = &blk.Driver{
	Name:            "parallels",
	Format:          true,
	Probe:           probe,
	Open:            open,
	Create:          create,
	SupportsBacking: true,
	NoReopen:        true,
	Options:         []blk.Option{{Name: "prealloc-size"}, {Name: "prealloc-mode", Values: []string{"falloc", "truncate"}}},
}

const (
	magicV1        = "WithoutFreeSpace"
	magicV2        = "WithouFreSpacExt"
	headerVersion  = 2
	inUseMagic     = 0x746F6E59
	headerSize     = 64
	sectorSize     = 512
	headsNumber    = 16
	secInCyl       = 32
	defaultCluster = 1 << 20
	// memAlign is QEMU's bdrv_opt_mem_align of a file node: the header
	// buffer is rounded up to it, and a header update writes that much.
	memAlign = 4096
	// batDirtyBlock is the unit in which changed BAT bytes are written
	// back (4 host pages, bat_dirty_block).
	batDirtyBlock = 4 * 4096
	imageFactor   = uint64(1) << 32 // MAX_PARALLELS_IMAGE_FACTOR
	int32Max      = 1<<31 - 1
)

// Header field offsets (ParallelsHeader, little endian).
const (
	offMagic      = 0
	offVersion    = 16
	offHeads      = 20
	offCylinders  = 24
	offTracks     = 28
	offBATEntries = 32
	offNbSectors  = 36
	offInUse      = 44
	offDataOff    = 48
	offFlags      = 52
	offExtOff     = 56
)

func probe(head []byte) int {
	if len(head) < headerSize {
		return 0
	}
	m := string(head[offMagic : offMagic+16])
	if (m == magicV1 || m == magicV2) && binary.LittleEndian.Uint32(head[offVersion:]) == headerVersion {
		return 100
	}
	return 0
}

// batEntryOff is where BAT entry idx lies in the file.
func batEntryOff(idx uint32) int64 { return headerSize + 4*int64(idx) }

type preallocMode int

const (
	preallocFalloc preallocMode = iota
	preallocTruncate
)

// state is an open image (BDRVParallelsState). Touched only under the
// scheduler token; mu is QEMU's s->lock, held around every use of the
// BAT and every growth of the file.
type state struct {
	file, backing *blk.Child
	loop          *blk.Loop
	readOnly      bool
	checkOpen     bool // opened for a check (BDRV_O_CHECK): unclean images open read/write
	// header is the header and the BAT as in the file, headerSize bytes
	// of it at most (QEMU's s->header, header_size). Bytes past the end
	// of the file are not read in: they read as zero, and the slice
	// grows when an entry there is set, so that a corrupt entry count
	// cannot make gio allocate gigabytes.
	header        []byte
	headerLen     int64 // header_size
	unclean       bool
	batSize       uint32
	dataEnd       int64 // in sectors
	preallocSize  int64 // in sectors
	prealloc      preallocMode
	tracks        uint32
	clusterSize   int64
	offMultiplier uint32
	totalSectors  int64
	dirty         map[int64]bool // BAT blocks (batDirtyBlock) to write back
	mu            blk.CoMutex
}

var (
	_ blk.Checker         = (*state)(nil)
	_ blk.BlockStatuser   = (*state)(nil)
	_ blk.OSFlusher       = (*state)(nil)
	_ blk.LimitsRefresher = (*state)(nil)
)

func open(a *blk.OpenArgs) (blk.Impl, error) {
	s := &state{loop: a.Loop, readOnly: a.Flags.ReadOnly, checkOpen: a.Flags.Check, dirty: map[int64]bool{}}
	if s.loop == nil {
		s.loop = blk.NewLoop(blk.NewVirtualClock())
	}
	var err error
	if s.file, err = a.OpenStorageChild(); err != nil {
		return nil, err
	}
	var extOff uint64
	if err := s.loop.RunSync("parallels open", func(co *blk.Co) (err error) {
		extOff, err = s.load(co)
		return err
	}); err != nil {
		return nil, err
	}
	if err := s.takeOptions(a); err != nil {
		return nil, err
	}
	if extOff != 0 {
		if !s.readOnly {
			// QEMU does not support the extension on a writable image
			// but has always ignored it there.
			a.Warnf("warning: Format Extension ignored in RW mode")
		} else if err := s.loop.RunSync("parallels extension", func(co *blk.Co) error {
			return s.readExtension(co, int64(extOff)*sectorSize)
		}); err != nil {
			return nil, err
		}
	}
	if !s.readOnly {
		binary.LittleEndian.PutUint32(s.header[offInUse:], inUseMagic)
		if err := s.loop.RunSync("parallels open", s.updateHeader); err != nil {
			// The mark may have reached the file although the write
			// failed (an error on its flush, or on its completion).
			// QEMU leaves it there, and the image then no longer
			// opens read/write ("Image was not closed correctly"): a
			// failed open must leave the image as it was, so take
			// the mark back, as well as one can (a file that keeps
			// failing keeps it).
			binary.LittleEndian.PutUint32(s.header[offInUse:], 0)
			_ = s.loop.RunSync("parallels open", s.updateHeader)
			if name := s.file.Node.Filename(); name != "" {
				// bdrv_open_driver's message for an errno alone
				// (QEMU names a blkdebug file by its json: form,
				// which gio does not build).
				return nil, blk.Errorf(blk.ErrnoOf(err), "Could not open '%s'", name)
			}
			return nil, err
		}
	}
	base := a.Node().Filename()
	if base == "" {
		base = s.file.Node.BaseFilename()
	}
	if s.backing, err = a.OpenBacking("", "", base); err != nil {
		return nil, err
	}
	return s, nil
}

// load is the header half of parallels_open, with QEMU's messages and in
// its order; it returns the format extension's offset (sectors).
func (s *state) load(co *blk.Co) (uint64, error) {
	var h [headerSize]byte
	if err := s.file.Node.PRead(co, 0, h[:], 0); err != nil {
		return 0, err
	}
	le := binary.LittleEndian
	s.totalSectors = int64(le.Uint64(h[offNbSectors:]))
	if le.Uint32(h[offVersion:]) != headerVersion {
		return 0, blk.Msgf(unix.EINVAL, "Image not in Parallels format")
	}
	switch string(h[offMagic : offMagic+16]) {
	case magicV1:
		s.offMultiplier = 1
		s.totalSectors &= 0xffffffff
	case magicV2:
		s.offMultiplier = le.Uint32(h[offTracks:])
	default:
		return 0, blk.Msgf(unix.EINVAL, "Image not in Parallels format")
	}
	if s.totalSectors < 0 || s.totalSectors > (1<<63-1)/sectorSize {
		// QEMU 7.2 takes any 64-bit count here (a negative length
		// follows); gio refuses a size no image can have.
		return 0, blk.Msgf(unix.EFBIG, "Invalid image: disk size %d sectors is too big", uint64(s.totalSectors))
	}
	s.tracks = le.Uint32(h[offTracks:])
	if s.tracks == 0 {
		return 0, blk.Msgf(unix.EINVAL, "Invalid image: Zero sectors per track")
	}
	if s.tracks > int32Max/513 {
		return 0, blk.Msgf(unix.EFBIG, "Invalid image: Too big cluster")
	}
	s.clusterSize = int64(s.tracks) * sectorSize
	s.batSize = le.Uint32(h[offBATEntries:])
	if s.batSize > int32Max/4 {
		return 0, blk.Msgf(unix.EFBIG, "Catalog too large")
	}
	size := batEntryOff(s.batSize)
	s.headerLen = (size + memAlign - 1) &^ (memAlign - 1)
	s.dataEnd = int64(le.Uint32(h[offDataOff:]))
	if s.dataEnd == 0 {
		// QEMU puts a byte count here, used as sectors from then on.
		s.dataEnd = (size + sectorSize - 1) &^ (sectorSize - 1)
	}
	if s.dataEnd < s.headerLen {
		// No room to round the BAT up to the alignment before the data
		// (QEMU compares sectors with bytes here, as gio does).
		s.headerLen = size
	}
	flen, err := s.file.Node.Length(co)
	if err != nil {
		return 0, err
	}
	n := min(s.headerLen, max(headerSize, (flen+sectorSize-1)&^(sectorSize-1)))
	s.header = make([]byte, n)
	if err := s.file.Node.PRead(co, 0, s.header, 0); err != nil {
		return 0, err
	}
	for i := uint32(0); i < s.batSize && batEntryOff(i)+4 <= int64(len(s.header)); i++ {
		if off := s.batSect(i); off >= s.dataEnd {
			s.dataEnd = off + int64(s.tracks)
		}
	}
	if le.Uint32(h[offInUse:]) == inUseMagic {
		// The image was not closed correctly: a check is mandatory.
		s.unclean = true
		if !s.readOnly && !s.checkOpen {
			return 0, blk.Msgf(unix.EACCES, "parallels: Image was not closed correctly; cannot be opened read/write")
		}
	}
	return le.Uint64(h[offExtOff:]), nil
}

// takeOptions reads the runtime options prealloc-size and prealloc-mode.
func (s *state) takeOptions(a *blk.OpenArgs) error {
	size, warning, err := a.Opts.TakeSize("prealloc-size", 128<<20)
	if err != nil {
		return err
	}
	if warning != "" {
		a.Warnf("%s", warning)
	}
	s.preallocSize = max(int64(s.tracks), int64(size>>9))
	if m, ok := a.Opts.TakeString("prealloc-mode"); ok {
		switch m {
		case "falloc":
			s.prealloc = preallocFalloc
		case "truncate":
			s.prealloc = preallocTruncate
		default:
			return blk.Msgf(unix.EINVAL, "invalid parameter value: %s", m)
		}
	}
	return nil
}

func (s *state) bat(i uint32) uint32 {
	off := batEntryOff(i)
	if off+4 > int64(len(s.header)) {
		return 0
	}
	return binary.LittleEndian.Uint32(s.header[off:])
}

func (s *state) setBAT(i uint32, v uint32) {
	off := batEntryOff(i)
	if need := off + 4; need > int64(len(s.header)) {
		s.header = append(s.header, make([]byte, need-int64(len(s.header)))...)
	}
	binary.LittleEndian.PutUint32(s.header[off:], v)
	s.dirty[off/batDirtyBlock] = true
}

// batSect is bat2sect: where cluster i lies, in sectors (0: nowhere).
func (s *state) batSect(i uint32) int64 { return int64(s.bat(i)) * int64(s.offMultiplier) }

// seek is seek_to_sector: where sector lies in the file, or -1.
func (s *state) seek(sector int64) int64 {
	idx := sector / int64(s.tracks)
	if idx >= int64(s.batSize) || s.bat(uint32(idx)) == 0 {
		return -1
	}
	return s.batSect(uint32(idx)) + sector%int64(s.tracks)
}

// blockStatus is block_status: where the run of sectors from sector lies
// (-1: unallocated), and how many sectors it covers, contiguous in the
// file (or all unallocated).
func (s *state) blockStatus(sector, nb int64) (int64, int64) {
	start, prevEnd := int64(-2), int64(-2)
	var pnum int64
	for nb > 0 || start == -2 {
		off := s.seek(sector)
		if start == -2 {
			start, prevEnd = off, off
		} else if off != prevEnd {
			break
		}
		toEnd := min(nb, int64(s.tracks)-sector%int64(s.tracks))
		nb -= toEnd
		sector += toEnd
		pnum += toEnd
		if off > 0 {
			prevEnd += toEnd
		}
	}
	return start, pnum
}

// RefreshLimits: sector-based I/O (QEMU's bdrv_co_readv drivers).
func (s *state) RefreshLimits(l *blk.Limits) {
	l.RequestAlignment = max(l.RequestAlignment, sectorSize)
}

// PRead is parallels_co_readv: allocated runs from the file, the rest
// from the backing file or as zeroes.
func (s *state) PRead(co *blk.Co, off int64, buf []byte, _ blk.ReqFlags) error {
	sector, nb := off/sectorSize, int64(len(buf))/sectorSize
	for nb > 0 {
		s.mu.Lock(co, "waits for the parallels lock")
		pos, n := s.blockStatus(sector, nb)
		s.mu.Unlock()
		part := buf[:n*sectorSize]
		switch {
		case pos >= 0:
			if err := s.file.Node.PRead(co, pos*sectorSize, part, 0); err != nil {
				return err
			}
		case s.backing != nil:
			if err := s.backing.Node.PRead(co, sector*sectorSize, part, 0); err != nil {
				return err
			}
		default:
			clear(part)
		}
		buf, sector, nb = buf[len(part):], sector+n, nb-n
	}
	return nil
}

// PWrite is parallels_co_writev: each run is allocated if it must be,
// then written in place.
func (s *state) PWrite(co *blk.Co, off int64, buf []byte, _ blk.ReqFlags) error {
	sector, nb := off/sectorSize, int64(len(buf))/sectorSize
	for nb > 0 {
		s.mu.Lock(co, "waits for the parallels lock")
		pos, n, err := s.allocate(co, sector, nb)
		s.mu.Unlock()
		if err != nil {
			return err
		}
		part := buf[:n*sectorSize]
		flen, err := s.file.Node.Length(co)
		if err != nil {
			return err
		}
		if cluster := pos - sector%int64(s.tracks); cluster*sectorSize > flen {
			// A BAT entry points past the file ("cluster ... is outside
			// image" to qemu-img check). QEMU 7.2 writes there, growing
			// the file to wherever the entry says; gio refuses.
			return blk.Msgf(unix.EIO, "parallels: cluster %d lies past the end of the file: the BAT is corrupt", sector/int64(s.tracks))
		}
		if err := s.file.Node.PWrite(co, pos*sectorSize, part, 0); err != nil {
			return err
		}
		buf, sector, nb = buf[len(part):], sector+n, nb-n
	}
	return nil
}

// allocate is allocate_clusters: the clusters of the run from sector
// get places at the end of the data, the file grows (with room to spare)
// when they do not fit, and a backing file's data is copied in first.
func (s *state) allocate(co *blk.Co, sector, nb int64) (int64, int64, error) {
	pos, pnum := s.blockStatus(sector, nb)
	if pos > 0 {
		return pos, pnum, nil
	}
	tracks := int64(s.tracks)
	idx := sector / tracks
	toAllocate := (sector+pnum+tracks-1)/tracks - idx
	space := toAllocate * tracks
	flen, err := s.file.Node.Length(co)
	if err != nil {
		return 0, 0, err
	}
	if s.dataEnd*sectorSize > flen {
		// A BAT entry (or data_off) points past the file: QEMU 7.2 would
		// allocate there, growing the file to wherever the corrupt entry
		// says; gio refuses, as qemu-img check would call the image
		// corrupt ("cluster ... is outside image").
		return 0, 0, blk.Msgf(unix.EIO, "parallels: the data end (sector %d) lies past the end of the file: the BAT or header is corrupt", s.dataEnd)
	}
	if s.dataEnd+space > flen/sectorSize {
		space += s.preallocSize
		if s.prealloc == preallocTruncate {
			err = s.file.Node.Truncate(co, (s.dataEnd+space)*sectorSize, false, blk.PreallocOff)
			if blk.ErrnoOf(err) == unix.ENOTSUP {
				s.prealloc = preallocFalloc
			}
		}
		if s.prealloc == preallocFalloc {
			err = s.file.Node.PWriteZeroes(co, s.dataEnd*sectorSize, space*sectorSize, 0)
		}
		if err != nil {
			return 0, 0, err
		}
	}
	if s.backing != nil {
		cow := make([]byte, toAllocate*tracks*sectorSize)
		if err := s.backing.Node.PRead(co, idx*tracks*sectorSize, cow, 0); err != nil {
			return 0, 0, err
		}
		if err := s.file.Node.PWrite(co, s.dataEnd*sectorSize, cow, 0); err != nil {
			return 0, 0, err
		}
	}
	for i := int64(0); i < toAllocate; i++ {
		s.setBAT(uint32(idx+i), uint32(s.dataEnd/int64(s.offMultiplier)))
		s.dataEnd += tracks
	}
	return s.batSect(uint32(idx)) + sector%tracks, pnum, nil
}

// FlushToOS is parallels_co_flush_to_os: the BAT blocks changed since
// the last flush go to the file.
func (s *state) FlushToOS(co *blk.Co) error {
	s.mu.Lock(co, "waits for the parallels lock")
	defer s.mu.Unlock()
	blocks := (s.headerLen + batDirtyBlock - 1) / batDirtyBlock
	for b := int64(0); b < blocks; b++ {
		if !s.dirty[b] {
			continue
		}
		off := b * batDirtyBlock
		n := min(int64(batDirtyBlock), s.headerLen-off)
		if err := s.file.Node.PWrite(co, off, s.headerBytes(off, n), 0); err != nil {
			return err
		}
		delete(s.dirty, b)
	}
	return nil
}

// headerBytes is n bytes of the header buffer from off, zeroes where
// gio never read or set them.
func (s *state) headerBytes(off, n int64) []byte {
	out := make([]byte, n)
	if off < int64(len(s.header)) {
		copy(out, s.header[off:])
	}
	return out
}

// updateHeader is parallels_update_header: the first memAlign bytes of
// the header buffer, written and flushed.
func (s *state) updateHeader(co *blk.Co) error {
	n := min(int64(max(memAlign, headerSize)), s.headerLen)
	if err := s.file.Node.PWrite(co, 0, s.headerBytes(0, n), 0); err != nil {
		return err
	}
	return s.file.Node.Flush(co)
}

// BlockStatus is parallels_co_block_status: data at its place in the
// file, or unallocated.
func (s *state) BlockStatus(co *blk.Co, _ bool, off, n int64) (blk.Status, error) {
	s.mu.Lock(co, "waits for the parallels lock")
	pos, pnum := s.blockStatus(off/sectorSize, n/sectorSize)
	s.mu.Unlock()
	st := blk.Status{Pnum: pnum * sectorSize}
	if pos < 0 {
		return st, nil
	}
	st.Flags = blk.StatusData | blk.StatusOffsetValid
	st.Map, st.File = pos*sectorSize, s.file.Node
	return st, nil
}

// Length is nb_sectors whole sectors.
func (s *state) Length(*blk.Co) (int64, error) { return s.totalSectors * sectorSize, nil }

// Close is parallels_close: a writable image is marked clean and cut
// back to the end of its data (errors are ignored, as in QEMU).
func (s *state) Close() error {
	if s.readOnly {
		return nil
	}
	return s.loop.RunSync("parallels close", func(co *blk.Co) error {
		binary.LittleEndian.PutUint32(s.header[offInUse:], 0)
		_ = s.updateHeader(co)
		// The cut removes what preallocation added. A corrupt BAT can put
		// the data end past the file, where QEMU would grow the file to
		// it; gio only ever shrinks it.
		if l, err := s.file.Node.Length(co); err == nil && s.dataEnd*sectorSize < l {
			_ = s.file.Node.Truncate(co, s.dataEnd*sectorSize, true, blk.PreallocOff)
		}
		return nil
	})
}

// Check is parallels_co_check: an image not closed correctly is a
// corruption (repaired by the clean close that follows), a BAT entry past
// the end of the file is a corruption (repaired by dropping the cluster),
// and space past the last cluster is leaked (repaired by cutting the
// file).
func (s *state) Check(co *blk.Co, fix blk.CheckMode, msgs io.Writer, res *blk.CheckResult) error {
	size, err := s.file.Node.Length(co)
	if err != nil {
		res.CheckErrors++
		return err
	}
	s.mu.Lock(co, "waits for the parallels lock")
	defer s.mu.Unlock()
	verb := func(m blk.CheckMode) string {
		if fix&m != 0 {
			return "Repairing"
		}
		return "ERROR"
	}
	if s.unclean {
		fmt.Fprintf(msgs, "%s image was not closed correctly\n", verb(blk.CheckFixErrors))
		res.Corruptions++
		if fix&blk.CheckFixErrors != 0 {
			res.CorruptionsFixed++
			s.unclean = false
		}
	}
	res.TotalClusters = int64(s.batSize)
	var high, prev int64
	flushBAT := false
	for i := uint32(0); i < s.batSize; i++ {
		off := s.batSect(i) * sectorSize
		if off == 0 {
			prev = 0
			continue
		}
		if off > size {
			fmt.Fprintf(msgs, "%s cluster %d is outside image\n", verb(blk.CheckFixErrors), i)
			res.Corruptions++
			if fix&blk.CheckFixErrors != 0 {
				prev = 0
				s.setBAT(i, 0)
				res.CorruptionsFixed++
				flushBAT = true
				continue
			}
		}
		res.AllocatedClusters++
		high = max(high, off)
		if prev != 0 && prev+s.clusterSize != off {
			res.FragmentedClusters++
		}
		prev = off
	}
	if flushBAT {
		if err := s.file.Node.PWrite(co, 0, s.headerBytes(0, s.headerLen), 0); err == nil {
			err = s.file.Node.Flush(co)
		}
		if err != nil {
			res.CheckErrors++
			return err
		}
		clear(s.dirty)
	}
	res.ImageEndOffset = high + s.clusterSize
	if size > res.ImageEndOffset {
		count := (size - res.ImageEndOffset + s.clusterSize - 1) / s.clusterSize
		fmt.Fprintf(msgs, "%s space leaked at the end of the image %d\n", verb(blk.CheckFixLeaks), size-res.ImageEndOffset)
		res.Leaks += int(count)
		if fix&blk.CheckFixLeaks != 0 {
			if err := s.file.Node.Truncate(co, res.ImageEndOffset, true, blk.PreallocOff); err != nil {
				res.CheckErrors++
				return err
			}
			res.LeaksFixed += int(count)
		}
	}
	return nil
}

// Format extension (parallels-ext.c), checked on a read-only open.
const (
	extMagic           = 0xAB234CEF23DCEA87
	extEndOfFeatures   = 0
	extDirtyBitmap     = 0x20385FAE252CB34A
	extHeaderSize      = 8 + 16
	featureHeaderSize  = 8 + 8 + 4 + 4
	bitmapFeatureSize  = 8 + 16 + 4 + 4
	serializationAlign = 64 // bits of a serialized bitmap word
)

// readExtension is parallels_read_format_extension: the extension
// cluster's magic and MD5 checksum, then its features; a dirty bitmap
// feature is checked as QEMU loads it (gio keeps no dirty bitmaps).
func (s *state) readExtension(co *blk.Co, off int64) error {
	// QEMU reads a whole cluster, zeroes past the end of the file; gio
	// reads what the file has and hashes the zeroes without holding them
	// (a corrupt header may claim a cluster of almost 2 GiB).
	flen, err := s.file.Node.Length(co)
	if err != nil {
		return err
	}
	avail := min(s.clusterSize, max(0, flen-off))
	ext := make([]byte, max(extHeaderSize+featureHeaderSize, (avail+7)&^7+featureHeaderSize))
	if avail > 0 {
		if err := s.file.Node.PRead(co, off, ext[:avail], 0); err != nil {
			return blk.Errorf(blk.ErrnoOf(err), "Failed to read Format Extension cluster")
		}
	}
	le := binary.LittleEndian
	if m := le.Uint64(ext); m != extMagic {
		return blk.Msgf(unix.EINVAL, "Wrong parallels Format Extension magic: 0x%x, expected: 0x%x", m, uint64(extMagic))
	}
	h := md5.New()
	h.Write(ext[extHeaderSize:min(int64(len(ext)), s.clusterSize)])
	for left := s.clusterSize - int64(len(ext)); left > 0; {
		n := min(left, int64(len(zeroes)))
		h.Write(zeroes[:n])
		left -= n
	}
	if !bytes.Equal(h.Sum(nil), ext[8:24]) {
		return blk.Msgf(unix.EINVAL, "Wrong checksum in Format Extension header. Format extension is corrupted.")
	}
	pos := int64(extHeaderSize)
	for {
		remaining := s.clusterSize - pos
		if pos+featureHeaderSize > int64(len(ext)) {
			// Past what the file holds: zeroes, the end of features.
			return nil
		}
		if remaining < featureHeaderSize {
			return blk.Msgf(unix.EINVAL, "Can not read feature header, as remaining bytes (%d) in Format Extension is less than Feature header size (%d)", remaining, featureHeaderSize)
		}
		magic, flags, size := le.Uint64(ext[pos:]), le.Uint64(ext[pos+8:]), le.Uint32(ext[pos+16:])
		pos += featureHeaderSize
		remaining -= featureHeaderSize
		if flags != 0 {
			return blk.Msgf(unix.EINVAL, "Flags for extension feature are unsupported")
		}
		if int64(size) > remaining {
			return blk.Msgf(unix.EINVAL, "Feature data_size exceedes Format Extension cluster")
		}
		switch magic {
		case extEndOfFeatures:
			return nil
		case extDirtyBitmap:
			data := make([]byte, size)
			if pos < int64(len(ext)) {
				copy(data, ext[pos:])
			}
			if err := s.checkBitmap(data); err != nil {
				return err
			}
		default:
			return blk.Msgf(unix.EINVAL, "Unknown feature: 0x%x", magic)
		}
		pos = (pos + int64(size) + 7) &^ 7
	}
}

var zeroes = make([]byte, 64<<10)

// checkBitmap is parallels_load_bitmap's checks: the bitmap covers the
// disk, its table fits the feature and has the size its granularity
// needs.
func (s *state) checkBitmap(data []byte) error {
	if len(data) < bitmapFeatureSize {
		return blk.Msgf(unix.EINVAL, "Too small Bitmap Feature area in Parallels Format Extension: %d bytes, expected at least %d bytes", len(data), bitmapFeatureSize)
	}
	le := binary.LittleEndian
	size := int64(le.Uint64(data))
	granularity := uint64(le.Uint32(data[24:])) << 9
	l1Size := le.Uint32(data[28:])
	if size != s.totalSectors {
		return blk.Msgf(unix.EINVAL, "Bitmap size (in sectors) %d differs from disk size in sectors %d", size, s.totalSectors)
	}
	if uint64(l1Size)*8 > uint64(len(data)-bitmapFeatureSize) {
		return blk.Msgf(unix.EINVAL, "Bitmaps feature corrupted: l1 table exceeds extension data_size")
	}
	// bdrv_create_dirty_bitmap asserts a power of two of at least 512
	// bytes (a corrupt image aborts QEMU); gio refuses it.
	if granularity < 512 || bits.OnesCount64(granularity) != 1 || granularity > 1<<31 {
		return blk.Msgf(unix.EINVAL, "Granularity must be power of 2 and at least 512")
	}
	bytesTotal := uint64(s.totalSectors) * sectorSize
	var tab uint64
	if bytesTotal > 0 {
		words := ((bytesTotal-1)/granularity)/serializationAlign + 1
		tab = (words*8 + uint64(s.clusterSize) - 1) / uint64(s.clusterSize)
	}
	if tab != uint64(l1Size) {
		return blk.Msgf(unix.EINVAL, "Bitmap table size %d does not correspond to bitmap size and cluster size. Expected %d", l1Size, tab)
	}
	return nil
}

// create is parallels_co_create: the header (version 2 magic) in the
// first sector and a zeroed BAT, in whole clusters.
func create(co *blk.Co, a *blk.CreateArgs) error {
	cl, warning, err := a.Opts.TakeSize("cluster_size", defaultCluster)
	if err != nil {
		return err
	}
	_ = warning
	total := uint64(a.Size+sectorSize-1) &^ (sectorSize - 1)
	cl = (cl + sectorSize - 1) &^ (sectorSize - 1)
	if cl >= (1<<63-1)/imageFactor {
		return blk.Msgf(unix.EINVAL, "Cluster size is too large")
	}
	if total >= imageFactor*cl {
		return blk.Msgf(unix.E2BIG, "Image size is too large for this cluster size")
	}
	batEntries := (total + cl - 1) / cl
	batSectors := (uint64(batEntryOff(uint32(batEntries))) + cl - 1) / cl
	batSectors = batSectors * cl / sectorSize
	var h [sectorSize]byte
	le := binary.LittleEndian
	copy(h[offMagic:], magicV2)
	le.PutUint32(h[offVersion:], headerVersion)
	le.PutUint32(h[offHeads:], headsNumber)
	le.PutUint32(h[offCylinders:], uint32(total/sectorSize/headsNumber/secInCyl))
	le.PutUint32(h[offTracks:], uint32(cl/sectorSize))
	le.PutUint32(h[offBATEntries:], uint32(batEntries))
	le.PutUint64(h[offNbSectors:], (total+sectorSize-1)/sectorSize)
	le.PutUint32(h[offDataOff:], uint32(batSectors))
	if err := a.File.PWrite(co, 0, h[:], 0); err != nil {
		return blk.Errorf(blk.ErrnoOf(err), "Failed to create Parallels image")
	}
	if batSectors > 1 {
		if err := a.File.PWriteZeroes(co, sectorSize, int64(batSectors-1)*sectorSize, 0); err != nil {
			return blk.Errorf(blk.ErrnoOf(err), "Failed to create Parallels image")
		}
	}
	return nil
}
