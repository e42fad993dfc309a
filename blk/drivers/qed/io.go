package qed

import (
	"gio/blk"

	"golang.org/x/sys/unix"
)

// Results of findCluster (QED_CLUSTER_*).
const (
	clusterFound = iota // data cluster(s) in the file
	clusterZero         // zero cluster(s)
	clusterL2           // unallocated entry in an existing L2 table
	clusterL1           // no L2 table
)

// findCluster is qed_find_cluster: what the clusters from pos hold, for
// at most n bytes, bounded by the L2 table and by contiguity. It returns
// the kind, the host offset of pos's cluster (found), the L2 table (nil
// for clusterL1) and the length covered.
func (s *state) findCluster(co *blk.Co, pos, n int64) (kind int, host int64, t *l2Table, length int64, err error) {
	n = min(n, ((pos>>s.l1Shift)+1)<<s.l1Shift-pos)
	l2off := s.l1[s.l1Index(pos)]
	if l2off == 0 {
		return clusterL1, 0, nil, n, nil
	}
	if !s.checkTableOffset(l2off) {
		return 0, 0, nil, 0, unix.EINVAL
	}
	t, err = s.readL2(co, int64(l2off))
	if err != nil {
		return 0, 0, nil, 0, err
	}
	index := s.l2Index(pos)
	want := s.bytesToClusters(s.offsetIntoCluster(pos) + n)
	end := min(index+want, s.tableNelems)
	first := t.entries[index]
	last := first
	i := index + 1
	for ; i < end; i++ {
		e := t.entries[i]
		switch {
		case last == 0:
			if e != 0 {
				goto done
			}
		case last == 1:
			if e != 1 {
				goto done
			}
		default:
			if e != last+uint64(s.clusterSize) {
				goto done
			}
			last = e
		}
	}
done:
	switch {
	case first == 0:
		kind = clusterL2
	case first == 1:
		kind = clusterZero
	case s.checkClusterOffset(first):
		kind = clusterFound
	default:
		return 0, 0, nil, 0, unix.EINVAL
	}
	n = min(n, (i-index)*s.clusterSize-s.offsetIntoCluster(pos))
	return kind, int64(first), t, n, nil
}

// PRead reads guest data one mapping step at a time
// (qed_aio_read_data).
func (s *state) PRead(co *blk.Co, off int64, buf []byte, flags blk.ReqFlags) error {
	for len(buf) > 0 {
		s.mu.lock(co)
		kind, host, _, n, err := s.findCluster(co, off, int64(len(buf)))
		s.mu.unlock()
		if err != nil {
			return err
		}
		piece := buf[:n]
		switch kind {
		case clusterZero:
			clear(piece)
		case clusterFound:
			s.file.Event(co, blk.EvReadAIO)
			err = s.file.Node.PRead(co, host+s.offsetIntoCluster(off), piece, 0)
		default:
			err = s.readBacking(co, off, piece)
		}
		if err != nil {
			return err
		}
		buf = buf[n:]
		off += n
	}
	return nil
}

// readBacking reads from the backing file, or zeroes without one
// (qed_read_backing_file). Beyond the backing file's end blk gives
// zeroes.
func (s *state) readBacking(co *blk.Co, pos int64, buf []byte) error {
	if s.backing == nil {
		clear(buf)
		return nil
	}
	s.file.Event(co, blk.EvReadBackingAIO)
	return s.backing.Node.PRead(co, pos, buf, 0)
}

// request is one write in progress (QEDAIOCB).
type request struct{ zero bool }

// PWrite writes guest data (qed_aio_write_data).
func (s *state) PWrite(co *blk.Co, off int64, buf []byte, flags blk.ReqFlags) error {
	if s.readOnly {
		return unix.EPERM
	}
	return s.write(co, off, int64(len(buf)), buf, &request{})
}

// PWriteZeroes is bdrv_qed_co_pwrite_zeroes: whole clusters become zero
// clusters; anything unaligned falls back to a zero buffer.
func (s *state) PWriteZeroes(co *blk.Co, off, n int64, flags blk.ReqFlags) error {
	if s.offsetIntoCluster(off) != 0 || s.offsetIntoCluster(n) != 0 {
		return unix.ENOTSUP
	}
	return s.write(co, off, n, nil, &request{zero: true})
}

// write is qed_aio_next_io for writes: in-place writes to allocated
// clusters, allocating writes (one at a time) for the rest.
func (s *state) write(co *blk.Co, pos, length int64, buf []byte, r *request) error {
	end := pos + length
	s.mu.lock(co)
	var err error
	for pos < end {
		var kind int
		var host, n int64
		var t *l2Table
		kind, host, t, n, err = s.findCluster(co, pos, end-pos)
		if err != nil {
			break
		}
		var data []byte
		if buf != nil {
			data = buf[:n]
		}
		if kind == clusterFound {
			err = s.writeInPlace(co, host, pos, n, data)
		} else {
			err = s.writeAlloc(co, r, kind, t, pos, n, data)
			if err == errAgain {
				err = nil
				continue
			}
		}
		if err != nil {
			break
		}
		pos += n
		if buf != nil {
			buf = buf[n:]
		}
	}
	s.complete(r)
	s.mu.unlock()
	return err
}

// complete is qed_aio_complete: the next allocating write may start.
func (s *state) complete(r *request) {
	if s.allocating != r {
		return
	}
	s.allocating = nil
	s.allocWaiters.next()
}

type againError struct{}

func (againError) Error() string { return "qed: look the clusters up again" }

var errAgain error = againError{}

// writeInPlace writes to allocated clusters, with the lock dropped
// (qed_aio_write_inplace).
func (s *state) writeInPlace(co *blk.Co, host, pos, n int64, data []byte) error {
	if data == nil {
		data = make([]byte, n)
	}
	s.mu.unlock()
	s.file.Event(co, blk.EvWriteAIO)
	err := s.file.Node.PWrite(co, host+s.offsetIntoCluster(pos), data, 0)
	s.mu.lock(co)
	return err
}

// writeAlloc is qed_aio_write_alloc: wait for our turn, append new
// clusters (or mark zero clusters), copy the backing file's data around
// the write, write, then link the clusters into the L2 table (and a new
// L2 table into L1).
func (s *state) writeAlloc(co *blk.Co, r *request, kind int, t *l2Table, pos, n int64, data []byte) error {
	if s.allocating != r {
		if s.allocating != nil {
			s.allocWaiters.wait(co, &s.mu)
		}
		s.allocating = r
		return errAgain
	}
	nclusters := s.bytesToClusters(s.offsetIntoCluster(pos) + n)
	var cluster int64
	if r.zero {
		if kind == clusterZero {
			return nil
		}
		cluster = 1
	} else {
		cluster = s.allocClusters(nclusters)
	}
	if s.backing == nil && s.h.Features&fNeedCheck == 0 {
		s.h.Features |= fNeedCheck
		if err := s.writeHeader(co); err != nil {
			return err
		}
	}
	if !r.zero {
		if err := s.writeCOW(co, cluster, pos, n, data); err != nil {
			return err
		}
	}
	return s.l2Update(co, kind, t, pos, nclusters, cluster)
}

// writeCOW fills the new clusters' untouched head and tail from the
// backing file and writes the data (qed_aio_write_cow).
func (s *state) writeCOW(co *blk.Co, cluster, pos, n int64, data []byte) error {
	s.mu.unlock()
	defer s.mu.lock(co)
	start := s.startOfCluster(pos)
	if err := s.copyFromBacking(co, start, s.offsetIntoCluster(pos), cluster); err != nil {
		return err
	}
	start = pos + n
	tail := s.startOfCluster(start+s.clusterSize-1) - start
	if err := s.copyFromBacking(co, start, tail, cluster+s.offsetIntoCluster(pos)+n); err != nil {
		return err
	}
	s.file.Event(co, blk.EvWriteAIO)
	if err := s.file.Node.PWrite(co, cluster+s.offsetIntoCluster(pos), data, 0); err != nil {
		return err
	}
	if s.backing != nil {
		// The data must be down before the L2 entry that exposes it:
		// otherwise a crash loses the backing data around the write.
		return s.file.Node.Flush(co)
	}
	return nil
}

// copyFromBacking is qed_copy_from_backing_file.
func (s *state) copyFromBacking(co *blk.Co, pos, n, host int64) error {
	if n == 0 {
		return nil
	}
	buf := make([]byte, n)
	if err := s.readBacking(co, pos, buf); err != nil {
		return err
	}
	s.file.Event(co, blk.EvCowWrite)
	return s.file.Node.PWrite(co, host, buf, 0)
}

// l2Update is qed_aio_write_l2_update: a new L2 table is written whole
// and flushed before the L1 entry pointing to it.
func (s *state) l2Update(co *blk.Co, kind int, t *l2Table, pos, nclusters, cluster int64) error {
	newTable := kind == clusterL1
	if newTable {
		t = &l2Table{entries: make([]uint64, s.tableNelems), offset: s.allocClusters(int64(s.h.TableSize))}
	}
	index := s.l2Index(pos)
	c := uint64(cluster)
	for i := index; i < index+nclusters; i++ {
		t.entries[i] = c
		if c > 1 {
			c += uint64(s.clusterSize)
		}
	}
	if !newTable {
		return s.writeL2(co, t, index, nclusters, false)
	}
	if err := s.writeL2(co, t, 0, s.tableNelems, true); err != nil {
		return err
	}
	l1i := s.l1Index(pos)
	s.l1[l1i] = uint64(t.offset)
	err := s.writeL1(co, l1i, 1)
	s.l2.commit(t)
	return err
}

// BlockStatus is bdrv_qed_co_block_status.
func (s *state) BlockStatus(co *blk.Co, wantZero bool, off, n int64) (blk.Status, error) {
	s.mu.lock(co)
	kind, host, _, pnum, err := s.findCluster(co, off, n)
	s.mu.unlock()
	if err != nil {
		return blk.Status{}, err
	}
	st := blk.Status{Pnum: pnum}
	switch kind {
	case clusterFound:
		st.Flags = blk.StatusData | blk.StatusOffsetValid
		st.Map, st.File = host+s.offsetIntoCluster(off), s.file.Node
	case clusterZero:
		st.Flags = blk.StatusZero
	}
	return st, nil
}
