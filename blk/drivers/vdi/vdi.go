// Package vdi is the VirtualBox VDI format driver, after QEMU's
// block/vdi.c: version 1.1 images, dynamic (blocks allocated on first
// write) and static (every block allocated at creation), with 1 MiB
// blocks and 512-byte sectors, as QEMU 7.2 supports them.
//
// The driver reaches its image only through its "file" child. An
// allocating write writes the whole new block (the data, zeroes around
// it) first, then the header with the new allocated-block count, then the
// block-map sectors that point to the new blocks: a crash before the map
// is written leaves only a block nobody points to (a leak that qemu-img
// check reports as a count mismatch), never a map entry pointing to
// unwritten data or two entries sharing a block.
//
// Like QEMU, it has no zero-write, discard or resize of its own: zero
// writes are written as zero data (allocating), discard does nothing.
package vdi

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"gio/blk"

	"golang.org/x/sys/unix"
)

// Driver is the vdi format driver.
var Driver = &blk.Driver{
	Name:   "vdi",
	Format: true,
	Probe:  probe,
	Open:   open,
	Create: create,
}

const (
	signature     = 0xbeda107f
	version11     = 0x00010001
	typeDynamic   = 1
	typeStatic    = 2
	sectorSize    = 512
	blockSize     = 1 << 20
	unallocated   = 0xffffffff
	discarded     = 0xfffffffe
	headerSize    = 512
	text          = "<<< QEMU VM Virtual Disk Image >>>\n"
	blocksMax     = (1<<31 - sectorSize) / 4 // VDI_BLOCKS_IN_IMAGE_MAX
	diskSizeMax   = uint64(blocksMax) * blockSize
	entriesPerSec = sectorSize / 4
)

// Header field offsets (VdiHeader, little endian).
const (
	offSignature     = 0x40
	offVersion       = 0x44
	offHeaderSize    = 0x48
	offImageType     = 0x4c
	offOffsetBmap    = 0x154
	offOffsetData    = 0x158
	offSectorSize    = 0x168
	offDiskSize      = 0x170
	offBlockSize     = 0x178
	offBlocksInImage = 0x180
	offBlocksAlloc   = 0x184
	offUUIDImage     = 0x188
	offUUIDLastSnap  = 0x198
	offUUIDLink      = 0x1a8
	offUUIDParent    = 0x1b8
	uuidLen          = 16
)

func isAllocated(e uint32) bool { return e < discarded }

// probe is vdi_probe: the signature in a whole header.
func probe(head []byte) int {
	if len(head) >= headerSize && binary.LittleEndian.Uint32(head[offSignature:]) == signature {
		return 100
	}
	return 0
}

// state is an open VDI image (BDRVVdiState). Touched only under the
// scheduler token.
type state struct {
	file *blk.Child
	// hdr is the header as read, with disk_size rounded up to a sector
	// (QEMU writes its converted copy back, rounding included).
	hdr             [headerSize]byte
	imageType       uint32
	offsetBmap      int64
	offsetData      int64
	diskSize        int64
	blocksInImage   uint32
	blocksAllocated uint32
	// bmap holds the block map as far as the file has it; entries past
	// its end read as 0, as QEMU reads them past the end of the file
	// (zero-filled), and it grows when one of them is set.
	bmap []byte
	// fileLen is the file's length, kept as the driver grows it: a write
	// whose block starts past it follows a corrupt map entry or block
	// count, and is refused rather than made far out in the file.
	fileLen int64
	// mu is held across an allocating write, so that no other request
	// reads or writes the block before its data is there (QEMU's
	// bmap_lock taken for writing).
	mu coMutex
	// meta serialises the header and block-map writes that follow
	// allocations: each takes the count and the map as they are when it
	// gets the lock, so the last write to land is the newest, even when
	// the file completes overlapping writes out of order (aio threads).
	meta coMutex
	// metaBehind says a header or block-map write failed: the map in
	// memory is ahead of the file's, and the next write rewrites both
	// whole. QEMU leaves them behind, so that a later write into such a
	// block lands in place, succeeds, and is gone after a reopen; gio
	// must not lose data a write reported written.
	metaBehind bool
}

var (
	_ blk.BlockStatuser = (*state)(nil)
	_ blk.Infoer        = (*state)(nil)
	_ blk.Checker       = (*state)(nil)
)

func open(a *blk.OpenArgs) (blk.Impl, error) {
	s := &state{}
	var err error
	if s.file, err = a.OpenStorageChild(); err != nil {
		return nil, err
	}
	if err := a.RunSync("vdi open", s.load); err != nil {
		return nil, err
	}
	return s, nil
}

func le32(b []byte, off int) uint32 { return binary.LittleEndian.Uint32(b[off:]) }

func isNullUUID(b []byte) bool {
	for _, c := range b[:uuidLen] {
		if c != 0 {
			return false
		}
	}
	return true
}

// load is vdi_open: read and check the header, with QEMU's messages and
// in its order, then read the block map.
func (s *state) load(co *blk.Co) error {
	h := s.hdr[:]
	if err := s.file.Node.PRead(co, 0, h, 0); err != nil {
		return err
	}
	disk := binary.LittleEndian.Uint64(h[offDiskSize:])
	if disk > diskSizeMax {
		return blk.Msgf(unix.ENOTSUP, "Unsupported VDI image size (size is 0x%x, max supported is 0x%x)", disk, diskSizeMax)
	}
	if disk%sectorSize != 0 {
		// VBoxManage convertfromraw makes odd sizes; QEMU rounds up.
		disk = (disk + sectorSize - 1) &^ (sectorSize - 1)
		binary.LittleEndian.PutUint64(h[offDiskSize:], disk)
	}
	sig, ver := le32(h, offSignature), le32(h, offVersion)
	bmapOff, dataOff := le32(h, offOffsetBmap), le32(h, offOffsetData)
	secSize, bsize := le32(h, offSectorSize), le32(h, offBlockSize)
	blocks := le32(h, offBlocksInImage)
	switch {
	case sig != signature:
		return blk.Msgf(unix.EINVAL, "Image not in VDI format (bad signature %08x)", sig)
	case ver != version11:
		return blk.Msgf(unix.ENOTSUP, "unsupported VDI image (version %d.%d)", ver>>16, ver&0xffff)
	case bmapOff%sectorSize != 0:
		return blk.Msgf(unix.ENOTSUP, "unsupported VDI image (unaligned block map offset 0x%x)", bmapOff)
	case dataOff%sectorSize != 0:
		return blk.Msgf(unix.ENOTSUP, "unsupported VDI image (unaligned data offset 0x%x)", dataOff)
	case secSize != sectorSize:
		return blk.Msgf(unix.ENOTSUP, "unsupported VDI image (sector size %d is not %d)", secSize, sectorSize)
	case bsize != blockSize:
		return blk.Msgf(unix.ENOTSUP, "unsupported VDI image (block size %d is not %d)", bsize, blockSize)
	case disk > uint64(blocks)*uint64(bsize):
		return blk.Msgf(unix.ENOTSUP, "unsupported VDI image (disk size %d, image bitmap has room for %d)", disk, uint64(blocks)*uint64(bsize))
	case !isNullUUID(h[offUUIDLink:]):
		return blk.Msgf(unix.ENOTSUP, "unsupported VDI image (non-NULL link UUID)")
	case !isNullUUID(h[offUUIDParent:]):
		return blk.Msgf(unix.ENOTSUP, "unsupported VDI image (non-NULL parent UUID)")
	case blocks > blocksMax:
		return blk.Msgf(unix.ENOTSUP, "unsupported VDI image (too many blocks %d, max is %d)", blocks, blocksMax)
	}
	s.imageType = le32(h, offImageType)
	s.offsetBmap, s.offsetData = int64(bmapOff), int64(dataOff)
	s.diskSize = int64(disk)
	s.blocksInImage = blocks
	s.blocksAllocated = le32(h, offBlocksAlloc)

	// Only the part of the map inside the file is read: the rest is
	// zeroes, and a corrupted count must not make gio allocate gigabytes.
	flen, err := s.file.Node.Length(co)
	if err != nil {
		return err
	}
	s.fileLen = flen
	n := bmapBytes(blocks)
	if avail := flen - s.offsetBmap; avail < n {
		n = max(0, (avail+sectorSize-1)&^(sectorSize-1))
	}
	s.bmap = make([]byte, n)
	if n > 0 {
		if err := s.file.Node.PRead(co, s.offsetBmap, s.bmap, 0); err != nil {
			return err
		}
	}
	return nil
}

// bmapBytes is the block map's size on disk: whole sectors.
func bmapBytes(blocks uint32) int64 {
	return (int64(blocks)*4 + sectorSize - 1) &^ (sectorSize - 1)
}

func (s *state) entry(i int64) uint32 {
	if 4*i+4 > int64(len(s.bmap)) {
		return 0
	}
	return binary.LittleEndian.Uint32(s.bmap[4*i:])
}

func (s *state) setEntry(i int64, v uint32) {
	if need := (4*i + 4 + sectorSize - 1) &^ (sectorSize - 1); need > int64(len(s.bmap)) {
		s.bmap = append(s.bmap, make([]byte, need-int64(len(s.bmap)))...)
	}
	binary.LittleEndian.PutUint32(s.bmap[4*i:], v)
}

func (s *state) hostOffset(e uint32, inBlock int64) int64 {
	return s.offsetData + int64(e)*blockSize + inBlock
}

// PRead is vdi_co_preadv: unallocated blocks read as zeroes.
func (s *state) PRead(co *blk.Co, off int64, buf []byte, _ blk.ReqFlags) error {
	for len(buf) > 0 {
		idx, in := off/blockSize, off%blockSize
		n := min(int64(len(buf)), blockSize-in)
		s.mu.lock(co)
		e := s.entry(idx)
		s.mu.unlock()
		if !isAllocated(e) {
			clear(buf[:n])
		} else if err := s.file.Node.PRead(co, s.hostOffset(e, in), buf[:n], 0); err != nil {
			return err
		}
		off, buf = off+n, buf[n:]
	}
	return nil
}

// PWrite is vdi_co_pwritev: a write to an unallocated block allocates
// the next block at the end of the data area and writes it whole; the
// header and the touched block-map sectors follow once the data is
// written.
func (s *state) PWrite(co *blk.Co, off int64, buf []byte, _ blk.ReqFlags) error {
	first, last := int64(-1), int64(-1)
	var block []byte
	for len(buf) > 0 {
		idx, in := off/blockSize, off%blockSize
		n := min(int64(len(buf)), blockSize-in)
		s.mu.lock(co)
		e := s.entry(idx)
		alloc := !isAllocated(e)
		if alloc {
			e = s.blocksAllocated
		}
		if !isAllocated(e) || s.hostOffset(e, 0) > s.fileLen {
			s.mu.unlock()
			return blk.Msgf(unix.EIO, "vdi: block %d lies past the end of the file (corrupt block map or header)", idx)
		}
		if !alloc {
			s.mu.unlock()
			if err := s.file.Node.PWrite(co, s.hostOffset(e, in), buf[:n], 0); err != nil {
				return err
			}
		} else {
			old := s.entry(idx)
			s.setEntry(idx, e)
			s.blocksAllocated++
			if block == nil {
				block = make([]byte, blockSize)
				first = idx
			} else {
				clear(block)
			}
			copy(block[in:], buf[:n])
			err := s.file.Node.PWrite(co, s.hostOffset(e, 0), block, 0)
			if err != nil {
				// The block was not written: give it back, so that no
				// entry points at data that is not there (QEMU keeps
				// it), and record the blocks this request did write.
				s.setEntry(idx, old)
				s.blocksAllocated--
				s.mu.unlock()
				if last >= 0 {
					s.writeMeta(co, first, last)
				}
				return err
			}
			last = idx
			s.fileLen = max(s.fileLen, s.hostOffset(e, blockSize))
			s.mu.unlock()
		}
		off, buf = off+n, buf[n:]
	}
	if block == nil && !s.metaBehind {
		return nil
	}
	return s.writeMeta(co, first, last)
}

// writeMeta writes the header and the block-map sectors of blocks first
// to last, or the whole map when an earlier write of it failed.
func (s *state) writeMeta(co *blk.Co, first, last int64) error {
	s.meta.lock(co)
	defer s.meta.unlock()
	if s.metaBehind || first < 0 {
		first, last = 0, int64(len(s.bmap)/4)-1
	}
	binary.LittleEndian.PutUint32(s.hdr[offBlocksAlloc:], s.blocksAllocated)
	h := s.hdr
	if err := s.file.Node.PWrite(co, 0, h[:], 0); err != nil {
		s.metaBehind = true
		return err
	}
	fs, ls := first/entriesPerSec, last/entriesPerSec
	sectors := append([]byte(nil), s.bmap[fs*sectorSize:min((ls+1)*sectorSize, int64(len(s.bmap)))]...)
	if err := s.file.Node.PWrite(co, s.offsetBmap+fs*sectorSize, sectors, 0); err != nil {
		s.metaBehind = true
		return err
	}
	s.metaBehind = false
	return nil
}

// Length is the disk size, rounded up to a sector.
func (s *state) Length(*blk.Co) (int64, error) { return s.diskSize, nil }

// Close has nothing to release.
func (s *state) Close() error { return nil }

// BlockStatus is vdi_co_block_status: an unallocated block reads as
// zeroes and is not allocated; an allocated one is data at its place in
// the file (for a static image, look further down for zeroes).
func (s *state) BlockStatus(co *blk.Co, _ bool, off, n int64) (blk.Status, error) {
	idx, in := off/blockSize, off%blockSize
	st := blk.Status{Pnum: min(blockSize-in, n)}
	e := s.entry(idx)
	if !isAllocated(e) {
		st.Flags = blk.StatusZero
		return st, nil
	}
	st.Flags = blk.StatusData | blk.StatusOffsetValid
	if s.imageType == typeStatic {
		st.Flags |= blk.StatusRecurse
	}
	st.Map, st.File = s.hostOffset(e, in), s.file.Node
	return st, nil
}

// Info is vdi_get_info: the block size is the cluster size.
func (s *state) Info() (blk.Info, error) { return blk.Info{ClusterSize: blockSize}, nil }

// create is vdi_co_create_opts: the header, the block map (all
// unallocated, or for a static image every block in order), and for a
// static image the file grown to hold every block. The only option is
// static (on/off): qemu-img hands preallocation to the file layer, which
// refuses metadata, and gio does not take it. The two UUIDs
// QEMU draws at random are derived from the size here, so that gio's
// images are reproducible.
func create(co *blk.Co, a *blk.CreateArgs) error {
	o := a.Opts
	static, err := o.TakeBool("static", false)
	if err != nil {
		return err
	}
	typ := uint32(typeDynamic)
	if static {
		typ = typeStatic
	}
	if a.Size < 0 {
		return blk.Msgf(unix.EINVAL, "Image size must be non-negative")
	}
	size := uint64(a.Size+sectorSize-1) &^ (sectorSize - 1)
	if size > diskSizeMax {
		return blk.Msgf(unix.ENOTSUP, "Unsupported VDI image size (size is 0x%x, max supported is 0x%x)", size, diskSizeMax)
	}
	blocks := uint32((size + blockSize - 1) / blockSize)
	bsz := bmapBytes(blocks)
	var h [headerSize]byte
	copy(h[:], text)
	put := func(off int, v uint32) { binary.LittleEndian.PutUint32(h[off:], v) }
	put(offSignature, signature)
	put(offVersion, version11)
	put(offHeaderSize, 0x180)
	put(offImageType, typ)
	put(offOffsetBmap, headerSize)
	put(offOffsetData, uint32(headerSize+bsz))
	put(offSectorSize, sectorSize)
	binary.LittleEndian.PutUint64(h[offDiskSize:], size)
	put(offBlockSize, blockSize)
	put(offBlocksInImage, blocks)
	if typ == typeStatic {
		put(offBlocksAlloc, blocks)
	}
	sum := sha256.Sum256(fmt.Appendf(nil, "gio vdi %d %d", size, typ))
	copy(h[offUUIDImage:], v4(sum[:16]))
	copy(h[offUUIDLastSnap:], v4(sum[16:]))
	if err := a.File.PWrite(co, 0, h[:], 0); err != nil {
		return blk.Errorf(blk.ErrnoOf(err), "Error writing header")
	}
	if bsz > 0 {
		bmap := make([]byte, bsz)
		for i := range blocks {
			v := uint32(unallocated)
			if typ == typeStatic {
				v = i
			}
			binary.LittleEndian.PutUint32(bmap[4*i:], v)
		}
		if err := a.File.PWrite(co, headerSize, bmap, 0); err != nil {
			return blk.Errorf(blk.ErrnoOf(err), "Error writing bmap")
		}
	}
	if typ == typeStatic {
		if err := a.File.Truncate(co, headerSize+bsz+int64(blocks)*blockSize, false, blk.PreallocOff); err != nil {
			return blk.PrefixError("Failed to statically allocate file", err)
		}
	}
	return nil
}

// v4 marks 16 bytes as a random (version 4) UUID, as QEMU's are.
func v4(b []byte) []byte {
	u := append([]byte(nil), b...)
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return u
}

// coMutex is QEMU's CoMutex: held across the I/O of an allocating write
// (mu) and of the metadata writes that follow (meta).
type coMutex struct{ blk.CoMutex }

func (m *coMutex) lock(co *blk.Co) { m.Lock(co, "waits for the vdi lock") }
func (m *coMutex) unlock()         { m.Unlock() }
