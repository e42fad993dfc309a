// Package qcow2 is the qcow2 format driver, after QEMU's block/qcow2*.c:
// version 2 and 3 images with their header extensions, L1/L2 tables
// behind a small write-back cache, refcount tables and blocks of any
// width, cluster allocation with copy-on-write of partial clusters, zero
// clusters, discard, block status, backing files, growing and shrinking,
// and compressed clusters (read, and written by write -c).
//
// The driver reaches its image only through its "file" child, and reads
// what it does not hold itself through its "backing" child, so blkdebug
// can sit under it and see qcow2's debug events (l2_load, l2_update,
// cluster_alloc, cow_read, cow_write, refblock_*, ...) where QEMU fires
// them. Metadata is written in the order that keeps an image consistent
// at every instant: refcount blocks before the L2 entries that use new
// clusters, data before the L2 entries that point to it, L2 tables
// before the L1 entries that point to them; a crash leaks clusters but
// never corrupts.
//
// The allocation strategy follows QEMU's closely enough that the same
// request sequence produces the same layout, so gio's "map -s" can be
// compared with "qemu-img map" offset by offset.
//
// Also the VM state area (vmstate.go), lazy refcounts and the dirty bit
// with the repair a read/write open runs (lazy.go, check.go), the corrupt
// bit, the runtime options (options.go), zstd clusters (zstd.go) and the
// persistent dirty bitmaps, loaded, tracked and stored back (bitmaps.go,
// dirtybitmap.go).
//
// Encrypted images (legacy AES and LUKS) are in crypt.go.
//
// Not supported (refused at open with a message saying so):
// external data files, extended L2 entries. Internal snapshots are kept
// intact but cannot be created or applied; preallocation is not done.
// As in QEMU, shrinking keeps the tail of a partial last cluster, which
// growing the image shows again.
package qcow2

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"

	"gio/blk"
	"gio/blk/qdict"

	"golang.org/x/sys/unix"
)

// Driver is the qcow2 format driver.
var Driver = &blk.Driver{
	Name:            "qcow2",
	Format:          true,
	SupportsBacking: true,
	Probe:           probe,
	Options: []blk.Option{{Name: "lazy-refcounts", Values: blk.OnOff()}, {Name: "pass-discard-request", Values: blk.OnOff()},
		{Name: "pass-discard-snapshot", Values: blk.OnOff()}, {Name: "pass-discard-other", Values: blk.OnOff()},
		{Name: "cache-clean-interval"}, {Name: "overlap-check", Values: []string{"all", "cached", "constant", "none"}}},
	Open:   open,
	Create: create,
}

// probe is qcow2_probe: the magic and a version of at least 2.
func probe(head []byte) int {
	if len(head) >= headerStruct && binary.BigEndian.Uint32(head) == qcowMagic &&
		binary.BigEndian.Uint32(head[4:]) >= 2 {
		return 100
	}
	return 0
}

// discardType says why clusters are freed; the pass-discard-* options say
// for which reasons freed clusters are discarded in the file too.
type discardType int

const (
	discardNever discardType = iota
	discardAlways
	discardRequest
	discardSnapshot
	discardOther
	discardMax
)

// state is an open qcow2 image (BDRVQcow2State). Every field is touched
// only under the scheduler token, and metadata only under mu.
type state struct {
	self    *blk.Node
	file    *blk.Child
	backing *blk.Child
	loop    *blk.Loop
	mu      coMutex

	readOnly bool
	version  int

	clusterBits    uint
	clusterSize    int64
	l2Bits         uint
	l2Size         int64 // entries per L2 table
	l2EntrySize    int64 // 8, or 16 with extended L2 entries
	extL2          bool  // extended L2 entries: 32 subclusters per cluster
	subclusterBits uint
	csizeShift     uint
	csizeMask      uint64
	clusterOffMsk  uint64

	refcountOrder     uint
	refcountBits      uint
	refcountMax       uint64
	refcountBlockBits uint
	refcountBlockSize int64 // entries per refcount block

	size           int64 // virtual size, a multiple of 512
	l1VMStateIndex int64
	l1             []uint64
	l1Offset       int64

	reftable       []uint64
	reftableOffset int64
	maxReftableIdx int64

	freeClusterIndex int64
	freeByteOffset   int64

	incompat, compat, autoclear uint64
	compressionType             uint8
	snapshotsOffset             int64
	nbSnapshots                 uint32

	backingFile, backingFormat string
	unknownHeaderFields        []byte
	unknownExts                []extension

	l2Cache, rcCache *cache

	opts               runtimeOpts
	discardPassthrough [discardMax]bool
	useLazyRefcounts   bool
	cacheDiscards      bool
	discards           []region

	// noAllocDeps is the debug switch x-alloc-deps=off (a mutation for
	// gio explore): an allocating write no longer waits for another
	// allocation in flight on the same cluster.
	noAllocDeps bool
	// dataWrites counts the guest data writes in flight per guest
	// cluster; a discard waits on writesDone until none is left on
	// its clusters, or it would free a cluster a write still lands in
	// (the write-vs-discard race gio explore found). noDiscardWait is
	// the debug switch x-discard-waits=off that brings the race back.
	dataWrites map[int64]int
	// threads counts the compression jobs in QEMU's thread pool, and
	// threadSlots holds the tasks waiting for one (threadJob).
	threads       int
	threadSlots   coQueue
	writesDone    coQueue
	noDiscardWait bool
	// noWriteOrder is the debug switch x-write-order=off (a mutation for
	// gio explore --crash): an L2 table is written back without first
	// flushing the refcount blocks and data it depends on, so that a
	// power cut can leave an L2 entry pointing at a cluster whose
	// refcount never reached the disk.
	noWriteOrder bool
	// allocs are the allocating writes in flight (cluster_allocs).
	allocs []*l2meta

	// checkOpen: opened for a consistency check (blk.OpenFlags.Check).
	checkOpen bool
	// checkSnaps and checkSnapSize are the snapshot table as the check
	// read it (checksnap.go).
	checkSnaps    []snapshotL1
	checkSnapSize int64

	// broken is set once corruption has been found: every later request
	// fails, as QEMU ejects a corrupt image's driver.
	broken bool

	// crypt is the encryption of an encrypted image, nil otherwise (crypt.go).
	crypt *cryptState
	// signaledCorruption: a corruption event has been printed; later
	// ones are not (signaled_corruption).
	signaledCorruption bool
	// stderr is where corruption events are printed; report prints
	// error_report's messages (with the program's name).
	stderr io.Writer
	report func(err error)

	// inactive are the snapshots' tables for the inactive overlap checks.
	inactive       []inactiveTable
	inactiveLoaded bool

	// The persistent bitmaps (bitmaps.go): the extension as the header
	// holds it, the directory as last read or written (for info), and
	// the bitmaps in memory, in directory order.
	nbBitmaps                      uint32
	bitmapDirOffset, bitmapDirSize int64
	bitmapDir                      []*bitmapEntry
	dirtyBitmaps                   []*dirtyBitmap
	// warnf prints a warning (warn_report).
	warnf func(format string, args ...any)

	// data is where guest data lives: the file, or the external data
	// file (datafile.go) named dataFileName in the header.
	data         *blk.Child
	dataFileName string
	// metaPrealloc: the image looks preallocated (checked once, at the
	// first block status; qcow2_detect_metadata_preallocation).
	metaPreallocChecked, metaPrealloc bool
}

type region struct{ offset, bytes int64 }

var (
	_ blk.ZeroWriter      = (*state)(nil)
	_ blk.Discarder       = (*state)(nil)
	_ blk.BlockStatuser   = (*state)(nil)
	_ blk.OSFlusher       = (*state)(nil)
	_ blk.Truncater       = (*state)(nil)
	_ blk.LimitsRefresher = (*state)(nil)
	_ blk.Infoer          = (*state)(nil)
	_ blk.Reopener        = (*state)(nil)
	_ blk.Checker         = (*state)(nil)
)

// errAgain asks an allocation to restart its search (QEMU's -EAGAIN).
var errAgain = errors.New("qcow2: try again")

// ErrCorrupt is matched by the errors returned when the image's metadata
// is inconsistent.
var ErrCorrupt = errors.New("qcow2: image is corrupt")

// corruptError is a corruption found while serving a request: it reads
// as EIO, like QEMU's qcow2_signal_corruption.
type corruptError struct{ msg string }

func (e *corruptError) Error() string        { return "qcow2: " + e.msg }
func (e *corruptError) Unwrap() []error      { return []error{unix.EIO, ErrCorrupt} }
func (e *corruptError) Is(target error) bool { return target == ErrCorrupt }

// corrupt signals corruption found while serving a request and returns
// the error for it (qcow2_signal_corruption). On a writable image it is
// fatal: the corrupt bit is set in the header and every later request
// fails, as QEMU ejects the driver. On a read-only image the request
// fails and the image stays usable. Only the first event is printed.
func (s *state) corrupt(format string, args ...any) error {
	return s.signalCorruption(true, format, args...)
}

// corruptNonFatal signals corruption that does not stop the image (QEMU
// passes fatal=false): the request fails, the image stays usable.
func (s *state) corruptNonFatal(format string, args ...any) error {
	return s.signalCorruption(false, format, args...)
}

func (s *state) signalCorruption(fatal bool, format string, args ...any) error {
	for i, a := range args {
		args[i] = cInt{a}
	}
	err := &corruptError{fmt.Sprintf(format, args...)}
	fatal = fatal && !s.readOnly
	if s.signaledCorruption && (!fatal || s.incompat&incompatCorrupt != 0) {
		if fatal {
			s.broken = true
		}
		return err
	}
	if fatal {
		fmt.Fprintf(s.stderr, "qcow2: Marking image as corrupt: %s; further corruption events will be suppressed\n", err.msg)
		s.markCorrupt()
		s.broken = true
	} else {
		fmt.Fprintf(s.stderr, "qcow2: Image is corrupt: %s; further non-fatal corruption events will be suppressed\n", err.msg)
	}
	s.signaledCorruption = true
	return err
}

// cInt formats an integer as C's printf does: "%#x" of 0 is "0", not
// Go's "0x0". Other values print as Go prints them.
type cInt struct{ v any }

func (c cInt) Format(f fmt.State, verb rune) {
	if verb == 'x' && f.Flag('#') {
		switch v := c.v.(type) {
		case int64:
			if v == 0 {
				fmt.Fprint(f, "0")
				return
			}
		case uint64:
			if v == 0 {
				fmt.Fprint(f, "0")
				return
			}
		case int:
			if v == 0 {
				fmt.Fprint(f, "0")
				return
			}
		}
	}
	fmt.Fprintf(f, fmt.FormatString(f, verb), c.v)
}

// markCorrupt sets the corrupt bit on disk (qcow2_mark_corrupt). The
// request that found the corruption holds the token, so the header write
// runs as its own request right after it.
func (s *state) markCorrupt() {
	s.incompat |= incompatCorrupt
	if s.loop == nil || s.file == nil {
		return
	}
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], s.incompat)
	s.loop.Spawn("qcow2 mark corrupt", func(co *blk.Co) {
		_ = s.pwriteSync(co, headerV2Len, b[:]) // best effort, as in QEMU
	})
}

func errnoIs(err error, errno unix.Errno) bool { return err != nil && errors.Is(err, errno) }

// Geometry helpers.

func (s *state) offsetIntoCluster(off int64) int64 { return off & (s.clusterSize - 1) }
func (s *state) startOfCluster(off int64) int64    { return off &^ (s.clusterSize - 1) }
func (s *state) sizeToClusters(size int64) int64 {
	return int64((uint64(size) + uint64(s.clusterSize) - 1) >> s.clusterBits)
}
func (s *state) l1Index(off int64) int64 { return int64(uint64(off) >> (s.l2Bits + s.clusterBits)) }
func (s *state) l2Index(off int64) int64 { return (off >> s.clusterBits) & (s.l2Size - 1) }
func (s *state) sizeToL1(size int64) int64 {
	shift := s.l2Bits + s.clusterBits
	return int64((uint64(size) + (uint64(1) << shift) - 1) >> shift)
}

// vmStateOffset is where the VM state area starts (qcow2_vm_state_offset).
func (s *state) vmStateOffset() int64 {
	return s.l1VMStateIndex << (s.clusterBits + s.l2Bits)
}

// ---------------------------------------------------------------------
// Opening.

func open(a *blk.OpenArgs) (blk.Impl, error) {
	s := &state{self: a.Node(), loop: a.Loop, readOnly: a.Flags.ReadOnly, checkOpen: a.Flags.Check, stderr: a.Stderr(), report: a.ReportFunc(), warnf: a.Warnf}
	if s.loop == nil {
		s.loop = blk.NewLoop(blk.NewVirtualClock())
	}
	// The file holds metadata: a writable qcow2 node may grow it, and
	// nobody else may write or resize it underneath
	// (bdrv_default_perms_for_storage). So a length that is not a
	// multiple of the file's alignment is fine, and image locks say so.
	var err error
	if s.file, err = a.OpenStorageChild(); err != nil {
		return nil, err
	}
	s.data = s.file
	if err := s.takeOptions(a); err != nil {
		return nil, err
	}
	var oerr error
	co := s.loop.Spawn("qcow2 open", func(co *blk.Co) { oerr = s.doOpen(co) })
	if err := s.loop.RunUntil(co.Name(), co.Done); err != nil {
		return nil, err
	}
	if oerr != nil {
		return nil, oerr
	}
	if err := s.openDataFile(a); err != nil {
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

// takeOptions reads the runtime options (qcow2_update_options_prepare);
// doOpen checks them against the header.
func (s *state) takeOptions(a *blk.OpenArgs) error {
	o := a.Opts
	r, err := takeRuntimeOpts(o, defaultOpts(a.Flags.Unmap), false)
	if err != nil {
		return err
	}
	// gio's debug switches, mutations for gio explore (open only).
	allocDeps, err := o.TakeBool("x-alloc-deps", true)
	if err != nil {
		return err
	}
	s.noAllocDeps = !allocDeps
	discardWaits, err := o.TakeBool("x-discard-waits", true)
	if err != nil {
		return err
	}
	s.noDiscardWait = !discardWaits
	writeOrder, err := o.TakeBool("x-write-order", true)
	if err != nil {
		return err
	}
	s.noWriteOrder = !writeOrder
	s.opts = r
	return s.takeCryptOptions(a)
}

// doOpen is qcow2_do_open: read and check the header, the L1 table, the
// refcount table and the header extensions, with QEMU's messages.
func (s *state) doOpen(co *blk.Co) error {
	flen, err := s.file.Node.Length(co)
	if err != nil {
		return blk.Errorf(blk.ErrnoOf(err), "Could not read qcow2 header")
	}
	buf := make([]byte, headerStruct)
	if err := s.file.Node.PRead(co, 0, buf, 0); err != nil {
		return blk.Errorf(blk.ErrnoOf(err), "Could not read qcow2 header")
	}
	h, _ := decodeHeader(buf)
	if h.Magic != qcowMagic {
		return blk.Msgf(unix.EINVAL, "Image is not in qcow2 format")
	}
	if h.Version < 2 || h.Version > 3 {
		return blk.Msgf(unix.ENOTSUP, "Unsupported qcow2 version %d", h.Version)
	}
	s.version = int(h.Version)
	if h.ClusterBits < minClusterBits || h.ClusterBits > maxClusterBits {
		return blk.Msgf(unix.EINVAL, "Unsupported cluster size: 2^%d", h.ClusterBits)
	}
	s.clusterBits = uint(h.ClusterBits)
	s.clusterSize = 1 << s.clusterBits
	if h.Version == 3 && h.HeaderLength < headerV3Len {
		return blk.Msgf(unix.EINVAL, "qcow2 header too short")
	}
	if int64(h.HeaderLength) > s.clusterSize {
		return blk.Msgf(unix.EINVAL, "qcow2 header exceeds cluster size")
	}
	if h.HeaderLength > headerStruct {
		s.unknownHeaderFields = make([]byte, h.HeaderLength-headerStruct)
		if err := s.file.Node.PRead(co, headerStruct, s.unknownHeaderFields, 0); err != nil {
			return blk.Errorf(blk.ErrnoOf(err), "Could not read unknown qcow2 header fields")
		}
	}
	if h.BackingFileOffset > uint64(s.clusterSize) {
		return blk.Msgf(unix.EINVAL, "Invalid backing file offset")
	}
	extEndOff := s.clusterSize
	if h.BackingFileOffset != 0 {
		extEndOff = int64(h.BackingFileOffset)
	}
	s.incompat, s.compat, s.autoclear = h.IncompatibleFeatures, h.CompatibleFeatures, h.AutoclearFeatures
	if h.HeaderLength > headerV3Len {
		s.compressionType = h.CompressionType
	}
	switch s.compressionType {
	case compressionZlib:
		if s.incompat&incompatCompression != 0 {
			return blk.Msgf(unix.EINVAL, "qcow2: Compression type incompatible feature bit must not be set")
		}
	case compressionZstd:
		if s.incompat&incompatCompression == 0 {
			return blk.Msgf(unix.EINVAL, "qcow2: Compression type incompatible feature bit must be set")
		}
	default:
		return blk.Msgf(unix.ENOTSUP, "qcow2: unknown compression type: %d", s.compressionType)
	}
	if s.incompat&^incompatMask != 0 {
		var table []feature
		if exts, err := s.readExtensions(co, int64(h.HeaderLength), extEndOff); err == nil {
			for _, e := range exts {
				if e.magic == extFeatureTable {
					table = decodeFeatures(e.data)
				}
			}
		}
		return blk.Msgf(unix.ENOTSUP, "%s", unsupportedFeatures(table, s.incompat&^incompatMask))
	}
	if s.incompat&incompatCorrupt != 0 && !s.readOnly && !s.checkOpen {
		return blk.Msgf(unix.EACCES, "qcow2: Image is corrupt; cannot be opened read/write")
	}
	s.extL2 = s.incompat&incompatExtL2 != 0
	s.l2EntrySize = 8
	s.subclusterBits = s.clusterBits
	if s.extL2 {
		s.l2EntrySize = 16
		s.subclusterBits = s.clusterBits - 5
		if s.subclusterBits < minClusterBits {
			return blk.Msgf(unix.EINVAL, "Unsupported subcluster size: %d", 1<<s.subclusterBits)
		}
	}
	if h.RefcountOrder > 6 {
		return blk.Msgf(unix.EINVAL, "Reference count entry width too large; may not exceed 64 bits")
	}
	s.refcountOrder = uint(h.RefcountOrder)
	s.refcountBits = 1 << s.refcountOrder
	s.refcountMax = uint64(1)<<(s.refcountBits-1) + (uint64(1)<<(s.refcountBits-1) - 1)
	if err := s.checkCrypt(h.CryptMethod); err != nil {
		return err
	}
	s.l2Bits = s.clusterBits - uint(bits.TrailingZeros64(uint64(s.l2EntrySize)))
	s.l2Size = 1 << s.l2Bits
	s.refcountBlockBits = s.clusterBits + 3 - s.refcountOrder
	s.refcountBlockSize = 1 << s.refcountBlockBits
	s.size = int64(h.Size/512) * 512
	if h.Size > 1<<63-1 {
		s.size = (1<<63 - 1) &^ 511
	}
	s.csizeShift = 62 - (s.clusterBits - 8)
	s.csizeMask = (1 << (s.clusterBits - 8)) - 1
	s.clusterOffMsk = (1 << s.csizeShift) - 1

	if h.RefcountTableClusters == 0 {
		return blk.Msgf(unix.EINVAL, "Image does not contain a reference count table")
	}
	if err := s.validateTable(h.RefcountTableOffset, uint64(h.RefcountTableClusters), uint64(s.clusterSize), maxReftableBytes, "Reference count table"); err != nil {
		return err
	}
	// A check validates the snapshot table itself (check.go).
	snapErr := s.validateTable(h.SnapshotsOffset, uint64(h.NbSnapshots), snapshotHdrSize, snapshotHdrSize*maxSnapshots, "Snapshot table")
	if snapErr != nil && !s.checkOpen {
		return snapErr
	}
	if err := s.validateTable(h.L1TableOffset, uint64(h.L1Size), 8, maxL1Bytes, "Active L1 table"); err != nil {
		return err
	}
	s.l1Offset = int64(h.L1TableOffset)
	s.l1VMStateIndex = s.sizeToL1(s.size)
	if s.l1VMStateIndex > 1<<31-1 {
		return blk.Msgf(unix.EFBIG, "Image is too big")
	}
	if int64(h.L1Size) < s.l1VMStateIndex {
		return blk.Msgf(unix.EINVAL, "L1 table is too small")
	}
	if h.L1Size > 0 {
		n := int64(h.L1Size) * 8
		if s.l1Offset+n > flen {
			return blk.Msgf(unix.EINVAL, "qcow2: L1 table at %#x: beyond end of file", s.l1Offset)
		}
		raw := make([]byte, n)
		if err := s.file.Node.PRead(co, s.l1Offset, raw, 0); err != nil {
			return blk.Errorf(blk.ErrnoOf(err), "Could not read L1 table")
		}
		s.l1 = make([]uint64, h.L1Size)
		for i := range s.l1 {
			s.l1[i] = binary.BigEndian.Uint64(raw[i*8:])
		}
	}
	s.snapshotsOffset = int64(h.SnapshotsOffset)
	s.nbSnapshots = h.NbSnapshots

	// Parse driver-specific options (qcow2_update_options).
	r := s.opts
	l2n, rcn, err := s.prepareOptions(&r)
	if err != nil {
		return err
	}
	s.commitOptions(r, l2n, rcn)
	if snapErr == nil {
		s.loadInactive(co)
	}

	// qcow2_refcount_init.
	s.reftableOffset = int64(h.RefcountTableOffset)
	n := int64(h.RefcountTableClusters) << s.clusterBits
	if s.reftableOffset+n > flen {
		return blk.Msgf(unix.EINVAL, "qcow2: refcount table at %#x: beyond end of file", s.reftableOffset)
	}
	s.file.Event(co, blk.EvReftableLoad)
	raw := make([]byte, n)
	if err := s.file.Node.PRead(co, s.reftableOffset, raw, 0); err != nil {
		return blk.Errorf(blk.ErrnoOf(err), "Could not initialize refcount handling")
	}
	s.reftable = make([]uint64, n/8)
	for i := range s.reftable {
		s.reftable[i] = binary.BigEndian.Uint64(raw[i*8:])
	}
	s.updateMaxReftableIndex()

	exts, err := s.readExtensions(co, int64(h.HeaderLength), extEndOff)
	if err != nil {
		return err
	}
	updateHeader := false
	for _, e := range exts {
		switch e.magic {
		case extBackingFormat:
			if len(e.data) >= backingFmtMax {
				return blk.Msgf(unix.EINVAL, "ERROR: ext_backing_format: len=%d too large (>=%d)", len(e.data), backingFmtMax)
			}
			s.backingFormat = cString(e.data)
		case extFeatureTable:
			// Rewritten from knownFeatures by updateHeader.
		case extCryptoHeader:
			if err := s.cryptoHeaderExt(co, e.data); err != nil {
				return err
			}
		case extDataFile:
			// Meaningless without the data file bit: dropped on rewrite,
			// as QEMU does.
			if s.incompat&incompatDataFile != 0 {
				s.dataFileName = string(e.data)
			}
		case extBitmaps:
			if err := s.bitmapsExt(e.data, &updateHeader); err != nil {
				return err
			}
		default:
			s.unknownExts = append(s.unknownExts, e)
		}
	}

	if h.BackingFileOffset != 0 {
		l := int64(h.BackingFileSize)
		if l > min(maxBackingName, s.clusterSize-int64(h.BackingFileOffset)) || l >= maxBackingName+1 {
			return blk.Msgf(unix.EINVAL, "Backing file name too long")
		}
		name := make([]byte, l)
		if err := s.file.Node.PRead(co, int64(h.BackingFileOffset), name, 0); err != nil {
			return blk.Errorf(blk.ErrnoOf(err), "Could not read backing file name")
		}
		s.backingFile = cString(name)
	}
	if err := s.finishCryptOpen(); err != nil {
		return err
	}

	// Unknown autoclear bits are cleared by a writer that does not know
	// them: that is what the bits are for. Loading the bitmaps marks
	// them in use, which rewrites the header too.
	updateHeader = (updateHeader || s.autoclear&^autoclearMask != 0) && !s.readOnly
	if updateHeader {
		s.autoclear &= autoclearMask
	}
	headerUpdated, err := s.loadBitmaps(co)
	if err != nil {
		return err
	}
	if updateHeader && !headerUpdated {
		if err := s.updateHeader(co); err != nil {
			return blk.Errorf(blk.ErrnoOf(err), "Could not update qcow2 header")
		}
	}
	// Repair the image if it is dirty (lazy refcounts after a crash).
	if !s.readOnly && !s.checkOpen && s.incompat&incompatDirty != 0 {
		if err := s.repairDirty(co); err != nil {
			return err
		}
	}
	return nil
}

func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// validateTable is qcow2_validate_table.
func (s *state) validateTable(offset, entries, entryLen, maxBytes uint64, name string) error {
	if entries > maxBytes/entryLen {
		return blk.Msgf(unix.EFBIG, "%s too large", name)
	}
	if uint64(1<<63-1)-entries*entryLen < offset || offset&uint64(s.clusterSize-1) != 0 {
		return blk.Msgf(unix.EINVAL, "%s offset invalid", name)
	}
	return nil
}

// readExtensions reads the header extensions between start and end
// (qcow2_read_extensions).
func (s *state) readExtensions(co *blk.Co, start, end int64) ([]extension, error) {
	var exts []extension
	for off := start; off < end; {
		hdr := make([]byte, 8)
		if err := s.file.Node.PRead(co, off, hdr, 0); err != nil {
			return nil, blk.Errorf(blk.ErrnoOf(err), "qcow2_read_extension: ERROR: pread fail from offset %d", off)
		}
		magic := binary.BigEndian.Uint32(hdr)
		l := int64(binary.BigEndian.Uint32(hdr[4:]))
		off += 8
		if off > end || l > end-off {
			return nil, blk.Msgf(unix.EINVAL, "Header extension too large")
		}
		if magic == extEnd {
			return exts, nil
		}
		data := make([]byte, l)
		if err := s.file.Node.PRead(co, off, data, 0); err != nil {
			return nil, blk.Errorf(blk.ErrnoOf(err), "ERROR: Could not read header extension")
		}
		exts = append(exts, extension{magic, data})
		off += (l + 7) &^ 7
	}
	return exts, nil
}

// updateHeader rewrites the whole header cluster: fixed fields, the
// backing format, the feature table (for clusters over 4 KiB), unknown
// extensions, the end marker and the backing file name
// (qcow2_update_header).
func (s *state) updateHeader(co *blk.Co) error {
	h := header{
		Magic:                 qcowMagic,
		Version:               uint32(s.version),
		ClusterBits:           uint32(s.clusterBits),
		Size:                  uint64(s.size),
		CryptMethod:           s.cryptMethod(),
		L1Size:                uint32(len(s.l1)),
		L1TableOffset:         uint64(s.l1Offset),
		RefcountTableOffset:   uint64(s.reftableOffset),
		RefcountTableClusters: uint32(int64(len(s.reftable)) >> (s.clusterBits - 3)),
		NbSnapshots:           s.nbSnapshots,
		SnapshotsOffset:       uint64(s.snapshotsOffset),
		IncompatibleFeatures:  s.incompat,
		CompatibleFeatures:    s.compat,
		AutoclearFeatures:     s.autoclear,
		RefcountOrder:         uint32(s.refcountOrder),
		HeaderLength:          uint32(headerStruct + len(s.unknownHeaderFields)),
		CompressionType:       s.compressionType,
	}
	buf := h.encode()
	buf = append(buf, s.unknownHeaderFields...)
	if s.backingFormat != "" {
		buf = appendExt(buf, extBackingFormat, []byte(s.backingFormat))
	}
	if s.hasDataFile() && s.dataFileName != "" {
		buf = appendExt(buf, extDataFile, []byte(s.dataFileName))
	}
	if ext := s.cryptHeaderExt(); ext != nil {
		buf = appendExt(buf, extCryptoHeader, ext)
	}
	if s.version >= 3 && s.clusterSize > 4096 {
		buf = appendExt(buf, extFeatureTable, encodeFeatures(knownFeatures))
	}
	if s.nbBitmaps > 0 {
		ext := make([]byte, bitmapsExtSize)
		binary.BigEndian.PutUint32(ext, s.nbBitmaps)
		binary.BigEndian.PutUint64(ext[8:], uint64(s.bitmapDirSize))
		binary.BigEndian.PutUint64(ext[16:], uint64(s.bitmapDirOffset))
		buf = appendExt(buf, extBitmaps, ext)
	}
	for _, e := range s.unknownExts {
		buf = appendExt(buf, e.magic, e.data)
	}
	buf = appendExt(buf, extEnd, nil)
	if s.backingFile != "" {
		binary.BigEndian.PutUint64(buf[8:], uint64(len(buf)))
		binary.BigEndian.PutUint32(buf[16:], uint32(len(s.backingFile)))
		buf = append(buf, s.backingFile...)
	}
	if int64(len(buf)) > s.clusterSize {
		return unix.ENOSPC
	}
	out := make([]byte, s.clusterSize)
	copy(out, buf)
	return s.file.Node.PWrite(co, 0, out, 0)
}

// ---------------------------------------------------------------------
// The node's simple facts.

// Length is the virtual size.
func (s *state) Length(co *blk.Co) (int64, error) { return s.size, nil }

// RefreshLimits is qcow2_refresh_limits: byte-granular requests, zero
// writes and discards in whole clusters, zero writes that may unmap and
// never fall back for version 3 images (zero clusters need v3).
func (s *state) RefreshLimits(l *blk.Limits) {
	l.PwriteZeroesAlignment = 1 << s.subclusterBits
	l.PdiscardAlignment = s.clusterSize
	if s.version >= 3 {
		l.SupportedZeroFlags = blk.MayUnmap | blk.NoFallback
	}
	if s.encrypted() {
		// Encryption works on a sector granularity.
		l.RequestAlignment = max(l.RequestAlignment, 512)
	}
}

// Info is qcow2_get_info plus qcow2_get_specific_info.
func (s *state) Info() (blk.Info, error) {
	info := blk.Info{ClusterSize: s.clusterSize, VMStateOffset: s.vmStateOffset()}
	compression := "zlib"
	if s.compressionType == compressionZstd {
		compression = "zstd"
	}
	if s.version == 2 {
		info.Specific = []string{"compat: 0.10", "compression type: " + compression, fmt.Sprintf("refcount bits: %d", s.refcountBits)}
	} else {
		info.Specific = []string{"compat: 1.1", "compression type: " + compression,
			fmt.Sprintf("lazy refcounts: %t", s.compat&compatLazyRefcounts != 0)}
		info.Specific = append(info.Specific, s.bitmapLines()...)
		info.Specific = append(info.Specific,
			fmt.Sprintf("refcount bits: %d", s.refcountBits))
		if s.hasDataFile() {
			info.Specific = append(info.Specific, "data file: "+s.dataFileName,
				fmt.Sprintf("data file raw: %t", s.autoclear&autoclearDataFileRaw != 0))
		}
		info.Specific = append(info.Specific,
			fmt.Sprintf("corrupt: %t", s.incompat&incompatCorrupt != 0),
			fmt.Sprintf("extended l2: %t", s.extL2))
	}
	info.Specific = s.cryptInfo(info.Specific)
	return info, nil
}

// Reopen writes the caches back and clears the dirty bit before the
// image becomes read-only (qcow2_reopen_prepare).
func (s *state) Reopen(readOnly bool) error {
	if readOnly && !s.readOnly && !s.broken {
		if err := s.runSync("qcow2 reopen", func(co *blk.Co) error {
			s.mu.lock(co)
			defer s.mu.unlock()
			if err := s.reopenBitmapsRO(co); err != nil {
				return err
			}
			if err := s.writeCaches(co); err != nil {
				return err
			}
			return s.markClean(co)
		}); err != nil {
			return err
		}
	}
	if !readOnly && s.incompat&incompatDirty != 0 {
		return blk.Msgf(unix.ENOTSUP, "qcow2: the image is dirty (lazy refcounts); gio cannot repair it, run 'qemu-img check -r all' first")
	}
	s.readOnly = readOnly
	return nil
}

// ReopenCommitted marks the bitmaps in use again once the image and its
// file are writable (qcow2_reopen_commit_post). A failure leaves them
// read-only, which refuses later writes, as in QEMU.
func (s *state) ReopenCommitted(readOnly bool) {
	if readOnly || s.broken {
		return
	}
	if err := s.runSync("qcow2 reopen", func(co *blk.Co) error {
		s.mu.lock(co)
		defer s.mu.unlock()
		return s.reopenBitmapsRW(co)
	}); err != nil {
		s.report(prependErr(s.nodeName()+": Failed to make dirty bitmaps writable: ", err))
	}
}

// PrepareReopen is qcow2_update_options_prepare for a reopen: the new
// values go over the current ones. Turning lazy refcounts off marks the
// image clean here, as QEMU does, and the caches are written back before
// they are replaced.
func (s *state) PrepareReopen(opts *qdict.Dict, readOnly bool) (func(), error) {
	r, err := takeRuntimeOpts(opts, s.opts, true)
	if err != nil {
		return nil, err
	}
	l2n, rcn, err := s.prepareOptions(&r)
	if err != nil {
		return nil, err
	}
	if !s.readOnly && !s.broken {
		err := s.runSync("qcow2 reopen", func(co *blk.Co) error {
			s.mu.lock(co)
			defer s.mu.unlock()
			if err := s.l2Cache.flush(co); err != nil {
				return blk.Errorf(blk.ErrnoOf(err), "Failed to flush the L2 table cache")
			}
			if err := s.rcCache.flush(co); err != nil {
				return blk.Errorf(blk.ErrnoOf(err), "Failed to flush the refcount block cache")
			}
			if s.useLazyRefcounts && !r.lazy {
				if err := s.markClean(co); err != nil {
					return blk.Errorf(blk.ErrnoOf(err), "Failed to disable lazy refcounts")
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return func() {
		s.commitOptions(r, l2n, rcn)
		_ = s.runSync("qcow2 reopen", func(co *blk.Co) error { s.loadInactive(co); return nil })
	}, nil
}

// Close writes back what the caches still hold and clears the dirty bit
// (qcow2_inactivate), saying which cache could not be written. blk has
// normally flushed already.
func (s *state) Close() error {
	if s.readOnly || s.broken || s.l2Cache == nil {
		return nil
	}
	if !s.l2Cache.dirty() && !s.rcCache.dirty() && s.incompat&incompatDirty == 0 && len(s.dirtyBitmaps) == 0 {
		return nil
	}
	return s.runSync("qcow2 close", func(co *blk.Co) error {
		s.mu.lock(co)
		defer s.mu.unlock()
		var result error
		if err := s.storeBitmaps(co, true); err != nil {
			result = unix.EINVAL
			s.report(prependErr(fmt.Sprintf("Lost persistent bitmaps during inactivation of node '%s': ", s.nodeName()), err))
		}
		if err := s.l2Cache.flush(co); err != nil {
			result = err
			s.report(blk.Errorf(blk.ErrnoOf(err), "Failed to flush the L2 table cache"))
		}
		if err := s.rcCache.flush(co); err != nil {
			result = err
			s.report(blk.Errorf(blk.ErrnoOf(err), "Failed to flush the refcount block cache"))
		}
		if result == nil {
			result = s.markClean(co)
		}
		return result
	})
}

// nodeName names the node in messages (bdrv_get_device_or_node_name).
func (s *state) nodeName() string { return s.self.MessageName() }

// runSync runs fn as a request on the node's loop, outside any other
// request (open, close, reopen).
func (s *state) runSync(name string, fn func(co *blk.Co) error) error {
	return s.loop.RunSync(name, fn)
}

// ---------------------------------------------------------------------
// coMutex is QEMU's CoMutex: the lock that keeps metadata consistent
// while a request holding it yields in the middle of child I/O.
type coMutex struct{ blk.CoMutex }

func (m *coMutex) lock(co *blk.Co) { m.Lock(co, "waits for the qcow2 lock") }
func (m *coMutex) unlock()         { m.Unlock() }

// coQueue is QEMU's CoQueue: requests waiting for an event.
type coQueue struct{ waiters []*blk.Co }

// wait parks co until restartAll, releasing m meanwhile
// (qemu_co_queue_wait).
func (q *coQueue) wait(co *blk.Co, m *coMutex, why string) {
	q.waiters = append(q.waiters, co)
	m.unlock()
	co.Park(why)
	m.lock(co)
}

// next wakes the oldest waiter (qemu_co_queue_next).
func (q *coQueue) next() {
	if len(q.waiters) > 0 {
		q.waiters[0].Wake()
		q.waiters = q.waiters[1:]
	}
}

func (q *coQueue) restartAll() {
	for _, w := range q.waiters {
		w.Wake()
	}
	q.waiters = nil
}
