package qcow2

import (
	"encoding/binary"

	"gio/blk"

	"golang.org/x/sys/unix"
)

// This file is QEMU's block/qcow2-cluster.c: the L1 and L2 tables, the
// mapping of guest offsets to host offsets, cluster allocation for writes
// with copy-on-write of the partial clusters around them, zero clusters
// and discard.

// clusterType is what an L2 entry says about its cluster.
type clusterType int

const (
	clusterUnallocated clusterType = iota
	clusterZeroPlain               // reads as zeroes, no host cluster
	clusterZeroAlloc               // reads as zeroes, host cluster kept
	clusterNormal
	clusterCompressed
)

func (s *state) clusterType(e uint64) clusterType {
	switch {
	case e&oflagCompressed != 0:
		return clusterCompressed
	case e&oflagZero != 0 && !s.extL2: // subclusters have zero bits instead
		if e&l2eOffsetMask != 0 {
			return clusterZeroAlloc
		}
		return clusterZeroPlain
	case e&l2eOffsetMask == 0:
		// Offset 0 is a real cluster in an external data file when the
		// entry says it is in use.
		if s.hasDataFile() && e&oflagCopied != 0 {
			return clusterNormal
		}
		return clusterUnallocated
	}
	return clusterNormal
}

// isAllocated is qcow2_cluster_is_allocated: the entry owns host space.
func isAllocated(t clusterType) bool {
	return t == clusterNormal || t == clusterCompressed || t == clusterZeroAlloc
}

// compressedRange returns where a compressed cluster's data lies
// (qcow2_parse_compressed_l2_entry).
func (s *state) compressedRange(entry uint64) (off, size int64) {
	off = int64(entry & s.clusterOffMsk)
	sectors := int64((entry>>s.csizeShift)&s.csizeMask) + 1
	return off, sectors*compressedSectorSize - off&(compressedSectorSize-1)
}

// maxRequestBytes is BDRV_REQUEST_MAX_BYTES.
const maxRequestBytes = (1<<31 - 1) &^ 511

// ---------------------------------------------------------------------
// L1 table.

// growL1 makes room for minSize L1 entries: a new table is written,
// then the header switched to it, then the old one freed
// (qcow2_grow_l1_table).
func (s *state) growL1(co *blk.Co, minSize int64, exact bool) error {
	if minSize <= int64(len(s.l1)) {
		return nil
	}
	if minSize > (1<<31-1)/8 {
		return unix.EFBIG
	}
	newSize := minSize
	if !exact {
		newSize = max(int64(len(s.l1)), 1)
		for minSize > newSize {
			newSize = (newSize*3 + 1) / 2
		}
	}
	if newSize > maxL1Bytes/8 {
		return unix.EFBIG
	}
	table := make([]uint64, newSize)
	copy(table, s.l1)
	s.file.Event(co, blk.EvL1GrowAllocTable)
	off, err := s.allocClusters(co, newSize*8)
	if err != nil {
		return err
	}
	fail := func(err error) error {
		s.freeClusters(co, off, newSize*8, discardOther)
		return err
	}
	if err := s.rcCache.flush(co); err != nil {
		return fail(err)
	}
	if err := s.overlapCheck(0, off, newSize*8); err != nil {
		return fail(err)
	}
	s.file.Event(co, blk.EvL1GrowWriteTable)
	raw := make([]byte, newSize*8)
	for i, v := range table {
		binary.BigEndian.PutUint64(raw[i*8:], v)
	}
	if err := s.pwriteSync(co, off, raw); err != nil {
		return fail(err)
	}
	s.file.Event(co, blk.EvL1GrowActivateTable)
	var hdr [12]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(newSize))
	binary.BigEndian.PutUint64(hdr[4:], uint64(off))
	if err := s.pwriteSync(co, 36, hdr[:]); err != nil {
		return fail(err)
	}
	oldOff, oldSize := s.l1Offset, int64(len(s.l1))
	s.l1, s.l1Offset = table, off
	s.freeClusters(co, oldOff, oldSize*8, discardOther)
	return nil
}

// shrinkL1 drops the L2 tables of L1 entries from exactSize on; the L1
// table keeps its size (qcow2_shrink_l1_table).
func (s *state) shrinkL1(co *blk.Co, exactSize int64) error {
	if exactSize >= int64(len(s.l1)) {
		return nil
	}
	s.file.Event(co, blk.EvL1ShrinkWriteTable)
	err := s.file.Node.PWriteZeroes(co, s.l1Offset+exactSize*8, (int64(len(s.l1))-exactSize)*8, 0)
	if err == nil {
		err = s.file.Node.Flush(co)
	}
	if err != nil {
		clear(s.l1[exactSize:])
		return err
	}
	s.file.Event(co, blk.EvL1ShrinkFreeL2Clusters)
	for i := int64(len(s.l1)) - 1; i >= exactSize; i-- {
		if off := int64(s.l1[i] & l1eOffsetMask); off != 0 {
			s.freeClusters(co, off, s.clusterSize, discardAlways)
		}
		s.l1[i] = 0
	}
	return nil
}

// writeL1Entry writes the L1 entry idx, widened to the file's request
// alignment so that the write needs no read-modify-write
// (qcow2_write_l1_entry).
func (s *state) writeL1Entry(co *blk.Co, idx int64) error {
	size := max(8, min(s.file.Node.Limits().RequestAlignment, s.clusterSize))
	n := size / 8
	start := idx / n * n
	buf := make([]byte, size)
	for i := int64(0); i < n && start+i < int64(len(s.l1)); i++ {
		binary.BigEndian.PutUint64(buf[i*8:], s.l1[start+i])
	}
	if err := s.overlapCheck(olActiveL1, s.l1Offset+start*8, size); err != nil {
		return err
	}
	s.file.Event(co, blk.EvL1Update)
	return s.pwriteSync(co, s.l1Offset+start*8, buf)
}

// ---------------------------------------------------------------------
// L2 tables.

// l2Allocate gives L1 entry l1i a new L2 table of its own: zeroed, or a
// copy of the shared table it had (l2_allocate). The new table reaches
// the disk before the L1 entry that points to it.
func (s *state) l2Allocate(co *blk.Co, l1i int64) error {
	old := s.l1[l1i]
	off, err := s.allocClusters(co, s.clusterSize)
	if err != nil {
		return err
	}
	var e *centry
	fail := func(err error) error {
		if e != nil {
			s.l2Cache.put(e)
		}
		s.l1[l1i] = old
		if off > 0 {
			s.freeClusters(co, off, s.clusterSize, discardAlways)
		}
		return err
	}
	if off == 0 {
		return fail(s.corrupt("Preventing invalid allocation of L2 table at offset 0"))
	}
	if err := s.rcCache.flush(co); err != nil {
		return fail(err)
	}
	if e, err = s.l2Cache.get(co, off, true); err != nil {
		return fail(err)
	}
	if old&l1eOffsetMask == 0 {
		clear(e.data)
	} else {
		s.file.Event(co, blk.EvL2AllocCowRead)
		oe, err := s.l2Cache.get(co, int64(old&l1eOffsetMask), false)
		if err != nil {
			return fail(err)
		}
		copy(e.data, oe.data)
		s.l2Cache.put(oe)
	}
	s.file.Event(co, blk.EvL2AllocWrite)
	s.l2Cache.markDirty(e)
	s.l2Cache.put(e)
	e = nil
	if err := s.l2Cache.flush(co); err != nil {
		return fail(err)
	}
	s.l1[l1i] = uint64(off) | oflagCopied
	if err := s.writeL1Entry(co, l1i); err != nil {
		return fail(err)
	}
	return nil
}

// l2TableOffset returns the L2 table offset of L1 entry l1i, checking its
// alignment.
func (s *state) l2TableOffset(l1i int64) (int64, error) {
	off := int64(s.l1[l1i] & l1eOffsetMask)
	if s.offsetIntoCluster(off) != 0 {
		return 0, s.corrupt("L2 table offset %#x unaligned (L1 index: %#x)", off, l1i)
	}
	return off, nil
}

// getClusterTable returns the L2 table for a guest offset, allocating it
// (or copying a shared one) when needed, and the entry's index in it
// (get_cluster_table).
func (s *state) getClusterTable(co *blk.Co, offset int64) (*centry, int64, error) {
	l1i := s.l1Index(offset)
	if l1i >= int64(len(s.l1)) {
		if err := s.growL1(co, l1i+1, false); err != nil {
			return nil, 0, err
		}
	}
	l2off, err := s.l2TableOffset(l1i)
	if err != nil {
		return nil, 0, err
	}
	if s.l1[l1i]&oflagCopied == 0 {
		if err := s.l2Allocate(co, l1i); err != nil {
			return nil, 0, err
		}
		if l2off != 0 {
			s.freeClusters(co, l2off, s.clusterSize, discardOther)
		}
		l2off = int64(s.l1[l1i] & l1eOffsetMask)
	}
	e, err := s.l2Cache.get(co, l2off, false)
	if err != nil {
		return nil, 0, err
	}
	return e, s.l2Index(offset), nil
}

// getHostOffset maps [offset, offset+bytes) as far as the mapping stays
// the same: it returns how many bytes from offset share the cluster type
// and (for allocated clusters) lie contiguously in the file, the host
// offset of offset (the L2 entry for compressed clusters), and the type
// (qcow2_get_host_offset). Never more than one L2 table is looked at.
func (s *state) getHostOffset(co *blk.Co, offset, bytes int64) (int64, uint64, clusterType, error) {
	oic := s.offsetIntoCluster(offset)
	needed := bytes + oic
	avail := (s.l2Size - s.l2Index(offset)) << s.clusterBits
	needed = min(needed, avail)
	var host uint64
	typ := clusterUnallocated
	l1i := s.l1Index(offset)
	if l1i < int64(len(s.l1)) && s.l1[l1i]&l1eOffsetMask != 0 {
		l2off, err := s.l2TableOffset(l1i)
		if err != nil {
			return 0, 0, 0, err
		}
		e, err := s.l2Cache.get(co, l2off, false)
		if err != nil {
			return 0, 0, 0, err
		}
		l2i := s.l2Index(offset)
		entry := s.l2Entry(e, l2i)
		sc := s.scIndex(offset)
		typ = s.subclusterType(entry, s.l2Bitmap(e, l2i), sc)
		switch typ {
		case clusterZeroPlain, clusterZeroAlloc:
			if s.version < 3 {
				s.l2Cache.put(e)
				return 0, 0, 0, s.corrupt("Zero cluster entry found in pre-v3 image (L2 offset: %#x, L2 index: %#x)", l2off, l2i)
			}
		case clusterCompressed:
			if s.hasDataFile() {
				s.l2Cache.put(e)
				return 0, 0, 0, s.corrupt("Compressed cluster entry found in image with external data file (L2 offset: %#x, L2 index: %#x)", l2off, l2i)
			}
			host = entry & l2eCompressedOffsetSizeMask
		}
		if typ == clusterNormal || typ == clusterZeroAlloc || typ == clusterUnallocAlloc {
			hc := entry & l2eOffsetMask
			host = hc + uint64(oic)
			if s.offsetIntoCluster(int64(hc)) != 0 {
				s.l2Cache.put(e)
				return 0, 0, 0, s.corrupt("Cluster allocation offset %#x unaligned (L2 offset: %#x, L2 index: %#x)", hc, l2off, l2i)
			}
		}
		if !s.extL2 {
			n := s.countContiguous(e, l2i, s.sizeToClusters(needed), typ)
			s.l2Cache.put(e)
			avail = n << s.clusterBits
		} else {
			t, n, bad := s.countContiguousSub(e, l2i, s.sizeToClusters(needed), sc)
			s.l2Cache.put(e)
			if t == clusterInvalid {
				return 0, 0, 0, s.corrupt("Invalid cluster entry found  (L2 offset: %#x, L2 index: %#x)", l2off, bad)
			}
			avail = (n + int64(sc)) << s.subclusterBits
		}
	}
	avail = min(avail, needed)
	return avail - oic, host, typ, nil
}

// countContiguous counts the entries from l2i on with the type of the
// first (and, for allocated ones, contiguous host offsets), at most n;
// compressed clusters are taken one at a time
// (count_contiguous_subclusters without subclusters).
func (s *state) countContiguous(e *centry, l2i, n int64, typ clusterType) int64 {
	if typ == clusterCompressed {
		return 1
	}
	first := s.l2Entry(e, l2i)
	expected := first & l2eOffsetMask
	checkOffset := typ == clusterNormal || typ == clusterZeroAlloc
	var i int64
	for ; i < n; i++ {
		entry := s.l2Entry(e, l2i+i)
		if s.clusterType(entry) != typ {
			break
		}
		if checkOffset {
			if entry&l2eOffsetMask != expected {
				break
			}
			expected += uint64(s.clusterSize)
		}
	}
	return i
}

// ---------------------------------------------------------------------
// Allocation for writes.

// cowRegion is a part of a newly allocated cluster range that the write
// does not cover: its old contents are copied there (Qcow2COWRegion).
type cowRegion struct{ offset, nbBytes int64 }

// l2meta describes an allocating write in flight: the clusters it
// allocated, the copy-on-write around its data, and who waits for it
// (QCowL2Meta).
type l2meta struct {
	offset      int64 // guest offset of the first cluster
	allocOffset int64 // host offset of the first cluster
	nbClusters  int64
	keepOld     bool // clusters written in place (zero-allocated ones)
	cowStart    cowRegion
	cowEnd      cowRegion
	skipCOW     bool   // the COW regions were zeroed efficiently
	prealloc    bool   // preallocation: no data written, subclusters stay unallocated
	data        []byte // guest data, when written together with the COW
	deps        coQueue
	next        *l2meta
}

func (m *l2meta) cowStartOffset() int64 { return m.offset + m.cowStart.offset }
func (m *l2meta) cowEndOffset() int64   { return m.offset + m.cowEnd.offset + m.cowEnd.nbBytes }

const invOffset = -1

// calculateL2Meta records the L2 update and COW a write needs
// (calculate_l2_meta). The COW widens the write to whole subclusters (to
// whole clusters without subclusters), except where existing data is
// kept in place and where old subclusters hold nothing to copy.
func (s *state) calculateL2Meta(host, guest, bytes int64, e *centry, l2i int64, m **l2meta, keepOld bool) error {
	cowStartTo := s.offsetIntoCluster(guest)
	cowEndFrom := cowStartTo + bytes
	nb := s.sizeToClusters(cowEndFrom)
	skip := keepOld
	for i := int64(0); i < nb; i++ {
		entry, bitmap := s.l2Entry(e, l2i+i), s.l2Bitmap(e, l2i+i)
		var typ clusterType
		if skip {
			from := max(cowStartTo, i<<s.clusterBits)
			to := min(cowEndFrom, (i+1)<<s.clusterBits)
			first := s.scIndex(from)
			var cnt int
			typ, cnt = s.subclusterRange(entry, bitmap, first)
			if typ != clusterNormal || first+cnt <= s.scIndex(to-1) {
				skip = false
			}
		} else {
			typ = s.subclusterType(entry, bitmap, 0)
		}
		if typ == clusterInvalid {
			return s.corrupt("Invalid cluster entry found (L2 offset: %#x, L2 index: %#x)", int64(s.l1[s.l1Index(guest)]&l1eOffsetMask), l2i+i)
		}
	}
	if skip {
		return nil
	}
	cowStartFrom := s.cowStartFrom(s.l2Entry(e, l2i), s.l2Bitmap(e, l2i), s.scIndex(guest), keepOld)
	if cowStartFrom < 0 {
		cowStartFrom = cowStartTo
	}
	last := l2i + nb - 1
	cowEndTo := s.cowEndTo(s.l2Entry(e, last), s.l2Bitmap(e, last), s.scIndex(guest+bytes-1), keepOld, cowEndFrom)
	nm := &l2meta{
		next:        *m,
		allocOffset: host,
		offset:      s.startOfCluster(guest),
		nbClusters:  nb,
		keepOld:     keepOld,
		cowStart:    cowRegion{cowStartFrom, cowStartTo - cowStartFrom},
		cowEnd:      cowRegion{cowEndFrom, cowEndTo - cowEndFrom},
	}
	*m = nm
	s.allocs = append([]*l2meta{nm}, s.allocs...)
	return nil
}

// needsNewAlloc reports whether a write to the cluster must go to a new
// cluster (cluster_needs_new_alloc): anything not exclusively owned.
func (s *state) needsNewAlloc(entry uint64) bool {
	switch s.clusterType(entry) {
	case clusterNormal, clusterZeroAlloc:
		return entry&oflagCopied == 0
	}
	return true
}

// countSingleWrite counts the clusters from l2i that one write can cover:
// all needing allocation, or all writable in place and contiguous
// (count_single_write_clusters).
func (s *state) countSingleWrite(n int64, e *centry, l2i int64, newAlloc bool) int64 {
	expected := s.l2Entry(e, l2i) & l2eOffsetMask
	var i int64
	for ; i < n; i++ {
		entry := s.l2Entry(e, l2i+i)
		if s.needsNewAlloc(entry) != newAlloc {
			break
		}
		if !newAlloc {
			if expected != entry&l2eOffsetMask {
				break
			}
			expected += uint64(s.clusterSize)
		}
	}
	return i
}

// handleDependencies shortens the request to stop before an allocating
// write in flight, or waits for it when it overlaps the request's first
// cluster (handle_dependencies). errAgain means it waited.
func (s *state) handleDependencies(co *blk.Co, guest int64, cur *int64, m **l2meta) error {
	if s.noAllocDeps {
		return nil
	}
	bytes := *cur
	for _, old := range s.allocs {
		start, end := guest, guest+bytes
		oldStart := s.startOfCluster(old.cowStartOffset())
		oldEnd := (old.cowEndOffset() + s.clusterSize - 1) &^ (s.clusterSize - 1)
		if end <= oldStart || start >= oldEnd {
			continue
		}
		if start < oldStart {
			bytes = oldStart - start
		} else {
			bytes = 0
		}
		if bytes == 0 && *m != nil {
			*cur = 0
			return nil
		}
		if bytes == 0 {
			old.deps.wait(co, &s.mu, "waits for an overlapping qcow2 allocation")
			return errAgain
		}
	}
	*cur = bytes
	return nil
}

// handleCopied counts the clusters at guest that can be written in place
// (handle_copied). It returns true when there are some; *host is then the
// host offset of guest and *bytes how far they go.
func (s *state) handleCopied(co *blk.Co, guest int64, host, bytes *int64, m **l2meta) (bool, error) {
	oic := s.offsetIntoCluster(guest)
	nb := min(s.sizeToClusters(oic+*bytes), s.l2Size-s.l2Index(guest), maxRequestBytes>>s.clusterBits)
	e, l2i, err := s.getClusterTable(co, guest)
	if err != nil {
		return false, err
	}
	defer s.l2Cache.put(e)
	entry := s.l2Entry(e, l2i)
	clOff := int64(entry & l2eOffsetMask)
	if s.needsNewAlloc(entry) {
		return false, nil
	}
	if s.offsetIntoCluster(clOff) != 0 {
		kind := "Data"
		if entry&oflagZero != 0 {
			kind = "Preallocated zero"
		}
		return false, s.corrupt("%s cluster offset %#x unaligned (guest offset: %#x)", kind, clOff, guest)
	}
	if flen, err := s.file.Node.Length(co); err != nil {
		return false, err
	} else if clOff >= flen && !s.hasDataFile() {
		return false, s.corrupt("Data cluster offset %#x beyond end of file (guest offset: %#x)", clOff, guest)
	}
	if *host != invOffset && int64(clOff) != *host {
		*bytes = 0
		return false, nil
	}
	keep := s.countSingleWrite(nb, e, l2i, false)
	*bytes = min(*bytes, keep*s.clusterSize-oic)
	if err := s.calculateL2Meta(clOff, guest, *bytes, e, l2i, m, true); err != nil {
		return false, err
	}
	*host = clOff + oic
	return true, nil
}

// handleAlloc allocates new clusters for guest, contiguous with *host
// when that is set (handle_alloc). It returns false when nothing could be
// allocated there.
func (s *state) handleAlloc(co *blk.Co, guest int64, host, bytes *int64, m **l2meta) (bool, error) {
	oic := s.offsetIntoCluster(guest)
	nb := min(s.sizeToClusters(oic+*bytes), s.l2Size-s.l2Index(guest), maxRequestBytes>>s.clusterBits)
	e, l2i, err := s.getClusterTable(co, guest)
	if err != nil {
		return false, err
	}
	defer s.l2Cache.put(e)
	nb = s.countSingleWrite(nb, e, l2i, true)
	if nb == 0 {
		return false, s.corrupt("no cluster to allocate at guest offset %#x", guest)
	}
	allocOff := int64(invOffset)
	if *host != invOffset {
		allocOff = s.startOfCluster(*host)
	}
	if s.hasDataFile() {
		// Data lives at its guest offset, without refcounts
		// (do_alloc_cluster_offset).
		if allocOff != invOffset && allocOff != s.startOfCluster(guest) {
			*bytes = 0
			return false, nil
		}
		allocOff = s.startOfCluster(guest)
	} else if allocOff == invOffset {
		if allocOff, err = s.allocClusters(co, nb*s.clusterSize); err != nil {
			return false, err
		}
	} else if nb, err = s.allocClustersAt(co, allocOff, nb); err != nil {
		return false, err
	}
	if nb == 0 {
		*bytes = 0
		return false, nil
	}
	nbBytes := min(*bytes+oic, nb<<s.clusterBits)
	*host = allocOff + oic
	*bytes = min(*bytes, nbBytes-oic)
	return true, s.calculateL2Meta(allocOff, guest, *bytes, e, l2i, m, false)
}

// allocHostOffset finds (allocating where needed) a contiguous host area
// for as much of [offset, offset+*bytes) as it can and returns its start;
// *bytes is shortened to what it covers (qcow2_alloc_host_offset). The
// returned l2meta list describes the allocations, also on failure: the
// caller links or aborts them.
func (s *state) allocHostOffset(co *blk.Co, offset int64, bytes *int64) (int64, *l2meta, error) {
again:
	start, remaining := offset, *bytes
	clOff, host := int64(invOffset), int64(invOffset)
	var cur int64
	var m *l2meta
	for {
		if host == invOffset && clOff != invOffset {
			host = clOff
		}
		start += cur
		remaining -= cur
		if clOff != invOffset {
			clOff += cur
		}
		if remaining == 0 {
			break
		}
		cur = remaining
		err := s.handleDependencies(co, start, &cur, &m)
		if err == errAgain {
			goto again
		}
		if err != nil {
			return 0, m, err
		}
		if cur == 0 {
			break
		}
		ok, err := s.handleCopied(co, start, &clOff, &cur, &m)
		if err != nil {
			return 0, m, err
		}
		if ok {
			continue
		}
		if cur == 0 {
			break
		}
		if ok, err = s.handleAlloc(co, start, &clOff, &cur, &m); err != nil {
			return 0, m, err
		}
		if !ok {
			break
		}
	}
	*bytes -= remaining
	return host, m, nil
}

// performCOW copies the old contents of the COW regions into the new
// clusters, with the guest data in the same write when it was attached
// (perform_cow). The lock is dropped during the I/O.
func (s *state) performCOW(co *blk.Co, m *l2meta) error {
	start, end := m.cowStart, m.cowEnd
	dataBytes := end.offset - (start.offset + start.nbBytes)
	if start.nbBytes == 0 && end.nbBytes == 0 || m.skipCOW {
		return nil
	}
	merge := start.nbBytes != 0 && end.nbBytes != 0 && dataBytes <= 16384
	var startBuf, endBuf, whole []byte
	if merge {
		whole = make([]byte, start.nbBytes+dataBytes+end.nbBytes)
		startBuf, endBuf = whole[:start.nbBytes], whole[int64(len(whole))-end.nbBytes:]
	} else {
		startBuf, endBuf = make([]byte, start.nbBytes), make([]byte, end.nbBytes)
	}
	s.mu.unlock()
	err := func() error {
		if merge {
			if err := s.cowRead(co, m.offset+start.offset, whole); err != nil {
				return err
			}
		} else {
			if err := s.cowRead(co, m.offset+start.offset, startBuf); err != nil {
				return err
			}
			if err := s.cowRead(co, m.offset+end.offset, endBuf); err != nil {
				return err
			}
		}
		if s.encrypted() {
			s.encrypt(m.allocOffset+start.offset, m.offset+start.offset, startBuf)
			s.encrypt(m.allocOffset+end.offset, m.offset+end.offset, endBuf)
		}
		if m.data != nil {
			buf := make([]byte, 0, start.nbBytes+int64(len(m.data))+end.nbBytes)
			buf = append(append(append(buf, startBuf...), m.data...), endBuf...)
			// One write, two events, as in QEMU.
			s.file.Event(co, blk.EvWriteAIO)
			return s.cowWrite(co, m.allocOffset+start.offset, buf)
		}
		if err := s.cowWrite(co, m.allocOffset+start.offset, startBuf); err != nil {
			return err
		}
		return s.cowWrite(co, m.allocOffset+end.offset, endBuf)
	}()
	s.mu.lock(co)
	if err == nil {
		// The L2 entry may reach the disk only after the copied data.
		s.l2Cache.dependOnFlush()
	}
	return err
}

// cowRead reads guest data for a COW through the driver itself (backing
// file, zeroes, old clusters), bypassing blk's request tracking as QEMU
// does (do_perform_cow_read).
func (s *state) cowRead(co *blk.Co, guest int64, buf []byte) error {
	if len(buf) == 0 {
		return nil
	}
	s.file.Event(co, blk.EvCowRead)
	return s.PRead(co, guest, buf, 0)
}

func (s *state) cowWrite(co *blk.Co, host int64, buf []byte) error {
	if len(buf) == 0 {
		return nil
	}
	if err := s.dataOverlapCheck(host, int64(len(buf))); err != nil {
		return err
	}
	s.file.Event(co, blk.EvCowWrite)
	return s.data.Node.PWrite(co, host, buf, 0)
}

// linkL2 finishes an allocating write: COW, then the L2 entries, then the
// old clusters freed (qcow2_alloc_cluster_link_l2). The L2 table may
// reach the disk only after the refcount blocks.
func (s *state) linkL2(co *blk.Co, m *l2meta) error {
	if err := s.performCOW(co, m); err != nil {
		return err
	}
	if s.useLazyRefcounts {
		if err := s.markDirty(co); err != nil {
			return err
		}
	}
	if s.needAccurateRefcounts() {
		if err := s.l2Cache.setDependency(co, s.rcCache); err != nil {
			return err
		}
	}
	e, l2i, err := s.getClusterTable(co, m.offset)
	if err != nil {
		return err
	}
	s.l2Cache.markDirty(e)
	var old []uint64
	for i := int64(0); i < m.nbClusters; i++ {
		if v := s.l2Entry(e, l2i+i); v != 0 {
			old = append(old, v)
		}
		s.setL2Entry(e, l2i+i, uint64(m.allocOffset+i<<s.clusterBits)|oflagCopied)
		if s.extL2 && !m.prealloc {
			s.setWrittenBitmap(e, l2i, m, i)
		}
	}
	s.l2Cache.put(e)
	if !m.keepOld {
		for _, v := range old {
			s.freeAnyCluster(co, v, discardNever)
		}
	}
	return nil
}

// handleL2Meta links (or, after a failure, frees) the allocations of a
// write and wakes the requests waiting for them (qcow2_handle_l2meta).
func (s *state) handleL2Meta(co *blk.Co, pm **l2meta, link bool) error {
	for m := *pm; m != nil; {
		if link {
			if err := s.linkL2(co, m); err != nil {
				*pm = m
				return err
			}
		} else if !m.keepOld && !s.hasDataFile() {
			s.freeClusters(co, m.allocOffset, m.nbClusters<<s.clusterBits, discardNever)
		}
		for i, a := range s.allocs {
			if a == m {
				s.allocs = append(s.allocs[:i], s.allocs[i+1:]...)
				break
			}
		}
		m.deps.restartAll()
		m = m.next
	}
	*pm = nil
	return nil
}

// ---------------------------------------------------------------------
// Discard and zero clusters.

// discardInL2 discards clusters of one L2 table and returns how many it
// looked at (discard_in_l2_slice). A full discard leaves the clusters
// unallocated (the backing file shows through); otherwise version 3
// images get zero clusters where something could show through.
func (s *state) discardInL2(co *blk.Co, offset, nb int64, typ discardType, full bool) (int64, error) {
	e, l2i, err := s.getClusterTable(co, offset)
	if err != nil {
		return 0, err
	}
	nb = min(nb, s.l2Size-l2i)
	for i := int64(0); i < nb; i++ {
		old, oldBitmap := s.l2Entry(e, l2i+i), s.l2Bitmap(e, l2i+i)
		v, bitmap := old, oldBitmap
		ct := s.clusterType(old)
		if full {
			v, bitmap = 0, 0
		} else if s.backing != nil || isAllocated(ct) {
			v = 0
			if s.extL2 {
				bitmap = l2BitmapAllZeroes
			} else if s.version >= 3 {
				v = oflagZero
			}
		}
		if old == v && oldBitmap == bitmap {
			continue
		}
		s.l2Cache.markDirty(e)
		s.setL2Entry(e, l2i+i, v)
		if s.extL2 {
			s.setL2Bitmap(e, l2i+i, bitmap)
		}
		s.freeAnyCluster(co, old, typ)
	}
	s.l2Cache.put(e)
	return nb, nil
}

// clusterDiscard is qcow2_cluster_discard: offset and bytes are cluster
// aligned, except that the range may end at the end of the image.
func (s *state) clusterDiscard(co *blk.Co, offset, bytes int64, typ discardType, full bool) error {
	nb := s.sizeToClusters(bytes)
	s.cacheDiscards = true
	var err error
	for nb > 0 {
		var n int64
		if n, err = s.discardInL2(co, offset, nb, typ, full); err != nil {
			break
		}
		nb -= n
		offset += n * s.clusterSize
	}
	s.cacheDiscards = false
	s.processDiscards(co, err != nil)
	return err
}

// zeroInL2 makes clusters of one L2 table zero clusters, freeing their
// host clusters when unmapping is allowed (zero_in_l2_slice).
func (s *state) zeroInL2(co *blk.Co, offset, nb int64, flags blk.ReqFlags) (int64, error) {
	e, l2i, err := s.getClusterTable(co, offset)
	if err != nil {
		return 0, err
	}
	nb = min(nb, s.l2Size-l2i)
	for i := int64(0); i < nb; i++ {
		old, oldBitmap := s.l2Entry(e, l2i+i), s.l2Bitmap(e, l2i+i)
		ct := s.clusterType(old)
		unmap := ct == clusterCompressed || flags&blk.MayUnmap != 0 && isAllocated(ct)
		v, bitmap := old, oldBitmap
		if unmap {
			v = 0
		}
		if s.extL2 {
			bitmap = l2BitmapAllZeroes
		} else {
			v |= oflagZero
		}
		if old == v && oldBitmap == bitmap {
			continue
		}
		s.l2Cache.markDirty(e)
		s.setL2Entry(e, l2i+i, v)
		if s.extL2 {
			s.setL2Bitmap(e, l2i+i, bitmap)
		}
		if unmap {
			s.freeAnyCluster(co, old, discardRequest)
		}
	}
	s.l2Cache.put(e)
	return nb, nil
}

// clusterZeroize turns whole clusters into zero clusters
// (qcow2_subcluster_zeroize without subclusters). Version 2 images have no
// zero clusters: without a backing file a discard does, otherwise it is
// ENOTSUP.
func (s *state) clusterZeroize(co *blk.Co, offset, bytes int64, flags blk.ReqFlags) error {
	if s.version < 3 {
		if s.backing == nil {
			return s.clusterDiscard(co, offset, bytes, discardRequest, false)
		}
		return unix.ENOTSUP
	}
	// A raw data file must read as the guest does: zero it first.
	if s.hasDataFile() && s.autoclear&autoclearDataFileRaw != 0 {
		if err := s.data.Node.PWriteZeroes(co, offset, bytes, flags); err != nil {
			return err
		}
	}
	// Partial clusters at either end get zero subclusters.
	end := offset + bytes
	head := min(end, (offset+s.clusterSize-1)&^(s.clusterSize-1)) - offset
	offset += head
	var tail int64
	if end < s.size {
		tail = end - max(offset, s.startOfCluster(end))
	}
	end -= tail
	s.cacheDiscards = true
	var err error
	if head != 0 {
		err = s.zeroSubclusters(co, offset-head, head)
	}
	for nb := s.sizeToClusters(end - offset); nb > 0 && err == nil; {
		var n int64
		if n, err = s.zeroInL2(co, offset, nb, flags); err != nil {
			break
		}
		nb -= n
		offset += n * s.clusterSize
	}
	if tail != 0 && err == nil {
		err = s.zeroSubclusters(co, end, tail)
	}
	s.cacheDiscards = false
	s.processDiscards(co, err != nil)
	return err
}

// getLastCluster returns the index of the last cluster with a non-zero
// refcount among the first size bytes (qcow2_get_last_cluster).
func (s *state) getLastCluster(co *blk.Co, size int64) (int64, error) {
	for i := s.sizeToClusters(size) - 1; i >= 0; i-- {
		rc, err := s.getRefcount(co, i)
		if err != nil {
			return 0, err
		}
		if rc > 0 {
			return i, nil
		}
	}
	return 0, s.corrupt("There are no references in the refcount table.")
}
