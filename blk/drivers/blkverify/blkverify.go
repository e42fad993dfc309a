// Package blkverify is QEMU's blkverify protocol driver
// (block/blkverify.c), a tool for testing block drivers: every request
// goes both to a raw reference image (the "raw" child) and to the image
// under test (the "test" child, format probed); reads compare the data,
// and any difference in data or result ends the program with QEMU's
// message, as QEMU does.
package blkverify

import (
	"bytes"
	"fmt"
	"strings"

	"gio/blk"
	"gio/blk/qdict"

	"golang.org/x/sys/unix"
)

// Driver is the blkverify driver. It owns the "blkverify:RAW:IMAGE"
// file name syntax; a plain file name names the test image.
var Driver = &blk.Driver{
	Name:          "blkverify",
	Protocol:      "blkverify",
	ParseFilename: parseFilename,
	Open:          open,
	ExactFilename: exactFilename,
	Options:       []blk.Option{{Name: "raw."}, {Name: "test."}},
}

type node struct {
	raw, test *blk.Child
	exit      func(code int)
	stderr    func(format string, args ...any)
}

// parseFilename is blkverify_parse_filename.
func parseFilename(filename string, opts *qdict.Dict) error {
	rest, ok := strings.CutPrefix(filename, "blkverify:")
	if !ok {
		opts.Set("x-image", filename)
		return nil
	}
	raw, img, ok := strings.Cut(rest, ":")
	if !ok {
		return blk.Msgf(unix.EINVAL, "blkverify requires raw copy and original image path")
	}
	opts.Set("x-raw", raw)
	opts.Set("x-image", img)
	return nil
}

// open is blkverify_open: the raw child (a protocol node, like a
// filter's file), then the test child (an image, its format probed).
func open(a *blk.OpenArgs) (blk.Impl, error) {
	xraw, hasRaw := a.Opts.TakeString("x-raw")
	ximage, _ := a.Opts.TakeString("x-image")
	if hasRaw {
		if _, dup := a.Opts.Get("raw.filename"); dup {
			return nil, fmt.Errorf("Can't specify 'file' and 'filename' options at the same time")
		}
		a.Opts.Set("raw.filename", xraw)
	}
	raw, err := a.OpenChild("raw", true, true)
	if err != nil {
		return nil, err
	}
	test, err := a.OpenImageChild("test", ximage)
	if err != nil {
		return nil, err
	}
	w := a.Stderr()
	return &node{raw: raw, test: test, exit: a.Exit,
		stderr: func(format string, args ...any) { fmt.Fprintf(w, format, args...) }}, nil
}

// exactFilename is blkverify_refresh_filename: "blkverify:RAW:TEST" when
// both children have plain names.
func exactFilename(n *blk.Node) string {
	var raw, test string
	for _, c := range n.Children() {
		switch c.Name {
		case "raw":
			raw = plainName(c.Node)
		case "test":
			test = plainName(c.Node)
		}
	}
	if raw == "" || test == "" {
		return ""
	}
	return "blkverify:" + raw + ":" + test
}

// plainName is a node's exact file name as far as blkverify needs it: a
// file node's path, or that of a format node's file when the format node
// has no options of its own.
func plainName(n *blk.Node) string {
	if n.Driver().Name == "file" {
		return n.Filename()
	}
	if f := n.File(); f != nil && n.Driver().Format && n.Options().Len() == 0 {
		return plainName(f.Node)
	}
	return ""
}

// fail is blkverify_err: the message, then the end of the program.
func (n *node) fail(write bool, off int64, size int, format string, args ...any) {
	op := "read"
	if write {
		op = "write"
	}
	n.stderr("blkverify: %s offset=%d bytes=%d %s\n", op, off, size, fmt.Sprintf(format, args...))
	n.exit(1)
}

// both is blkverify_co_prwv: the request on the test image, then on the
// raw one; the two results must agree (as negative errnos, QEMU's form).
func (n *node) both(write bool, off int64, size int, test, raw func() error) error {
	terr := test()
	rerr := raw()
	if tr, rr := retval(terr), retval(rerr); tr != rr {
		n.fail(write, off, size, "return value mismatch %d != %d", tr, rr)
	}
	return terr
}

func retval(err error) int {
	if err == nil {
		return 0
	}
	return -int(blk.ErrnoOf(err))
}

// PRead is blkverify_co_preadv.
func (n *node) PRead(co *blk.Co, off int64, buf []byte, flags blk.ReqFlags) error {
	rbuf := make([]byte, len(buf))
	err := n.both(false, off, len(buf),
		func() error { return n.test.Node.PRead(co, off, buf, flags) },
		func() error { return n.raw.Node.PRead(co, off, rbuf, flags) })
	if i := mismatch(buf, rbuf); i >= 0 {
		n.fail(false, off, len(buf), "contents mismatch at offset %d", off+int64(i))
	}
	return err
}

// mismatch is qemu_iovec_compare: the first differing offset, or -1.
func mismatch(a, b []byte) int {
	if bytes.Equal(a, b) {
		return -1
	}
	i := 0
	for a[i] == b[i] {
		i++
	}
	return i
}

// PWrite is blkverify_co_pwritev.
func (n *node) PWrite(co *blk.Co, off int64, buf []byte, flags blk.ReqFlags) error {
	return n.both(true, off, len(buf),
		func() error { return n.test.Node.PWrite(co, off, buf, flags) },
		func() error { return n.raw.Node.PWrite(co, off, buf, flags) })
}

// Length is blkverify_getlength: the test image's.
func (n *node) Length(co *blk.Co) (int64, error) { return n.test.Node.Length(co) }

// Close implements blk.Impl; the children are closed by blk.
func (n *node) Close() error { return nil }
