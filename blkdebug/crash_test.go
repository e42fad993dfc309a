package blkdebug_test

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"

	"gio/blk"
	"gio/blk/blktest"
	"gio/blk/drivers/raw"
	"gio/blk/qdict"
	"gio/blkdebug"
	"gio/commands"
)

// Durability: a crashable memory disk (the idea of pebble's
// memfs_crashable) remembers what is on stable storage apart from what
// the OS has seen. A simulated crash forgets everything since the last
// flush to disk; what survives proves that flush, FUA writes and
// writethrough mode reach the bottom of raw -> blkdebug -> memory.

// disk finds the crashmem node at the bottom of the graph.
func disk(t *testing.T, b *blk.Backend) *blktest.Mem {
	t.Helper()
	m := blktest.Find(b)
	if m == nil {
		t.Fatal("no crashmem node")
	}
	return m
}

func crashRegistry(out io.Writer) *blk.Registry {
	return blk.NewRegistry(raw.Driver, blktest.CrashDriver, blkdebug.NewDriver(func() io.Writer { return out }))
}

// stacks are the graphs under test: every filter between the user and
// the disk must pass flushes and FUA down.
var stacks = []struct{ name, opts string }{
	{"raw-mem", "driver=raw,file.driver=crashmem"},
	{"raw-blkdebug-mem", "driver=raw,file.driver=blkdebug,file.image.driver=crashmem"},
	{"raw-blkdebug(align=4k)-mem", "driver=raw,file.driver=blkdebug,file.align=4k,file.image.driver=crashmem"},
	{"blkdebug-blkdebug-mem", "driver=blkdebug,image.driver=blkdebug,image.image.driver=crashmem"},
}

func openCrashStack(t *testing.T, opts string, writeThrough, noFlush bool) *blk.Backend {
	t.Helper()
	d, _, err := qdict.ParseKeyValue(opts)
	if err != nil {
		t.Fatal(err)
	}
	spec := blk.Spec{Opts: d, WriteThrough: writeThrough}
	spec.Flags.NoFlush = noFlush
	b, err := crashRegistry(io.Discard).Open(spec, blk.NewLoop(blk.NewVirtualClock()))
	if err != nil {
		t.Fatalf("open %s: %v", opts, err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func run(t *testing.T, b *blk.Backend, fn func(co *blk.Co) error) {
	t.Helper()
	var err error
	co := b.Loop().Spawn("test", func(co *blk.Co) { err = fn(co) })
	if e := b.Loop().RunUntil(co.Name(), co.Done); e != nil {
		t.Fatal(e)
	}
	if err != nil {
		t.Fatal(err)
	}
}

func pattern(n int, b byte) []byte { return bytes.Repeat([]byte{b}, n) }

// survives reports whether [off, off+len(want)) holds want after a crash.
func survives(m *blktest.Mem, off int64, want []byte) bool {
	m.Crash()
	return bytes.Equal(m.Data[off:off+int64(len(want))], want)
}

func TestCrashLosesUnflushedWrites(t *testing.T) {
	for _, s := range stacks {
		t.Run(s.name, func(t *testing.T) {
			b := openCrashStack(t, s.opts, false, false)
			run(t, b, func(co *blk.Co) error { return b.PWrite(co, 4096, pattern(4096, 0xa5), 0) })
			m := disk(t, b)
			if !bytes.Equal(m.Data[4096:8192], pattern(4096, 0xa5)) {
				t.Fatal("the write did not reach the disk's cache")
			}
			if survives(m, 4096, pattern(4096, 0xa5)) {
				t.Fatal("an unflushed write survived the crash: the crash model is broken")
			}
		})
	}
}

func TestFlushSurvivesCrash(t *testing.T) {
	for _, s := range stacks {
		for _, fua := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/fua=%v", s.name, fua), func(t *testing.T) {
				b := openCrashStack(t, withFUA(s.opts, fua), false, false)
				m := disk(t, b)
				// Unaligned, so that blkdebug align=4k does
				// read-modify-write first.
				run(t, b, func(co *blk.Co) error { return b.PWrite(co, 1000, pattern(3000, 0x5a), 0) })
				run(t, b, func(co *blk.Co) error { return b.Flush(co) })
				if m.DiskFlushes == 0 {
					t.Fatal("flush did not reach the disk")
				}
				if !survives(m, 1000, pattern(3000, 0x5a)) {
					t.Fatal("flushed data lost in the crash")
				}
			})
		}
	}
}

// withFUA sets the fua option of a stack's crashmem node.
func withFUA(opts string, on bool) string {
	key := "fua"
	for _, part := range strings.Split(opts, ",") {
		if p, ok := strings.CutSuffix(part, "driver=crashmem"); ok {
			key = p + "fua"
		}
	}
	return fmt.Sprintf("%s,%s=%v", opts, key, map[bool]string{false: "off", true: "on"}[on])
}

func TestFUASurvivesCrash(t *testing.T) {
	for _, s := range stacks {
		for _, native := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/native=%v", s.name, native), func(t *testing.T) {
				b := openCrashStack(t, withFUA(s.opts, native), false, false)
				m := disk(t, b)
				// Old data on the disk where the zero write goes.
				copy(m.Durable[8192:], pattern(5000, 0xff))
				copy(m.Data[8192:], pattern(5000, 0xff))
				run(t, b, func(co *blk.Co) error { return b.PWrite(co, 512, pattern(100, 0x11), blk.FUA) })
				run(t, b, func(co *blk.Co) error { return b.PWriteZeroes(co, 8192, 5000, blk.FUA) })
				// Something that must not survive: written without FUA
				// after the FUA writes, never flushed.
				run(t, b, func(co *blk.Co) error { return b.PWrite(co, 32768, pattern(512, 0x22), 0) })
				if !survives(m, 512, pattern(100, 0x11)) {
					t.Error("FUA write lost in the crash")
				}
				if !bytes.Equal(m.Data[8192:8192+5000], make([]byte, 5000)) {
					t.Error("FUA zero write lost in the crash")
				}
				if bytes.Equal(m.Data[32768:32768+512], pattern(512, 0x22)) {
					t.Error("a write without FUA survived: FUA flushed more than it should (or the model is broken)")
				}
			})
		}
	}
}

func TestWriteThroughSurvivesCrash(t *testing.T) {
	for _, s := range stacks {
		t.Run(s.name, func(t *testing.T) {
			b := openCrashStack(t, s.opts, true, false)
			m := disk(t, b)
			run(t, b, func(co *blk.Co) error { return b.PWrite(co, 5000, pattern(700, 0x33), 0) })
			if !survives(m, 5000, pattern(700, 0x33)) {
				t.Error("writethrough write lost in the crash")
			}
		})
	}
}

// TestUnsafeDoesNotFlush: cache=unsafe (no-flush) is allowed to lose
// everything, as in QEMU; the test pins that the flag is honoured all
// the way down, so that the other tests mean something.
func TestUnsafeDoesNotFlush(t *testing.T) {
	b := openCrashStack(t, stacks[1].opts, false, true)
	m := disk(t, b)
	run(t, b, func(co *blk.Co) error { return b.PWrite(co, 0, pattern(512, 0x44), 0) })
	run(t, b, func(co *blk.Co) error { return b.Flush(co) })
	if m.DiskFlushes != 0 {
		t.Errorf("cache=unsafe: %d flushes reached the disk", m.DiskFlushes)
	}
}

// TestCommandsSurviveCrash goes through the command layer, as a user
// would: "write -f", "aio_write -f" and "flush" in writeback mode, and
// plain writes in qemu-io's default writethrough mode.
func TestCommandsSurviveCrash(t *testing.T) {
	for _, s := range stacks[1:3] {
		for _, tc := range []struct {
			name    string
			cache   string
			lines   []string
			durable map[int64]byte // offset -> pattern of 512 bytes that must survive
			lost    map[int64]byte // offset -> pattern that must not
		}{
			{"write -f", "writeback", []string{"write -f -P 0x62 4096 512", "write -P 0x61 0 512"},
				map[int64]byte{4096: 0x62}, map[int64]byte{0: 0x61}},
			{"aio_write -f", "writeback", []string{"aio_write -f -P 0x63 512 512", "aio_flush"},
				map[int64]byte{512: 0x63}, nil},
			{"write -z -f", "writeback", []string{"write -P 0x64 8192 4096", "flush", "write -z -f 8192 512"},
				map[int64]byte{8192: 0, 8704: 0x64}, nil},
			{"flush", "writeback", []string{"write -P 0x65 1024 512", "aio_write -P 0x66 12288 512", "aio_flush", "flush", "write -P 0x67 16384 512"},
				map[int64]byte{1024: 0x65, 12288: 0x66}, map[int64]byte{16384: 0x67}},
			{"writethrough", "writethrough", []string{"write -P 0x68 20480 512", "aio_write -P 0x69 700 512", "aio_flush"},
				map[int64]byte{20480: 0x68, 700: 0x69}, nil},
		} {
			t.Run(s.name+"/"+tc.name, func(t *testing.T) {
				var out, errw bytes.Buffer
				sess := commands.NewSession(&out, &errw, crashRegistry(&out), blk.NewLoop(blk.NewVirtualClock()))
				sess.ImageOpts = true
				d, _, err := qdict.ParseKeyValue(s.opts)
				if err != nil {
					t.Fatal(err)
				}
				if !sess.OpenImage("", commands.OpenOptions{Opts: d, Cache: tc.cache}) {
					t.Fatalf("open: %s", errw.String())
				}
				m := disk(t, sess.Img)
				for _, l := range tc.lines {
					if !sess.Execute(l) {
						t.Fatalf("%s: %s%s", l, out.String(), errw.String())
					}
				}
				m.Crash()
				for off, p := range tc.durable {
					if !bytes.Equal(m.Data[off:off+512], pattern(512, p)) {
						t.Errorf("offset %d: 0x%02x lost in the crash", off, p)
					}
				}
				for off, p := range tc.lost {
					if bytes.Equal(m.Data[off:off+512], pattern(512, p)) {
						t.Errorf("offset %d: 0x%02x survived without a flush (the test proves nothing)", off, p)
					}
				}
				sess.Img.Close()
				sess.Img = nil
			})
		}
	}
}
