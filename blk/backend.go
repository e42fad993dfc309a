package blk

import (
	"errors"

	"golang.org/x/sys/unix"
)

// Backend is what a user of the block layer holds: the root node of an
// opened graph plus the settings that belong to the user rather than to a
// node (QEMU's BlockBackend). It checks requests against the image length
// and turns writes into FUA writes in writethrough mode.
type Backend struct {
	Root         *Node
	loop         *Loop
	writeThrough bool
	probed       bool
	flags        OpenFlags
	copyOnRead   bool // cor.go
	// userWrite says qemu-io's BlockBackend holds the write permission:
	// from a read-write open, or from a write command since (TakePerm);
	// reopen to read-only drops it (DropUserWrite).
	userWrite bool
}

// HoldsWrite reports whether the backend's user holds the write
// permission, which a reopen to read-only through "-o read-only=on"
// (not -r, which drops it) then fails on.
func (b *Backend) HoldsWrite() bool { return b.userWrite }

// DropUserWrite gives up the user's write permission, as reopen_f does
// before a reopen without BDRV_O_RDWR.
func (b *Backend) DropUserWrite() { b.userWrite = false }

// CopyOnRead reports whether copy-on-read is on (SetCopyOnRead).
func (b *Backend) CopyOnRead() bool { return b.copyOnRead }

// Loop returns the loop requests of this backend run on.
func (b *Backend) Loop() *Loop { return b.loop }

// Probed reports whether the format was guessed (qemu-io then warns).
func (b *Backend) Probed() bool { return b.probed }

// ReadOnly reports whether writes are refused.
func (b *Backend) ReadOnly() bool { return b.Root.readOnly }

// WriteThrough reports whether every write is followed by a flush.
func (b *Backend) WriteThrough() bool { return b.writeThrough }

// checkByteRequest is blk_check_byte_request: anything past the end is EIO.
func (b *Backend) checkByteRequest(co *Co, off, bytes int64) error {
	if bytes < 0 {
		return unix.EIO
	}
	if !b.Root.inserted() {
		return unix.ENOMEDIUM
	}
	if off < 0 {
		return unix.EIO
	}
	l, err := b.Root.Length(co)
	if err != nil {
		return err
	}
	if off > l || l-off < bytes {
		return unix.EIO
	}
	return nil
}

// PRead reads len(buf) bytes at off.
func (b *Backend) PRead(co *Co, off int64, buf []byte) error {
	if err := b.checkByteRequest(co, off, int64(len(buf))); err != nil {
		return err
	}
	return b.pread(co, off, buf)
}

// pread reads a checked range, copying on read when that is on.
func (b *Backend) pread(co *Co, off int64, buf []byte) error {
	if b.copyOnRead {
		return b.readCopyOnRead(co, off, buf)
	}
	return b.Root.PRead(co, off, buf, 0)
}

func (b *Backend) writeFlags(flags ReqFlags) ReqFlags {
	if b.writeThrough {
		flags |= FUA
	}
	return flags
}

// PWrite writes buf at off.
func (b *Backend) PWrite(co *Co, off int64, buf []byte, flags ReqFlags) error {
	if err := b.checkByteRequest(co, off, int64(len(buf))); err != nil {
		return err
	}
	return b.Root.PWrite(co, off, buf, b.writeFlags(flags))
}

// PWriteZeroes writes zeroes over [off, off+bytes).
func (b *Backend) PWriteZeroes(co *Co, off, bytes int64, flags ReqFlags) error {
	if err := b.checkByteRequest(co, off, bytes); err != nil {
		return err
	}
	return b.Root.PWriteZeroes(co, off, bytes, b.writeFlags(flags))
}

// PDiscard discards [off, off+bytes).
func (b *Backend) PDiscard(co *Co, off, bytes int64) error {
	if err := b.checkByteRequest(co, off, bytes); err != nil {
		return err
	}
	return b.Root.PDiscard(co, off, bytes)
}

// Flush flushes the whole graph.
func (b *Backend) Flush(co *Co) error {
	if !b.Root.inserted() {
		return unix.ENOMEDIUM
	}
	return b.Root.Flush(co)
}

// MediumReporter is implemented by nodes whose medium can be missing (a
// CD-ROM drive without a disc; QEMU's bdrv_is_inserted). Without it a
// node has its medium when all its children have theirs.
type MediumReporter interface{ Inserted() bool }

// inserted is bdrv_is_inserted.
func (n *Node) inserted() bool {
	if m, ok := n.impl.(MediumReporter); ok {
		return m.Inserted()
	}
	for _, c := range n.children {
		if !c.Node.inserted() {
			return false
		}
	}
	return true
}

// Length returns the image length (rounded up to 512).
func (b *Backend) Length(co *Co) (int64, error) {
	if !b.Root.inserted() {
		return 0, unix.ENOMEDIUM
	}
	return b.Root.Length(co)
}

// Truncate resizes the image.
func (b *Backend) Truncate(co *Co, size int64, prealloc Prealloc) error {
	if !b.Root.inserted() {
		return Msgf(unix.ENOMEDIUM, "No medium inserted")
	}
	return b.Root.Truncate(co, size, false, prealloc)
}

// IsAllocated answers whether [off, off+bytes) starts with allocated data
// in the top layer and for how many bytes the answer holds
// (bdrv_is_allocated, which qemu-io's map and alloc use).
func (b *Backend) IsAllocated(co *Co, off, bytes int64) (bool, int64, error) {
	st, err := b.Root.BlockStatus(co, false, off, bytes)
	if err != nil {
		return false, 0, err
	}
	return st.Flags&StatusAllocated != 0, st.Pnum, nil
}

// BlockStatus answers byte-based block status with want_zero set, walking
// the backing chain (bdrv_block_status_above, as qemu-img map uses it).
func (b *Backend) BlockStatus(co *Co, off, bytes int64) (Status, error) {
	n := b.Root
	depth := 0
	for {
		st, err := n.BlockStatus(co, true, off, bytes)
		if err != nil {
			return st, err
		}
		st.Depth = depth
		// qemu-img map's get_block_status stops at the first layer that
		// says data or zero: zeroes past the end of a shorter backing
		// file belong to the layer above it.
		if st.Flags&(StatusAllocated|StatusData|StatusZero) != 0 {
			return st, nil
		}
		back := n.backing()
		if back == nil {
			return st, nil
		}
		bytes = st.Pnum
		n = back
		depth++
	}
}

func (n *Node) backing() *Node {
	for _, c := range n.children {
		if c.Name == "backing" {
			return c.Node
		}
	}
	return nil
}

// Info returns format information, asking the top node (and, for a
// filter or protocol on top, QEMU prints the format name twice; that is
// the caller's business).
func (b *Backend) Info() (Info, error) { return infoFrom(b.Root) }

// Info is bdrv_get_info on the node (see infoFrom).
func (n *Node) Info() (Info, error) { return infoFrom(n) }

// infoFrom is bdrv_get_info on top: the first node down the filters'
// primary children that has information gives it; a format node without
// any (bochs, cloop) has none, as in QEMU.
func infoFrom(top *Node) (Info, error) {
	for n := top; n != nil; {
		if n.ops.info != nil {
			info, err := n.ops.info.Info()
			if n != top {
				info.Specific = nil
			}
			return info, err
		}
		if n.file == nil || n.driver.imageFormat() {
			break
		}
		n = n.file.Node
	}
	return Info{}, unix.ENOTSUP
}

// dataNodes lists the nodes the image's user writes through: the root and
// every node reached from it without crossing a backing edge, children
// before their parents. Backing files are not among them: QEMU opens them
// read-only, keeps them so across reopen, and takes only consistent read
// on them (bdrv_default_perms_for_cow), so that other processes may read
// (qemu-img info) or even use a base image while an overlay is written.
func (b *Backend) dataNodes() []*Node {
	var nodes []*Node
	eachDataNode(b.Root, func(n *Node) error { nodes = append(nodes, n); return nil })
	return nodes
}

// eachDataNode calls fn on n and the nodes below it that dataNodes lists,
// in the same order, until fn fails.
func eachDataNode(n *Node, fn func(*Node) error) error {
	for _, c := range n.children {
		if c.Name != "backing" {
			if err := eachDataNode(c.Node, fn); err != nil {
				return err
			}
		}
	}
	return fn(n)
}

// CheckReopen fails, with QEMU's message, when the driver of a node in
// the graph cannot be reopened at all (Driver.NoReopen); reopen -r/-w and
// option changes call it before changing anything. bdrv_reopen queues
// every child, backing files included, so a bochs or cloop backing file
// fails the reopen of the qcow2 image above it too.
func (b *Backend) CheckReopen() error {
	return checkReopen(b.Root)
}

func checkReopen(n *Node) error {
	for _, c := range n.children {
		if err := checkReopen(c.Node); err != nil {
			return err
		}
	}
	if n.driver.NoReopen {
		return Msgf(unix.ENOTSUP, "Block format '%s' used by node '%s' does not support reopening files", n.driver.Name, n.MessageName())
	}
	return nil
}

// SetReadOnly changes the read-only state of the image's data nodes
// (reopen -r/-w); backing files stay read-only. Nodes holding OS
// resources or caches reopen them first, parents before children; when one fails, those already reopened
// are reopened back, so a failure leaves the graph as it was.
func (b *Backend) SetReadOnly(ro bool) error {
	if err := b.CheckReopen(); err != nil {
		return err
	}
	nodes := b.dataNodes()
	var done []Reopener
	var changed []*Node
	// Parents first: a format going read-only writes its caches back
	// (qcow2_reopen_prepare) while its file can still take them.
	for i := len(nodes) - 1; i >= 0; i-- {
		n := nodes[i]
		r := n.ops.reopen
		if r == nil || n.readOnly == ro {
			continue
		}
		if err := r.Reopen(ro); err != nil {
			for i := len(done) - 1; i >= 0; i-- {
				// Going back to the mode a node was just in reopens
				// what it held a moment ago; should that fail too, the
				// node keeps working in the new mode, which its own
				// flag below does not claim.
				_ = done[i].Reopen(!ro)
			}
			return err
		}
		done = append(done, r)
		changed = append(changed, n)
	}
	for _, n := range nodes {
		n.readOnly = ro
	}
	b.flags.ReadOnly = ro
	for _, n := range changed {
		if f := n.ops.finish; f != nil {
			f.ReopenCommitted(ro)
		}
	}
	return nil
}

// SetWriteThrough changes the cache mode's writethrough part.
func (b *Backend) SetWriteThrough(wt bool) { b.writeThrough = wt }

// SetNoFlush changes whether flushes reach the disk (cache=unsafe).
func (b *Backend) SetNoFlush(nf bool) {
	b.flags.NoFlush = nf
	var walk func(n *Node)
	walk = func(n *Node) {
		n.noFlush = nf
		for _, c := range n.children {
			walk(c.Node)
		}
	}
	walk(b.Root)
}

// SetDirect switches cache.direct (O_DIRECT) on or off for every node of
// the graph, backing files included, as a reopen with cache.direct or -c
// does in QEMU (children inherit the option). The limits are refreshed
// afterwards (bdrv_reopen_commit's bdrv_refresh_limits), so requests use
// the alignment found with the new descriptors. A failure leaves the
// graph as it was.
func (b *Backend) SetDirect(direct bool) error {
	var nodes []*Node
	seen := map[*Node]bool{}
	var walk func(n *Node)
	walk = func(n *Node) {
		if seen[n] {
			return
		}
		seen[n] = true
		for _, c := range n.children {
			walk(c.Node)
		}
		nodes = append(nodes, n)
	}
	walk(b.Root)
	var done []DirectReopener
	for _, n := range nodes {
		if n.ops.direct == nil {
			continue
		}
		if err := n.ops.direct.ReopenDirect(direct); err != nil {
			for i := len(done) - 1; i >= 0; i-- {
				_ = done[i].ReopenDirect(!direct)
			}
			return err
		}
		done = append(done, n.ops.direct)
	}
	b.flags.Direct = direct
	for _, n := range nodes {
		n.refreshLimits()
	}
	return nil
}

// Flags returns the flags the image was opened with.
func (b *Backend) Flags() OpenFlags { return b.flags }

// Close drains every request, flushes a writable image and closes the
// graph. A drain that can never finish (a request suspended at a
// breakpoint nobody resumes) is returned as *ErrStuck after the graph is
// closed anyway, so that the shell goes on.
func (b *Backend) Close() error {
	err := b.loop.Drain("close")
	if err == nil && !b.Root.readOnly {
		var ferr error
		co := b.loop.Spawn("flush at close", func(co *Co) { ferr = b.Root.Flush(co) })
		err = b.loop.RunUntil("flush at close", co.Done)
		_ = ferr // qemu-io ignores flush errors at close
	}
	var stuck *ErrStuck
	if errors.As(err, &stuck) {
		b.loop.Abandon()
	}
	b.Root.close()
	return err
}

// PWriteCompressed writes compressed data (blk_pwrite_compressed): ENOTSUP
// unless the top node's format compresses (qcow2).
func (b *Backend) PWriteCompressed(co *Co, off int64, buf []byte) error {
	if err := b.checkByteRequest(co, off, int64(len(buf))); err != nil {
		return err
	}
	return b.Root.PWriteCompressed(co, off, buf)
}
