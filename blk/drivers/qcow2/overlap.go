package qcow2

import (
	"encoding/binary"

	"gio/blk"
)

// Metadata overlap checks (qcow2_check_metadata_overlap with QEMU's
// default "cached" template): before data or metadata is written, the
// range is checked against the header, the active L1 table, the L2
// tables it points to, the refcount table and the refcount blocks. A hit
// means the refcounts are corrupt: the write is refused and the image
// marked broken instead of being damaged further.

type olType int

const (
	olMainHeader olType = 1 << iota
	olActiveL1
	olActiveL2
	olRefcountTable
	olRefcountBlock
	olSnapshotTable
	// Checked by overlapsInactive and overlapCheck.
	olInactiveL1
	olInactiveL2
	olBitmapDirectory
)

var olNames = map[olType]string{
	olMainHeader:      "qcow2_header",
	olActiveL1:        "active L1 table",
	olActiveL2:        "active L2 table",
	olRefcountTable:   "refcount table",
	olRefcountBlock:   "refcount block",
	olSnapshotTable:   "snapshot table",
	olInactiveL1:      "inactive L1 table",
	olInactiveL2:      "inactive L2 table",
	olBitmapDirectory: "bitmap directory",
}

// hitsRegion says whether [offset, offset+size), widened to whole
// clusters, meets [o, o+l).
func (s *state) hitsRegion(offset, size, o, l int64) bool {
	if size <= 0 || l <= 0 {
		return false
	}
	size = (s.offsetIntoCluster(offset) + size + s.clusterSize - 1) &^ (s.clusterSize - 1)
	offset = s.startOfCluster(offset)
	return offset < o+l && o < offset+size
}

// overlaps returns the first kind of metadata [offset, offset+size)
// overlaps, 0 for none; kinds in ignore are not checked.
func (s *state) overlaps(ignore olType, offset, size int64) olType {
	ignore |= ^s.opts.overlap
	if size <= 0 {
		return 0
	}
	size = (s.offsetIntoCluster(offset) + size + s.clusterSize - 1) &^ (s.clusterSize - 1)
	offset = s.startOfCluster(offset)
	hit := func(o, l int64) bool { return l > 0 && offset < o+l && o < offset+size }
	if ignore&olMainHeader == 0 && offset < s.clusterSize {
		return olMainHeader
	}
	if ignore&olActiveL1 == 0 && hit(s.l1Offset, int64(len(s.l1))*8) {
		return olActiveL1
	}
	if ignore&olRefcountTable == 0 && hit(s.reftableOffset, int64(len(s.reftable))*8) {
		return olRefcountTable
	}
	if ignore&olSnapshotTable == 0 && s.nbSnapshots > 0 && hit(s.snapshotsOffset, int64(s.nbSnapshots)*snapshotHdrSize) {
		return olSnapshotTable
	}
	if ignore&olActiveL2 == 0 {
		for _, e := range s.l1 {
			if o := int64(e & l1eOffsetMask); o != 0 && hit(o, s.clusterSize) {
				return olActiveL2
			}
		}
	}
	if ignore&olRefcountBlock == 0 {
		for i := int64(0); i <= s.maxReftableIdx && i < int64(len(s.reftable)); i++ {
			if o := int64(s.reftable[i] & refOffsetMask); o != 0 && hit(o, s.clusterSize) {
				return olRefcountBlock
			}
		}
	}
	return 0
}

// overlapCheck refuses a write that would hit metadata
// (qcow2_pre_write_overlap_check). A snapshot whose L1 table cannot be
// valid fails the check with its own error, without corruption.
func (s *state) overlapCheck(ignore olType, offset, size int64) error {
	t := s.overlaps(ignore, offset, size)
	if t == 0 {
		var err error
		if t, err = s.overlapsInactive(ignore, offset, size); err != nil {
			return err
		}
	}
	if t == 0 && ignore&olBitmapDirectory == 0 && s.opts.overlap&olBitmapDirectory != 0 &&
		s.autoclear&autoclearBitmaps != 0 && s.bitmapDirSize > 0 {
		if s.hitsRegion(offset, size, s.bitmapDirOffset, s.bitmapDirSize) {
			t = olBitmapDirectory
		}
	}
	if t != 0 {
		return s.corrupt("Preventing invalid write on metadata (overlaps with %s)", olNames[t])
	}
	return nil
}

// inactiveTables are the snapshots' L1 tables and the L2 tables they
// point to, for the inactive-l1 and inactive-l2 overlap checks. gio
// never changes snapshots, so they are read once, when a check that
// needs them is enabled.
type inactiveTable struct {
	l1Offset, l1Size int64
	err              error   // the L1 table is invalid (qcow2_validate_table)
	l2               []int64 // L2 table offsets, once loaded
}

// loadInactive reads the snapshot table and, when the inactive-l2 check
// is on, the snapshots' L1 tables. A snapshot table gio cannot parse
// leaves the checks without snapshots.
func (s *state) loadInactive(co *blk.Co) {
	if s.nbSnapshots == 0 || s.opts.overlap&(olInactiveL1|olInactiveL2) == 0 || s.inactiveLoaded {
		return
	}
	sns, _, err := s.readSnapshots(co)
	if err != nil {
		return
	}
	s.inactive = nil
	for _, sn := range sns {
		it := inactiveTable{l1Offset: sn.l1Offset, l1Size: sn.l1Size}
		if err := s.validateTable(uint64(sn.l1Offset), uint64(sn.l1Size), 8, maxL1Bytes, ""); err != nil {
			it.err = blk.ErrnoOf(err)
		} else if sn.l1Size > 0 {
			raw := make([]byte, sn.l1Size*8)
			if err := s.file.Node.PRead(co, sn.l1Offset, raw, 0); err != nil {
				it.err = err
			}
			for j := int64(0); j < sn.l1Size; j++ {
				if o := int64(binary.BigEndian.Uint64(raw[j*8:]) & l1eOffsetMask); o != 0 {
					it.l2 = append(it.l2, o)
				}
			}
		}
		s.inactive = append(s.inactive, it)
	}
	s.inactiveLoaded = true
}

// overlapsInactive is the inactive-l1 and inactive-l2 part of
// qcow2_check_metadata_overlap.
func (s *state) overlapsInactive(ignore olType, offset, size int64) (olType, error) {
	chk := s.opts.overlap &^ ignore
	if size <= 0 || chk&(olInactiveL1|olInactiveL2) == 0 {
		return 0, nil
	}
	size = (s.offsetIntoCluster(offset) + size + s.clusterSize - 1) &^ (s.clusterSize - 1)
	offset = s.startOfCluster(offset)
	hit := func(o, l int64) bool { return l > 0 && offset < o+l && o < offset+size }
	if chk&olInactiveL1 != 0 {
		for _, it := range s.inactive {
			if hit(it.l1Offset, it.l1Size*8) {
				return olInactiveL1, nil
			}
		}
	}
	if chk&olInactiveL2 != 0 {
		for _, it := range s.inactive {
			if it.err != nil {
				return 0, it.err
			}
			for _, o := range it.l2 {
				if hit(o, s.clusterSize) {
					return olInactiveL2, nil
				}
			}
		}
	}
	return 0, nil
}
