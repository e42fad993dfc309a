package nbd

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"time"

	"gio/blk"
	"gio/internal/nbdproto"

	"golang.org/x/sys/unix"
)

// handshakeTimeout bounds every read of the handshake: a server that
// stops answering fails the open instead of hanging it.
const handshakeTimeout = 30 * time.Second

// client is an open export. Everything is touched under the scheduler
// token only: the loop sends requests and reads replies itself (wire.go),
// with no goroutine of the connection's own.
type client struct {
	self       *blk.Node
	loop       *blk.Loop
	conn       net.Conn
	info       nbdproto.ExportInfo
	structured bool
	hasCtx     bool
	ctxID      uint32
	nextCookie uint64
	inflight   int // parked requests
	spare      []*request

	// Reconnection (reconnect-delay): where and what to ask again.
	addr           address
	export, ctx    string
	reconnectDelay time.Duration

	pending map[uint64]*request
	done    []*request // replied to (or failed), to wake at the next Poll
	dead    error      // the connection failed: every request fails
	lostAt  time.Time
	closing bool

	// The socket, non-blocking (wire.go).
	fd int
	rc syscall.RawConn
	// Replies are read into rbuf[rpos:rend]; cur is the request whose
	// read data is arriving, curDst where the rest of it goes, and
	// curDone whether its chunk ends the request.
	rbuf       []byte
	rpos, rend int
	cur        *request
	curDst     []byte
	curDone    bool
	curCookie  uint64
	readErr    error // the read that failed the connection
	// Requests to send: out[outHead:] are pieces (headers, write
	// payloads) not yet written; flushBH writes them at the next loop
	// point, all in one writev. outBlocked: the socket was full.
	out        [][]byte
	outHead    int
	outBlocked bool
	iov        []unix.Iovec
	flushBH    func()

	// Waiting (blk.Waiter, blk.Waker).
	waitRead func(fd uintptr) bool
	unwaited atomic.Bool
	watching atomic.Bool
	notify   chan struct{}
}

// request is one command in flight. The loop fills it while the request
// is parked; the request reads it after it is woken.
type request struct {
	co     *blk.Co
	typ    uint16
	off    uint64
	length uint32
	buf    []byte // READ destination
	err    error
	ext    nbdproto.Extent
	gotExt bool
	hdr    [nbdproto.RequestSize]byte // the encoded request, until written
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
	_ blk.Waiter          = (*client)(nil)
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
