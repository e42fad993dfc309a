package blk

import "golang.org/x/sys/unix"

// corMaxBounce is QEMU's MAX_BOUNCE_BUFFER: the most one copy-on-read
// step reads and writes back.
const corMaxBounce = 32768 << 9

// reqMaxBytes is BDRV_REQUEST_MAX_BYTES, the largest single request.
const reqMaxBytes = (1<<31 - 1) &^ 511

// SetCopyOnRead turns copy-on-read on for the backend (qemu-io -C,
// open -C; QEMU's bdrv_enable_copy_on_read on the top node): data read
// from below the top node (its backing file) is written into the top
// node as it is read. A read-only image refuses it with QEMU's message.
func (b *Backend) SetCopyOnRead() error {
	if b.Root.readOnly {
		return Msgf(unix.EINVAL, "Can't use copy-on-read on read-only device")
	}
	b.copyOnRead = true
	return nil
}

// readCopyOnRead is bdrv_aligned_preadv with BDRV_REQ_COPY_ON_READ: a
// range the top node has entirely goes the usual way; otherwise
// bdrv_co_do_copy_on_readv covers whole clusters, reading what the top
// node lacks into a bounce buffer, writing it back (zeroes as a zero
// write where the driver has one, after the cor_write event), and
// reading the rest directly.
func (b *Backend) readCopyOnRead(co *Co, off int64, buf []byte) error {
	return b.Root.ReadCopyOnRead(co, off, buf)
}

// ReadCopyOnRead reads buf at off from n, copying what n does not have
// itself (what its backing file gives) into n on the way: the
// copy-on-read filter driver reads its child this way. The range must
// lie within n.
func (n *Node) ReadCopyOnRead(co *Co, off int64, buf []byte) error {
	bytes := int64(len(buf))
	if bytes == 0 {
		// bdrv_co_preadv_part drops an unaligned empty request; an
		// aligned one is "not allocated" (block status of nothing), so
		// the cluster around off is copied, as for any other read.
		if align := n.Limits().RequestAlignment; align > 1 && off%align != 0 {
			return nil
		}
	}
	// bdrv_aligned_preadv makes a copy-on-read request serialising over
	// whole clusters: it waits for the overlapping requests in flight
	// (an aio_write being allocated) and later ones wait for it, so the
	// read and its write-back are atomic.
	align := n.Limits().RequestAlignment
	if info, err := infoFrom(n); err == nil && info.ClusterSize > 0 {
		align = info.ClusterSize
	}
	req := n.track(co, off, bytes, trackRead)
	defer req.end()
	if err := n.makeSerialising(co, req, align); err != nil {
		return err
	}
	if bytes > 0 {
		alloc, pnum, err := n.isAllocated(co, off, bytes)
		if err != nil {
			return err
		}
		if alloc && pnum == bytes {
			return n.PRead(co, off, buf, 0)
		}
	}
	length, err := n.Length(co)
	if err != nil {
		return err
	}
	cluster := align
	maxTransfer := roundDown(minNonZero(n.Limits().MaxTransfer, reqMaxBytes), cluster)
	cstart := roundDown(off, cluster)
	cbytes := roundUp(off+bytes, cluster) - cstart
	skip := off - cstart
	var progress int64
	for cbytes > 0 && cstart < length {
		want := min(cbytes, maxTransfer, length-cstart)
		alloc, pnum, err := n.isAllocated(co, cstart, want)
		if err != nil {
			// As QEMU: the read below will fail with a better errno.
			alloc, pnum = false, want
		}
		if !alloc && pnum == 0 {
			break
		}
		if !alloc {
			pnum = min(pnum, corMaxBounce)
			bounce := make([]byte, pnum)
			if err := n.PRead(co, cstart, bounce, 0); err != nil {
				return err
			}
			n.DebugEvent(co, EvCorWrite)
			if n.ops.zero != nil && isZero(bounce) {
				err = n.PWriteZeroes(co, cstart, pnum, 0)
			} else {
				err = n.PWrite(co, cstart, bounce, 0)
			}
			if err != nil {
				return err
			}
			if k := min(pnum-skip, bytes-progress); k > 0 {
				copy(buf[progress:], bounce[skip:skip+k])
			}
		} else if k := min(pnum-skip, bytes-progress); k > 0 {
			if err := n.PRead(co, off+progress, buf[progress:progress+k], 0); err != nil {
				return err
			}
		}
		// A chunk can end before off (gio rounds to whole clusters,
		// QEMU to subclusters and asserts skip_bytes < pnum, which an
		// extended_l2 image can still break: it aborts).
		cstart += pnum
		cbytes -= pnum
		progress += max(pnum-skip, 0)
		skip = max(skip-pnum, 0)
	}
	return nil
}

// isAllocated is bdrv_is_allocated on n alone (its backing file does not
// count).
func (n *Node) isAllocated(co *Co, off, bytes int64) (bool, int64, error) {
	st, err := n.BlockStatus(co, false, off, bytes)
	if err != nil {
		return false, 0, err
	}
	return st.Flags&StatusAllocated != 0, st.Pnum, nil
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
