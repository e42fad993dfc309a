package blk_test

import (
	"fmt"
	"testing"

	"gio/blk"
)

// batchTracer lends the same batch again and again, as trace.Writer
// lends its batches (without formatting them).
type batchTracer struct{ evs []blk.TraceEvent }

func (c *batchTracer) Events(int) []blk.TraceEvent { return c.evs }

// BenchmarkTracerHooks is a 4 KiB write through raw over mem (yielding as
// the file driver does) with tracing off and with a tracer that copies
// every event: the cost tracing adds to the request path itself. Timings
// on a shared machine are noisy; instruction counts are not:
//
//	go test -c -o /tmp/blk.test ./blk
//	GODEBUG=asyncpreemptoff=1 valgrind --tool=callgrind /tmp/blk.test \
//	    -test.run '^$' -test.bench 'TracerHooks/off' -test.benchtime 20000x
func BenchmarkTracerHooks(b *testing.B) {
	for _, on := range []bool{false, true} {
		b.Run(map[bool]string{false: "off", true: "on"}[on], func(b *testing.B) {
			loop, bk := openMem(b, "driver=raw,file.driver=mem,file.yield=on,file.size=1M")
			if on {
				loop.SetTracer(&batchTracer{evs: make([]blk.TraceEvent, 512)})
			}
			buf := make([]byte, 4096)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				off := int64(i%256) * 4096
				co := loop.Spawn(fmt.Sprintf("write %d 4096", off), func(co *blk.Co) { bk.PWrite(co, off, buf, 0) })
				if err := loop.RunUntil("write", co.Done); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
