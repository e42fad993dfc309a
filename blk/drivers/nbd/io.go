package nbd

import (
	"fmt"

	"gio/blk"
	"gio/internal/nbdproto"

	"golang.org/x/sys/unix"
)

// PRead is nbd_client_co_preadv: blk rounds the length up to 512, so
// the slop past the export's real size reads as zeroes without asking.
func (c *client) PRead(co *blk.Co, off int64, buf []byte, flags blk.ReqFlags) error {
	size := int64(c.info.Size)
	if end := off + int64(len(buf)); end > size {
		keep := max(0, min(int64(len(buf)), size-off))
		clear(buf[keep:])
		buf = buf[:keep]
	}
	if len(buf) == 0 {
		return nil
	}
	return c.run(co, nbdproto.CmdRead, off, int64(len(buf)), 0, nil, buf)
}

func (c *client) writeFlags(flags blk.ReqFlags) uint16 {
	if flags&blk.FUA != 0 && c.info.Flags&nbdproto.FlagSendFUA != 0 {
		return nbdproto.CmdFlagFUA
	}
	return 0
}

// PWrite is nbd_client_co_pwritev.
func (c *client) PWrite(co *blk.Co, off int64, buf []byte, flags blk.ReqFlags) error {
	if c.info.Flags&nbdproto.FlagReadOnly != 0 {
		return unix.EACCES
	}
	if off+int64(len(buf)) > int64(c.info.Size) {
		// An export cannot grow (see Truncate).
		return unix.EINVAL
	}
	if len(buf) == 0 {
		return nil
	}
	return c.run(co, nbdproto.CmdWrite, off, int64(len(buf)), c.writeFlags(flags), buf, nil)
}

// PWriteZeroes is nbd_client_co_pwrite_zeroes.
func (c *client) PWriteZeroes(co *blk.Co, off, n int64, flags blk.ReqFlags) error {
	if c.info.Flags&nbdproto.FlagSendWriteZero == 0 {
		return unix.ENOTSUP
	}
	if n == 0 {
		return nil
	}
	f := c.writeFlags(flags)
	if flags&blk.MayUnmap == 0 {
		f |= nbdproto.CmdFlagNoHole
	}
	if flags&blk.NoFallback != 0 {
		f |= nbdproto.CmdFlagFastZero
	}
	return c.run(co, nbdproto.CmdWriteZeroes, off, n, f, nil, nil)
}

// PDiscard is nbd_client_co_pdiscard: a server without TRIM ignores it.
func (c *client) PDiscard(co *blk.Co, off, n int64) error {
	if c.info.Flags&nbdproto.FlagSendTrim == 0 || n == 0 {
		return nil
	}
	return c.run(co, nbdproto.CmdTrim, off, n, 0, nil, nil)
}

// FlushToOS is nbd_client_co_flush.
func (c *client) FlushToOS(co *blk.Co) error {
	if c.info.Flags&nbdproto.FlagSendFlush == 0 {
		return nil
	}
	return c.run(co, nbdproto.CmdFlush, 0, 0, 0, nil, nil)
}

// Cache asks the server to prefetch a range (NBD_CMD_CACHE).
func (c *client) Cache(co *blk.Co, off, n int64) error {
	if c.info.Flags&nbdproto.FlagSendCache == 0 {
		return unix.ENOTSUP
	}
	return c.run(co, nbdproto.CmdCache, off, n, 0, nil, nil)
}

// BlockStatus is nbd_client_co_block_status: one extent of the
// negotiated context (base:allocation, or x-dirty-bitmap's).
func (c *client) BlockStatus(co *blk.Co, wantZero bool, off, n int64) (blk.Status, error) {
	size := int64(c.info.Size)
	if !c.hasCtx {
		return blk.Status{Flags: blk.StatusData | blk.StatusOffsetValid, Pnum: n, Map: off, File: c.self}, nil
	}
	if off >= size {
		return blk.Status{Flags: blk.StatusZero, Pnum: n}, nil
	}
	align := c.self.Limits().RequestAlignment
	length := min(n, size-off, (1<<31-1)/align*align)
	r := c.newRequest(nbdproto.CmdBlockStatus, off, length)
	err := c.do(co, r, nbdproto.CmdFlagReqOne, nil)
	e := r.ext
	c.release(r)
	if err != nil {
		return blk.Status{}, err
	}
	pnum := min(int64(e.Length), length)
	if mb := int64(c.info.MinBlock); mb > 0 && pnum%mb != 0 {
		// QEMU's workaround for servers that report unaligned
		// extents (a hole past the end of an unaligned file).
		if pnum > mb {
			pnum = pnum / mb * mb
		} else {
			pnum = mb
			e.Flags = 0
		}
	}
	flags := blk.StatusOffsetValid
	if e.Flags&nbdproto.StateHole == 0 {
		flags |= blk.StatusData
	}
	if e.Flags&nbdproto.StateZero != 0 {
		flags |= blk.StatusZero
	}
	return blk.Status{Flags: flags, Pnum: pnum, Map: off, File: c.self}, nil
}

// Length returns the export's size.
func (c *client) Length(co *blk.Co) (int64, error) { return int64(c.info.Size), nil }

// Truncate is nbd_co_truncate: an export cannot change size.
func (c *client) Truncate(co *blk.Co, size int64, exact bool, prealloc blk.Prealloc) error {
	if size != int64(c.info.Size) && exact {
		return blk.Errorf(unix.ENOTSUP, "Cannot resize NBD nodes")
	}
	if size > int64(c.info.Size) {
		return blk.Errorf(unix.EINVAL, "Cannot grow NBD nodes")
	}
	return nil
}

// maxBuffer is NBD_MAX_BUFFER_SIZE.
const maxBuffer = nbdproto.MaxBuffer

// RefreshLimits is nbd_refresh_limits: the server's block size
// constraints become the request alignment and the maximum transfer.
func (c *client) RefreshLimits(l *blk.Limits) {
	minB := int64(c.info.MinBlock)
	maxB := int64(maxBuffer)
	if c.info.MaxBlock != 0 && int64(c.info.MaxBlock) < maxB {
		maxB = int64(c.info.MaxBlock)
	}
	if minB == 0 {
		minB = 512
		if c.info.Size%512 != 0 || c.hasCtx {
			minB = 1
		}
	}
	l.RequestAlignment = minB
	l.MaxPdiscard = (1<<31 - 1) / minB * minB
	l.MaxPwriteZeroes = maxB
	l.MaxTransfer = maxB
	if p := int64(c.info.PrefBlock); p > l.OptTransfer {
		l.OptTransfer = p
	}
	l.SupportedWriteFlags = 0
	l.SupportedZeroFlags = 0
	if c.info.Flags&nbdproto.FlagSendFUA != 0 {
		l.SupportedWriteFlags = blk.FUA
		l.SupportedZeroFlags = blk.FUA
	}
	if c.info.Flags&nbdproto.FlagSendWriteZero != 0 {
		l.SupportedZeroFlags |= blk.MayUnmap
		if c.info.Flags&nbdproto.FlagSendFastZero != 0 {
			l.SupportedZeroFlags |= blk.NoFallback
		}
	}
}

// Info implements blk.Infoer: a protocol node has no cluster size.
func (c *client) Info() (blk.Info, error) { return blk.Info{}, nil }

// Close sends NBD_CMD_DISC and ends the connection.
func (c *client) Close() error {
	if c.loop != nil {
		c.loop.RemoveEngine(c)
	}
	c.closing = true
	if c.dead == nil {
		c.flush()
	}
	if c.dead == nil {
		req := nbdproto.Request{Type: nbdproto.CmdDisc}
		var b [nbdproto.RequestSize]byte
		c.conn.Write(req.Encode(b[:]))
		c.fail(fmt.Errorf("closed"))
	}
	c.conn.Close()
	return nil
}
