package blk

import (
	"gio/blk/qdict"

	"strings"

	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Node is one node of the block graph: a driver's implementation plus the
// generic state blk keeps for it (limits, tracked requests, flush
// generations). Fields are touched only under the scheduler token.
type Node struct {
	name string
	// nodeName is the node-name option; releaseName frees it in the
	// registry when the node closes (nodename.go).
	nodeName    string
	releaseName func()
	filename    string // the "filename" option it was opened with, if any
	openOpts    *qdict.Dict
	driver      *Driver
	impl        Impl
	ops         nodeOps

	children []*Child
	file     *Child // primary child, if any
	limits   Limits

	readOnly  bool
	noFlush   bool // cache=unsafe: never flush to disk
	discardOn bool // discard=unmap
	// detectZeroes turns data writes of zeroes into zero writes.
	detectZeroes DetectZeroes
	probed       bool
	noSerialise  bool // debug switch: never serialise (shows lost updates)
	// staleRMW is a debug switch: a padded write reads its padding
	// before waiting for overlapping requests, and writes the stale
	// bytes back after the wait (the bug of QEMU's RMW series).
	staleRMW bool

	// tracked is the newest request in flight, heading a doubly linked
	// list to the oldest (QEMU's QLIST_INSERT_HEAD order): insertion and
	// removal cost the same with 20000 requests in flight as with one.
	// Ended requests are kept in freeReqs for reuse, so that a request's
	// path allocates nothing in the steady state.
	tracked             *trackedReq
	freeReqs            []*trackedReq
	serialisingInFlight int
	writeGen            uint64
	flushedGen          uint64
	// activeFlush is set while a flush runs on the node; flushQueue
	// holds the flushes waiting for it (QEMU's active_flush_req and
	// flush_queue).
	activeFlush bool
	flushQueue  []*Co
	// totalBytes caches the length rounded up to 512, as QEMU's
	// total_sectors does; -1 means unknown.
	totalBytes int64
}

// Child is an edge of the graph, with QEMU's role name ("file", "image",
// "backing").
type Child struct {
	Name   string
	Node   *Node
	Parent *Node
}

func newNode(d *Driver, name string) *Node {
	return &Node{driver: d, name: name, totalBytes: -1, limits: Limits{RequestAlignment: 1}}
}

// Name returns the node's name.
func (n *Node) Name() string { return n.name }

// Filename returns the file name the node was opened with ("" if none).
func (n *Node) Filename() string { return n.filename }

// Options returns the node's own open options as given (after filename
// parsing), without its children's.
func (n *Node) Options() *qdict.Dict {
	d := qdict.New()
	if n.openOpts == nil {
		return d
	}
	for _, k := range n.openOpts.Keys() {
		first, _, _ := strings.Cut(k, ".")
		child := false
		for _, c := range n.children {
			child = child || c.Name == first
		}
		// x- keys are internal hand-overs between a filename parser and
		// its driver, not options a user gave.
		if !child && !strings.HasPrefix(k, "x-") {
			v, _ := n.openOpts.Get(k)
			d.Set(k, v)
		}
	}
	return d
}

// FullOptions returns the options that describe the node and its
// children completely, with "driver" keys, as QEMU's bdrv_refresh_filename
// builds them for a generated json: file name.
func (n *Node) FullOptions() *qdict.Dict {
	d := n.Options()
	d.Set("driver", n.driver.Name)
	for _, c := range n.children {
		cd := c.Node.FullOptions()
		for _, k := range cd.Keys() {
			v, _ := cd.Get(k)
			d.Set(c.Name+"."+k, v)
		}
	}
	return d
}

// ChildNames returns the role names of the node's children, recursively
// (for rendering FullOptions as nested JSON).
func (n *Node) ChildNames() []string {
	var names []string
	for _, c := range n.children {
		names = append(names, c.Name)
		names = append(names, c.Node.ChildNames()...)
	}
	return names
}

// Driver returns the node's driver.
func (n *Node) Driver() *Driver { return n.driver }

// Impl returns the driver's implementation of the node.
func (n *Node) Impl() Impl { return n.impl }

// Limits returns the node's current limits.
func (n *Node) Limits() Limits { return n.limits }

// File returns the primary child, or nil.
func (n *Node) File() *Child { return n.file }

// Children returns every child edge.
func (n *Node) Children() []*Child { return n.children }

// ReadOnly reports whether the node is read-only.
func (n *Node) ReadOnly() bool { return n.readOnly }

// Probed reports whether the node's format was probed.
func (n *Node) Probed() bool { return n.probed }

// SetSerialisation turns request serialisation on or off. Off is a debug
// mode that lets overlapping read-modify-write requests lose updates, so
// that users can watch the bug serialisation prevents.
func (n *Node) SetSerialisation(on bool) { n.noSerialise = !on }

// SetRMWReread off is a debug mode (a mutation for gio explore): a
// padded write no longer waits for overlapping requests before reading
// its padding, only before writing, so after a wait it writes back
// padding read before the other request landed.
func (n *Node) SetRMWReread(on bool) { n.staleRMW = !on }

// Breakpointer returns the first node at or below n (following primary
// children) that implements breakpoints, or nil.
func (n *Node) Breakpointer() Breakpointer {
	for c := n; c != nil; {
		if c.ops.brk != nil {
			return c.ops.brk
		}
		if c.file == nil {
			return nil
		}
		c = c.file.Node
	}
	return nil
}

// refreshLimits merges the primary child's limits and lets the driver
// adjust them (bdrv_refresh_limits).
func (n *Node) refreshLimits() {
	l := Limits{RequestAlignment: 1}
	if n.file != nil {
		cl := n.file.Node.limits
		l.MaxTransfer = cl.MaxTransfer
		l.OptTransfer = cl.OptTransfer
		l.MemAlignment = cl.MemAlignment
	}
	if n.ops.limits != nil {
		n.ops.limits.RefreshLimits(&l)
	}
	if l.RequestAlignment < 1 {
		l.RequestAlignment = 1
	}
	if n.probed && l.RequestAlignment < 512 {
		// QEMU's raw_refresh_limits: a probed raw image does
		// read-modify-write on sub-sector writes so that block 0 can be
		// checked before it is written.
		l.RequestAlignment = 512
	}
	if l.MaxTransfer != 0 {
		// An inherited max_transfer below this node's alignment (blkdebug
		// max-transfer=4 under a probed raw node) cannot be honoured: the
		// node can send nothing shorter than one aligned block, which its
		// child splits further. QEMU 7.2 keeps the limit and dies on
		// assert(num) in bdrv_aligned_preadv.
		l.MaxTransfer = max(l.RequestAlignment, roundDown(l.MaxTransfer, l.RequestAlignment))
	}
	n.limits = l
}

// checkWritableLength refuses a writable node whose length is not a
// multiple of its request alignment: QEMU cannot grant write permission
// on it, because a write at the end could not be padded.
func (n *Node) checkWritableLength(loop *Loop) error {
	if n.readOnly || n.limits.RequestAlignment <= 512 || loop == nil {
		return nil
	}
	var l int64
	if err := loop.RunSync("open: length", func(co *Co) (err error) { l, err = n.Length(co); return }); err != nil {
		return nil
	}
	if l%n.limits.RequestAlignment != 0 {
		return Msgf(unix.EINVAL, "Cannot get 'write' permission without 'resize': Image size is not a multiple of request alignment")
	}
	return nil
}

// Length returns the node's length rounded up to 512 bytes, as QEMU's
// bdrv_getlength does.
func (n *Node) Length(co *Co) (int64, error) {
	if n.totalBytes >= 0 {
		return n.totalBytes, nil
	}
	return n.refreshLength(co)
}

// InvalidateLength drops the cached length, for a driver whose length
// changed outside a resize (raw's window moved by reopen; QEMU's
// refresh_total_sectors after bdrv_reopen_commit).
func (n *Node) InvalidateLength() { n.totalBytes = -1 }

func (n *Node) refreshLength(co *Co) (int64, error) {
	l, err := n.impl.Length(co)
	if err != nil {
		return 0, err
	}
	n.totalBytes = roundUp(l, 512)
	return n.totalBytes, nil
}

// DebugEvent fires ev on n (QEMU's bdrv_debug_event): only a node whose
// driver handles events reacts. It may yield.
func (n *Node) DebugEvent(co *Co, ev Event) {
	if n != nil && n.ops.events != nil {
		if co != nil {
			co.lastEvent = ev
			co.request().lastEvent = ev
			if co.loop.tracer != nil {
				co.loop.Trace(TraceEvent{Kind: TraceDebugEvent, Req: co.id, Node: n, Name: ev.String()})
			}
		}
		n.ops.events.DebugEvent(co, ev)
	}
}

// Event fires ev on the child's node (QEMU's BLKDBG_EVENT(child, ev)).
func (c *Child) Event(co *Co, ev Event) {
	if c != nil {
		c.Node.DebugEvent(co, ev)
	}
}

func roundUp(v, a int64) int64   { return (v + a - 1) / a * a }
func roundDown(v, a int64) int64 { return v / a * a }
func minNonZero(a, b int64) int64 {
	if a == 0 {
		return b
	}
	if b == 0 || a < b {
		return a
	}
	return b
}

// ---------------------------------------------------------------------
// Request tracking and serialisation (QEMU's BdrvTrackedRequest).

type reqKind int

const (
	trackRead reqKind = iota
	trackWrite
	trackDiscard
	trackTruncate
)

type trackedReq struct {
	node        *Node
	co          *Co
	off, bytes  int64
	overlapOff  int64
	overlapLen  int64
	serialising bool
	kind        reqKind
	waitingFor  *trackedReq
	prev, next  *trackedReq // neighbours in node.tracked: newer, older
	waiters     []*Co
	// span numbers the request in the trace (0: not traced); padHead,
	// padTail and padMerge are its RMW padding (requests -v).
	span             int
	padHead, padTail int64
	padMerge         bool
}

func (r *trackedReq) String() string {
	return fmt.Sprintf("%s [0x%x+0x%x]", r.co.name, r.off, r.bytes)
}

func (n *Node) track(co *Co, off, bytes int64, kind reqKind) *trackedReq {
	var r *trackedReq
	if k := len(n.freeReqs); k > 0 {
		r = n.freeReqs[k-1]
		n.freeReqs[k-1] = nil
		n.freeReqs = n.freeReqs[:k-1]
	} else {
		r = &trackedReq{}
	}
	*r = trackedReq{node: n, co: co, off: off, bytes: bytes, overlapOff: off, overlapLen: bytes, kind: kind, waiters: r.waiters[:0]}
	r.next = n.tracked
	if n.tracked != nil {
		n.tracked.prev = r
	}
	n.tracked = r
	if co.loop.tracer != nil {
		co.traceSpan(r)
	}
	return r
}

// maxFreeReqs bounds a node's pool of ended tracked requests.
const maxFreeReqs = 256

// end untracks the request and restarts everyone waiting for it, in FIFO
// order.
func (r *trackedReq) end() {
	n := r.node
	if r.span != 0 {
		r.co.traceSpanEnd(r)
	}
	if r.prev != nil {
		r.prev.next = r.next
	} else if n.tracked == r {
		n.tracked = r.next
	}
	if r.next != nil {
		r.next.prev = r.prev
	}
	if r.serialising {
		n.serialisingInFlight--
	}
	for i, co := range r.waiters {
		co.Wake()
		r.waiters[i] = nil
	}
	// Nothing refers to an ended request but the waitingFor links of
	// requests it has just woken, which are only compared with nil, so
	// it can be reused at once.
	*r = trackedReq{waiters: r.waiters[:0]}
	if len(n.freeReqs) < maxFreeReqs {
		n.freeReqs = append(n.freeReqs, r)
	}
}

func (r *trackedReq) overlaps(off, bytes int64) bool {
	return off < r.overlapOff+r.overlapLen && r.overlapOff < off+bytes
}

// findConflict mirrors bdrv_find_conflicting_request: an overlapping
// request where one side is serialising, unless that request is itself
// waiting (it would wait for us, so going on avoids a deadlock). A
// request of the same coroutine is the caller's own outer request (a
// copy-on-read writes back through the generic path inside its
// serialising read, where QEMU calls the driver directly): never a
// conflict.
func (n *Node) findConflict(self *trackedReq) *trackedReq {
	for r := n.tracked; r != nil; r = r.next {
		if r == self || r.co == self.co || (!r.serialising && !self.serialising) {
			continue
		}
		if r.overlaps(self.overlapOff, self.overlapLen) && r.waitingFor == nil {
			return r
		}
	}
	return nil
}

// waitSerialising waits while a conflicting request is in flight
// (bdrv_wait_serialising_requests). It yields. It returns ErrWithdrawn
// when the request was withdrawn from the wait (Loop.Withdraw).
func (n *Node) waitSerialising(co *Co, self *trackedReq) error {
	if n.noSerialise || (n.serialisingInFlight == 0 && !self.serialising) {
		return nil
	}
	for {
		r := n.findConflict(self)
		if r == nil {
			return nil
		}
		self.waitingFor = r
		r.waiters = append(r.waiters, co)
		if co.loop.tracer != nil {
			co.loop.Trace(TraceEvent{Kind: TraceWait, Req: co.id, Span: self.span, Parent: r.span,
				Target: r.co.id, Node: n, Off: r.overlapOff, Bytes: r.overlapLen})
		}
		ok := co.parkQueued("waits for "+r.String(), &r.waiters)
		self.waitingFor = nil
		if !ok {
			return ErrWithdrawn
		}
	}
}

// makeSerialising widens the request's overlap range to align and waits
// for conflicting requests (bdrv_make_request_serialising).
func (n *Node) makeSerialising(co *Co, r *trackedReq, align int64) error {
	if !r.serialising {
		r.serialising = true
		n.serialisingInFlight++
	}
	start := roundDown(r.off, align)
	end := roundUp(r.off+r.bytes, align)
	if start < r.overlapOff {
		r.overlapLen += r.overlapOff - start
		r.overlapOff = start
	}
	if end > r.overlapOff+r.overlapLen {
		r.overlapLen = end - r.overlapOff
	}
	if co.loop.tracer != nil {
		co.loop.Trace(TraceEvent{Kind: TraceSerialise, Req: co.id, Span: r.span, Node: n, Off: r.overlapOff, Bytes: r.overlapLen})
	}
	if n.staleRMW && align > 1 {
		return nil
	}
	return n.waitSerialising(co, r)
}

// checkRequest rejects negative or overflowing ranges (bdrv_check_request).
func checkRequest(off, bytes int64) error {
	const maxLen = 1<<63 - 1 - 511
	if off < 0 || bytes < 0 || bytes > maxLen || off > maxLen-bytes {
		return unix.EIO
	}
	return nil
}

// ErrReadOnly is returned by writes to a read-only node.
var ErrReadOnly = errors.New("Block node is read-only")

// AllocatedFileSize is bdrv_get_allocated_file_size: the driver's answer
// (AllocatedSizer); else ENOTSUP for a protocol, and for a format or
// filter the sum over its children but backing files.
func (n *Node) AllocatedFileSize() (int64, error) {
	if a, ok := n.impl.(AllocatedSizer); ok {
		return a.AllocatedSize()
	}
	if !n.driver.Format {
		return 0, unix.ENOTSUP
	}
	var sum int64
	for _, c := range n.children {
		if c.Name == "backing" {
			continue
		}
		v, err := c.Node.AllocatedFileSize()
		if err != nil {
			return 0, err
		}
		sum += v
	}
	return sum, nil
}
