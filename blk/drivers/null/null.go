// Package null holds QEMU's null block drivers, null-co and null-aio
// (block/null.c): images of a given size that store nothing. Writes,
// flushes and discards succeed and do nothing; reads leave the buffer as
// it was unless read-zeroes is on; every request can be delayed by
// latency-ns on the loop's clock.
package null

import (
	"strings"
	"time"

	"gio/blk"
	"gio/blk/qdict"

	"golang.org/x/sys/unix"
)

// CoDriver is the null-co driver ("null-co://").
// nullOptions are null-co's and null-aio's runtime options.
var nullOptions = []blk.Option{{Name: "size"}, {Name: "latency-ns"}, {Name: "read-zeroes", Values: blk.OnOff()}}

var CoDriver = &blk.Driver{
	Name:          "null-co",
	Protocol:      "null-co",
	ParseFilename: parseFilename("null-co"),
	Open:          open,
	Options:       nullOptions,
}

// AIODriver is the null-aio driver ("null-aio://"). QEMU completes its
// requests from a bottom half instead of inside the coroutine, but
// qemu-io shows the same completion order for both, so here it behaves
// exactly like null-co.
var AIODriver = &blk.Driver{
	Name:          "null-aio",
	Protocol:      "null-aio",
	ParseFilename: parseFilename("null-aio"),
	Open:          open,
	Options:       nullOptions,
}

// parseFilename accepts exactly "NAME://" (null_co_parse_filename): the
// filename carries no options.
func parseFilename(name string) func(string, *qdict.Dict) error {
	return func(filename string, _ *qdict.Dict) error {
		if filename != name+"://" {
			return blk.Msgf(unix.EINVAL, "The only allowed filename for this driver is '%s://'", name)
		}
		return nil
	}
}

// defaultSize is the size of a null image without a size option (1 GiB).
const defaultSize = 1 << 30

// maxSize is the largest size whose length blk can round up to 512 bytes.
const maxSize = 1<<63 - 1 - 511

type node struct {
	self       *blk.Node
	size       int64
	latency    time.Duration
	readZeroes bool
}

var (
	_ blk.BlockStatuser   = (*node)(nil)
	_ blk.DiskFlusher     = (*node)(nil)
	_ blk.LimitsRefresher = (*node)(nil)
)

// open is null_file_open. QEMU aborts on a malformed size, latency or
// read-zeroes value (it absorbs the options with &error_abort); gio
// returns the message QEMU prints before aborting.
func open(a *blk.OpenArgs) (blk.Impl, error) {
	// TODO(null): QEMU prints a deprecation warning for a hex size with a
	// suffix ("0x1k"); OpenArgs has no way to emit it yet.
	size, _, err := a.Opts.TakeSize("size", defaultSize)
	if err != nil {
		// QEMU prints only the first line before aborting: the hint
		// about suffixes is not shown on &error_abort.
		msg, _, _ := strings.Cut(err.Error(), "\n")
		return nil, blk.Msgf(unix.EINVAL, "%s", msg)
	}
	lat, err := a.Opts.TakeInt("latency-ns", 0)
	if err != nil {
		return nil, blk.Msgf(unix.EINVAL, "%s", err)
	}
	zeroes, err := a.Opts.TakeBool("read-zeroes", false)
	if err != nil {
		return nil, blk.Msgf(unix.EINVAL, "%s", err)
	}
	if lat < 0 {
		// QEMU parses the number unsigned and stores it signed.
		return nil, blk.Msgf(unix.EINVAL, "latency-ns is invalid")
	}
	if size > maxSize {
		// QEMU stores the size in an int64 and fails when it rounds the
		// length to sectors; sizes of 2^63 and more even wrap negative
		// (and show as 0 bytes). Both are refused here.
		return nil, blk.Errorf(unix.EFBIG, "Could not refresh total sector count")
	}
	return &node{self: a.Node(), size: int64(size), latency: time.Duration(lat), readZeroes: zeroes}, nil
}

// wait is null_co_common: sleep for the configured latency, if any, on
// the loop's clock (virtual in scripts). Without latency the request
// completes without yielding.
func (n *node) wait(co *blk.Co) {
	if n.latency > 0 {
		co.Sleep(n.latency)
	}
}

// PRead fills buf with zeroes when read-zeroes is on and otherwise leaves
// it untouched.
func (n *node) PRead(co *blk.Co, off int64, buf []byte, flags blk.ReqFlags) error {
	if n.readZeroes {
		clear(buf)
	}
	n.wait(co)
	return nil
}

// PWrite discards the data.
func (n *node) PWrite(co *blk.Co, off int64, buf []byte, flags blk.ReqFlags) error {
	n.wait(co)
	return nil
}

// FlushToDisk does nothing but wait.
func (n *node) FlushToDisk(co *blk.Co) error {
	n.wait(co)
	return nil
}

// Length returns the configured size.
func (n *node) Length(co *blk.Co) (int64, error) { return n.size, nil }

// BlockStatus says nothing is allocated here, or that everything reads as
// zeroes with read-zeroes (null_co_block_status).
func (n *node) BlockStatus(co *blk.Co, wantZero bool, off, bytes int64) (blk.Status, error) {
	st := blk.Status{Flags: blk.StatusOffsetValid, Pnum: bytes, Map: off, File: n.self}
	if n.readZeroes {
		st.Flags |= blk.StatusZero
	}
	return st, nil
}

// RefreshLimits: FUA costs nothing on a device that stores nothing, so it
// is native (QEMU sets supported_write_flags = BDRV_REQ_FUA). There is no
// zero-write path: as in QEMU, blk writes zero buffers instead (each one
// a request that waits latency-ns), and NoFallback zero writes fail with
// ENOTSUP.
func (n *node) RefreshLimits(l *blk.Limits) {
	l.SupportedWriteFlags = blk.FUA
	l.SupportedZeroFlags = 0
}

// Close does nothing.
func (n *node) Close() error { return nil }
