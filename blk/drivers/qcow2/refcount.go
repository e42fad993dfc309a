package qcow2

import (
	"encoding/binary"
	"fmt"

	"gio/blk"
	"gio/internal/cvt"

	"golang.org/x/sys/unix"
)

// This file is QEMU's block/qcow2-refcount.c, the allocation half: reading
// and updating refcounts of any width, allocating refcount blocks (and
// growing the refcount table when it is full), finding free clusters,
// freeing clusters and queueing discards of freed clusters.

// refcountAt reads entry i of a refcount block.
func (s *state) refcountAt(block []byte, i int64) uint64 {
	switch s.refcountOrder {
	case 0, 1, 2:
		bits := uint64(s.refcountBits)
		per := 8 / bits
		b := block[uint64(i)/per]
		return uint64(b>>((uint64(i)%per)*bits)) & (1<<bits - 1)
	case 3:
		return uint64(block[i])
	case 4:
		return uint64(binary.BigEndian.Uint16(block[i*2:]))
	case 5:
		return uint64(binary.BigEndian.Uint32(block[i*4:]))
	default:
		return binary.BigEndian.Uint64(block[i*8:])
	}
}

// setRefcountAt writes entry i of a refcount block; v fits the width.
func (s *state) setRefcountAt(block []byte, i int64, v uint64) {
	switch s.refcountOrder {
	case 0, 1, 2:
		bits := uint64(s.refcountBits)
		per := 8 / bits
		shift := (uint64(i) % per) * bits
		mask := byte((1<<bits - 1) << shift)
		p := &block[uint64(i)/per]
		*p = *p&^mask | byte(v<<shift)&mask
	case 3:
		block[i] = byte(v)
	case 4:
		binary.BigEndian.PutUint16(block[i*2:], uint16(v))
	case 5:
		binary.BigEndian.PutUint32(block[i*4:], uint32(v))
	default:
		binary.BigEndian.PutUint64(block[i*8:], v)
	}
}

func (s *state) updateMaxReftableIndex() {
	i := int64(len(s.reftable)) - 1
	for i > 0 && s.reftable[i]&refOffsetMask == 0 {
		i--
	}
	s.maxReftableIdx = max(i, 0)
}

// refblockOffset returns the refcount block offset of reftable entry i,
// checking its alignment.
func (s *state) refblockOffset(i int64) (int64, error) {
	off := int64(s.reftable[i] & refOffsetMask)
	if off != 0 && s.offsetIntoCluster(off) != 0 {
		return 0, s.corrupt("Refblock offset %#x unaligned (reftable index: %#x)", off, i)
	}
	return off, nil
}

// getRefcount is qcow2_get_refcount.
func (s *state) getRefcount(co *blk.Co, clusterIndex int64) (uint64, error) {
	ti := clusterIndex >> s.refcountBlockBits
	if ti >= int64(len(s.reftable)) {
		return 0, nil
	}
	off, err := s.refblockOffset(ti)
	if err != nil || off == 0 {
		return 0, err
	}
	e, err := s.rcCache.get(co, off, false)
	if err != nil {
		return 0, err
	}
	v := s.refcountAt(e.data, clusterIndex&(s.refcountBlockSize-1))
	s.rcCache.put(e)
	return v, nil
}

func (s *state) inSameRefcountBlock(a, b int64) bool {
	shift := s.clusterBits + s.refcountBlockBits
	return uint64(a)>>shift == uint64(b)>>shift
}

func (s *state) loadRefcountBlock(co *blk.Co, off int64) (*centry, error) {
	s.file.Event(co, blk.EvRefblockLoad)
	return s.rcCache.get(co, off, false)
}

// allocRefcountBlock returns the refcount block covering clusterIndex,
// allocating it (and growing the refcount table) when it does not exist
// (alloc_refcount_block). After an allocation it returns errAgain: the
// caller's free-cluster search may have picked the clusters just used.
func (s *state) allocRefcountBlock(co *blk.Co, clusterIndex int64) (*centry, error) {
	s.file.Event(co, blk.EvRefblockAlloc)
	ti := clusterIndex >> s.refcountBlockBits
	if ti < int64(len(s.reftable)) {
		off, err := s.refblockOffset(ti)
		if err != nil {
			return nil, err
		}
		if off != 0 {
			return s.loadRefcountBlock(co, off)
		}
	}

	// The refcount table changes: L2 tables written so far must be on
	// disk first.
	if err := s.l2Cache.flush(co); err != nil {
		return nil, err
	}
	newBlock, err := s.allocClustersNoref(co, s.clusterSize, 1<<63-1)
	if err != nil {
		return nil, err
	}
	if newBlock == 0 {
		return nil, s.corrupt("Preventing invalid allocation of refcount block at offset 0")
	}
	var block *centry
	if s.inSameRefcountBlock(newBlock, clusterIndex<<s.clusterBits) {
		// The block describes itself.
		if block, err = s.rcCache.get(co, newBlock, true); err != nil {
			return nil, err
		}
		clear(block.data)
		s.setRefcountAt(block.data, (newBlock>>s.clusterBits)&(s.refcountBlockSize-1), 1)
	} else {
		// Described by another block: this recurses at most twice.
		if err := s.updateRefcount(co, newBlock, s.clusterSize, 1, false, discardNever); err != nil {
			return nil, err
		}
		if err := s.rcCache.flush(co); err != nil {
			return nil, err
		}
		if block, err = s.rcCache.get(co, newBlock, true); err != nil {
			return nil, err
		}
		clear(block.data)
	}
	s.file.Event(co, blk.EvRefblockAllocWrite)
	s.rcCache.markDirty(block)
	if err := s.rcCache.flush(co); err != nil {
		s.rcCache.put(block)
		return nil, err
	}
	if ti < int64(len(s.reftable)) {
		s.file.Event(co, blk.EvRefblockAllocHookup)
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(newBlock))
		if err := s.pwriteSync(co, s.reftableOffset+ti*8, b[:]); err != nil {
			s.rcCache.put(block)
			return nil, err
		}
		s.reftable[ti] = uint64(newBlock)
		s.maxReftableIdx = max(s.maxReftableIdx, ti)
		s.rcCache.put(block)
		return nil, errAgain
	}
	s.rcCache.put(block)

	// The refcount table is full: build a new one with new refcount
	// blocks, all describing themselves, past everything in use.
	s.file.Event(co, blk.EvReftableGrow)
	blocksUsed := (max(clusterIndex+1, newBlock>>s.clusterBits+1) + s.refcountBlockSize - 1) / s.refcountBlockSize
	metaOffset := blocksUsed * s.refcountBlockSize * s.clusterSize
	if _, err := s.refcountArea(co, metaOffset, 0, false, ti, newBlock); err != nil {
		return nil, err
	}
	return nil, errAgain
}

// refcountMetadataSize is qcow2_refcount_metadata_size: the refcount
// blocks and table clusters needed to refcount clusters clusters
// including themselves, optionally with room to grow.
func refcountMetadataSize(clusters, clusterSize int64, order uint, generous bool) (bytes, blocks int64) {
	perTable := clusterSize / 8
	perBlock := clusterSize * 8 >> order
	var table, last, n int64
	for {
		last = n
		blocks = (clusters + table + blocks + perBlock - 1) / perBlock
		table = (blocks + perTable - 1) / perTable
		n = clusters + blocks + table
		if n == last && generous {
			clusters += (table + 1) / 2
			n = 0
			generous = false
		}
		if n == last {
			break
		}
	}
	return (blocks + table) * clusterSize, blocks
}

// refcountArea creates a new refcount table and the refcount blocks
// covering everything up to past itself, starting at startOffset (the end
// of the used space), and switches the header to it
// (qcow2_refcount_area). It returns the offset after the new structures.
func (s *state) refcountArea(co *blk.Co, startOffset, additional int64, exact bool, newIndex, newOffset int64) (int64, error) {
	_, total := refcountMetadataSize(startOffset/s.clusterSize+additional, s.clusterSize, s.refcountOrder, !exact)
	if total > maxReftableBytes {
		return 0, unix.EFBIG
	}
	areaIndex := (startOffset / s.clusterSize) / s.refcountBlockSize
	tableSize := total
	if !exact {
		tableSize = total + (total+1)/2
	}
	perCluster := s.clusterSize / 8
	tableSize = (tableSize + perCluster - 1) / perCluster * perCluster
	tableClusters := tableSize * 8 / s.clusterSize
	if tableSize > maxReftableBytes {
		return 0, unix.EFBIG
	}
	newTable := make([]uint64, tableSize)
	copy(newTable, s.reftable[:min(int64(len(s.reftable)), s.maxReftableIdx+1, tableSize)])
	if newOffset != 0 {
		newTable[newIndex] = uint64(newOffset)
	}
	var additionalBlocks int64
	for i := areaIndex; i < total; i++ {
		if newTable[i] == 0 {
			additionalBlocks++
		}
	}
	tableOffset := startOffset + additionalBlocks*s.clusterSize
	endOffset := tableOffset + tableClusters*s.clusterSize

	blockOffset := startOffset
	for i := areaIndex; i < total; i++ {
		var e *centry
		var err error
		if newTable[i] != 0 {
			e, err = s.rcCache.get(co, int64(newTable[i]&refOffsetMask), false)
		} else {
			e, err = s.rcCache.get(co, blockOffset, true)
			if err == nil {
				clear(e.data)
				s.rcCache.markDirty(e)
				newTable[i] = uint64(blockOffset)
				blockOffset += s.clusterSize
			}
		}
		if err != nil {
			return 0, err
		}
		first := i * s.refcountBlockSize * s.clusterSize
		if first < endOffset {
			j := int64(0)
			if first < startOffset {
				j = (startOffset - first) / s.clusterSize
			}
			end := min((endOffset-first)/s.clusterSize, s.refcountBlockSize)
			for ; j < end; j++ {
				s.setRefcountAt(e.data, j, 1)
			}
			s.rcCache.markDirty(e)
		}
		s.rcCache.put(e)
	}

	s.file.Event(co, blk.EvRefblockAllocWriteBlocks)
	if err := s.rcCache.flush(co); err != nil {
		return 0, err
	}
	raw := make([]byte, tableSize*8)
	for i, v := range newTable {
		binary.BigEndian.PutUint64(raw[i*8:], v)
	}
	s.file.Event(co, blk.EvRefblockAllocWriteTable)
	if err := s.pwriteSync(co, tableOffset, raw); err != nil {
		return 0, err
	}
	var hdr [12]byte
	binary.BigEndian.PutUint64(hdr[:], uint64(tableOffset))
	binary.BigEndian.PutUint32(hdr[8:], uint32(tableClusters))
	s.file.Event(co, blk.EvRefblockAllocSwitchTable)
	if err := s.pwriteSync(co, 48, hdr[:]); err != nil {
		return 0, err
	}
	oldOffset, oldSize := s.reftableOffset, int64(len(s.reftable))*8
	s.reftable = newTable
	s.reftableOffset = tableOffset
	s.updateMaxReftableIndex()
	s.freeClusters(co, oldOffset, oldSize, discardOther)
	return endOffset, nil
}

// processDiscards passes the queued discards of freed clusters to the
// file, unless the operation that freed them failed
// (qcow2_process_discards).
func (s *state) processDiscards(co *blk.Co, failed bool) {
	ds := s.discards
	s.discards = nil
	if failed {
		return
	}
	for _, d := range ds {
		_ = s.file.Node.PDiscard(co, d.offset, d.bytes) // advisory
	}
}

// queueDiscard merges a freed range into the discard queue
// (update_refcount_discard).
func (s *state) queueDiscard(offset, length int64) {
	found := -1
	for i, d := range s.discards {
		start := min(offset, d.offset)
		end := max(offset+length, d.offset+d.bytes)
		if end-start <= length+d.bytes {
			s.discards[i] = region{start, end - start}
			found = i
			break
		}
	}
	if found < 0 {
		s.discards = append(s.discards, region{offset, length})
		found = len(s.discards) - 1
	}
	d := s.discards[found]
	for i := 0; i < len(s.discards); i++ {
		p := s.discards[i]
		if i == found || p.offset > d.offset+d.bytes || d.offset > p.offset+p.bytes {
			continue
		}
		d = region{min(d.offset, p.offset), d.bytes + p.bytes}
		s.discards = append(s.discards[:i], s.discards[i+1:]...)
		if i < found {
			found--
		}
		s.discards[found] = d
		i = -1
	}
}

// updateRefcount adds addend to (or subtracts it from) the refcount of
// every cluster in [offset, offset+length) (update_refcount). On failure
// it tries to undo what it did.
func (s *state) updateRefcount(co *blk.Co, offset, length int64, addend uint64, decrease bool, typ discardType) error {
	if length < 0 {
		return unix.EINVAL
	}
	if length == 0 {
		return nil
	}
	if decrease {
		// Freed clusters may be reused only once the L2 entries that
		// pointed to them are gone from the disk.
		if err := s.rcCache.setDependency(co, s.l2Cache); err != nil {
			return err
		}
	}
	start := s.startOfCluster(offset)
	last := s.startOfCluster(offset + length - 1)
	var block *centry
	oldIndex := int64(-1)
	var err error
	cl := start
	for ; cl <= last; cl += s.clusterSize {
		ci := cl >> s.clusterBits
		ti := ci >> s.refcountBlockBits
		if ti != oldIndex {
			if block != nil {
				s.rcCache.put(block)
				block = nil
			}
			if decrease && (ti >= int64(len(s.reftable)) || s.reftable[ti]&refOffsetMask == 0) {
				// Nothing counts this cluster: its refcount is 0, and
				// creating refcount structures for it (perhaps far
				// past the end of the file, where a corrupt entry
				// points) only to fail the decrement is pointless.
				err = unix.EINVAL
				break
			}
			block, err = s.allocRefcountBlock(co, ci)
			if err == errAgain {
				// The caller restarts its search: it should try the
				// same clusters first, they may well still be free.
				s.freeClusterIndex = min(s.freeClusterIndex, start>>s.clusterBits)
			}
			if err != nil {
				break
			}
		}
		oldIndex = ti
		s.rcCache.markDirty(block)
		bi := ci & (s.refcountBlockSize - 1)
		rc := s.refcountAt(block.data, bi)
		if decrease && rc < addend || !decrease && (rc+addend < rc || rc+addend > s.refcountMax) {
			err = unix.EINVAL
			break
		}
		if decrease {
			rc -= addend
		} else {
			rc += addend
		}
		if rc == 0 && ci < s.freeClusterIndex {
			s.freeClusterIndex = ci
		}
		s.setRefcountAt(block.data, bi, rc)
		if rc == 0 {
			if e := s.rcCache.lookup(cl); e != nil {
				s.rcCache.put(block)
				block = nil
				oldIndex = -1
				s.rcCache.discard(e)
			}
			if e := s.l2Cache.lookup(cl); e != nil {
				s.l2Cache.discard(e)
			}
			if s.discardPassthrough[typ] {
				s.queueDiscard(cl, s.clusterSize)
			}
		}
	}
	if !s.cacheDiscards {
		s.processDiscards(co, err != nil)
	}
	if block != nil {
		s.rcCache.put(block)
	}
	if err != nil && cl > offset {
		_ = s.updateRefcount(co, offset, cl-offset, addend, !decrease, discardNever)
	}
	return err
}

// allocClustersNoref finds size bytes of contiguous free clusters from
// the free-cluster hint on, without taking them; every offset of the
// range must be at most max (alloc_clusters_noref).
func (s *state) allocClustersNoref(co *blk.Co, size int64, max uint64) (int64, error) {
	if s.cacheDiscards {
		s.processDiscards(co, false)
	}
	n := s.sizeToClusters(size)
retry:
	for i := int64(0); i < n; i++ {
		next := s.freeClusterIndex
		s.freeClusterIndex++
		rc, err := s.getRefcount(co, next)
		if err != nil {
			return 0, err
		}
		if rc != 0 {
			goto retry
		}
	}
	if s.freeClusterIndex > 0 && uint64(s.freeClusterIndex-1) > max>>s.clusterBits {
		return 0, unix.EFBIG
	}
	return (s.freeClusterIndex - n) << s.clusterBits, nil
}

// maxClusterOffset is QCOW_MAX_CLUSTER_OFFSET: what an L2 entry can hold.
const maxClusterOffset = 1<<56 - 1

// allocClusters allocates size bytes of contiguous clusters
// (qcow2_alloc_clusters).
func (s *state) allocClusters(co *blk.Co, size int64) (int64, error) {
	s.file.Event(co, blk.EvClusterAlloc)
	for {
		off, err := s.allocClustersNoref(co, size, maxClusterOffset)
		if err != nil {
			return 0, err
		}
		err = s.updateRefcount(co, off, size, 1, false, discardNever)
		if err == errAgain {
			continue
		}
		if err != nil {
			return 0, err
		}
		return off, nil
	}
}

// allocClustersAt allocates up to n clusters at offset, as many as are
// free there (qcow2_alloc_clusters_at).
func (s *state) allocClustersAt(co *blk.Co, offset, n int64) (int64, error) {
	if n == 0 {
		return 0, nil
	}
	for {
		ci := offset >> s.clusterBits
		var i int64
		for ; i < n; i++ {
			rc, err := s.getRefcount(co, ci)
			if err != nil {
				return 0, err
			}
			ci++
			if rc != 0 {
				break
			}
		}
		err := s.updateRefcount(co, offset, i<<s.clusterBits, 1, false, discardNever)
		if err == errAgain {
			continue
		}
		if err != nil {
			return 0, err
		}
		return i, nil
	}
}

// freeClusters drops one reference to each cluster of the range
// (qcow2_free_clusters). Failure only leaks clusters.
func (s *state) freeClusters(co *blk.Co, offset, size int64, typ discardType) {
	s.file.Event(co, blk.EvClusterFree)
	if err := s.updateRefcount(co, offset, size, 1, true, typ); err != nil {
		fmt.Fprintf(s.stderr, "qcow2_free_clusters failed: %s\n", cvt.Strerror(blk.ErrnoOf(err)))
	}
}

// freeAnyCluster frees what an L2 entry points to (qcow2_free_any_cluster).
func (s *state) freeAnyCluster(co *blk.Co, entry uint64, typ discardType) {
	switch s.clusterType(entry) {
	case clusterCompressed:
		off, size := s.compressedRange(entry)
		s.freeClusters(co, off&^511, (off&511+size+511)&^511, typ)
	case clusterNormal, clusterZeroAlloc:
		off := int64(entry & l2eOffsetMask)
		if s.hasDataFile() {
			s.freeDataCluster(co, off, typ)
		} else if s.offsetIntoCluster(off) != 0 {
			_ = s.corruptNonFatal("Cannot free unaligned cluster %#x", off)
		} else {
			s.freeClusters(co, off, s.clusterSize, typ)
		}
	}
}

// pwriteSync writes metadata and flushes the file (bdrv_pwrite_sync).
func (s *state) pwriteSync(co *blk.Co, off int64, buf []byte) error {
	if err := s.file.Node.PWrite(co, off, buf, 0); err != nil {
		return err
	}
	return s.file.Node.Flush(co)
}

// writeCaches writes back the L2 tables (and, through their dependency,
// the refcount blocks first) and the refcount blocks, which a dirty image
// keeps until it is marked clean (qcow2_write_caches).
func (s *state) writeCaches(co *blk.Co) error {
	if err := s.l2Cache.write(co); err != nil {
		return err
	}
	if !s.needAccurateRefcounts() {
		return nil
	}
	return s.rcCache.write(co)
}

// shrinkReftable drops the refcount blocks that count nothing but
// (perhaps) themselves, after a shrink (qcow2_shrink_reftable).
func (s *state) shrinkReftable(co *blk.Co) error {
	tmp := make([]uint64, len(s.reftable))
	for i := range s.reftable {
		off := int64(s.reftable[i] & refOffsetMask)
		if off == 0 {
			continue
		}
		e, err := s.rcCache.get(co, off, false)
		if err != nil {
			return err
		}
		unused := true
		self := (off >> s.clusterBits) & (s.refcountBlockSize - 1)
		ownBlock := int64(i) == off>>(s.clusterBits+s.refcountBlockBits)
		for j := int64(0); j < s.refcountBlockSize; j++ {
			if ownBlock && j == self {
				continue
			}
			if s.refcountAt(e.data, j) != 0 {
				unused = false
				break
			}
		}
		s.rcCache.put(e)
		if !unused {
			tmp[i] = s.reftable[i]
		}
	}
	raw := make([]byte, len(tmp)*8)
	for i, v := range tmp {
		binary.BigEndian.PutUint64(raw[i*8:], v)
	}
	err := s.pwriteSync(co, s.reftableOffset, raw)
	for i := range s.reftable {
		if s.reftable[i] != 0 && tmp[i] == 0 {
			if err == nil {
				err = s.discardRefcountBlock(co, int64(s.reftable[i]&refOffsetMask))
			}
			s.reftable[i] = 0
		}
	}
	if !s.cacheDiscards {
		s.processDiscards(co, err != nil)
	}
	return err
}

// discardRefcountBlock drops the refcount of a refcount block being
// removed from the table (qcow2_discard_refcount_block).
func (s *state) discardRefcountBlock(co *blk.Co, off int64) error {
	ci := off >> s.clusterBits
	ti := ci >> s.refcountBlockBits
	var rb int64
	if ti < int64(len(s.reftable)) {
		rb = int64(s.reftable[ti] & refOffsetMask)
	}
	if rb == 0 {
		return s.corrupt("Refblock at %#x is not covered by the refcount structures", off)
	}
	e, err := s.rcCache.get(co, rb, false)
	if err != nil {
		return err
	}
	bi := ci & (s.refcountBlockSize - 1)
	if rc := s.refcountAt(e.data, bi); rc != 1 {
		s.rcCache.put(e)
		return s.corrupt("Invalid refcount: refblock offset %#x, reftable index %d, block offset %#x, refcount %#x", rb, ti, off, rc)
	}
	s.setRefcountAt(e.data, bi, 0)
	s.rcCache.markDirty(e)
	s.rcCache.put(e)
	s.freeClusterIndex = min(s.freeClusterIndex, ci)
	if c := s.rcCache.lookup(off); c != nil {
		s.rcCache.discard(c)
	}
	s.queueDiscard(off, s.clusterSize)
	return nil
}
