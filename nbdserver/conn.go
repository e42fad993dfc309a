package nbdserver

import (
	"bufio"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"gio/internal/nbdproto"
)

// handshakeTimeout bounds each read of the handshake, so a client that
// connects and stays silent cannot hold a connection slot for ever.
const handshakeTimeout = 30 * time.Second

// maxInflight bounds the requests of one connection that are parsed and
// not yet answered (QEMU's MAX_NBD_REQUESTS): the reader stops reading
// until replies have gone out.
const maxInflight = 16

// requestBuffer is the size of a connection's read buffer; write
// payloads at least this big are read past it.
const requestBuffer = 64 << 10

// Context ids of the meta contexts the server knows.
const (
	ctxBase  = 0
	ctxDepth = 1
)

// conn is one client connection.
type conn struct {
	s  *Server
	nc net.Conn
	// Negotiated in the handshake, read-only afterwards.
	structured bool
	contexts   []uint32 // ids of the selected meta contexts, in order
	minBlock   uint32   // advertised minimum block size

	slots chan struct{} // one per request being handled
	out   chan *reply   // to the writer
	wg    sync.WaitGroup
}

func newConn(s *Server, nc net.Conn) *conn {
	return &conn{s: s, nc: nc, slots: make(chan struct{}, maxInflight), out: make(chan *reply, maxInflight)}
}

// reply is what the writer sends: a header and an optional payload;
// release runs once it is written (or dropped).
type reply struct {
	hdr     []byte
	payload []byte
	release func()
}

// serve runs the connection: handshake, then requests until the client
// disconnects; then it waits for the requests still on the loop.
func (c *conn) serve() {
	defer c.s.connDone(c)
	defer c.nc.Close()
	if !c.handshake() {
		return
	}
	c.wg.Add(1)
	go c.writer()
	c.readRequests()
	// Wait until every request taken has been answered, then stop the
	// writer.
	for i := 0; i < maxInflight; i++ {
		c.slots <- struct{}{}
	}
	close(c.out)
	c.wg.Wait()
}

// writer sends replies in the order the requests finish. The replies
// that are ready together go out in one writev (a reply is one write
// system call otherwise, which was most of a busy export's CPU).
func (c *conn) writer() {
	defer c.wg.Done()
	broken := false
	batch := make([]*reply, 0, maxInflight)
	var bufs net.Buffers
	for r := range c.out {
		batch = append(batch[:0], r)
	more:
		for len(batch) < maxInflight {
			select {
			case r, ok := <-c.out:
				if !ok {
					break more
				}
				batch = append(batch, r)
			default:
				break more
			}
		}
		if !broken {
			bufs = bufs[:0]
			for _, r := range batch {
				bufs = append(bufs, r.hdr)
				if r.payload != nil {
					bufs = append(bufs, r.payload)
				}
			}
			// WriteTo consumes bufs; the backing array is reused.
			b := bufs
			if _, err := b.WriteTo(c.nc); err != nil {
				broken = true
				c.nc.Close()
			}
		}
		for _, r := range batch {
			if r.release != nil {
				r.release()
			}
			<-c.slots
		}
	}
}

// send queues a reply; the caller holds a slot, which the writer frees.
func (c *conn) send(r *reply) { c.out <- r }

// readRequests parses requests until the connection ends, a protocol
// error, or NBD_CMD_DISC.
func (c *conn) readRequests() {
	var hb [nbdproto.RequestSize]byte
	// Requests are read through a buffer: a client with many requests
	// in flight sends several headers per read system call.
	in := bufio.NewReaderSize(c.nc, requestBuffer)
	for {
		if _, err := io.ReadFull(in, hb[:]); err != nil {
			return
		}
		req, err := nbdproto.DecodeRequest(hb[:])
		if err != nil {
			return
		}
		if req.Type == nbdproto.CmdDisc {
			return
		}
		c.slots <- struct{}{}
		r := &request{c: c, Request: req}
		if req.Type == nbdproto.CmdWrite {
			if req.Length > c.s.maxTx {
				// The payload cannot be skipped safely: answer and
				// drop the client, as QEMU does.
				c.sendError(r, nbdproto.EINVAL, "len exceeds the maximum transfer")
				return
			}
			r.buf = getBuf(int(req.Length))
			if _, err := io.ReadFull(in, r.buf); err != nil {
				putBuf(r.buf)
				<-c.slots
				return
			}
		}
		if errno, msg := c.check(&req); errno != 0 {
			if r.buf != nil {
				putBuf(r.buf)
				r.buf = nil
			}
			c.sendError(r, errno, msg)
			continue
		}
		c.s.queue(r)
	}
}

// check validates a request before it reaches the block layer
// (nbd_co_receive_request); it returns a wire errno and a message.
func (c *conn) check(r *nbdproto.Request) (uint32, string) {
	s := c.s
	valid := uint16(nbdproto.CmdFlagFUA)
	switch r.Type {
	case nbdproto.CmdRead:
		if c.structured {
			valid |= nbdproto.CmdFlagDF
		}
	case nbdproto.CmdWriteZeroes:
		valid |= nbdproto.CmdFlagNoHole | nbdproto.CmdFlagFastZero
	case nbdproto.CmdBlockStatus:
		valid |= nbdproto.CmdFlagReqOne
	case nbdproto.CmdWrite, nbdproto.CmdFlush, nbdproto.CmdTrim, nbdproto.CmdCache:
	default:
		return nbdproto.EINVAL, "unsupported command"
	}
	if r.Flags&^valid != 0 {
		return nbdproto.EINVAL, "unsupported flags for command"
	}
	if (r.Type == nbdproto.CmdRead || r.Type == nbdproto.CmdCache) && r.Length > s.maxTx {
		return nbdproto.EINVAL, "len exceeds the maximum transfer"
	}
	if r.Type == nbdproto.CmdFlush {
		return 0, ""
	}
	if r.Offset > s.size || uint64(r.Length) > s.size-r.Offset {
		if r.Type == nbdproto.CmdWrite || r.Type == nbdproto.CmdWriteZeroes {
			return nbdproto.ENOSPC, "operation exceeds export size"
		}
		return nbdproto.EINVAL, "operation exceeds export size"
	}
	switch r.Type {
	case nbdproto.CmdWrite, nbdproto.CmdWriteZeroes, nbdproto.CmdTrim:
		if s.opts.ReadOnly {
			return nbdproto.EPERM, "Export is read-only"
		}
	case nbdproto.CmdBlockStatus:
		if !c.structured || len(c.contexts) == 0 {
			return nbdproto.EINVAL, "need non-empty meta context set for block status"
		}
	}
	return 0, ""
}

// sendError answers a request with an error (the caller holds its slot).
func (c *conn) sendError(r *request, errno uint32, msg string) {
	c.send(r.errorReply(errno, msg))
}

var errClosed = errors.New("connection closed")
