package qcow2

import (
	"bytes"
	"compress/flate"

	"gio/blk"

	"golang.org/x/sys/unix"
)

// Compressed clusters (qemu-io's write -c): each whole cluster is
// deflated and stored at byte granularity, packed after the previous
// compressed cluster (qcow2_co_pwritev_compressed_part,
// qcow2_alloc_compressed_cluster_offset, qcow2_alloc_bytes).
//
// QEMU inflates with a 4 KiB window (zlib windowBits -12), which Go's
// compress/flate cannot promise to respect (its window is 32 KiB), so gio
// writes the smaller of a Huffman-only stream (no back references) and
// deflate4k's (references within 4 KiB, fixed codes). The bytes are not
// zlib's, but QEMU reads them.

var _ blk.CompressedWriter = (*state)(nil)

// PWriteCompressed writes whole clusters compressed. off must be cluster
// aligned, and so must the length unless the write ends at the end of the
// image; a cluster already allocated cannot be overwritten (EIO, as in
// QEMU). A zero-length write aligns the file's end to a sector.
func (s *state) PWriteCompressed(co *blk.Co, off int64, buf []byte) error {
	if err := s.check(); err != nil {
		return err
	}
	if s.hasDataFile() {
		return unix.ENOTSUP
	}
	n := int64(len(buf))
	if n == 0 {
		l, err := s.file.Node.Length(co)
		if err != nil {
			return err
		}
		return s.file.Node.Truncate(co, l, false, blk.PreallocOff)
	}
	if s.offsetIntoCluster(off) != 0 || s.offsetIntoCluster(n) != 0 && off+n != s.size {
		return unix.EINVAL
	}
	// QEMU writes the clusters as tasks of a pool: when one fails,
	// the tasks already started still write their clusters, and so
	// does the one started in the slot the failure freed; a request of
	// one cluster writes it itself.
	var pool *blk.TaskPool
	var err error
	for len(buf) > 0 && pool.Err() == nil {
		chunk := min(int64(len(buf)), s.clusterSize)
		if pool == nil && chunk != int64(len(buf)) {
			pool = blk.NewTaskPool(co, maxWorkers)
		}
		at, data := off, buf[:chunk]
		task := func(co *blk.Co) error { return s.writeCompressedCluster(co, at, data) }
		if pool == nil {
			err = task(co)
			break
		}
		pool.Start(task)
		off += chunk
		buf = buf[chunk:]
	}
	if pool != nil {
		pool.WaitAll()
		err = pool.Err()
	}
	return err
}

// writeCompressedCluster is qcow2_co_pwritev_compressed_task.
func (s *state) writeCompressedCluster(co *blk.Co, off int64, data []byte) error {
	in := make([]byte, s.clusterSize)
	copy(in, data)
	out, err := s.compressCluster(in)
	s.threadJob(co)
	if err != nil {
		// Not compressible: an ordinary write.
		return s.PWrite(co, off, data, 0)
	}
	s.mu.lock(co)
	host, err := s.allocCompressedCluster(co, off, int64(len(out)))
	if err == nil {
		err = s.overlapCheck(0, host, int64(len(out)))
	}
	s.mu.unlock()
	if err != nil {
		return err
	}
	s.file.Event(co, blk.EvWriteCompressed)
	return s.file.Node.PWrite(co, host, out, 0)
}

// maxThreads is QCOW2_MAX_THREADS: the compression jobs one image has
// in QEMU's thread pool at once.
const maxThreads = 4

// threadJob is the wait of qcow2_co_process around work QEMU hands to
// its thread pool (compressing a cluster): a slot among maxThreads,
// then the job's completion. gio has done the work already; what it
// keeps is where the request yields, which orders the tasks of a
// compressed write as QEMU does.
func (s *state) threadJob(co *blk.Co) {
	s.mu.lock(co)
	for s.threads >= maxThreads {
		s.threadSlots.wait(co, &s.mu, "waits for a compression thread")
	}
	s.threads++
	s.mu.unlock()
	co.YieldIO()
	s.mu.lock(co)
	s.threads--
	s.threadSlots.next()
	s.mu.unlock()
}

// deflateCluster compresses one cluster into less than a cluster
// (qcow2_zlib_compress), within a 4 KiB window (see above).
func deflateCluster(in []byte) ([]byte, error) {
	var b bytes.Buffer
	w, err := flate.NewWriter(&b, flate.HuffmanOnly)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(in); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	out := b.Bytes()
	if lz := deflate4k(in); len(lz) < len(out) {
		out = lz
	}
	if len(out) > len(in)-1 {
		return nil, errNotCompressible
	}
	return out, nil
}

// allocCompressedCluster points the L2 entry for off at size new bytes
// and returns where they go (qcow2_alloc_compressed_cluster_offset).
func (s *state) allocCompressedCluster(co *blk.Co, off, size int64) (int64, error) {
	e, l2i, err := s.getClusterTable(co, off)
	if err != nil {
		return 0, err
	}
	defer s.l2Cache.put(e)
	if s.l2Entry(e, l2i)&l2eOffsetMask != 0 {
		// Compression cannot overwrite anything.
		return 0, unix.EIO
	}
	host, err := s.allocBytes(co, size)
	if err != nil {
		return 0, err
	}
	sectors := (host+size-1)/compressedSectorSize - host/compressedSectorSize
	entry := uint64(host) | oflagCompressed | uint64(sectors)<<s.csizeShift
	s.file.Event(co, blk.EvL2UpdateCompressed)
	s.l2Cache.markDirty(e)
	s.setL2Entry(e, l2i, entry)
	if s.extL2 {
		s.setL2Bitmap(e, l2i, 0) // compressed clusters have no subclusters
	}
	return host, nil
}

// allocBytes allocates size bytes (at most a cluster) for compressed
// data, right after the previous allocation when it fits, so that
// compressed clusters share host clusters (qcow2_alloc_bytes).
func (s *state) allocBytes(co *blk.Co, size int64) (int64, error) {
	s.file.Event(co, blk.EvClusterAllocBytes)
	off := s.freeByteOffset
	if off != 0 {
		rc, err := s.getRefcount(co, off>>s.clusterBits)
		if err != nil {
			return 0, err
		}
		if rc == s.refcountMax {
			off = 0
		}
	}
	free := s.clusterSize - s.offsetIntoCluster(off)
	for {
		if off == 0 || free < size {
			nc, err := s.allocClustersNoref(co, s.clusterSize, min(s.clusterOffMsk, maxClusterOffset))
			if err != nil {
				return 0, err
			}
			if nc == 0 {
				return 0, s.corrupt("Preventing invalid allocation of compressed cluster at offset 0")
			}
			if off == 0 || (off+s.clusterSize-1)&^(s.clusterSize-1) != nc {
				off, free = nc, s.clusterSize
			} else {
				free += s.clusterSize
			}
		}
		err := s.updateRefcount(co, off, size, 1, false, discardNever)
		if err == errAgain {
			off = 0
			continue
		}
		if err != nil {
			return 0, err
		}
		break
	}
	// The L2 entry written next may reach the disk only after the
	// refcounts.
	if err := s.l2Cache.setDependency(co, s.rcCache); err != nil {
		return 0, err
	}
	s.freeByteOffset = off + size
	if s.offsetIntoCluster(s.freeByteOffset) == 0 {
		s.freeByteOffset = 0
	}
	return off, nil
}
