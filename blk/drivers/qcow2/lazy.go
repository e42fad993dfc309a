package qcow2

import (
	"encoding/binary"

	"gio/blk"
)

// Lazy refcounts (compat bit 0): with them on, the first allocating
// write sets the dirty bit in the header, and from then on refcount
// blocks are written only when the image is closed or marked clean, so
// a write costs no refcount I/O. A crash leaves the dirty bit set and
// refcounts that undercount; the next read/write open repairs them.

// needAccurateRefcounts says whether refcount blocks must reach the disk
// before the L2 entries that use their clusters
// (qcow2_need_accurate_refcounts).
func (s *state) needAccurateRefcounts() bool { return s.incompat&incompatDirty == 0 }

// markDirty sets the dirty bit on disk before the first L2 update that
// outruns the refcounts (qcow2_mark_dirty). Only the incompatible
// features field is rewritten.
func (s *state) markDirty(co *blk.Co) error {
	if s.incompat&incompatDirty != 0 {
		return nil
	}
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], s.incompat|incompatDirty)
	if err := s.pwriteSync(co, headerV2Len, b[:]); err != nil {
		return err
	}
	s.incompat |= incompatDirty
	return nil
}

// markClean writes every cached table, refcount blocks included, then
// the header without the dirty bit (qcow2_mark_clean).
func (s *state) markClean(co *blk.Co) error {
	if s.incompat&incompatDirty == 0 {
		return nil
	}
	s.incompat &^= incompatDirty
	if err := s.writeCaches(co); err != nil {
		return err
	}
	if err := s.file.Node.Flush(co); err != nil {
		return err
	}
	return s.updateHeader(co)
}
