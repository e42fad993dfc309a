package nbdserver

import (
	"fmt"
	"math/bits"
	"sync"

	"gio/blk"
	"gio/internal/nbdproto"
)

// request is one remote request between the connection and the loop.
type request struct {
	c *conn
	nbdproto.Request
	buf []byte // WRITE payload, owned by the request
}

var cmdNames = map[uint16]string{
	nbdproto.CmdRead: "read", nbdproto.CmdWrite: "write", nbdproto.CmdFlush: "flush",
	nbdproto.CmdTrim: "trim", nbdproto.CmdCache: "cache", nbdproto.CmdWriteZeroes: "write_zeroes",
	nbdproto.CmdBlockStatus: "block_status",
}

// spawn turns a remote request into a block-layer request on the loop
// (under the token).
func (s *Server) spawn(r *request) {
	s.inflight++
	name := fmt.Sprintf("nbd %s %d+%d", cmdNames[r.Type], r.Offset, r.Length)
	s.loop.Spawn(name, func(co *blk.Co) {
		rep := r.run(co)
		s.inflight--
		r.c.send(rep)
	})
}

// run carries out the request and builds its reply.
func (r *request) run(co *blk.Co) *reply {
	b := r.c.s.b
	off, n := int64(r.Offset), int64(r.Length)
	var flags blk.ReqFlags
	if r.Flags&nbdproto.CmdFlagFUA != 0 {
		flags |= blk.FUA
	}
	var err error
	switch r.Type {
	case nbdproto.CmdRead:
		buf := getBuf(int(n))
		if err = b.PRead(co, off, buf); err == nil {
			return r.dataReply(buf)
		}
		putBuf(buf)
	case nbdproto.CmdWrite:
		err = b.PWrite(co, off, r.buf, flags)
		putBuf(r.buf)
		r.buf = nil
	case nbdproto.CmdWriteZeroes:
		if r.Flags&nbdproto.CmdFlagNoHole == 0 {
			flags |= blk.MayUnmap
		}
		if r.Flags&nbdproto.CmdFlagFastZero != 0 {
			flags |= blk.NoFallback
		}
		err = b.PWriteZeroes(co, off, n, flags)
	case nbdproto.CmdTrim:
		err = b.PDiscard(co, off, n)
		if err == nil && flags&blk.FUA != 0 {
			err = b.Flush(co)
		}
	case nbdproto.CmdFlush:
		err = b.Flush(co)
	case nbdproto.CmdCache:
		// Nothing to prefetch into: every layer reads through.
	case nbdproto.CmdBlockStatus:
		return r.blockStatus(co)
	}
	if err != nil {
		return r.errorReply(nbdproto.ErrnoToWire(blk.ErrnoOf(err)), err.Error())
	}
	return r.doneReply()
}

// doneReply is a successful reply without payload.
func (r *request) doneReply() *reply {
	if r.c.structured {
		h := nbdproto.ChunkHeader{Flags: nbdproto.ReplyFlagDone, Type: nbdproto.ReplyTypeNone, Cookie: r.Cookie}
		return &reply{hdr: h.Encode(make([]byte, nbdproto.StructReplySize))}
	}
	return &reply{hdr: nbdproto.EncodeSimpleReply(make([]byte, nbdproto.SimpleReplySize), 0, r.Cookie)}
}

// dataReply sends read data: one data chunk, or a simple reply.
func (r *request) dataReply(buf []byte) *reply {
	rel := func() { putBuf(buf) }
	if !r.c.structured {
		return &reply{hdr: nbdproto.EncodeSimpleReply(make([]byte, nbdproto.SimpleReplySize), 0, r.Cookie), payload: buf, release: rel}
	}
	if len(buf) == 0 {
		rel()
		return r.doneReply()
	}
	h := nbdproto.ChunkHeader{Flags: nbdproto.ReplyFlagDone, Type: nbdproto.ReplyTypeOffsetData, Cookie: r.Cookie, Length: uint32(8 + len(buf))}
	hdr := h.Encode(make([]byte, nbdproto.StructReplySize+8))
	hdr = nbdproto.BE.AppendUint64(hdr, r.Offset)
	return &reply{hdr: hdr, payload: buf, release: rel}
}

// errorReply reports a failure: an error chunk with QEMU's message, or
// a simple reply's error field.
func (r *request) errorReply(errno uint32, msg string) *reply {
	if !r.c.structured {
		return &reply{hdr: nbdproto.EncodeSimpleReply(make([]byte, nbdproto.SimpleReplySize), errno, r.Cookie)}
	}
	p := nbdproto.AppendErrorChunk(nil, errno, msg)
	h := nbdproto.ChunkHeader{Flags: nbdproto.ReplyFlagDone, Type: nbdproto.ReplyTypeError, Cookie: r.Cookie, Length: uint32(len(p))}
	return &reply{hdr: append(h.Encode(make([]byte, nbdproto.StructReplySize, nbdproto.StructReplySize+len(p))), p...)}
}

// maxExtents bounds one block status chunk (NBD_MAX_BLOCK_STATUS_EXTENTS).
const maxExtents = (1 << 20) / 8

// blockStatus answers NBD_CMD_BLOCK_STATUS with one chunk per selected
// context, the last one flagged done.
func (r *request) blockStatus(co *blk.Co) *reply {
	var out []byte
	limit := maxExtents
	if r.Flags&nbdproto.CmdFlagReqOne != 0 {
		limit = 1
	}
	for i, id := range r.c.contexts {
		ext, err := r.extents(co, id, limit)
		if err != nil {
			return r.errorReply(nbdproto.ErrnoToWire(blk.ErrnoOf(err)), err.Error())
		}
		h := nbdproto.ChunkHeader{Type: nbdproto.ReplyTypeBlockStatus, Cookie: r.Cookie, Length: uint32(4 + 8*len(ext))}
		if i == len(r.c.contexts)-1 {
			h.Flags = nbdproto.ReplyFlagDone
		}
		out = append(out, h.Encode(make([]byte, nbdproto.StructReplySize))...)
		out = nbdproto.BE.AppendUint32(out, id)
		for _, e := range ext {
			out = nbdproto.BE.AppendUint32(out, e.Length)
			out = nbdproto.BE.AppendUint32(out, e.Flags)
		}
	}
	return &reply{hdr: out}
}

// extents walks [Offset, Offset+Length) for one context, merging
// neighbours with equal flags, at most limit extents.
func (r *request) extents(co *blk.Co, id uint32, limit int) ([]nbdproto.Extent, error) {
	b := r.c.s.b
	off, end := int64(r.Offset), int64(r.Offset)+int64(r.Length)
	var ext []nbdproto.Extent
	for off < end {
		var flags uint32
		var pnum int64
		if id == ctxBase {
			st, err := b.BlockStatus(co, off, end-off)
			if err != nil {
				return nil, err
			}
			pnum = st.Pnum
			if st.Flags&blk.StatusData == 0 {
				flags |= nbdproto.StateHole
			}
			if st.Flags&blk.StatusZero != 0 {
				flags |= nbdproto.StateZero
			}
		} else {
			d, n, err := allocDepth(co, b.Root, off, end-off)
			if err != nil {
				return nil, err
			}
			flags, pnum = d, n
		}
		if pnum <= 0 {
			break
		}
		if k := len(ext); k > 0 && ext[k-1].Flags == flags && int64(ext[k-1].Length)+pnum <= 1<<32-1 {
			ext[k-1].Length += uint32(pnum)
		} else {
			if len(ext) == limit {
				break
			}
			ext = append(ext, nbdproto.Extent{Length: uint32(min(pnum, 1<<32-1)), Flags: flags})
		}
		off += pnum
	}
	return ext, nil
}

// allocDepth is bdrv_is_allocated_above down to the bottom of the chain:
// the 1-based depth of the layer that allocates off, or 0.
func allocDepth(co *blk.Co, n *blk.Node, off, bytes int64) (uint32, int64, error) {
	depth := uint32(1)
	for n != nil {
		st, err := n.BlockStatus(co, false, off, bytes)
		if err != nil {
			return 0, 0, err
		}
		if st.Pnum <= 0 {
			return 0, bytes, nil
		}
		if st.Flags&blk.StatusAllocated != 0 {
			return depth, st.Pnum, nil
		}
		bytes = st.Pnum
		n = backingOf(n)
		depth++
	}
	return 0, bytes, nil
}

// backingOf finds the backing node below n, looking down primary
// children (filters such as blkdebug) until a node has one.
func backingOf(n *blk.Node) *blk.Node {
	for n != nil {
		for _, c := range n.Children() {
			if c.Name == "backing" {
				return c.Node
			}
		}
		f := n.File()
		if f == nil {
			return nil
		}
		n = f.Node
	}
	return nil
}

// Buffers come from pools by power-of-two size class, so a busy export
// does not allocate a buffer per request.
var pools [27]sync.Pool // classes up to 64 MiB

func getBuf(n int) []byte {
	if n == 0 {
		return []byte{}
	}
	c := bits.Len(uint(n - 1))
	if c >= len(pools) {
		return make([]byte, n)
	}
	if b, ok := pools[c].Get().(*[]byte); ok {
		return (*b)[:n]
	}
	return make([]byte, n, 1<<c)
}

func putBuf(b []byte) {
	if cap(b) == 0 {
		return
	}
	c := bits.Len(uint(cap(b) - 1))
	if c >= len(pools) || cap(b) != 1<<c {
		return
	}
	b = b[:cap(b)]
	pools[c].Put(&b)
}
