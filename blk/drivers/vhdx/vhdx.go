// Package vhdx is the Hyper-V VHDX format driver, after QEMU 7.2's
// block/vhdx.c and vhdx-log.c: dynamic and fixed images with 512-byte
// logical sectors (differencing images are refused, as QEMU 7.2 refuses
// them), the log replayed on open, and blocks allocated at the end of the
// file with their BAT entry written through the log.
//
// The on-disk layout: a 1 MiB header section (file identifier, two
// headers, two region tables), then the regions the region table names
// (the log, the block allocation table, the metadata), then 1 MiB-aligned
// payload blocks. Every structure is little endian; GUIDs are kept as
// their 16 on-disk bytes.
//
// The driver reaches its image only through its "file" child. A write to
// an unallocated block grows the file by one block, writes the data,
// flushes, then writes the new BAT entry as a log entry, flushes, replays
// it into the BAT and empties the log: a crash before the log entry is
// complete leaks the block; one after it leaves a log that the next
// writable open replays. Like QEMU there is no block status of its own
// (everything reads as data), no zero writes, discard or resize.
//
// QEMU draws its GUIDs (the headers' write GUIDs, the log GUID, the page
// 83 data) and the first header sequence number at random; gio derives
// them from the image's own state, so that the same commands give the
// same bytes.
package vhdx

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/bits"

	"gio/blk"

	"golang.org/x/sys/unix"
)

// Driver is the vhdx format driver.
var Driver = &blk.Driver{
	Name:   "vhdx",
	Format: true,
	Probe:  probe,
	Open:   open,
	Create: create,
}

const (
	kib = 1 << 10
	mib = 1 << 20

	headerBlockSize = 64 * kib // one slot of the header section
	header1Offset   = 1 * headerBlockSize
	header2Offset   = 2 * headerBlockSize
	regionOffset    = 3 * headerBlockSize
	region2Offset   = 4 * headerBlockSize
	headerSection   = 1 * mib
	headerCRCSize   = 4 * kib // a header's checksum covers 4 KiB
	headerLen       = 80      // sizeof(VHDXHeader)

	headerSig   = 0x64616568 // "head"
	regionSig   = 0x69676572 // "regi"
	metadataSig = 0x617461646174656d

	metadataTableSize = 32 * 2048
	regionRequired    = 1
	metaRequired      = 4

	paramsLeaveAlloced = 1
	paramsHasParent    = 2

	blockSizeMin = 1 * mib
	blockSizeMax = 256 * mib
	maxImageSize = 64 << 40

	maxSectorsPerBlock = 1 << 23

	// Payload block states (the low three bits of a BAT entry).
	blockNotPresent  = 0
	blockUndefined   = 1
	blockZero        = 2
	blockUnmapped    = 3
	blockUnmapped095 = 5
	blockFull        = 6
	blockPartial     = 7
	stateMask        = 7
	offsetMask       = 0xfffffffffff00000
)

// Header field offsets (VHDXHeader).
const (
	hSig       = 0
	hChecksum  = 4
	hSeq       = 8
	hFileGUID  = 16
	hDataGUID  = 32
	hLogGUID   = 48
	hLogVer    = 64
	hVersion   = 66
	hLogLength = 68
	hLogOffset = 72
)

var le = binary.LittleEndian

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// guid is an MSGUID in its on-disk form.
type guid [16]byte

func mkGUID(d1 uint32, d2, d3 uint16, d4 [8]byte) guid {
	var g guid
	le.PutUint32(g[0:], d1)
	le.PutUint16(g[4:], d2)
	le.PutUint16(g[6:], d3)
	copy(g[8:], d4[:])
	return g
}

var (
	batGUID          = mkGUID(0x2dc27766, 0xf623, 0x4200, [8]byte{0x9d, 0x64, 0x11, 0x5e, 0x9b, 0xfd, 0x4a, 0x08})
	metadataGUID     = mkGUID(0x8b7ca206, 0x4790, 0x4b9a, [8]byte{0xb8, 0xfe, 0x57, 0x5f, 0x05, 0x0f, 0x88, 0x6e})
	fileParamGUID    = mkGUID(0xcaa16737, 0xfa36, 0x4d43, [8]byte{0xb3, 0xb6, 0x33, 0xf0, 0xaa, 0x44, 0xe7, 0x6b})
	virtualSizeGUID  = mkGUID(0x2fa54224, 0xcd1b, 0x4876, [8]byte{0xb2, 0x11, 0x5d, 0xbe, 0xd8, 0x3b, 0xf4, 0xb8})
	page83GUID       = mkGUID(0xbeca12ab, 0xb2e6, 0x4523, [8]byte{0x93, 0xef, 0xc3, 0x09, 0xe0, 0x00, 0xc7, 0x46})
	physSectorGUID   = mkGUID(0xcda348c7, 0x445d, 0x4471, [8]byte{0x9c, 0xc9, 0xe9, 0x88, 0x52, 0x51, 0xc5, 0x56})
	parentLocGUID    = mkGUID(0xa8d35f2d, 0xb30b, 0x454d, [8]byte{0xab, 0xf7, 0xd3, 0xd8, 0x48, 0x34, 0xab, 0x0c})
	logicalSectGUID  = mkGUID(0x8141bf1d, 0xa96f, 0x4709, [8]byte{0xba, 0x47, 0xf2, 0x33, 0xa8, 0xfa, 0xab, 0x5f})
	zeroGUID         guid
	metaGUIDs        = []guid{fileParamGUID, virtualSizeGUID, page83GUID, logicalSectGUID, physSectorGUID, parentLocGUID}
	metaAllPresent   = 0x1f // the five required items, no parent locator
	metaParentLocBit = 0x20
)

// checksumOK is vhdx_checksum_is_valid: the CRC-32C of buf with its
// checksum field (at off) taken as zero.
func checksumOK(buf []byte, off int) bool {
	return le.Uint32(buf[off:]) == crcWithZero(buf, off)
}

func crcWithZero(buf []byte, off int) uint32 {
	c := crc32.Update(0, castagnoli, buf[:off])
	c = crc32.Update(c, castagnoli, []byte{0, 0, 0, 0})
	return crc32.Update(c, castagnoli, buf[off+4:])
}

// setChecksum is vhdx_update_checksum.
func setChecksum(buf []byte, off int) { le.PutUint32(buf[off:], crcWithZero(buf, off)) }

// probe is vhdx_probe: the file identifier's signature.
func probe(head []byte) int {
	if len(head) >= 8 && string(head[:8]) == "vhdxfile" {
		return 100
	}
	return 0
}

// region is a registered extent of the file (VHDXRegionEntry).
type region struct{ start, end uint64 }

// state is an open VHDX image (BDRVVHDXState), touched only under the
// scheduler token.
type state struct {
	file   *blk.Child
	node   *blk.Node // the vhdx node itself, for QEMU's bdrv_flush(bs)
	report func(error)

	headers [2][headerLen]byte // raw, as last read or written
	cur     int

	session           guid
	guidCount         uint64
	firstVisibleWrite bool
	log               logState
	replayedOnOpen    bool

	batOffset   uint64
	batLength   uint32
	batEntries  uint32
	bat         []uint64          // the entries the file holds
	batOverflow map[uint32]uint64 // entries past the end of the file, once written

	blockSize       uint32
	sectorsPerBlock uint32
	chunkRatio      uint64
	chunkRatioBits  uint
	diskSize        int64
	hasParent       bool

	regions []region // newest first, as QEMU's list
	mu      coMutex
}

var (
	_ blk.BlockStatuser   = (*state)(nil)
	_ blk.Infoer          = (*state)(nil)
	_ blk.LimitsRefresher = (*state)(nil)
	_ blk.Checker         = (*state)(nil)
)

func (s *state) header() []byte { return s.headers[s.cur][:] }

func open(a *blk.OpenArgs) (blk.Impl, error) {
	s := &state{firstVisibleWrite: true, report: a.ReportFunc(), node: a.Node()}
	var err error
	if s.file, err = a.OpenStorageChild(); err != nil {
		return nil, err
	}
	if err := a.RunSync("vhdx open", func(co *blk.Co) error { return s.load(co, a.Flags.ReadOnly, a.Flags.Check) }); err != nil {
		// An error without a message of its own gets bdrv_open_common's.
		var e *blk.Error
		if !errors.As(err, &e) {
			err = blk.Errorf(blk.ErrnoOf(err), "Could not open '%s'", s.file.Node.Filename())
		}
		return nil, err
	}
	return s, nil
}

// load is vhdx_open after the child: signature, headers, log (replayed
// when the image is writable), region table, metadata, BAT.
func (s *state) load(co *blk.Co, readOnly, check bool) error {
	var sig [8]byte
	if err := s.pread(co, 0, sig[:]); err != nil {
		return err
	}
	if string(sig[:]) != "vhdxfile" {
		return unix.EINVAL
	}
	if err := s.parseHeaders(co); err != nil {
		return err
	}
	s.session = s.newGUID()
	replayed, err := s.parseLog(co, readOnly)
	if err != nil {
		return err
	}
	s.replayedOnOpen = replayed
	bat, meta, err := s.parseRegions(co)
	if err != nil {
		return err
	}
	if err := s.parseMetadata(co, meta); err != nil {
		return err
	}
	s.calcBATEntries()
	s.batOffset = bat.offset
	s.batLength = bat.length
	if uint64(s.batEntries) > uint64(bat.length)/8 {
		return unix.EINVAL
	}
	if err := s.readBAT(co); err != nil {
		return err
	}
	if check { // qemu-img check: the check looks at the BAT
		return nil
	}
	return s.checkBAT(co, nil)
}

// parseHeaders is vhdx_parse_header: the valid header with the higher
// sequence number is the current one.
func (s *state) parseHeaders(co *blk.Co) error {
	var valid [2]bool
	buf := make([]byte, headerCRCSize)
	for i, off := range []int64{header1Offset, header2Offset} {
		if err := s.pread(co, uint64(off), buf); err != nil {
			return blk.Errorf(blk.ErrnoOf(err), "No valid VHDX header found")
		}
		copy(s.headers[i][:], buf)
		valid[i] = checksumOK(buf, hChecksum) && le.Uint32(buf[hSig:]) == headerSig && le.Uint16(buf[hVersion:]) == 1
	}
	seq0, seq1 := le.Uint64(s.headers[0][hSeq:]), le.Uint64(s.headers[1][hSeq:])
	switch {
	case valid[0] && !valid[1]:
		s.cur = 0
	case !valid[0] && valid[1]:
		s.cur = 1
	case !valid[0] && !valid[1]:
		return blk.Msgf(unix.EINVAL, "No valid VHDX header found")
	case seq0 > seq1:
		s.cur = 0
	case seq1 > seq0:
		s.cur = 1
	case s.headers[0] == s.headers[1]:
		// Disk2VHD writes two identical headers.
		s.cur = 0
	default:
		return blk.Msgf(unix.EINVAL, "No valid VHDX header found")
	}
	h := s.header()
	s.registerRegion(le.Uint64(h[hLogOffset:]), uint64(le.Uint32(h[hLogLength:])))
	return nil
}

func (s *state) registerRegion(start, length uint64) {
	s.regions = append([]region{{start, start + length}}, s.regions...)
}

// regionCheck is vhdx_region_check, with its message (and QEMU's "%."
// conversion, which prints a zero end as nothing).
func (s *state) regionCheck(start, length uint64) error {
	end := start + length
	for _, r := range s.regions {
		if !(start >= r.end || end <= r.start) {
			rend := ""
			if r.end != 0 {
				rend = fmt.Sprint(r.end)
			}
			s.report(fmt.Errorf("VHDX region %d-%d overlaps with region %d-%s", start, end, r.start, rend))
			return unix.EINVAL
		}
	}
	return nil
}

// regionEntry is a region table entry (VHDXRegionTableEntry).
type regionEntry struct {
	offset uint64
	length uint32
}

// parseRegions is vhdx_open_region_tables: the first region table only,
// as QEMU reads it.
func (s *state) parseRegions(co *blk.Co) (bat, meta regionEntry, err error) {
	buf := make([]byte, headerBlockSize)
	if err := s.pread(co, regionOffset, buf); err != nil {
		return bat, meta, err
	}
	if !checksumOK(buf, 4) || le.Uint32(buf) != regionSig {
		return bat, meta, unix.EINVAL
	}
	n := le.Uint32(buf[8:])
	if n > 2047 {
		return bat, meta, unix.EINVAL
	}
	var batFound, metaFound bool
	for i := uint32(0); i < n; i++ {
		e := buf[16+32*i:]
		var g guid
		copy(g[:], e)
		re := regionEntry{le.Uint64(e[16:]), le.Uint32(e[24:])}
		if err := s.regionCheck(re.offset, uint64(re.length)); err != nil {
			return bat, meta, err
		}
		s.registerRegion(re.offset, uint64(re.length))
		switch {
		case g == batGUID:
			if batFound {
				return bat, meta, unix.EINVAL
			}
			batFound, bat = true, re
		case g == metadataGUID:
			if metaFound {
				return bat, meta, unix.EINVAL
			}
			metaFound, meta = true, re
		case le.Uint32(e[28:])&regionRequired != 0:
			return bat, meta, unix.ENOTSUP
		}
	}
	if !batFound || !metaFound {
		return bat, meta, unix.EINVAL
	}
	return bat, meta, nil
}

// parseMetadata is vhdx_parse_metadata: the five required items, the
// file parameters checked as QEMU checks them.
func (s *state) parseMetadata(co *blk.Co, meta regionEntry) error {
	buf := make([]byte, metadataTableSize)
	if err := s.pread(co, meta.offset, buf); err != nil {
		return err
	}
	if le.Uint64(buf) != metadataSig {
		return unix.EINVAL
	}
	n := int(le.Uint16(buf[10:]))
	if n*32 > metadataTableSize-32 {
		return unix.EINVAL
	}
	present := 0
	var offs [6]uint32
	for i := 0; i < n; i++ {
		e := buf[32+32*i:]
		var g guid
		copy(g[:], e)
		known := false
		for k, mg := range metaGUIDs {
			if g == mg {
				if present&(1<<k) != 0 {
					return unix.EINVAL
				}
				present |= 1 << k
				offs[k] = le.Uint32(e[16:])
				known = true
				break
			}
		}
		if !known && le.Uint32(e[24:])&metaRequired != 0 {
			return unix.ENOTSUP
		}
	}
	if present != metaAllPresent {
		return unix.ENOTSUP
	}
	item := func(k int, b []byte) error {
		return s.pread(co, uint64(offs[k])+meta.offset, b)
	}
	var params [8]byte
	if err := item(0, params[:]); err != nil {
		return err
	}
	blockSize, dataBits := le.Uint32(params[:]), le.Uint32(params[4:])
	if dataBits&paramsHasParent != 0 {
		// The parent locator is absent here (present would not be
		// complete otherwise): an invalid combination.
		return unix.EINVAL
	}
	var size [8]byte
	var lss, pss [4]byte
	if err := item(1, size[:]); err != nil {
		return err
	}
	if err := item(3, lss[:]); err != nil {
		return err
	}
	if err := item(4, pss[:]); err != nil {
		return err
	}
	if blockSize < blockSizeMin || blockSize > blockSizeMax {
		return unix.EINVAL
	}
	if le.Uint32(lss[:]) != 512 {
		return unix.ENOTSUP
	}
	s.sectorsPerBlock = blockSize / 512
	s.chunkRatio = maxSectorsPerBlock * 512 / uint64(blockSize)
	if s.sectorsPerBlock&(s.sectorsPerBlock-1) != 0 || s.chunkRatio&(s.chunkRatio-1) != 0 || blockSize&(blockSize-1) != 0 {
		return unix.EINVAL
	}
	s.blockSize = blockSize
	s.chunkRatioBits = uint(bits.TrailingZeros64(s.chunkRatio))
	// total_sectors is virtual_disk_size >> 9; QEMU's bdrv_getlength
	// fails with EFBIG past INT64_MAX bytes, gio at open.
	sectors := le.Uint64(size[:]) >> 9
	if sectors > (1<<63-1)/512 {
		return unix.EFBIG
	}
	s.diskSize = int64(sectors) << 9
	return nil
}

// calcBATEntries is vhdx_calc_bat_entries, with its uint32 arithmetic.
func (s *state) calcBATEntries() {
	dataBlocks := uint32((uint64(s.diskSize) + uint64(s.blockSize) - 1) / uint64(s.blockSize))
	s.batEntries = dataBlocks + uint32(uint64(dataBlocks-1)>>s.chunkRatioBits)
}

// readBAT reads the BAT entries, as far as the file holds them: QEMU
// reads zeroes (not present) past its end, and gio keeps those in a map
// once written, so that a huge BAT length costs no memory.
func (s *state) readBAT(co *blk.Co) error {
	flen, err := s.file.Node.Length(co)
	if err != nil {
		return err
	}
	n, off := uint64(s.batEntries), s.batOffset
	if off >= uint64(flen) {
		n = 0
	} else {
		n = min(n, (uint64(flen)-off+7)/8)
	}
	raw := make([]byte, n*8)
	if err := s.pread(co, off, raw); err != nil {
		return err
	}
	s.bat = make([]uint64, n)
	for i := range s.bat {
		s.bat[i] = le.Uint64(raw[8*i:])
	}
	s.batOverflow = map[uint32]uint64{}
	return nil
}

func (s *state) batEntry(i uint32) uint64 {
	if uint64(i) < uint64(len(s.bat)) {
		return s.bat[i]
	}
	return s.batOverflow[i]
}

func (s *state) setBATEntry(i uint32, v uint64) {
	if uint64(i) < uint64(len(s.bat)) {
		s.bat[i] = v
		return
	}
	s.batOverflow[i] = v
}

// checkBAT is vhdx_check_bat_entries: every fully present block lies
// inside the file and overlaps no region, with QEMU's messages. At open
// (errcnt nil) the first problem fails the open; the check (errcnt set)
// counts every problem in *errcnt and goes on, as QEMU's does (an entry
// can then count more than once).
func (s *state) checkBAT(co *blk.Co, errcnt *int) error {
	flen, err := s.file.Node.Length(co)
	if err != nil {
		s.report(errors.New("Could not determinate VHDX image file size."))
		return err
	}
	var ret error
	// problem records one; it says whether to stop.
	problem := func() bool {
		ret = unix.EINVAL
		if errcnt == nil {
			return true
		}
		*errcnt++
		return false
	}
	payblocks := s.chunkRatio
	for i := uint32(0); i < s.batEntries; i++ {
		e := s.batEntry(i)
		if e&stateMask != blockFull {
			continue
		}
		off := e & offsetMask
		blen := uint64(s.blockSize)
		if rest := uint64(s.diskSize) - uint64(i)*uint64(s.blockSize); rest < blen {
			blen = rest
		}
		if off > uint64(1<<63-1)-uint64(s.blockSize) {
			s.report(fmt.Errorf("VHDX BAT entry %d offset overflow.", i))
			if problem() {
				break
			}
		}
		if off >= uint64(flen) {
			s.report(fmt.Errorf("VHDX BAT entry %d start offset %d points after end of file (%d). Image has probably been truncated.", i, off, flen))
			if problem() {
				break
			}
		} else if off+blen > uint64(flen) {
			s.report(fmt.Errorf("VHDX BAT entry %d end offset %d points after end of file (%d). Image has probably been truncated.", i, off+blen-1, flen))
			if problem() {
				break
			}
		}
		if payblocks != 0 {
			payblocks--
			if s.regionCheck(off, uint64(s.blockSize)) != nil && problem() {
				break
			}
		} else {
			payblocks = s.chunkRatio
		}
	}
	return ret
}

// Check is vhdx_co_check: a log replayed when the image was opened
// counts as a repaired corruption, and the BAT is checked as at open,
// each problem a corruption with QEMU's message (through the open's
// error reporting, as QEMU's error_report). Nothing is repaired here:
// the replay happened at the read/write open of qemu-img check -r.
func (s *state) Check(co *blk.Co, _ blk.CheckMode, _ io.Writer, res *blk.CheckResult) error {
	s.mu.lock(co)
	defer s.mu.unlock()
	if s.replayedOnOpen {
		res.CorruptionsFixed++
	}
	_ = s.checkBAT(co, &res.Corruptions)
	return nil
}

// newGUID stands for vhdx_guid_generate: a version-4 GUID derived from
// the current header and a counter instead of random bits.
func (s *state) newGUID() guid {
	s.guidCount++
	return derivedGUID(fmt.Appendf(s.headers[s.cur][:hFileGUID:hFileGUID], "gio vhdx %d", s.guidCount))
}

func derivedGUID(seed []byte) guid {
	sum := sha256.Sum256(seed)
	var g guid
	copy(g[:], sum[:16])
	g[7] = g[7]&0x0f | 0x40
	g[8] = g[8]&0x3f | 0x80
	return g
}

// writeHeader is vhdx_write_header with read set: the header over the
// 4 KiB on disk, the checksum over those, and the header's 80 bytes
// written and flushed.
func (s *state) writeHeader(co *blk.Co, h []byte, off int64) error {
	buf := make([]byte, headerCRCSize)
	if err := s.pread(co, uint64(off), buf); err != nil {
		return err
	}
	copy(buf, h[:headerLen])
	setChecksum(buf, hChecksum)
	copy(h[:headerLen], buf)
	return s.writeSync(co, off, buf[:headerLen])
}

// updateHeader is vhdx_update_header: the non-current header gets the
// next sequence number, the session's file GUID, a new data GUID if
// asked, and the log GUID if given; it becomes the current one.
func (s *state) updateHeader(co *blk.Co, newData bool, logGUID *guid) error {
	idx, off := 0, int64(header1Offset)
	if s.cur == 0 {
		idx, off = 1, header2Offset
	}
	h := s.headers[idx][:]
	le.PutUint64(h[hSeq:], le.Uint64(s.header()[hSeq:])+1)
	copy(h[hFileGUID:], s.session[:])
	if newData {
		g := s.newGUID()
		copy(h[hDataGUID:], g[:])
	}
	if logGUID != nil {
		copy(h[hLogGUID:], logGUID[:])
	}
	if err := s.writeHeader(co, h, off); err != nil {
		return err
	}
	s.cur = idx
	return nil
}

// updateHeaders is vhdx_update_headers: both headers, one after the
// other, so that both are valid.
func (s *state) updateHeaders(co *blk.Co, newData bool, logGUID *guid) error {
	if err := s.updateHeader(co, newData, logGUID); err != nil {
		return err
	}
	return s.updateHeader(co, newData, logGUID)
}

// userVisibleWrite is vhdx_user_visible_write: the first write of guest
// data gives the headers a new data GUID.
func (s *state) userVisibleWrite(co *blk.Co) error {
	if !s.firstVisibleWrite {
		return nil
	}
	s.firstVisibleWrite = false
	return s.updateHeaders(co, true, nil)
}

// flush is bdrv_flush(bs): a flush of the vhdx node, which fires
// flush_to_os on the file child, and flush_to_disk when the node was
// written since its last flush (blkdebug rules see them), then flushes the
// file.
func (s *state) flush(co *blk.Co) error {
	if s.node == nil {
		return s.file.Node.Flush(co)
	}
	return s.node.Flush(co)
}

// writeSync is bdrv_pwrite_sync.
func (s *state) writeSync(co *blk.Co, off int64, b []byte) error {
	if err := s.file.Node.PWrite(co, off, b, 0); err != nil {
		return err
	}
	return s.file.Node.Flush(co)
}

// Length is the virtual disk size.
func (s *state) Length(*blk.Co) (int64, error) { return s.diskSize, nil }

// Close has nothing to release.
func (s *state) Close() error { return nil }

// RefreshLimits: QEMU's driver has sector-based read and write
// callbacks, which give it 512-byte requests.
func (s *state) RefreshLimits(l *blk.Limits) { l.RequestAlignment = max(l.RequestAlignment, 512) }

// Info is vhdx_get_info: the block size is the cluster size.
func (s *state) Info() (blk.Info, error) { return blk.Info{ClusterSize: int64(s.blockSize)}, nil }

// BlockStatus is what QEMU answers for a format without a block-status
// callback: everything is data, at no offset gio could name.
func (s *state) BlockStatus(_ *blk.Co, _ bool, _, n int64) (blk.Status, error) {
	return blk.Status{Flags: blk.StatusData, Pnum: n}, nil
}

// coMutex is QEMU's CoMutex (BDRVVHDXState.lock).
type coMutex struct{ blk.CoMutex }

func (m *coMutex) lock(co *blk.Co) { m.Lock(co, "waits for the vhdx lock") }
func (m *coMutex) unlock()         { m.Unlock() }
