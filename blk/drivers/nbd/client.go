package nbd

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"gio/blk"
	"gio/internal/nbdproto"

	"golang.org/x/sys/unix"
)

// handshakeTimeout bounds every read of the handshake: a server that
// stops answering fails the open instead of hanging it.
const handshakeTimeout = 30 * time.Second

// client is an open export. Fields above mu are set during Open and
// then touched only under the scheduler token; the reader goroutine
// shares the ones below mu.
type client struct {
	self       *blk.Node
	loop       *blk.Loop
	conn       net.Conn
	info       nbdproto.ExportInfo
	structured bool
	hasCtx     bool
	ctxID      uint32
	nextCookie uint64
	inflight   int    // parked requests; under the token
	wbuf       []byte // request encoding; under the token
	spare      []*request
	readerDone chan struct{}

	// Reconnection (reconnect-delay): where and what to ask again.
	addr           address
	export, ctx    string
	reconnectDelay time.Duration

	mu      sync.Mutex
	pending map[uint64]*request
	done    []*request
	dead    error // the connection failed: every request fails
	lostAt  time.Time
	closing bool
	notify  chan struct{}
}

// request is one command in flight. The reader goroutine fills it while
// the request is parked; the request reads it after it is woken.
type request struct {
	co     *blk.Co
	typ    uint16
	off    uint64
	length uint32
	buf    []byte // READ destination
	err    error
	ext    nbdproto.Extent
	gotExt bool
}

var (
	_ blk.ZeroWriter      = (*client)(nil)
	_ blk.Discarder       = (*client)(nil)
	_ blk.BlockStatuser   = (*client)(nil)
	_ blk.OSFlusher       = (*client)(nil)
	_ blk.Truncater       = (*client)(nil)
	_ blk.LimitsRefresher = (*client)(nil)
	_ blk.Infoer          = (*client)(nil)
	_ blk.Engine          = (*client)(nil)
	_ blk.Waker           = (*client)(nil)
)

var optNames = map[uint32]string{
	nbdproto.OptExportName: "export name", nbdproto.OptAbort: "abort", nbdproto.OptList: "list",
	4: "peek export", nbdproto.OptStartTLS: "starttls", nbdproto.OptInfo: "info", nbdproto.OptGo: "go",
	nbdproto.OptStructuredReply: "structured reply", nbdproto.OptListMetaContext: "list meta context",
	nbdproto.OptSetMetaContext: "set meta context",
}

func optName(o uint32) string {
	if n, ok := optNames[o]; ok {
		return n
	}
	return "<unknown>"
}

// replyError is nbd_handle_reply_err: nil for ERR_UNSUP (the caller
// falls back), QEMU's message otherwise.
func replyError(r nbdproto.OptReply) error {
	var msg string
	o := r.Option
	switch r.Type {
	case nbdproto.RepErrUnsup:
		return nil
	case nbdproto.RepErrPolicy:
		msg = fmt.Sprintf("Denied by server for option %d (%s)", o, optName(o))
	case nbdproto.RepErrInvalid:
		msg = fmt.Sprintf("Invalid parameters for option %d (%s)", o, optName(o))
	case nbdproto.RepErrPlatform:
		msg = fmt.Sprintf("Server lacks support for option %d (%s)", o, optName(o))
	case nbdproto.RepErrTLSReqd:
		msg = fmt.Sprintf("TLS negotiation required before option %d (%s)\nDid you forget a valid tls-creds?", o, optName(o))
	case nbdproto.RepErrUnknown:
		msg = "Requested export not available"
	case nbdproto.RepErrShutdown:
		msg = fmt.Sprintf("Server shutting down before option %d (%s)", o, optName(o))
	case nbdproto.RepErrBlockSizeReqd:
		msg = fmt.Sprintf("Server requires INFO_BLOCK_SIZE for option %d (%s)", o, optName(o))
	default:
		msg = fmt.Sprintf("Unknown error code when asking for option %d (%s)", o, optName(o))
	}
	if len(r.Data) > 0 && len(r.Data) <= nbdproto.MaxString {
		msg += "\nserver reported: " + string(r.Data)
	}
	return errors.New(msg)
}

// conn I/O during the handshake: every read has a deadline.
func (c *client) deadline() { c.conn.SetDeadline(time.Now().Add(handshakeTimeout)) }

func handshakeErr(err error) error {
	if errors.Is(err, nbdproto.ErrProtocol) {
		return err
	}
	if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("Failed to read initial magic: Unexpected end-of-file before all data were read")
	}
	return fmt.Errorf("Failed to negotiate with the NBD server: %v", err)
}

// handshake is nbd_receive_negotiate for the fixed newstyle protocol.
func (c *client) handshake(export, ctx string) error {
	c.deadline()
	defer c.conn.SetDeadline(time.Time{})
	var hdr [18]byte
	if _, err := io.ReadFull(c.conn, hdr[:16]); err != nil {
		return handshakeErr(err)
	}
	be := nbdproto.BE
	if m := be.Uint64(hdr[:]); m != nbdproto.NBDMagic {
		return fmt.Errorf("Bad initial magic received: 0x%x", m)
	}
	switch m := be.Uint64(hdr[8:]); m {
	case nbdproto.IHaveOpt:
	case nbdproto.OldstyleMagic:
		return c.oldstyle(export)
	default:
		return fmt.Errorf("Bad server magic received: 0x%x", m)
	}
	if _, err := io.ReadFull(c.conn, hdr[16:18]); err != nil {
		return handshakeErr(err)
	}
	gflags := be.Uint16(hdr[16:])
	var cflags uint32
	fixed := gflags&nbdproto.FlagFixedNewstyle != 0
	noZeroes := gflags&nbdproto.FlagNoZeroes != 0
	if fixed {
		cflags |= nbdproto.FlagFixedNewstyle
	}
	if noZeroes {
		cflags |= nbdproto.FlagNoZeroes
	}
	if _, err := c.conn.Write(be.AppendUint32(nil, cflags)); err != nil {
		return handshakeErr(err)
	}
	if fixed {
		done, err := c.negotiate(export, ctx)
		if err != nil {
			// Tell the server we are going (nbd_send_opt_abort); it
			// owes a reply that nobody waits for.
			nbdproto.WriteOption(c.conn, nbdproto.OptAbort, nil)
			return err
		}
		if done {
			return nil
		}
	}
	// Old servers: NBD_OPT_EXPORT_NAME, which has no error reply.
	if err := nbdproto.WriteOption(c.conn, nbdproto.OptExportName, []byte(export)); err != nil {
		return handshakeErr(err)
	}
	n := 10
	if !noZeroes {
		n += nbdproto.ExportZeroesSize
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(c.conn, b); err != nil {
		return fmt.Errorf("Failed to read export length: %v", err)
	}
	c.info.Size = be.Uint64(b)
	c.info.Flags = be.Uint16(b[8:])
	return c.checkInfo()
}

// oldstyle reads the rest of an oldstyle greeting: size, flags and the
// reserved block; such servers have only the default export.
func (c *client) oldstyle(export string) error {
	if export != "" {
		return fmt.Errorf("Server does not support non-empty export names")
	}
	var b [12]byte
	if _, err := io.ReadFull(c.conn, b[:8]); err != nil {
		return fmt.Errorf("Failed to read export length: %v", err)
	}
	if _, err := io.ReadFull(c.conn, b[8:]); err != nil {
		return fmt.Errorf("Failed to read export flags: %v", err)
	}
	be := nbdproto.BE
	flags := be.Uint32(b[8:])
	if flags&^0xffff != 0 {
		return fmt.Errorf("Unexpected export flags %x", flags)
	}
	c.info.Size = be.Uint64(b[:])
	c.info.Flags = uint16(flags)
	if _, err := io.CopyN(io.Discard, c.conn, nbdproto.ExportZeroesSize); err != nil {
		return fmt.Errorf("Failed to read reserved block: %v", err)
	}
	return c.checkInfo()
}

// negotiate runs the options of the fixed newstyle handshake; done is
// false when the server does not know NBD_OPT_GO.
func (c *client) negotiate(export, ctx string) (done bool, err error) {
	ok, err := c.simpleOption(nbdproto.OptStructuredReply)
	if err != nil {
		return false, err
	}
	c.structured = ok
	if ok && ctx != "" {
		if err := c.setMetaContext(export, ctx); err != nil {
			return false, err
		}
	}
	return c.optGo(export)
}

func (c *client) checkInfo() error {
	if c.info.Size > 1<<63-1 {
		return fmt.Errorf("export size %d is too large", c.info.Size)
	}
	return nil
}

// simpleOption sends an option without data and reports whether the
// server acknowledged it.
func (c *client) simpleOption(opt uint32) (bool, error) {
	if err := nbdproto.WriteOption(c.conn, opt, nil); err != nil {
		return false, handshakeErr(err)
	}
	r, err := c.readOptReply(opt)
	if err != nil {
		return false, err
	}
	if r.Type&nbdproto.RepFlagError != 0 {
		if err := replyError(r); err != nil {
			return false, err
		}
		return false, nil
	}
	if r.Type != nbdproto.RepAck || len(r.Data) != 0 {
		return false, fmt.Errorf("Unexpected reply type %d for option %d (%s)", r.Type, opt, optName(opt))
	}
	return true, nil
}

func (c *client) readOptReply(opt uint32) (nbdproto.OptReply, error) {
	c.deadline()
	r, err := nbdproto.ReadOptReply(c.conn, nbdproto.MaxOption)
	if err != nil {
		return r, handshakeErr(err)
	}
	if r.Option != opt {
		return r, fmt.Errorf("Unexpected option type %d, expected %d", r.Option, opt)
	}
	return r, nil
}

// setMetaContext asks for one context and records its id when the server
// grants it (nbd_negotiate_simple_meta_context).
func (c *client) setMetaContext(export, ctx string) error {
	data := nbdproto.AppendString(nil, export)
	data = nbdproto.BE.AppendUint32(data, 1)
	data = nbdproto.AppendString(data, ctx)
	if err := nbdproto.WriteOption(c.conn, nbdproto.OptSetMetaContext, data); err != nil {
		return handshakeErr(err)
	}
	for {
		r, err := c.readOptReply(nbdproto.OptSetMetaContext)
		if err != nil {
			return err
		}
		switch {
		case r.Type&nbdproto.RepFlagError != 0:
			return replyError(r)
		case r.Type == nbdproto.RepAck:
			return nil
		case r.Type == nbdproto.RepMetaContext:
			if len(r.Data) < 4 {
				return fmt.Errorf("Invalid meta context reply")
			}
			if string(r.Data[4:]) != ctx || c.hasCtx {
				return fmt.Errorf("Server replied with unexpected meta context")
			}
			c.ctxID = nbdproto.BE.Uint32(r.Data)
			c.hasCtx = true
		default:
			return fmt.Errorf("Unexpected reply type %d for option %d (%s)", r.Type, r.Option, optName(r.Option))
		}
	}
}

// optGo is nbd_opt_info_or_go with NBD_OPT_GO: done is false when the
// server does not know the option (fall back to EXPORT_NAME).
func (c *client) optGo(export string) (done bool, err error) {
	q := nbdproto.InfoRequest{Name: export, Infos: []uint16{nbdproto.InfoBlockSize}}
	if err := nbdproto.WriteOption(c.conn, nbdproto.OptGo, q.Encode()); err != nil {
		return false, handshakeErr(err)
	}
	gotExport := false
	for {
		r, err := c.readOptReply(nbdproto.OptGo)
		if err != nil {
			return false, err
		}
		switch {
		case r.Type&nbdproto.RepFlagError != 0:
			if err := replyError(r); err != nil {
				return false, err
			}
			return false, nil
		case r.Type == nbdproto.RepInfo:
			if err := c.info.ApplyInfo(r.Data); err != nil {
				return false, err
			}
			if len(r.Data) >= 2 && nbdproto.BE.Uint16(r.Data) == nbdproto.InfoExport {
				gotExport = true
			}
		case r.Type == nbdproto.RepAck:
			if !gotExport {
				return false, fmt.Errorf("broken server omitted NBD_INFO_EXPORT")
			}
			return true, c.checkInfo()
		default:
			return false, fmt.Errorf("Unexpected reply type %d for option %d (%s)", r.Type, r.Option, optName(r.Option))
		}
	}
}

// start begins the transmission phase: the reader goroutine, and the
// client as an engine of the loop.
func (c *client) start() {
	c.pending = map[uint64]*request{}
	c.notify = make(chan struct{}, 1)
	c.readerDone = make(chan struct{})
	c.wbuf = make([]byte, nbdproto.RequestSize)
	if c.loop != nil {
		c.loop.AddEngine(c)
	}
	go c.reader()
}

// Pending implements blk.Engine.
func (c *client) Pending() int { return c.inflight }

// WakeChan implements blk.Waker.
func (c *client) WakeChan() <-chan struct{} { return c.notify }

// Poll implements blk.Engine: it wakes the requests whose replies have
// arrived, in arrival order.
func (c *client) Poll(block bool) bool {
	for {
		c.mu.Lock()
		done := c.done
		c.done = nil
		c.mu.Unlock()
		if len(done) > 0 {
			for _, r := range done {
				c.inflight--
				r.co.Wake()
			}
			return true
		}
		if !block || c.inflight == 0 {
			return false
		}
		<-c.notify
	}
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
		c.mu.Lock()
		c.nextCookie++
		cookie := c.nextCookie
		r.co = co
		r.err = nil
		r.gotExt = false
		c.pending[cookie] = r
		c.mu.Unlock()
		req := nbdproto.Request{Flags: flags, Type: r.typ, Cookie: cookie, Offset: r.off, Length: r.length}
		hdr := req.Encode(c.wbuf)
		var err error
		if len(payload) > 0 {
			bufs := net.Buffers{hdr, payload}
			_, err = bufs.WriteTo(c.conn)
		} else {
			_, err = c.conn.Write(hdr)
		}
		if err != nil {
			c.fail(err)
		}
		c.inflight++
		co.Park("waits for NBD reply")
		if r.err != errRetry {
			return r.err
		}
	}
}

// errRetry marks a request whose connection broke while reconnection
// is allowed.
var errRetry = errors.New("retry on a new connection")

// ensureConnected reconnects a broken connection when reconnect-delay
// allows it; it fails with EIO otherwise.
func (c *client) ensureConnected() error {
	c.mu.Lock()
	dead, lost := c.dead, c.lostAt
	c.mu.Unlock()
	if dead == nil {
		return nil
	}
	if c.reconnectDelay == 0 {
		return unix.EIO
	}
	deadline := lost.Add(c.reconnectDelay)
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
	<-c.readerDone
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
	c.mu.Lock()
	c.dead = nil
	c.mu.Unlock()
	c.readerDone = make(chan struct{})
	go c.reader()
	return nil
}

// fail marks the connection dead and completes every pending request
// with EIO (QEMU's nbd_channel_error without reconnection).
func (c *client) fail(err error) {
	c.mu.Lock()
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
	c.mu.Unlock()
	c.wake()
}

func (c *client) wake() {
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

func (c *client) complete(cookie uint64) {
	c.mu.Lock()
	if r, ok := c.pending[cookie]; ok {
		delete(c.pending, cookie)
		c.done = append(c.done, r)
	}
	c.mu.Unlock()
	c.wake()
}

// lookup finds the request a reply is for. The request stays pending
// (and parked) until complete.
func (c *client) lookup(cookie uint64) *request {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pending[cookie]
}

// reader reads replies until the connection ends.
func (c *client) reader() {
	defer close(c.readerDone)
	err := c.readReplies()
	c.fail(err)
}

// maxChunk bounds a structured chunk's payload other than read data.
const maxChunk = 1<<20 + 8

// replyBuffer is the reader's buffer: with many requests in flight,
// one read takes in several replies (headers and data), where reading
// each header, offset and payload straight from the socket took four
// system calls a reply. Payloads at least this big bypass it.
const replyBuffer = 64 << 10

func (c *client) readReplies() error {
	hdr := make([]byte, nbdproto.StructReplySize)
	var scratch []byte
	conn := bufio.NewReaderSize(c.conn, replyBuffer)
	for {
		rep, err := nbdproto.ReadReply(conn, hdr)
		if err != nil {
			return err
		}
		r := c.lookup(rep.Cookie())
		if r == nil {
			return fmt.Errorf("%w: unexpected cookie %#x", nbdproto.ErrProtocol, rep.Cookie())
		}
		if !rep.Structured {
			if rep.Error != 0 {
				r.err = nbdproto.WireToErrno(rep.Error)
			} else if r.typ == nbdproto.CmdRead {
				if _, err := io.ReadFull(conn, r.buf); err != nil {
					return err
				}
			} else if r.typ == nbdproto.CmdBlockStatus {
				return fmt.Errorf("%w: simple reply to block status", nbdproto.ErrProtocol)
			}
			c.complete(rep.Cookie())
			continue
		}
		if !c.structured {
			return fmt.Errorf("%w: structured reply not negotiated", nbdproto.ErrProtocol)
		}
		ch := rep.Chunk
		switch {
		case ch.Type == nbdproto.ReplyTypeOffsetData && r.typ == nbdproto.CmdRead:
			if ch.Length < 9 {
				return fmt.Errorf("%w: short data chunk", nbdproto.ErrProtocol)
			}
			var ob [8]byte
			if _, err := io.ReadFull(conn, ob[:]); err != nil {
				return err
			}
			off, n := nbdproto.BE.Uint64(ob[:]), uint64(ch.Length-8)
			if off < r.off || off-r.off > uint64(r.length) || n > uint64(r.length)-(off-r.off) {
				return fmt.Errorf("%w: data chunk outside the request", nbdproto.ErrProtocol)
			}
			if _, err := io.ReadFull(conn, r.buf[off-r.off:off-r.off+n]); err != nil {
				return err
			}
		default:
			if ch.Length > maxChunk {
				return fmt.Errorf("%w: chunk too large", nbdproto.ErrProtocol)
			}
			if cap(scratch) < int(ch.Length) {
				scratch = make([]byte, ch.Length)
			}
			p := scratch[:ch.Length]
			if _, err := io.ReadFull(conn, p); err != nil {
				return err
			}
			if err := c.chunk(r, ch, p); err != nil {
				return err
			}
		}
		if ch.Flags&nbdproto.ReplyFlagDone != 0 {
			if r.typ == nbdproto.CmdBlockStatus && !r.gotExt && r.err == nil {
				r.err = unix.EIO
			}
			c.complete(ch.Cookie)
		}
	}
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
