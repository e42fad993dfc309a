package file

import (
	"gio/blk"

	"golang.org/x/sys/unix"
)

// I/O engines. By default the driver does each pread, pwrite and
// fdatasync while the request holds the token and then yields once
// (blk.Co.YieldIO): deterministic, one request's I/O at a time. An
// explicit aio mode (-i threads, -i io_uring, -i native, or the "aio"
// option) selects a parallel engine instead: the request hands its I/O
// to the engine and parks, other requests run meanwhile, and the loop
// wakes it when the kernel is done. Completion order is then the
// kernel's, as in QEMU.
//
//   - threads runs the syscalls on the loop's thread pool
//     (blk.Co.RunInThread, QEMU's util/thread-pool.c).
//   - io_uring queues reads, writes and fdatasyncs on a ring of the
//     node's own (uring.go) and submits them in one io_uring_enter at the
//     next loop point, as QEMU's block/io_uring.c does.
//   - native (QEMU's Linux AIO) uses the io_uring engine, the kernel's
//     asynchronous interface that gio has; it needs O_DIRECT, as in
//     QEMU.
//
// Zero writes, discards, block status and truncation stay synchronous in
// every mode: they are rare on the data path and QEMU's io_uring engine
// hands them to the thread pool anyway.

type ioOp uint8

const (
	opRead ioOp = iota
	opWrite
	opFlush
)

// ioEngine runs a node's data requests outside the token.
type ioEngine interface {
	// do performs op and parks co until it has completed. buf must be
	// aligned for O_DIRECT when the node is direct (the caller bounces
	// otherwise).
	do(co *blk.Co, n *node, op ioOp, off int64, buf []byte) error
	close()
}

// startEngine sets up the engine for an explicit aio mode.
func (n *node) startEngine(loop *blk.Loop, aio string) error {
	if loop == nil {
		return nil
	}
	switch aio {
	case "io_uring", "native":
		r, err := newURing(loop, uringEntries)
		if err != nil {
			if aio == "native" {
				break // fall back to threads below
			}
			return blk.Errorf(errnoOf(err), "Unable to use io_uring: failed to init linux io_uring ring")
		}
		n.eng = r
		return nil
	}
	n.eng = &threadEngine{}
	return nil
}

func (n *node) stopEngine() {
	if n.eng != nil {
		n.eng.close()
		n.eng = nil
	}
}

// threadEngine runs each request's syscalls on the loop's thread pool.
// Jobs are reused, so the steady state allocates nothing.
type threadEngine struct {
	free []*threadJob // under the token
}

type threadJob struct {
	n   *node
	op  ioOp
	off int64
	buf []byte
	err error
}

// RunInThread implements blk.ThreadJob. It reads only fields that are
// immutable while requests are in flight (fd, direct, memAlign).
func (j *threadJob) RunInThread() {
	switch j.op {
	case opRead:
		j.err = j.n.readAt(j.off, j.buf)
	case opWrite:
		j.err = j.n.writeAt(j.off, j.buf)
	case opFlush:
		j.err = j.n.fdatasyncRaw()
	}
}

func (e *threadEngine) do(co *blk.Co, n *node, op ioOp, off int64, buf []byte) error {
	var j *threadJob
	if k := len(e.free); k > 0 {
		j = e.free[k-1]
		e.free = e.free[:k-1]
	} else {
		j = &threadJob{}
	}
	*j = threadJob{n: n, op: op, off: off, buf: buf}
	co.RunInThread(j)
	err := j.err
	*j = threadJob{}
	e.free = append(e.free, j)
	return err
}

func (e *threadEngine) close() {}

// fdatasyncRaw is fdatasync without the sticky-failure bookkeeping,
// which the caller does under the token.
func (n *node) fdatasyncRaw() error {
	for {
		err := unix.Fdatasync(n.fd)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return errnoOf(err)
		}
		return nil
	}
}
