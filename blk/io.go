package blk

import (
	"golang.org/x/sys/unix"
)

// This file is the generic request path every node shares, mirroring
// QEMU's block/io.c: padding to the request alignment, read-modify-write
// inside a serialising tracked request, splitting by max_transfer, zero
// writes with fallback, discard fragmentation, flush generations, and the
// debug events fired at each step.

// maxBounce bounds the zero buffer of the zero-write fallback, so that a
// 100 GiB zero write never needs more than this much memory (QEMU's
// MAX_BOUNCE_BUFFER).
const maxBounce = 16 << 20

// padding describes the read-modify-write of an unaligned request
// (QEMU's BdrvRequestPadding).
type padding struct {
	head, tail int64
	buf        []byte
	merge      bool
}

func initPadding(off, bytes, align int64) (padding, bool) {
	var p padding
	p.head = off & (align - 1)
	p.tail = (off + bytes) & (align - 1)
	if p.tail != 0 {
		p.tail = align - p.tail
	}
	if p.head == 0 && p.tail == 0 {
		return p, false
	}
	sum := p.head + bytes + p.tail
	bufLen := align
	if sum > align && p.head != 0 && p.tail != 0 {
		bufLen = 2 * align
	}
	p.buf = getBuf(bufLen)
	p.merge = sum == bufLen
	return p, true
}

func (p *padding) tailBuf(align int64) []byte { return p.buf[int64(len(p.buf))-align:] }

// PRead reads len(buf) bytes at off through the generic path
// (bdrv_co_preadv_part). Reads past the node's end read zeroes.
func (n *Node) PRead(co *Co, off int64, buf []byte, flags ReqFlags) error {
	bytes := int64(len(buf))
	if err := checkRequest(off, bytes); err != nil {
		return err
	}
	align := n.limits.RequestAlignment
	if bytes == 0 && off&(align-1) != 0 {
		return nil
	}
	p, padded := initPadding(off, bytes, align)
	aoff, abuf := off, buf
	if padded {
		// A read needs no padding buffer of its own: the whole-block
		// buffer holds head and tail.
		putBuf(p.buf)
		aoff = off - p.head
		abuf = getBuf(p.head + bytes + p.tail)
		// QEMU pads the caller's I/O vector with head and tail buffers,
		// so the driver reads straight into the caller's memory: bytes a
		// driver leaves alone (null-co) keep what the caller had there.
		copy(abuf[p.head:], buf)
	}
	req := n.track(co, aoff, int64(len(abuf)), trackRead)
	err := n.alignedPRead(co, req, aoff, abuf, flags)
	req.end()
	if padded {
		if err == nil {
			copy(buf, abuf[p.head:])
		}
		putBuf(abuf)
	}
	return err
}

// alignedPRead is bdrv_aligned_preadv: wait for serialising requests, then
// hand the driver aligned pieces no longer than max_transfer, zero-filling
// what lies beyond the end of the node.
func (n *Node) alignedPRead(co *Co, req *trackedReq, off int64, buf []byte, flags ReqFlags) error {
	if !n.staleRMW || req.kind != trackWrite {
		if err := n.waitSerialising(co, req); err != nil {
			return err
		}
	}
	align := n.limits.RequestAlignment
	total, err := n.Length(co)
	if err != nil {
		return err
	}
	maxBytes := roundUp(max(0, total-off), align)
	maxTransfer := n.maxTransfer()
	bytes := int64(len(buf))
	if bytes <= maxBytes && bytes <= maxTransfer {
		return n.impl.PRead(co, off, buf, 0)
	}
	for done := int64(0); done < bytes; {
		if co.loop.Interrupted() {
			return ErrInterrupted // Ctrl-C at the shell, between chunks
		}
		num := bytes - done
		if maxBytes > 0 {
			num = min(num, maxBytes, maxTransfer)
			if err := n.impl.PRead(co, off+done, buf[done:done+num], 0); err != nil {
				return err
			}
			maxBytes -= num
		} else {
			clear(buf[done:])
		}
		done += num
	}
	return nil
}

// PWrite writes buf at off through the generic path (bdrv_co_pwritev_part).
func (n *Node) PWrite(co *Co, off int64, buf []byte, flags ReqFlags) error {
	return n.pwrite(co, off, int64(len(buf)), buf, flags&^ZeroWrite)
}

// PWriteZeroes writes zeroes over [off, off+bytes) (bdrv_co_pwrite_zeroes).
func (n *Node) PWriteZeroes(co *Co, off, bytes int64, flags ReqFlags) error {
	return n.pwrite(co, off, bytes, nil, flags|ZeroWrite)
}

func (n *Node) pwrite(co *Co, off, bytes int64, buf []byte, flags ReqFlags) error {
	if n.readOnly {
		return unix.EPERM
	}
	if err := checkRequest(off, bytes); err != nil {
		return err
	}
	align := n.limits.RequestAlignment
	if flags&NoFallback != 0 && (off|bytes)&(align-1) != 0 {
		return unix.ENOTSUP
	}
	if bytes == 0 && off&(align-1) != 0 {
		return nil
	}
	if flags&ZeroWrite != 0 {
		req := n.track(co, off, bytes, trackWrite)
		err := n.zeroPWrite(co, req, off, bytes, flags)
		req.end()
		return err
	}
	p, padded := initPadding(off, bytes, align)
	aoff, abuf := off, buf
	if padded {
		aoff = off - p.head
		abuf = getBuf(p.head + bytes + p.tail)
		defer putBuf(abuf)
		defer putBuf(p.buf)
	}
	req := n.track(co, aoff, int64(len(abuf)), trackWrite)
	defer req.end()
	if padded {
		req.padHead, req.padTail, req.padMerge = p.head, p.tail, p.merge
		if err := n.makeSerialising(co, req, align); err != nil {
			return err
		}
		// QEMU 7.2 ignores a failed padding read and writes its padding
		// buffer anyway (uninitialised memory over the neighbouring
		// bytes). gio fails the write instead: never lose data.
		if err := n.rmwRead(co, req, &p, align, false); err != nil {
			return err
		}
		// The padded buffer: head and tail from the padding reads, the
		// middle from the caller. Built after the wait above, so a request
		// that waited never writes back stale bytes.
		copy(abuf, p.buf[:p.head])
		copy(abuf[p.head:], buf)
		if p.tail != 0 {
			tb := p.tailBuf(align)
			copy(abuf[int64(len(abuf))-p.tail:], tb[align-p.tail:])
		}
	}
	return n.alignedPWrite(co, req, aoff, int64(len(abuf)), abuf, flags)
}

// rmwRead reads the head and tail blocks of a padded write
// (bdrv_padding_rmw_read), firing the pwritev_rmw_* events around the reads.
func (n *Node) rmwRead(co *Co, req *trackedReq, p *padding, align int64, zeroMiddle bool) error {
	if p.head != 0 || p.merge {
		bytes := align
		if p.merge {
			bytes = int64(len(p.buf))
		}
		if p.head != 0 {
			n.DebugEvent(co, EvPwritevRMWHead)
		}
		if p.merge && p.tail != 0 {
			n.DebugEvent(co, EvPwritevRMWTail)
		}
		if err := n.alignedPRead(co, req, req.overlapOff, p.buf[:bytes], 0); err != nil {
			return err
		}
		if p.head != 0 {
			n.DebugEvent(co, EvPwritevRMWAfterHead)
		}
		if p.merge && p.tail != 0 {
			n.DebugEvent(co, EvPwritevRMWAfterTail)
		}
	}
	if p.tail != 0 && !p.merge {
		n.DebugEvent(co, EvPwritevRMWTail)
		if err := n.alignedPRead(co, req, req.overlapOff+req.overlapLen-align, p.tailBuf(align), 0); err != nil {
			return err
		}
		n.DebugEvent(co, EvPwritevRMWAfterTail)
	}
	if zeroMiddle {
		clear(p.buf[p.head : int64(len(p.buf))-p.tail])
	}
	return nil
}

// zeroPWrite is bdrv_co_do_zero_pwritev: padding blocks are read and
// written back as data, the aligned middle goes down as a zero write.
func (n *Node) zeroPWrite(co *Co, req *trackedReq, off, bytes int64, flags ReqFlags) error {
	align := n.limits.RequestAlignment
	p, padded := initPadding(off, bytes, align)
	if padded {
		defer putBuf(p.buf)
		req.padHead, req.padTail, req.padMerge = p.head, p.tail, p.merge
		if err := n.makeSerialising(co, req, align); err != nil {
			return err
		}
		if err := n.rmwRead(co, req, &p, align, true); err != nil {
			return err // 7.2 ignores it; see pwrite
		}
		if p.head != 0 || p.merge {
			aoff := off &^ (align - 1)
			wbytes := align
			if p.merge {
				wbytes = int64(len(p.buf))
			}
			if err := n.alignedPWrite(co, req, aoff, wbytes, p.buf[:wbytes], flags&^ZeroWrite); err != nil || p.merge {
				return err
			}
			off += wbytes - p.head
			bytes -= wbytes - p.head
		}
	}
	if bytes >= align {
		ab := bytes &^ (align - 1)
		if err := n.alignedPWrite(co, req, off, ab, nil, flags); err != nil {
			return err
		}
		bytes -= ab
		off += ab
	}
	if bytes > 0 {
		return n.alignedPWrite(co, req, off, align, p.tailBuf(align), flags&^ZeroWrite)
	}
	return nil
}

// alignedPWrite is bdrv_aligned_pwritev: wait for serialising requests,
// fire pwritev/pwritev_zero, call the driver (split by max_transfer), fire
// pwritev_done and count the write generation.
func (n *Node) alignedPWrite(co *Co, req *trackedReq, off, bytes int64, buf []byte, flags ReqFlags) error {
	maxTransfer := n.maxTransfer()
	if n.readonlyBitmaps() {
		return unix.EPERM
	}
	if err := n.waitSerialising(co, req); err != nil {
		return err // withdrawn: no event, nothing written
	}
	defer n.setDirty(off, bytes)
	flags = n.detectZeroWrite(buf, flags)
	var err error
	switch {
	case flags&ZeroWrite != 0:
		n.DebugEvent(co, EvPwritevZero)
		err = n.doPWriteZeroes(co, off, bytes, flags)
	case bytes <= maxTransfer:
		n.DebugEvent(co, EvPwritev)
		err = n.driverPWrite(co, off, buf, flags)
	default:
		n.DebugEvent(co, EvPwritev)
		for done := int64(0); done < bytes; {
			if co.loop.Interrupted() {
				err = ErrInterrupted
				break
			}
			num := min(bytes-done, maxTransfer)
			lf := flags
			if num < bytes-done && n.limits.SupportedWriteFlags&FUA == 0 {
				lf &^= FUA // one emulated flush at the end is enough
			}
			if err = n.driverPWrite(co, off+done, buf[done:done+num], lf); err != nil {
				break
			}
			done += num
		}
	}
	n.DebugEvent(co, EvPwritevDone)
	n.writeGen++
	if err == nil && n.totalBytes >= 0 && off+bytes > n.totalBytes {
		n.totalBytes = roundUp(off+bytes, 512)
	}
	return err
}

// maxTransfer is the longest data request handed to the driver: the
// max_transfer limit rounded down to the request alignment, but never
// below the alignment. A child's max-transfer smaller than this node's
// alignment (blkdebug max-transfer=4 under a probed raw node, aligned to
// 512) would otherwise round to 0: QEMU 7.2 dies there on assert(num) in
// bdrv_aligned_preadv, and a loop of empty pieces would never end. One
// alignment unit is what the node can send; the child splits it further.
func (n *Node) maxTransfer() int64 {
	align := n.limits.RequestAlignment
	return max(align, roundDown(minNonZero(n.limits.MaxTransfer, 1<<31-1), align))
}

// driverPWrite calls the driver, emulating FUA with a flush where the
// driver cannot do it (bdrv_driver_pwritev).
func (n *Node) driverPWrite(co *Co, off int64, buf []byte, flags ReqFlags) error {
	emulateFUA := flags&FUA != 0 && n.limits.SupportedWriteFlags&FUA == 0
	flags &= n.limits.SupportedWriteFlags
	co.markStarted(n.driver)
	if err := n.impl.PWrite(co, off, buf, flags); err != nil {
		return err
	}
	if emulateFUA {
		return n.Flush(co)
	}
	return nil
}

// doPWriteZeroes is bdrv_co_do_pwrite_zeroes: the driver's zero path in
// aligned pieces, falling back to a bounded zero buffer.
func (n *Node) doPWriteZeroes(co *Co, off, bytes int64, flags ReqFlags) error {
	l := n.limits
	if flags&^l.SupportedZeroFlags&NoFallback != 0 {
		return unix.ENOTSUP
	}
	alignment := max(l.PwriteZeroesAlignment, l.RequestAlignment)
	maxZero := minNonZero(l.MaxPwriteZeroes, 1<<63-1)
	maxZero = roundDown(maxZero, alignment)
	// Fallback chunks stay aligned even when max_transfer is smaller
	// than the alignment (see maxTransfer).
	maxTransfer := max(l.RequestAlignment, roundDown(minNonZero(l.MaxTransfer, maxBounce), l.RequestAlignment))
	head := off % alignment
	tail := (off + bytes) % alignment
	needFlush := false
	var buf []byte
	var err error
	for bytes > 0 && err == nil {
		num := bytes
		if head != 0 {
			num = min(bytes, maxTransfer, alignment-head)
			head = (head + num) % alignment
		} else if tail != 0 && num > alignment {
			num -= tail
		}
		num = min(num, maxZero)
		err = unix.ENOTSUP
		if n.ops.zero != nil {
			co.markStarted(n.driver)
			err = n.ops.zero.PWriteZeroes(co, off, num, flags&l.SupportedZeroFlags)
			if !isUnsupported(err) && flags&FUA != 0 && l.SupportedZeroFlags&FUA == 0 {
				needFlush = true
			}
		}
		if isUnsupported(err) && flags&NoFallback == 0 {
			wf := flags &^ (ZeroWrite | MayUnmap | NoFallback)
			if flags&FUA != 0 && l.SupportedWriteFlags&FUA == 0 {
				wf &^= FUA
				needFlush = true
			}
			// Write the piece with a zero buffer of at most maxTransfer
			// bytes, looping: memory stays bounded whatever the length.
			for done := int64(0); done < num; {
				if co.loop.Interrupted() {
					err = ErrInterrupted
					break
				}
				chunk := min(num-done, maxTransfer)
				if int64(len(buf)) < chunk {
					// Pooled: a piped stream of unaligned zero writes
					// allocated (and the collector cleared) one per
					// write. getBuf's buffers come zeroed.
					putBuf(buf)
					buf = getBuf(chunk)
				}
				if err = n.driverPWrite(co, off+done, buf[:chunk], wf); err != nil {
					break
				}
				done += chunk
			}
		}
		off += num
		bytes -= num
	}
	putBuf(buf)
	if err == nil && needFlush {
		err = n.Flush(co)
	}
	return err
}

// PDiscard discards [off, off+bytes) (bdrv_co_pdiscard). Discard is
// advisory: pieces the driver cannot discard are skipped.
func (n *Node) PDiscard(co *Co, off, bytes int64) error {
	if n.readOnly {
		return unix.EPERM
	}
	if err := checkRequest(off, bytes); err != nil {
		return err
	}
	if n.readonlyBitmaps() {
		return unix.EPERM
	}
	if !n.discardOn || n.ops.discard == nil {
		return nil
	}
	l := n.limits
	align := max(l.PdiscardAlignment, l.RequestAlignment)
	head := off % align
	tail := (off + bytes) % align
	req := n.track(co, off, bytes, trackDiscard)
	defer req.end()
	if err := n.waitSerialising(co, req); err != nil {
		return err
	}
	defer n.setDirty(off, bytes)
	co.markStarted(n.driver)
	maxDiscard := roundDown(minNonZero(l.MaxPdiscard, 1<<63-1), align)
	var err error
	for bytes > 0 {
		num := bytes
		if head != 0 {
			// Small pieces up to the alignment boundary; each piece
			// starts and ends on request_alignment where it can.
			num = min(bytes, align-head)
			if r := off % l.RequestAlignment; r != 0 {
				num = min(num, l.RequestAlignment-r)
			} else if num%l.RequestAlignment != 0 {
				num = num / l.RequestAlignment * l.RequestAlignment
				if num == 0 {
					num = bytes
				}
			}
			head = (head + num) % align
		} else if tail != 0 {
			if num > align {
				num -= tail
			} else if tail%l.RequestAlignment != 0 && tail > l.RequestAlignment {
				tail %= l.RequestAlignment
				num -= tail
			}
		}
		num = min(num, maxDiscard)
		if e := n.ops.discard.PDiscard(co, off, num); e != nil && !isUnsupported(e) {
			err = e
			break
		}
		off += num
		bytes -= num
	}
	n.writeGen++
	return err
}

// Flush writes back every layer from n down (bdrv_co_flush): flush_to_os
// and flush_to_disk events fire on the primary child, flush_to_disk only
// when something was written since the last flush.
//
// As in QEMU, one flush runs at a time on a node: the others wait in a
// FIFO queue, and a flush that started waiting after everything it has to
// cover was already flushed skips the disk flush. So 20000 writethrough
// aio_write requests cost one fdatasync, not 20000.
func (n *Node) Flush(co *Co) error {
	if n.readOnly {
		return nil
	}
	gen := n.writeGen
	for n.activeFlush {
		n.flushQueue = append(n.flushQueue, co)
		if !co.parkQueued("waits for a flush of "+n.name, &n.flushQueue) {
			return ErrWithdrawn
		}
	}
	co.markStarted(n.driver)
	n.activeFlush = true
	defer n.flushDone()
	if co.loop.tracer != nil {
		co.loop.Trace(TraceEvent{Kind: TraceFlushBegin, Req: co.id, Node: n})
	}
	err := n.flushThis(co, gen)
	for _, c := range n.children {
		if c.Node.readOnly {
			continue
		}
		if e := c.Node.Flush(co); err == nil {
			err = e
		}
	}
	if err == nil {
		n.flushedGen = gen
	}
	if co.loop.tracer != nil {
		co.loop.Trace(TraceEvent{Kind: TraceFlushEnd, Req: co.id, Node: n, Err: err})
	}
	return err
}

// flushDone ends the active flush and lets the next waiting one go.
func (n *Node) flushDone() {
	n.activeFlush = false
	if len(n.flushQueue) > 0 {
		next := n.flushQueue[0]
		n.flushQueue[0] = nil
		n.flushQueue = n.flushQueue[1:]
		next.Wake()
	}
}

func (n *Node) flushThis(co *Co, gen uint64) error {
	n.file.Event(co, EvFlushToOS)
	if n.ops.osFlush != nil {
		if err := n.ops.osFlush.FlushToOS(co); err != nil {
			return err
		}
	}
	if n.noFlush || n.flushedGen == gen {
		return nil
	}
	n.file.Event(co, EvFlushToDisk)
	if n.ops.dFlush != nil {
		return n.ops.dFlush.FlushToDisk(co)
	}
	return nil
}

// BlockStatus answers for [off, off+bytes) of this node, recursing through
// pass-through layers (bdrv_co_block_status). The answer covers at least
// one byte for any range inside the node; at or past the end it is
// StatusEOF with Pnum 0.
func (n *Node) BlockStatus(co *Co, wantZero bool, off, bytes int64) (Status, error) {
	total, err := n.Length(co)
	if err != nil {
		return Status{}, err
	}
	if off >= total {
		return Status{Flags: StatusEOF}, nil
	}
	bytes = min(bytes, total-off)
	if bytes == 0 {
		return Status{}, nil
	}
	if n.ops.status == nil {
		// No information: a filter passes the child's answer on; a format
		// without block status (bochs, cloop) is data, all allocated,
		// with no offset (bdrv_co_block_status's early answer); a
		// protocol is data at the same offset.
		switch {
		case n.driver.imageFormat():
			return Status{Flags: StatusData | StatusAllocated, Pnum: bytes}, nil
		case n.file != nil:
			return n.file.Node.BlockStatus(co, wantZero, off, bytes)
		}
		return Status{Flags: StatusData | StatusAllocated | StatusOffsetValid, Pnum: bytes, Map: off, File: n}, nil
	}
	align := n.limits.RequestAlignment
	aoff := roundDown(off, align)
	abytes := roundUp(off+bytes, align) - aoff
	st, err := n.ops.status.BlockStatus(co, wantZero, aoff, abytes)
	if err != nil {
		return Status{}, err
	}
	if st.Pnum <= 0 {
		// A driver must make progress; treat a zero answer as data so a
		// caller's loop cannot spin.
		st = Status{Flags: StatusData | StatusOffsetValid, Pnum: abytes, Map: aoff, File: n}
	}
	st.Pnum -= off - aoff
	if st.Flags&StatusOffsetValid != 0 {
		st.Map += off - aoff
	}
	st.Pnum = min(st.Pnum, bytes)
	if st.Flags&StatusRaw != 0 && st.File != nil {
		return st.File.BlockStatus(co, wantZero, st.Map, st.Pnum)
	}
	if st.Flags&(StatusData|StatusZero) != 0 {
		st.Flags |= StatusAllocated
	} else if n.driver.SupportsBacking {
		// Unallocated in a format with backing files: zeroes when
		// there is nothing below, or (want_zero) past the end of what
		// is below (bdrv_co_block_status).
		if back := n.backing(); back == nil {
			st.Flags |= StatusZero
		} else if wantZero {
			if l, err := back.Length(co); err == nil && off >= l {
				st.Flags |= StatusZero
			}
		}
	}
	if wantZero && st.Flags&StatusRecurse != 0 && st.File != nil && st.File != n &&
		st.Flags&StatusData != 0 && st.Flags&StatusZero == 0 && st.Flags&StatusOffsetValid != 0 {
		st2, err := st.File.BlockStatus(co, wantZero, st.Map, st.Pnum)
		if err == nil {
			if st2.Flags&StatusEOF != 0 && (st2.Pnum == 0 || st2.Flags&StatusZero != 0) {
				st.Flags |= StatusZero
			} else {
				st.Pnum = st2.Pnum
				st.Flags |= st2.Flags & StatusZero
			}
		}
	}
	if off+st.Pnum == total {
		st.Flags |= StatusEOF
	}
	return st, nil
}

// MaxLength is the largest image length and request end the block layer
// takes (BDRV_MAX_LENGTH: INT64_MAX rounded down to 1 GiB).
const MaxLength = (1<<63 - 1) &^ (1<<30 - 1)

// Truncate resizes the node (bdrv_co_truncate).
func (n *Node) Truncate(co *Co, size int64, exact bool, prealloc Prealloc) error {
	if n.readOnly {
		return unix.EPERM
	}
	if size < 0 {
		return Msgf(unix.EINVAL, "Image size cannot be negative")
	}
	if size > MaxLength {
		// bdrv_check_request(offset, 0) in bdrv_co_truncate.
		return Msgf(unix.EIO, "offset(%d) exceeds maximum(%d)", size, int64(MaxLength))
	}
	if n.ops.trunc == nil {
		return Msgf(unix.ENOTSUP, "Image format driver does not support resize")
	}
	old, err := n.Length(co)
	if err != nil {
		return err
	}
	req := n.track(co, min(old, size), 1<<62, trackTruncate)
	defer req.end()
	if err := n.makeSerialising(co, req, 1); err != nil {
		return err
	}
	co.markStarted(n.driver)
	if err := n.ops.trunc.Truncate(co, size, exact, prealloc); err != nil {
		return err
	}
	_, err = n.refreshLength(co)
	n.writeGen++
	return err
}
