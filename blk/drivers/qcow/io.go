package qcow

import (
	"bytes"
	"compress/flate"
	"encoding/binary"

	"gio/blk"
	"gio/internal/inflate"

	"golang.org/x/sys/unix"
)

// Allocation modes of getClusterOffset (get_cluster_offset's allocate).
const (
	lookUp        = 0
	allocNormal   = 1
	allocCompress = 2
)

// l2 returns the cached L2 table at off, loading it (or, for a table
// just allocated, writing it zeroed) into the least used slot.
func (s *state) l2(co *blk.Co, off int64, fresh bool) ([]uint64, error) {
	for i := range s.l2Offsets {
		if s.l2Offsets[i] == off && s.l2Tables[i] != nil && off != 0 {
			if s.l2Counts[i]++; s.l2Counts[i] == 0xffffffff {
				for j := range s.l2Counts {
					s.l2Counts[j] >>= 1
				}
			}
			return s.l2Tables[i], nil
		}
	}
	minIdx, minCount := 0, uint32(0xffffffff)
	for i, c := range s.l2Counts {
		if c < minCount {
			minIdx, minCount = i, c
		}
	}
	t := s.l2Tables[minIdx]
	// The slot is invalid until the load succeeds.
	s.l2Offsets[minIdx], s.l2Counts[minIdx] = 0, 0
	s.file.Event(co, blk.EvL2Load)
	raw := make([]byte, s.l2Size*8)
	if fresh {
		clear(t)
		if err := s.writeSync(co, off, raw); err != nil {
			return nil, err
		}
	} else {
		if err := s.readClipped(co, off, raw); err != nil {
			return nil, err
		}
		for i := range t {
			t[i] = binary.BigEndian.Uint64(raw[8*i:])
		}
	}
	s.l2Offsets[minIdx], s.l2Counts[minIdx] = off, 1
	return t, nil
}

// writeSync is bdrv_co_pwrite_sync: write, then flush the file.
func (s *state) writeSync(co *blk.Co, off int64, buf []byte) error {
	if err := s.file.Node.PWrite(co, off, buf, 0); err != nil {
		return err
	}
	return s.file.Node.Flush(co)
}

// endOfFile is the file's length rounded up to a cluster.
func (s *state) endOfFile(co *blk.Co) (int64, error) {
	n, err := s.file.Node.Length(co)
	if err != nil {
		return 0, err
	}
	return (n + s.clusterSize - 1) &^ (s.clusterSize - 1), nil
}

// getClusterOffset is get_cluster_offset: the L2 entry of off's cluster,
// allocating the L2 table and the cluster (normal: grow the file by a
// cluster; compressed: csize bytes at the end) when asked to. An entry
// of 0 means unallocated. Called with mu held.
func (s *state) getClusterOffset(co *blk.Co, off int64, allocate int, csize, nStart, nEnd int64) (uint64, error) {
	l1i := off >> (s.l2Bits + s.clusterBits)
	if l1i >= s.l1Size {
		return 0, unix.EIO
	}
	l2off := s.l1[l1i]
	fresh := false
	if l2off == 0 {
		if allocate == lookUp {
			return 0, nil
		}
		eof, err := s.endOfFile(co)
		if err != nil {
			return 0, err
		}
		// The L1 table of a corrupted header may lie past the end of
		// the file (it read as zeroes): see below.
		if s.l1TableOffset+l1i*8 > eof {
			return 0, unix.EIO
		}
		l2off = uint64(eof)
		s.l1[l1i] = l2off
		var tmp [8]byte
		binary.BigEndian.PutUint64(tmp[:], l2off)
		s.file.Event(co, blk.EvL1Update)
		if err := s.writeSync(co, s.l1TableOffset+l1i*8, tmp[:]); err != nil {
			// QEMU keeps the entry: the next allocation then puts a
			// data cluster where the table is, and the table's
			// entries overwrite the guest's data. Forget it.
			s.l1[l1i] = 0
			return 0, err
		}
		fresh = true
	}
	if l2off > 1<<62 {
		return 0, unix.EIO
	}
	// Before a write, the table and the cluster it is about to change
	// must lie in the file. gio (and QEMU) grow the file and flush before
	// an entry points at the new space, so only a corrupted image points
	// past the end; QEMU would write there and grow the file by
	// whatever the entry says, gio fails the request instead. (An L2
	// table at the end itself is what a crash after the L1 update
	// leaves: it is written there as QEMU would.)
	var eof int64
	if allocate != lookUp && !fresh {
		var err error
		if eof, err = s.endOfFile(co); err != nil {
			return 0, err
		}
		if int64(l2off) > eof {
			return 0, unix.EIO
		}
	}
	t, err := s.l2(co, int64(l2off), fresh)
	if err != nil {
		return 0, err
	}
	l2i := (off >> s.clusterBits) & (s.l2Size - 1)
	entry := t[l2i]
	if entry != 0 && (entry&oflagCompress == 0 || allocate != allocNormal) {
		// An entry in a fresh table is 0, so eof was read above.
		if allocate == allocNormal && int64(entry&^oflagCompress) >= eof {
			return 0, unix.EIO
		}
		return entry, nil
	}
	if allocate == lookUp {
		return 0, nil
	}
	s.file.Event(co, blk.EvClusterAlloc)
	switch {
	case entry&oflagCompress != 0 && nEnd-nStart < s.clusterSize:
		// A compressed cluster partly overwritten is decompressed into
		// a new one first.
		if err := s.decompress(co, entry); err != nil {
			return 0, unix.EIO
		}
		eof, err := s.endOfFile(co)
		if err != nil {
			return 0, err
		}
		entry = uint64(eof)
		s.file.Event(co, blk.EvWriteAIO)
		if err := s.file.Node.PWrite(co, eof, s.clusterCache, 0); err != nil {
			return 0, err
		}
	default:
		// A normal cluster starts on a cluster boundary; compressed data
		// goes right after the last byte.
		flen, err := s.file.Node.Length(co)
		if err != nil {
			return 0, err
		}
		eof := flen
		if allocate == allocNormal {
			eof = (flen + s.clusterSize - 1) &^ (s.clusterSize - 1)
		}
		entry = uint64(eof)
		if allocate == allocNormal {
			if eof > 1<<63-1-s.clusterSize {
				return 0, unix.E2BIG
			}
			if err := s.file.Node.Truncate(co, eof+s.clusterSize, false, blk.PreallocOff); err != nil {
				return 0, err
			}
			if err := s.initEncryptedCluster(co, off, eof, nStart, nEnd); err != nil {
				return 0, err
			}
		} else {
			entry |= oflagCompress | uint64(csize)<<(63-s.clusterBits)
		}
	}
	old := t[l2i]
	t[l2i] = entry
	var tmp [8]byte
	binary.BigEndian.PutUint64(tmp[:], entry)
	if allocate == allocCompress {
		s.file.Event(co, blk.EvL2UpdateCompressed)
	} else {
		s.file.Event(co, blk.EvL2Update)
	}
	if err := s.writeSync(co, int64(l2off)+l2i*8, tmp[:]); err != nil {
		// QEMU keeps the entry in its cached table: a later write to
		// the cluster lands in place, succeeds, and is gone after a
		// reopen. Forget it (the cluster leaks).
		t[l2i] = old
		return 0, err
	}
	return entry, nil
}

// initEncryptedCluster writes the sectors of a new cluster at host that
// the request [nStart, nEnd) will not write, as encrypted zeroes, one
// sector at a time (an encrypted image reads plain zeroes there, not
// the decryption of zeroes).
func (s *state) initEncryptedCluster(co *blk.Co, off, host, nStart, nEnd int64) error {
	if s.cipher == nil || nEnd-nStart >= s.clusterSize {
		return nil
	}
	start := off &^ (s.clusterSize - 1)
	sector := make([]byte, 512)
	for i := int64(0); i < s.clusterSize; i += 512 {
		if i >= nStart && i < nEnd {
			continue
		}
		clear(sector)
		s.cipher.Encrypt(start+i, sector)
		s.file.Event(co, blk.EvWriteAIO)
		if err := s.file.Node.PWrite(co, host+i, sector, 0); err != nil {
			return err
		}
	}
	return nil
}

// decompress fills clusterCache with the compressed cluster of entry
// (decompress_cluster); it insists on a whole cluster of output.
func (s *state) decompress(co *blk.Co, entry uint64) error {
	coff := int64(entry & s.offsetMask)
	if s.clusterCacheOffset == coff {
		return nil
	}
	csize := int64(entry>>(63-s.clusterBits)) & (s.clusterSize - 1)
	in := make([]byte, csize)
	s.file.Event(co, blk.EvReadCompressed)
	if coff > 1<<62 {
		return unix.EIO
	}
	if err := s.readClipped(co, coff, in); err != nil {
		return err
	}
	if _, err := inflate.Raw(s.clusterCache, in); err != nil {
		s.clusterCacheOffset = -1
		return unix.EIO
	}
	s.clusterCacheOffset = coff
	return nil
}

// PRead is qcow_co_preadv: cluster by cluster.
func (s *state) PRead(co *blk.Co, off int64, buf []byte, flags blk.ReqFlags) error {
	s.mu.lock(co)
	defer s.mu.unlock()
	for len(buf) > 0 {
		entry, err := s.getClusterOffset(co, off, lookUp, 0, 0, 0)
		if err != nil {
			return err
		}
		inCluster := off & (s.clusterSize - 1)
		n := min(s.clusterSize-inCluster, int64(len(buf)))
		piece := buf[:n]
		switch {
		case entry == 0 && s.backing != nil:
			s.mu.unlock()
			s.file.Event(co, blk.EvReadBackingAIO)
			err = s.backing.Node.PRead(co, off, piece, 0)
			s.mu.lock(co)
		case entry == 0:
			clear(piece)
		case entry&oflagCompress != 0:
			if s.decompress(co, entry) != nil {
				return unix.EIO
			}
			copy(piece, s.clusterCache[inCluster:])
		default:
			if entry&511 != 0 || entry > 1<<62 {
				return unix.EIO
			}
			s.mu.unlock()
			s.file.Event(co, blk.EvReadAIO)
			err = s.file.Node.PRead(co, int64(entry)+inCluster, piece, 0)
			s.mu.lock(co)
			if err == nil && s.cipher != nil {
				s.cipher.Decrypt(off, piece)
			}
		}
		if err != nil {
			return err
		}
		buf = buf[n:]
		off += n
	}
	return nil
}

// PWrite is qcow_co_pwritev: allocate (or find) each cluster, then write
// its part.
func (s *state) PWrite(co *blk.Co, off int64, buf []byte, flags blk.ReqFlags) error {
	s.clusterCacheOffset = -1
	s.mu.lock(co)
	defer s.mu.unlock()
	for len(buf) > 0 {
		inCluster := off & (s.clusterSize - 1)
		n := min(s.clusterSize-inCluster, int64(len(buf)))
		entry, err := s.getClusterOffset(co, off, allocNormal, 0, inCluster, inCluster+n)
		if err != nil {
			return err
		}
		if entry == 0 || entry&511 != 0 || entry > 1<<62 {
			return unix.EIO
		}
		data := buf[:n]
		if s.cipher != nil {
			// The caller's buffer is never changed.
			data = append([]byte(nil), data...)
			s.cipher.Encrypt(off, data)
		}
		s.mu.unlock()
		s.file.Event(co, blk.EvWriteAIO)
		err = s.file.Node.PWrite(co, int64(entry)+inCluster, data, 0)
		s.mu.lock(co)
		if err != nil {
			return err
		}
		buf = buf[n:]
		off += n
	}
	return nil
}

// PWriteCompressed is qcow_co_pwritev_compressed: one whole cluster (or
// the image's last, partial one), stored deflated when that saves space.
// QEMU inflates with a 4 KiB window: a cluster of at most 4 KiB (every
// qcow image qemu-img makes) cannot refer further back, larger ones are
// deflated Huffman-only (no back references at all).
func (s *state) PWriteCompressed(co *blk.Co, off int64, buf []byte) error {
	n := int64(len(buf))
	if n != s.clusterSize && (n > s.clusterSize || off+n != s.size) {
		return unix.EINVAL
	}
	data := make([]byte, s.clusterSize)
	copy(data, buf)
	var out bytes.Buffer
	level := flate.DefaultCompression
	if s.clusterSize > 4096 {
		level = flate.HuffmanOnly
	}
	w, _ := flate.NewWriter(&out, level)
	_, _ = w.Write(data)
	_ = w.Close()
	if int64(out.Len()) >= s.clusterSize {
		return s.PWrite(co, off, buf, 0)
	}
	s.mu.lock(co)
	entry, err := s.getClusterOffset(co, off, allocCompress, int64(out.Len()), 0, 0)
	s.mu.unlock()
	if err != nil {
		return err
	}
	if entry == 0 {
		return unix.EIO
	}
	s.file.Event(co, blk.EvWriteCompressed)
	return s.file.Node.PWrite(co, int64(entry&s.offsetMask), out.Bytes(), 0)
}

// BlockStatus is qcow_co_block_status: one cluster at a time; the data
// of compressed clusters and encrypted images has no offset to show.
func (s *state) BlockStatus(co *blk.Co, wantZero bool, off, n int64) (blk.Status, error) {
	s.mu.lock(co)
	entry, err := s.getClusterOffset(co, off, lookUp, 0, 0, 0)
	s.mu.unlock()
	if err != nil {
		return blk.Status{}, err
	}
	inCluster := off & (s.clusterSize - 1)
	st := blk.Status{Pnum: min(s.clusterSize-inCluster, n)}
	switch {
	case entry == 0:
	case entry&oflagCompress != 0, s.cipher != nil:
		st.Flags = blk.StatusData
	default:
		st.Flags = blk.StatusData | blk.StatusOffsetValid
		st.Map, st.File = int64(entry)|inCluster, s.file.Node
	}
	return st, nil
}
