// Package vpc is the VHD (Virtual PC) format driver, after QEMU's
// block/vpc.c: fixed images (the data, then a footer) and dynamic ones (a
// footer copy, a dynamic-disk header, the block allocation table, then
// blocks of a sector bitmap and 2 MiB of data, with the footer after the
// last block), with QEMU's rules for the disk size (CHS geometry or the
// footer's current_size, after the creator application) and its
// geometry search at creation.
//
// The driver reaches its image only through its "file" child. A write to
// an unallocated block writes, each synced, the block's bitmap over the
// old footer, the footer after the new block, then the BAT entry: a crash
// before the entry is written leaks the block, never points into
// unwritten space. Like QEMU, every block's bitmap is all ones (gio, like
// QEMU, does not track sectors inside a block), and there are no zero
// writes, discard or resize of its own. Differencing images are refused
// as QEMU 7.2 treats them: as dynamic ones without their parent.
package vpc

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"gio/blk"

	"golang.org/x/sys/unix"
)

// Driver is the vpc format driver.
var Driver = &blk.Driver{
	Name:    "vpc",
	Format:  true,
	Probe:   probe,
	Open:    open,
	Create:  create,
	Options: []blk.Option{{Name: "force_size_calc", Values: []string{"chs", "current_size"}}},
}

const (
	typeFixed   = 2
	typeDynamic = 3

	chsMaxC     = 65535
	chsMaxH     = 16
	chsMaxS     = 255
	maxSectors  = 0xff000000 // 2040 GiB
	maxGeometry = chsMaxC * chsMaxH * chsMaxS

	footerSize   = 512
	dynHdrSize   = 1024
	unallocated  = 0xffffffff
	newBlockSize = 0x200000
)

// Footer field offsets (VHDFooter, big endian).
const (
	fCreator     = 0
	fFeatures    = 8
	fVersion     = 12
	fDataOffset  = 16
	fTimestamp   = 24
	fCreatorApp  = 28
	fMajor       = 32
	fMinor       = 34
	fCreatorOS   = 36
	fOrigSize    = 40
	fCurrentSize = 48
	fCyls        = 56
	fHeads       = 58
	fSecs        = 59
	fType        = 60
	fChecksum    = 64
	fUUID        = 68
)

// Dynamic-disk header field offsets (VHDDynDiskHeader, big endian).
const (
	dMagic       = 0
	dDataOffset  = 8
	dTableOffset = 16
	dVersion     = 24
	dMaxEntries  = 28
	dBlockSize   = 32
	dChecksum    = 36
)

var be = binary.BigEndian

// probe is vpc_probe: the footer copy at the start of a dynamic image.
// (A fixed image has its footer only at the end: it probes as raw.)
func probe(head []byte) int {
	if len(head) >= 8 && string(head[:8]) == "conectix" {
		return 100
	}
	return 0
}

// checksum is vpc_checksum: the complement of the byte sum.
func checksum(b []byte) uint32 {
	var s uint32
	for _, c := range b {
		s += uint32(c)
	}
	return ^s
}

// state is an open VHD image (BDRVVPCState), touched only under the
// scheduler token.
type state struct {
	file   *blk.Child
	footer [footerSize]byte
	fixed  bool
	size   int64 // total_sectors * 512

	// Dynamic images only.
	blockSize, bitmapSize int64
	pagetable             []uint32
	batOffset             int64
	freeDataBlock         int64
	lastBitmap            int64
	mu                    coMutex
}

var (
	_ blk.BlockStatuser = (*state)(nil)
	_ blk.Infoer        = (*state)(nil)
)

func open(a *blk.OpenArgs) (blk.Impl, error) {
	s := &state{lastBitmap: -1}
	var err error
	if s.file, err = a.OpenStorageChild(); err != nil {
		return nil, err
	}
	var forceCHS, forceSize bool
	if v, ok := a.Opts.TakeString("force_size_calc"); ok {
		switch v {
		case "current_size":
			forceSize = true
		case "chs":
			forceCHS = true
		default:
			return nil, blk.Msgf(unix.EINVAL, "Invalid size calculation mode: '%s'", v)
		}
	}
	if err := a.RunSync("vpc open", func(co *blk.Co) error { return s.load(co, forceCHS, forceSize) }); err != nil {
		return nil, err
	}
	return s, nil
}

// load is vpc_open after the options: find the footer (at the start of
// a dynamic image, at the end of a fixed one), check it, size the disk,
// and for a dynamic image read the header and the BAT.
func (s *state) load(co *blk.Co, forceCHS, forceSize bool) error {
	f := s.footer[:]
	if err := s.file.Node.PRead(co, 0, f, 0); err != nil {
		return blk.Msgf(blk.ErrnoOf(err), "Unable to read VHD header")
	}
	flen, err := s.file.Node.Length(co)
	if err != nil {
		return blk.Msgf(blk.ErrnoOf(err), "Invalid file size")
	}
	if string(f[:8]) != "conectix" {
		if flen < footerSize {
			return blk.Msgf(unix.EINVAL, "File too small for a VHD header")
		}
		if err := s.file.Node.PRead(co, flen-footerSize, f, 0); err != nil {
			return err
		}
		if string(f[:8]) != "conectix" || be.Uint32(f[fType:]) != typeFixed {
			return blk.Msgf(unix.EINVAL, "invalid VPC image")
		}
		s.fixed = true
	}
	sum := be.Uint32(f[fChecksum:])
	be.PutUint32(f[fChecksum:], 0)
	if checksum(f) != sum {
		return blk.Msgf(unix.EINVAL, "Incorrect header checksum")
	}
	be.PutUint32(f[fChecksum:], sum)

	sectors := int64(be.Uint16(f[fCyls:])) * int64(f[fHeads]) * int64(f[fSecs])
	app := string(f[fCreatorApp : fCreatorApp+4])
	useCHS := (app != "win " && app != "qem2" && app != "d2v " && app != "CTXS" && app != "tap\x00") || forceCHS
	if !useCHS || sectors == maxGeometry || forceSize {
		sectors = int64(be.Uint64(f[fCurrentSize:]) / 512)
	}
	if sectors > maxSectors {
		return unix.EFBIG
	}
	s.size = sectors * 512
	if s.fixed {
		return nil
	}

	dataOff := be.Uint64(f[fDataOffset:])
	var h [dynHdrSize]byte
	if dataOff > 1<<62 {
		return blk.Msgf(unix.EINVAL, "Error reading dynamic VHD header")
	}
	if err := s.file.Node.PRead(co, int64(dataOff), h[:], 0); err != nil {
		return blk.Msgf(blk.ErrnoOf(err), "Error reading dynamic VHD header")
	}
	if string(h[dMagic:dMagic+8]) != "cxsparse" {
		return blk.Msgf(unix.EINVAL, "Invalid header magic")
	}
	bs := be.Uint32(h[dBlockSize:])
	if bs&(bs-1) != 0 || bs < 512 {
		return blk.Msgf(unix.EINVAL, "Invalid block size %d", bs)
	}
	s.blockSize = int64(bs)
	s.bitmapSize = ((s.blockSize / (8 * 512)) + 511) &^ 511
	// max_table_entries is an int in QEMU: the checks below follow its
	// conversions.
	maxEntries := int32(be.Uint32(h[dMaxEntries:]))
	if uint64(sectors*512)/uint64(bs) > 0xffffffff {
		return blk.Msgf(unix.EINVAL, "Too many blocks")
	}
	if uint64(int64(maxEntries))*uint64(bs) < uint64(sectors*512) {
		return blk.Msgf(unix.EINVAL, "Page table too small")
	}
	if maxEntries < 0 || maxEntries > (1<<31-1)/4 {
		return blk.Msgf(unix.EINVAL, "Max Table Entries too large (%d)", maxEntries)
	}
	ptSize := int64(maxEntries) * 4
	bat := be.Uint64(h[dTableOffset:])
	if bat > 1<<62 {
		return blk.Msgf(unix.EINVAL, "Error reading pagetable")
	}
	s.batOffset = int64(bat)
	s.freeDataBlock = (s.batOffset + ptSize + 511) &^ 511
	// The table is read only when it lies inside the file: QEMU reads
	// zeroes past the end, and then refuses the image as truncated
	// below anyway, so nothing is lost but the allocation.
	if s.freeDataBlock <= flen {
		raw := make([]byte, ptSize)
		if err := s.file.Node.PRead(co, s.batOffset, raw, 0); err != nil {
			return blk.Msgf(blk.ErrnoOf(err), "Error reading pagetable")
		}
		s.pagetable = make([]uint32, maxEntries)
		for i := range s.pagetable {
			s.pagetable[i] = be.Uint32(raw[4*i:])
			if s.pagetable[i] != unallocated {
				s.freeDataBlock = max(s.freeDataBlock, 512*int64(s.pagetable[i])+s.bitmapSize+s.blockSize)
			}
		}
	}
	if s.freeDataBlock > flen {
		return blk.Msgf(unix.EINVAL, "block-vpc: free_data_block_offset points after the end of file. The image has been truncated.")
	}
	return nil
}

// imageOffset is get_image_offset: where offset's data lives, or -1 when
// its block is not allocated. With write set, the block's bitmap is
// written (all ones) the first time a write goes to it in a row.
func (s *state) imageOffset(co *blk.Co, off int64, write bool) (int64, error) {
	idx, in := off/s.blockSize, off%s.blockSize
	if idx >= int64(len(s.pagetable)) || s.pagetable[idx] == unallocated {
		return -1, nil
	}
	bitmap := 512 * int64(s.pagetable[idx])
	if write && s.lastBitmap != bitmap {
		s.lastBitmap = bitmap
		if err := s.writeSync(co, bitmap, s.ones()); err != nil {
			return 0, err
		}
	}
	return bitmap + s.bitmapSize + in, nil
}

func (s *state) ones() []byte {
	b := make([]byte, s.bitmapSize)
	for i := range b {
		b[i] = 0xff
	}
	return b
}

// writeSync is bdrv_pwrite_sync: a write, then a flush of the file.
func (s *state) writeSync(co *blk.Co, off int64, b []byte) error {
	if err := s.file.Node.PWrite(co, off, b, 0); err != nil {
		return err
	}
	return s.file.Node.Flush(co)
}

// allocBlock is alloc_block: the new block goes where the footer is; its
// bitmap, the footer moved after it, then the BAT entry are written.
func (s *state) allocBlock(co *blk.Co, off int64) (int64, error) {
	if off < 0 || off > s.size {
		return 0, unix.EINVAL
	}
	idx := off / s.blockSize
	if idx >= int64(len(s.pagetable)) {
		return 0, unix.EINVAL
	}
	old := s.pagetable[idx]
	s.pagetable[idx] = uint32(s.freeDataBlock / 512)
	if err := s.writeSync(co, s.freeDataBlock, s.ones()); err != nil {
		// QEMU keeps the entry: the block then maps to where the
		// footer is, a later write lands over the footer and is gone
		// after a reopen. Give it back.
		s.pagetable[idx] = old
		return 0, err
	}
	s.freeDataBlock += s.blockSize + s.bitmapSize
	fail := func(err error) (int64, error) {
		s.freeDataBlock -= s.blockSize + s.bitmapSize
		s.pagetable[idx] = old
		return 0, err
	}
	if err := s.writeSync(co, s.freeDataBlock, s.footer[:]); err != nil {
		return fail(err)
	}
	var e [4]byte
	be.PutUint32(e[:], s.pagetable[idx])
	if err := s.writeSync(co, s.batOffset+4*idx, e[:]); err != nil {
		return fail(err)
	}
	return s.imageOffset(co, off, false)
}

// PRead is vpc_co_preadv.
func (s *state) PRead(co *blk.Co, off int64, buf []byte, _ blk.ReqFlags) error {
	if s.fixed {
		return s.file.Node.PRead(co, off, buf, 0)
	}
	s.mu.lock(co)
	defer s.mu.unlock()
	for len(buf) > 0 {
		n := min(int64(len(buf)), s.blockSize-off%s.blockSize)
		host, _ := s.imageOffset(co, off, false)
		if host == -1 {
			clear(buf[:n])
		} else {
			s.mu.unlock()
			err := s.file.Node.PRead(co, host, buf[:n], 0)
			s.mu.lock(co)
			if err != nil {
				return err
			}
		}
		off, buf = off+n, buf[n:]
	}
	return nil
}

// PWrite is vpc_co_pwritev.
func (s *state) PWrite(co *blk.Co, off int64, buf []byte, _ blk.ReqFlags) error {
	if s.fixed {
		return s.file.Node.PWrite(co, off, buf, 0)
	}
	s.mu.lock(co)
	defer s.mu.unlock()
	for len(buf) > 0 {
		host, err := s.imageOffset(co, off, true)
		if err != nil {
			return err
		}
		n := min(int64(len(buf)), s.blockSize-off%s.blockSize)
		if host == -1 {
			if host, err = s.allocBlock(co, off); err != nil {
				return err
			}
		}
		s.mu.unlock()
		err = s.file.Node.PWrite(co, host, buf[:n], 0)
		s.mu.lock(co)
		if err != nil {
			return err
		}
		off, buf = off+n, buf[n:]
	}
	return nil
}

// Length is the disk size QEMU's rules give.
func (s *state) Length(*blk.Co) (int64, error) { return s.size, nil }

// Close has nothing to release.
func (s *state) Close() error { return nil }

// BlockStatus is vpc_co_block_status: a fixed image is all data in
// place; in a dynamic one an allocated block is data (one block at a
// time, the bitmaps lie between), a run of unallocated blocks reads as
// zeroes.
func (s *state) BlockStatus(co *blk.Co, _ bool, off, n int64) (blk.Status, error) {
	if s.fixed {
		return blk.Status{Flags: blk.StatusData | blk.StatusOffsetValid | blk.StatusRecurse, Pnum: n, Map: off, File: s.file.Node}, nil
	}
	st := blk.Status{Flags: blk.StatusZero}
	host, _ := s.imageOffset(co, off, false)
	for {
		m := min(n, (off/s.blockSize+1)*s.blockSize-off)
		st.Pnum += m
		off += m
		n -= m
		if host != -1 {
			st.Flags, st.Map, st.File = blk.StatusData|blk.StatusOffsetValid, host, s.file.Node
			return st, nil
		}
		if n == 0 {
			return st, nil
		}
		if host, _ = s.imageOffset(co, off, false); host != -1 {
			return st, nil
		}
	}
}

// Info is vpc_get_info: a dynamic image's block size is its cluster
// size.
func (s *state) Info() (blk.Info, error) {
	if s.fixed {
		return blk.Info{}, nil
	}
	return blk.Info{ClusterSize: s.blockSize}, nil
}

// geometry is calculate_geometry, with its uint8 and uint16 fields.
func geometry(total int64) (cyls uint16, heads, secs uint8) {
	total = min(total, maxGeometry)
	var ch uint32
	if total >= 65535*16*63 {
		secs, heads = 255, 16
		ch = uint32(total / int64(secs))
	} else {
		secs = 17
		ch = uint32(total / int64(secs))
		heads = uint8((ch + 1023) / 1024)
		if heads < 4 {
			heads = 4
		}
		if ch >= uint32(heads)*1024 || heads > 16 {
			secs, heads = 31, 16
			ch = uint32(total / int64(secs))
		}
		if ch >= uint32(heads)*1024 {
			secs, heads = 63, 16
			ch = uint32(total / int64(secs))
		}
	}
	return uint16(ch / uint32(heads)), heads, secs
}

// roundedSize is calculate_rounded_image_size: the smallest geometry
// holding size, or the maximum one (force_size, or sizes past it), and
// the sectors it gives.
func roundedSize(size int64, force bool) (cyls uint16, heads, secs uint8, sectors int64, err error) {
	if force {
		cyls, heads, secs = chsMaxC, chsMaxH, chsMaxS
	} else {
		sectors = min(maxGeometry, size/512)
		for i := int64(0); sectors > int64(cyls)*int64(heads)*int64(secs); i++ {
			cyls, heads, secs = geometry(sectors + i)
		}
	}
	if int64(cyls)*int64(heads)*int64(secs) == maxGeometry {
		sectors = size / 512
		if sectors > maxSectors {
			return 0, 0, 0, 0, blk.Msgf(unix.EFBIG, "Disk size is too large, max size is 2040 GiB")
		}
	} else {
		sectors = int64(cyls) * int64(heads) * int64(secs)
	}
	return cyls, heads, secs, sectors, nil
}

// create is vpc_co_create_opts: the size rounded to a sector and, unless
// force_size, up to what a CHS geometry holds; then a fixed image (the
// file sized, the footer at its end) or a dynamic one (footer, header,
// all-unallocated BAT, footer). Options: subformat (dynamic, fixed),
// force_size. QEMU's timestamp and random UUID are fixed values here
// (a zero timestamp, a UUID derived from the size), so that gio's images
// are reproducible.
func create(co *blk.Co, a *blk.CreateArgs) error {
	o := a.Opts
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
	force, err := o.TakeBool("force_size", false)
	if err != nil {
		return err
	}
	if a.Size < 0 {
		return blk.Msgf(unix.EINVAL, "Image size must be non-negative")
	}
	size := (a.Size + 511) &^ 511
	if !force {
		_, _, _, sectors, err := roundedSize(size, false)
		if err != nil {
			return err
		}
		size = sectors * 512
	}
	cyls, heads, secs, sectors, err := roundedSize(size, force)
	if err != nil {
		return err
	}
	if size != sectors*512 {
		return blk.Msgf(unix.EINVAL, "The requested image size cannot be represented in CHS geometry")
	}
	var f [footerSize]byte
	copy(f[fCreator:], "conectix")
	if force {
		copy(f[fCreatorApp:], "qem2")
	} else {
		copy(f[fCreatorApp:], "qemu")
	}
	copy(f[fCreatorOS:], "Wi2k")
	be.PutUint32(f[fFeatures:], 2)
	be.PutUint32(f[fVersion:], 0x00010000)
	typ := uint32(typeDynamic)
	if fixed {
		typ = typeFixed
		be.PutUint64(f[fDataOffset:], ^uint64(0))
	} else {
		be.PutUint64(f[fDataOffset:], footerSize)
	}
	be.PutUint16(f[fMajor:], 5)
	be.PutUint16(f[fMinor:], 3)
	be.PutUint64(f[fOrigSize:], uint64(size))
	be.PutUint64(f[fCurrentSize:], uint64(size))
	be.PutUint16(f[fCyls:], cyls)
	f[fHeads], f[fSecs] = heads, secs
	be.PutUint32(f[fType:], typ)
	sum := sha256.Sum256(fmt.Appendf(nil, "gio vpc %d %d", size, typ))
	copy(f[fUUID:], sum[:16])
	f[fUUID+6] = f[fUUID+6]&0x0f | 0x40
	f[fUUID+8] = f[fUUID+8]&0x3f | 0x80
	be.PutUint32(f[fChecksum:], checksum(f[:]))

	if fixed {
		total := size + footerSize
		if err := a.File.Truncate(co, total, false, blk.PreallocOff); err != nil {
			return err
		}
		if err := a.File.PWrite(co, total-footerSize, f[:], 0); err != nil {
			return blk.Errorf(blk.ErrnoOf(err), "Unable to write VHD header")
		}
		return nil
	}
	entries := (sectors + newBlockSize/512 - 1) / (newBlockSize / 512)
	batBytes := (entries*4 + 511) &^ 511
	var h [dynHdrSize]byte
	copy(h[dMagic:], "cxsparse")
	be.PutUint64(h[dDataOffset:], ^uint64(0))
	be.PutUint64(h[dTableOffset:], 3*512)
	be.PutUint32(h[dVersion:], 0x00010000)
	be.PutUint32(h[dBlockSize:], newBlockSize)
	be.PutUint32(h[dMaxEntries:], uint32(entries))
	be.PutUint32(h[dChecksum:], checksum(h[:]))
	bat := make([]byte, batBytes)
	for i := range bat {
		bat[i] = 0xff
	}
	for _, w := range []struct {
		off int64
		b   []byte
	}{{0, f[:]}, {1536 + batBytes, f[:]}, {1536, bat}, {512, h[:]}} {
		if err := a.File.PWrite(co, w.off, w.b, 0); err != nil {
			return blk.Errorf(blk.ErrnoOf(err), "Unable to create or write VHD header")
		}
	}
	return nil
}

// coMutex is QEMU's CoMutex (BDRVVPCState.lock).
type coMutex struct{ blk.CoMutex }

func (m *coMutex) lock(co *blk.Co) { m.Lock(co, "waits for the vpc lock") }
func (m *coMutex) unlock()         { m.Unlock() }
