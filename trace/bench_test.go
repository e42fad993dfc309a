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
// bench/trace-overhead.sh): submit, two spans, the wait for the I/O (a
// yield and its resume in one event), the spans' ends and completion. The events are made on the
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

func (w *writeEvents) trace(f *filler, i int) {
	const cost = 103815 * time.Nanosecond
	req, at, off := i+1, time.Duration(i)*cost, int64(i%16384*4096)
	s := 2*i + 1
	ev := func(k blk.TraceKind, at time.Duration) *blk.TraceEvent {
		e := f.slot()
		*e = blk.TraceEvent{Kind: k, At: at, Req: req}
		return e
	}
	ev(blk.TraceSubmit, at).Name = w.names[i%16384]
	e := ev(blk.TraceBegin, at)
	e.Span, e.Node, e.Name, e.Off, e.Bytes = s, w.raw, "write", off, 4096
	e = ev(blk.TraceBegin, at)
	e.Span, e.Parent, e.Node, e.Name, e.Off, e.Bytes = s+1, s, w.file, "write", off, 4096
	e = ev(blk.TraceWaited, at)
	e.Why, e.End = "waits for I/O", at+cost
	e = ev(blk.TraceEnd, at+cost)
	e.Span, e.Node = s+1, w.file
	e = ev(blk.TraceEnd, at+cost)
	e.Span, e.Node = s, w.raw
	ev(blk.TraceComplete, at+cost)
}

// filler fills a tracer's batches as the loop does.
type filler struct {
	t   blk.Tracer
	buf []blk.TraceEvent
	n   int
}

func (f *filler) slot() *blk.TraceEvent {
	if f.n == len(f.buf) {
		f.buf, f.n = f.t.Events(f.n), 0
	}
	f.n++
	return &f.buf[f.n-1]
}

// stop hands the last events over, as Loop.SetTracer does.
func (f *filler) stop() { f.t.Events(f.n) }

// nopTracer lends one batch again and again: the cost of making the
// events.
type nopTracer struct{ b [512]blk.TraceEvent }

func (n *nopTracer) Events(int) []blk.TraceEvent { return n.b[:] }

// BenchmarkWriter is the whole cost of tracing one piped 4 KiB write
// (its seven events, formatted as three and written to io.Discard), per
// write; "none" is the cost of making the events alone, "json-fold"
// that of JSON without the templates of plain chains (plainChain).
// Timings on a shared machine are noisy; instruction counts are not:
//
//	go test -run '^$' -bench Writer -benchmem ./trace
//	go test -c -o /tmp/trace.test ./trace
//	GODEBUG=asyncpreemptoff=1 valgrind --tool=callgrind /tmp/trace.test \
//	    -test.run '^$' -test.bench 'Writer/json$' -test.benchtime 20000x
func BenchmarkWriter(b *testing.B) {
	evs := newWriteEvents()
	for _, f := range []Format{-1, Chrome, JSONL, -2} {
		b.Run(map[Format]string{-1: "none", Chrome: "json", JSONL: "jsonl", -2: "json-fold"}[f], func(b *testing.B) {
			b.ReportAllocs()
			if f == -2 { // without the templates: every chain through foldChain
				noPlain, f = true, Chrome
				defer func() { noPlain = false }()
			}
			if f < 0 {
				f := &filler{t: &nopTracer{}}
				for i := 0; i < b.N; i++ {
					evs.trace(f, i)
				}
				return
			}
			w := NewWriter(io.Discard, f)
			fl := &filler{t: w}
			for i := 0; i < b.N; i++ {
				evs.trace(fl, i)
			}
			fl.stop()
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
		})
	}
}
