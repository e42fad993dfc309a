package blk

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"gio/blk/qdict"

	"golang.org/x/sys/unix"
)

// ReqFlags modify a request, as QEMU's BdrvRequestFlags do.
type ReqFlags uint32

// Request flags.
const (
	// FUA asks for the data to be on stable storage when the request
	// completes. Where a driver cannot do it, blk emulates it with a flush.
	FUA ReqFlags = 1 << iota
	// MayUnmap lets a zero write punch a hole instead of writing zeroes.
	MayUnmap
	// NoFallback makes a zero write fail with ENOTSUP rather than write a
	// zero buffer when the efficient path is unavailable.
	NoFallback
	// ZeroWrite marks a write of zeroes (no buffer).
	ZeroWrite
)

func (f ReqFlags) String() string {
	var s []string
	for _, b := range []struct {
		f ReqFlags
		n string
	}{{FUA, "FUA"}, {MayUnmap, "MayUnmap"}, {NoFallback, "NoFallback"}, {ZeroWrite, "ZeroWrite"}} {
		if f&b.f != 0 {
			s = append(s, b.n)
		}
	}
	if len(s) == 0 {
		return "0"
	}
	return strings.Join(s, "|")
}

// Limits are the constraints a node publishes (QEMU's BlockLimits). Zero
// means "no constraint" for every field but RequestAlignment.
//
// What blk enforces, after LimitsRefresher has run (refreshLimits):
// RequestAlignment is at least 1 (512 for a probed raw image); an
// inherited MaxTransfer is rounded down to a multiple of the alignment
// and never below it. What a driver must give (blk does not check it;
// blkdebug checks its options at open with QEMU's messages): alignments
// are powers of two, and each maximum is a multiple of its alignment.
// With those, blk guarantees every request it hands a driver as stated
// at each field.
type Limits struct {
	// RequestAlignment: blk hands the driver only requests whose offset
	// and length are multiples of it, padding reads and doing
	// read-modify-write for writes.
	RequestAlignment int64
	// MaxTransfer: blk splits longer data requests (reads, writes and
	// the zero-buffer fallback of zero writes) into pieces of at most
	// this many bytes.
	MaxTransfer int64
	// OptTransfer is a hint for I/O sizes.
	OptTransfer int64
	// PwriteZeroesAlignment, MaxPwriteZeroes shape zero writes: pieces
	// that are not aligned to PwriteZeroesAlignment only ever cover the
	// unaligned head or tail, never cross a boundary, and no piece is
	// longer than MaxPwriteZeroes.
	PwriteZeroesAlignment, MaxPwriteZeroes int64
	// PdiscardAlignment, MaxPdiscard shape discards the same way;
	// unaligned pieces are passed down and may be ignored.
	PdiscardAlignment, MaxPdiscard int64
	// MemAlignment is the buffer alignment needed for I/O (O_DIRECT).
	MemAlignment int64
	// SupportedWriteFlags and SupportedZeroFlags say which request flags
	// the driver honours natively; blk emulates (FUA: a flush after the
	// write) or strips the rest, so a driver never sees a flag it did not
	// claim.
	SupportedWriteFlags, SupportedZeroFlags ReqFlags
}

// Impl is what every driver's node implements. blk guarantees, before
// calling PRead or PWrite: the request is tracked (overlapping
// serialising requests have finished), offset and length are multiples
// of Limits.RequestAlignment and the length is at most Limits.MaxTransfer;
// a read lies inside the node's length rounded up to the alignment (blk
// zero-fills beyond), a write may extend it; the node is not read-only
// for writes. The methods run with the token and may yield. The
// implementation returns an errno (possibly wrapped, e.g. in *Error) on
// failure, and may not keep buf after returning.
type Impl interface {
	// PRead fills all of buf from offset off.
	PRead(co *Co, off int64, buf []byte, flags ReqFlags) error
	// PWrite writes buf at offset off. flags contains at most the node's
	// SupportedWriteFlags. It must not modify buf, even temporarily (the
	// rule of io.Writer): callers share one buffer between requests
	// (every in-flight "aio_write -P 0x5a 0 4k" writes the same one), so
	// a driver that transforms data (encryption) does it in a buffer of
	// its own.
	PWrite(co *Co, off int64, buf []byte, flags ReqFlags) error
	// Length returns the length in bytes (not rounded).
	Length(co *Co) (int64, error)
	// Close releases the node's resources (children are closed by blk).
	Close() error
}

// The optional capabilities below are found by type assertion once, when
// the node opens (nodeOps), never on the request path. A node that has a
// capability only sometimes (punching holes on this file system) still
// implements it and returns an error matching errors.ErrUnsupported
// (ENOTSUP, EOPNOTSUPP) when it cannot do the job; blk then falls back
// where the capability says so.

// ZeroWriter is the efficient zero-write path (fallocate, unmapping).
// blk guarantees: the range is aligned to RequestAlignment, shaped by
// PwriteZeroesAlignment and MaxPwriteZeroes (see Limits), and flags hold
// at most SupportedZeroFlags. The driver returns an error matching
// errors.ErrUnsupported when it cannot zero this piece; blk then writes a
// bounded zero buffer through PWrite, unless the request carries
// NoFallback (the error then reaches the caller).
type ZeroWriter interface {
	PWriteZeroes(co *Co, off, n int64, flags ReqFlags) error
}

// Discarder discards a range. blk guarantees the range lies inside the
// node, is shaped by PdiscardAlignment and MaxPdiscard, and that discard
// is enabled (discard=unmap). Discard is advisory: pieces smaller than
// the alignment may be ignored (return ErrUnsupported, which blk drops);
// any other error fails the discard.
type Discarder interface {
	PDiscard(co *Co, off, n int64) error
}

// RequestShaped is implemented by formats whose image shows how a write
// was cut into requests. QED allocates a missing L2 table right after the
// data clusters of the request that needed it (qed_aio_write_alloc, then
// qed_aio_write_l2_update): one 256 MiB write leaves the table after all
// the data, 32 writes of 8 MiB leave it after the first 8 MiB. A graph
// holding such a node has no Backend.SplittableWrites, so that gio's
// large writes stay one request, as qemu-io's are.
type RequestShaped interface {
	RequestShaped()
}

// CompressedWriter is implemented by formats that can store data
// compressed (qcow2's write -c). blk guarantees the request lies inside
// the node and is tracked; the driver checks its own alignment rules
// (EINVAL) and may refuse to overwrite (EIO, as qcow2 does). Without it,
// a compressed write fails with ENOTSUP.
type CompressedWriter interface {
	PWriteCompressed(co *Co, off int64, buf []byte) error
}

// Status flags of a block-status answer (QEMU's BDRV_BLOCK_*).
const (
	StatusData        = 1 << 0
	StatusZero        = 1 << 1
	StatusOffsetValid = 1 << 2
	StatusRaw         = 1 << 3 // look at Status.File at Status.Map instead
	StatusAllocated   = 1 << 4
	StatusEOF         = 1 << 5
	StatusRecurse     = 1 << 6
)

// Status is a block-status answer for the range [off, off+Pnum).
type Status struct {
	Flags int
	Pnum  int64 // bytes covered, > 0 for a valid range
	Map   int64 // offset in File where the data lives (with OffsetValid)
	File  *Node // node holding the data
	Depth int   // backing-chain depth (filled by BlockStatusAbove)
}

// BlockStatuser answers block status for this layer only. blk guarantees
// off and n are aligned and inside the node; the answer must cover a
// non-zero, aligned prefix of the range (blk treats a zero answer as
// data, so that no caller loops forever). Without it, a node with a
// primary child answers what the child answers, and a leaf is all data.
type BlockStatuser interface {
	BlockStatus(co *Co, wantZero bool, off, n int64) (Status, error)
}

// OSFlusher writes the node's own cached data back to the layer below
// (QEMU's bdrv_co_flush_to_os). blk calls it from Node.Flush on every
// writable node of the graph, parents before children, one flush at a
// time per node, after firing flush_to_os on the node's primary child,
// and whether or not anything was written. It must not flush its
// children: blk does.
type OSFlusher interface{ FlushToOS(co *Co) error }

// DiskFlusher forces the node's data to stable storage (fdatasync; QEMU's
// bdrv_co_flush_to_disk). blk calls it after FlushToOS succeeded, after
// firing flush_to_disk, and only when something was written to the node
// since its last successful flush and the cache mode is not unsafe. It is
// also how blk emulates FUA for a driver that does not claim it. An error
// fails the flush (and the write whose FUA it emulated); a driver whose
// data may have been lost keeps failing (the file driver's sticky error).
type DiskFlusher interface{ FlushToDisk(co *Co) error }

// Prealloc is a truncate preallocation mode.
type Prealloc int

// Preallocation modes, with QEMU's names.
const (
	PreallocOff Prealloc = iota
	PreallocMetadata
	PreallocFalloc
	PreallocFull
)

var preallocNames = []string{"off", "metadata", "falloc", "full"}

func (p Prealloc) String() string { return preallocNames[p] }

// ParsePrealloc parses a preallocation mode name.
func ParsePrealloc(s string) (Prealloc, bool) {
	for i, n := range preallocNames {
		if n == s {
			return Prealloc(i), true
		}
	}
	return 0, false
}

// Truncater changes the node's length (QEMU's bdrv_co_truncate). blk
// guarantees: the node is writable, size >= 0, and the resize is a
// serialising tracked request over everything from min(old, size) on, so
// no request overlapping the changed range runs meanwhile; afterwards blk
// re-reads Length and counts a write.
//
// The driver: with exact set, the node must end up exactly size bytes or
// the call fails; without it (qemu-io's truncate) a driver may end up
// larger when it cannot be resized to size exactly (a format rounding to
// its own granularity), but resizes to size where it can. Shrinking with
// a preallocation mode other than PreallocOff fails with ENOTSUP ("Cannot
// use preallocation for shrinking files"), as does a mode the driver does
// not support. Errors are *Error values carrying QEMU's message. A node
// without Truncater cannot be resized: blk answers ENOTSUP "Image format
// driver does not support resize".
type Truncater interface {
	Truncate(co *Co, size int64, exact bool, prealloc Prealloc) error
}

// Reopener is implemented by drivers whose open state depends on the
// read-only flag (the file driver's descriptor is O_RDONLY or O_RDWR).
// Backend.SetReadOnly calls it on every node whose flag changes, parents
// first, before it changes any node's flag; an error stops the reopen and
// no node's flag changes.
type Reopener interface{ Reopen(readOnly bool) error }

// DirectReopener is implemented by drivers whose open state depends on
// cache.direct (the file driver's O_DIRECT descriptor and the alignment
// found with it). Backend.SetDirect calls it on every node of the graph,
// children first, and refreshes the limits afterwards; an error leaves
// the node as it was, and Backend.SetDirect then switches back the nodes
// it had already switched.
type DirectReopener interface{ ReopenDirect(direct bool) error }

// ReopenFinisher is implemented by drivers with work to do once a
// read-only change is committed on the whole graph
// (bdrv_reopen_commit_post): by then the node's children have their new
// mode too, so a format going read-write can write its file. It cannot
// fail the reopen; the driver reports its own errors.
type ReopenFinisher interface{ ReopenCommitted(readOnly bool) }

// DirtyTracker is implemented by drivers that keep dirty bitmaps of
// their node (qcow2's persistent bitmaps). blk calls SetDirty where
// QEMU's bdrv_co_write_req_finish sets dirty bits: after each aligned
// write, zero write, compressed write and discard that reached the
// driver step, whatever its result, with that request's range. While
// ReadonlyBitmaps is true, blk refuses writes and discards with EPERM
// before they start (bdrv_has_readonly_bitmaps).
type DirtyTracker interface {
	SetDirty(off, bytes int64)
	ReadonlyBitmaps() bool
}

// OptionReopener is implemented by drivers whose runtime options can
// change on reopen (a driver's bdrv_reopen_prepare and _commit).
// PrepareReopen removes from opts the keys it knows, checks them against
// the node (which is about to become read-only when readOnly is set) and
// returns the function that applies them; after an error nothing has
// changed that the options control. The caller refuses the keys left in
// opts, and calls commit once the rest of the reopen has succeeded.
type OptionReopener interface {
	PrepareReopen(opts *qdict.Dict, readOnly bool) (commit func(), err error)
}

// VMStater is implemented by drivers with a VM state area (qcow2's
// bdrv_load_vmstate and bdrv_save_vmstate): pos is a byte offset into the
// area, not into the disk, and may lie beyond the disk's length. Each
// call transfers the whole buffer or fails.
type VMStater interface {
	LoadVMState(co *Co, buf []byte, pos int64) error
	SaveVMState(co *Co, buf []byte, pos int64) error
}

// LimitsRefresher lets a driver set its limits after blk has merged the
// primary child's max_transfer, opt_transfer and memory alignment into l
// (QEMU's bdrv_refresh_limits). It runs at open, children first; blk then
// enforces what Limits says it does.
type LimitsRefresher interface{ RefreshLimits(l *Limits) }

// PermTaker is implemented by drivers that keep permissions (the file
// driver, whose permissions are image locks). TakePerm adds p to what
// the node holds. ParentPerms applies what a parent opened after the node
// (a format found by probing) needs: f's TakePerms, UnsharePerms and
// WritablePerms, as if the node had been opened with them. Both check
// first that no other user of the image objects; the error then carries
// QEMU's message (`Failed to get "write" lock`, `Failed to get shared
// "write" lock`).
type PermTaker interface {
	TakePerm(p Perm) error
	ParentPerms(f OpenFlags) error
}

// DebugEventer receives debug events fired on the node (blkdebug). It may
// yield (a breakpoint) and runs with the token.
type DebugEventer interface{ DebugEvent(co *Co, ev Event) }

// Breakpointer is implemented by nodes that can stop requests by tag.
// Errors match unix.ENOENT for unknown events or tags.
type Breakpointer interface {
	Break(event, tag string) error
	RemoveBreak(tag string) error
	Resume(tag string) error
	IsSuspended(tag string) bool
	// Tags lists the tags of unfired breakpoints and suspended requests.
	Tags() []string
}

// CheckMode says what a consistency check may repair (QEMU's
// BdrvCheckMode); zero only reports.
type CheckMode int

// Check modes, combined with |: qemu-img check -r leaks is CheckFixLeaks,
// -r all is CheckFixLeaks|CheckFixErrors.
const (
	CheckFixLeaks CheckMode = 1 << iota
	CheckFixErrors
)

// CheckResult is what a consistency check found (QEMU's BdrvCheckResult
// with its BlockFragInfo): the facts qemu-img check prints.
type CheckResult struct {
	// Corruptions and Leaks are the problems left after the check
	// (repaired ones are not counted); CheckErrors are the places the
	// check could not look at (an I/O error, an unreadable table).
	Corruptions, Leaks, CheckErrors int
	CorruptionsFixed, LeaksFixed    int
	// ImageEndOffset is where the last cluster in use ends (0: unknown).
	ImageEndOffset int64
	// The cluster counts of the guest-visible image (0: not known).
	TotalClusters, AllocatedClusters, FragmentedClusters, CompressedClusters int64
}

// Checker is a format's consistency check (QEMU's bdrv_co_check).
// blk guarantees, through Node.Check: the call is a serialising request
// over the whole node (no other request of the node runs meanwhile), it
// runs with the token, fix is 0 on a read-only node, and msgs is not nil.
// The driver: fills res from zero; prints one line per problem to msgs,
// with QEMU's words ("Leaked cluster 5 refcount=1 reference=0"); repairs
// only what fix allows and counts each repair in CorruptionsFixed or
// LeaksFixed instead of Corruptions or Leaks; leaves its caches
// consistent with what it wrote; returns an error only when the check
// could not complete (res then holds what was found so far), never for
// what it found. It must not panic on any image content.
type Checker interface {
	Check(co *Co, fix CheckMode, msgs io.Writer, res *CheckResult) error
}

// Info is what the info command shows.
type Info struct {
	ClusterSize   int64
	VMStateOffset int64
	// Specific holds the lines of "Format specific information" (without
	// indentation), for the node's own format only: filters above a
	// format pass its cluster size on, but not these.
	Specific []string
}

// Infoer reports format information; nodes without it make info fail.
type Infoer interface{ Info() (Info, error) }

// AllocatedSizer reports how many bytes of storage a protocol node's
// data takes (bdrv_get_allocated_file_size: a file's st_blocks). See
// Node.AllocatedFileSize for nodes without it.
type AllocatedSizer interface{ AllocatedSize() (int64, error) }

// nodeOps holds a node's optional capabilities, asserted once when the
// node opens (setImpl): the request path never re-asserts, and a nil
// field means the driver does not have the capability.
type nodeOps struct {
	zero       ZeroWriter
	discard    Discarder
	compressed CompressedWriter
	status     BlockStatuser
	osFlush    OSFlusher
	dFlush     DiskFlusher
	trunc      Truncater
	reopen     Reopener
	direct     DirectReopener
	limits     LimitsRefresher
	perm       PermTaker
	events     DebugEventer
	brk        Breakpointer
	info       Infoer
	check      Checker
	dirty      DirtyTracker
	finish     ReopenFinisher
	shaped     RequestShaped
}

// setImpl installs a node's implementation and resolves its capabilities.
func (n *Node) setImpl(impl Impl) {
	n.impl = impl
	n.ops = nodeOps{}
	n.ops.zero, _ = impl.(ZeroWriter)
	n.ops.discard, _ = impl.(Discarder)
	n.ops.compressed, _ = impl.(CompressedWriter)
	n.ops.status, _ = impl.(BlockStatuser)
	n.ops.osFlush, _ = impl.(OSFlusher)
	n.ops.dFlush, _ = impl.(DiskFlusher)
	n.ops.trunc, _ = impl.(Truncater)
	n.ops.reopen, _ = impl.(Reopener)
	n.ops.direct, _ = impl.(DirectReopener)
	n.ops.limits, _ = impl.(LimitsRefresher)
	n.ops.perm, _ = impl.(PermTaker)
	n.ops.events, _ = impl.(DebugEventer)
	n.ops.brk, _ = impl.(Breakpointer)
	n.ops.info, _ = impl.(Infoer)
	n.ops.check, _ = impl.(Checker)
	n.ops.dirty, _ = impl.(DirtyTracker)
	n.ops.finish, _ = impl.(ReopenFinisher)
	n.ops.shaped, _ = impl.(RequestShaped)
}

// readonlyBitmaps says whether the node's dirty bitmaps forbid writes.
func (n *Node) readonlyBitmaps() bool { return n.ops.dirty != nil && n.ops.dirty.ReadonlyBitmaps() }

// setDirty marks [off, off+bytes) in the node's dirty bitmaps.
func (n *Node) setDirty(off, bytes int64) {
	if n.ops.dirty != nil && bytes > 0 {
		n.ops.dirty.SetDirty(off, bytes)
	}
}

// Error is a failure carrying QEMU's message and the errno, so callers can
// both print QEMU's text and test errors.Is(err, unix.EIO).
type Error struct {
	Msg   string // "Could not resize file"; empty for a bare errno
	Errno unix.Errno
	// Plain means Msg is the whole message (no ": strerror" suffix).
	Plain bool
}

func (e *Error) Error() string {
	if e.Msg == "" {
		return e.Errno.Error()
	}
	if e.Plain {
		return e.Msg
	}
	return e.Msg + ": " + e.Errno.Error()
}

// Unwrap returns the errno.
func (e *Error) Unwrap() error { return e.Errno }

// Errorf returns an *Error with a formatted message followed by the
// errno's text.
func Errorf(errno unix.Errno, format string, args ...any) error {
	return &Error{Msg: fmt.Sprintf(format, args...), Errno: errno}
}

// Msgf returns an *Error whose text is exactly the formatted message.
func Msgf(errno unix.Errno, format string, args ...any) error {
	return &Error{Msg: fmt.Sprintf(format, args...), Errno: errno, Plain: true}
}

// ErrnoOf extracts the errno of err (EIO when none is found).
func ErrnoOf(err error) unix.Errno {
	var e unix.Errno
	if errors.As(err, &e) {
		return e
	}
	if errors.Is(err, errors.ErrUnsupported) {
		return unix.ENOTSUP
	}
	return unix.EIO
}

// isUnsupported reports whether err asks for the fallback path.
func isUnsupported(err error) bool {
	return errors.Is(err, errors.ErrUnsupported) || errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP)
}
