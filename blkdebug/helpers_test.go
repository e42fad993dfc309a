package blkdebug

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"

	"gio/blk"
	"gio/blk/blktest"
	"gio/blk/qdict"

	"golang.org/x/sys/unix"
)

// topDriver is a test format driver in the role of raw: it passes
// requests to its "file" child, firing read_aio and write_aio on it as
// raw does, so that the whole event sequence of qemu-io's raw -> blkdebug
// -> file stack can be observed without depending on raw.
var topDriver = &blk.Driver{Name: "top", Format: true, Open: openTop}

type topNode struct{ file *blk.Child }

func openTop(a *blk.OpenArgs) (blk.Impl, error) {
	c, err := a.OpenChild("file", true, true)
	if err != nil {
		return nil, err
	}
	return &topNode{file: c}, nil
}

func (t *topNode) PRead(co *blk.Co, off int64, buf []byte, f blk.ReqFlags) error {
	t.file.Event(co, blk.EvReadAIO)
	return t.file.Node.PRead(co, off, buf, f)
}

func (t *topNode) PWrite(co *blk.Co, off int64, buf []byte, f blk.ReqFlags) error {
	t.file.Event(co, blk.EvWriteAIO)
	return t.file.Node.PWrite(co, off, buf, f)
}

func (t *topNode) PWriteZeroes(co *blk.Co, off, n int64, f blk.ReqFlags) error {
	return t.file.Node.PWriteZeroes(co, off, n, f)
}

func (t *topNode) PDiscard(co *blk.Co, off, n int64) error {
	return t.file.Node.PDiscard(co, off, n)
}

func (t *topNode) BlockStatus(co *blk.Co, _ bool, off, n int64) (blk.Status, error) {
	return blk.Status{Flags: blk.StatusRaw | blk.StatusOffsetValid, Pnum: n, Map: off, File: t.file.Node}, nil
}

func (t *topNode) Truncate(co *blk.Co, size int64, exact bool, p blk.Prealloc) error {
	return t.file.Node.Truncate(co, size, exact, p)
}

func (t *topNode) Length(co *blk.Co) (int64, error) { return t.file.Node.Length(co) }
func (t *topNode) Close() error                     { return nil }

func (t *topNode) RefreshLimits(l *blk.Limits) {
	cl := t.file.Node.Limits()
	l.SupportedWriteFlags = cl.SupportedWriteFlags & blk.FUA
	l.SupportedZeroFlags = cl.SupportedZeroFlags & (blk.FUA | blk.MayUnmap | blk.NoFallback)
}

// env is one opened image with everything a test looks at.
type env struct {
	t    *testing.T
	loop *blk.Loop
	img  *blk.Backend
	bd   *node
	mem  *blktest.Mem
	out  *bytes.Buffer // blkdebug's output and the completions of aio
}

// registry returns the drivers of the tests, blkdebug printing to out.
func registry(out io.Writer) *blk.Registry {
	return blk.NewRegistry(blktest.MemDriver, topDriver, NewDriver(func() io.Writer { return out }))
}

// openEnv opens "top -> blkdebug -> mem" (or blkdebug on top when opts
// has no top-level driver) from key=value options; "file." and "image."
// prefixes are the caller's business. Contract violations fail the test.
func openEnv(t *testing.T, opts string, spec blk.Spec) *env {
	t.Helper()
	e, err := tryOpen(t, opts, spec)
	if err != nil {
		t.Fatalf("open %s: %v", opts, err)
	}
	return e
}

func tryOpen(t *testing.T, opts string, spec blk.Spec) (*env, error) {
	t.Helper()
	failOnViolation(t)
	d, _, err := qdict.ParseKeyValue(opts)
	if err != nil {
		t.Fatalf("options %q: %v", opts, err)
	}
	spec.Opts = d
	e := &env{t: t, loop: blk.NewLoop(blk.NewVirtualClock()), out: &bytes.Buffer{}}
	img, err := registry(e.out).Open(spec, e.loop)
	if err != nil {
		return nil, err
	}
	e.img = img
	for n := img.Root; n != nil; {
		if b, ok := n.Impl().(*node); ok {
			e.bd = b
		}
		if m, ok := n.Impl().(*blktest.Mem); ok {
			e.mem = m
		}
		if n.File() == nil {
			break
		}
		n = n.File().Node
	}
	return e, nil
}

// failOnViolation makes every broken guarantee a test failure.
func failOnViolation(t *testing.T) {
	old := contractHook
	contractHook = func(msg string) { t.Errorf("contract violation: %s", msg) }
	t.Cleanup(func() { contractHook = old })
}

// run runs fn as one request to completion, failing the test if it
// cannot finish.
func (e *env) run(name string, fn func(co *blk.Co) error) error {
	e.t.Helper()
	var err error
	co := e.loop.Spawn(name, func(co *blk.Co) { err = fn(co) })
	if rerr := e.loop.RunUntil(name, co.Done); rerr != nil {
		e.t.Fatalf("%s: %v", name, rerr)
	}
	return err
}

// aio submits fn like qemu-io's aio commands: it runs until it first
// blocks; its completion ("NAME: ok" or "NAME: EIO") goes to the same
// transcript as blkdebug's output, at once if the request had yielded,
// else from a bottom half, as blk_aio_prwv delivers it.
func (e *env) aio(name string, fn func(co *blk.Co) error) *blk.Co {
	co := e.loop.Spawn(name, func(co *blk.Co) {
		err := fn(co)
		msg := name + ": ok\n"
		if err != nil {
			msg = name + ": " + errName(err) + "\n"
		}
		if co.Yielded() {
			e.out.WriteString(msg)
		} else {
			co.Loop().ScheduleBH(func() { e.out.WriteString(msg) })
		}
	})
	e.loop.RunReady()
	return co
}

// aioWrite is aio_write -P pat off n.
func (e *env) aioWrite(off, n int64, pat byte) *blk.Co {
	return e.aio(fmt.Sprintf("aio_write %d %d", off, n), func(co *blk.Co) error {
		return e.img.PWrite(co, off, bytes.Repeat([]byte{pat}, int(n)), 0)
	})
}

// aioRead is aio_read off n.
func (e *env) aioRead(off, n int64) *blk.Co {
	return e.aio(fmt.Sprintf("aio_read %d %d", off, n), func(co *blk.Co) error {
		return e.img.PRead(co, off, make([]byte, n))
	})
}

// poll runs the loop like qemu-io between commands that wait.
func (e *env) poll() { e.loop.Poll() }

// drain is aio_flush: every request must finish.
func (e *env) drain() {
	e.t.Helper()
	if err := e.loop.Drain("aio_flush"); err != nil {
		e.t.Fatal(err)
	}
}

func errName(err error) string {
	var en unix.Errno
	if ok := asErrno(err, &en); ok {
		return unix.ErrnoName(en)
	}
	return err.Error()
}

func asErrno(err error, en *unix.Errno) bool {
	for err != nil {
		if e, ok := err.(unix.Errno); ok {
			*en = e
			return true
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}

func (e *env) read(off, n int64) error {
	return e.run(fmt.Sprintf("read %d %d", off, n), func(co *blk.Co) error {
		return e.img.PRead(co, off, make([]byte, n))
	})
}

func (e *env) write(off, n int64, pat byte) error {
	return e.run(fmt.Sprintf("write %d %d", off, n), func(co *blk.Co) error {
		return e.img.PWrite(co, off, bytes.Repeat([]byte{pat}, int(n)), 0)
	})
}

// lines splits the captured blkdebug output.
func (e *env) lines() []string {
	s := strings.TrimSuffix(e.out.String(), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// traceEvents records the name of every event fired on the blkdebug
// node, in order.
func (e *env) traceEvents() *[]string {
	var evs []string
	e.bd.onEvent = func(ev blk.Event) { evs = append(evs, ev.String()) }
	return &evs
}
