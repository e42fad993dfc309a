// Package qed is the QED format driver, after QEMU 7.2's block/qed*.c: a
// little-endian header, one L1 table and L2 tables of table_size
// clusters each, data clusters appended at the end of the file, zero
// clusters (entry 1), backing files (probed, or raw when the header says
// so) and the need-check bit with its repair on open.
//
// The driver reaches its image only through its "file" child and reads
// what it does not hold itself through its "backing" child, so blkdebug
// can sit under it and see QED's debug events (l2_load, l2_update,
// l1_update, read_aio, write_aio, read_backing_aio, cow_write) where QEMU
// fires them.
//
// Crash safety is QEMU's: data is written before the L2 entry pointing to
// it, a new L2 table before the L1 entry pointing to it. Without a
// backing file the first allocating write sets the need-check bit, which
// the next writable open repairs (entries pointing past the end of the
// file are dropped); with a backing file the data is flushed before the
// L2 update instead. A crash therefore leaks clusters at worst.
//
// Allocating writes are serialised as in QEMU (one at a time, in order),
// so the same request sequence gives the same layout as qemu-io.
package qed

import (
	"encoding/binary"
	"fmt"

	"gio/blk"

	"golang.org/x/sys/unix"
)

// Driver is the qed format driver.
var Driver = &blk.Driver{
	Name:            "qed",
	Format:          true,
	SupportsBacking: true,
	Probe:           probe,
	Open:            open,
	Create:          create,
}

const (
	qedMagic       = 'Q' | 'E'<<8 | 'D'<<16
	headerSize     = 64 // sizeof(QEDHeader)
	fBackingFile   = 0x01
	fNeedCheck     = 0x02
	fBackingNoProb = 0x04
	featureMask    = fBackingFile | fNeedCheck | fBackingNoProb

	minClusterSize     = 4 << 10
	maxClusterSize     = 64 << 20
	defaultClusterSize = 64 << 10
	minTableSize       = 1
	maxTableSize       = 16
	defaultTableSize   = 4

	l2CacheSize    = 50 // MAX_L2_CACHE_SIZE
	maxBackingName = 4096
)

// header is QEDHeader in host order.
type header struct {
	Magic, ClusterSize, TableSize, HeaderSize uint32
	Features, CompatFeatures, AutoclearFeat   uint64
	L1TableOffset, ImageSize                  uint64
	BackingNameOffset, BackingNameSize        uint32
}

func decodeHeader(b []byte) header {
	le := binary.LittleEndian
	return header{
		Magic: le.Uint32(b), ClusterSize: le.Uint32(b[4:]), TableSize: le.Uint32(b[8:]), HeaderSize: le.Uint32(b[12:]),
		Features: le.Uint64(b[16:]), CompatFeatures: le.Uint64(b[24:]), AutoclearFeat: le.Uint64(b[32:]),
		L1TableOffset: le.Uint64(b[40:]), ImageSize: le.Uint64(b[48:]),
		BackingNameOffset: le.Uint32(b[56:]), BackingNameSize: le.Uint32(b[60:]),
	}
}

func (h *header) encode(b []byte) {
	le := binary.LittleEndian
	le.PutUint32(b, h.Magic)
	le.PutUint32(b[4:], h.ClusterSize)
	le.PutUint32(b[8:], h.TableSize)
	le.PutUint32(b[12:], h.HeaderSize)
	le.PutUint64(b[16:], h.Features)
	le.PutUint64(b[24:], h.CompatFeatures)
	le.PutUint64(b[32:], h.AutoclearFeat)
	le.PutUint64(b[40:], h.L1TableOffset)
	le.PutUint64(b[48:], h.ImageSize)
	le.PutUint32(b[56:], h.BackingNameOffset)
	le.PutUint32(b[60:], h.BackingNameSize)
}

// probe is bdrv_qed_probe: the magic is enough.
func probe(head []byte) int {
	if len(head) >= headerSize && binary.LittleEndian.Uint32(head) == qedMagic {
		return 100
	}
	return 0
}

func validClusterSize(cs uint32) bool {
	return cs >= minClusterSize && cs <= maxClusterSize && cs&(cs-1) == 0
}

func validTableSize(ts uint32) bool {
	return ts >= minTableSize && ts <= maxTableSize && ts&(ts-1) == 0
}

func maxImageSize(cs, ts uint32) uint64 {
	entries := uint64(ts) * uint64(cs) / 8
	return entries * uint64(cs) * entries
}

func validImageSize(size uint64, cs, ts uint32) bool {
	return size%512 == 0 && size <= maxImageSize(cs, ts)
}

// state is an open QED image (BDRVQEDState). Fields are touched only
// with the scheduler token, tables only under mu.
type state struct {
	self    *blk.Node
	file    *blk.Child
	backing *blk.Child
	loop    *blk.Loop
	mu      coMutex

	readOnly  bool
	checkOpen bool // opened for qemu-img check (BDRV_O_CHECK)
	h         header
	fileSize  int64 // end of the allocated area, cluster-aligned

	clusterSize int64
	tableNelems int64
	l2Shift     uint
	l1Shift     uint
	l1          []uint64
	l2          l2Cache

	// allocating is the allocating write in progress (allocating_acb);
	// the others wait in allocWaiters, in order.
	//
	// QEMU also arms a timer on QEMU_CLOCK_VIRTUAL that clears the
	// need-check bit 5 s after the last allocating write. That clock
	// does not run in qemu-io (no guest), so only a drain fires it
	// early (aio_flush, closing). gio has no driver hook for drains:
	// the bit is cleared at close only.
	allocating   *request
	allocWaiters coQueue

	backingFile, backingFormat string
}

var (
	_ blk.ZeroWriter      = (*state)(nil)
	_ blk.BlockStatuser   = (*state)(nil)
	_ blk.Truncater       = (*state)(nil)
	_ blk.LimitsRefresher = (*state)(nil)
	_ blk.Infoer          = (*state)(nil)
	_ blk.Checker         = (*state)(nil)
)

func (s *state) startOfCluster(off int64) int64    { return off &^ (s.clusterSize - 1) }
func (s *state) offsetIntoCluster(off int64) int64 { return off & (s.clusterSize - 1) }
func (s *state) bytesToClusters(n int64) int64     { return (n + s.clusterSize - 1) / s.clusterSize }
func (s *state) l1Index(pos int64) int64           { return pos >> s.l1Shift }
func (s *state) l2Index(pos int64) int64           { return (pos >> s.l2Shift) & (s.tableNelems - 1) }
func (s *state) tableBytes() int64                 { return s.clusterSize * int64(s.h.TableSize) }

// checkClusterOffset is qed_check_cluster_offset: aligned, after the
// header, inside the allocated area.
func (s *state) checkClusterOffset(off uint64) bool {
	hs := uint64(s.h.HeaderSize) * uint64(s.h.ClusterSize)
	return off&uint64(s.clusterSize-1) == 0 && off >= hs && off < uint64(s.fileSize)
}

// checkTableOffset is qed_check_table_offset: the whole table inside.
func (s *state) checkTableOffset(off uint64) bool {
	end := off + uint64(s.h.TableSize-1)*uint64(s.h.ClusterSize)
	if end <= off {
		// QEMU's overflow check, which also refuses every table of a
		// table_size=1 image: such images do not open in QEMU 7.2.
		return false
	}
	return s.checkClusterOffset(off) && s.checkClusterOffset(end)
}

func open(a *blk.OpenArgs) (blk.Impl, error) {
	s := &state{self: a.Node(), loop: a.Loop, readOnly: a.Flags.ReadOnly, checkOpen: a.Flags.Check}
	if s.loop == nil {
		s.loop = blk.NewLoop(blk.NewVirtualClock())
	}
	var err error
	if s.file, err = a.OpenStorageChild(); err != nil {
		return nil, err
	}
	if err := s.loop.RunSync("qed open", func(co *blk.Co) error {
		s.mu.lock(co)
		defer s.mu.unlock()
		return s.doOpen(co)
	}); err != nil {
		return nil, err
	}
	base := s.self.Filename()
	if base == "" {
		base = s.file.Node.BaseFilename()
	}
	if s.backing, err = a.OpenBacking(s.backingFile, s.backingFormat, base); err != nil {
		return nil, err
	}
	return s, nil
}

// doOpen is bdrv_qed_do_open, with QEMU's messages.
func (s *state) doOpen(co *blk.Co) error {
	buf := make([]byte, headerSize)
	if err := s.file.Node.PRead(co, 0, buf, 0); err != nil {
		return blk.Errorf(blk.ErrnoOf(err), "Failed to read QED header")
	}
	s.h = decodeHeader(buf)
	h := &s.h
	if h.Magic != qedMagic {
		return blk.Msgf(unix.EINVAL, "Image not in QED format")
	}
	if h.Features&^featureMask != 0 {
		return blk.Msgf(unix.ENOTSUP, "Unsupported QED features: %x", h.Features&^featureMask)
	}
	if !validClusterSize(h.ClusterSize) {
		return blk.Msgf(unix.EINVAL, "QED cluster size is invalid")
	}
	s.clusterSize = int64(h.ClusterSize)
	flen, err := s.file.Node.Length(co)
	if err != nil {
		return blk.Errorf(blk.ErrnoOf(err), "Failed to get file length")
	}
	s.fileSize = s.startOfCluster(flen)
	if !validTableSize(h.TableSize) {
		return blk.Msgf(unix.EINVAL, "QED table size is invalid")
	}
	if !validImageSize(h.ImageSize, h.ClusterSize, h.TableSize) {
		return blk.Msgf(unix.EINVAL, "QED image size is invalid")
	}
	if !s.checkTableOffset(h.L1TableOffset) {
		return blk.Msgf(unix.EINVAL, "QED table offset is invalid")
	}
	s.tableNelems = s.tableBytes() / 8
	s.l2Shift = uint(ctz(uint64(h.ClusterSize)))
	s.l1Shift = s.l2Shift + uint(ctz(uint64(s.tableNelems)))
	if uint64(h.HeaderSize) > uint64(^uint32(0))/uint64(h.ClusterSize) {
		return blk.Msgf(unix.EINVAL, "QED header size is too large")
	}
	if h.Features&fBackingFile != 0 {
		if uint64(h.BackingNameOffset)+uint64(h.BackingNameSize) > uint64(h.ClusterSize)*uint64(h.HeaderSize) {
			return blk.Msgf(unix.EINVAL, "QED backing filename offset is invalid")
		}
		if h.BackingNameSize >= maxBackingName {
			return blk.Msgf(unix.EINVAL, "Failed to read backing filename")
		}
		name := make([]byte, h.BackingNameSize)
		if err := s.file.Node.PRead(co, int64(h.BackingNameOffset), name, 0); err != nil {
			return blk.Errorf(blk.ErrnoOf(err), "Failed to read backing filename")
		}
		// A C string: what follows a NUL is not part of the name.
		for i, c := range name {
			if c == 0 {
				name = name[:i]
				break
			}
		}
		s.backingFile = string(name)
		if h.Features&fBackingNoProb != 0 {
			s.backingFormat = "raw"
		}
	}
	if h.AutoclearFeat != 0 && !s.readOnly {
		h.AutoclearFeat = 0
		if err := s.writeHeaderSync(co); err != nil {
			return blk.Errorf(blk.ErrnoOf(err), "Failed to update header")
		}
		_ = s.file.Node.Flush(co)
	}
	s.l2.init()
	s.l1 = make([]uint64, s.tableNelems)
	if err := s.readTable(co, int64(h.L1TableOffset), s.l1); err != nil {
		return blk.Errorf(blk.ErrnoOf(err), "Failed to read L1 table")
	}
	// A check open (qemu-img check) leaves the repair to the check.
	if h.Features&fNeedCheck != 0 && !s.readOnly && !s.checkOpen {
		var r blk.CheckResult
		if err := s.check(co, &r, true); err != nil {
			return blk.Errorf(blk.ErrnoOf(err), "Image corrupted")
		}
	}
	return nil
}

func ctz(v uint64) int {
	n := 0
	for v&1 == 0 && n < 64 {
		v >>= 1
		n++
	}
	return n
}

// writeHeaderSync writes the 64-byte header (qed_write_header_sync).
func (s *state) writeHeaderSync(co *blk.Co) error {
	buf := make([]byte, headerSize)
	s.h.encode(buf)
	return s.file.Node.PWrite(co, 0, buf, 0)
}

// writeHeader rewrites the header in its first sector, keeping what
// follows the structure there (qed_write_header).
func (s *state) writeHeader(co *blk.Co) error {
	buf := make([]byte, 512)
	if err := s.file.Node.PRead(co, 0, buf, 0); err != nil {
		return err
	}
	s.h.encode(buf)
	return s.file.Node.PWrite(co, 0, buf, 0)
}

// readTable reads a whole table (qed_read_table), dropping the lock
// around the I/O as QEMU does.
func (s *state) readTable(co *blk.Co, off int64, t []uint64) error {
	buf := make([]byte, s.tableBytes())
	s.mu.unlock()
	err := s.file.Node.PRead(co, off, buf, 0)
	s.mu.lock(co)
	if err != nil {
		return err
	}
	for i := range t {
		t[i] = binary.LittleEndian.Uint64(buf[8*i:])
	}
	return nil
}

// writeTable writes entries [index, index+n) of t, widened to whole
// sectors (qed_write_table); flush flushes the image afterwards.
func (s *state) writeTable(co *blk.Co, off int64, t []uint64, index, n int64, flush bool) error {
	const perSector = 512 / 8
	start := index &^ (perSector - 1)
	end := (index + n + perSector - 1) &^ (perSector - 1)
	buf := make([]byte, (end-start)*8)
	for i := start; i < end; i++ {
		binary.LittleEndian.PutUint64(buf[8*(i-start):], t[i])
	}
	s.mu.unlock()
	err := s.file.Node.PWrite(co, off+start*8, buf, 0)
	if err == nil && flush {
		err = s.flushSelf(co)
	}
	s.mu.lock(co)
	return err
}

// flushSelf is bdrv_co_flush(s->bs): the whole graph below this node.
func (s *state) flushSelf(co *blk.Co) error {
	if s.self != nil {
		return s.self.Flush(co)
	}
	return s.file.Node.Flush(co)
}

func (s *state) writeL1(co *blk.Co, index, n int64) error {
	s.file.Event(co, blk.EvL1Update)
	return s.writeTable(co, int64(s.h.L1TableOffset), s.l1, index, n, false)
}

func (s *state) writeL2(co *blk.Co, t *l2Table, index, n int64, flush bool) error {
	s.file.Event(co, blk.EvL2Update)
	return s.writeTable(co, t.offset, t.entries, index, n, flush)
}

// readL2 returns the L2 table at off, from the cache or the file
// (qed_read_l2_table).
func (s *state) readL2(co *blk.Co, off int64) (*l2Table, error) {
	if t := s.l2.find(off); t != nil {
		return t, nil
	}
	t := &l2Table{entries: make([]uint64, s.tableNelems)}
	s.file.Event(co, blk.EvL2Load)
	if err := s.readTable(co, off, t.entries); err != nil {
		return nil, err
	}
	// Another request may have loaded (and since updated) the same
	// table while the lock was dropped: its copy wins, as in
	// qed_commit_l2_cache_entry, or updates made through it would be
	// lost and clusters allocated twice.
	if c := s.l2.find(off); c != nil {
		return c, nil
	}
	t.offset = off
	s.l2.commit(t)
	return t, nil
}

// allocClusters appends n clusters to the file (qed_alloc_clusters).
func (s *state) allocClusters(n int64) int64 {
	off := s.fileSize
	s.fileSize += n * s.clusterSize
	return off
}

func (s *state) Length(co *blk.Co) (int64, error) { return int64(s.h.ImageSize), nil }

// RefreshLimits is bdrv_qed_refresh_limits, with the 512-byte alignment
// QEMU gives a driver with sector-based read and write callbacks.
func (s *state) RefreshLimits(l *blk.Limits) {
	l.RequestAlignment = max(l.RequestAlignment, 512)
	l.PwriteZeroesAlignment = s.clusterSize
	l.MaxPwriteZeroes = (1<<31 - 1) &^ (s.clusterSize - 1)
}

// Info is bdrv_qed_get_info: the cluster size, and no specific lines.
func (s *state) Info() (blk.Info, error) {
	return blk.Info{ClusterSize: s.clusterSize}, nil
}

// Truncate grows the image (bdrv_qed_co_truncate); QED cannot shrink.
func (s *state) Truncate(co *blk.Co, size int64, exact bool, prealloc blk.Prealloc) error {
	if prealloc != blk.PreallocOff {
		return blk.Msgf(unix.ENOTSUP, "Unsupported preallocation mode '%s'", prealloc)
	}
	if size < 0 || !validImageSize(uint64(size), s.h.ClusterSize, s.h.TableSize) {
		return blk.Msgf(unix.EINVAL, "Invalid image size specified")
	}
	if uint64(size) < s.h.ImageSize {
		return blk.Msgf(unix.ENOTSUP, "Shrinking images is currently not supported")
	}
	old := s.h.ImageSize
	s.h.ImageSize = uint64(size)
	if err := s.writeHeaderSync(co); err != nil {
		s.h.ImageSize = old
		return blk.Errorf(blk.ErrnoOf(err), "Failed to update the image size")
	}
	return nil
}

// Close flushes the file and clears the need-check bit: a clean
// shutdown needs no check on the next open (bdrv_qed_close).
func (s *state) Close() error {
	if s.readOnly || s.h.Features&fNeedCheck == 0 {
		return nil
	}
	return s.loop.RunSync("qed close", func(co *blk.Co) error {
		_ = s.file.Node.Flush(co)
		s.h.Features &^= fNeedCheck
		return s.writeHeaderSync(co)
	})
}

func (s *state) String() string { return fmt.Sprintf("qed(%d)", s.clusterSize) }

// RequestShaped marks QED as laying its image out by the requests it is
// given: a write that needs a new L2 table gets it right after its own
// data clusters (qed_aio_write_alloc, then qed_aio_write_l2_update), so
// gio's commands must not cut a large write into pieces.
func (s *state) RequestShaped() {}
