// Package raw is the raw format driver: a pass-through format over a child
// node, optionally exposing only a window of it (offset, size).
package raw

import (
	"gio/blk"

	"golang.org/x/sys/unix"
)

// Driver is the raw format driver.
var Driver = &blk.Driver{
	Name:        "raw",
	Format:      true,
	PassThrough: true, // it only moves requests by its offset
	Probe:       func([]byte) int { return 1 },
	Open:        open,
	Options:     []blk.Option{{Name: "offset"}, {Name: "size"}},
}

type node struct {
	file    *blk.Child
	offset  int64
	size    int64
	hasSize bool
	self    *blk.Node
	loop    *blk.Loop // for checks outside requests (open, reopen)
	// blocksWrite reports whether data written to block 0 of a probed
	// image would probe as another format.
	blocksWrite func([]byte) bool
}

func open(a *blk.OpenArgs) (blk.Impl, error) {
	n := &node{self: a.Node(), loop: a.Loop, blocksWrite: a.ProbesAsOtherFormat}
	off, warn, err := a.Opts.TakeSize("offset", 0)
	if warn != "" {
		a.Warnf("%s", warn)
	}
	if err != nil {
		return nil, err
	}
	n.offset = int64(off)
	if _, ok := a.Opts.Get("size"); ok {
		n.hasSize = true
		size, warn, err := a.Opts.TakeSize("size", 0)
		if warn != "" {
			a.Warnf("%s", warn)
		}
		if err != nil {
			return nil, err
		}
		n.size = int64(size)
	}
	if n.file, err = a.OpenChild("file", true, true); err != nil {
		return nil, err
	}
	a.WarnProbed()
	if err := n.applyOptions(a.Loop); err != nil {
		return nil, err
	}
	return n, nil
}

// applyOptions checks offset and size against the file (raw_apply_options).
// Open runs outside any request, and the child's length may need I/O
// that yields (a format child reading its header, a protocol waiting on
// a server): it is asked in a request of its own. Without an offset or a
// size there is nothing to check, and no request is made, so that the
// numbers of the user's requests (#1, #2 in gio's messages) do not depend
// on the format; QEMU asks anyway, and fails the open where the length
// cannot be had, which gio's first request then reports instead.
func (n *node) applyOptions(loop *blk.Loop) error {
	if n.offset == 0 && !n.hasSize {
		return nil
	}
	var real int64
	err := loop.RunSync("raw open: length", func(co *blk.Co) (err error) {
		real, err = n.file.Node.Length(co)
		return err
	})
	if err != nil {
		return blk.Errorf(blk.ErrnoOf(err), "Could not get image size")
	}
	switch {
	case n.offset > real:
		return blk.Msgf(unix.EINVAL, "Offset (%d) cannot be greater than size of the containing file (%d)", n.offset, real)
	case n.hasSize && real-n.offset < n.size:
		return blk.Msgf(unix.EINVAL, "The sum of offset (%d) and size (%d) has to be smaller or equal to the  actual size of the containing file (%d)", n.offset, n.size, real)
	case n.hasSize && n.size%512 != 0:
		return blk.Msgf(unix.EINVAL, "Specified size is not multiple of 512")
	}
	return nil
}

// adjust maps a request into the child, refusing to leak outside an
// explicit size (raw_adjust_offset).
func (n *node) adjust(off, bytes int64, write bool) (int64, error) {
	if n.hasSize && (off > n.size || bytes > n.size-off) {
		if write {
			return 0, unix.ENOSPC
		}
		return 0, unix.EINVAL
	}
	return off + n.offset, nil
}

func (n *node) PRead(co *blk.Co, off int64, buf []byte, flags blk.ReqFlags) error {
	off, err := n.adjust(off, int64(len(buf)), false)
	if err != nil {
		return err
	}
	n.file.Event(co, blk.EvReadAIO)
	return n.file.Node.PRead(co, off, buf, flags)
}

func (n *node) PWrite(co *blk.Co, off int64, buf []byte, flags blk.ReqFlags) error {
	if n.self.Probed() && off < 512 && len(buf) > 0 && n.blocksWrite != nil && n.blocksWrite(buf[:min(512, len(buf))]) {
		return unix.EPERM
	}
	off, err := n.adjust(off, int64(len(buf)), true)
	if err != nil {
		return err
	}
	n.file.Event(co, blk.EvWriteAIO)
	return n.file.Node.PWrite(co, off, buf, flags)
}

func (n *node) PWriteZeroes(co *blk.Co, off, bytes int64, flags blk.ReqFlags) error {
	off, err := n.adjust(off, bytes, true)
	if err != nil {
		return err
	}
	return n.file.Node.PWriteZeroes(co, off, bytes, flags)
}

func (n *node) PDiscard(co *blk.Co, off, bytes int64) error {
	off, err := n.adjust(off, bytes, true)
	if err != nil {
		return err
	}
	return n.file.Node.PDiscard(co, off, bytes)
}

// Length is raw_getlength: the explicit size, clipped to what the file
// still holds past the offset.
func (n *node) Length(co *blk.Co) (int64, error) {
	l, err := n.file.Node.Length(co)
	if err != nil {
		return 0, err
	}
	if n.hasSize {
		return max(0, min(n.size, l-n.offset)), nil
	}
	return max(0, l-n.offset), nil
}

func (n *node) BlockStatus(co *blk.Co, wantZero bool, off, bytes int64) (blk.Status, error) {
	return blk.Status{Flags: blk.StatusRaw | blk.StatusOffsetValid, Pnum: bytes, Map: off + n.offset, File: n.file.Node}, nil
}

func (n *node) Truncate(co *blk.Co, size int64, exact bool, prealloc blk.Prealloc) error {
	if n.hasSize {
		return blk.Msgf(unix.ENOTSUP, "Cannot resize fixed-size raw disks")
	}
	if 1<<63-1-size < n.offset {
		return blk.Msgf(unix.EINVAL, "Disk size too large for the chosen offset")
	}
	return n.file.Node.Truncate(co, size+n.offset, exact, prealloc)
}

// RefreshLimits passes the child's data-path limits up (raw adds none of
// its own), so that a blkdebug max-transfer splits requests at the raw
// layer, each piece with its own read_aio/write_aio event.
func (n *node) RefreshLimits(l *blk.Limits) {
	cl := n.file.Node.Limits()
	l.SupportedWriteFlags = cl.SupportedWriteFlags & (blk.FUA)
	l.SupportedZeroFlags = cl.SupportedZeroFlags & (blk.FUA | blk.MayUnmap | blk.NoFallback)
}

func (n *node) Close() error { return nil }

// Info is raw_get_info: the file's information (bdrv_get_info does not
// look below a format node that has none of its own).
func (n *node) Info() (blk.Info, error) {
	info, err := n.file.Node.Info()
	info.Specific = nil
	return info, err
}

var (
	_ blk.ZeroWriter      = (*node)(nil)
	_ blk.Discarder       = (*node)(nil)
	_ blk.BlockStatuser   = (*node)(nil)
	_ blk.Truncater       = (*node)(nil)
	_ blk.LimitsRefresher = (*node)(nil)
)

var _ blk.Rewinder = (*node)(nil)

// Mark implements blk.Rewinder: requests change nothing of a raw node
// (its offset and size change only by reopen).
func (n *node) Mark() (func() error, error) { return func() error { return nil }, nil }
