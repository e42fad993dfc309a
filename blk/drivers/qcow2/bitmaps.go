package qcow2

import (
	"encoding/binary"
	"fmt"

	"gio/blk"
)

// Persistent dirty bitmaps (the bitmaps extension, autoclear bit 0). gio
// does not track writes in bitmaps: it keeps the extension and the
// bitmaps' clusters as they are, reports the bitmaps in info, and a
// read/write open clears the autoclear bit, which tells QEMU that a
// program lacking bitmap support has modified the image (the bitmaps are
// then inconsistent, as the specification wants).

const (
	bitmapInUse      = 1 << 0
	bitmapAuto       = 1 << 1
	bitmapEntrySize  = 24
	maxBitmapDirSize = 64 << 20
)

// bitmapInfo is what info shows of one bitmap.
type bitmapInfo struct {
	name        string
	flags       uint32
	granularity uint64
}

// readBitmaps reads the bitmap directory the extension points to. A
// directory gio cannot read leaves the list empty: the bitmaps are kept,
// just not shown.
func (s *state) readBitmaps(co *blk.Co, ext []byte) []bitmapInfo {
	if len(ext) < 24 {
		return nil
	}
	nb := binary.BigEndian.Uint32(ext)
	size := binary.BigEndian.Uint64(ext[8:])
	off := int64(binary.BigEndian.Uint64(ext[16:]))
	if nb == 0 || size > maxBitmapDirSize || off <= 0 || s.offsetIntoCluster(off) != 0 {
		return nil
	}
	dir := make([]byte, size)
	if err := s.file.Node.PRead(co, off, dir, 0); err != nil {
		return nil
	}
	var out []bitmapInfo
	for i := uint32(0); i < nb; i++ {
		if len(dir) < bitmapEntrySize {
			return nil
		}
		flags := binary.BigEndian.Uint32(dir[12:])
		gran := dir[17]
		nameLen := int(binary.BigEndian.Uint16(dir[18:]))
		extra := int(binary.BigEndian.Uint32(dir[20:]))
		end := bitmapEntrySize + extra + nameLen
		if end > len(dir) || gran > 63 {
			return nil
		}
		out = append(out, bitmapInfo{string(dir[bitmapEntrySize+extra : end]), flags, 1 << gran})
		dir = dir[min(len(dir), (end+7)&^7):]
	}
	return out
}

// bitmapLines is the "bitmaps:" part of info (qcow2_get_bitmap_info_list),
// shown while the bitmaps are valid.
func (s *state) bitmapLines() []string {
	if s.autoclear&autoclearBitmaps == 0 || len(s.bitmaps) == 0 {
		return nil
	}
	lines := []string{"bitmaps:"}
	for i, b := range s.bitmaps {
		lines = append(lines, fmt.Sprintf("    [%d]:", i), "        flags:")
		n := 0
		for _, f := range []struct {
			bit  uint32
			name string
		}{{bitmapInUse, "in-use"}, {bitmapAuto, "auto"}} {
			if b.flags&f.bit != 0 {
				lines = append(lines, fmt.Sprintf("            [%d]: %s", n, f.name))
				n++
			}
		}
		lines = append(lines, "        name: "+b.name, fmt.Sprintf("        granularity: %d", b.granularity))
	}
	return lines
}
