// Package trace writes the block layer's trace events (blk.Tracer) as
// Chrome Trace Event Format JSON, which the Perfetto UI and
// chrome://tracing open, or as JSON lines (the same event objects, one per
// line), and reads either back for the timeline renderer.
//
// The layout of a trace:
//
//   - process 1, "nodes": one thread (lane) per block node, named after its
//     driver ("raw", "blkdebug", "file"; "file#2" for a second one), in the
//     order nodes first appear. A tracked request is an async span on its
//     node's lane ("ph":"b"/"e", cat "req", id = span number) with its
//     request and parent span in args; flushes are async spans of cat
//     "flush". Serialisation, waits, debug events, rules, breakpoints and
//     errors are instant events on the node's lane.
//   - process 2, "requests": one lane per request (tid = request number),
//     named by its command line. The request is a "B"/"E" slice from
//     submission to completion; every yield is a nested slice named by its
//     reason ("waits for #2 ...", "suspended at 'A'", "waits for I/O").
//
// Timestamps ("ts", microseconds with three decimals) come from the loop
// clock: in virtual time the file is the same bytes on every run.
package trace

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"gio/blk"
)

// Format is a trace file format.
type Format int

const (
	// Chrome is the Chrome Trace Event Format's JSON array form.
	Chrome Format = iota
	// JSONL is one event object per line.
	JSONL
)

// ParseFormat maps a --trace-format value to a Format.
func ParseFormat(s string) (Format, error) {
	switch s {
	case "", "json", "chrome":
		return Chrome, nil
	case "jsonl":
		return JSONL, nil
	}
	return 0, fmt.Errorf("invalid trace format '%s' (json or jsonl)", s)
}

// Process ids of the two groups of lanes.
const (
	pidNodes    = 1
	pidRequests = 2
)

type spanInfo struct {
	lane int
	req  int
}

// Writer is a blk.Tracer that writes a trace file. Its methods run under
// the scheduler token (Trace) or between commands (Close), never at the
// same time. After the first write error it drops every event; Close
// returns the error, and OnError, if set, is told once.
//
// Trace only copies the event into a batch: a goroutine of the Writer's
// own formats and writes full batches, in order, so that tracing costs
// the requests little more than a copy (BenchmarkTraceOverhead in
// cmd/gio). Everything below the batch fields belongs to that goroutine
// until Close has waited for it.
type Writer struct {
	batch  []blk.TraceEvent
	full   chan []blk.TraceEvent // batches to format
	free   chan []blk.TraceEvent // formatted batches, for reuse
	done   chan struct{}         // closed when the goroutine has ended
	failed atomic.Bool           // the goroutine hit a write error
	told   bool                  // OnError was called
	// OnError, if set, is called once with the first write error, under
	// the scheduler token (the session stops tracing and says so).
	OnError func(error)

	w      *bufio.Writer
	c      io.Closer
	format Format
	n      int // events written
	err    error

	lanes     map[*blk.Node]int
	laneCount map[string]int
	reqs      map[int]int // open requests: depth of open B slices
	spans     map[int]spanInfo
	flushes   map[string]int // open flush spans: id -> lane
	last      time.Duration
	buf       []byte
	flows     int // flow arrows written
}

// Create opens path for writing (truncating it) and returns a Writer.
func Create(path string, format Format) (*Writer, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	w := NewWriter(f, format)
	w.c = f
	return w, nil
}

// NewWriter returns a Writer on w (Close does not close w).
func NewWriter(w io.Writer, format Format) *Writer {
	t := &Writer{w: bufio.NewWriterSize(w, 64<<10), format: format,
		lanes: map[*blk.Node]int{}, laneCount: map[string]int{}, reqs: map[int]int{},
		spans: map[int]spanInfo{}, flushes: map[string]int{}}
	if format == Chrome {
		t.write([]byte("[\n"))
	}
	t.meta(pidNodes, 0, "process_name", "nodes")
	t.meta(pidRequests, 0, "process_name", "requests")
	t.full = make(chan []blk.TraceEvent, 4)
	t.free = make(chan []blk.TraceEvent, 4)
	t.done = make(chan struct{})
	t.batch = make([]blk.TraceEvent, 0, batchSize)
	go t.run()
	return t
}

// batchSize is how many events Trace collects before handing them over.
const batchSize = 512

// run formats batches until the channel closes.
func (t *Writer) run() {
	defer close(t.done)
	for b := range t.full {
		for i := range b {
			t.formatEvent(&b[i])
		}
		clear(b)
		select {
		case t.free <- b[:0]:
		default:
		}
	}
}

// Trace implements blk.Tracer: it queues a copy of e.
func (t *Writer) Trace(e blk.TraceEvent) {
	if t.failed.Load() {
		t.tell()
		return
	}
	t.batch = append(t.batch, e)
	if len(t.batch) == batchSize {
		t.flushBatch()
	}
}

// flushBatch hands the batch to the goroutine and takes an empty one.
func (t *Writer) flushBatch() {
	t.full <- t.batch
	select {
	case t.batch = <-t.free:
	default:
		t.batch = make([]blk.TraceEvent, 0, batchSize)
	}
}

// tell calls OnError once, on the caller's goroutine, after the
// formatting goroutine failed. t.err is safe to read once failed is set.
func (t *Writer) tell() {
	if t.told {
		return
	}
	t.told = true
	if t.OnError != nil {
		t.OnError(t.err)
	}
}

func (t *Writer) write(b []byte) {
	if t.err != nil {
		return
	}
	if _, err := t.w.Write(b); err != nil {
		t.fail(err)
	}
}

// fail records the first write error; the caller's side reports it (tell).
func (t *Writer) fail(err error) {
	if t.err != nil {
		return
	}
	t.err = err
	t.failed.Store(true)
}

// ev starts one event object: name, cat, ph, ts, pid, tid. The caller
// appends further fields and calls emit.
func (t *Writer) ev(name, cat, ph string, at time.Duration, pid, tid int) []byte {
	b := t.buf[:0]
	if t.n > 0 && t.format == Chrome {
		b = append(b, ",\n"...)
	}
	b = append(b, `{"name":`...)
	b = appendString(b, name)
	if cat != "" {
		b = append(b, `,"cat":`...)
		b = appendString(b, cat)
	}
	b = append(b, `,"ph":"`...)
	b = append(b, ph...)
	b = append(b, `","ts":`...)
	b = appendMicros(b, at)
	b = append(b, `,"pid":`...)
	b = strconv.AppendInt(b, int64(pid), 10)
	b = append(b, `,"tid":`...)
	b = strconv.AppendInt(b, int64(tid), 10)
	return b
}

// emit closes the event object and writes it.
func (t *Writer) emit(b []byte) {
	b = append(b, '}')
	if t.format == JSONL {
		b = append(b, '\n')
	}
	t.buf = b
	t.write(b)
	t.n++
}

func (t *Writer) meta(pid, tid int, what, name string) {
	b := t.ev(what, "", "M", 0, pid, tid)
	b = append(b, `,"args":{"name":`...)
	b = appendString(b, name)
	b = append(b, '}')
	t.emit(b)
}

// lane returns n's lane number, announcing a new lane with its name.
func (t *Writer) lane(n *blk.Node) int {
	if l, ok := t.lanes[n]; ok {
		return l
	}
	l := len(t.lanes) + 1
	t.lanes[n] = l
	name := "?"
	if n != nil {
		name = n.Name()
	}
	t.laneCount[name]++
	if k := t.laneCount[name]; k > 1 {
		name += "#" + strconv.Itoa(k)
	}
	t.meta(pidNodes, l, "thread_name", name)
	return l
}

// args appends `,"args":{` and the pairs of kv (key, value; a value is a
// string, int, int64 or a pre-rendered range) and `}`.
func appendArgs(b []byte, kv ...any) []byte {
	b = append(b, `,"args":{`...)
	for i := 0; i+1 < len(kv); i += 2 {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, kv[i].(string))
		b = append(b, ':')
		switch v := kv[i+1].(type) {
		case string:
			b = appendString(b, v)
		case int:
			b = strconv.AppendInt(b, int64(v), 10)
		case int64:
			b = strconv.AppendInt(b, v, 10)
		case bool:
			b = strconv.AppendBool(b, v)
		}
	}
	return append(b, '}')
}

// rng renders a byte range as QEMU's traces do: 0xOFF+0xBYTES.
func rng(off, bytes int64) string { return string(appendRange(nil, off, bytes)) }

func appendRange(b []byte, off, bytes int64) []byte {
	b = append(b, '0', 'x')
	b = strconv.AppendInt(b, off, 16)
	b = append(b, '+', '0', 'x')
	return strconv.AppendInt(b, bytes, 16)
}

// formatEvent writes e (the formatting goroutine).
func (t *Writer) formatEvent(e *blk.TraceEvent) {
	if t.err != nil {
		return
	}
	if e.At > t.last {
		t.last = e.At
	}
	// A request already in flight when the trace started gets its lane
	// when it first shows up, so that every event has its request.
	if e.Kind != blk.TraceSubmit {
		t.adopt(e.Req, e.At)
	}
	if e.Kind == blk.TraceWait {
		t.adopt(e.Target, e.At)
	}
	switch e.Kind {
	case blk.TraceSubmit:
		b := t.ev("thread_name", "", "M", 0, pidRequests, e.Req)
		b = append(b, `,"args":{"name":"#`...)
		b = strconv.AppendInt(b, int64(e.Req), 10)
		b = append(b, ' ')
		b = appendEscaped(b, e.Name)
		b = append(b, '"', '}')
		t.emit(b)
		b = t.ev(e.Name, "request", "B", e.At, pidRequests, e.Req)
		b = append(b, `,"args":{"req":`...)
		b = strconv.AppendInt(b, int64(e.Req), 10)
		t.emit(append(b, '}'))
		t.reqs[e.Req] = 1
	case blk.TraceComplete:
		t.closeReq(e.Req, e.At, e.Err, false)
	case blk.TraceYield:
		t.emit(t.ev(e.Why, "yield", "B", e.At, pidRequests, e.Req))
		t.reqs[e.Req]++
	case blk.TraceResume:
		if d := t.reqs[e.Req]; d < 2 {
			return
		}
		t.emit(t.ev("", "yield", "E", e.At, pidRequests, e.Req))
		t.reqs[e.Req]--
	case blk.TraceBegin:
		l := t.lane(e.Node)
		parent := e.Parent
		if _, ok := t.spans[parent]; !ok {
			parent = 0
		}
		t.spans[e.Span] = spanInfo{lane: l, req: e.Req}
		b := t.ev(e.Name, "req", "b", e.At, pidNodes, l)
		b = append(b, `,"id":`...)
		b = strconv.AppendInt(b, int64(e.Span), 10)
		b = append(b, `,"args":{"req":`...)
		b = strconv.AppendInt(b, int64(e.Req), 10)
		b = append(b, `,"span":`...)
		b = strconv.AppendInt(b, int64(e.Span), 10)
		b = append(b, `,"parent":`...)
		b = strconv.AppendInt(b, int64(parent), 10)
		b = append(b, `,"range":"`...)
		b = appendRange(b, e.Off, e.Bytes)
		t.emit(append(b, '"', '}'))
	case blk.TraceEnd:
		s, ok := t.spans[e.Span]
		if !ok {
			return
		}
		delete(t.spans, e.Span)
		t.endSpan(e.Span, s, e.At, false)
	case blk.TraceSerialise:
		t.instant(e, "serialising", "req", e.Req, "span", e.Span, "overlap", rng(e.Off, e.Bytes))
	case blk.TraceWait:
		t.instant(e, "wait", "req", e.Req, "span", e.Span, "waits_for", e.Target, "on_span", e.Parent, "overlap", rng(e.Off, e.Bytes))
		// A flow arrow from the waiting request to the one it waits
		// for, for Perfetto and chrome://tracing (the timeline page
		// draws its own from the instant above).
		t.flows++
		for _, f := range [...]struct {
			ph  string
			req int
		}{{"s", e.Req}, {"f", e.Target}} {
			b := t.ev("waits for", "wait", f.ph, e.At, pidRequests, f.req)
			b = append(b, `,"id":`...)
			b = strconv.AppendInt(b, int64(t.flows), 10)
			if f.ph == "f" {
				b = append(b, `,"bp":"e"`...)
			}
			t.emit(b)
		}
	case blk.TraceDebugEvent:
		t.instant(e, e.Name, "req", e.Req)
	case blk.TraceRule:
		t.instant(e, "rule", "req", e.Req, "event", e.Name, "rule", e.Why)
	case blk.TraceBreakSet:
		t.instant(e, "break", "event", e.Name, "tag", e.Why)
	case blk.TraceBreakHit:
		t.instant(e, "suspend", "req", e.Req, "event", e.Name, "tag", e.Why)
	case blk.TraceBreakResume:
		t.instant(e, "resume", "req", e.Req, "tag", e.Why)
	case blk.TraceFlushBegin:
		l := t.lane(e.Node)
		id := "f" + strconv.Itoa(e.Req) + "." + strconv.Itoa(l)
		t.flushes[id] = l
		b := t.ev("flush", "flush", "b", e.At, pidNodes, l)
		b = append(b, `,"id":`...)
		b = appendString(b, id)
		t.emit(appendArgs(b, "req", e.Req))
	case blk.TraceFlushEnd:
		l := t.lane(e.Node)
		id := "f" + strconv.Itoa(e.Req) + "." + strconv.Itoa(l)
		if _, ok := t.flushes[id]; !ok {
			return
		}
		delete(t.flushes, id)
		b := t.ev("flush", "flush", "e", e.At, pidNodes, l)
		b = append(b, `,"id":`...)
		b = appendString(b, id)
		if e.Err != nil {
			b = appendArgs(b, "error", errString(e.Err))
		}
		t.emit(b)
	case blk.TraceError:
		t.instant(e, "error", "req", e.Req, "where", e.Name, "error", errString(e.Err), "range", rng(e.Off, e.Bytes))
	}
}

// adopt opens a lane and a slice for request req, in flight before the
// trace started, unless it has one (or req is 0: no request).
func (t *Writer) adopt(req int, at time.Duration) {
	if _, ok := t.reqs[req]; ok || req == 0 {
		return
	}
	name := "#" + strconv.Itoa(req) + " (in flight when the trace started)"
	t.meta(pidRequests, req, "thread_name", name)
	b := t.ev(name, "request", "B", at, pidRequests, req)
	b = append(b, `,"args":{"req":`...)
	b = strconv.AppendInt(b, int64(req), 10)
	t.emit(append(b, '}'))
	t.reqs[req] = 1
}

// instant writes an instant event on e's node lane.
func (t *Writer) instant(e *blk.TraceEvent, name string, kv ...any) {
	l := t.lane(e.Node)
	b := t.ev(name, "mark", "i", e.At, pidNodes, l)
	b = append(b, `,"s":"t"`...)
	t.emit(appendArgs(b, kv...))
}

func (t *Writer) endSpan(span int, s spanInfo, at time.Duration, unfinished bool) {
	b := t.ev("", "req", "e", at, pidNodes, s.lane)
	b = append(b, `,"id":`...)
	b = strconv.AppendInt(b, int64(span), 10)
	if unfinished {
		b = appendArgs(b, "unfinished", true)
	}
	t.emit(b)
}

// closeReq ends request req's open slices (its yield, if unfinished, and
// the request).
func (t *Writer) closeReq(req int, at time.Duration, err error, unfinished bool) {
	for d := t.reqs[req]; d > 1; d-- {
		t.emit(t.ev("", "yield", "E", at, pidRequests, req))
	}
	delete(t.reqs, req)
	b := t.ev("", "request", "E", at, pidRequests, req)
	switch {
	case err != nil:
		b = appendArgs(b, "error", errString(err))
	case unfinished:
		b = appendArgs(b, "unfinished", true)
	}
	t.emit(b)
}

func errString(err error) string { return err.Error() }

// Close ends what is still open (requests abandoned at a breakpoint, at
// the last timestamp, marked unfinished), finishes the file and closes
// it. It returns the first error of the whole trace.
func (t *Writer) Close() error {
	if t.full == nil {
		return t.err // closed before
	}
	if len(t.batch) > 0 && !t.failed.Load() {
		t.full <- t.batch
	}
	t.batch = nil
	close(t.full)
	<-t.done
	t.full = nil
	if t.err == nil {
		spans := make([]int, 0, len(t.spans))
		for s := range t.spans {
			spans = append(spans, s)
		}
		sort.Ints(spans)
		for _, s := range spans {
			t.endSpan(s, t.spans[s], t.last, true)
		}
		ids := make([]string, 0, len(t.flushes))
		for id := range t.flushes {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			b := t.ev("flush", "flush", "e", t.last, pidNodes, t.flushes[id])
			b = append(b, `,"id":`...)
			b = appendString(b, id)
			t.emit(appendArgs(b, "unfinished", true))
		}
		reqs := make([]int, 0, len(t.reqs))
		for r := range t.reqs {
			reqs = append(reqs, r)
		}
		sort.Ints(reqs)
		for _, r := range reqs {
			t.closeReq(r, t.last, nil, true)
		}
		if t.format == Chrome {
			t.write([]byte("\n]\n"))
		}
		if err := t.w.Flush(); err != nil {
			t.fail(err)
		}
	}
	t.spans, t.reqs, t.flushes = nil, nil, nil
	if t.c != nil {
		if err := t.c.Close(); err != nil {
			t.fail(err)
		}
		t.c = nil
	}
	if t.err != nil {
		t.tell()
	}
	return t.err
}

// appendMicros renders d in microseconds with three decimals.
func appendMicros(b []byte, d time.Duration) []byte {
	ns := int64(d)
	if ns < 0 {
		b = append(b, '-')
		ns = -ns
	}
	b = strconv.AppendInt(b, ns/1000, 10)
	frac := ns % 1000
	b = append(b, '.', byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10))
	return b
}

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD,
// so the file stays valid JSON whatever a command line held.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	b = appendEscaped(b, s)
	return append(b, '"')
}

// appendEscaped appends s escaped for the inside of a JSON string.
func appendEscaped(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	// Most strings (operations, command lines) need no escaping: copy
	// the plain prefix in one go.
	plain := 0
	for plain < len(s) {
		if c := s[plain]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			break
		}
		plain++
	}
	b = append(b, s[:plain]...)
	for i := plain; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return b
}
