package qcow2

import (
	"encoding/binary"
	"fmt"

	"gio/blk"
	"gio/internal/cvt"

	"golang.org/x/sys/unix"
)

// The snapshot table as the consistency check reads, checks and
// repairs it (qcow2-snapshot.c: qcow2_do_read_snapshots,
// qcow2_check_read_snapshot_table, qcow2_check_fix_snapshot_table,
// qcow2_write_snapshots). gio has no snapshot commands: the table is
// otherwise only read for the inactive overlap checks.

// snapshotL1 is one snapshot table entry (QCowSnapshot).
type snapshotL1 struct {
	l1Offset  int64
	l1Size    int64
	extraSize int64 // extra data size, after a repair's truncation
	id, name  string

	vmStateSize          uint64
	dateSec, dateNsec    uint32
	vmClockNsec          uint64
	diskSize, icount     uint64
	unknownExtra         []byte // extra data beyond the known 24 bytes
	idLen, nameLen, hdrs int64
}

// Snapshot table limits (QCOW_MAX_SNAPSHOT_EXTRA_DATA,
// QCOW_MAX_SNAPSHOTS_SIZE) and the extra data QEMU 7.2 knows
// (QCowSnapshotExtraData: vm_state_size_large, disk_size, icount).
const (
	maxSnapshotExtra     = 1024
	maxSnapshotTableSize = 1024 * maxSnapshots
	snapshotExtraKnown   = 24
)

// readSnapshots parses the snapshot table (qcow2_read_snapshots) and
// returns the entries and the table's size.
func (s *state) readSnapshots(co *blk.Co) ([]snapshotL1, int64, error) {
	sns, size, _, _, err := s.readSnapshotTable(co, false)
	return sns, size, err
}

// readSnapshotTable is qcow2_do_read_snapshots. With repair, entries
// with too much extra data keep 1024 bytes of it (dropped counts them),
// and a table too big loses its overhanging entries (reduced counts
// them, s.nbSnapshots shrinks); without, both are errors.
func (s *state) readSnapshotTable(co *blk.Co, repair bool) (sns []snapshotL1, size int64, reduced, dropped int, err error) {
	off := s.snapshotsOffset
	var tableLen int64
	readErr := func(err error) error { return blk.Errorf(blk.ErrnoOf(err), "Failed to read snapshot table") }
	read := func(n int64) ([]byte, error) {
		b := make([]byte, n)
		if err := s.file.Node.PRead(co, off, b, 0); err != nil {
			return nil, readErr(err)
		}
		off += n
		return b, nil
	}
	for i := int64(0); i < int64(s.nbSnapshots); i++ {
		pre := off
		tableLen = (tableLen + 7) &^ 7
		off = (off + 7) &^ 7
		hdr, err := read(snapshotHdrSize)
		if err != nil {
			return nil, 0, 0, 0, err
		}
		sn := snapshotL1{
			l1Offset:    int64(binary.BigEndian.Uint64(hdr)),
			l1Size:      int64(binary.BigEndian.Uint32(hdr[8:])),
			idLen:       int64(binary.BigEndian.Uint16(hdr[12:])),
			nameLen:     int64(binary.BigEndian.Uint16(hdr[14:])),
			dateSec:     binary.BigEndian.Uint32(hdr[16:]),
			dateNsec:    binary.BigEndian.Uint32(hdr[20:]),
			vmClockNsec: binary.BigEndian.Uint64(hdr[24:]),
			vmStateSize: uint64(binary.BigEndian.Uint32(hdr[32:])),
			extraSize:   int64(binary.BigEndian.Uint32(hdr[36:])),
		}
		truncate := false
		if sn.extraSize > maxSnapshotExtra {
			if !repair {
				return nil, 0, 0, 0, blk.Msgf(unix.EFBIG, "Too much extra metadata in snapshot table entry %d\nYou can force-remove this extra metadata with qemu-img check -r all", i)
			}
			fmt.Fprintf(s.stderr, "Discarding too much extra metadata in snapshot table entry %d (%d > %d)\n", i, sn.extraSize, maxSnapshotExtra)
			dropped++
			truncate = true
		}
		extra, err := read(min(snapshotExtraKnown, sn.extraSize))
		if err != nil {
			return nil, 0, 0, 0, err
		}
		extra = append(extra, make([]byte, snapshotExtraKnown-len(extra))...)
		if sn.extraSize >= 8 {
			sn.vmStateSize = binary.BigEndian.Uint64(extra)
		}
		sn.diskSize = uint64(s.size)
		if sn.extraSize >= 16 {
			sn.diskSize = binary.BigEndian.Uint64(extra[8:])
		}
		sn.icount = ^uint64(0)
		if sn.extraSize >= 24 {
			sn.icount = binary.BigEndian.Uint64(extra[16:])
		}
		if sn.extraSize > snapshotExtraKnown {
			end := off + sn.extraSize - snapshotExtraKnown
			if truncate {
				sn.extraSize = maxSnapshotExtra
			}
			if sn.unknownExtra, err = read(sn.extraSize - snapshotExtraKnown); err != nil {
				return nil, 0, 0, 0, err
			}
			off = end
		}
		names, err := read(sn.idLen + sn.nameLen)
		if err != nil {
			return nil, 0, 0, 0, err
		}
		sn.id, sn.name = cString(names[:sn.idLen]), cString(names[sn.idLen:])
		tableLen += snapshotHdrSize + sn.extraSize + sn.idLen + sn.nameLen
		if tableLen > maxSnapshotTableSize || off-s.snapshotsOffset > 1<<31-1 {
			left := int64(s.nbSnapshots) - i
			if !repair {
				return nil, 0, 0, 0, blk.Msgf(unix.EFBIG, "Snapshot table is too big\nYou can force-remove all %d overhanging snapshots with qemu-img check -r all", left)
			}
			fmt.Fprintf(s.stderr, "Discarding %d overhanging snapshots (snapshot table is too big)\n", left)
			reduced += int(left)
			s.nbSnapshots = uint32(i)
			off = pre
			break
		}
		sns = append(sns, sn)
	}
	return sns, off - s.snapshotsOffset, reduced, dropped, nil
}

// checkReadSnapshotTable is qcow2_check_read_snapshot_table: the open
// in check mode did not read the table, so it is validated and read
// here (repairing what -r all may), for the refcount check and for
// checkFixSnapshotTable.
func (s *state) checkReadSnapshotTable(co *blk.Co, res *checkResult, fix int) error {
	s.checkSnaps, s.checkSnapSize = nil, 0
	var ptr [12]byte
	if err := s.file.Node.PRead(co, 60, ptr[:], 0); err != nil {
		res.checkErrors++
		fmt.Fprintf(s.stderr, "ERROR failed to read the snapshot table pointer from the image header: %s\n", cvt.Strerror(blk.ErrnoOf(err)))
		return err
	}
	s.nbSnapshots = binary.BigEndian.Uint32(ptr[:])
	s.snapshotsOffset = int64(binary.BigEndian.Uint64(ptr[4:]))
	reduced := 0
	if s.nbSnapshots > maxSnapshots && fix&fixErrors != 0 {
		fmt.Fprintf(s.stderr, "Discarding %d overhanging snapshots\n", s.nbSnapshots-maxSnapshots)
		reduced += int(s.nbSnapshots - maxSnapshots)
		s.nbSnapshots = maxSnapshots
	}
	invalid := func(err error, prefix string) error {
		res.checkErrors++
		s.report(blk.Msgf(blk.ErrnoOf(err), "%s%s", prefix, checkErrText(err)))
		s.snapshotsOffset, s.nbSnapshots = 0, 0
		return err
	}
	if err := s.validateTable(uint64(s.snapshotsOffset), uint64(s.nbSnapshots), snapshotHdrSize, snapshotHdrSize*maxSnapshots, "snapshot table"); err != nil {
		if s.nbSnapshots > maxSnapshots {
			defer fmt.Fprintf(s.stderr, "You can force-remove all %d overhanging snapshots with qemu-img check -r all\n", s.nbSnapshots-maxSnapshots)
		}
		return invalid(err, "ERROR ")
	}
	sns, size, more, dropped, err := s.readSnapshotTable(co, fix&fixErrors != 0)
	if err != nil {
		return invalid(err, "ERROR failed to read the snapshot table: ")
	}
	reduced += more
	s.checkSnaps, s.checkSnapSize = sns, size
	res.corruptions += reduced + dropped
	if reduced > 0 {
		// The header must say so before the refcounts are checked
		// (the dropped entries' clusters are leaked, then repaired).
		var nb [4]byte
		binary.BigEndian.PutUint32(nb[:], s.nbSnapshots)
		if err := s.pwriteSync(co, 60, nb[:]); err != nil {
			res.checkErrors++
			fmt.Fprintf(s.stderr, "ERROR failed to update the snapshot count in the image header: %s\n", cvt.Strerror(blk.ErrnoOf(err)))
			return err
		}
		res.corruptionsFixed += reduced
		res.corruptions -= reduced
	}
	if s.version >= 3 {
		for i, sn := range sns {
			if sn.extraSize < 16 {
				res.corruptions++
				fmt.Fprintf(s.stderr, "%s snapshot table entry %d is incomplete\n", repairWord(fix&fixErrors != 0), i)
			}
		}
	}
	return nil
}

// checkFixSnapshotTable is qcow2_check_fix_snapshot_table: with -r all,
// the snapshot table's problems are repaired by writing it anew.
func (s *state) checkFixSnapshotTable(co *blk.Co, res *checkResult, fix int) error {
	if res.corruptions == 0 || fix&fixErrors == 0 {
		return nil
	}
	if err := s.writeSnapshots(co); err != nil {
		res.checkErrors++
		fmt.Fprintf(s.stderr, "ERROR failed to update snapshot table: %s\n", cvt.Strerror(blk.ErrnoOf(err)))
		return err
	}
	res.corruptionsFixed += res.corruptions
	res.corruptions = 0
	return nil
}

// writeSnapshots writes the snapshot table to new clusters, every entry
// with the extra data QEMU 7.2 knows, switches the header to it and
// frees the old one (qcow2_write_snapshots).
func (s *state) writeSnapshots(co *blk.Co) error {
	var size int64
	for _, sn := range s.checkSnaps {
		size = (size+7)&^7 + snapshotHdrSize + max(snapshotExtraKnown, sn.extraSize) + int64(len(sn.id)+len(sn.name))
		if size > maxSnapshotTableSize {
			return unix.EFBIG
		}
	}
	newOff, err := s.allocClusters(co, size)
	if err != nil {
		return err
	}
	fail := func(err error) error {
		s.freeClusters(co, newOff, size, discardAlways)
		return err
	}
	flush := func() error {
		if err := s.writeCaches(co); err != nil {
			return err
		}
		return s.file.Node.Flush(co)
	}
	if err := flush(); err != nil {
		return fail(err)
	}
	if err := s.overlapCheck(0, newOff, size); err != nil {
		return fail(err)
	}
	// Piece by piece, as QEMU writes them: the padding between
	// entries keeps what the clusters held.
	off := newOff
	put := func(b []byte) error {
		err := s.file.Node.PWrite(co, off, b, 0)
		off += int64(len(b))
		return err
	}
	for _, sn := range s.checkSnaps {
		off = (off + 7) &^ 7
		h := make([]byte, snapshotHdrSize)
		binary.BigEndian.PutUint64(h, uint64(sn.l1Offset))
		binary.BigEndian.PutUint32(h[8:], uint32(sn.l1Size))
		binary.BigEndian.PutUint16(h[12:], uint16(len(sn.id)))
		binary.BigEndian.PutUint16(h[14:], uint16(len(sn.name)))
		binary.BigEndian.PutUint32(h[16:], sn.dateSec)
		binary.BigEndian.PutUint32(h[20:], sn.dateNsec)
		binary.BigEndian.PutUint64(h[24:], sn.vmClockNsec)
		if sn.vmStateSize <= 0xffffffff {
			binary.BigEndian.PutUint32(h[32:], uint32(sn.vmStateSize))
		}
		binary.BigEndian.PutUint32(h[36:], uint32(max(snapshotExtraKnown, sn.extraSize)))
		extra := make([]byte, snapshotExtraKnown)
		binary.BigEndian.PutUint64(extra, sn.vmStateSize)
		binary.BigEndian.PutUint64(extra[8:], sn.diskSize)
		binary.BigEndian.PutUint64(extra[16:], sn.icount)
		for _, b := range [][]byte{h, extra, sn.unknownExtra, []byte(sn.id), []byte(sn.name)} {
			if len(b) == 0 {
				continue
			}
			if err := put(b); err != nil {
				return fail(err)
			}
		}
	}
	if err := flush(); err != nil {
		return fail(err)
	}
	var ptr [12]byte
	binary.BigEndian.PutUint32(ptr[:], s.nbSnapshots)
	binary.BigEndian.PutUint64(ptr[4:], uint64(newOff))
	if err := s.pwriteSync(co, 60, ptr[:]); err != nil {
		return fail(err)
	}
	s.freeClusters(co, s.snapshotsOffset, s.checkSnapSize, discardSnapshot)
	s.snapshotsOffset, s.checkSnapSize = newOff, size
	s.inactiveLoaded = false
	return nil
}
