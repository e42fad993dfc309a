package file

import (
	"os"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"gio/blk"

	"golang.org/x/sys/unix"
)

// The io_uring engine, through golang.org/x/sys/unix raw syscalls:
// io_uring_setup, three mmaps for the rings, io_uring_enter. Only what
// gio needs is here (READ, WRITE, FSYNC with DATASYNC); a pure-Go
// io_uring module would add a dependency and, in most of them, goroutines
// and channels of its own for completions, which gio's single-threaded
// loop does not want: here the loop itself submits and reaps, under the
// token, at its loop points.

// uringEntries is the submission queue size (the completion queue is
// twice as large). It bounds the requests in flight on one node; more
// wait for a slot.
const uringEntries = 256

// Kernel ABI (include/uapi/linux/io_uring.h).
const (
	uringOpFsync = 3
	uringOpRead  = 22
	uringOpWrite = 23

	uringFsyncDatasync  = 1
	uringEnterGetEvents = 1
	uringFeatSingleMmap = 1

	uringRegisterEventFD = 4

	uringOffSQRing = 0
	uringOffCQRing = 0x8000000
	uringOffSQEs   = 0x10000000
)

type uringSQRingOffsets struct {
	head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
	userAddr                                                        uint64
}

type uringCQRingOffsets struct {
	head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
	userAddr                                                        uint64
}

type uringParams struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFD uint32
	resv                                                                   [3]uint32
	sqOff                                                                  uringSQRingOffsets
	cqOff                                                                  uringCQRingOffsets
}

type uringSQE struct {
	opcode      uint8
	flags       uint8
	ioprio      uint16
	fd          int32
	off         uint64
	addr        uint64
	len         uint32
	rwFlags     uint32
	userData    uint64
	bufIndex    uint16
	personality uint16
	spliceFDIn  int32
	addr3       uint64
	pad         uint64
}

type uringCQE struct {
	userData uint64
	res      int32
	flags    uint32
}

// uring is one node's ring. Every field is touched only under the token;
// the ring memory shared with the kernel is read and written with atomic
// loads and stores where the kernel's side requires acquire/release.
type uring struct {
	loop *blk.Loop
	fd   int
	mems [][]byte // the mmaps, for Close

	sqHead, sqTail *uint32
	sqMask         uint32
	sqEntries      uint32
	sqArray        []uint32
	sqes           []uringSQE
	cqHead, cqTail *uint32
	cqMask         uint32
	cqes           []uringCQE

	queued   uint32 // filled SQEs not yet handed to the kernel
	inFlight int    // queued or submitted, not reaped

	// slots hold each request in flight, indexed by user_data; there are
	// as many as completion queue entries, so the CQ never overflows.
	slots     []uringSlot
	freeSlots []uint32
	backlog   []*blk.Co // requests waiting for a slot, FIFO

	// The eventfd the kernel signals for every completion, in the Go
	// runtime's netpoller: the loop waits for completions there
	// (Wait) instead of in a blocking io_uring_enter, during which the
	// runtime's monitor thread, waking every 20 µs, hands the loop's P
	// over to another thread. nil when the kernel refused it.
	event    *os.File
	eventRC  syscall.RawConn
	unwaited atomic.Bool
}

type uringSlot struct {
	co  *blk.Co
	buf []byte // keeps the buffer referenced while the kernel has it
	res int32
}

var (
	_ blk.Engine = (*uring)(nil)
	_ blk.Waiter = (*uring)(nil)
)

func newURing(loop *blk.Loop, entries uint32) (*uring, error) {
	var p uringParams
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
	if errno != 0 {
		return nil, errno
	}
	r := &uring{loop: loop, fd: int(fd)}
	fail := func(err error) (*uring, error) {
		r.close()
		return nil, err
	}
	sqSize := int(p.sqOff.array + p.sqEntries*4)
	cqSize := int(p.cqOff.cqes + p.cqEntries*uint32(unsafe.Sizeof(uringCQE{})))
	single := p.features&uringFeatSingleMmap != 0
	if single {
		sqSize = max(sqSize, cqSize)
	}
	mmap := func(off int64, size int) ([]byte, error) {
		b, err := unix.Mmap(r.fd, off, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
		if err == nil {
			r.mems = append(r.mems, b)
		}
		return b, err
	}
	sq, err := mmap(uringOffSQRing, sqSize)
	if err != nil {
		return fail(err)
	}
	cq := sq
	if !single {
		if cq, err = mmap(uringOffCQRing, cqSize); err != nil {
			return fail(err)
		}
	}
	sqeMem, err := mmap(uringOffSQEs, int(p.sqEntries)*int(unsafe.Sizeof(uringSQE{})))
	if err != nil {
		return fail(err)
	}
	u32 := func(b []byte, off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&b[off])) }
	r.sqHead = u32(sq, p.sqOff.head)
	r.sqTail = u32(sq, p.sqOff.tail)
	r.sqMask = *u32(sq, p.sqOff.ringMask)
	r.sqEntries = p.sqEntries
	r.sqArray = unsafe.Slice(u32(sq, p.sqOff.array), p.sqEntries)
	r.sqes = unsafe.Slice((*uringSQE)(unsafe.Pointer(&sqeMem[0])), p.sqEntries)
	r.cqHead = u32(cq, p.cqOff.head)
	r.cqTail = u32(cq, p.cqOff.tail)
	r.cqMask = *u32(cq, p.cqOff.ringMask)
	r.cqes = unsafe.Slice((*uringCQE)(unsafe.Pointer(&cq[p.cqOff.cqes])), p.cqEntries)
	r.slots = make([]uringSlot, p.cqEntries)
	r.freeSlots = make([]uint32, 0, p.cqEntries)
	for i := int(p.cqEntries) - 1; i >= 0; i-- {
		r.freeSlots = append(r.freeSlots, uint32(i))
	}
	r.registerEventFD()
	loop.AddEngine(r)
	return r, nil
}

// registerEventFD sets up r.event; without it, Wait waits in
// io_uring_enter.
func (r *uring) registerEventFD() {
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return
	}
	fd32 := int32(efd)
	if _, _, errno := unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(r.fd), uringRegisterEventFD, uintptr(unsafe.Pointer(&fd32)), 1, 0, 0); errno != 0 {
		unix.Close(efd)
		return
	}
	f := os.NewFile(uintptr(efd), "io_uring eventfd")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return
	}
	r.event, r.eventRC = f, rc
}

// Wait implements blk.Waiter: it parks the loop's goroutine until the
// kernel has posted a completion (or Unwait).
func (r *uring) Wait() {
	if r.unwaited.Swap(false) {
		if r.event != nil {
			r.event.SetReadDeadline(time.Time{})
		}
		return
	}
	if r.event == nil {
		r.enter(1, uringEnterGetEvents)
		return
	}
	var b [8]byte
	r.eventRC.Read(func(fd uintptr) bool {
		if atomic.LoadUint32(r.cqHead) != atomic.LoadUint32(r.cqTail) {
			return true
		}
		// Reading resets the counter; the kernel posts a CQE before
		// it signals, so a completion after the check above shows
		// here.
		_, _, errno := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
		return errno != unix.EAGAIN
	})
}

// Unwait implements blk.Waiter.
func (r *uring) Unwait() {
	r.unwaited.Store(true)
	if r.event != nil {
		r.event.SetReadDeadline(time.Unix(1, 0))
	}
}

func (r *uring) close() {
	if r.loop != nil {
		r.loop.RemoveEngine(r)
	}
	for _, m := range r.mems {
		_ = unix.Munmap(m)
	}
	r.mems = nil
	if r.event != nil {
		r.event.Close()
		r.event = nil
	}
	if r.fd >= 0 {
		unix.Close(r.fd)
		r.fd = -1
	}
}

// Pending implements blk.Engine.
func (r *uring) Pending() int { return r.inFlight }

// Poll implements blk.Engine: submit what was queued since the last loop
// point (one io_uring_enter for all of it), then reap completions,
// waiting for one when block is set.
func (r *uring) Poll(block bool) bool {
	if r.queued > 0 {
		r.enter(0, 0)
	}
	if r.reap() {
		return true
	}
	if !block || r.inFlight == 0 {
		return false
	}
	for {
		r.enter(1, uringEnterGetEvents)
		if r.reap() {
			return true
		}
	}
}

// enter submits the queued SQEs and optionally waits for completions.
func (r *uring) enter(minComplete uint32, flags uintptr) {
	for {
		var n uintptr
		var errno unix.Errno
		if minComplete == 0 {
			// Submission does not sleep for long (the kernel hands
			// what would block to its workers), so it goes without
			// the runtime's syscall bookkeeping: entering a syscall
			// wakes the runtime's monitor thread when it sleeps,
			// which then polls every 20 µs for a while. Waiting
			// for completions (below, and Wait) is a real syscall.
			n, _, errno = unix.RawSyscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(r.queued), 0, flags, 0, 0)
		} else {
			n, _, errno = unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(r.queued), uintptr(minComplete), flags, 0, 0)
		}
		switch errno {
		case 0:
			r.queued -= uint32(n)
			return
		case unix.EINTR:
			continue
		case unix.EAGAIN, unix.EBUSY:
			// The kernel is short of resources or its completion queue
			// is full: make room, and let the caller come back.
			if r.reap() || minComplete == 0 {
				return
			}
			continue
		default:
			// A broken ring: fail everything queued rather than hang.
			r.failQueued(int32(-errno))
			return
		}
	}
}

// failQueued completes every SQE not yet taken by the kernel with res.
func (r *uring) failQueued(res int32) {
	tail := atomic.LoadUint32(r.sqTail)
	for ; r.queued > 0; r.queued-- {
		tail--
		sqe := &r.sqes[tail&r.sqMask]
		r.complete(sqe.userData, res)
	}
	atomic.StoreUint32(r.sqTail, tail)
}

// reap wakes the requests whose CQEs are ready.
func (r *uring) reap() bool {
	head := atomic.LoadUint32(r.cqHead)
	tail := atomic.LoadUint32(r.cqTail)
	if head == tail {
		return false
	}
	for ; head != tail; head++ {
		cqe := &r.cqes[head&r.cqMask]
		r.complete(cqe.userData, cqe.res)
	}
	atomic.StoreUint32(r.cqHead, head)
	return true
}

func (r *uring) complete(slot uint64, res int32) {
	s := &r.slots[slot]
	s.res = res
	s.buf = nil
	r.inFlight--
	s.co.Wake()
}

// submitWait queues one operation and parks until its completion, which
// it returns (a byte count or a negative errno).
func (r *uring) submitWait(co *blk.Co, fd int, op ioOp, off int64, buf []byte) int32 {
	for len(r.freeSlots) == 0 {
		r.backlog = append(r.backlog, co)
		co.Park("waits for an io_uring slot")
	}
	slot := r.freeSlots[len(r.freeSlots)-1]
	r.freeSlots = r.freeSlots[:len(r.freeSlots)-1]
	tail := atomic.LoadUint32(r.sqTail)
	if tail-atomic.LoadUint32(r.sqHead) >= r.sqEntries {
		r.enter(0, 0) // the kernel consumes SQEs during the call
	}
	idx := tail & r.sqMask
	sqe := uringSQE{fd: int32(fd), off: uint64(off), userData: uint64(slot)}
	switch op {
	case opRead:
		sqe.opcode = uringOpRead
	case opWrite:
		sqe.opcode = uringOpWrite
	case opFlush:
		sqe.opcode = uringOpFsync
		sqe.rwFlags = uringFsyncDatasync
	}
	if len(buf) > 0 {
		sqe.addr = uint64(uintptr(unsafe.Pointer(unsafe.SliceData(buf))))
		sqe.len = uint32(len(buf))
	}
	r.sqes[idx] = sqe
	r.sqArray[idx] = idx
	atomic.StoreUint32(r.sqTail, tail+1)
	r.queued++
	r.inFlight++
	r.slots[slot] = uringSlot{co: co, buf: buf}
	co.Park("waits for I/O")
	res := r.slots[slot].res
	r.slots[slot] = uringSlot{}
	r.freeSlots = append(r.freeSlots, slot)
	if len(r.backlog) > 0 {
		w := r.backlog[0]
		r.backlog = r.backlog[1:]
		w.Wake()
	}
	return res
}

// maxRW is the most a single read or write SQE moves (Linux's
// MAX_RW_COUNT); longer requests are split.
const maxRW = 0x7ffff000

func (r *uring) do(co *blk.Co, n *node, op ioOp, off int64, buf []byte) error {
	if op == opFlush {
		if res := r.submitWait(co, n.fd, op, 0, nil); res < 0 {
			return unix.Errno(-res)
		}
		return nil
	}
	if len(buf) == 0 || (n.direct && !isAligned(buf, n.memAlign)) {
		// A misaligned O_DIRECT buffer goes through the bounce path.
		var err error
		if op == opRead {
			err = n.readAt(off, buf)
		} else {
			err = n.writeAt(off, buf)
		}
		co.YieldIO()
		return err
	}
	for done := 0; done < len(buf); {
		chunk := buf[done:]
		if len(chunk) > maxRW {
			chunk = chunk[:maxRW]
		}
		res := r.submitWait(co, n.fd, op, off+int64(done), chunk)
		switch {
		case res == -int32(unix.EINTR) || res == -int32(unix.EAGAIN):
			continue
		case res < 0:
			err := unix.Errno(-res)
			if op == opRead && err == unix.EINVAL && n.direct && done > 0 {
				// A short O_DIRECT read at end of file (see preadLoop).
				clear(buf[done:])
				return nil
			}
			return err
		case res == 0:
			if op == opRead {
				clear(buf[done:]) // end of file reads as zeroes
				return nil
			}
			return unix.EINVAL // a write that makes no progress
		}
		done += int(res)
	}
	return nil
}
