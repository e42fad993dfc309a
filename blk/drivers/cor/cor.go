// Package cor is QEMU's copy-on-read filter driver ("copy-on-read",
// block/copy-on-read.c): every read through it copies what its child does
// not have itself (what the child's backing file gives) into the child,
// so a later read no longer needs the backing file. Writes, zero writes,
// discards, block status, length and resizing pass through.
package cor

import (
	"fmt"

	"gio/blk"

	"golang.org/x/sys/unix"
)

// Driver is the copy-on-read filter driver. It has no bdrv_file_open,
// which makes it a format in blk's sense: a file name given to it names
// its file child, and its option errors say "Block format".
var Driver = &blk.Driver{Name: "copy-on-read", Format: true, Open: open, Options: []blk.Option{{Name: "bottom"}}}

type node struct{ file *blk.Child }

var (
	_ blk.ZeroWriter    = (*node)(nil)
	_ blk.Discarder     = (*node)(nil)
	_ blk.BlockStatuser = (*node)(nil)
	_ blk.Truncater     = (*node)(nil)
)

// open is cor_open. The filter writes to its child even when reading
// (it takes the write-unchanged permission), so a read-only open fails
// as QEMU's does. The "bottom" option (stop copying at a named node) is
// not supported.
func open(a *blk.OpenArgs) (blk.Impl, error) {
	if bottom, ok := a.Opts.TakeString("bottom"); ok {
		return nil, fmt.Errorf("Bottom node '%s' not found", bottom)
	}
	file, err := a.OpenChild("file", true, true)
	if err != nil {
		return nil, err
	}
	if a.Flags.ReadOnly {
		return nil, blk.Msgf(unix.EPERM, "Block node is read-only")
	}
	return &node{file: file}, nil
}

// PRead is cor_co_preadv_part: the read goes to the child with
// copy-on-read.
func (n *node) PRead(co *blk.Co, off int64, buf []byte, flags blk.ReqFlags) error {
	return n.file.Node.ReadCopyOnRead(co, off, buf)
}

func (n *node) PWrite(co *blk.Co, off int64, buf []byte, flags blk.ReqFlags) error {
	return n.file.Node.PWrite(co, off, buf, flags)
}

func (n *node) PWriteZeroes(co *blk.Co, off, bytes int64, flags blk.ReqFlags) error {
	return n.file.Node.PWriteZeroes(co, off, bytes, flags)
}

func (n *node) PDiscard(co *blk.Co, off, bytes int64) error {
	return n.file.Node.PDiscard(co, off, bytes)
}

// BlockStatus passes the question to the child, at the same offset.
func (n *node) BlockStatus(co *blk.Co, wantZero bool, off, bytes int64) (blk.Status, error) {
	return blk.Status{Flags: blk.StatusRaw | blk.StatusOffsetValid, Pnum: bytes, Map: off, File: n.file.Node}, nil
}

func (n *node) Length(co *blk.Co) (int64, error) { return n.file.Node.Length(co) }

func (n *node) Truncate(co *blk.Co, size int64, exact bool, prealloc blk.Prealloc) error {
	return n.file.Node.Truncate(co, size, exact, prealloc)
}

// Close implements blk.Impl; the child is closed by blk.
func (n *node) Close() error { return nil }
