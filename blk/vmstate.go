package blk

import "golang.org/x/sys/unix"

// LoadVMState reads len(buf) bytes at pos of the VM state area
// (bdrv_co_readv_vmstate): the node's driver serves it if it has such an
// area, else the primary child (a filter's image, a format's file) is
// asked in turn; a node without either answers ENOTSUP. The generic
// request path (alignment, tracking, the length check) is not involved:
// the area lies beyond the disk.
func (n *Node) LoadVMState(co *Co, buf []byte, pos int64) error {
	return n.vmstate(co, buf, pos, false)
}

// SaveVMState writes buf at pos of the VM state area
// (bdrv_co_writev_vmstate), found as LoadVMState finds it.
func (n *Node) SaveVMState(co *Co, buf []byte, pos int64) error {
	return n.vmstate(co, buf, pos, true)
}

func (n *Node) vmstate(co *Co, buf []byte, pos int64, save bool) error {
	if err := checkRequest(pos, int64(len(buf))); err != nil {
		return err
	}
	for n != nil {
		if v, ok := n.impl.(VMStater); ok {
			if save {
				return v.SaveVMState(co, buf, pos)
			}
			return v.LoadVMState(co, buf, pos)
		}
		n = n.primary()
	}
	return unix.ENOTSUP
}

// primary is bdrv_primary_bs: the child a filter passes requests to
// (blkdebug's image), or a format's file.
func (n *Node) primary() *Node {
	if n.file != nil {
		return n.file.Node
	}
	return nil
}

// LoadVMState reads the root's VM state area (blk_load_vmstate).
func (b *Backend) LoadVMState(co *Co, buf []byte, pos int64) error {
	return b.Root.LoadVMState(co, buf, pos)
}

// SaveVMState writes the root's VM state area and, in writethrough mode,
// flushes (blk_save_vmstate).
func (b *Backend) SaveVMState(co *Co, buf []byte, pos int64) error {
	if err := b.Root.SaveVMState(co, buf, pos); err != nil {
		return err
	}
	if b.writeThrough {
		return b.Root.Flush(co)
	}
	return nil
}
