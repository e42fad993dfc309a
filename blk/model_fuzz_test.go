package blk_test

// FuzzModel decodes fuzz bytes into a stack of raw over blkdebug over a
// memory or file node, with random alignment, max-transfer, zero and
// discard limits, and a sequence of unaligned reads, writes, zero writes
// (with and without MayUnmap), discards, truncates, flushes and block
// status queries, some of them submitted together as concurrent requests.
// Every read is checked against a flat byte-slice model.
//
// The model is exact between operations. An operation whose result the
// model cannot know in advance (a discard may be skipped, concurrent
// overlapping writes may land in either order) is followed at once by a
// read of the range it touched; every byte read must be one of the values
// the operation allows, and the model then takes what was read.

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gio/blk"
	"gio/blk/blktest"
	"gio/blk/drivers/file"
	"gio/blk/drivers/raw"
	"gio/blk/qdict"
	"gio/blkdebug"
	"gio/internal/watchdog"
)

// decoder hands out fuzz bytes; past the end it returns zeroes.
type decoder struct{ b []byte }

func (d *decoder) more() bool { return len(d.b) > 0 }

func (d *decoder) byte() byte {
	if len(d.b) == 0 {
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) u16() int64 { return int64(d.byte()) | int64(d.byte())<<8 }

// pos picks a value in [0, limit], biased towards multiples of align and
// the bytes just before and after them, where padding goes wrong.
func (d *decoder) pos(limit, align int64) int64 {
	b := d.byte()
	base := int64(b&0x3f) % (limit/align + 1) * align
	var delta int64
	switch b >> 6 {
	case 1:
		delta = d.u16() % align
	case 2:
		delta = align - 1 - int64(d.byte())%min(align, 256)
	case 3:
		delta = int64(d.byte()) % min(align, 256)
	}
	return min(base+delta, limit)
}

var aligns = []int64{1, 512, 4096, 65536}

// stack is one decoded configuration.
type stack struct {
	align, maxTransfer           int64
	optDiscard, maxDiscard       int64
	optWriteZero, maxWriteZero   int64
	raw, writeThrough, fileNode  bool
	memYield, memFlags, noFlush  bool
	rawOffset, size, granularity int64
	// upper is the alignment of a second blkdebug node stacked on the
	// first (0: none): a parent aligned more coarsely than its child's
	// max-transfer, as a probed raw node over blkdebug can be.
	upper int64
}

func decodeStack(d *decoder) stack {
	var s stack
	b := d.byte()
	s.align = aligns[b&3]
	s.raw = b&4 == 0
	s.writeThrough = b&8 != 0
	s.fileNode = b&16 != 0
	s.memYield = b&32 != 0
	s.memFlags = b&64 != 0
	// fdatasync costs milliseconds; most inputs do without (cache=unsafe).
	s.noFlush = s.fileNode && b&128 == 0
	// granularity is what offsets and sizes gravitate to.
	s.granularity = max(s.align, 512)
	b = d.byte()
	if k := int64(b & 7); k != 0 {
		if s.align == 1 {
			s.maxTransfer = k * 64
		} else {
			s.maxTransfer = k * s.align
		}
	}
	if b&8 != 0 {
		s.optDiscard = s.align << (b >> 4 & 3)
	}
	if b&0x40 != 0 {
		s.maxDiscard = max(s.optDiscard, s.align) * int64(1+b>>7)
	}
	b = d.byte()
	if b&1 != 0 {
		s.optWriteZero = s.align << (b >> 1 & 3)
	}
	if k := int64(b >> 3 & 3); k != 0 {
		s.maxWriteZero = max(s.optWriteZero, s.align) * k
	}
	if b>>6 != 0 {
		s.upper = aligns[b>>6]
		s.granularity = max(s.granularity, s.upper)
	}
	if b&0x20 != 0 && s.raw && s.granularity <= 512 {
		s.rawOffset = 512
	}
	s.size = max(s.granularity, 16<<10) * int64(1+d.byte()%4)
	return s
}

func (s stack) String() string {
	node := "mem"
	if s.fileNode {
		node = "file"
	}
	var opts []string
	for _, o := range []struct {
		k string
		v int64
	}{{"align", s.align}, {"max-transfer", s.maxTransfer}, {"opt-discard", s.optDiscard}, {"max-discard", s.maxDiscard},
		{"opt-write-zero", s.optWriteZero}, {"max-write-zero", s.maxWriteZero}} {
		if o.v != 0 {
			opts = append(opts, fmt.Sprintf("%s=%d", o.k, o.v))
		}
	}
	top := ""
	if s.raw {
		top = fmt.Sprintf("raw(offset=%d) -> ", s.rawOffset)
	}
	if s.upper != 0 {
		top += fmt.Sprintf("blkdebug(align=%d) -> ", s.upper)
	}
	return fmt.Sprintf("%sblkdebug(%s) -> %s(size=%d, yield=%v, flags=%v), writethrough=%v, no-flush=%v",
		top, strings.Join(opts, ","), node, s.size, s.memYield, s.memFlags, s.writeThrough, s.noFlush)
}

// options builds the --image-opts style option dict for the stack.
func (s stack) options(path string) *qdict.Dict {
	d := qdict.New()
	p := ""
	if s.raw {
		d.Set("driver", "raw")
		if s.rawOffset != 0 {
			d.Set("offset", fmt.Sprint(s.rawOffset))
		}
		p = "file."
	}
	if s.upper != 0 {
		d.Set(p+"driver", "blkdebug")
		d.Set(p+"align", fmt.Sprint(s.upper))
		p += "image."
	}
	d.Set(p+"driver", "blkdebug")
	for _, o := range []struct {
		k string
		v int64
	}{{"align", s.align}, {"max-transfer", s.maxTransfer}, {"opt-discard", s.optDiscard}, {"max-discard", s.maxDiscard},
		{"opt-write-zero", s.optWriteZero}, {"max-write-zero", s.maxWriteZero}} {
		if o.v != 0 {
			d.Set(p+o.k, fmt.Sprint(o.v))
		}
	}
	if s.fileNode {
		d.Set(p+"image.driver", "file")
		d.Set(p+"image.filename", path)
	} else {
		d.Set(p+"image.driver", "mem")
		d.Set(p+"image.size", fmt.Sprint(s.size))
		d.Set(p+"image.yield", onOff(s.memYield))
		d.Set(p+"image.flags", onOff(s.memFlags))
	}
	return d
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// Operations.
const (
	opWrite = iota
	opZero
	opZeroUnmap
	opDiscard
	opRead
	opTruncate
	opFlush
	opStatus
	opBatch
	numOps
)

var opNames = []string{"write", "write-zeroes", "write-zeroes-unmap", "discard", "read", "truncate", "flush", "block-status", "batch"}

type op struct {
	kind     int
	off, n   int64
	pattern  byte
	fua      bool
	truncate int64 // new size for opTruncate
}

func (o op) String() string {
	switch o.kind {
	case opTruncate:
		return fmt.Sprintf("truncate %d", o.truncate)
	case opFlush:
		return "flush"
	case opWrite:
		return fmt.Sprintf("write -P 0x%02x %d %d (fua=%v)", o.pattern, o.off, o.n, o.fua)
	}
	return fmt.Sprintf("%s %d %d", opNames[o.kind], o.off, o.n)
}

// modelRun is one fuzz input being executed.
type modelRun struct {
	t     *testing.T
	s     stack
	b     *blk.Backend
	model []byte
	log   []string
}

func (r *modelRun) fatalf(format string, args ...any) {
	r.t.Helper()
	r.t.Fatalf("%s\nstack: %s\nops:\n  %s", fmt.Sprintf(format, args...), r.s, strings.Join(r.log, "\n  "))
}

// do runs fn as one request and the loop until it is done.
func (r *modelRun) do(name string, fn func(co *blk.Co) error) {
	r.t.Helper()
	var err error
	loop := r.b.Loop()
	co := loop.Spawn(name, func(co *blk.Co) { err = fn(co) })
	if e := loop.RunUntil(name, co.Done); e != nil {
		r.fatalf("%s: %v", name, e)
	}
	if err != nil {
		r.fatalf("%s: %v", name, err)
	}
}

func (r *modelRun) length() int64 {
	var l int64
	r.do("length", func(co *blk.Co) (err error) { l, err = r.b.Length(co); return })
	return l
}

func (r *modelRun) read(off, n int64) []byte {
	buf := make([]byte, n)
	r.do(fmt.Sprintf("read %d %d", off, n), func(co *blk.Co) error { return r.b.PRead(co, off, buf) })
	return buf
}

// decodeOp decodes one operation on an image of length l.
func (r *modelRun) decodeOp(d *decoder, l int64) op {
	g := r.s.granularity
	o := op{kind: int(d.byte()) % numOps}
	switch o.kind {
	case opTruncate:
		size := d.pos(4*r.s.size, g)
		if g > 512 {
			size = size / g * g
		}
		o.truncate = size
	case opFlush, opBatch:
	default:
		o.off = d.pos(l, g)
		o.n = d.pos(min(l-o.off, 3*g), g)
		if o.kind == opWrite {
			p := d.byte()
			o.pattern = p | 1 // never zero: a lost write must show
			o.fua = p&1 != 0
		}
	}
	return o
}

// allowed describes, for one byte, the values an operation (or a batch of
// concurrent ones) may leave there.
type allowed struct {
	vals   []byte
	zero   bool // a discard covered it: zero is allowed
	old    bool // no write covered it: the old value is allowed
	oldVal byte
}

func (a allowed) ok(v byte) bool {
	if (a.zero && v == 0) || (a.old && v == a.oldVal) {
		return true
	}
	return bytes.IndexByte(a.vals, v) >= 0
}

func (a allowed) String() string {
	var s []string
	for _, v := range a.vals {
		s = append(s, fmt.Sprintf("0x%02x", v))
	}
	if a.zero {
		s = append(s, "0 (discarded)")
	}
	if a.old {
		s = append(s, fmt.Sprintf("0x%02x (old)", a.oldVal))
	}
	return "{" + strings.Join(s, ", ") + "}"
}

// value is what a write-type op writes at byte x (ok false: it does not
// cover x or it is not a write).
func (o op) value(x int64) (byte, bool) {
	if x < o.off || x >= o.off+o.n {
		return 0, false
	}
	switch o.kind {
	case opWrite:
		return o.pattern, true
	case opZero, opZeroUnmap:
		return 0, true
	}
	return 0, false
}

func (o op) covers(x int64) bool { return x >= o.off && x < o.off+o.n }

// submit spawns op as a request; the error lands in *err.
func (r *modelRun) submit(o op, err *error) *blk.Co {
	return r.b.Loop().Spawn(o.String(), func(co *blk.Co) {
		switch o.kind {
		case opWrite:
			var f blk.ReqFlags
			if o.fua {
				f = blk.FUA
			}
			*err = r.b.PWrite(co, o.off, bytes.Repeat([]byte{o.pattern}, int(o.n)), f)
		case opZero:
			*err = r.b.PWriteZeroes(co, o.off, o.n, 0)
		case opZeroUnmap:
			*err = r.b.PWriteZeroes(co, o.off, o.n, blk.MayUnmap)
		case opDiscard:
			*err = r.b.PDiscard(co, o.off, o.n)
		case opFlush:
			*err = r.b.Flush(co)
		}
	})
}

// batch runs ops concurrently: all are spawned before the loop runs.
// Reads are checked against every value their bytes may hold; afterwards
// the bytes the ops touched are read back and checked, and the model
// takes them.
func (r *modelRun) batch(ops []op) {
	pre := append([]byte(nil), r.model...)
	allow := func(x int64) allowed {
		a := allowed{old: true, oldVal: pre[x]}
		for _, o := range ops {
			if v, ok := o.value(x); ok {
				a.vals = append(a.vals, v)
				a.old = false
			} else if o.kind == opDiscard && o.covers(x) {
				a.zero = true
			}
		}
		return a
	}
	errs := make([]error, len(ops))
	reads := make([][]byte, len(ops))
	cos := make([]*blk.Co, len(ops))
	loop := r.b.Loop()
	for i, o := range ops {
		if o.kind == opRead || o.kind == opStatus {
			i, o := i, o
			reads[i] = make([]byte, o.n)
			cos[i] = loop.Spawn(o.String(), func(co *blk.Co) {
				if o.kind == opRead {
					errs[i] = r.b.PRead(co, o.off, reads[i])
					return
				}
				_, errs[i] = r.b.BlockStatus(co, o.off, max(o.n, 1))
			})
			continue
		}
		cos[i] = r.submit(o, &errs[i])
	}
	if err := loop.RunUntil("batch", func() bool {
		for _, co := range cos {
			if !co.Done() {
				return false
			}
		}
		return true
	}); err != nil {
		r.fatalf("batch: %v", err)
	}
	for i, o := range ops {
		if errs[i] != nil {
			r.fatalf("%s (in batch): %v", o, errs[i])
		}
		if o.kind != opRead {
			continue
		}
		for j, v := range reads[i] {
			x := o.off + int64(j)
			a := allow(x)
			a.old, a.oldVal = true, pre[x] // a read may run before any write
			if !a.ok(v) {
				r.fatalf("%s (in batch): byte %d reads 0x%02x, want one of %s", o, x, v, a)
			}
		}
	}
	r.settle(ops, allow)
}

// settle reads back every byte ops may have changed, checks it against
// allow and makes the model take it.
func (r *modelRun) settle(ops []op, allow func(x int64) allowed) {
	for _, o := range ops {
		if o.n == 0 || (o.kind != opWrite && o.kind != opZero && o.kind != opZeroUnmap && o.kind != opDiscard) {
			continue
		}
		got := r.read(o.off, o.n)
		for j, v := range got {
			x := o.off + int64(j)
			if a := allow(x); !a.ok(v) {
				r.fatalf("after %s: byte %d reads 0x%02x, want one of %s", o, x, v, a)
			}
		}
		copy(r.model[o.off:], got)
	}
}

// check compares a read with the model.
func (r *modelRun) check(what string, off int64, got []byte) {
	want := r.model[off : off+int64(len(got))]
	if i := firstDiff(got, want); i >= 0 {
		r.fatalf("%s: byte %d reads 0x%02x, model has 0x%02x", what, off+int64(i), got[i], want[i])
	}
}

func firstDiff(a, b []byte) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

func roundUp(v, a int64) int64 { return (v + a - 1) / a * a }

// step runs one sequential op.
func (r *modelRun) step(o op) {
	switch o.kind {
	case opRead:
		r.check(o.String(), o.off, r.read(o.off, o.n))
	case opStatus:
		var st blk.Status
		l := int64(len(r.model))
		r.do(o.String(), func(co *blk.Co) (err error) { st, err = r.b.BlockStatus(co, o.off, max(o.n, 1)); return })
		if o.off >= l {
			return
		}
		if st.Pnum <= 0 || st.Pnum > max(o.n, 1) {
			r.fatalf("%s: pnum %d outside (0, %d]", o, st.Pnum, max(o.n, 1))
		}
		if st.Flags&blk.StatusZero != 0 {
			for x := o.off; x < o.off+st.Pnum; x++ {
				if r.model[x] != 0 {
					r.fatalf("%s: says zero for %d bytes, but byte %d is 0x%02x", o, st.Pnum, x, r.model[x])
				}
			}
		}
	case opTruncate:
		r.do(o.String(), func(co *blk.Co) error { return r.b.Truncate(co, o.truncate, blk.PreallocOff) })
		want := roundUp(o.truncate, 512)
		if l := r.length(); l != want {
			r.fatalf("%s: length %d, want %d", o, l, want)
		}
		if want <= int64(len(r.model)) {
			r.model = r.model[:want]
			// The tail of a partial last sector reads as zeroes.
			clear(r.model[o.truncate:])
		} else {
			clear(r.model[min(o.truncate, int64(len(r.model))):])
			r.model = append(r.model, make([]byte, want-int64(len(r.model)))...)
		}
		r.check("after "+o.String(), 0, r.read(0, want))
	default:
		var err error
		co := r.submit(o, &err)
		if e := r.b.Loop().RunUntil(o.String(), co.Done); e != nil {
			r.fatalf("%s: %v", o, e)
		}
		if err != nil {
			r.fatalf("%s: %v", o, err)
		}
		switch o.kind {
		case opWrite:
			copy(r.model[o.off:o.off+o.n], bytes.Repeat([]byte{o.pattern}, int(o.n)))
		case opZero, opZeroUnmap:
			clear(r.model[o.off : o.off+o.n])
		case opDiscard:
			pre := append([]byte(nil), r.model...)
			r.settle([]op{o}, func(x int64) allowed {
				return allowed{zero: true, old: true, oldVal: pre[x]}
			})
		}
	}
}

var modelReg = blk.NewRegistry(raw.Driver, file.Driver, blktest.MemDriver, blkdebug.NewDriver(func() io.Writer { return io.Discard }))

func runModel(t *testing.T, data []byte) {
	d := &decoder{b: data}
	s := decodeStack(d)
	r := &modelRun{t: t, s: s}
	path := ""
	if s.fileNode {
		path = filepath.Join(t.TempDir(), "img")
		if err := os.WriteFile(path, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(path, s.size); err != nil {
			t.Fatal(err)
		}
	}
	loop := blk.NewLoop(blk.NewVirtualClock())
	b, err := modelReg.Open(blk.Spec{Opts: s.options(path), Flags: blk.OpenFlags{Unmap: true, NoFlush: s.noFlush}, WriteThrough: s.writeThrough}, loop)
	if err != nil {
		t.Fatalf("open %s: %v", s, err)
	}
	r.b = b
	defer func() {
		if err := b.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	}()
	r.model = make([]byte, s.size-s.rawOffset)
	if l := r.length(); l != int64(len(r.model)) {
		r.fatalf("length %d, want %d", l, len(r.model))
	}
	for n := 0; d.more() && n < 64; n++ {
		l := int64(len(r.model))
		o := r.decodeOp(d, l)
		if o.kind != opBatch {
			r.log = append(r.log, o.String())
			r.step(o)
			continue
		}
		var ops []op
		for range 2 + d.byte()%4 {
			c := r.decodeOp(d, l)
			if c.kind == opTruncate || c.kind == opBatch {
				c = op{kind: opFlush}
			}
			ops = append(ops, c)
		}
		var names []string
		for _, o := range ops {
			names = append(names, o.String())
		}
		r.log = append(r.log, "batch { "+strings.Join(names, "; ")+" }")
		r.batch(ops)
	}
	// Everything must read back as the model says, after a flush.
	r.step(op{kind: opFlush})
	r.check("final read", 0, r.read(0, int64(len(r.model))))
	if testing.Verbose() {
		t.Logf("stack: %s\nops:\n  %s", s, strings.Join(r.log, "\n  "))
	}
}

func FuzzModel(f *testing.F) {
	// Seeds: one per alignment and node, with unaligned writes, zero
	// writes, discards, a truncate and a batch of overlapping writes.
	for a := range byte(4) {
		for _, node := range []byte{0, 16 | 32} {
			f.Add([]byte{a | node, 0, 0, 1,
				opWrite, 0x41, 0x10, 0x80, 0x22, 0xab,
				opRead, 0, 0xff,
				opZero, 0x80, 0x10, 0x41, 0x20, 0x00,
				opDiscard, 0x01, 0x42, 0x00, 0x01,
				opBatch, 2, opWrite, 0x80, 0x07, 0xc0, 0x03, 0x11, opWrite, 0x40, 0x00, 0x02, 0xc1, 0x05, 0x23, opZeroUnmap, 0x00, 0x01,
				opTruncate, 0x43,
				opStatus, 0x00, 0x03,
				opRead, 0x00, 0x04})
		}
	}
	f.Add([]byte{2 | 16, 0x0f, 0x7f, 2, opBatch, 3, opWrite, 0x40, 0x10, 0, 0x40, 0x00, 0x55, opWrite, 0x40, 0x20, 0, 0x80, 0x00, 0x33, opDiscard, 0, 0x01, opRead, 0, 0x02})
	f.Fuzz(func(t *testing.T, data []byte) {
		defer watchdog.Start("model fuzz", 20*time.Second)()
		runModel(t, data)
	})
}
