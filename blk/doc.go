// Package blk is gio's block layer, QEMU 7.2's block/io.c and friends in
// Go: a graph of nodes (a driver's implementation each, joined by named
// child edges: file, backing, image), and the generic request path every
// node shares, which does the hard parts once for all drivers: padding
// and read-modify-write inside a serialising tracked request, splitting
// by max_transfer, zero writes with a bounded fallback, FUA emulation,
// flush generations, and the debug events blkdebug stops requests at.
//
// Requests run as coroutines on a Loop that hands one token around (one
// request runs at a time, and it gives the token up only at named yield
// points), so that a race replays identically on every run; time is
// virtual unless the caller asks for the real clock.
//
// # Where to look
//
//	driver.go   what a driver implements (Impl and the optional
//	            capabilities), the contracts both ways, Limits
//	node.go     Node, Child, tracked requests and serialisation, limits
//	io.go       the request path: PRead, PWrite, zero writes, discard,
//	            flush, block status, truncate
//	backend.go  Backend, the top of a graph, as qemu-io's BlockBackend
//	open.go     Registry and Spec: opening a graph from options
//	co.go       Loop and Co: the one-token scheduler, virtual time
//	event.go    the debug events (BlkdebugEvent's names)
//
// # One request, from the shell to the disk
//
// qemu-io's 077-style setup, a raw node over blkdebug with 4 KiB sectors
// over a file,
//
//	gio --image-opts driver=raw,file.driver=blkdebug,file.align=4k,file.image.filename=img.raw
//
// and the command "write -P 0xaa 512 512" go this way. (Each name is a
// function of gio; a test checks that every one of them exists.)
//
// The shell. commands.(*Session).Execute() splits the line with
// commands.SplitLine(), finds "write" in the command table and parses its
// flags with getopt.Parse(), QEMU's getopt. commands.writeCmd() reads the
// pattern with commands.(*Session).pattern() and the offset and length
// with commands.(*Session).num() (cvt.ParseNumWarn(), qemu-io's cvtnum, over
// cutils.Strtosz(), QEMU's qemu_strtosz),
// fills a buffer with commands.(*Session).syncBuf(), and runs the request
// through commands.(*Session).timedIO(), which times it on the loop's
// clock and prints "write failed: ..." or the report line.
// commands.(*Session).runSync() spawns the request as a coroutine with
// blk.(*Loop).Spawn() and drives the loop with blk.(*Loop).RunUntil()
// until it is done; a request that can never finish (suspended at a
// breakpoint nobody resumes) comes back as *ErrStuck instead of hanging.
//
// The backend. blk.(*Backend).PWrite() refuses a request past the end of
// the image with EIO in blk.(*Backend).checkByteRequest()
// (blk_check_byte_request), and blk.(*Backend).writeFlags() adds FUA in
// writethrough mode (the default cache mode). It calls the root node.
//
// The raw node. blk.(*Node).PWrite() and blk.(*Node).pwrite() check the
// request (blk.checkRequest()) and the node's alignment, which is 1 for
// raw: no padding here. The request is tracked with blk.(*Node).track()
// and goes down through blk.(*Node).alignedPWrite() (fire pwritev, call
// the driver, fire pwritev_done) and blk.(*Node).driverPWrite(), which
// passes FUA on only if the driver claims it and otherwise emulates it
// with a flush afterwards. raw's driver, raw.(*node).PWrite(), fires
// write_aio on its file child with blk.(*Child).Event() and calls the
// child through the generic path again: a filter or format never calls
// its child's driver directly, so alignment, splitting and tracking apply
// at every level.
//
// The blkdebug node: padding. Its limits say 4096, so
// blk.(*Node).pwrite() pads [512, 1024) to [0, 4096) with
// blk.initPadding(): head 512 bytes, tail 3072, one merged block. The
// request becomes serialising (blk.(*Node).makeSerialising() widens its
// range to the alignment and waits in blk.(*Node).waitSerialising() for
// overlapping requests in flight, and later overlapping requests wait for
// it: two read-modify-writes of the same block never interleave).
// blk.(*Node).rmwRead() fires pwritev_rmw_head and pwritev_rmw_tail, reads
// the block with blk.(*Node).alignedPRead() (blkdebug checks the read
// with blkdebug.(*node).PRead() and passes it to the file node, which
// reads with file.(*node).PRead()), then fires pwritev_rmw_after_head and
// pwritev_rmw_after_tail. Events reach blkdebug through
// blk.(*Node).DebugEvent(), where blkdebug.(*node).DebugEvent() runs the
// rules: a breakpoint parks the coroutine (blk.(*Co).Park()) until
// "resume". Only after these waits is the padded buffer built from the
// padding block and the caller's bytes, so a request that waited never
// writes back stale data. Unlike QEMU 7.2, a failed padding read fails the
// write.
//
// The blkdebug node: the write. blk.(*Node).alignedPWrite() waits for
// serialising requests again, fires pwritev, and splits the request into
// pieces of at most blk.(*Node).maxTransfer() bytes (one piece here).
// blk.(*Node).driverPWrite() calls blkdebug.(*node).PWrite(), which checks
// the generic layer's guarantees (blkdebug.(*node).checkIO(): aligned, not
// longer than max-transfer), asks its inject-error rules
// (blkdebug.(*node).ruleCheck()) and passes the write to the file node.
// A zero write ("write -z") would go to blk.(*Node).zeroPWrite() and
// blk.(*Node).doPWriteZeroes() instead: the driver's efficient path in
// aligned pieces, and a bounded zero buffer when it answers ENOTSUP,
// unless the request says NoFallback.
//
// The file node and the syscall. file.(*node).PWrite() checks the write
// permission (image locks), writes with file.(*node).writeAt() and
// file.(*node).pwriteLoop(), which calls unix.Pwrite until every byte is
// down, and gives the token up once with blk.(*Co).YieldIO(), as QEMU's
// thread pool completes a request later. Back in blkdebug's
// blk.(*Node).driverPWrite(), FUA is emulated: blk.(*Node).Flush() flushes
// every layer from blkdebug down, firing flush_to_os and flush_to_disk
// (blk.(*Node).flushThis()) and ending in file.(*node).FlushToDisk()
// (fdatasync), skipped when nothing was written since the last flush.
//
// On the way back up, pwritev_done fires, the write generation is
// counted, the tracked request ends and wakes the requests that waited
// for it, and timedIO prints
//
//	wrote 512/512 bytes at offset 512
//	512 bytes, 1 ops; 00.00 sec (...)
package blk
