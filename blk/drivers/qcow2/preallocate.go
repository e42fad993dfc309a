package qcow2

import (
	"math"

	"gio/blk"

	"golang.org/x/sys/unix"
)

// Preallocation of the area a resize adds (qcow2_co_truncate's modes):
//   - off: nothing, but an external data file is resized with the image;
//   - metadata: L2 entries for the whole area, pointing to clusters
//     allocated at the end of the file (or at the guest offset in an
//     external data file), which then reads as zeroes (preallocate_co);
//   - falloc, full: the same, with the clusters laid out in one run after
//     new refcount structures that cover them, and the file extended by
//     the protocol with that mode (fallocate, or zeroes written).

// preallocateArea applies prealloc to [old, size) after the L1 table has
// been resized; it reports whether the new area still needs zeroing
// (zeroFill: false once the file has zeroed it).
func (s *state) preallocateArea(co *blk.Co, old, size int64, zeroFill bool, prealloc blk.Prealloc, exact bool) (bool, error) {
	switch prealloc {
	case blk.PreallocOff:
		if s.hasDataFile() {
			return zeroFill, s.data.Node.Truncate(co, size, exact, blk.PreallocOff)
		}
		return zeroFill, nil
	case blk.PreallocMetadata:
		return zeroFill, s.preallocateCo(co, old, size, prealloc)
	}
	if s.hasDataFile() {
		return zeroFill, s.preallocateCo(co, old, size, prealloc)
	}
	return s.preallocateFile(co, old, size, zeroFill, prealloc)
}

// preallocateCo is preallocate_co: allocate every cluster of [offset,
// newLength) as a write would, without writing data, then make the file
// long enough to hold the last one.
func (s *state) preallocateCo(co *blk.Co, offset, newLength int64, mode blk.Prealloc) error {
	bytes := newLength - offset
	var host, cur int64
	for bytes > 0 {
		cur = min(bytes, math.MaxInt32&^(s.clusterSize-1))
		h, m, err := s.allocHostOffset(co, offset, &cur)
		if err != nil {
			_ = s.handleL2Meta(co, &m, false)
			return blk.Errorf(blk.ErrnoOf(err), "Allocating clusters failed")
		}
		host = h
		for p := m; p != nil; p = p.next {
			p.prealloc = true
		}
		if err := s.handleL2Meta(co, &m, true); err != nil {
			_ = s.handleL2Meta(co, &m, false)
			return blk.Errorf(blk.ErrnoOf(err), "Mapping clusters failed")
		}
		bytes -= cur
		offset += cur
	}
	flen, err := s.data.Node.Length(co)
	if err != nil {
		return blk.Errorf(blk.ErrnoOf(err), "Could not get file size")
	}
	if host+cur > flen {
		if mode == blk.PreallocMetadata {
			mode = blk.PreallocOff
		}
		return s.data.Node.Truncate(co, host+cur, false, mode)
	}
	return nil
}

// preallocateFile is the falloc and full case of qcow2_co_truncate
// without a data file: new refcount structures at the end of the used
// file, covering the data clusters that follow them, the file extended
// over those by the protocol, and the L2 entries pointing there.
func (s *state) preallocateFile(co *blk.Co, old, size int64, zeroFill bool, prealloc blk.Prealloc) (bool, error) {
	flen, err := s.file.Node.Length(co)
	if err != nil {
		return zeroFill, blk.Errorf(blk.ErrnoOf(err), "Failed to inquire current file length")
	}
	if last, err := s.getLastCluster(co, flen); err == nil {
		flen = (last + 1) * s.clusterSize
	} else {
		flen = (flen + s.clusterSize - 1) &^ (s.clusterSize - 1)
	}
	nbData := (((size + s.clusterSize - 1) &^ (s.clusterSize - 1)) - s.startOfCluster(old)) >> s.clusterBits
	// An overestimate: enough room in the refcount structures that the
	// L2 tables entered below need no new refcount block.
	perL2 := s.clusterSize / s.l2EntrySize
	nbL2 := (nbData+perL2-1)/perL2 + 1
	start, err := s.refcountArea(co, flen, nbData+nbL2, true, 0, 0)
	if err != nil {
		return zeroFill, blk.Errorf(blk.ErrnoOf(err), "Failed to resize refcount structures")
	}
	n, err := s.allocClustersAt(co, start, nbData)
	if err != nil {
		return zeroFill, blk.Errorf(blk.ErrnoOf(err), "Failed to allocate data clusters")
	}
	if n != nbData {
		return zeroFill, blk.Msgf(unix.EIO, "Failed to allocate data clusters")
	}
	newFileSize := start + nbData*s.clusterSize
	// A regular file reads as zeroes where it grows, which is the zeroing
	// a resize over a shorter backing file needs; the clusters must then
	// read as written, not fall through to the backing file.
	needAlloc := false
	if err := s.file.Node.Truncate(co, newFileSize, false, prealloc); err != nil {
		s.freeClusters(co, start, nbData*s.clusterSize, discardOther)
		return zeroFill, blk.PrefixError("Failed to resize underlying file: ", err)
	}
	if zeroFill {
		zeroFill, needAlloc = false, true
	}
	host, guest := start, old
	for left := nbData; left > 0; {
		k := min(left, s.l2Size-s.l2Index(guest))
		cowStart := s.offsetIntoCluster(guest)
		guest = s.startOfCluster(guest)
		m := &l2meta{offset: guest, allocOffset: host, nbClusters: k,
			cowStart: cowRegion{0, cowStart}, cowEnd: cowRegion{k << s.clusterBits, 0}, prealloc: !needAlloc}
		if err := s.linkL2(co, m); err != nil {
			s.freeClusters(co, host, left*s.clusterSize, discardOther)
			return zeroFill, blk.Errorf(blk.ErrnoOf(err), "Failed to update L2 tables")
		}
		guest += k << s.clusterBits
		host += k << s.clusterBits
		left -= k
	}
	return zeroFill, nil
}

// detectMetadataPreallocation is qcow2_detect_metadata_preallocation:
// an image whose refcounted clusters clearly outnumber those taking
// space in the file was preallocated, and its block status then asks
// the file whether data clusters read as zeroes. Any error means no.
func (s *state) detectMetadataPreallocation(co *blk.Co) bool {
	flen, err := s.file.Node.Length(co)
	if err != nil {
		return false
	}
	real, err := s.file.Node.AllocatedFileSize()
	if err != nil {
		return false
	}
	realClusters := real / s.clusterSize
	threshold := max(realClusters*10/9, realClusters+2)
	var count int64
	for i := int64(0); i < s.sizeToClusters(flen) && count < threshold; i++ {
		rc, err := s.getRefcount(co, i)
		if err != nil {
			return false
		}
		if rc != 0 {
			count++
		}
	}
	return count >= threshold
}
