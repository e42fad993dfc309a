// Package quorum is QEMU's quorum driver (block/quorum.c): N children
// hold the same data; a write goes to all of them and succeeds when
// vote-threshold of them succeed; a read reads all of them and returns
// the version at least vote-threshold children agree on (optionally
// rewriting the others, rewrite-corrupted), or, with blkverify, dies on
// any difference between its two children, as QEMU does. read-pattern
// fifo reads the first child that answers instead.
package quorum

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"strconv"

	"gio/blk"

	"golang.org/x/sys/unix"
)

// Driver is the quorum driver. Like QEMU's it has no bdrv_file_open,
// which makes it a format in blk's sense (option errors say "Block
// format").
var Driver = &blk.Driver{Name: "quorum", Format: true, Open: open, Options: []blk.Option{
	{Name: "vote-threshold"}, {Name: "blkverify", Values: blk.OnOff()},
	{Name: "rewrite-corrupted", Values: blk.OnOff()}, {Name: "read-pattern", Values: []string{"fifo", "quorum"}},
	{Name: "children.0."}, {Name: "children.1."}, {Name: "children.2."},
}}

type node struct {
	children           []*blk.Child
	threshold          int
	fifo               bool
	blkverify, rewrite bool
	exit               func(code int) // os.Exit; tests replace it
	stderr             func(format string, args ...any)
}

var (
	_ blk.ZeroWriter    = (*node)(nil)
	_ blk.BlockStatuser = (*node)(nil)
)

// open is quorum_open, with its checks in its order.
func open(a *blk.OpenArgs) (blk.Impl, error) {
	count := 0
	for a.Opts.HasPrefix("children." + strconv.Itoa(count)) {
		count++
	}
	if count < 1 {
		return nil, fmt.Errorf("Number of provided children must be 1 or more")
	}
	threshold, err := a.Opts.TakeUint("vote-threshold", 0)
	if err != nil {
		return nil, err
	}
	blkverify, err := a.Opts.TakeBool("blkverify", false)
	if err != nil {
		return nil, err
	}
	rewrite, err := a.Opts.TakeBool("rewrite-corrupted", false)
	if err != nil {
		return nil, err
	}
	pattern, hasPattern := a.Opts.TakeString("read-pattern")
	switch {
	case threshold < 1:
		return nil, fmt.Errorf("Parameter 'vote-threshold' expects a value >= 1")
	case threshold > uint64(count):
		return nil, fmt.Errorf("threshold may not exceed children count")
	case hasPattern && pattern != "quorum" && pattern != "fifo":
		return nil, fmt.Errorf("Please set read-pattern as fifo or quorum")
	}
	n := &node{threshold: int(threshold), fifo: pattern == "fifo", exit: a.Exit,
		stderr: func(format string, args ...any) { fmt.Fprintf(os.Stderr, format, args...) }}
	if !n.fifo {
		n.blkverify, n.rewrite = blkverify, rewrite
		if n.blkverify && (count != 2 || n.threshold != 2) {
			return nil, fmt.Errorf("blkverify=on can only be set if there are exactly two files and vote-threshold is 2")
		}
		if n.rewrite && n.blkverify {
			return nil, fmt.Errorf("rewrite-corrupted=on cannot be used with blkverify=on")
		}
	}
	for i := 0; i < count; i++ {
		c, err := a.OpenChild("children."+strconv.Itoa(i), false, true)
		if err != nil {
			return nil, err
		}
		n.children = append(n.children, c)
	}
	// bdrv_open_driver's refresh_total_sectors: children of different
	// lengths fail the open.
	if err := a.Loop.RunSync("quorum open: length", func(co *blk.Co) error {
		_, err := n.Length(co)
		return err
	}); err != nil {
		return nil, blk.Errorf(blk.ErrnoOf(err), "Could not refresh total sector count")
	}
	return n, nil
}

// PRead is quorum_co_preadv: fifo reads the first child that succeeds;
// quorum reads them all and votes.
func (n *node) PRead(co *blk.Co, off int64, buf []byte, flags blk.ReqFlags) error {
	if n.fifo {
		var err error
		for _, c := range n.children {
			if err = c.Node.PRead(co, off, buf, flags); err == nil {
				return nil
			}
		}
		return err
	}
	bufs := make([][]byte, len(n.children))
	errs := make([]error, len(n.children))
	ok := 0
	for i, c := range n.children {
		bufs[i] = make([]byte, len(buf))
		if errs[i] = c.Node.PRead(co, off, bufs[i], flags); errs[i] == nil {
			ok++
		}
	}
	if ok < n.threshold {
		return voteError(errs)
	}
	first := -1
	agree := true
	for i := range n.children {
		if errs[i] != nil {
			continue
		}
		if first < 0 {
			first = i
			continue
		}
		if !n.same(off, bufs[first], bufs[i]) {
			agree = false
			break
		}
	}
	if agree {
		copy(buf, bufs[first])
		return nil
	}
	winner, votes := vote(bufs, errs)
	if votes < n.threshold {
		return unix.EIO
	}
	copy(buf, bufs[winner])
	if n.rewrite {
		// quorum_rewrite_bad_versions: the children that disagreed get
		// the winning data; their errors do not fail the read.
		for i, c := range n.children {
			if errs[i] == nil && !bytes.Equal(bufs[i], bufs[winner]) {
				_ = c.Node.PWrite(co, off, bufs[winner], 0)
			}
		}
	}
	return nil
}

// same is quorum_compare: with blkverify, a difference ends the program
// with QEMU's message (quorum_err).
func (n *node) same(off int64, a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	if n.blkverify {
		at := 0
		for a[at] == b[at] {
			at++
		}
		n.stderr("quorum: offset=%d bytes=%d contents mismatch at offset %d\n", off, len(a), off+int64(at))
		n.exit(1)
	}
	return false
}

// vote is quorum_count_vote and quorum_get_vote_winner: versions are
// identified by their SHA-256; a newer version is listed first and a
// tie goes to the first listed.
func vote(bufs [][]byte, errs []error) (winner, count int) {
	type version struct {
		sum   [32]byte
		index int
		count int
	}
	var list []*version // newest first
	for i, b := range bufs {
		if errs[i] != nil {
			continue
		}
		sum := sha256.Sum256(b)
		var v *version
		for _, x := range list {
			if x.sum == sum {
				v = x
				break
			}
		}
		if v == nil {
			v = &version{sum: sum, index: i}
			list = append([]*version{v}, list...)
		}
		v.count++
	}
	for _, v := range list {
		if v.count > count {
			winner, count = v.index, v.count
		}
	}
	return winner, count
}

// voteError is quorum_vote_error: the errno most children failed with
// (a tie goes to the one seen last).
func voteError(errs []error) error {
	type version struct {
		errno unix.Errno
		err   error
		count int
	}
	var list []*version
	for _, err := range errs {
		if err == nil {
			continue
		}
		e := blk.ErrnoOf(err)
		var v *version
		for _, x := range list {
			if x.errno == e {
				v = x
				break
			}
		}
		if v == nil {
			v = &version{errno: e, err: err}
			list = append([]*version{v}, list...)
		}
		v.count++
	}
	var best *version
	for _, v := range list {
		if best == nil || v.count > best.count {
			best = v
		}
	}
	if best == nil {
		return unix.EIO
	}
	return best.errno
}

// write is quorum_co_pwritev: every child, success with threshold of them.
func (n *node) write(each func(c *blk.Child) error) error {
	errs := make([]error, len(n.children))
	ok := 0
	for i, c := range n.children {
		if errs[i] = each(c); errs[i] == nil {
			ok++
		}
	}
	if ok < n.threshold {
		return voteError(errs)
	}
	return nil
}

func (n *node) PWrite(co *blk.Co, off int64, buf []byte, flags blk.ReqFlags) error {
	return n.write(func(c *blk.Child) error { return c.Node.PWrite(co, off, buf, flags) })
}

func (n *node) PWriteZeroes(co *blk.Co, off, bytes int64, flags blk.ReqFlags) error {
	return n.write(func(c *blk.Child) error { return c.Node.PWriteZeroes(co, off, bytes, flags) })
}

// Length is quorum_getlength: the children must agree.
func (n *node) Length(co *blk.Co) (int64, error) {
	l, err := n.children[0].Node.Length(co)
	if err != nil {
		return 0, err
	}
	for _, c := range n.children[1:] {
		v, err := c.Node.Length(co)
		if err != nil {
			return 0, err
		}
		if v != l {
			return 0, unix.EIO
		}
	}
	return l, nil
}

// BlockStatus is quorum_co_block_status: data as far as any child has
// data, else zero as far as every child reads zeroes.
func (n *node) BlockStatus(co *blk.Co, wantZero bool, off, count int64) (blk.Status, error) {
	pnumZero, pnumData := count, int64(0)
	for _, c := range n.children {
		st, err := c.Node.BlockStatus(co, wantZero, off, count)
		if err != nil {
			pnumData = count
			break
		}
		if st.Flags&blk.StatusZero != 0 {
			pnumZero = min(pnumZero, st.Pnum)
		} else {
			pnumData = max(pnumData, st.Pnum)
		}
	}
	if pnumData > 0 {
		return blk.Status{Flags: blk.StatusData, Pnum: pnumData}, nil
	}
	return blk.Status{Flags: blk.StatusZero, Pnum: pnumZero}, nil
}

// Close implements blk.Impl; the children are closed by blk.
func (n *node) Close() error { return nil }
