package blk_test

// Benchmarks of the hot paths (go test -bench . ./blk). None of them is a
// pass/fail test: timings only show up with -bench.

import (
	"testing"

	"gio/blk"
	"gio/blk/drivers/null"
	"gio/blk/qdict"
)

var benchReg = blk.NewRegistry(append(modelReg.Drivers(), null.CoDriver)...)

func benchOpen(b *testing.B, kv ...string) *blk.Backend {
	b.Helper()
	d := qdict.New()
	for i := 0; i+1 < len(kv); i += 2 {
		d.Set(kv[i], kv[i+1])
	}
	img, err := benchReg.Open(blk.Spec{Opts: d}, blk.NewLoop(blk.NewVirtualClock()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { img.Close() })
	return img
}

// nullImage is raw over null-co, what qemu-img bench -f raw null-co://
// opens.
func nullImage(b *testing.B) *blk.Backend {
	return benchOpen(b, "driver", "raw", "file.driver", "null-co", "file.size", "1G")
}

// run runs fn as one request to its end.
func run(b *testing.B, img *blk.Backend, fn func(co *blk.Co)) {
	co := img.Loop().Spawn("bench", fn)
	if err := img.Loop().RunUntil("bench", co.Done); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkSubmitNull: one request per read, spawned on the loop and run
// to its end: Spawn, a pooled worker, two coroutine switches, the
// generic path through raw and null-co.
func BenchmarkSubmitNull(b *testing.B) {
	img := nullImage(b)
	loop := img.Loop()
	buf := make([]byte, 4096)
	var err error
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		off := int64(i%1024) * 4096
		co := loop.Spawn("read", func(co *blk.Co) { err = img.PRead(co, off, buf) })
		if e := loop.RunUntil("read", co.Done); e != nil || err != nil {
			b.Fatal(e, err)
		}
	}
}

// BenchmarkPathNull: the request path alone, inside one request (what
// a bench lane does per request): must not allocate.
func BenchmarkPathNull(b *testing.B) {
	img := nullImage(b)
	buf := make([]byte, 4096)
	b.ReportAllocs()
	run(b, img, func(co *blk.Co) {
		for i := 0; b.Loop(); i++ {
			if err := img.PRead(co, int64(i%1024)*4096, buf); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkYieldIO: a request that yields once per I/O, as the file
// driver's deterministic engine does: the loop turn and two switches.
func BenchmarkYieldIO(b *testing.B) {
	img := benchOpen(b, "driver", "raw", "file.driver", "mem", "file.size", "4M", "file.yield", "on")
	buf := make([]byte, 4096)
	b.ReportAllocs()
	run(b, img, func(co *blk.Co) {
		for i := 0; b.Loop(); i++ {
			if err := img.PRead(co, int64(i%1024)*4096, buf); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkRMW: unaligned 512-byte writes through blkdebug align=4k, a
// read-modify-write each (padding, serialisation, events).
func BenchmarkRMW(b *testing.B) {
	img := benchOpen(b, "driver", "raw", "file.driver", "blkdebug", "file.align", "4096",
		"file.image.driver", "mem", "file.image.size", "4M")
	buf := make([]byte, 512)
	b.ReportAllocs()
	run(b, img, func(co *blk.Co) {
		for i := 0; b.Loop(); i++ {
			if err := img.PWrite(co, int64(i%1024)*4096+512, buf, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkBlockStatus: block status of raw over a memory node.
func BenchmarkBlockStatus(b *testing.B) {
	img := benchOpen(b, "driver", "raw", "file.driver", "mem", "file.size", "4M")
	b.ReportAllocs()
	run(b, img, func(co *blk.Co) {
		for i := 0; b.Loop(); i++ {
			if _, err := img.BlockStatus(co, int64(i%1024)*4096, 1<<20); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkFlushCoalesced: writethrough writes from 64 requests at once,
// each followed by the emulated FUA flush; concurrent flushes coalesce.
func BenchmarkFlushCoalesced(b *testing.B) {
	img := benchOpen(b, "driver", "raw", "file.driver", "mem", "file.size", "4M", "file.yield", "on")
	img.SetWriteThrough(true)
	loop := img.Loop()
	buf := make([]byte, 4096)
	b.ReportAllocs()
	for b.Loop() {
		for i := range 64 {
			loop.Spawn("write", func(co *blk.Co) { _ = img.PWrite(co, int64(i)*4096, buf, 0) })
		}
		if err := loop.Drain("writes"); err != nil {
			b.Fatal(err)
		}
	}
}
