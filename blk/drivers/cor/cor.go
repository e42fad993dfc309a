// Package cor is the copy-on-read filter ("copy-on-read"), QEMU's
// block/copy-on-read.c: it passes every request to its file child and
// makes reads copy-on-read there, so what is read from the backing chain
// is copied into the child.
package cor

import (
	"gio/blk"

	"golang.org/x/sys/unix"
)

// Driver is the copy-on-read filter.
// Like QEMU, it opens like a format (a file name names its file child)
// but is never probed.
var Driver = &blk.Driver{Name: "copy-on-read", Format: true, Open: open}

type node struct {
	file *blk.Child
}

var (
	_ blk.ZeroWriter      = (*node)(nil)
	_ blk.Discarder       = (*node)(nil)
	_ blk.LimitsRefresher = (*node)(nil)
	_ blk.Truncater       = (*node)(nil)
)

// open is cor_open. The filter writes what it copies, so it needs a
// writable child (cor_child_perm takes WRITE_UNCHANGED).
func open(a *blk.OpenArgs) (blk.Impl, error) {
	if _, ok := a.Opts.TakeString("bottom"); ok {
		return nil, blk.Msgf(unix.EINVAL, "The 'bottom' option of copy-on-read is not supported by gio")
	}
	if a.Flags.ReadOnly {
		return nil, blk.Msgf(unix.EPERM, "Block node is read-only")
	}
	f, err := a.OpenChild("file", true, true)
	if err != nil {
		return nil, err
	}
	return &node{file: f}, nil
}

// PRead reads from the child with copy-on-read.
func (n *node) PRead(co *blk.Co, off int64, buf []byte, flags blk.ReqFlags) error {
	return n.file.Node.PRead(co, off, buf, flags|blk.CopyOnRead)
}

// PWrite passes the write on.
func (n *node) PWrite(co *blk.Co, off int64, buf []byte, flags blk.ReqFlags) error {
	return n.file.Node.PWrite(co, off, buf, flags)
}

// PWriteZeroes passes the zero write on.
func (n *node) PWriteZeroes(co *blk.Co, off, bytes int64, flags blk.ReqFlags) error {
	return n.file.Node.PWriteZeroes(co, off, bytes, flags)
}

// PDiscard passes the discard on.
func (n *node) PDiscard(co *blk.Co, off, bytes int64) error {
	return n.file.Node.PDiscard(co, off, bytes)
}

// Length is the child's.
func (n *node) Length(co *blk.Co) (int64, error) { return n.file.Node.Length(co) }

// Truncate passes the resize on.
func (n *node) Truncate(co *blk.Co, size int64, exact bool, prealloc blk.Prealloc) error {
	return n.file.Node.Truncate(co, size, exact, prealloc)
}

// RefreshLimits keeps the child's request flags.
func (n *node) RefreshLimits(l *blk.Limits) {
	cl := n.file.Node.Limits()
	l.SupportedWriteFlags = cl.SupportedWriteFlags
	l.SupportedZeroFlags = cl.SupportedZeroFlags
}

// Info passes the child's cluster size on, as a filter does.
func (n *node) Info() (blk.Info, error) {
	if i, ok := n.file.Node.Impl().(blk.Infoer); ok {
		inf, err := i.Info()
		inf.Specific = nil
		return inf, err
	}
	return blk.Info{}, nil
}

// Close has nothing to release.
func (n *node) Close() error { return nil }
