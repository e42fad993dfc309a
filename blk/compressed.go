package blk

import "golang.org/x/sys/unix"

// PWriteCompressed writes buf compressed at off (bdrv_co_pwritev_part with
// BDRV_REQ_WRITE_COMPRESSED): ENOTSUP when the driver cannot compress.
func (n *Node) PWriteCompressed(co *Co, off int64, buf []byte) error {
	if n.readOnly {
		return unix.EPERM
	}
	if err := checkRequest(off, int64(len(buf))); err != nil {
		return err
	}
	cw := n.ops.compressed
	if cw == nil {
		return unix.ENOTSUP
	}
	if n.readonlyBitmaps() {
		return unix.EPERM
	}
	req := n.track(co, off, int64(len(buf)), trackWrite)
	defer req.end()
	if err := n.waitSerialising(co, req); err != nil {
		return err
	}
	defer n.setDirty(off, int64(len(buf)))
	if flags := n.detectZeroWrite(buf, 0); flags&ZeroWrite != 0 {
		// bdrv_aligned_pwritev turns it into a zero write first.
		n.DebugEvent(co, EvPwritevZero)
		err := n.doPWriteZeroes(co, off, int64(len(buf)), flags)
		n.DebugEvent(co, EvPwritevDone)
		n.writeGen++
		return err
	}
	n.DebugEvent(co, EvPwritev)
	co.markStarted(n.driver)
	err := cw.PWriteCompressed(co, off, buf)
	n.DebugEvent(co, EvPwritevDone)
	n.writeGen++
	return err
}
