package explore

import (
	"syscall"

	"gio/blk"
)

// The recording half of crash mode, after dm-log-writes and QEMU's
// blklogwrites: a wrapper of the file driver logs every write, zero
// write, discard, truncation and flush that reaches the disk below the
// format node, with the data written, in the order the disk completed
// them. A crash image is the disk as the first write of the log found
// it, plus a choice of the logged operations (crash.go).

// opKind is what a logged operation did to the disk.
type opKind uint8

const (
	opWrite    opKind = iota // data written
	opZero                   // zeroes written
	opDiscard                // a range discarded (the file reads zero there after)
	opTruncate               // the disk's length set to off
	opFlush                  // a flush to disk was submitted
)

// diskOp is one logged operation.
type diskOp struct {
	kind   opKind
	off, n int64
	data   []byte // opWrite
	line   int    // the body line that was running
}

// diskLog is what one run of a script did to its disk. Fields are
// touched under the loop's token only.
type diskLog struct {
	// active is set once the script's body runs: create and open are
	// not logged (the disk they leave is the base).
	active bool
	line   int
	// node is the node written; base is its content before the first
	// logged operation.
	node *recNode
	base []byte
	ops  []diskOp
	// other is set when a second node was written (crash mode follows
	// one image).
	other bool
}

// recordingFile wraps the file driver d so that the nodes it opens log
// to lg.
func recordingFile(d *blk.Driver, lg *diskLog) *blk.Driver {
	w := *d
	w.Open = func(a *blk.OpenArgs) (blk.Impl, error) {
		file, _ := a.Opts.Get("filename")
		impl, err := d.Open(a)
		if err != nil {
			return nil, err
		}
		return &recNode{inner: impl, log: lg, file: file}, nil
	}
	return &w
}

// recNode is a file node that logs its changes. It offers every optional
// capability of the file node it wraps (and calls through), so that blk
// treats it as the file node itself.
type recNode struct {
	inner blk.Impl
	log   *diskLog
	file  string // the file's name: a script may close and reopen it
}

// begin is called before a change reaches the disk: it says whether to
// log it, and reads the base on the first one.
func (r *recNode) begin(co *blk.Co) (bool, error) {
	lg := r.log
	if !lg.active {
		return false, nil
	}
	if lg.node == nil {
		n, err := r.inner.Length(co)
		if err != nil {
			return false, err
		}
		base := make([]byte, n)
		if err := r.inner.PRead(co, 0, base, 0); err != nil {
			return false, err
		}
		if lg.node == nil {
			lg.node, lg.base = r, base
		}
	}
	if lg.node != r && r.file != "" && r.file == lg.node.file {
		// The image closed and opened again: the same disk.
		lg.node = r
	}
	if lg.node != r {
		lg.other = true
		return false, nil
	}
	return true, nil
}

func (r *recNode) add(op diskOp) {
	op.line = r.log.line
	r.log.ops = append(r.log.ops, op)
}

func (r *recNode) PRead(co *blk.Co, off int64, buf []byte, f blk.ReqFlags) error {
	return r.inner.PRead(co, off, buf, f)
}

func (r *recNode) PWrite(co *blk.Co, off int64, buf []byte, f blk.ReqFlags) error {
	rec, err := r.begin(co)
	if err != nil {
		return err
	}
	var data []byte
	if rec {
		data = append([]byte(nil), buf...)
	}
	if err := r.inner.PWrite(co, off, buf, f); err != nil || !rec {
		return err
	}
	r.add(diskOp{kind: opWrite, off: off, n: int64(len(buf)), data: data})
	return nil
}

func (r *recNode) PWriteZeroes(co *blk.Co, off, n int64, f blk.ReqFlags) error {
	zw, ok := r.inner.(blk.ZeroWriter)
	if !ok {
		return blk.Errorf(syscall.ENOTSUP, "zero writes")
	}
	rec, err := r.begin(co)
	if err != nil {
		return err
	}
	if err := zw.PWriteZeroes(co, off, n, f); err != nil || !rec {
		return err
	}
	r.add(diskOp{kind: opZero, off: off, n: n})
	return nil
}

func (r *recNode) PDiscard(co *blk.Co, off, n int64) error {
	d, ok := r.inner.(blk.Discarder)
	if !ok {
		return blk.Errorf(syscall.ENOTSUP, "discard")
	}
	rec, err := r.begin(co)
	if err != nil {
		return err
	}
	if err := d.PDiscard(co, off, n); err != nil || !rec {
		return err
	}
	r.add(diskOp{kind: opDiscard, off: off, n: n})
	return nil
}

func (r *recNode) Truncate(co *blk.Co, size int64, exact bool, p blk.Prealloc) error {
	t, ok := r.inner.(blk.Truncater)
	if !ok {
		return blk.Errorf(syscall.ENOTSUP, "truncate")
	}
	rec, err := r.begin(co)
	if err != nil {
		return err
	}
	if err := t.Truncate(co, size, exact, p); err != nil || !rec {
		return err
	}
	r.add(diskOp{kind: opTruncate, off: size})
	return nil
}

// FlushToDisk logs the flush when it is submitted: what completed
// before it is on the disk once it completes, what completes while it
// runs may not be.
func (r *recNode) FlushToDisk(co *blk.Co) error {
	fl, ok := r.inner.(blk.DiskFlusher)
	if !ok {
		return nil
	}
	rec, err := r.begin(co)
	if err != nil {
		return err
	}
	if rec {
		r.add(diskOp{kind: opFlush})
	}
	return fl.FlushToDisk(co)
}

func (r *recNode) Length(co *blk.Co) (int64, error) { return r.inner.Length(co) }
func (r *recNode) Close() error                     { return r.inner.Close() }

func (r *recNode) RefreshLimits(l *blk.Limits) {
	if lr, ok := r.inner.(blk.LimitsRefresher); ok {
		lr.RefreshLimits(l)
	}
}

func (r *recNode) Info() (blk.Info, error) {
	if i, ok := r.inner.(blk.Infoer); ok {
		return i.Info()
	}
	return blk.Info{}, nil
}

func (r *recNode) BlockStatus(co *blk.Co, wantZero bool, off, n int64) (blk.Status, error) {
	if bs, ok := r.inner.(blk.BlockStatuser); ok {
		return bs.BlockStatus(co, wantZero, off, n)
	}
	return blk.Status{Flags: blk.StatusData | blk.StatusOffsetValid, Pnum: n, Map: off}, nil
}

func (r *recNode) TakePerm(p blk.Perm) error {
	if pt, ok := r.inner.(blk.PermTaker); ok {
		return pt.TakePerm(p)
	}
	return nil
}

func (r *recNode) ParentPerms(f blk.OpenFlags) error {
	if pt, ok := r.inner.(blk.PermTaker); ok {
		return pt.ParentPerms(f)
	}
	return nil
}

func (r *recNode) Reopen(readOnly bool) error {
	if ro, ok := r.inner.(blk.Reopener); ok {
		return ro.Reopen(readOnly)
	}
	return nil
}
