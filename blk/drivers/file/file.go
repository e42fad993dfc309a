// Package file is the POSIX file protocol driver ("file"), QEMU's
// block/file-posix.c for regular files: pread/pwrite, fallocate for zero
// writes and discards, lseek(SEEK_DATA/SEEK_HOLE) for block status,
// fdatasync, ftruncate with preallocation, and O_DIRECT with probed
// alignment.
//
// The work of every request is done synchronously while the request holds
// the scheduler token; the request then yields once (blk.Co.YieldIO), the
// way QEMU hands the job to its thread pool and resumes the coroutine at
// the next event-loop turn. That yield is what makes completions appear
// where qemu-io prints them.
//
// The driver uses Linux interfaces (fallocate modes, SEEK_DATA, O_DIRECT).
package file

import (
	"errors"
	"strings"

	"gio/blk"
	"gio/blk/qdict"

	"golang.org/x/sys/unix"
)

// Driver is the "file" protocol driver. It owns no prefix in blk's sense
// (it is the default protocol for plain paths) but, like QEMU, accepts an
// explicit "file:" prefix on a filename.
var Driver = &blk.Driver{
	Name:          "file",
	ParseFilename: parseFilename,
	Open:          open,
	CreateFile:    createFile,
	// A file is named by its path; its other options (locking, aio)
	// are not part of its name.
	ExactFilename: func(n *blk.Node) string { return n.Filename() },
	Options: []blk.Option{{Name: "filename"}, {Name: "aio", Values: []string{"io_uring", "native", "threads"}},
		{Name: "aio-max-batch"}, {Name: "drop-cache", Values: blk.OnOff()}, {Name: "locking", Values: []string{"auto", "off", "on"}},
		{Name: "x-check-cache-dropped", Values: blk.OnOff()}},
}

// parseFilename strips an explicit "file:" prefix (QEMU's
// raw_parse_filename via bdrv_parse_filename_strip_prefix). When the rest
// would itself look like a protocol prefix ("file:a:b"), it becomes
// "./a:b", as in QEMU.
func parseFilename(filename string, opts *qdict.Dict) error {
	if rest, ok := strings.CutPrefix(filename, "file:"); ok {
		filename = rest
		if hasProtocol(filename) {
			filename = "./" + filename
		}
	}
	opts.Set("filename", filename)
	return nil
}

// createFile is raw_co_create for an empty file: created (mode 0644)
// or emptied.
func createFile(filename string) error {
	opts := qdict.New()
	if err := parseFilename(filename, opts); err != nil {
		return err
	}
	path, _ := opts.Get("filename")
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return blk.Errorf(blk.ErrnoOf(err), "Could not create '%s'", path)
	}
	defer unix.Close(fd)
	if err := unix.Ftruncate(fd, 0); err != nil {
		return blk.Errorf(blk.ErrnoOf(err), "Could not resize file")
	}
	return nil
}

// hasProtocol is QEMU's path_has_protocol on POSIX: a colon before the
// first slash.
func hasProtocol(path string) bool {
	i := strings.IndexAny(path, ":/")
	return i >= 0 && path[i] == ':'
}

// node is an open file. Its fields are touched only under the scheduler
// token (or during Open/Close, before and after any request).
type node struct {
	self     *blk.Node
	fd       int
	filename string
	direct   bool

	// Probed O_DIRECT alignments (1 in buffered mode); immutable after
	// Open.
	reqAlign, memAlign int64

	// Capabilities discovered by failing syscalls, as in QEMU's
	// BDRVRawState: once the filesystem says no, the driver stops asking.
	hasWriteZeroes bool // fallocate(FALLOC_FL_ZERO_RANGE)
	hasDiscard     bool // fallocate(FALLOC_FL_PUNCH_HOLE)
	hasFallocate   bool // fallocate(0)

	// pageCacheInconsistent is the errno of a failed fdatasync in
	// buffered mode: after it, every flush fails (QEMU's
	// page_cache_inconsistent), because the kernel has marked the failed
	// pages clean and will never write them back.
	pageCacheInconsistent unix.Errno

	// locks are the image locks held on fd (lock.go).
	locks locks

	// eng is the parallel I/O engine chosen by an explicit aio option
	// (engine.go); nil in the deterministic default.
	eng ioEngine

	// kind is the driver that opened the node: a regular file, or a
	// host device (hostdev.go).
	kind kind

	// id is a regular file's identity, counted in openFiles until
	// unregister; sh is its shadow while explore reruns a script on
	// it (shadow.go).
	id         fileID
	unregister func()
	sh         *shadow
}

var (
	_ blk.ZeroWriter      = (*node)(nil)
	_ blk.Discarder       = (*node)(nil)
	_ blk.BlockStatuser   = (*node)(nil)
	_ blk.DiskFlusher     = (*node)(nil)
	_ blk.Truncater       = (*node)(nil)
	_ blk.LimitsRefresher = (*node)(nil)
	_ blk.Infoer          = (*node)(nil)
)

// aioModes are the accepted values of the aio option (BlockdevAioOptions).
var aioModes = []string{"threads", "native", "io_uring"}

// open is raw_open / raw_open_common for regular files.
func open(a *blk.OpenArgs) (blk.Impl, error) { return openPosix(a, kindFile) }

// openPosix is raw_open_common: kind says which of file-posix's drivers
// opens (file, host_device, host_cdrom; see hostdev.go).
func openPosix(a *blk.OpenArgs, kind kind) (blk.Impl, error) {
	// bdrv_open_common reads the name as a string only (a JSON number or
	// boolean is no file name).
	_, isStr := a.Opts.GetStr("filename")
	filename, ok := a.Opts.TakeString("filename")
	if !ok || !isStr || filename == "" {
		return nil, blk.Msgf(unix.EINVAL, "The '%s' block driver requires a file name", kind.name())
	}

	// Typed options first: QEMU validates them all when it absorbs the
	// options, before looking at any value.
	if _, err := a.Opts.TakeUint("aio-max-batch", 0); err != nil {
		return nil, err
	}
	if _, err := a.Opts.TakeBool("drop-cache", true); err != nil {
		return nil, err
	}
	if _, err := a.Opts.TakeBool("x-check-cache-dropped", false); err != nil {
		return nil, err
	}

	aio := a.Flags.AIO
	// Only an explicit aio mode selects a parallel engine; the default
	// stays deterministic (engine.go).
	explicitAIO := aio != ""
	if aio == "" {
		aio = "threads"
	}
	if v, ok := a.Opts.TakeString("aio"); ok {
		if !oneOf(v, aioModes) {
			return nil, blk.Msgf(unix.EINVAL, "invalid parameter value: %s", v)
		}
		aio = v
		explicitAIO = true
	}
	lockOpt, hasLockOpt := a.Opts.TakeString("locking")
	useLock, err := parseLocking(lockOpt, hasLockOpt)
	if err != nil {
		return nil, err
	}
	if v, ok := a.Opts.TakeString("pr-manager"); ok {
		// qemu-io can create no pr-manager objects, so every id is
		// unknown.
		return nil, blk.Msgf(unix.EINVAL, "No persistent reservation manager with id '%s'", v)
	}

	flags := unix.O_CLOEXEC | unix.O_RDWR
	if a.Flags.ReadOnly {
		flags = unix.O_CLOEXEC | unix.O_RDONLY
	}
	if a.Flags.Direct {
		flags |= unix.O_DIRECT
	}
	flags |= kind.openFlags()
	fd, err := openFile(filename, flags)
	if err != nil {
		return nil, err
	}
	n := &node{
		self:           a.Node(),
		fd:             fd,
		filename:       filename,
		direct:         a.Flags.Direct,
		reqAlign:       1,
		memAlign:       1,
		hasWriteZeroes: true,
		hasDiscard:     true,
		kind:           kind,
	}
	if aio == "native" && !a.Flags.Direct {
		n.Close()
		return nil, blk.Msgf(unix.EINVAL, "aio=native was specified, but it requires cache.direct=on, which was not specified.")
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		n.Close()
		return nil, blk.Errorf(errnoOf(err), "Could not stat file")
	}
	if err := kind.checkType(filename, st.Mode); err != nil {
		n.Close()
		return nil, err
	}
	if kind == kindFile {
		n.id = idOf(&st)
		n.unregister = registerFile(n.id)
	}
	n.hasFallocate = kind == kindFile
	if n.direct {
		if n.reqAlign, n.memAlign, err = probeAlignment(fd); err != nil {
			n.Close()
			return nil, err
		}
	}
	// Image locks: what qemu-io's user of the image needs
	// (raw_check_perm and raw_set_perm when the node gets its parent).
	n.locks = locks{use: useLock, shared: blk.PermAll, forceShare: a.Flags.ForceShare, writable: a.Flags.WritablePerms}
	if err := n.setPerm(wantedPerms(a.Flags)); err != nil {
		n.Close()
		return nil, err
	}
	if explicitAIO {
		if err := n.startEngine(a.Loop, aio); err != nil {
			n.Close()
			return nil, err
		}
	}
	return n, nil
}

// openFile is qemu_open: the errno goes with QEMU's message, and an
// O_DIRECT open refused with EINVAL is retried without it to tell the
// user what is wrong.
func openFile(name string, flags int) (int, error) {
	for {
		fd, err := unix.Open(name, flags, 0)
		if err == nil {
			return fd, nil
		}
		if err == unix.EINTR {
			continue
		}
		if err == unix.EINVAL && flags&unix.O_DIRECT != 0 {
			if fd2, err2 := unix.Open(name, flags&^unix.O_DIRECT, 0); err2 == nil {
				unix.Close(fd2)
				return -1, blk.Msgf(unix.EINVAL, "Could not open '%s': filesystem does not support O_DIRECT", name)
			}
		}
		return -1, blk.Errorf(errnoOf(err), "Could not open '%s'", name)
	}
}

func oneOf(s string, list []string) bool {
	for _, v := range list {
		if s == v {
			return true
		}
	}
	return false
}

// errnoOf returns err's errno, EIO when it carries none.
func errnoOf(err error) unix.Errno {
	var e unix.Errno
	if errors.As(err, &e) {
		return e
	}
	return unix.EIO
}

// RefreshLimits publishes the alignments found at open and the flags the
// driver honours: zero writes may unmap and never fall back to writing
// buffers here (blk does that); FUA is not native in QEMU 7.2's
// file-posix, so blk emulates it with a flush.
func (n *node) RefreshLimits(l *blk.Limits) {
	l.RequestAlignment = n.reqAlign
	l.MemAlignment = n.memAlign
	l.SupportedWriteFlags = 0
	l.SupportedZeroFlags = blk.MayUnmap | blk.NoFallback
}

// Length returns the file's size in bytes (blk rounds it up to 512); a
// device's is where lseek(SEEK_END) lands (raw_getlength).
func (n *node) Length(co *blk.Co) (int64, error) {
	if n.kind != kindFile {
		return n.deviceLength()
	}
	if n.sh != nil {
		return int64(len(n.sh.data)), nil
	}
	var st unix.Stat_t
	if err := unix.Fstat(n.fd, &st); err != nil {
		return 0, errnoOf(err)
	}
	return st.Size, nil
}

// Info implements blk.Infoer: a protocol node has no cluster size.
// host_cdrom has no bdrv_get_info in QEMU, so its info fails.
func (n *node) Info() (blk.Info, error) {
	if n.kind == kindCDROM {
		return blk.Info{}, unix.ENOTSUP
	}
	return blk.Info{}, nil
}

// Close closes the file descriptor.
func (n *node) Close() error {
	n.stopEngine()
	if n.fd < 0 {
		return nil
	}
	err := n.dropShadow()
	if n.unregister != nil {
		n.unregister()
		n.unregister = nil
	}
	if e := unix.Close(n.fd); err == nil {
		err = e
	}
	n.fd = -1
	return err
}

// AllocatedSize is raw_get_allocated_file_size: the blocks the file
// takes on disk.
func (n *node) AllocatedSize() (int64, error) {
	var st unix.Stat_t
	if err := n.fstat(&st); err != nil {
		return 0, errnoOf(err)
	}
	return st.Blocks * 512, nil
}
