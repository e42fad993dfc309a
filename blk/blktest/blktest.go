// Package blktest is the conformance suite for block drivers and filter
// stacks, in the style of testing/fstest: a driver's test opens a fresh
// writable image through blk and calls Run, which checks through a
// blk.Backend that the layer keeps blk's contract: data written at any
// offset reads back, zero writes read back as zeroes, discard never fails
// and never touches bytes outside its range, block status covers every
// range with a non-empty answer, requests past the end fail with EIO,
// errors carry errnos, and concurrent requests do not lose updates.
package blktest

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"gio/blk"

	"golang.org/x/sys/unix"
)

// MinLength is the smallest image Run accepts.
const MinLength = 128 << 10

// maxRegion bounds the part of the image the data checks model in memory.
const maxRegion = 256 << 10

// Option changes what Run expects of the driver.
type Option func(*config)

type config struct {
	noData     bool
	readsZeros bool
	sectors    bool
	growNoise  bool
	fixed      bool
}

// NoData says the driver stores nothing (null-co): writes succeed but what
// reads return is not checked against what was written.
func NoData() Option { return func(c *config) { c.noData = true } }

// ReadsZeroes says every read returns zeroes (null-co with read-zeroes).
// Run then checks that instead of the written data; it implies NoData.
func ReadsZeroes() Option { return func(c *config) { c.noData, c.readsZeros = true, true } }

// SectorSizes says the driver resizes only to multiples of 512 bytes
// (qcow2, as in QEMU); Truncate is then tested with such sizes.
func SectorSizes() Option { return func(c *config) { c.sectors = true } }

// GrowsNoise says a grown area reads as whatever the layer below decodes
// it to (luks: decrypted zeroes), not as zeroes, as in QEMU.
func GrowsNoise() Option { return func(c *config) { c.growNoise = true } }

// FixedLength says the layer cannot grow (an NBD export): Truncate is
// not tested.
func FixedLength() Option { return func(c *config) { c.fixed = true } }

// Run runs the suite. open must return a freshly opened, writable Backend
// of at least MinLength bytes, on its own loop; it is called once per
// subtest, and Run closes what it returns.
func Run(t *testing.T, open func(t *testing.T) *blk.Backend, opts ...Option) {
	var c config
	for _, o := range opts {
		o(&c)
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, s *session)
	}{
		{"Length", testLength},
		{"ReadYourWrites", testReadYourWrites},
		{"ZeroWrites", testZeroWrites},
		{"Discard", testDiscard},
		{"BlockStatus", testBlockStatus},
		{"PastEnd", testPastEnd},
		{"Flush", testFlush},
		{"Truncate", testTruncate},
		{"Concurrent", testConcurrent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := open(t)
			s := &session{t: t, b: b, cfg: c, rng: rand.New(rand.NewPCG(1, uint64(len(tc.name))))}
			defer func() {
				if err := b.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			}()
			s.length = s.mustLength()
			if s.length < MinLength {
				t.Fatalf("image is %d bytes, want at least %d", s.length, MinLength)
			}
			tc.fn(t, s)
		})
	}
}

// session is one opened image with a model of its first bytes.
type session struct {
	t      *testing.T
	b      *blk.Backend
	cfg    config
	rng    *rand.Rand
	length int64
	model  []byte // expected content of [0, len(model))
}

// Do runs fn as one request on b's loop until it finishes and returns its
// error. A request that can never finish fails the test.
func Do(t testing.TB, b *blk.Backend, name string, fn func(co *blk.Co) error) error {
	t.Helper()
	var err error
	co := b.Loop().Spawn(name, func(co *blk.Co) { err = fn(co) })
	if e := b.Loop().RunUntil(name, co.Done); e != nil {
		t.Fatalf("%s: %v", name, e)
	}
	return err
}

func (s *session) do(name string, fn func(co *blk.Co) error) error {
	s.t.Helper()
	return Do(s.t, s.b, name, fn)
}

func (s *session) mustLength() int64 {
	s.t.Helper()
	var l int64
	err := s.do("length", func(co *blk.Co) (err error) {
		l, err = s.b.Length(co)
		return err
	})
	if err != nil {
		s.t.Fatalf("Length: %v", err)
	}
	return l
}

func (s *session) read(off int64, n int) ([]byte, error) {
	s.t.Helper()
	buf := make([]byte, n)
	err := s.do(fmt.Sprintf("read %d+%d", off, n), func(co *blk.Co) error { return s.b.PRead(co, off, buf) })
	return buf, err
}

func (s *session) mustRead(off int64, n int) []byte {
	s.t.Helper()
	buf, err := s.read(off, n)
	if err != nil {
		s.t.Fatalf("PRead(%d, %d) = %v, want success", off, n, err)
	}
	checkErrno(s.t, err)
	return buf
}

func (s *session) mustWrite(off int64, data []byte) {
	s.t.Helper()
	err := s.do(fmt.Sprintf("write %d+%d", off, len(data)), func(co *blk.Co) error { return s.b.PWrite(co, off, data, 0) })
	if err != nil {
		s.t.Fatalf("PWrite(%d, %d) = %v, want success", off, len(data), err)
	}
	s.apply(off, data)
}

func (s *session) zero(off, n int64, flags blk.ReqFlags) error {
	s.t.Helper()
	return s.do(fmt.Sprintf("zero %d+%d %v", off, n, flags), func(co *blk.Co) error { return s.b.PWriteZeroes(co, off, n, flags) })
}

// apply records a write of data at off in the model.
func (s *session) apply(off int64, data []byte) {
	if off >= int64(len(s.model)) {
		return
	}
	copy(s.model[off:], data)
}

func (s *session) pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(s.rng.Uint32())
	}
	return b
}

// loadModel reads the current content of the modelled region.
func (s *session) loadModel() {
	s.t.Helper()
	s.model = s.mustRead(0, int(min(s.length, maxRegion)))
	if s.cfg.readsZeros {
		s.model = make([]byte, len(s.model))
	}
}

// check compares [off, off+n) of the image with the model.
func (s *session) check(what string, off int64, n int) {
	s.t.Helper()
	got := s.mustRead(off, n)
	switch {
	case s.cfg.readsZeros:
		if i := firstNonZero(got); i >= 0 {
			s.t.Fatalf("%s: byte %d = %#x, want 0 (driver reads zeroes)", what, off+int64(i), got[i])
		}
	case s.cfg.noData:
	default:
		if want := s.model[off : off+int64(n)]; !bytes.Equal(got, want) {
			i := firstDiff(got, want)
			s.t.Fatalf("%s: byte %d = %#x, want %#x", what, off+int64(i), got[i], want[i])
		}
	}
}

func (s *session) checkAll(what string) {
	s.t.Helper()
	s.check(what, 0, len(s.model))
}

func firstNonZero(b []byte) int {
	for i, c := range b {
		if c != 0 {
			return i
		}
	}
	return -1
}

func firstDiff(a, b []byte) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return len(a)
}

// checkErrno fails unless err is nil or carries an errno.
func checkErrno(t testing.TB, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var e unix.Errno
	if !errors.As(err, &e) {
		t.Errorf("error %q (%T) carries no errno", err, err)
	}
}

func testLength(t *testing.T, s *session) {
	if s.length%512 != 0 {
		t.Errorf("Length = %d, want a multiple of 512", s.length)
	}
	if again := s.mustLength(); again != s.length {
		t.Errorf("Length = %d, then %d", s.length, again)
	}
}

// unalignedRanges are (offset, length) pairs within the first 80 KiB that
// start and end on and off every usual alignment.
var unalignedRanges = [][2]int64{
	{0, 512}, {1, 1}, {511, 2}, {513, 1000}, {4095, 4098}, {1000, 3000},
	{65535, 1}, {8192, 4096}, {100, 70000}, {12345, 6789}, {4096, 1},
	{30000, 512}, {0, 1}, {65536 - 512, 1024},
}

func testReadYourWrites(t *testing.T, s *session) {
	s.loadModel()
	for _, r := range unalignedRanges {
		data := s.pattern(int(r[1]))
		s.mustWrite(r[0], data)
		s.check(fmt.Sprintf("after write %d+%d", r[0], r[1]), r[0], int(r[1]))
	}
	s.checkAll("whole region")
	// Read the region again in odd pieces.
	for off := int64(0); off < int64(len(s.model)); {
		n := min(int64(len(s.model))-off, 1+s.rng.Int64N(9000))
		s.check(fmt.Sprintf("piece %d+%d", off, n), off, int(n))
		off += n
	}
	// The last bytes of the image.
	tail := s.pattern(3)
	end := s.length - 3
	err := s.do("write tail", func(co *blk.Co) error { return s.b.PWrite(co, end, tail, 0) })
	if err != nil {
		t.Fatalf("PWrite(%d, 3) = %v, want success", end, err)
	}
	got := s.mustRead(end, 3)
	if !s.cfg.noData && !bytes.Equal(got, tail) {
		t.Errorf("read back %x at %d, want %x", got, end, tail)
	}
	// Under a request alignment the padded write may extend the file
	// to the next aligned boundary, as in QEMU; it never shrinks.
	if l := s.mustLength(); l < s.length {
		t.Errorf("Length = %d after writing the last bytes, was %d", l, s.length)
	}
}

func testZeroWrites(t *testing.T, s *session) {
	s.loadModel()
	s.mustWrite(0, bytes.Repeat([]byte{0xab}, len(s.model)))
	for i, r := range unalignedRanges {
		flags := blk.ReqFlags(0)
		if i%2 == 1 {
			flags = blk.MayUnmap
		}
		if err := s.zero(r[0], r[1], flags); err != nil {
			t.Fatalf("PWriteZeroes(%d, %d, %v) = %v, want success", r[0], r[1], flags, err)
		}
		s.apply(r[0], make([]byte, r[1]))
		s.check(fmt.Sprintf("after zero write %d+%d %v", r[0], r[1], flags), max(0, r[0]-10), int(r[1]+20))
	}
	s.checkAll("whole region")

	// NoFallback may be refused, but only with ENOTSUP.
	s.mustWrite(0, bytes.Repeat([]byte{0xcd}, len(s.model)))
	for _, r := range [][2]int64{{0, 4096}, {4096, 8192}, {512, 512}, {3, 5}} {
		for _, flags := range []blk.ReqFlags{blk.NoFallback, blk.NoFallback | blk.MayUnmap} {
			err := s.zero(r[0], r[1], flags)
			checkErrno(t, err)
			switch {
			case err == nil:
				s.apply(r[0], make([]byte, r[1]))
			case errors.Is(err, unix.ENOTSUP):
			default:
				t.Fatalf("PWriteZeroes(%d, %d, %v) = %v, want success or ENOTSUP", r[0], r[1], flags, err)
			}
		}
	}
	s.checkAll("after NoFallback zero writes")

	// The whole region in one request, and the whole image.
	if err := s.zero(0, int64(len(s.model)), blk.MayUnmap); err != nil {
		t.Fatalf("PWriteZeroes(whole region) = %v", err)
	}
	clear(s.model)
	s.checkAll("after zeroing the region")
	if err := s.zero(0, s.length, 0); err != nil {
		t.Fatalf("PWriteZeroes(whole image) = %v", err)
	}
	s.checkAll("after zeroing the image")
}

func testDiscard(t *testing.T, s *session) {
	s.loadModel()
	s.mustWrite(0, s.pattern(len(s.model)))
	ranges := [][2]int64{{4096, 8192}, {1, 1}, {513, 5000}, {20000, 1}, {0, 512}, {32768, 32768}}
	discarded := make([]bool, len(s.model))
	for _, r := range ranges {
		err := s.do(fmt.Sprintf("discard %d+%d", r[0], r[1]), func(co *blk.Co) error { return s.b.PDiscard(co, r[0], r[1]) })
		if err != nil {
			t.Fatalf("PDiscard(%d, %d) = %v, want success", r[0], r[1], err)
		}
		for i := r[0]; i < r[0]+r[1]; i++ {
			discarded[i] = true
		}
	}
	// Discarded bytes may read as anything; the others must be intact.
	got := s.mustRead(0, len(s.model))
	if s.cfg.noData {
		return
	}
	for i := range got {
		if !discarded[i] && got[i] != s.model[i] {
			t.Fatalf("byte %d = %#x after discards elsewhere, want %#x", i, got[i], s.model[i])
		}
	}
	if err := s.do("discard all", func(co *blk.Co) error { return s.b.PDiscard(co, 0, s.length) }); err != nil {
		t.Fatalf("PDiscard(whole image) = %v", err)
	}
}

func testBlockStatus(t *testing.T, s *session) {
	s.loadModel()
	if !s.cfg.noData {
		s.mustWrite(4096, s.pattern(8192))
		if err := s.zero(20480, 8192, blk.MayUnmap); err != nil {
			t.Fatalf("PWriteZeroes = %v", err)
		}
	}
	walk := func(what string, query func(co *blk.Co, off, n int64) (flags int, pnum int64, err error)) {
		t.Helper()
		for off := int64(0); off < s.length; {
			var flags int
			var pnum int64
			err := s.do(what, func(co *blk.Co) (err error) {
				flags, pnum, err = query(co, off, s.length-off)
				return err
			})
			if err != nil {
				t.Fatalf("%s(%d, %d) = %v", what, off, s.length-off, err)
			}
			if pnum <= 0 || pnum > s.length-off {
				t.Fatalf("%s(%d, %d): pnum %d, want 1..%d", what, off, s.length-off, pnum, s.length-off)
			}
			if flags&blk.StatusZero != 0 && off < int64(len(s.model)) {
				n := min(pnum, int64(len(s.model))-off)
				if got := s.mustRead(off, int(n)); firstNonZero(got) >= 0 {
					t.Fatalf("%s(%d): ZERO for %d bytes, but byte %d is %#x", what, off, pnum, off+int64(firstNonZero(got)), got[firstNonZero(got)])
				}
			}
			off += pnum
		}
	}
	walk("BlockStatus", func(co *blk.Co, off, n int64) (int, int64, error) {
		st, err := s.b.BlockStatus(co, off, n)
		return st.Flags, st.Pnum, err
	})
	walk("IsAllocated", func(co *blk.Co, off, n int64) (int, int64, error) {
		_, pnum, err := s.b.IsAllocated(co, off, n)
		return 0, pnum, err
	})
	// Unaligned queries still make progress.
	for _, q := range [][2]int64{{1, 1}, {511, 2}, {4095, 3}, {s.length - 1, 1}, {s.length - 513, 100}} {
		var st blk.Status
		err := s.do("BlockStatus", func(co *blk.Co) (err error) {
			st, err = s.b.BlockStatus(co, q[0], q[1])
			return err
		})
		if err != nil || st.Pnum <= 0 || st.Pnum > q[1] {
			t.Errorf("BlockStatus(%d, %d) = pnum %d, %v; want 1..%d bytes", q[0], q[1], st.Pnum, err, q[1])
		}
	}
	// At the end there is nothing left to describe.
	var st blk.Status
	err := s.do("BlockStatus at end", func(co *blk.Co) (err error) {
		st, err = s.b.BlockStatus(co, s.length, 512)
		return err
	})
	if err != nil || st.Pnum != 0 {
		t.Errorf("BlockStatus(length, 512) = pnum %d, %v; want 0, nil", st.Pnum, err)
	}
}

func testPastEnd(t *testing.T, s *session) {
	l := s.length
	buf := make([]byte, 2)
	cases := []struct {
		name string
		fn   func(co *blk.Co) error
	}{
		{"read across end", func(co *blk.Co) error { return s.b.PRead(co, l-1, buf) }},
		{"read at end", func(co *blk.Co) error { return s.b.PRead(co, l, buf[:1]) }},
		{"read far", func(co *blk.Co) error { return s.b.PRead(co, 1<<62, buf) }},
		{"read negative", func(co *blk.Co) error { return s.b.PRead(co, -1, buf) }},
		{"write across end", func(co *blk.Co) error { return s.b.PWrite(co, l-1, buf, 0) }},
		{"write at end", func(co *blk.Co) error { return s.b.PWrite(co, l, buf[:1], 0) }},
		{"zero across end", func(co *blk.Co) error { return s.b.PWriteZeroes(co, l-512, 1024, 0) }},
		{"zero unmap at end", func(co *blk.Co) error { return s.b.PWriteZeroes(co, l, 512, blk.MayUnmap) }},
		{"discard across end", func(co *blk.Co) error { return s.b.PDiscard(co, l-1, 2) }},
	}
	for _, tc := range cases {
		err := s.do(tc.name, tc.fn)
		if !errors.Is(err, unix.EIO) || blk.ErrnoOf(err) != unix.EIO {
			t.Errorf("%s: err = %v, want EIO", tc.name, err)
		}
		checkErrno(t, err)
	}
	// Empty requests at the end are fine.
	if err := s.do("empty read at end", func(co *blk.Co) error { return s.b.PRead(co, l, nil) }); err != nil {
		t.Errorf("PRead(length, 0) = %v, want success", err)
	}
	if got := s.mustLength(); got != l {
		t.Errorf("Length = %d after failed requests, want %d", got, l)
	}
}

func testFlush(t *testing.T, s *session) {
	for i := range 2 {
		if err := s.do("flush", s.b.Flush); err != nil {
			t.Fatalf("Flush #%d = %v", i, err)
		}
	}
	s.loadModel()
	s.mustWrite(100, s.pattern(1000))
	if err := s.do("flush", s.b.Flush); err != nil {
		t.Fatalf("Flush after write = %v", err)
	}
	s.check("after flush", 0, 4096)
}

func testTruncate(t *testing.T, s *session) {
	if s.cfg.fixed {
		t.Skip("the layer has a fixed length")
	}
	l := s.length
	grow := l + 64<<10 + 3
	if s.cfg.sectors {
		grow = (grow + 511) &^ 511
	}
	err := s.do("truncate", func(co *blk.Co) error { return s.b.Truncate(co, grow, blk.PreallocOff) })
	if err != nil {
		checkErrno(t, err)
		if errors.Is(err, unix.ENOTSUP) {
			t.Skipf("Truncate = %v", err)
		}
		t.Fatalf("Truncate(%d) = %v", grow, err)
	}
	nl := s.mustLength()
	if want := (grow + 511) / 512 * 512; nl != want {
		t.Errorf("Length after Truncate(%d) = %d, want %d", grow, nl, want)
	}
	s.length = nl
	got := s.mustRead(l, int(nl-l))
	if i := firstNonZero(got); i >= 0 && !(s.cfg.noData && !s.cfg.readsZeros) && !s.cfg.growNoise {
		t.Errorf("grown byte %d = %#x, want 0", l+int64(i), got[i])
	}
	// Write into the new part, shrink back, grow again: zeroes again.
	data := s.pattern(100)
	if err := s.do("write", func(co *blk.Co) error { return s.b.PWrite(co, l+10, data, 0) }); err != nil {
		t.Fatalf("PWrite in grown part = %v", err)
	}
	if err := s.do("shrink", func(co *blk.Co) error { return s.b.Truncate(co, l, blk.PreallocOff) }); err != nil {
		t.Fatalf("Truncate(%d) = %v", l, err)
	}
	if got := s.mustLength(); got != l {
		t.Errorf("Length after shrinking = %d, want %d", got, l)
	}
	if err := s.do("grow", func(co *blk.Co) error { return s.b.Truncate(co, l+4096, blk.PreallocOff) }); err != nil {
		t.Fatalf("Truncate(%d) = %v", l+4096, err)
	}
	got = s.mustRead(l, 4096)
	if i := firstNonZero(got); i >= 0 && !(s.cfg.noData && !s.cfg.readsZeros) && !s.cfg.growNoise {
		t.Errorf("regrown byte %d = %#x, want 0", l+int64(i), got[i])
	}
	// A negative size is refused with an errno.
	err = s.do("truncate negative", func(co *blk.Co) error { return s.b.Truncate(co, -1, blk.PreallocOff) })
	if err == nil {
		t.Errorf("Truncate(-1) succeeded")
	}
	checkErrno(t, err)
}

// testConcurrent starts many requests at once so that they interleave at
// every yield point: unaligned writes sharing blocks (read-modify-write
// and serialisation under a request alignment), zero writes and reads.
// The result must be as if they ran one after another.
func testConcurrent(t *testing.T, s *session) {
	s.loadModel()
	loop := s.b.Loop()
	var cos []*blk.Co
	errs := make([]error, 0, 64)
	add := func(name string, fn func(co *blk.Co) error) {
		i := len(errs)
		errs = append(errs, nil)
		cos = append(cos, loop.Spawn(name, func(co *blk.Co) { errs[i] = fn(co) }))
	}
	for i := range 16 {
		off := int64(100 + i*700)
		data := s.pattern(700)
		s.apply(off, data)
		add(fmt.Sprintf("write %d", off), func(co *blk.Co) error { return s.b.PWrite(co, off, data, 0) })
	}
	for i := range 4 {
		off := int64(20000 + i*3000)
		s.apply(off, make([]byte, 1000))
		add(fmt.Sprintf("zero %d", off), func(co *blk.Co) error { return s.b.PWriteZeroes(co, off, 1000, blk.MayUnmap) })
	}
	for i := range 4 {
		off := int64(40000 + i*513)
		buf := make([]byte, 300)
		add(fmt.Sprintf("read %d", off), func(co *blk.Co) error { return s.b.PRead(co, off, buf) })
	}
	err := loop.RunUntil("concurrent requests", func() bool {
		for _, co := range cos {
			if !co.Done() {
				return false
			}
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range errs {
		if e != nil {
			t.Errorf("%s: %v", cos[i].Name(), e)
		}
	}
	s.checkAll("after concurrent requests")
}
