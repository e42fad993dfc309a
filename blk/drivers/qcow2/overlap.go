package qcow2

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
	// Not tracked by gio (no inactive tables or bitmap directory are
	// loaded), but part of the overlap-check options.
	olInactiveL1
	olInactiveL2
	olBitmapDirectory
)

var olNames = map[olType]string{
	olMainHeader:    "qcow2_header",
	olActiveL1:      "active L1 table",
	olActiveL2:      "active L2 table",
	olRefcountTable: "refcount table",
	olRefcountBlock: "refcount block",
	olSnapshotTable: "snapshot table",
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
// (qcow2_pre_write_overlap_check).
func (s *state) overlapCheck(ignore olType, offset, size int64) error {
	if t := s.overlaps(ignore, offset, size); t != 0 {
		return s.corrupt("Preventing invalid write on metadata (overlaps with %s)", olNames[t])
	}
	return nil
}
