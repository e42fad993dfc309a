package qcow2

import (
	"encoding/binary"
	"math/bits"

	"gio/blk"

	"golang.org/x/sys/unix"
)

// This file is the extended L2 entry part of QEMU's qcow2 (incompatible
// feature bit 4): 128-bit L2 entries whose second half is a bitmap of 32
// subclusters, allocation bits in the low word and zero bits in the high
// word. Without extended L2 entries the bitmap reads as 0 and a cluster
// is its only subcluster.

const (
	subclustersPerCluster = 32
	l2BitmapAllAlloc      = 1<<32 - 1
	l2BitmapAllZeroes     = l2BitmapAllAlloc << 32
)

// Subcluster types beyond clusterType's: an allocated cluster whose
// subcluster is not allocated (reads from the backing file), and an
// entry whose bitmap contradicts itself.
const (
	clusterUnallocAlloc clusterType = iota + 100
	clusterInvalid
)

// l2Entry and l2Bitmap read entry i of an L2 table; setL2Entry and
// setL2Bitmap write it. Tables without extended entries have no bitmap:
// it reads as 0 and cannot be set.
func (s *state) l2Entry(e *centry, i int64) uint64 {
	return binary.BigEndian.Uint64(e.data[i*s.l2EntrySize:])
}

func (s *state) setL2Entry(e *centry, i int64, v uint64) {
	binary.BigEndian.PutUint64(e.data[i*s.l2EntrySize:], v)
}

func (s *state) l2Bitmap(e *centry, i int64) uint64 {
	if !s.extL2 {
		return 0
	}
	return binary.BigEndian.Uint64(e.data[i*s.l2EntrySize+8:])
}

func (s *state) setL2Bitmap(e *centry, i int64, v uint64) {
	binary.BigEndian.PutUint64(e.data[i*s.l2EntrySize+8:], v)
}

// subAllocRange and subZeroRange are the bitmap bits of subclusters
// [from, to) (QCOW_OFLAG_SUB_ALLOC_RANGE, QCOW_OFLAG_SUB_ZERO_RANGE).
func subAllocRange(from, to int) uint64 { return (uint64(1)<<to - 1) &^ (uint64(1)<<from - 1) }
func subZeroRange(from, to int) uint64  { return subAllocRange(from, to) << 32 }

// scIndex is the index of offset's subcluster in its cluster.
func (s *state) scIndex(off int64) int {
	return int(s.offsetIntoCluster(off) >> s.subclusterBits)
}

// subclusterType is qcow2_get_subcluster_type.
func (s *state) subclusterType(entry, bitmap uint64, sc int) clusterType {
	ct := s.clusterType(entry)
	if !s.extL2 {
		return ct
	}
	switch ct {
	case clusterNormal:
		switch {
		case (bitmap>>32)&bitmap != 0:
			return clusterInvalid
		case bitmap&(1<<(sc+32)) != 0:
			return clusterZeroAlloc
		case bitmap&(1<<sc) != 0:
			return clusterNormal
		}
		return clusterUnallocAlloc
	case clusterUnallocated:
		switch {
		case bitmap&l2BitmapAllAlloc != 0:
			return clusterInvalid
		case bitmap&(1<<(sc+32)) != 0:
			return clusterZeroPlain
		}
		return clusterUnallocated
	}
	return ct
}

// subclusterRange returns the type of subcluster from and how many
// subclusters from there share it (qcow2_get_subcluster_range_type);
// 0 with clusterInvalid for a contradictory entry.
func (s *state) subclusterRange(entry, bitmap uint64, from int) (clusterType, int) {
	typ := s.subclusterType(entry, bitmap, from)
	spc := s.subclustersPerCluster()
	switch {
	case typ == clusterInvalid:
		return typ, 0
	case !s.extL2 || typ == clusterCompressed:
		return typ, spc - from
	}
	var n int
	switch typ {
	case clusterNormal:
		n = bits.TrailingZeros32(^uint32(bitmap | subAllocRange(0, from)))
	case clusterZeroPlain, clusterZeroAlloc:
		n = bits.TrailingZeros32(^uint32((bitmap | subZeroRange(0, from)) >> 32))
	default:
		n = bits.TrailingZeros32(uint32(((bitmap >> 32) | bitmap) &^ subAllocRange(0, from)))
	}
	return typ, n - from
}

func (s *state) subclustersPerCluster() int {
	if s.extL2 {
		return subclustersPerCluster
	}
	return 1
}

// countContiguousSub counts the subclusters from subcluster sc of entry
// l2i on that share its type (and, for allocated ones, lie contiguously),
// over at most n clusters (count_contiguous_subclusters). It returns the
// type, the count, and for an invalid entry the index of that entry.
func (s *state) countContiguousSub(e *centry, l2i, n int64, sc int) (clusterType, int64, int64) {
	var expectedType clusterType
	var expected uint64
	checkOffset := false
	var count int64
	for i := int64(0); i < n; i++ {
		first := 0
		if i == 0 {
			first = sc
		}
		entry := s.l2Entry(e, l2i+i)
		typ, k := s.subclusterRange(entry, s.l2Bitmap(e, l2i+i), first)
		if typ == clusterInvalid {
			return typ, 0, l2i + i
		}
		if i == 0 {
			if typ == clusterCompressed {
				return typ, int64(k), 0
			}
			expectedType = typ
			expected = entry & l2eOffsetMask
			checkOffset = typ == clusterNormal || typ == clusterZeroAlloc || typ == clusterUnallocAlloc
		} else if typ != expectedType {
			break
		} else if checkOffset {
			expected += uint64(s.clusterSize)
			if expected != entry&l2eOffsetMask {
				break
			}
		}
		count += int64(k)
		if first+k < s.subclustersPerCluster() {
			break
		}
	}
	return expectedType, count, 0
}

// isUnallocated reports whether a subcluster type has no data of this
// layer: the backing file (or zeroes) shows through.
func isUnallocated(t clusterType) bool {
	return t == clusterUnallocated || t == clusterUnallocAlloc
}

// zeroSubclusters makes subclusters [offset, offset+n) of one cluster
// read as zeroes, n fewer than a whole cluster (zero_l2_subclusters).
// Compressed clusters cannot be zeroed in part: ENOTSUP.
func (s *state) zeroSubclusters(co *blk.Co, offset, n int64) error {
	e, l2i, err := s.getClusterTable(co, offset)
	if err != nil {
		return err
	}
	defer s.l2Cache.put(e)
	if s.clusterType(s.l2Entry(e, l2i)) == clusterCompressed {
		return unix.ENOTSUP
	}
	sc := s.scIndex(offset)
	nsc := int((n + 1<<s.subclusterBits - 1) >> s.subclusterBits)
	old := s.l2Bitmap(e, l2i)
	v := (old | subZeroRange(sc, sc+nsc)) &^ subAllocRange(sc, sc+nsc)
	if v != old {
		s.setL2Bitmap(e, l2i, v)
		s.l2Cache.markDirty(e)
	}
	return nil
}

// setWrittenBitmap marks the subclusters an allocating write covered in
// cluster i of m as allocated and not zero (in
// qcow2_alloc_cluster_link_l2).
func (s *state) setWrittenBitmap(e *centry, l2i int64, m *l2meta, i int64) {
	from := max(m.cowStart.offset, i<<s.clusterBits)
	to := min(m.cowEnd.offset+m.cowEnd.nbBytes, (i+1)<<s.clusterBits)
	first := int((from - i<<s.clusterBits) >> s.subclusterBits)
	last := int((to - 1 - i<<s.clusterBits) >> s.subclusterBits)
	v := s.l2Bitmap(e, l2i+i)
	v |= subAllocRange(first, last+1)
	v &^= subZeroRange(first, last+1)
	s.setL2Bitmap(e, l2i+i, v)
}

// cowBounds is the subcluster part of calculate_l2_meta: where the COW
// before the write starts (from the cluster's start) given the type of
// the write's first subcluster, and where the COW after it ends given the
// type of its last one. keepOld says the cluster is written in place.
func (s *state) cowStartFrom(entry, bitmap uint64, sc int, keepOld bool) int64 {
	typ := s.subclusterType(entry, bitmap, sc)
	switch {
	case keepOld && typ == clusterNormal:
		return -1 // no COW: the caller uses the write's start
	case keepOld:
		return int64(sc) << s.subclusterBits
	case typ == clusterCompressed:
		return 0
	case typ == clusterNormal || typ == clusterZeroAlloc || typ == clusterUnallocAlloc:
		// Leading zero and unallocated subclusters need no copy.
		return int64(min(sc, bits.TrailingZeros32(uint32(bitmap)))) << s.subclusterBits
	}
	return int64(sc) << s.subclusterBits
}

func (s *state) cowEndTo(entry, bitmap uint64, sc int, keepOld bool, cowEndFrom int64) int64 {
	typ := s.subclusterType(entry, bitmap, sc)
	scSize := int64(1) << s.subclusterBits
	roundSC := (cowEndFrom + scSize - 1) &^ (scSize - 1)
	roundC := (cowEndFrom + s.clusterSize - 1) &^ (s.clusterSize - 1)
	switch {
	case keepOld && typ == clusterNormal:
		return cowEndFrom
	case keepOld:
		return roundSC
	case typ == clusterCompressed:
		return roundC
	case typ == clusterNormal || typ == clusterZeroAlloc || typ == clusterUnallocAlloc:
		// Trailing zero and unallocated subclusters need no copy.
		return roundC - int64(min(s.subclustersPerCluster()-sc-1, bits.LeadingZeros32(uint32(bitmap))))<<s.subclusterBits
	}
	return roundSC
}
