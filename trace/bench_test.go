package trace

import (
	"io"
	"strconv"
	"testing"
	"time"

	"gio/blk"
)

// writeEvents calls fn with the events the loop reports for piped
// command i, "write -q OFF 4096" through raw over file (the events of
// bench/trace-overhead.sh): submit, two spans, a yield for the I/O and
// its resume, the spans' ends and completion. The events are made on the
// fly, as the loop makes them, not kept in a slice whose pointers the
// garbage collector would scan.
type writeEvents struct {
	raw, file *blk.Node
	names     []string
}

func newWriteEvents() *writeEvents {
	w := &writeEvents{raw: &blk.Node{}, file: &blk.Node{}, names: make([]string, 16384)}
	for i := range w.names {
		w.names[i] = "write " + strconv.Itoa(i*4096) + " 4096"
	}
	return w
}

func (w *writeEvents) trace(t blk.Tracer, i int) {
	const cost = 103815 * time.Nanosecond
	req, at, off := i+1, time.Duration(i)*cost, int64(i%16384*4096)
	s := 2*i + 1
	t.Trace(blk.TraceEvent{Kind: blk.TraceSubmit, At: at, Req: req, Name: w.names[i%16384]})
	t.Trace(blk.TraceEvent{Kind: blk.TraceBegin, At: at, Req: req, Span: s, Node: w.raw, Name: "write", Off: off, Bytes: 4096})
	t.Trace(blk.TraceEvent{Kind: blk.TraceBegin, At: at, Req: req, Span: s + 1, Parent: s, Node: w.file, Name: "write", Off: off, Bytes: 4096})
	t.Trace(blk.TraceEvent{Kind: blk.TraceYield, At: at, Req: req, Why: "waits for I/O"})
	t.Trace(blk.TraceEvent{Kind: blk.TraceResume, At: at + cost, Req: req})
	t.Trace(blk.TraceEvent{Kind: blk.TraceEnd, At: at + cost, Req: req, Span: s + 1, Node: w.file})
	t.Trace(blk.TraceEvent{Kind: blk.TraceEnd, At: at + cost, Req: req, Span: s, Node: w.raw})
	t.Trace(blk.TraceEvent{Kind: blk.TraceComplete, At: at + cost, Req: req})
}

// nopTracer drops every event: the cost of making them.
type nopTracer struct{}

func (nopTracer) Trace(blk.TraceEvent) {}

// BenchmarkWriter is the whole cost of tracing one piped 4 KiB write
// (its eight events, formatted and written to io.Discard), per write;
// "none" is the cost of making the events alone. Timings on a shared
// machine are noisy; instruction counts are not:
//
//	go test -run '^$' -bench Writer -benchmem ./trace
//	go test -c -o /tmp/trace.test ./trace
//	GODEBUG=asyncpreemptoff=1 valgrind --tool=callgrind /tmp/trace.test \
//	    -test.run '^$' -test.bench 'Writer/json$' -test.benchtime 20000x
func BenchmarkWriter(b *testing.B) {
	evs := newWriteEvents()
	for _, f := range []Format{-1, Chrome, JSONL} {
		b.Run(map[Format]string{-1: "none", Chrome: "json", JSONL: "jsonl"}[f], func(b *testing.B) {
			b.ReportAllocs()
			if f < 0 {
				for i := 0; i < b.N; i++ {
					evs.trace(nopTracer{}, i)
				}
				return
			}
			w := NewWriter(io.Discard, f)
			for i := 0; i < b.N; i++ {
				evs.trace(w, i)
			}
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
		})
	}
}
