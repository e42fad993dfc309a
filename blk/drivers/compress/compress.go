// Package compress is QEMU's compress filter driver ("compress",
// block/filter-compress.c): every write through it is written compressed
// by the format below (qcow2's write -c). Its request alignment is the
// child's cluster size, so a partial cluster is read, completed and
// written compressed whole. Reads, zero writes, discards and block status
// pass through.
package compress

import (
	"fmt"

	"gio/blk"
)

// Driver is the compress filter driver; like QEMU's it has no
// bdrv_file_open, which makes it a format in blk's sense (a file name
// names its file child; option errors say "Block format").
var Driver = &blk.Driver{Name: "compress", Format: true, Open: open}

type node struct{ file *blk.Child }

var (
	_ blk.ZeroWriter      = (*node)(nil)
	_ blk.Discarder       = (*node)(nil)
	_ blk.BlockStatuser   = (*node)(nil)
	_ blk.LimitsRefresher = (*node)(nil)
)

// open is compress_open: the child's format must be able to write
// compressed data.
func open(a *blk.OpenArgs) (blk.Impl, error) {
	file, err := a.OpenChild("file", true, true)
	if err != nil {
		return nil, err
	}
	if _, ok := file.Node.Impl().(blk.CompressedWriter); !ok {
		return nil, fmt.Errorf("Compression is not supported for underlying format: %s", file.Node.Driver().Name)
	}
	return &node{file: file}, nil
}

func (n *node) PRead(co *blk.Co, off int64, buf []byte, flags blk.ReqFlags) error {
	return n.file.Node.PRead(co, off, buf, flags)
}

// PWrite is compress_co_pwritev_part: the (cluster-aligned) write goes
// down compressed.
func (n *node) PWrite(co *blk.Co, off int64, buf []byte, flags blk.ReqFlags) error {
	return n.file.Node.PWriteCompressed(co, off, buf)
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

// RefreshLimits is compress_refresh_limits: requests are aligned to the
// child's cluster size, when it has one.
func (n *node) RefreshLimits(l *blk.Limits) {
	if info, err := n.file.Node.Info(); err == nil && info.ClusterSize > 0 {
		l.RequestAlignment = info.ClusterSize
	}
}

// Close implements blk.Impl; the child is closed by blk.
func (n *node) Close() error { return nil }
