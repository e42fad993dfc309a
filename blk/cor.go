package blk

// Copy-on-read (QEMU's bdrv_co_do_copy_on_readv): a read of a node with
// copy-on-read enabled copies what it reads from below (the backing file)
// into the node, cluster by cluster, so that later reads find it there.

// CopyOnRead asks the generic read path to copy what it reads into the
// node (BDRV_REQ_COPY_ON_READ). Nodes opened with copy-on-read set it on
// every read; the copy-on-read filter sets it on its child's reads.
const CopyOnRead ReqFlags = 1 << 16

// SetCopyOnRead enables copy-on-read on the node (qemu-io -C).
func (n *Node) SetCopyOnRead(on bool) { n.copyOnRead = on }

// clusterSize is bdrv_get_cluster_size: the format's cluster size, else
// the request alignment.
func (n *Node) clusterSize() int64 {
	if inf, ok := n.impl.(Infoer); ok {
		if i, err := inf.Info(); err == nil && i.ClusterSize > 0 {
			return i.ClusterSize
		}
	}
	return n.limits.RequestAlignment
}

// copyOnReadPRead is the copy-on-read part of bdrv_aligned_preadv, after
// the request has been made serialising to clusters. It reports false
// when the range is allocated in the node already (a plain read then
// does), else carries the read out, copying the unallocated clusters.
func (n *Node) copyOnReadPRead(co *Co, off int64, buf []byte) (bool, error) {
	bytes := int64(len(buf))
	st, err := n.BlockStatus(co, false, off, bytes)
	if err != nil {
		return true, err
	}
	if st.Flags&StatusAllocated != 0 && st.Pnum == bytes {
		return false, nil
	}
	cs := n.clusterSize()
	cOff := roundDown(off, cs)
	cBytes := roundUp(off+bytes, cs) - cOff
	skip := off - cOff
	maxTransfer := n.maxTransfer()
	bounce := make([]byte, min(int64(maxBounce), cBytes))
	progress := int64(0)
	for cBytes > 0 {
		pnum := min(cBytes, maxTransfer)
		allocated := false
		if st, err := n.BlockStatus(co, false, cOff, pnum); err == nil {
			// Errors count as unallocated: the read that follows
			// will report a better errno.
			if st.Pnum == 0 {
				break // the image ends inside the cluster
			}
			pnum, allocated = st.Pnum, st.Flags&StatusAllocated != 0
		}
		if !allocated {
			pnum = min(pnum, int64(maxBounce))
			b := bounce[:pnum]
			if err := n.impl.PRead(co, cOff, b, 0); err != nil {
				return true, err
			}
			n.DebugEvent(co, EvCorWrite)
			var err error
			if _, ok := n.impl.(ZeroWriter); ok && isZero(b) {
				err = n.doPWriteZeroes(co, cOff, pnum, 0)
			} else {
				// The data does not change: no flush, even in
				// writethrough mode.
				err = n.driverPWrite(co, cOff, b, 0)
			}
			if err != nil {
				return true, err
			}
			copy(buf[progress:], b[skip:skip+min(pnum-skip, bytes-progress)])
		} else if err := n.impl.PRead(co, off+progress, buf[progress:progress+min(pnum-skip, bytes-progress)], 0); err != nil {
			return true, err
		}
		cOff += pnum
		cBytes -= pnum
		progress += pnum - skip
		skip = 0
	}
	return true, nil
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
