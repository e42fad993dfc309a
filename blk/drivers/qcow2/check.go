package qcow2

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"gio/blk"
	"gio/internal/cvt"

	"golang.org/x/sys/unix"
)

// This file is QEMU 7.2's qcow2 consistency check (qcow2_co_check and
// qcow2-refcount.c's qcow2_check_refcounts and friends; the snapshot
// table's part is in checksnap.go): qemu-img check through blk.Checker,
// and the repair a read/write open of a dirty image runs (lazy refcounts
// let the refcounts fall behind the L2 tables; a crash leaves them so).
// Every cluster the metadata references (header, L1 and L2 tables, data
// and compressed clusters, snapshots, refcount table and blocks, crypto
// header, bitmap directory, tables and data) is counted in an in-memory
// refcount table; the counts on disk are compared with it; a cluster in
// use whose refcount is 0 makes the whole refcount structure be rebuilt
// from the in-memory table (rebuild_refcount_structure), after which the
// old structure is leaked and the leaks are repaired. OFLAG_COPIED is
// checked last. The messages are QEMU's, word for word: fprintf's on the
// check's stderr (s.stderr), error_report's through s.report.

// Check modes (BdrvCheckMode).
const (
	fixLeaks  = 1
	fixErrors = 2
)

// Reserved bits of table entries (L1E_RESERVED_MASK, L2E_STD_RESERVED_MASK,
// REFT_RESERVED_MASK).
const (
	l1eReservedMask    = uint64(0x7f000000000001ff)
	l2eStdReservedMask = uint64(0x3f000000000001fe)
	reftReservedMask   = uint64(0x1ff)
)

// checkResult is BdrvCheckResult with its BlockFragInfo.
type checkResult struct {
	corruptions, leaks, checkErrors int
	corruptionsFixed, leaksFixed    int
	imageEndOffset                  int64
	total, allocated, fragmented    int64
	compressed                      int64
}

// add is qcow2_add_check_result: the counts of src are added to r; with
// alloc, r takes src's image end offset and cluster figures.
func (r *checkResult) add(src *checkResult, alloc bool) {
	r.corruptions += src.corruptions
	r.leaks += src.leaks
	r.checkErrors += src.checkErrors
	r.corruptionsFixed += src.corruptionsFixed
	r.leaksFixed += src.leaksFixed
	if alloc {
		r.imageEndOffset = src.imageEndOffset
		r.total, r.allocated, r.fragmented, r.compressed = src.total, src.allocated, src.fragmented, src.compressed
	}
}

// Flags of checkRefcountsL1 (CHECK_FRAG_INFO): count the clusters for
// the allocation figures (the active L1 table only).
const checkFragInfo = 2

// imrt is the in-memory refcount table: one big refcount block in the
// on-disk format, so that its slices can be written as refcount blocks.
type imrt struct {
	data     []byte
	clusters int64 // entries in use (nb_clusters)
}

func (s *state) imrtBytes(entries int64) int64 {
	b := (entries<<s.refcountOrder + 7) / 8
	return (b + s.clusterSize - 1) &^ (s.clusterSize - 1)
}

// grow is realloc_refcount_array: the array always holds whole clusters.
func (s *state) imrtGrow(t *imrt, entries int64) {
	if n := s.imrtBytes(entries); n > int64(len(t.data)) {
		d := make([]byte, n)
		copy(d, t.data)
		t.data = d
	}
	t.clusters = entries
}

func (s *state) imrtGet(t *imrt, k int64) uint64 {
	if (k<<s.refcountOrder)/8 >= int64(len(t.data)) {
		return 0
	}
	return s.refcountAt(t.data, k)
}

// checkLocked is qcow2_co_check_locked: the snapshot table, then the
// refcounts, then mark the image clean and consistent when nothing is
// left to repair.
func (s *state) checkLocked(co *blk.Co, res *checkResult, fix int) error {
	*res = checkResult{}
	var snap, rc checkResult
	if err := s.checkReadSnapshotTable(co, &snap, fix); err != nil {
		res.add(&snap, false)
		return err
	}
	err := s.checkRefcounts(co, &rc, fix)
	res.add(&rc, true)
	if err != nil {
		res.add(&snap, false)
		return err
	}
	err = s.checkFixSnapshotTable(co, &snap, fix)
	res.add(&snap, false)
	if err != nil {
		return err
	}
	if fix != 0 && res.checkErrors == 0 && res.corruptions == 0 {
		if err := s.markClean(co); err != nil {
			return err
		}
		if s.incompat&incompatCorrupt != 0 {
			s.incompat &^= incompatCorrupt
			return s.updateHeader(co)
		}
	}
	return nil
}

// checkErrText is an error's text as error_report prints it.
func checkErrText(err error) string {
	var be *blk.Error
	if errors.As(err, &be) && be.Msg != "" {
		if be.Plain {
			return be.Msg
		}
		return be.Msg + ": " + cvt.Strerror(be.Errno)
	}
	return cvt.Strerror(blk.ErrnoOf(err))
}

// repairWord starts a message about a problem: "Repairing" when it is
// being repaired, "ERROR" otherwise.
func repairWord(repair bool) string {
	if repair {
		return "Repairing"
	}
	return "ERROR"
}

// Check is qcow2_co_check: the whole consistency check under the qcow2
// lock, its messages on msgs (blk.Checker).
func (s *state) Check(co *blk.Co, fix blk.CheckMode, msgs io.Writer, res *blk.CheckResult) error {
	s.mu.lock(co)
	defer s.mu.unlock()
	saved := s.stderr
	s.stderr = msgs
	defer func() { s.stderr = saved }()
	// The check reads the tables from the file: what the caches hold
	// goes there first (qemu-img check starts with empty caches).
	if !s.readOnly {
		if err := s.l2Cache.empty(co); err != nil {
			return err
		}
		if err := s.rcCache.empty(co); err != nil {
			return err
		}
	}
	var r checkResult
	err := s.checkLocked(co, &r, int(fix))
	*res = blk.CheckResult{
		Corruptions: r.corruptions, Leaks: r.leaks, CheckErrors: r.checkErrors,
		CorruptionsFixed: r.corruptionsFixed, LeaksFixed: r.leaksFixed,
		ImageEndOffset: r.imageEndOffset,
		TotalClusters:  r.total, AllocatedClusters: r.allocated,
		FragmentedClusters: r.fragmented, CompressedClusters: r.compressed,
	}
	return err
}

// repairDirty is the repair a read/write open of a dirty image runs.
func (s *state) repairDirty(co *blk.Co) error {
	var res checkResult
	err := s.checkLocked(co, &res, fixErrors|fixLeaks)
	if err == nil && res.checkErrors != 0 {
		err = unix.EIO
	}
	if err != nil {
		return blk.Errorf(blk.ErrnoOf(err), "Could not repair dirty image")
	}
	return nil
}

// checkRefcounts is qcow2_check_refcounts.
func (s *state) checkRefcounts(co *blk.Co, res *checkResult, fix int) error {
	size, err := s.file.Node.Length(co)
	if err != nil {
		return err
	}
	if s.sizeToClusters(size) > 1<<31-1 {
		res.checkErrors++
		return unix.EFBIG
	}
	res.total = s.sizeToClusters(s.size)
	t := &imrt{}
	s.imrtGrow(t, s.sizeToClusters(size))
	rebuild := false
	if err := s.calculateRefcounts(co, res, fix, &rebuild, t); err != nil {
		return err
	}
	pre := *res
	var highest int64
	s.compareRefcounts(co, res, 0, &rebuild, &highest, t)
	switch {
	case rebuild && fix&fixErrors != 0:
		old := *res
		fresh := 0
		fmt.Fprintf(s.stderr, "Rebuilding refcount structure\n")
		if err := s.rebuildRefcountStructure(co, res, t); err != nil {
			return err
		}
		res.corruptions, res.leaks = 0, 0
		rebuild = false
		t = &imrt{}
		if size, err = s.file.Node.Length(co); err != nil {
			return err
		}
		s.imrtGrow(t, s.sizeToClusters(size))
		if err := s.calculateRefcounts(co, res, 0, &rebuild, t); err != nil {
			return err
		}
		if fix&fixLeaks != 0 {
			saved := *res
			*res = checkResult{}
			s.compareRefcounts(co, res, fixLeaks, &rebuild, &highest, t)
			if rebuild {
				fmt.Fprintf(s.stderr, "ERROR rebuilt refcount structure is still broken\n")
			}
			fresh = res.leaks
			*res = saved
		}
		if res.corruptions < old.corruptions {
			res.corruptionsFixed += old.corruptions - res.corruptions
		}
		if res.leaks < old.leaks {
			res.leaksFixed += old.leaks - res.leaks
		}
		res.leaks += fresh
	case fix != 0:
		if rebuild {
			fmt.Fprintf(s.stderr, "ERROR need to rebuild refcount structures\n")
			res.checkErrors++
			return unix.EIO
		}
		if res.leaks != 0 || res.corruptions != 0 {
			*res = pre
			s.compareRefcounts(co, res, fix, &rebuild, &highest, t)
		}
	}
	if err := s.checkOflagCopied(co, res, fix); err != nil {
		return err
	}
	res.imageEndOffset = (highest + 1) * s.clusterSize
	return nil
}

// calculateRefcounts counts every reference the metadata makes
// (calculate_refcounts).
func (s *state) calculateRefcounts(co *blk.Co, res *checkResult, fix int, rebuild *bool, t *imrt) error {
	if err := s.incRefcounts(co, res, t, 0, s.clusterSize); err != nil {
		return err
	}
	if err := s.checkRefcountsL1(co, res, t, s.l1Offset, int64(len(s.l1)), checkFragInfo, fix, true); err != nil {
		return err
	}
	// The snapshot table as checkReadSnapshotTable read (and perhaps
	// repaired) it.
	sns, snSize := s.checkSnaps, s.checkSnapSize
	if s.hasDataFile() && len(sns) > 0 {
		fmt.Fprintf(s.stderr, "ERROR %d snapshots in image with data file\n", len(sns))
		res.corruptions++
	}
	for _, sn := range sns {
		if s.offsetIntoCluster(sn.l1Offset) != 0 {
			fmt.Fprintf(s.stderr, "ERROR snapshot %s (%s) l1_offset=%#x: L1 table is not cluster aligned; snapshot table entry corrupted\n", sn.id, sn.name, sn.l1Offset)
			res.corruptions++
			continue
		}
		if sn.l1Size > maxL1Bytes/8 {
			fmt.Fprintf(s.stderr, "ERROR snapshot %s (%s) l1_size=%#x: L1 table is too large; snapshot table entry corrupted\n", sn.id, sn.name, sn.l1Size)
			res.corruptions++
			continue
		}
		if err := s.checkRefcountsL1(co, res, t, sn.l1Offset, sn.l1Size, 0, fix, false); err != nil {
			return err
		}
	}
	if err := s.incRefcounts(co, res, t, s.snapshotsOffset, snSize); err != nil {
		return err
	}
	if err := s.incRefcounts(co, res, t, s.reftableOffset, int64(len(s.reftable))*8); err != nil {
		return err
	}
	if off, n, err := s.cryptoHeaderRegion(co); err != nil {
		return err
	} else if err := s.incRefcounts(co, res, t, off, n); err != nil {
		return err
	}
	if err := s.checkBitmapsRefcounts(co, res, t); err != nil {
		return err
	}
	return s.checkRefblocks(co, res, fix, rebuild, t)
}

// cryptoHeaderRegion is where a LUKS header lies, read from the image's
// crypto header extension, so that a repair never frees it.
func (s *state) cryptoHeaderRegion(co *blk.Co) (int64, int64, error) {
	buf := make([]byte, headerStruct)
	if err := s.file.Node.PRead(co, 0, buf, 0); err != nil {
		return 0, 0, err
	}
	if h, _ := decodeHeader(buf); h.CryptMethod != 2 {
		return 0, 0, nil
	}
	if e := s.headerExtension(co, extCryptoHeader); len(e) >= 16 {
		return int64(binary.BigEndian.Uint64(e)), int64(binary.BigEndian.Uint64(e[8:])), nil
	}
	return 0, 0, nil
}

// incRefcounts counts one reference to each cluster of a range
// (qcow2_inc_refcounts_imrt).
func (s *state) incRefcounts(co *blk.Co, res *checkResult, t *imrt, offset, size int64) error {
	if size <= 0 {
		return nil
	}
	flen, err := s.file.Node.Length(co)
	if err != nil {
		return err
	}
	if offset < 0 || offset > 1<<63-1-size {
		// QEMU's unsigned cluster index is then past any table it can
		// allocate: the check fails for want of memory.
		res.checkErrors++
		return unix.ENOMEM
	}
	if offset+size-flen >= s.clusterSize {
		fmt.Fprintf(s.stderr, "ERROR: counting reference for region exceeding the end of the file by one cluster or more: offset 0x%x size 0x%x\n", offset, size)
		res.corruptions++
		return nil
	}
	for cl := s.startOfCluster(offset); cl <= s.startOfCluster(offset+size-1); cl += s.clusterSize {
		k := cl >> s.clusterBits
		if k >= t.clusters {
			s.imrtGrow(t, k+1)
		}
		rc := s.refcountAt(t.data, k)
		if rc == s.refcountMax {
			fmt.Fprintf(s.stderr, "ERROR: overflow cluster offset=0x%x\n", cl)
			fmt.Fprintf(s.stderr, "Use qemu-img amend to increase the refcount entry width or qemu-img convert to create a clean copy if the image cannot be opened for writing\n")
			res.corruptions++
			continue
		}
		s.setRefcountAt(t.data, k, rc+1)
	}
	return nil
}

// checkRefcountsL1 counts an L1 table, its L2 tables and their clusters
// (check_refcounts_l1); active says it is the active table.
func (s *state) checkRefcountsL1(co *blk.Co, res *checkResult, t *imrt, l1Offset, l1Size int64, flags, fix int, active bool) error {
	if l1Size == 0 {
		return nil
	}
	if err := s.incRefcounts(co, res, t, l1Offset, l1Size*8); err != nil {
		return err
	}
	raw := make([]byte, l1Size*8)
	if err := s.file.Node.PRead(co, l1Offset, raw, 0); err != nil {
		fmt.Fprintf(s.stderr, "ERROR: I/O error in check_refcounts_l1\n")
		res.checkErrors++
		return err
	}
	// One buffer for every L2 table: QEMU's g_malloc/g_free per table
	// reuses the memory, a fresh Go slice per table left the collector
	// 64 KiB of garbage a table (a 256 GiB image's check peaked at 60 MiB
	// instead of 16).
	l2buf := make([]byte, s.l2Size*s.l2EntrySize)
	for i := int64(0); i < l1Size; i++ {
		e := binary.BigEndian.Uint64(raw[i*8:])
		if e == 0 {
			continue
		}
		if e&l1eReservedMask != 0 {
			fmt.Fprintf(s.stderr, "ERROR found L1 entry with reserved bits set: %x\n", e)
			res.corruptions++
		}
		l2Offset := int64(e & l1eOffsetMask)
		if err := s.incRefcounts(co, res, t, l2Offset, s.clusterSize); err != nil {
			return err
		}
		if s.offsetIntoCluster(l2Offset) != 0 {
			fmt.Fprintf(s.stderr, "ERROR l2_offset=%x: Table is not cluster aligned; L1 entry corrupted\n", l2Offset)
			res.corruptions++
		}
		if err := s.checkRefcountsL2(co, res, t, l2Offset, l2buf, flags, fix, active); err != nil {
			return err
		}
	}
	return nil
}

// checkRefcountsL2 counts the clusters of one L2 table and checks its
// entries (check_refcounts_l2). With fix&fixErrors, a misaligned entry
// of a cluster that holds no data becomes a zero entry. raw is the
// table's buffer, which the caller reuses for the next table.
func (s *state) checkRefcountsL2(co *blk.Co, res *checkResult, t *imrt, l2Offset int64, raw []byte, flags, fix int, active bool) error {
	if err := s.file.Node.PRead(co, l2Offset, raw, 0); err != nil {
		fmt.Fprintf(s.stderr, "ERROR: I/O error in check_refcounts_l2\n")
		res.checkErrors++
		return err
	}
	tbl := &centry{data: raw}
	var nextContiguous int64
	for i := int64(0); i < s.l2Size; i++ {
		e := s.l2Entry(tbl, i)
		bitmap := s.l2Bitmap(tbl, i)
		typ := s.clusterType(e)
		if typ != clusterCompressed && e&l2eStdReservedMask != 0 {
			fmt.Fprintf(s.stderr, "ERROR found l2 entry with reserved bits set: %x\n", e)
			res.corruptions++
		}
		switch typ {
		case clusterCompressed:
			if e&oflagCopied != 0 {
				fmt.Fprintf(s.stderr, "ERROR: coffset=0x%x: copied flag must never be set for compressed clusters\n", e&s.clusterOffMsk)
				e &^= oflagCopied
				res.corruptions++
			}
			if s.hasDataFile() {
				fmt.Fprintf(s.stderr, "ERROR compressed cluster %d with data file, entry=0x%x\n", i, e)
				res.corruptions++
				continue
			}
			if bitmap != 0 {
				fmt.Fprintf(s.stderr, "ERROR compressed cluster %d with non-zero subcluster allocation bitmap, entry=0x%x\n", i, e)
				res.corruptions++
				continue
			}
			off, n := s.compressedRange(e)
			if err := s.incRefcounts(co, res, t, off, n); err != nil {
				return err
			}
			if flags&checkFragInfo != 0 {
				res.allocated++
				res.compressed++
				// Compressed clusters are fragmented by nature.
				res.fragmented++
			}
		case clusterZeroAlloc, clusterNormal:
			off := int64(e & l2eOffsetMask)
			if (bitmap>>32)&bitmap != 0 {
				res.corruptions++
				fmt.Fprintf(s.stderr, "ERROR offset=%x: Allocated cluster has corrupted subcluster allocation bitmap\n", off)
			}
			if s.offsetIntoCluster(off) != 0 {
				res.corruptions++
				data := e&oflagZero == 0
				if s.extL2 {
					data = bitmap&l2BitmapAllAlloc != 0
				}
				if data {
					fmt.Fprintf(s.stderr, "ERROR offset=%x: Data cluster is not properly aligned; L2 entry corrupted.\n", off)
				} else {
					fmt.Fprintf(s.stderr, "%s offset=%x: Preallocated cluster is not properly aligned; L2 entry corrupted.\n", repairWord(fix&fixErrors != 0), off)
					if fix&fixErrors != 0 {
						fixed, overlap, err := s.fixL2EntryByZero(co, res, l2Offset, tbl, i, active)
						if overlap {
							return err
						}
						if fixed {
							continue
						}
					}
				}
			}
			if flags&checkFragInfo != 0 {
				res.allocated++
				if nextContiguous != 0 && off != nextContiguous {
					res.fragmented++
				}
				nextContiguous = off + s.clusterSize
			}
			if !s.hasDataFile() {
				if err := s.incRefcounts(co, res, t, off, s.clusterSize); err != nil {
					return err
				}
			}
		case clusterUnallocated:
			if bitmap&l2BitmapAllAlloc != 0 {
				res.corruptions++
				fmt.Fprintf(s.stderr, "ERROR: Unallocated cluster has non-zero subcluster allocation map\n")
			}
		}
	}
	return nil
}

// fixL2EntryByZero turns entry i of the L2 table at l2Offset (a copy in
// tbl) into a zero entry on disk (fix_l2_entry_by_zero). overlap says
// the write would have hit other metadata (the check then stops).
func (s *state) fixL2EntryByZero(co *blk.Co, res *checkResult, l2Offset int64, tbl *centry, i int64, active bool) (fixed, overlap bool, err error) {
	if s.extL2 {
		b := s.l2Bitmap(tbl, i)
		s.setL2Bitmap(tbl, i, (b|b<<32)&l2BitmapAllZeroes)
		s.setL2Entry(tbl, i, 0)
	} else {
		s.setL2Entry(tbl, i, oflagZero)
	}
	ign := olActiveL2
	if !active {
		ign = olInactiveL2
	}
	off := l2Offset + i*s.l2EntrySize
	if s.overlaps(ign, off, s.l2EntrySize) != 0 {
		fmt.Fprintf(s.stderr, "ERROR: Overlap check failed\n")
		res.checkErrors++
		return false, true, unix.EIO
	}
	if err := s.pwriteSync(co, off, tbl.data[i*s.l2EntrySize:(i+1)*s.l2EntrySize]); err != nil {
		fmt.Fprintf(s.stderr, "ERROR: Failed to overwrite L2 table entry: %s\n", cvt.Strerror(blk.ErrnoOf(err)))
		res.checkErrors++
		return false, false, err
	}
	// A cached copy of the table would be stale now.
	if e := s.l2Cache.lookup(l2Offset); e != nil {
		copy(e.data, tbl.data)
	}
	res.corruptions--
	res.corruptionsFixed++
	return true, false, nil
}

// checkRefblocks counts the refcount blocks themselves (check_refblocks).
// With fix&fixErrors a refblock past the end of the file is repaired by
// growing the file to hold it.
func (s *state) checkRefblocks(co *blk.Co, res *checkResult, fix int, rebuild *bool, t *imrt) error {
	for i, e := range s.reftable {
		off := int64(e & refOffsetMask)
		cl := off >> s.clusterBits
		switch {
		case e&reftReservedMask != 0:
			fmt.Fprintf(s.stderr, "ERROR refcount table entry %d has reserved bits set\n", i)
			res.corruptions++
			*rebuild = true
			continue
		case s.offsetIntoCluster(off) != 0:
			fmt.Fprintf(s.stderr, "ERROR refcount block %d is not cluster aligned; refcount table entry corrupted\n", i)
			res.corruptions++
			*rebuild = true
			continue
		case uint64(cl) >= uint64(t.clusters): // an offset past 2^63 too
			res.corruptions++
			fmt.Fprintf(s.stderr, "%s refcount block %d is outside image\n", repairWord(fix&fixErrors != 0), i)
			if fix&fixErrors == 0 {
				continue
			}
			var err error
			if off < 0 || off > 1<<63-1-s.clusterSize {
				err = unix.EINVAL
			} else {
				err = s.file.Node.Truncate(co, off+s.clusterSize, false, blk.PreallocOff)
			}
			var size int64
			if err == nil {
				size, err = s.file.Node.Length(co)
			}
			if err == nil && s.sizeToClusters(size) <= cl {
				err = unix.EINVAL
			}
			if err != nil {
				*rebuild = true
				fmt.Fprintf(s.stderr, "ERROR could not resize image: %s\n", cvt.Strerror(blk.ErrnoOf(err)))
				continue
			}
			s.imrtGrow(t, s.sizeToClusters(size))
			res.corruptions--
			res.corruptionsFixed++
			if err := s.incRefcounts(co, res, t, off, s.clusterSize); err != nil {
				return err
			}
			continue
		}
		if off == 0 {
			continue
		}
		if err := s.incRefcounts(co, res, t, off, s.clusterSize); err != nil {
			return err
		}
		if rc := s.imrtGet(t, cl); rc != 1 {
			fmt.Fprintf(s.stderr, "ERROR refcount block %d refcount=%d\n", i, rc)
			res.corruptions++
			*rebuild = true
		}
	}
	return nil
}

// headerExtension returns the data of the first header extension with
// this magic, nil when there is none or the extensions cannot be read.
func (s *state) headerExtension(co *blk.Co, magic uint32) []byte {
	buf := make([]byte, headerStruct)
	if err := s.file.Node.PRead(co, 0, buf, 0); err != nil {
		return nil
	}
	h, _ := decodeHeader(buf)
	end := s.clusterSize
	if h.BackingFileOffset != 0 {
		end = int64(min(h.BackingFileOffset, uint64(s.clusterSize)))
	}
	exts, err := s.readExtensions(co, int64(h.HeaderLength), end)
	if err != nil {
		return nil
	}
	for _, e := range exts {
		if e.magic == magic {
			return e.data
		}
	}
	return nil
}

// compareRefcounts compares the refcounts on disk with the counted ones
// and repairs what fix allows (compare_refcounts).
func (s *state) compareRefcounts(co *blk.Co, res *checkResult, fix int, rebuild *bool, highest *int64, t *imrt) {
	*highest = 0
	for i := int64(0); i < t.clusters; i++ {
		rc1, err := s.getRefcount(co, i)
		if err != nil {
			fmt.Fprintf(s.stderr, "Can't get refcount for cluster %d: %s\n", i, cvt.Strerror(blk.ErrnoOf(err)))
			res.checkErrors++
			continue
		}
		rc2 := s.imrtGet(t, i)
		if rc1 > 0 || rc2 > 0 {
			*highest = i
		}
		if rc1 == rc2 {
			continue
		}
		var fixed *int
		switch {
		case rc1 == 0:
			*rebuild = true
		case rc1 > rc2 && fix&fixLeaks != 0:
			fixed = &res.leaksFixed
		case rc1 < rc2 && fix&fixErrors != 0:
			fixed = &res.corruptionsFixed
		}
		word := "Leaked"
		switch {
		case fixed != nil:
			word = "Repairing"
		case rc1 < rc2:
			word = "ERROR"
		}
		fmt.Fprintf(s.stderr, "%s cluster %d refcount=%d reference=%d\n", word, i, rc1, rc2)
		if fixed != nil {
			diff, dec := rc2-rc1, false
			if rc1 > rc2 {
				diff, dec = rc1-rc2, true
			}
			if s.updateRefcount(co, i<<s.clusterBits, 1, diff, dec, discardAlways) == nil {
				*fixed++
				continue
			}
		}
		if rc1 < rc2 {
			res.corruptions++
		} else {
			res.leaks++
		}
	}
}

// allocImrt takes n contiguous free clusters in the in-memory table, from
// *firstFree on, growing the table past the image end if needed
// (alloc_clusters_imrt).
func (s *state) allocImrt(t *imrt, n int64, firstFree *int64) int64 {
	cl := *firstFree
	contiguous := int64(0)
	firstGap := true
	for ; cl < t.clusters && contiguous < n; cl++ {
		if s.imrtGet(t, cl) == 0 {
			contiguous++
			if firstGap {
				*firstFree = cl
				firstGap = false
			}
		} else {
			contiguous = 0
		}
	}
	if contiguous < n {
		s.imrtGrow(t, cl+n-contiguous)
	}
	cl -= contiguous
	for i := range n {
		s.setRefcountAt(t.data, cl+i, 1)
	}
	return cl << s.clusterBits
}

// rebuildWriteRefblocks writes the refblocks of the clusters in
// [first, end) that are in use, allocating them in the in-memory table,
// and reports whether the reftable had to grow
// (rebuild_refcounts_write_refblocks).
func (s *state) rebuildWriteRefblocks(co *blk.Co, t *imrt, first, end int64, reftable *[]uint64) (bool, error) {
	firstFree := int64(0)
	grown := false
	for cl := first; cl < end; cl++ {
		if s.imrtGet(t, cl) == 0 {
			continue
		}
		idx := cl >> s.refcountBlockBits
		start := idx << s.refcountBlockBits
		var rbOff int64
		if int64(len(*reftable)) > idx && (*reftable)[idx] != 0 {
			rbOff = int64((*reftable)[idx])
		} else {
			firstFree = max(firstFree, start)
			rbOff = s.allocImrt(t, 1, &firstFree)
			if rbCl := rbOff >> s.clusterBits; rbCl >= end {
				end = rbCl + 1
			}
			if int64(len(*reftable)) <= idx {
				n := ((idx+1)*8 + s.clusterSize - 1) &^ (s.clusterSize - 1) / 8
				nt := make([]uint64, n)
				copy(nt, *reftable)
				*reftable = nt
				grown = true
			}
			(*reftable)[idx] = uint64(rbOff)
		}
		if err := s.overlapCheck(0, rbOff, s.clusterSize); err != nil {
			s.report(blk.Errorf(blk.ErrnoOf(err), "ERROR writing refblock"))
			return false, err
		}
		// Slices past the table's end are all zero.
		block := make([]byte, s.clusterSize)
		if lo := idx * s.clusterSize; lo < int64(len(t.data)) {
			copy(block, t.data[lo:])
		}
		if err := s.file.Node.PWrite(co, rbOff, block, 0); err != nil {
			s.report(blk.Errorf(blk.ErrnoOf(err), "ERROR writing refblock"))
			return false, err
		}
		cl = start + s.refcountBlockSize - 1
	}
	return grown, nil
}

// rebuildRefcountStructure writes a new refcount structure made from the
// in-memory table, then switches the header to it; the old structure is
// leaked (rebuild_refcount_structure).
func (s *state) rebuildRefcountStructure(co *blk.Co, res *checkResult, t *imrt) error {
	// The cached refblocks belong to the old structure: write them back
	// and forget them.
	if err := s.rcCache.empty(co); err != nil {
		res.checkErrors++
		return err
	}
	var reftable []uint64
	if _, err := s.rebuildWriteRefblocks(co, t, 0, t.clusters, &reftable); err != nil {
		res.checkErrors++
		return err
	}
	var rtOff, rtClusters int64
	for {
		firstFree := int64(0)
		rtClusters = s.sizeToClusters(int64(len(reftable)) * 8)
		rtOff = s.allocImrt(t, rtClusters, &firstFree)
		start := rtOff >> s.clusterBits
		grown, err := s.rebuildWriteRefblocks(co, t, start, start+rtClusters, &reftable)
		if err != nil {
			res.checkErrors++
			return err
		}
		if !grown {
			break
		}
	}
	raw := make([]byte, len(reftable)*8)
	for i, v := range reftable {
		binary.BigEndian.PutUint64(raw[i*8:], v)
	}
	if err := s.overlapCheck(0, rtOff, int64(len(raw))); err != nil {
		s.report(blk.Errorf(blk.ErrnoOf(err), "ERROR writing reftable"))
		return err
	}
	if err := s.file.Node.PWrite(co, rtOff, raw, 0); err != nil {
		s.report(blk.Errorf(blk.ErrnoOf(err), "ERROR writing reftable"))
		return err
	}
	var hdr [12]byte
	binary.BigEndian.PutUint64(hdr[:], uint64(rtOff))
	binary.BigEndian.PutUint32(hdr[8:], uint32(rtClusters))
	if err := s.pwriteSync(co, 48, hdr[:]); err != nil {
		s.report(blk.Errorf(blk.ErrnoOf(err), "ERROR setting reftable"))
		return err
	}
	s.reftable = reftable
	s.reftableOffset = rtOff
	s.updateMaxReftableIndex()
	return nil
}

// checkOflagCopied checks that the COPIED flag of each active L1 and L2
// entry says whether its cluster's refcount is 1, and repairs it
// (check_oflag_copied).
func (s *state) checkOflagCopied(co *blk.Co, res *checkResult, fix int) error {
	repair := fix&fixErrors != 0 || fix&fixLeaks != 0 && res.checkErrors == 0 && res.corruptions == 0 && res.leaks == 0
	word := "ERROR"
	if repair {
		word = "Repairing"
	}
	for i, e := range s.l1 {
		l2Offset := int64(e & l1eOffsetMask)
		if l2Offset == 0 {
			continue
		}
		rc, err := s.getRefcount(co, l2Offset>>s.clusterBits)
		if err != nil {
			continue
		}
		if (rc == 1) != (e&oflagCopied != 0) {
			res.corruptions++
			fmt.Fprintf(s.stderr, "%s OFLAG_COPIED L2 cluster: l1_index=%d l1_entry=%x refcount=%d\n", word, i, e, rc)
			if repair {
				if rc == 1 {
					s.l1[i] = e | oflagCopied
				} else {
					s.l1[i] = e &^ oflagCopied
				}
				if err := s.writeL1Entry(co, int64(i)); err != nil {
					res.checkErrors++
					return err
				}
				res.corruptions--
				res.corruptionsFixed++
			}
		}
		// Read through the cache: it may hold the table newer than the
		// disk does.
		tbl, err := s.l2Cache.get(co, l2Offset, false)
		if err != nil {
			fmt.Fprintf(s.stderr, "ERROR: Could not read L2 table: %s\n", cvt.Strerror(blk.ErrnoOf(err)))
			res.checkErrors++
			return err
		}
		dirty := 0
		for j := int64(0); j < s.l2Size; j++ {
			le := s.l2Entry(tbl, j)
			typ := s.clusterType(le)
			if typ != clusterNormal && typ != clusterZeroAlloc {
				continue
			}
			rc, err := s.getRefcount(co, int64(le&l2eOffsetMask)>>s.clusterBits)
			if s.hasDataFile() {
				rc, err = 1, nil
			}
			if err != nil {
				continue
			}
			if (rc == 1) != (le&oflagCopied != 0) {
				res.corruptions++
				fmt.Fprintf(s.stderr, "%s OFLAG_COPIED data cluster: l2_entry=%x refcount=%d\n", word, le, rc)
				if repair {
					if rc == 1 {
						s.setL2Entry(tbl, j, le|oflagCopied)
					} else {
						s.setL2Entry(tbl, j, le&^oflagCopied)
					}
					dirty++
				}
			}
		}
		if dirty > 0 {
			s.l2Cache.markDirty(tbl)
			res.corruptions -= dirty
			res.corruptionsFixed += dirty
		}
		s.l2Cache.put(tbl)
	}
	return nil
}
