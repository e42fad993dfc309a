// Package preallocate is QEMU's preallocate filter driver
// (block/preallocate.c): a write past the end of its file child first
// extends the file by prealloc-size bytes (rounded up to prealloc-align)
// with zero writes, so that a growing image does not extend its file
// write by write; the preallocation is cut off again when the filter
// loses its write and resize permissions (reopen -r) and at close.
//
// The filter works only while it holds both write and resize permission
// on its file exclusively, as under a writable format node (qcow2); it
// keeps three positions then: dataEnd (the file's end as far as the
// user wrote it), zeroStart (where the preallocated zeroes begin) and
// fileEnd (the file's real end); -1 means unknown.
package preallocate

import (
	"fmt"

	"gio/blk"
	"gio/blk/qdict"
)

// Driver is the preallocate filter. Like QEMU's it has no
// bdrv_file_open, which makes it a format in blk's sense.
var Driver = &blk.Driver{Name: "preallocate", Format: true, Open: open,
	Options: []blk.Option{{Name: "prealloc-align"}, {Name: "prealloc-size"}}}

const mib = 1 << 20

type node struct {
	file                        *blk.Child
	align, size                 int64 // prealloc-align, prealloc-size
	perms                       bool  // write and resize on the file, unshared
	writablePerms               bool  // a writable parent gives both
	dataEnd, zeroStart, fileEnd int64
	loop                        *blk.Loop
}

var (
	_ blk.ZeroWriter     = (*node)(nil)
	_ blk.Discarder      = (*node)(nil)
	_ blk.Truncater      = (*node)(nil)
	_ blk.Reopener       = (*node)(nil)
	_ blk.OptionReopener = (*node)(nil)
)

// open is preallocate_open. The permissions are those of the parent: a
// writable format node takes write and resize on its file and shares
// neither (blk.OpenFlags.WritablePerms), which is when the filter works.
func open(a *blk.OpenArgs) (blk.Impl, error) {
	file, err := a.OpenChild("file", true, true)
	if err != nil {
		return nil, err
	}
	n := &node{file: file, loop: a.Loop, dataEnd: -1, zeroStart: -1, fileEnd: -1,
		writablePerms: a.Flags.WritablePerms&(blk.PermWrite|blk.PermResize) == blk.PermWrite|blk.PermResize}
	if n.align, n.size, err = n.absorbOpts(a.Opts, a.Warnf); err != nil {
		return nil, err
	}
	n.perms = n.writablePerms && !a.Flags.ReadOnly
	return n, nil
}

// absorbOpts is preallocate_absorb_opts.
func (n *node) absorbOpts(o *qdict.Dict, warnf func(string, ...any)) (align, size int64, err error) {
	al, warn, err := o.TakeSize("prealloc-align", mib)
	if warn != "" && warnf != nil {
		warnf("%s", warn)
	}
	if err != nil {
		return 0, 0, err
	}
	sz, warn, err := o.TakeSize("prealloc-size", 128*mib)
	if warn != "" && warnf != nil {
		warnf("%s", warn)
	}
	if err != nil {
		return 0, 0, err
	}
	if al%512 != 0 {
		return 0, 0, fmt.Errorf("prealloc-align parameter of preallocate filter is not aligned to 512")
	}
	if ra := n.file.Node.Limits().RequestAlignment; int64(al)%ra != 0 {
		return 0, 0, fmt.Errorf("prealloc-align parameter of preallocate filter is not aligned to underlying node request alignment (%d)", ra)
	}
	return int64(al), int64(sz), nil
}

// PrepareReopen is preallocate_reopen_prepare and _commit: new
// prealloc-align and prealloc-size.
func (n *node) PrepareReopen(opts *qdict.Dict, readOnly bool) (func(), error) {
	align, size, err := n.absorbOpts(opts, nil)
	if err != nil {
		return nil, err
	}
	return func() { n.align, n.size = align, size }, nil
}

func (n *node) fileLength(co *blk.Co) (int64, error) { return n.file.Node.Length(co) }

// handleWrite is handle_write: before a write or zero write ending past
// dataEnd, the file is extended with zeroes as far as needed plus
// prealloc-size. It reports whether a zero write falls entirely on
// preallocated zeroes and so has nothing left to do.
func (n *node) handleWrite(co *blk.Co, off, bytes int64, wantMergeZero bool) bool {
	end := off + bytes
	fileAlign := n.file.Node.Limits().RequestAlignment
	preallocAlign := max(n.align, fileAlign)
	if !n.perms {
		return false
	}
	if n.dataEnd < 0 {
		l, err := n.fileLength(co)
		if err != nil {
			return false
		}
		n.dataEnd = l
		if n.fileEnd < 0 {
			n.fileEnd = l
		}
	}
	if end <= n.dataEnd {
		return false
	}
	n.dataEnd = end
	if n.zeroStart < 0 || !wantMergeZero {
		n.zeroStart = end
	}
	if n.fileEnd < 0 {
		l, err := n.fileLength(co)
		if err != nil {
			return false
		}
		n.fileEnd = l
	}
	if end <= n.fileEnd {
		return wantMergeZero && off >= n.zeroStart
	}
	start := n.fileEnd
	if wantMergeZero {
		start = min(off, n.fileEnd)
	}
	start = alignUp(start, fileAlign)
	stop := alignUp(max(start, end)+n.size, preallocAlign)
	wantMergeZero = wantMergeZero && start <= off
	if err := n.file.Node.PWriteZeroes(co, start, stop-start, blk.NoFallback); err != nil {
		n.fileEnd = -1
		return false
	}
	n.fileEnd = stop
	return wantMergeZero
}

func alignUp(v, a int64) int64 { return (v + a - 1) / a * a }

func (n *node) PRead(co *blk.Co, off int64, buf []byte, flags blk.ReqFlags) error {
	return n.file.Node.PRead(co, off, buf, flags)
}

// PWrite is preallocate_co_pwritev_part.
func (n *node) PWrite(co *blk.Co, off int64, buf []byte, flags blk.ReqFlags) error {
	n.handleWrite(co, off, int64(len(buf)), false)
	return n.file.Node.PWrite(co, off, buf, flags)
}

// PWriteZeroes is preallocate_co_pwrite_zeroes: a plain zero write over
// preallocated zeroes is done already.
func (n *node) PWriteZeroes(co *blk.Co, off, bytes int64, flags blk.ReqFlags) error {
	merge := flags&^(blk.ZeroWrite|blk.NoFallback) == 0
	if n.handleWrite(co, off, bytes, merge) {
		return nil
	}
	return n.file.Node.PWriteZeroes(co, off, bytes, flags)
}

func (n *node) PDiscard(co *blk.Co, off, bytes int64) error {
	return n.file.Node.PDiscard(co, off, bytes)
}

// Truncate is preallocate_co_truncate: growing past dataEnd drops the
// filter's preallocation first (but for falloc within it, which just
// takes it over), so that the user's mode decides what the file holds.
func (n *node) Truncate(co *blk.Co, size int64, exact bool, prealloc blk.Prealloc) error {
	if n.dataEnd >= 0 && size > n.dataEnd {
		if n.fileEnd < 0 {
			l, err := n.fileLength(co)
			if err != nil {
				return blk.Errorf(blk.ErrnoOf(err), "failed to get file length")
			}
			n.fileEnd = l
		}
		if prealloc == blk.PreallocFalloc && size <= n.fileEnd {
			n.dataEnd = size
			return nil
		}
		if prealloc != blk.PreallocFalloc && n.fileEnd > n.dataEnd {
			if err := n.file.Node.Truncate(co, n.dataEnd, true, blk.PreallocOff); err != nil {
				n.fileEnd = -1
				return blk.PrefixError("preallocate-filter: failed to drop write-zero preallocation: ", err)
			}
			n.fileEnd = n.dataEnd
		}
		n.dataEnd = size
	}
	if err := n.file.Node.Truncate(co, size, exact, prealloc); err != nil {
		n.fileEnd, n.zeroStart, n.dataEnd = -1, -1, -1
		return err
	}
	if n.perms {
		n.fileEnd, n.zeroStart, n.dataEnd = size, size, size
	}
	return nil
}

// Length is preallocate_getlength: the data's end, not the file's.
func (n *node) Length(co *blk.Co) (int64, error) {
	if n.dataEnd >= 0 {
		return n.dataEnd, nil
	}
	l, err := n.fileLength(co)
	if err != nil {
		return 0, err
	}
	if n.perms {
		n.fileEnd, n.zeroStart, n.dataEnd = l, l, l
	}
	return l, nil
}

// dropPreallocation truncates the file back to dataEnd
// (preallocate_check_perm losing permissions, preallocate_close).
func (n *node) dropPreallocation() error {
	if n.dataEnd < 0 {
		return nil
	}
	return n.loop.RunSync("preallocate: drop preallocation", func(co *blk.Co) error {
		if n.fileEnd < 0 {
			l, err := n.fileLength(co)
			if err != nil {
				return blk.Errorf(blk.ErrnoOf(err), "Failed to get file length")
			}
			n.fileEnd = l
		}
		if n.dataEnd < n.fileEnd {
			if err := n.file.Node.Truncate(co, n.dataEnd, true, blk.PreallocOff); err != nil {
				n.fileEnd = -1
				return blk.Errorf(blk.ErrnoOf(err), "Failed to drop preallocation")
			}
			n.fileEnd = n.dataEnd
		}
		return nil
	})
}

// Reopen is preallocate_check_perm and _set_perm: going read-only the
// filter gives up its permissions and cuts its preallocation off; going
// writable under a writable parent it takes them again, learning the
// file's end anew.
func (n *node) Reopen(readOnly bool) error {
	if readOnly {
		if err := n.dropPreallocation(); err != nil {
			return err
		}
		n.perms = false
		n.fileEnd, n.zeroStart, n.dataEnd = -1, -1, -1
		return nil
	}
	n.perms = n.writablePerms
	return nil
}

// Close is preallocate_close: the file ends where the data ends (a
// failure is ignored, as QEMU does). The file child is closed by blk
// afterwards.
func (n *node) Close() error {
	if n.file != nil && !n.file.Node.ReadOnly() {
		_ = n.dropPreallocation()
	}
	return nil
}
