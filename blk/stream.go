package blk

// Streaming large requests. qemu-io allocates a buffer as large as the
// request (1 GiB for "write -P 0xab 0 1G"); gio's commands can instead
// move such a request through a small buffer, piece by piece, when nobody
// can tell the difference: see Splittable.

// Splittable reports whether a request on b may be carried out as several
// consecutive requests without any observable change: no node of the
// graph reacts to debug events or breakpoints (blkdebug would count
// each piece as a request of its own), and no other request is in flight
// that could interleave with the pieces. Call it under the token, before
// spawning the request.
func (b *Backend) Splittable() bool {
	if b.loop.InFlight() > 0 {
		return false
	}
	return everyNode(b.Root, func(n *Node) bool { return n.ops.events == nil && n.ops.brk == nil })
}

// everyNode reports whether ok holds for n and every node below it.
func everyNode(n *Node, ok func(*Node) bool) bool {
	if !ok(n) {
		return false
	}
	for _, c := range n.children {
		if !everyNode(c.Node, ok) {
			return false
		}
	}
	return true
}

// streamPieces calls fn for the pieces of [off, off+bytes) cut at
// multiples of size (so that, with an aligned size, every piece but the
// first and last is aligned), stopping at the first error. last tells
// fn it has the final piece.
func streamPieces(co *Co, off, bytes, size int64, fn func(pos, n int64, last bool) error) error {
	end := off + bytes
	for pos := off; pos < end; {
		if pos > off && co.loop.Interrupted() {
			return ErrInterrupted
		}
		next := min(end, (pos/size+1)*size)
		if err := fn(pos, next-pos, next == end); err != nil {
			return err
		}
		pos = next
	}
	return nil
}

// SplittableWrites is Splittable for writes: also no node of the graph
// lays out its image by the requests it is given (RequestShaped).
func (b *Backend) SplittableWrites() bool {
	return b.Splittable() && everyNode(b.Root, func(n *Node) bool { return n.ops.shaped == nil })
}

// PWriteRepeat writes bytes bytes at off, each piece taken from the start
// of chunk: a pattern write of any length through a buffer of len(chunk)
// bytes, filled with one byte value. It checks the whole range first,
// as PWrite does, and in writethrough mode only the last piece is FUA:
// one flush makes everything stable, as the single FUA write it stands
// for would. Use it only when SplittableWrites.
func (b *Backend) PWriteRepeat(co *Co, off, bytes int64, chunk []byte, flags ReqFlags) error {
	if err := b.checkByteRequest(co, off, bytes); err != nil {
		return err
	}
	if bytes == 0 {
		return b.Root.PWrite(co, off, chunk[:0], b.writeFlags(flags))
	}
	return streamPieces(co, off, bytes, int64(len(chunk)), func(pos, n int64, last bool) error {
		f := b.writeFlags(flags)
		if !last {
			f &^= FUA
		}
		return b.Root.PWrite(co, pos, chunk[:n], f)
	})
}

// PReadPieces reads bytes bytes at off into chunk, piece by piece, and
// hands each piece to sink before reading the next. It checks the whole
// range first, as PRead does. Use it only when Splittable.
func (b *Backend) PReadPieces(co *Co, off, bytes int64, chunk []byte, sink func(pos int64, data []byte)) error {
	if err := b.checkByteRequest(co, off, bytes); err != nil {
		return err
	}
	return streamPieces(co, off, bytes, int64(len(chunk)), func(pos, n int64, last bool) error {
		if err := b.pread(co, pos, chunk[:n]); err != nil {
			return err
		}
		sink(pos, chunk[:n])
		return nil
	})
}
