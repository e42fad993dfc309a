package blk

import (
	"errors"
	"fmt"
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
// means "no constraint" for every field but RequestAlignment, which is at
// least 1. All alignments are powers of two; maxima are multiples of the
// matching alignment.
type Limits struct {
	// RequestAlignment: blk hands the driver only requests whose offset
	// and length are multiples of it, padding reads and doing
	// read-modify-write for writes.
	RequestAlignment int64
	// MaxTransfer: blk splits larger data requests.
	MaxTransfer int64
	// OptTransfer is a hint for I/O sizes.
	OptTransfer int64
	// PwriteZeroesAlignment, MaxPwriteZeroes shape zero writes.
	PwriteZeroesAlignment, MaxPwriteZeroes int64
	// PdiscardAlignment, MaxPdiscard shape discards; unaligned pieces are
	// passed down and may be ignored.
	PdiscardAlignment, MaxPdiscard int64
	// MemAlignment is the buffer alignment needed for I/O (O_DIRECT).
	MemAlignment int64
	// SupportedWriteFlags and SupportedZeroFlags say which request flags
	// the driver honours natively; blk emulates or strips the rest.
	SupportedWriteFlags, SupportedZeroFlags ReqFlags
}

// Impl is what every driver's node implements. blk guarantees, before
// calling: offsets and lengths are multiples of Limits.RequestAlignment, at
// most Limits.MaxTransfer long, and the request is tracked; the node is not
// read-only for writes. The implementation returns an errno (possibly
// wrapped) on failure.
type Impl interface {
	// PRead fills buf from offset off.
	PRead(co *Co, off int64, buf []byte, flags ReqFlags) error
	// PWrite writes buf at offset off. flags contains at most the node's
	// SupportedWriteFlags.
	PWrite(co *Co, off int64, buf []byte, flags ReqFlags) error
	// Length returns the length in bytes (not rounded).
	Length(co *Co) (int64, error)
	// Close releases the node's resources (children are closed by blk).
	Close() error
}

// ZeroWriter is the efficient zero-write path (fallocate, unmapping). It
// returns an error matching errors.ErrUnsupported when it cannot do the
// job; blk then writes a bounded zero buffer unless NoFallback is set.
type ZeroWriter interface {
	PWriteZeroes(co *Co, off, n int64, flags ReqFlags) error
}

// Discarder discards a range. blk guarantees the range lies inside the
// node; pieces smaller than PdiscardAlignment may be ignored (return
// ErrUnsupported).
type Discarder interface {
	PDiscard(co *Co, off, n int64) error
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
// non-zero, aligned prefix of the range.
type BlockStatuser interface {
	BlockStatus(co *Co, wantZero bool, off, n int64) (Status, error)
}

// OSFlusher writes cached data back to the OS.
type OSFlusher interface{ FlushToOS(co *Co) error }

// DiskFlusher forces data to stable storage (fdatasync).
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

// Truncater changes the node's length. Errors should be *Error values
// so that the message matches QEMU's.
type Truncater interface {
	Truncate(co *Co, size int64, exact bool, prealloc Prealloc) error
}

// Reopener is implemented by drivers whose open state depends on the
// read-only flag (the file driver's descriptor is O_RDONLY or O_RDWR).
// Backend.SetReadOnly calls it before it changes the node's flag; an
// error leaves the node as it was.
type Reopener interface{ Reopen(readOnly bool) error }

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
// primary child's (QEMU's bdrv_refresh_limits).
type LimitsRefresher interface{ RefreshLimits(l *Limits) }

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

// Filter is implemented by filter drivers: the child whose data they pass
// through unchanged.
type Filter interface{ FilteredChild() *Child }

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
