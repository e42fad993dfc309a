package qcow2

import (
	"encoding/binary"
	"errors"
	"fmt"

	"gio/blk"
	"gio/internal/cvt"

	"golang.org/x/sys/unix"
)

// Persistent dirty bitmaps (the bitmaps extension, autoclear bit 0),
// after QEMU's block/qcow2-bitmap.c. A read/write open loads every
// bitmap and marks it in use in the bitmap directory; writes, zero writes
// and discards set its bits (blk calls SetDirty); close stores each
// bitmap in new clusters, writes a new directory, points the header at
// it, clears the in-use flags and only then frees the old clusters, so a
// crash at any point leaks clusters but never leaves a bitmap that
// claims to be consistent and is not. A bitmap found in use at open was
// not stored by its last writer: it is inconsistent, neither tracked nor
// stored. A read-only open loads the bitmaps read-only; reopening
// read-only stores them, reopening read/write marks them in use again.

const (
	bmeInUse         = 1 << 0
	bmeAuto          = 1 << 1
	bmeReservedFlags = 0xfffffffc
	bmeMaxTableSize  = 0x8000000
	bmeMaxPhysSize   = 0x20000000
	bmeMaxGranBits   = 31
	bmeMinGranBits   = 9
	bmeMaxNameSize   = 1023
	bmeEntryReserved = 0xff000000000001fe
	bmeEntryOffset   = 0x00fffffffffffe00
	bmeEntryAllOnes  = 1
	bmeDirEntrySize  = 24
	btDirtyTracking  = 1
	maxBitmaps       = 65535
	maxBitmapDirSize = 1024 * maxBitmaps
	bitmapsExtSize   = 24
)

// bitmapEntry is one entry of the bitmap directory (Qcow2Bitmap).
type bitmapEntry struct {
	tableOffset int64
	tableSize   uint32 // 64-bit entries
	flags       uint32
	granBits    uint8
	name        string
	dirty       *dirtyBitmap // the bitmap to store here, if any
}

// calcEntrySize is the size of a directory entry, padded to 8 bytes.
func calcEntrySize(nameLen int) int64 { return (bmeDirEntrySize + int64(nameLen) + 7) &^ 7 }

// bitmapsExt reads the bitmaps extension (qcow2_read_extensions). An
// extension without the autoclear bit was left by a program that
// modified the image without updating the bitmaps: it is dropped, with
// QEMU's warning, and the header is rewritten on a read/write open.
func (s *state) bitmapsExt(data []byte, updateHeader *bool) error {
	if len(data) != bitmapsExtSize {
		return blk.Msgf(unix.EINVAL, "bitmaps_ext: Invalid extension length")
	}
	if s.autoclear&autoclearBitmaps == 0 {
		if s.version < 3 {
			s.warnf("warning: This qcow2 v2 image contains bitmaps, but they may have been modified by a program without persistent bitmap support; so now they must all be considered inconsistent")
		} else {
			s.warnf("warning: a program lacking bitmap support modified this file, so all bitmaps are now considered inconsistent")
		}
		fmt.Fprint(s.stderr, "Some clusters may be leaked, run 'qemu-img check -r' on the image file to fix.")
		*updateHeader = true
		return nil
	}
	nb := binary.BigEndian.Uint32(data)
	if binary.BigEndian.Uint32(data[4:]) != 0 {
		return blk.Msgf(unix.EINVAL, "bitmaps_ext: Reserved field is not zero")
	}
	size := binary.BigEndian.Uint64(data[8:])
	off := binary.BigEndian.Uint64(data[16:])
	if nb > maxBitmaps {
		return blk.Msgf(unix.EINVAL, "bitmaps_ext: Image has %d bitmaps, exceeding the QEMU supported maximum of %d", nb, maxBitmaps)
	}
	if nb == 0 {
		return blk.Msgf(unix.EINVAL, "found bitmaps extension with zero bitmaps")
	}
	if off&uint64(s.clusterSize-1) != 0 {
		return blk.Msgf(unix.EINVAL, "bitmaps_ext: invalid bitmap directory offset")
	}
	if size > maxBitmapDirSize {
		return blk.Msgf(unix.EINVAL, "bitmaps_ext: bitmap directory size (%d) exceeds the maximum supported size (%d)", size, maxBitmapDirSize)
	}
	s.nbBitmaps = nb
	s.bitmapDirOffset = int64(off)
	s.bitmapDirSize = int64(size)
	return nil
}

// checkDirEntry is check_dir_entry.
func (s *state) checkDirEntry(tableOffset int64, tableSize, flags uint32, typ, granBits uint8, nameLen int) bool {
	if tableSize == 0 || tableOffset == 0 || s.offsetIntoCluster(tableOffset) != 0 ||
		tableSize > bmeMaxTableSize || granBits > bmeMaxGranBits || granBits < bmeMinGranBits ||
		flags&bmeReservedFlags != 0 || nameLen > bmeMaxNameSize || typ != btDirtyTracking {
		return false
	}
	phys := uint64(tableSize) * uint64(s.clusterSize)
	if phys > bmeMaxPhysSize {
		return false
	}
	// A valid bitmap must cover the image; an in-use one may be stale
	// (not stored after a resize).
	return flags&bmeInUse != 0 || uint64(s.size) <= (phys*8)<<granBits
}

// bitmapListLoad reads and checks the bitmap directory (bitmap_list_load).
func (s *state) bitmapListLoad(co *blk.Co) ([]*bitmapEntry, error) {
	size := s.bitmapDirSize
	if size == 0 {
		return nil, blk.Msgf(unix.EINVAL, "Requested bitmap directory size is zero")
	}
	if size > maxBitmapDirSize {
		return nil, blk.Msgf(unix.EINVAL, "Requested bitmap directory size is too big")
	}
	dir := make([]byte, size)
	if err := s.file.Node.PRead(co, s.bitmapDirOffset, dir, 0); err != nil {
		return nil, blk.Errorf(blk.ErrnoOf(err), "Failed to read bitmap directory")
	}
	var list []*bitmapEntry
	broken := blk.Msgf(unix.EINVAL, "Broken bitmap directory")
	pos := int64(0)
	for pos < size {
		if pos+bmeDirEntrySize > size {
			return nil, broken
		}
		if uint32(len(list)+1) > s.nbBitmaps {
			return nil, blk.Msgf(unix.EINVAL, "More bitmaps found than specified in header extension")
		}
		e := dir[pos:]
		tableOffset := int64(binary.BigEndian.Uint64(e))
		tableSize := binary.BigEndian.Uint32(e[8:])
		flags := binary.BigEndian.Uint32(e[12:])
		typ, gran := e[16], e[17]
		nameLen := int(binary.BigEndian.Uint16(e[18:]))
		extra := int64(binary.BigEndian.Uint32(e[20:]))
		next := pos + ((bmeDirEntrySize + int64(nameLen) + extra + 7) &^ 7)
		if next > size {
			return nil, broken
		}
		name := string(e[bmeDirEntrySize+extra : bmeDirEntrySize+extra+int64(nameLen)])
		if extra != 0 {
			return nil, blk.Msgf(unix.EINVAL, "Bitmap extra data is not supported")
		}
		if !s.checkDirEntry(tableOffset, tableSize, flags, typ, gran, nameLen) {
			return nil, blk.Msgf(unix.EINVAL, "Bitmap '%s' doesn't satisfy the constraints", name)
		}
		list = append(list, &bitmapEntry{tableOffset: tableOffset, tableSize: tableSize, flags: flags, granBits: gran, name: name})
		pos = next
	}
	if uint32(len(list)) != s.nbBitmaps {
		return nil, blk.Msgf(unix.EINVAL, "Less bitmaps found than specified in header extension")
	}
	return list, nil
}

// bitmapTableLoad reads a bitmap table and checks its entries
// (bitmap_table_load).
func (s *state) bitmapTableLoad(co *blk.Co, offset int64, size uint32) ([]uint64, error) {
	raw := make([]byte, int64(size)*8)
	if err := s.file.Node.PRead(co, offset, raw, 0); err != nil {
		return nil, err
	}
	tb := make([]uint64, size)
	for i := range tb {
		tb[i] = binary.BigEndian.Uint64(raw[i*8:])
		if !s.tableEntryValid(tb[i]) {
			return nil, unix.EINVAL
		}
	}
	return tb, nil
}

// tableEntryValid is check_table_entry.
func (s *state) tableEntryValid(e uint64) bool {
	if e&bmeEntryReserved != 0 {
		return false
	}
	if off := e & bmeEntryOffset; off != 0 {
		return e&bmeEntryAllOnes == 0 && off%uint64(s.clusterSize) == 0
	}
	return true
}

// bitmapTableClusters is how many clusters a bitmap over the image takes:
// its bits in whole 64-bit words, in clusters.
func (s *state) bitmapTableClusters(b *dirtyBitmap) int64 {
	words := (b.nbits() + 63) / 64
	return s.sizeToClusters(words * 8)
}

// loadBitmap creates the in-memory bitmap of a directory entry and reads
// its data unless it is in use (load_bitmap, load_bitmap_data).
func (s *state) loadBitmap(co *blk.Co, bm *bitmapEntry) (*dirtyBitmap, error) {
	for _, b := range s.dirtyBitmaps {
		if b.name == bm.name {
			return nil, blk.Msgf(unix.EINVAL, "Bitmap already exists: %s", bm.name)
		}
	}
	b := newDirtyBitmap(bm.name, uint(bm.granBits), s.size)
	if bm.flags&bmeInUse != 0 {
		return b, nil // its data is unusable
	}
	tb, err := s.bitmapTableLoad(co, bm.tableOffset, bm.tableSize)
	if err != nil {
		return nil, blk.Errorf(blk.ErrnoOf(err), "Could not read bitmap_table table from image for bitmap '%s'", bm.name)
	}
	n := s.bitmapTableClusters(b)
	if n != int64(bm.tableSize) || n > bmeMaxTableSize {
		return nil, blk.Errorf(unix.EINVAL, "Could not read bitmap '%s' from image", bm.name)
	}
	perCluster := s.clusterSize * 8 // bits
	buf := make([]byte, s.clusterSize)
	for i, e := range tb {
		first := int64(i) * perCluster
		count := min(b.nbits()-first, perCluster)
		off := int64(e & bmeEntryOffset)
		switch {
		case off == 0 && e&bmeEntryAllOnes != 0:
			b.setBits(first, first+count-1)
		case off == 0:
		default:
			if err := s.file.Node.PRead(co, off, buf, 0); err != nil {
				return nil, blk.Errorf(blk.ErrnoOf(err), "Could not read bitmap '%s' from image", bm.name)
			}
			b.deserialize(buf, first, count)
		}
	}
	return b, nil
}

// loadBitmaps loads the bitmaps at open (qcow2_load_dirty_bitmaps) and,
// on a writable image, marks them in use in the directory, which
// rewrites the header; headerUpdated says so.
func (s *state) loadBitmaps(co *blk.Co) (headerUpdated bool, err error) {
	if s.nbBitmaps == 0 {
		return false, nil
	}
	list, err := s.bitmapListLoad(co)
	if err != nil {
		return false, err
	}
	s.setBitmapDir(list)
	var created []*dirtyBitmap
	release := func() {
		s.dirtyBitmaps = s.dirtyBitmaps[:len(s.dirtyBitmaps)-len(created)]
	}
	needsUpdate := false
	for _, bm := range list {
		if bm.flags&bmeInUse != 0 && s.findDirtyBitmap(bm.name) != nil {
			continue // already ours (in use by us)
		}
		b, err := s.loadBitmap(co, bm)
		if err != nil {
			release()
			return false, err
		}
		if bm.flags&bmeInUse != 0 {
			b.inconsistent, b.disabled = true, true
		} else {
			bm.flags |= bmeInUse
			needsUpdate = true
		}
		if bm.flags&bmeAuto == 0 {
			b.disabled = true
		}
		s.dirtyBitmaps = append(s.dirtyBitmaps, b)
		created = append(created, b)
	}
	if needsUpdate && !s.readOnly {
		if err := s.updateBitmapDirInPlace(co, list); err != nil {
			release()
			return false, blk.Errorf(blk.ErrnoOf(err), "Can't update bitmap directory")
		}
		headerUpdated = true
	}
	if s.readOnly {
		for _, b := range created {
			b.readonly = true
		}
	}
	return headerUpdated, nil
}

// setBitmapDir records the directory as it now is on disk, for info.
func (s *state) setBitmapDir(list []*bitmapEntry) {
	s.bitmapDir = make([]*bitmapEntry, len(list))
	for i, bm := range list {
		c := *bm
		c.dirty = nil
		s.bitmapDir[i] = &c
	}
}

func (s *state) findDirtyBitmap(name string) *dirtyBitmap {
	for _, b := range s.dirtyBitmaps {
		if b.name == name {
			return b
		}
	}
	return nil
}

func findBitmapEntry(list []*bitmapEntry, name string) *bitmapEntry {
	for _, bm := range list {
		if bm.name == name {
			return bm
		}
	}
	return nil
}

// updateHeaderSync writes the header and flushes the file.
func (s *state) updateHeaderSync(co *blk.Co) error {
	if err := s.updateHeader(co); err != nil {
		return err
	}
	return s.file.Node.Flush(co)
}

// updateBitmapDirInPlace rewrites the directory where it is, with the
// autoclear bit off meanwhile: a crash in between leaves bitmaps that
// QEMU considers inconsistent, never wrong ones
// (update_ext_header_and_dir_in_place).
func (s *state) updateBitmapDirInPlace(co *blk.Co, list []*bitmapEntry) error {
	if s.autoclear&autoclearBitmaps == 0 || len(list) == 0 || uint32(len(list)) != s.nbBitmaps {
		return unix.EINVAL
	}
	s.autoclear &^= autoclearBitmaps
	if err := s.updateHeaderSync(co); err != nil {
		return err
	}
	off, size := s.bitmapDirOffset, s.bitmapDirSize
	if err := s.bitmapListStore(co, list, &off, &size, true); err != nil {
		return err
	}
	s.setBitmapDir(list)
	if err := s.updateHeaderSync(co); err != nil {
		return err
	}
	s.autoclear |= autoclearBitmaps
	return s.updateHeaderSync(co)
}

// bitmapListStore writes the directory, in place or in new clusters
// (bitmap_list_store).
func (s *state) bitmapListStore(co *blk.Co, list []*bitmapEntry, offset, size *int64, inPlace bool) error {
	var dirSize int64
	for _, bm := range list {
		dirSize += calcEntrySize(len(bm.name))
	}
	if dirSize == 0 || dirSize > maxBitmapDirSize {
		return unix.EINVAL
	}
	if inPlace && (*size != dirSize || *offset == 0) {
		return unix.EINVAL
	}
	dir := make([]byte, dirSize)
	pos := int64(0)
	for _, bm := range list {
		e := dir[pos:]
		binary.BigEndian.PutUint64(e, uint64(bm.tableOffset))
		binary.BigEndian.PutUint32(e[8:], bm.tableSize)
		binary.BigEndian.PutUint32(e[12:], bm.flags)
		e[16] = btDirtyTracking
		e[17] = bm.granBits
		binary.BigEndian.PutUint16(e[18:], uint16(len(bm.name)))
		copy(e[bmeDirEntrySize:], bm.name)
		if !s.checkDirEntry(bm.tableOffset, bm.tableSize, bm.flags, btDirtyTracking, bm.granBits, len(bm.name)) {
			return unix.EINVAL
		}
		pos += calcEntrySize(len(bm.name))
	}
	dirOffset := *offset
	if !inPlace {
		var err error
		if dirOffset, err = s.allocClusters(co, dirSize); err != nil {
			return err
		}
	}
	var ignore olType
	if inPlace {
		ignore = olBitmapDirectory
	}
	err := s.overlapCheck(ignore, dirOffset, dirSize)
	if err == nil {
		err = s.file.Node.PWrite(co, dirOffset, dir, 0)
	}
	if err != nil {
		if !inPlace {
			s.freeClusters(co, dirOffset, dirSize, discardOther)
		}
		return err
	}
	*offset, *size = dirOffset, dirSize
	return nil
}

// updateBitmapExt writes the directory to new clusters, points the
// header at it and frees the old one (update_ext_header_and_dir). An
// empty list drops the extension.
func (s *state) updateBitmapExt(co *blk.Co, list []*bitmapEntry) error {
	oldOffset, oldSize, oldNb, oldAutoclear := s.bitmapDirOffset, s.bitmapDirSize, s.nbBitmaps, s.autoclear
	var newOffset, newSize int64
	if len(list) > 0 {
		if len(list) > maxBitmaps {
			return unix.EINVAL
		}
		if err := s.bitmapListStore(co, list, &newOffset, &newSize, false); err != nil {
			return err
		}
		s.autoclear |= autoclearBitmaps
	} else {
		s.autoclear &^= autoclearBitmaps
	}
	err := s.flushCaches(co)
	if err == nil {
		s.bitmapDirOffset, s.bitmapDirSize, s.nbBitmaps = newOffset, newSize, uint32(len(list))
		err = s.updateHeaderSync(co)
	}
	if err != nil {
		if newOffset > 0 {
			s.freeClusters(co, newOffset, newSize, discardOther)
		}
		s.bitmapDirOffset, s.bitmapDirSize, s.nbBitmaps, s.autoclear = oldOffset, oldSize, oldNb, oldAutoclear
		return err
	}
	s.setBitmapDir(list)
	if oldSize > 0 {
		s.freeClusters(co, oldOffset, oldSize, discardOther)
	}
	return nil
}

// flushCaches writes the cached tables and flushes the file
// (qcow2_flush_caches).
func (s *state) flushCaches(co *blk.Co) error {
	if err := s.writeCaches(co); err != nil {
		return err
	}
	return s.file.Node.Flush(co)
}

// clearBitmapTable frees a table's data clusters (clear_bitmap_table).
func (s *state) clearBitmapTable(co *blk.Co, tb []uint64) {
	for i, e := range tb {
		if off := int64(e & bmeEntryOffset); off != 0 {
			s.freeClusters(co, off, s.clusterSize, discardAlways)
			tb[i] = 0
		}
	}
}

// freeBitmapClusters frees a stored bitmap: its data, then its table
// (free_bitmap_clusters).
func (s *state) freeBitmapClusters(co *blk.Co, offset int64, size uint32) error {
	tb, err := s.bitmapTableLoad(co, offset, size)
	if err != nil {
		return err
	}
	s.clearBitmapTable(co, tb)
	s.freeClusters(co, offset, int64(size)*8, discardOther)
	return nil
}

// storeBitmapData writes the clusters of a bitmap that hold a dirty bit
// and returns its table (store_bitmap_data).
func (s *state) storeBitmapData(co *blk.Co, b *dirtyBitmap) ([]uint64, error) {
	n := s.bitmapTableClusters(b)
	if n > bmeMaxTableSize || n*s.clusterSize > bmeMaxPhysSize {
		return nil, blk.Msgf(unix.EINVAL, "Bitmap '%s' is too big", b.name)
	}
	tb := make([]uint64, n)
	perCluster := s.clusterSize * 8
	buf := make([]byte, s.clusterSize)
	nb := b.nbits()
	for i := range tb {
		first := int64(i) * perCluster
		if !b.anyIn(first, min(first+perCluster, nb)-1) {
			continue
		}
		off, err := s.allocClusters(co, s.clusterSize)
		if err != nil {
			s.clearBitmapTable(co, tb)
			return nil, blk.Errorf(blk.ErrnoOf(err), "Failed to allocate clusters for bitmap '%s'", b.name)
		}
		tb[i] = uint64(off)
		b.serialize(buf, first)
		if err := s.overlapCheck(0, off, s.clusterSize); err != nil {
			s.clearBitmapTable(co, tb)
			return nil, blk.Errorf(blk.ErrnoOf(err), "Qcow2 overlap check failed")
		}
		if err := s.file.Node.PWrite(co, off, buf, 0); err != nil {
			s.clearBitmapTable(co, tb)
			return nil, blk.Errorf(blk.ErrnoOf(err), "Failed to write bitmap '%s' to file", b.name)
		}
	}
	return tb, nil
}

// storeBitmap writes a bitmap's data and table and records the table in
// its entry (store_bitmap).
func (s *state) storeBitmap(co *blk.Co, bm *bitmapEntry) error {
	b := bm.dirty
	tb, err := s.storeBitmapData(co, b)
	if err != nil {
		return err
	}
	size := int64(len(tb)) * 8
	fail := func(off int64, err error) error {
		s.clearBitmapTable(co, tb)
		if off > 0 {
			s.freeClusters(co, off, size, discardOther)
		}
		return err
	}
	if size == 0 {
		return fail(0, blk.Msgf(unix.EINVAL, "Bitmap '%s' is too big", b.name))
	}
	off, err := s.allocClusters(co, size)
	if err != nil {
		return fail(0, blk.Errorf(blk.ErrnoOf(err), "Failed to allocate clusters for bitmap '%s'", b.name))
	}
	if err := s.overlapCheck(0, off, size); err != nil {
		return fail(off, blk.Errorf(blk.ErrnoOf(err), "Qcow2 overlap check failed"))
	}
	raw := make([]byte, size)
	for i, e := range tb {
		binary.BigEndian.PutUint64(raw[i*8:], e)
	}
	if err := s.file.Node.PWrite(co, off, raw, 0); err != nil {
		return fail(off, blk.Errorf(blk.ErrnoOf(err), "Failed to write bitmap '%s' to file", b.name))
	}
	bm.tableOffset, bm.tableSize = off, uint32(len(tb))
	return nil
}

// checkBitmapConstraints is check_constraints_on_bitmap.
func (s *state) checkBitmapConstraints(b *dirtyBitmap) error {
	if b.granBits > bmeMaxGranBits {
		return blk.Msgf(unix.EINVAL, "Granularity exceeds maximum (%d bytes)", 1<<bmeMaxGranBits)
	}
	if b.granBits < bmeMinGranBits {
		return blk.Msgf(unix.EINVAL, "Granularity is under minimum (%d bytes)", 1<<bmeMinGranBits)
	}
	bytes := (b.nbits() + 7) / 8
	if bytes > bmeMaxPhysSize || bytes > bmeMaxTableSize*s.clusterSize {
		return blk.Msgf(unix.EINVAL, "Too much space will be occupied by the bitmap. Use larger granularity")
	}
	if len(b.name) > bmeMaxNameSize {
		return blk.Msgf(unix.EINVAL, "Name length exceeds maximum (%d characters)", bmeMaxNameSize)
	}
	return nil
}

// prependErr puts prefix before err's text, keeping its errno.
func prependErr(prefix string, err error) error {
	var be *blk.Error
	if errors.As(err, &be) {
		text := be.Msg
		if text == "" || !be.Plain {
			if text != "" {
				text += ": "
			}
			text += cvt.Strerror(be.Errno)
		}
		return blk.Msgf(be.Errno, "%s%s", prefix, text)
	}
	return blk.Msgf(blk.ErrnoOf(err), "%s%s", prefix, cvt.Strerror(blk.ErrnoOf(err)))
}

// storeBitmaps stores the bitmaps that changed (everything but
// read-only and inconsistent ones) in new clusters, then the directory,
// and frees what they replace (qcow2_store_persistent_dirty_bitmaps).
// release drops the stored bitmaps from memory (close).
func (s *state) storeBitmaps(co *blk.Co, release bool) error {
	var list []*bitmapEntry
	if s.nbBitmaps > 0 {
		var err error
		if list, err = s.bitmapListLoad(co); err != nil {
			return err
		}
	}
	newNb, newDirSize := s.nbBitmaps, s.bitmapDirSize
	type table struct {
		offset int64
		size   uint32
	}
	var drop []table
	needWrite := false
	fail := func(err error) error {
		for _, bm := range list {
			if bm.dirty == nil || bm.tableOffset == 0 || bm.dirty.readonly {
				continue
			}
			_ = s.freeBitmapClusters(co, bm.tableOffset, bm.tableSize)
		}
		return err
	}
	// QEMU walks its bitmaps newest first.
	for i := len(s.dirtyBitmaps) - 1; i >= 0; i-- {
		b := s.dirtyBitmaps[i]
		if b.inconsistent {
			continue
		}
		if b.readonly {
			if bm := findBitmapEntry(list, b.name); bm != nil {
				bm.dirty = b
			}
			continue
		}
		needWrite = true
		if err := s.checkBitmapConstraints(b); err != nil {
			return fail(prependErr(fmt.Sprintf("Bitmap '%s' doesn't satisfy the constraints: ", b.name), err))
		}
		bm := findBitmapEntry(list, b.name)
		if bm == nil {
			if newNb++; newNb > maxBitmaps {
				return fail(blk.Msgf(unix.EINVAL, "Too many persistent bitmaps"))
			}
			if newDirSize += calcEntrySize(len(b.name)); newDirSize > maxBitmapDirSize {
				return fail(blk.Msgf(unix.EINVAL, "Bitmap directory is too large"))
			}
			bm = &bitmapEntry{name: b.name}
			list = append(list, bm)
		} else {
			if bm.flags&bmeInUse == 0 {
				return fail(blk.Msgf(unix.EINVAL, "Bitmap '%s' already exists in the image", b.name))
			}
			drop = append(drop, table{bm.tableOffset, bm.tableSize})
			bm.tableOffset, bm.tableSize = 0, 0
		}
		bm.flags = 0
		if !b.disabled {
			bm.flags = bmeAuto
		}
		bm.granBits = uint8(b.granBits)
		bm.dirty = b
	}
	if needWrite {
		if s.readOnly {
			return fail(blk.Msgf(unix.EINVAL, "No write access"))
		}
		for _, bm := range list {
			if bm.dirty == nil || bm.dirty.readonly {
				continue
			}
			if err := s.storeBitmap(co, bm); err != nil {
				return fail(err)
			}
		}
		if err := s.updateBitmapExt(co, list); err != nil {
			return fail(blk.Errorf(blk.ErrnoOf(err), "Failed to update bitmap extension"))
		}
		// The directory no longer points at the old tables.
		for _, t := range drop {
			_ = s.freeBitmapClusters(co, t.offset, t.size)
		}
	}
	if release {
		for _, bm := range list {
			if bm.dirty != nil {
				s.releaseDirtyBitmap(bm.dirty)
			}
		}
	}
	return nil
}

func (s *state) releaseDirtyBitmap(b *dirtyBitmap) {
	for i, x := range s.dirtyBitmaps {
		if x == b {
			s.dirtyBitmaps = append(s.dirtyBitmaps[:i], s.dirtyBitmaps[i+1:]...)
			return
		}
	}
}

// reopenBitmapsRO stores the bitmaps and makes them read-only
// (qcow2_reopen_bitmaps_ro).
func (s *state) reopenBitmapsRO(co *blk.Co) error {
	if err := s.storeBitmaps(co, false); err != nil {
		return err
	}
	for _, b := range s.dirtyBitmaps {
		b.readonly = true
	}
	return nil
}

// reopenBitmapsRW marks the read-only bitmaps in use again and makes
// them writable (qcow2_reopen_bitmaps_rw).
func (s *state) reopenBitmapsRW(co *blk.Co) error {
	if s.nbBitmaps == 0 {
		return nil
	}
	list, err := s.bitmapListLoad(co)
	if err != nil {
		return err
	}
	var ro []*dirtyBitmap
	needUpdate := false
	for _, bm := range list {
		b := s.findDirtyBitmap(bm.name)
		if b == nil {
			return blk.Msgf(unix.EINVAL, "Unexpected bitmap '%s' in image '%s'", bm.name, s.self.Filename())
		}
		if bm.flags&bmeInUse == 0 {
			if !b.readonly {
				return blk.Msgf(unix.EINVAL, "Corruption: bitmap '%s' is not marked IN_USE in the image '%s' and not marked readonly in RAM", bm.name, s.self.Filename())
			}
			if b.inconsistent {
				return blk.Msgf(unix.EINVAL, "Corruption: bitmap '%s' is inconsistent but is not marked IN_USE in the image '%s'", bm.name, s.self.Filename())
			}
			bm.flags |= bmeInUse
			needUpdate = true
		} else if b.readonly && !b.inconsistent {
			return blk.Msgf(unix.EINVAL, "Corruption: bitmap '%s' is marked IN_USE in the image '%s' but it is readonly and consistent in RAM", bm.name, s.self.Filename())
		}
		if b.readonly {
			ro = append(ro, b)
		}
	}
	if needUpdate {
		if err := s.updateBitmapDirInPlace(co, list); err != nil {
			return blk.Errorf(blk.ErrnoOf(err), "Cannot update bitmap directory")
		}
	}
	for _, b := range ro {
		b.readonly = false
	}
	return nil
}

// truncateBitmapsCheck refuses a resize the bitmaps cannot follow
// (qcow2_truncate_bitmaps_check).
func (s *state) truncateBitmapsCheck(co *blk.Co) error {
	if s.nbBitmaps == 0 {
		return nil
	}
	list, err := s.bitmapListLoad(co)
	if err != nil {
		return err
	}
	for _, bm := range list {
		b := s.findDirtyBitmap(bm.name)
		switch {
		case b == nil:
			return blk.Msgf(unix.ENOTSUP, "Cannot resize qcow2 with persistent bitmaps that were not loaded into memory")
		case b.readonly:
			return blk.Msgf(unix.ENOTSUP, "Bitmap '%s' is readonly and cannot be modified", b.name)
		case b.inconsistent:
			return blk.Msgf(unix.ENOTSUP, "Bitmap '%s' is inconsistent and cannot be used\nTry block-dirty-bitmap-remove to delete this bitmap from disk", b.name)
		}
	}
	return nil
}

// SetDirty marks a written range in the enabled bitmaps (bdrv_set_dirty).
func (s *state) SetDirty(off, n int64) {
	for _, b := range s.dirtyBitmaps {
		if !b.disabled && !b.readonly {
			b.setRange(off, n)
		}
	}
}

// ReadonlyBitmaps says whether a bitmap is read-only on a writable
// image (a failed reopen read/write): writes would be lost to it, so
// blk refuses them.
func (s *state) ReadonlyBitmaps() bool {
	for _, b := range s.dirtyBitmaps {
		if b.readonly {
			return true
		}
	}
	return false
}

// checkBitmapsRefcounts counts the directory, the tables and the data
// clusters of the bitmaps for a refcount check
// (qcow2_check_bitmaps_refcounts).
func (s *state) checkBitmapsRefcounts(co *blk.Co, res *checkResult, t *imrt) error {
	if s.nbBitmaps == 0 {
		return nil
	}
	if err := s.incRefcounts(co, res, t, s.bitmapDirOffset, s.bitmapDirSize); err != nil {
		return err
	}
	list, err := s.bitmapListLoad(co)
	if err != nil {
		res.corruptions++
		return unix.EINVAL
	}
	for _, bm := range list {
		if err := s.incRefcounts(co, res, t, bm.tableOffset, int64(bm.tableSize)*8); err != nil {
			return err
		}
		tb, err := s.bitmapTableLoad(co, bm.tableOffset, bm.tableSize)
		if err != nil {
			res.corruptions++
			return err
		}
		for _, e := range tb {
			if off := int64(e & bmeEntryOffset); off != 0 {
				if err := s.incRefcounts(co, res, t, off, s.clusterSize); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// bitmapLines is the "bitmaps:" part of info (qcow2_get_bitmap_info_list):
// the directory as it is on disk.
func (s *state) bitmapLines() []string {
	if s.nbBitmaps == 0 || len(s.bitmapDir) == 0 {
		return nil
	}
	lines := []string{"bitmaps:"}
	for i, b := range s.bitmapDir {
		lines = append(lines, fmt.Sprintf("    [%d]:", i), "        flags:")
		n := 0
		for _, f := range []struct {
			bit  uint32
			name string
		}{{bmeInUse, "in-use"}, {bmeAuto, "auto"}} {
			if b.flags&f.bit != 0 {
				lines = append(lines, fmt.Sprintf("            [%d]: %s", n, f.name))
				n++
			}
		}
		lines = append(lines, "        name: "+b.name, fmt.Sprintf("        granularity: %d", uint64(1)<<b.granBits))
	}
	return lines
}
