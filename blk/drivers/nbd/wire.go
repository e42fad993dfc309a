package nbd

import (
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"
	"unsafe"

	"gio/blk"
	"gio/internal/nbdproto"

	"golang.org/x/sys/unix"
)

// The transmission phase. The loop does all of the socket's I/O under
// the token, as QEMU's client does in its coroutines: a request queues
// its command and parks; the commands queued during a loop turn go out
// together in one writev at the next loop point (a bottom half); when
// the loop polls the client it reads what has arrived and wakes the
// requests whose replies are complete, and when it has nothing else to
// do it waits for the socket in the Go runtime's netpoller (Wait).
//
// A reader goroutine per connection did the reading before: each batch
// of replies was then a hand-off between two threads (a futex wake-up,
// the runtime's spinning threads and its monitor thread polling every
// 20 µs), which cost more CPU than the replies themselves.
//
// The socket is non-blocking; its reads and writes are raw system
// calls, which cannot block and so skip the runtime's syscall
// bookkeeping (entering a syscall wakes the runtime's monitor thread
// when it sleeps, and it then polls every 20 µs for a millisecond).

// replyBuffer is the size of the read buffer: with many requests in
// flight, one read takes in several replies. Read data is read straight
// into the request's buffer when the reply's header has arrived before
// its data.
const replyBuffer = 64 << 10

// maxChunk bounds a structured chunk's payload other than read data.
const maxChunk = 1<<20 + 8

// sendBuffer is the socket send buffer asked for.
const sendBuffer = 4 << 20

// maxIov bounds the pieces of one writev (IOV_MAX).
const maxIov = 1024

// start begins the transmission phase on c.conn.
func (c *client) start() {
	c.pending = map[uint64]*request{}
	c.notify = make(chan struct{}, 1)
	c.flushBH = c.flush
	c.waitRead = c.waitReadFn
	if c.rbuf == nil {
		c.rbuf = make([]byte, replyBuffer)
	}
	c.useConn()
	if c.loop != nil {
		c.loop.AddEngine(c)
	}
}

// useConn takes c.conn's descriptor for the loop's raw reads and writes.
func (c *client) useConn() {
	c.rpos, c.rend = 0, 0
	c.cur, c.curDst = nil, nil
	c.fd = -1
	if wb, ok := c.conn.(interface{ SetWriteBuffer(int) error }); ok {
		// Room for a few large writes in the socket (as far as
		// net.core.wmem_max allows): a write that does not fit waits
		// in poll(2) (see Wait), which costs more than the write.
		wb.SetWriteBuffer(sendBuffer)
	}
	sc, ok := c.conn.(syscall.Conn)
	if !ok {
		c.fail(fmt.Errorf("%T has no file descriptor", c.conn))
		return
	}
	rc, err := sc.SyscallConn()
	if err == nil {
		err = rc.Control(func(fd uintptr) { c.fd = int(fd) })
	}
	if err != nil {
		c.fail(err)
		return
	}
	c.rc = rc
}

// Pending implements blk.Engine.
func (c *client) Pending() int { return c.inflight }

// Poll implements blk.Engine: it writes what is queued, reads what has
// arrived and wakes the requests whose replies are complete, in arrival
// order. With block set it waits for them.
func (c *client) Poll(block bool) bool {
	for {
		if c.dead == nil {
			if c.outHead < len(c.out) {
				c.flush()
			}
			if len(c.pending) > 0 {
				c.receive()
			}
		}
		if len(c.done) > 0 {
			for i, r := range c.done {
				c.inflight--
				r.co.Wake()
				c.done[i] = nil
			}
			c.done = c.done[:0]
			return true
		}
		if !block || c.inflight == 0 {
			return false
		}
		c.Wait()
	}
}

// Wait implements blk.Waiter: it parks the loop's goroutine in the
// netpoller until the socket has data (reading it), or until Unwait.
func (c *client) Wait() {
	if c.unwaited.Swap(false) {
		c.conn.SetReadDeadline(time.Time{})
		return
	}
	if c.dead != nil || c.fd < 0 {
		return
	}
	if c.outBlocked {
		// The socket was full: wait until it takes more or replies
		// come (the server may stop reading until it can reply).
		// Rare, so a plain poll(2), cut into slices for Unwait.
		c.pollFD(100)
		return
	}
	c.rc.Read(c.waitRead)
	if c.readErr != nil {
		c.fail(c.readErr)
	}
}

// waitReadFn is Wait's callback for the netpoller, made once (a closure
// per wait would be an allocation): a read, false to wait when there
// was nothing. The read must come first even when the last one drained
// the socket: the netpoller forgets what it saw when a wait begins.
func (c *client) waitReadFn(fd uintptr) bool {
	_, _, errno := c.readSome()
	return errno != unix.EAGAIN
}

// Unwait implements blk.Waiter.
func (c *client) Unwait() {
	c.unwaited.Store(true)
	c.conn.SetReadDeadline(time.Unix(1, 0))
}

// pollFD waits up to ms milliseconds for the socket to be readable, or
// writable while output waits.
func (c *client) pollFD(ms int) {
	ev := int16(unix.POLLIN)
	if c.outBlocked {
		ev |= unix.POLLOUT
	}
	fds := []unix.PollFd{{Fd: int32(c.fd), Events: ev}}
	unix.Poll(fds, ms)
}

// WakeChan implements blk.Waker, for waits on several engines at once
// (an NBD server of the same session, a file's thread pool): a goroutine
// watches the socket and signals once.
func (c *client) WakeChan() <-chan struct{} {
	if c.dead == nil && c.fd >= 0 && c.watching.CompareAndSwap(false, true) {
		fd := int32(c.fd)
		ev := int16(unix.POLLIN)
		if c.outBlocked {
			ev |= unix.POLLOUT
		}
		go func() {
			// A descriptor closed meanwhile, even reused, only
			// makes a spurious wake-up.
			fds := []unix.PollFd{{Fd: fd, Events: ev}}
			unix.Poll(fds, 50)
			c.watching.Store(false)
			select {
			case c.notify <- struct{}{}:
			default:
			}
		}()
	}
	return c.notify
}

// errDead is the error of requests on a broken connection.
var errDead = blk.Msgf(unix.EIO, "Input/output error")

// do sends one command and parks until its reply. payload is sent after
// the header (WRITE); r.buf receives READ data. With reconnect-delay, a
// request whose connection broke is sent again on a new one, as QEMU's
// nbd_co_request does, until the delay has passed.
func (c *client) do(co *blk.Co, r *request, flags uint16, payload []byte) error {
	for {
		if err := c.ensureConnected(); err != nil {
			return err
		}
		c.nextCookie++
		cookie := c.nextCookie
		r.co = co
		r.err = nil
		r.gotExt = false
		c.pending[cookie] = r
		req := nbdproto.Request{Flags: flags, Type: r.typ, Cookie: cookie, Offset: r.off, Length: r.length}
		req.Encode(r.hdr[:])
		if c.outHead == len(c.out) && c.loop != nil {
			c.loop.ScheduleBH(c.flushBH)
		}
		c.out = append(c.out, r.hdr[:])
		if len(payload) > 0 {
			c.out = append(c.out, payload)
		}
		if c.loop == nil {
			c.flush()
		}
		c.inflight++
		co.Park("waits for NBD reply")
		if r.err != errRetry {
			return r.err
		}
	}
}

// flush writes the queued pieces, as many as the socket takes.
func (c *client) flush() {
	for c.dead == nil && c.outHead < len(c.out) {
		pieces := c.out[c.outHead:min(len(c.out), c.outHead+maxIov)]
		c.iov = c.iov[:0]
		for _, p := range pieces {
			v := unix.Iovec{Base: unsafe.SliceData(p)}
			v.SetLen(len(p))
			c.iov = append(c.iov, v)
		}
		n, _, errno := unix.RawSyscall(unix.SYS_WRITEV, uintptr(c.fd), uintptr(unsafe.Pointer(&c.iov[0])), uintptr(len(c.iov)))
		switch errno {
		case 0:
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			c.outBlocked = true
			return
		default:
			c.fail(errno)
			return
		}
		for left := int(n); left > 0; {
			p := c.out[c.outHead]
			if left < len(p) {
				c.out[c.outHead] = p[left:]
				break
			}
			left -= len(p)
			c.out[c.outHead] = nil
			c.outHead++
		}
	}
	c.outBlocked = false
	if c.outHead == len(c.out) {
		c.out = c.out[:0]
		c.outHead = 0
	}
}

// readSome reads once from the socket: the rest of the read data being
// received straight into its request's buffer, and what follows into
// rbuf. It returns how many bytes came and how many could have; errno
// is EAGAIN when nothing was there. An error or the end of the stream
// is left in c.readErr, for the caller to fail the connection with:
// it may not close the socket inside a netpoller callback.
func (c *client) readSome() (n, room int, errno unix.Errno) {
	if c.rpos > 0 {
		c.rend = copy(c.rbuf, c.rbuf[c.rpos:c.rend])
		c.rpos = 0
	}
	free := c.rbuf[c.rend:]
	if len(free) == 0 {
		return 0, 0, unix.EAGAIN // parse grows the buffer first
	}
	var r uintptr
	if len(c.curDst) > 0 {
		var iov [2]unix.Iovec
		iov[0].Base = unsafe.SliceData(c.curDst)
		iov[0].SetLen(len(c.curDst))
		iov[1].Base = unsafe.SliceData(free)
		iov[1].SetLen(len(free))
		r, _, errno = unix.RawSyscall(unix.SYS_READV, uintptr(c.fd), uintptr(unsafe.Pointer(&iov[0])), 2)
	} else {
		r, _, errno = unix.RawSyscall(unix.SYS_READ, uintptr(c.fd), uintptr(unsafe.Pointer(&free[0])), uintptr(len(free)))
	}
	room = len(c.curDst) + len(free)
	switch {
	case errno == unix.EAGAIN || errno == unix.EINTR:
		return 0, room, unix.EAGAIN
	case errno != 0:
		c.readErr = errno
		return 0, room, errno
	case r == 0:
		c.readErr = io.EOF
		return 0, room, unix.EIO
	}
	n = int(r)
	got := n
	if k := len(c.curDst); k > 0 {
		d := min(got, k)
		c.curDst = c.curDst[d:]
		got -= d
	}
	c.rend += got
	return n, room, 0
}

// receive reads and parses replies while the socket has data.
func (c *client) receive() {
	for c.dead == nil {
		if err := c.parse(); err != nil {
			c.fail(err)
			return
		}
		n, room, errno := c.readSome()
		if errno != 0 {
			if c.readErr != nil {
				c.fail(c.readErr)
			}
			return
		}
		if n < room {
			// The read did not fill the room it had: the socket is
			// drained. Parse what came, without another read that
			// would fail with EAGAIN.
			if err := c.parse(); err != nil {
				c.fail(err)
			}
			return
		}
	}
}

// parse handles the complete replies in rbuf[rpos:rend], and the read
// data arrived for the current one. A reply is handled as a whole once
// its header (and, for chunks other than read data, its payload) is in
// the buffer; read data goes into the request's buffer as it comes.
func (c *client) parse() error {
	be := nbdproto.BE
	for {
		if c.cur != nil {
			if len(c.curDst) > 0 {
				k := copy(c.curDst, c.rbuf[c.rpos:c.rend])
				c.rpos += k
				c.curDst = c.curDst[k:]
				if len(c.curDst) > 0 {
					return nil
				}
			}
			r := c.cur
			c.cur = nil
			if c.curDone {
				c.finish(r, c.curCookie)
			}
			continue
		}
		b := c.rbuf[c.rpos:c.rend]
		if len(b) < 4 {
			return nil
		}
		switch m := be.Uint32(b); m {
		case nbdproto.SimpleReplyMagic:
			if len(b) < nbdproto.SimpleReplySize {
				return nil
			}
			errno, cookie := be.Uint32(b[4:]), be.Uint64(b[8:])
			r := c.pending[cookie]
			if r == nil {
				return fmt.Errorf("%w: unexpected cookie %#x", nbdproto.ErrProtocol, cookie)
			}
			c.rpos += nbdproto.SimpleReplySize
			switch {
			case errno != 0:
				r.err = nbdproto.WireToErrno(errno)
			case r.typ == nbdproto.CmdRead:
				c.cur, c.curDst, c.curDone, c.curCookie = r, r.buf, true, cookie
				continue
			case r.typ == nbdproto.CmdBlockStatus:
				return fmt.Errorf("%w: simple reply to block status", nbdproto.ErrProtocol)
			}
			c.finish(r, cookie)
		case nbdproto.StructuredReplyMagic:
			if len(b) < nbdproto.StructReplySize {
				return nil
			}
			ch := nbdproto.ChunkHeader{Flags: be.Uint16(b[4:]), Type: be.Uint16(b[6:]), Cookie: be.Uint64(b[8:]), Length: be.Uint32(b[16:])}
			r := c.pending[ch.Cookie]
			if r == nil {
				return fmt.Errorf("%w: unexpected cookie %#x", nbdproto.ErrProtocol, ch.Cookie)
			}
			if !c.structured {
				return fmt.Errorf("%w: structured reply not negotiated", nbdproto.ErrProtocol)
			}
			done := ch.Flags&nbdproto.ReplyFlagDone != 0
			if ch.Type == nbdproto.ReplyTypeOffsetData && r.typ == nbdproto.CmdRead {
				if ch.Length < 9 {
					return fmt.Errorf("%w: short data chunk", nbdproto.ErrProtocol)
				}
				if len(b) < nbdproto.StructReplySize+8 {
					return nil
				}
				off, n := be.Uint64(b[nbdproto.StructReplySize:]), uint64(ch.Length-8)
				if off < r.off || off-r.off > uint64(r.length) || n > uint64(r.length)-(off-r.off) {
					return fmt.Errorf("%w: data chunk outside the request", nbdproto.ErrProtocol)
				}
				c.rpos += nbdproto.StructReplySize + 8
				c.cur, c.curDst, c.curDone, c.curCookie = r, r.buf[off-r.off:off-r.off+n], done, ch.Cookie
				continue
			}
			if ch.Length > maxChunk {
				return fmt.Errorf("%w: chunk too large", nbdproto.ErrProtocol)
			}
			need := nbdproto.StructReplySize + int(ch.Length)
			if len(b) < need {
				if need > len(c.rbuf) {
					nb := make([]byte, need)
					c.rend = copy(nb, b)
					c.rpos = 0
					c.rbuf = nb
				}
				return nil
			}
			c.rpos += need
			if err := c.chunk(r, ch, b[nbdproto.StructReplySize:need]); err != nil {
				return err
			}
			if done {
				if r.typ == nbdproto.CmdBlockStatus && !r.gotExt && r.err == nil {
					r.err = unix.EIO
				}
				c.finish(r, ch.Cookie)
			}
		default:
			return fmt.Errorf("%w: invalid reply magic 0x%x", nbdproto.ErrProtocol, m)
		}
	}
}

// finish completes a request: it is woken at the next Poll.
func (c *client) finish(r *request, cookie uint64) {
	delete(c.pending, cookie)
	c.done = append(c.done, r)
}

// errRetry marks a request whose connection broke while reconnection
// is allowed.
var errRetry = errors.New("retry on a new connection")

// ensureConnected reconnects a broken connection when reconnect-delay
// allows it; it fails with EIO otherwise.
func (c *client) ensureConnected() error {
	if c.dead == nil {
		return nil
	}
	if c.reconnectDelay == 0 {
		return unix.EIO
	}
	deadline := c.lostAt.Add(c.reconnectDelay)
	for {
		if err := c.reconnect(); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return unix.EIO
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// reconnect dials the server again and redoes the handshake. It runs
// under the token, so no request can use the connection meanwhile.
func (c *client) reconnect() error {
	conn, err := net.DialTimeout(c.addr.network, c.addr.addr, time.Second)
	if err != nil {
		return err
	}
	old := c.info
	c.conn, c.info, c.hasCtx = conn, nbdproto.ExportInfo{}, false
	if err := c.handshake(c.export, c.ctx); err != nil {
		conn.Close()
		c.info = old
		return err
	}
	if c.info.Size != old.Size {
		conn.Close()
		c.info = old
		return fmt.Errorf("export size changed on reconnection")
	}
	c.dead = nil
	c.useConn()
	return nil
}

// fail marks the connection dead and completes every pending request
// with EIO (QEMU's nbd_channel_error without reconnection).
func (c *client) fail(err error) {
	if c.dead == nil {
		c.dead = err
		c.lostAt = time.Now()
		c.conn.Close()
	}
	retry := c.reconnectDelay > 0 && !c.closing
	for k, r := range c.pending {
		if retry {
			r.err = errRetry
		} else if r.err == nil {
			r.err = unix.EIO
		}
		c.done = append(c.done, r)
		delete(c.pending, k)
	}
	c.cur, c.curDst, c.readErr = nil, nil, nil
	c.rpos, c.rend = 0, 0
	clear(c.out)
	c.out, c.outHead, c.outBlocked = c.out[:0], 0, false
}

// chunk applies a chunk other than read data to its request.
func (c *client) chunk(r *request, ch nbdproto.ChunkHeader, p []byte) error {
	switch ch.Type {
	case nbdproto.ReplyTypeNone:
		if ch.Flags&nbdproto.ReplyFlagDone == 0 || len(p) != 0 {
			return fmt.Errorf("%w: bad NONE chunk", nbdproto.ErrProtocol)
		}
	case nbdproto.ReplyTypeOffsetHole:
		if r.typ != nbdproto.CmdRead || len(p) != 12 {
			return fmt.Errorf("%w: unexpected hole chunk", nbdproto.ErrProtocol)
		}
		off, n := nbdproto.BE.Uint64(p), uint64(nbdproto.BE.Uint32(p[8:]))
		if n == 0 || off < r.off || off-r.off > uint64(r.length) || n > uint64(r.length)-(off-r.off) {
			return fmt.Errorf("%w: hole chunk outside the request", nbdproto.ErrProtocol)
		}
		clear(r.buf[off-r.off : off-r.off+n])
	case nbdproto.ReplyTypeBlockStatus:
		if r.typ != nbdproto.CmdBlockStatus {
			return fmt.Errorf("%w: unexpected block status chunk", nbdproto.ErrProtocol)
		}
		id, ext, err := nbdproto.DecodeBlockStatus(p, 1<<17)
		if err != nil {
			return err
		}
		if !c.hasCtx || id != c.ctxID || r.gotExt {
			return fmt.Errorf("%w: unexpected block status context", nbdproto.ErrProtocol)
		}
		e := ext[0]
		if e.Length == 0 {
			return fmt.Errorf("%w: server sent status chunk with zero length", nbdproto.ErrProtocol)
		}
		r.ext, r.gotExt = e, true
	case nbdproto.ReplyTypeError, nbdproto.ReplyTypeErrorOffset:
		e, err := nbdproto.DecodeErrorChunk(ch.Type, p)
		if err != nil {
			return err
		}
		if r.err == nil {
			r.err = nbdproto.WireToErrno(e.Error)
		}
	default:
		if ch.Type&(1<<15) != 0 {
			// An unknown error type: the request failed.
			if r.err == nil {
				r.err = unix.EINVAL
			}
		}
		// Unknown informational chunks are ignored.
	}
	return nil
}

func (c *client) newRequest(typ uint16, off int64, n int64) *request {
	var r *request
	if k := len(c.spare); k > 0 {
		r = c.spare[k-1]
		c.spare = c.spare[:k-1]
	} else {
		r = &request{}
	}
	*r = request{typ: typ, off: uint64(off), length: uint32(n)}
	return r
}

func (c *client) release(r *request) {
	*r = request{}
	c.spare = append(c.spare, r)
}

// run sends a command without payload and returns its error.
func (c *client) run(co *blk.Co, typ uint16, off, n int64, flags uint16, payload, buf []byte) error {
	r := c.newRequest(typ, off, n)
	r.buf = buf
	err := c.do(co, r, flags, payload)
	c.release(r)
	return err
}
