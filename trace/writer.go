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
//     request, its parent span (absent: none) and its range in args;
//     flushes are async spans of cat "flush". Serialisation, waits, debug
//     events, rules, breakpoints and errors are instant events on the
//     node's lane.
//   - process 2, "requests": one lane per request (tid = request number).
//     The request is a "B"/"E" slice from submission to completion, named
//     by its command line; every yield is a nested slice named by its
//     reason ("waits for #2 ...", "suspended at 'A'", "waits for I/O"):
//     a complete "X" slice (ts and dur) when nothing else was traced
//     between the yield and its resume (blk.TraceWaited), else "B"/"E".
//   - A request or a span whose life held nothing but one chain of
//     nested spans and perhaps a yield with nothing inside it (a plain
//     read or write) is a complete "X" slice too, with the same name,
//     category, id and args as its begin would have had, in its place:
//     see chain. A span's slice that continues a chain has no "req" or
//     "parent" arg when they are those of the slice before it (see
//     span). Read turns them back into begins and ends, with those
//     args. Most chains (plain reads and writes) are written from a
//     template of their slices (see plainChain).
//
// A trace holds what a reader needs once: end events ("E", "e") carry no
// name or category beyond what matches them to their begin, request lanes
// have no thread_name (the tid is the request number, the slice names
// the command), and a span's id is its number.
//
// Timestamps ("ts", microseconds with three decimals) come from the loop
// clock: in virtual time the file is the same bytes on every run.
package trace

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"
	"os"
	"slices"
	"sort"
	"strconv"
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
	lane int32
	// id is the span number as the begin event rendered it (idn
	// digits), then the end of an event object (idEnd bytes in all), for
	// its end event and its children's "parent"; idEnd is 0 if it did
	// not fit.
	id         [16]byte
	idn, idEnd uint8
}

// appendID appends the span number span of s.
func (s *spanInfo) appendID(b []byte, span int) []byte {
	if s.idEnd == 0 {
		return appendInt(b, span)
	}
	return append(b, s.id[:s.idn]...)
}

// put16 appends the first n bytes of p to b, which must have room for 16
// more (see put).
func put16(b []byte, p *[16]byte, n int) []byte {
	l := len(b)
	*(*[16]byte)(b[l : l+16]) = *p
	return b[:l+n]
}

// Writer is a blk.Tracer that writes a trace file. Its methods run under
// the scheduler token (Events) or between commands (Close, after the loop
// has stopped using it: Loop.SetTracer hands the last events over),
// never at the same time. After the first write error it drops every
// event; Close returns the error, and OnError, if set, is told once.
//
// The loop fills the events in batches the Writer lends it (no copy, no
// allocation, no call per event): the request path pays for little more
// than a few stores per event. When a batch is full, the Writer formats
// it on the spot, on the loop's goroutine, into a buffer (fixed-size
// pieces copied whole, cached timestamps, request numbers, span numbers
// and ranges, small tables instead of maps), folding chains (see chain:
// a plain request is three events instead of seven; the usual chains
// from a template, plainChain), and writes 64 KiB
// at a time (bench/trace-overhead.sh measures the whole; BenchmarkWriter
// here the formatting). Batches and buffers are reused: a trace makes no
// garbage per event.
type Writer struct {
	// batch holds the events the loop fills: the first carry of them
	// are held over from the previous batch (the start of what may be a
	// folded chain, see fold), then the batch lent to the loop.
	batch  []blk.TraceEvent
	carry  int
	closed bool
	failed bool // a write failed (err)
	told   bool // OnError was called
	// scratch is the batch lent after a failure (never read).
	scratch [8]blk.TraceEvent
	// OnError, if set, is called once with the first write error, under
	// the scheduler token (the session stops tracing and says so).
	OnError func(error)

	w      io.Writer
	c      io.Closer
	buf    []byte // formatted events not yet written
	format Format
	n      int   // events written
	err    error // the first error

	nodes     []*blk.Node       // lane i+1 is nodes[i]
	lanes     map[*blk.Node]int // every lane, once there are many
	laneCount map[string]int
	reqs      table[int] // open requests: depth of open B slices
	spans     table[spanInfo]
	flushes   map[string]int // open flush spans: id -> lane
	last      time.Duration
	flows     int // flow arrows written

	// Most events repeat the previous one's timestamp and request:
	// their renderings are kept.
	tsAt  time.Duration
	ts    piece
	durAt time.Duration // ... and the last duration of a yield
	dur   piece         // `,"dur":D`
	reqN  int
	// For request reqN: reqTid is `,"pid":2,"tid":N`, reqEnd the same
	// plus the end of the event object, reqArgs `,"args":{"req":N`.
	reqTid, reqEnd, reqArgs piece
	// laneTid[l] is `,"pid":1,"tid":l`, laneID[l] the same with `,"id":`
	// after it, rendered when lane l appears.
	laneTid [][]byte
	laneID  []piece
	// The starts of the frequent events, the separator from the previous
	// event included, and the end of an event object: see hot. The
	// heads of span begins and of yields with the name of the last one
	// are kept whole.
	hot                 hotHeads
	sliceE, reqE, end   piece
	reqB                piece
	spanHead, yieldHead piece
	spanName, yieldName string
	spanXHead, reqX     piece // ... and of folded spans and requests
	spanXName           string
	// fold is what the last chain written left (see ambiguous).
	fold foldState
	// yieldArg is the end of a request slice whose yield is in its
	// args, for the yield reason yieldArgWhy.
	yieldArg    piece
	yieldArgWhy string
	// The last span name and yield reason that needed no escaping: the
	// loop passes the same strings again and again.
	plainSpan, plainWhy string
	// ... the number of the last span begun ...
	spanD decimal
	// ... and the range of the previous span, with the end of its event.
	rngOff, rngBytes int64
	rng, rngTail     piece // rngTail: from the "+" on
	rngOK            bool  // rng and rngTail hold rngOff and rngBytes
	// open is a request known to have its lane (adopt's fast path).
	open int
	// shapes are the templates of plain chains (see plainShape), plain
	// the values of their holes.
	shapes  [maxShapes]plainShape
	nShapes int
	plain   plainValues
	plains  int // chains written from a template
	// hotName is hot.name in a word, for appendName.
	hotName  [16]byte
	hotNameN int
}

// batchSize is how many events the loop fills before handing them over,
// maxCarry how many a batch may hold over (fold), and bufSize how much
// formatted text is written at a time.
const (
	batchSize = 512
	maxCarry  = 2*maxFold + 1
	maxFold   = 8
	bufSize   = 64 << 10
)

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
	t := &Writer{w: w, format: format, laneCount: map[string]int{}, flushes: map[string]int{},
		buf: make([]byte, 0, bufSize+4<<10)}
	if format == Chrome {
		t.buf = append(t.buf, "[\n"...)
	}
	t.hot = hotHeadsOf[format]
	t.hotNameN = copy(t.hotName[:], t.hot.name)
	t.reqN = -1 // nothing rendered
	t.sliceE.setString(t.hot.sliceE)
	t.reqE.setString(t.hot.reqE)
	t.end.setString(t.hot.end)
	t.reqB.setString(hRequestB)
	t.reqX.setString(hRequestX)
	t.ts.setString("0.000")
	t.meta(pidNodes, 0, "process_name", "nodes")
	t.meta(pidRequests, 0, "process_name", "requests")
	t.batch = make([]blk.TraceEvent, maxCarry+batchSize)
	return t
}

// flush writes the formatted events.
func (t *Writer) flush() {
	if t.err != nil || len(t.buf) == 0 {
		return
	}
	if _, err := t.w.Write(t.buf); err != nil {
		t.err = err
		t.failed = true
	}
	t.buf = t.buf[:0]
}

// Events implements blk.Tracer: it formats the n events the loop filled
// and lends the loop the same batch again. The formatting runs on the
// loop's goroutine: handing batches to another goroutine cost more in
// the scheduler's wake-ups (futex calls, spinning threads) than the
// formatting it moved (bench/README.md). The last events, when they may
// begin a chain that folds (fold), are held over and formatted with the
// next batch. After a write error it lends a scratch batch that is
// never read.
func (t *Writer) Events(n int) []blk.TraceEvent {
	if n > 0 && !t.failed && !t.closed {
		t.formatBatch(t.batch[:t.carry+n], false)
	}
	if t.failed {
		t.tell()
	}
	if t.failed || t.closed {
		return t.scratch[:]
	}
	return t.batch[t.carry : t.carry+batchSize]
}

// formatBatch writes evs, but for a tail that may be the start of a chain
// that folds when more events come (unless final): that is moved to the
// front of the batch (t.carry).
func (t *Writer) formatBatch(evs []blk.TraceEvent, final bool) {
	i := 0
	for i < len(evs) {
		e := &evs[i]
		if k := e.Kind; k == blk.TraceSubmit || k == blk.TraceBegin {
			if k == blk.TraceSubmit && t.nShapes > 0 && !noPlain {
				if n := t.plainChain(evs, i); n > 0 {
					i += n
					goto next
				}
			}
			begins, n := chain(evs, i)
			if n < 0 && !final {
				break // held over
			}
			if n > 0 && t.foldChain(evs[i:i+n], begins) {
				i += n
				goto next
			}
		}
		t.formatEvent(e)
		i++
	next:
		if len(t.buf) >= bufSize {
			t.flush()
			if t.err != nil {
				t.carry = 0
				return
			}
		}
	}
	t.carry = copy(t.batch, evs[i:])
}

// A chain is what a request or a span leaves when nothing else happened
// in its life but a chain nested in it: its begin, the begins of the
// nested chain, perhaps a yield with nothing inside it (blk.TraceWaited),
// and the ends in the reverse order, all of one request, with no other
// event between. A plain write is one: submission, the span on raw, the
// span on file, the wait for the I/O, the two ends, completion. Each
// begin of a chain is written as one complete slice ("ph":"X", with its
// dur) where the begin would have been, and its end is not written; a
// yield that lasted as long as the request heading the chain is the
// request slice's "yield" arg (foldChain): three events instead of
// seven. Nothing is lost: the ends came, in the reverse order of the
// begins, right after the innermost event (trace.Read puts them back,
// and the yield), and the request's span numbers and parents are written
// as before. At most maxFold begins fold.

// chain returns the number of begins of the chain that starts at evs[i]
// and its length in events: 0 if none starts there, -1 if evs ends
// before that can be told.
func chain(evs []blk.TraceEvent, i int) (begins, n int) {
	req := evs[i].Req
	j := i
	for j < len(evs) && j-i < maxFold {
		if k := evs[j].Kind; (k != blk.TraceSubmit && k != blk.TraceBegin) || evs[j].Req != req {
			break
		}
		j++
	}
	begins = j - i
	if j < len(evs) && evs[j].Kind == blk.TraceWaited && evs[j].Req == req {
		j++
	}
	for d := begins - 1; d >= 0; d-- {
		if j == len(evs) {
			return begins, -1
		}
		b, e := &evs[i+d], &evs[j]
		switch {
		case b.Kind == blk.TraceSubmit && e.Kind == blk.TraceComplete && e.Req == req && e.Err == nil:
		case b.Kind == blk.TraceBegin && e.Kind == blk.TraceEnd && e.Span == b.Span && e.Req == req:
		default:
			return begins, 0
		}
		j++
	}
	return begins, j - i
}

// foldChain writes the chain c, of the given number of begins, folded;
// it reports false, writing nothing, when a reader could take the chain
// for a part of the one just written (see ambiguous).
func (t *Writer) foldChain(c []blk.TraceEvent, begins int) bool {
	e := &c[0]
	end := c[len(c)-1].At
	if t.ambiguous(e.Req, e.At, c[len(c)-begins].At) {
		return false
	}
	if e.At > t.last {
		t.last = e.At
	}
	if e.Kind != blk.TraceSubmit && e.Req != t.open {
		t.adopt(e.Req, e.At)
	}
	t.open = e.Req
	// A yield that lasted as long as its request (a plain read or write:
	// submitted, waited for the driver, completed) is the request
	// slice's "yield" arg: the slice it would be is the request's own.
	var y *blk.TraceEvent
	if begins < len(c)-begins {
		y = &c[begins]
	}
	inArgs := y != nil && e.Kind == blk.TraceSubmit && y.At == e.At && y.End == end
	for d := 0; d < begins; d++ {
		b := &c[d]
		end := c[len(c)-1-d].At
		if b.Kind == blk.TraceSubmit {
			why := ""
			if inArgs {
				why = y.Why
			}
			t.requestX(b, end, why)
		} else {
			// A span that continues the chain, and whose parent is
			// the span before it in the chain (none after the
			// request), has its request and parent from there.
			parent := 0
			if d > 0 && c[d-1].Kind == blk.TraceBegin {
				parent = c[d-1].Span
			}
			t.span(b, true, end, d > 0 && b.Parent == parent && b.Req == e.Req)
		}
	}
	in := &c[begins-1]
	t.fold = foldState{n: t.n, req: e.Req, at: in.At, end: c[len(c)-begins].At}
	if y != nil && !inArgs { // the yield, inside the chain
		t.fold.n = 0
		t.formatEvent(y)
		t.fold.n, t.fold.yield = t.n, true
	}
	if end > t.last {
		t.last = end
	}
	if e.Kind == blk.TraceSubmit {
		t.open = 0
	}
	if inArgs {
		t.keepShape(c, begins)
	}
	return true
}

// noPlain turns plainChain off, for tests that compare its bytes with
// foldChain's.
var noPlain = false

// foldState is what the last chain written left for a reader to see: a
// complete slice of request req from at to end, the innermost of the
// chain, the trace's n-th event; yield says it is a yield, which holds
// nothing.
type foldState struct {
	n, req  int
	at, end time.Duration
	yield   bool
}

// ambiguous reports whether a complete slice of request req from at to
// end, written next, would look to a reader like a part of the chain
// just written: it comes right after its innermost slice, which is no
// yield, and lies inside it (it can only do that by lasting no time at
// the very end of it). Then it must be written unfolded.
func (t *Writer) ambiguous(req int, at, end time.Duration) bool {
	f := &t.fold
	return f.n == t.n && f.n > 0 && !f.yield && f.req == req && at >= f.at && end <= f.end
}

// requestX writes request e (a TraceSubmit) as a complete slice that
// ends at end, with the reason of the yield it holds in its args, if
// why is not "".
func (t *Writer) requestX(e *blk.TraceEvent, end time.Duration, why string) {
	b := appendEscaped(append(room(t.buf), t.hot.name...), e.Name)
	b = put(put(put(room(b), &t.reqX), t.tsFor(e.At)), t.durFor(end-e.At))
	t.renderReq(e.Req)
	if why == "" {
		t.buf = put(b, &t.reqEnd)
		t.n++
		return
	}
	b = put(b, &t.reqTid)
	if why != t.yieldArgWhy || t.yieldArg.n == 0 {
		a := append(appendEscaped(append(b, `,"args":{"yield":"`...), why), `"}`...)
		a = append(a, t.hot.end...)
		if len(a)-len(b) > pieceSize {
			t.buf = a
			t.n++
			return
		}
		t.yieldArg.set(a[len(b):])
		t.yieldArgWhy = why
	}
	t.buf = put(b, &t.yieldArg)
	t.n++
}

// durFor returns the piece `,"dur":D` of duration d, for put.
func (t *Writer) durFor(d time.Duration) *piece {
	if d != t.durAt || t.dur.n == 0 {
		t.durAt = d
		t.dur.set(appendMicros(append(t.dur.b[:0], `,"dur":`...), d))
	}
	return &t.dur
}

// tell calls OnError once, after a write failed.
func (t *Writer) tell() {
	if t.told {
		return
	}
	t.told = true
	if t.OnError != nil {
		t.OnError(t.err)
	}
}

// The fixed middles of event objects: the name's closing quote,
// category and phase, up to the timestamp's value.
const (
	hMeta       = `","ph":"M","ts":`
	hRequestB   = `","cat":"request","ph":"B","ts":`
	hYieldB     = `","cat":"yield","ph":"B","ts":`
	hReqB       = `","cat":"req","ph":"b","ts":`
	hFlushB     = `","cat":"flush","ph":"b","ts":`
	hMark       = `","cat":"mark","ph":"i","ts":`
	hWaitS      = `","cat":"wait","ph":"s","ts":`
	hWaitF      = `","cat":"wait","ph":"f","ts":`
	pidNodesTid = `,"pid":1,"tid":`
	pidReqsTid  = `,"pid":2,"tid":`
)

// The starts of end events, which carry no name: "E" ends the innermost
// slice of its lane, "e" the async span of its category and id.
const (
	hSliceE = `{"ph":"E","ts":`
	hReqE   = `{"cat":"req","ph":"e","ts":`
	hFlushE = `{"cat":"flush","ph":"e","ts":`
)

// hotHeads are the starts of the events every request writes, for the
// events after the first (a Chrome trace separates them with ",\n"), and
// the end of an event object (a JSON line ends with "\n").
type hotHeads struct {
	name, sliceE, reqE, end string
}

var hotHeadsOf = [...]hotHeads{
	Chrome: {",\n{\"name\":\"", ",\n" + hSliceE, ",\n" + hReqE, "}"},
	JSONL:  {`{"name":"`, hSliceE, hReqE, "}\n"},
}

// The middles of a yield, a request and a span written as one complete
// slice.
const (
	hYieldX   = `","cat":"yield","ph":"X","ts":`
	hRequestX = `","cat":"request","ph":"X","ts":`
	hReqX     = `","cat":"req","ph":"X","ts":`
)

// appendTs appends timestamp at, rendered once for the events that share
// it.
func (t *Writer) appendTs(b []byte, at time.Duration) []byte {
	if at != t.tsAt {
		t.renderTs(at)
	}
	return append(b, t.ts.bytes()...)
}

// tsFor returns the piece of timestamp at, for put.
func (t *Writer) tsFor(at time.Duration) *piece {
	if at != t.tsAt {
		t.renderTs(at)
	}
	return &t.ts
}

func (t *Writer) renderTs(at time.Duration) {
	t.tsAt = at
	t.ts.set(appendMicros(t.ts.b[:0], at))
}

// piece is a rendered fragment of an event, at most pieceSize bytes (a
// timestamp, a request's tid, a constant head), in a fixed array: put
// appends it with a few wide moves of the whole array, cheaper than
// append's call to memmove for each of the thirty-odd pieces of a traced
// write.
type piece struct {
	b [pieceSize]byte
	n int
}

const pieceSize = 64

// set makes p hold s, which may be p's own array (p.b[:0] appended to);
// a longer s is cut (callers check what may not fit).
func (p *piece) set(s []byte) { p.n = copy(p.b[:], s) }

func (p *piece) setString(s string) { p.n = copy(p.b[:], s) }

func (p *piece) bytes() []byte { return p.b[:p.n] }

// put appends p to b, which must have room for pieceSize more bytes: it
// writes the whole array and keeps p.n bytes of it.
func put(b []byte, p *piece) []byte {
	l := len(b)
	*(*[pieceSize]byte)(b[l : l+pieceSize]) = p.b
	return b[:l+p.n]
}

// room makes sure b has room for the pieces of an event (at most
// roomSize bytes, written a pieceSize array at a time).
func room(b []byte) []byte {
	if cap(b)-len(b) < roomSize {
		b = slices.Grow(b, roomSize)
	}
	return b
}

const roomSize = 1024

// appendName appends name, escaped, for a name that is often *last: when
// name is that string again (usually the very same constant, which
// compares at once), it needs no escaping scan.
func appendName(b []byte, name string, last *string) []byte {
	if name == *last {
		return append(b, name...)
	}
	n := len(b)
	b = appendEscaped(b, name)
	if len(b)-n == len(name) {
		*last = name
	}
	return b
}

// ev starts one event object in the buffer: name, then head (category
// and phase, one of the h constants), ts, pid and tid. The caller
// appends further fields and calls emit.
func (t *Writer) ev(name, head string, at time.Duration, pid, tid int) []byte {
	b := t.open1()
	b = appendEscaped(b, name)
	return t.evTail(b, head, at, pid, tid)
}

// open1 starts an event object in the buffer, up to the name's opening
// quote.
func (t *Writer) open1() []byte {
	if t.n > 0 && t.format == Chrome {
		return append(t.buf, ",\n{\"name\":\""...)
	}
	return append(t.buf, `{"name":"`...)
}

// evEnd starts a nameless end event (head is one of hSliceE, hReqE,
// hFlushE) with its ts, pid and tid.
func (t *Writer) evEnd(head string, at time.Duration, pid, tid int) []byte {
	b := t.buf
	if t.n > 0 && t.format == Chrome {
		b = append(b, ',', '\n')
	}
	return t.evTail(b, head, at, pid, tid)
}

// evTail appends head, ts, pid and tid.
func (t *Writer) evTail(b []byte, head string, at time.Duration, pid, tid int) []byte {
	b = append(b, head...)
	b = t.appendTs(b, at)
	if pid == pidNodes {
		if tid > 0 && tid < len(t.laneTid) {
			return append(b, t.laneTid[tid]...)
		}
		b = append(b, pidNodesTid...)
		return appendInt(b, tid)
	}
	t.renderReq(tid)
	return append(b, t.reqTid.bytes()...)
}

// renderReq renders the pieces of request number req, once per request.
// Requests come in order: the next one's pieces differ in a digit or
// two, changed in place.
func (t *Writer) renderReq(req int) {
	if req != t.reqN {
		t.newReq(req)
	}
}

// newReq is renderReq for another request than the last one.
func (t *Writer) newReq(req int) {
	if req == t.reqN+1 && req > 1 && t.reqTid.n > 0 {
		e := len(t.hot.end)
		if stepDecimal(t.reqTid.b[:], t.reqTid.n) && stepDecimal(t.reqArgs.b[:], t.reqArgs.n) &&
			stepDecimal(t.reqEnd.b[:], t.reqEnd.n-e) {
			t.reqN = req
			return
		}
	}
	t.reqN = req
	t.reqTid.set(appendInt(append(t.reqTid.b[:0], pidReqsTid...), req))
	id := t.reqTid.b[len(pidReqsTid):t.reqTid.n]
	t.reqEnd.set(append(append(t.reqEnd.b[:0], t.reqTid.bytes()...), t.hot.end...))
	t.reqArgs.set(append(append(t.reqArgs.b[:0], `,"args":{"req":`...), id...))
}

// stepDecimal adds one to the positive decimal number that ends at
// b[end], in place; it reports false, changing nothing, when the number
// would grow a digit.
func stepDecimal(b []byte, end int) bool {
	if c := b[end-1]; c >= '0' && c < '9' { // nine times in ten
		b[end-1] = c + 1
		return true
	}
	i := end - 1
	for i >= 0 && b[i] == '9' {
		i--
	}
	if i < 0 || b[i] < '0' || b[i] > '8' {
		return false
	}
	b[i]++
	for i++; i < end; i++ {
		b[i] = '0'
	}
	return true
}

// decimal is a span number and its rendering, stepped by one in place
// (stepDecimal) when spans come in order.
type decimal struct {
	v int
	p piece
}

func (d *decimal) set(v int) {
	// The same number, or one a few more than the last (the spans of
	// the next plain chain) that differs in its last digit alone.
	if l := uint(d.p.n - 1); uint(v-d.v) < 10 && l < pieceSize && d.v > 0 {
		if c := d.p.b[l] + byte(v-d.v); c <= '9' {
			d.p.b[l], d.v = c, v
			return
		}
	}
	d.setCarry(v)
}

// setCarry is set for any other number.
func (d *decimal) setCarry(v int) {
	if v == d.v && d.p.n > 0 {
		return
	}
	if dv := v - d.v; dv > 0 && dv < 10 && d.p.n > 0 && d.v > 0 {
		l := (d.p.n - 1) & (pieceSize - 1)
		c := d.p.b[l] + byte(dv)
		if l > 0 && c > '9' && stepDecimal(d.p.b[:], l) { // a carry
			d.p.b[l], d.v = c-10, v
			return
		}
	}
	if v == d.v+1 && v > 1 && d.p.n > 0 && stepDecimal(d.p.b[:], d.p.n) {
		d.v = v
		return
	}
	d.v = v
	d.p.set(appendInt(d.p.b[:0], v))
}

// head appends the start of an event named name (often *last, see
// appendName) up to its timestamp, mid being its middle (an h
// constant), and keeps it in *p, with the name in *pname, for the next
// event of that name.
func (t *Writer) head(b []byte, name string, last *string, mid string, p *piece, pname *string) []byte {
	n := len(b)
	b = append(appendName(append(b, t.hot.name...), name, last), mid...)
	if name == *last && len(b)-n <= pieceSize {
		p.set(b[n:])
		*pname = name
	}
	return room(b)
}

// evPlain is ev for a name that is often *last (appendName).
func (t *Writer) evPlain(name string, last *string, head string, at time.Duration, pid, tid int) []byte {
	return t.evTail(appendName(t.open1(), name, last), head, at, pid, tid)
}

// appendInt appends v in decimal.
func appendInt(b []byte, v int) []byte {
	if v < 0 {
		return strconv.AppendInt(b, int64(v), 10)
	}
	return appendUint(b, uint64(v))
}

// pow10[i] is 10 to the i.
var pow10 = [...]uint64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19}

// digits2 holds "00" to "99".
const digits2 = "00010203040506070809101112131415161718192021222324252627282930313233343536373839" +
	"40414243444546474849505152535455565758596061626364656667686970717273747576777879" +
	"8081828384858687888990919293949596979899"

// appendUint appends v in decimal, two digits a step: strconv's
// AppendUint, without its calls, for the many numbers of a trace.
func appendUint(b []byte, v uint64) []byte {
	if v < 10 {
		return append(b, byte('0'+v))
	}
	// Count the digits, make room, and fill it from the end: no
	// scratch array to copy. The bit length gives the digit count or
	// one more (log10(2) is about 1233/4096).
	n := (bits.Len64(v) * 1233) >> 12
	if v >= pow10[n] {
		n++
	}
	if cap(b)-len(b) < n {
		b = append(b, make([]byte, n)...)[:len(b)]
	}
	d := b[len(b) : len(b)+n]
	i := n
	for v >= 100 {
		q := v / 100
		r := (v - q*100) * 2
		i -= 2
		d[i], d[i+1] = digits2[r], digits2[r+1]
		v = q
	}
	if v >= 10 {
		d[0], d[1] = digits2[v*2], digits2[v*2+1]
	} else {
		d[0] = byte('0' + v)
	}
	return b[:len(b)+n]
}

// appendHex appends v in lower-case hex. A v of up to eight digits, with
// room in b, is rendered in one word: its nibbles spread to bytes, made
// digits all at once, the leading zeros shifted out.
func appendHex(b []byte, v uint64) []byte {
	n := (bits.Len64(v|1) + 3) / 4
	if l := len(b); v < 1<<32 && cap(b)-l >= 8 {
		x := v
		x = (x | x<<16) & 0x0000ffff0000ffff
		x = (x | x<<8) & 0x00ff00ff00ff00ff
		x = (x | x<<4) & 0x0f0f0f0f0f0f0f0f // nibble i in byte i
		x = bits.ReverseBytes64(x)          // the first digit first
		letters := (x + 0x0606060606060606) >> 4 & 0x0101010101010101
		x += 0x3030303030303030 + letters*('a'-'0'-10)
		binary.LittleEndian.PutUint64(b[l:l+8], x>>(8*(8-n)))
		return b[:l+n]
	}
	if cap(b)-len(b) < n {
		b = append(b, make([]byte, n)...)[:len(b)]
	}
	d := b[len(b) : len(b)+n]
	i := n
	for ; i >= 2; i -= 2 {
		x := v & 0xff * 2
		d[i-2], d[i-1] = hex2[x], hex2[x+1]
		v >>= 8
	}
	if i == 1 {
		d[0] = hex2[v*2+1]
	}
	return b[:len(b)+n]
}

// hex2 holds "00" to "ff".
var hex2 = func() string {
	const hex = "0123456789abcdef"
	var b [512]byte
	for i := range 256 {
		b[2*i], b[2*i+1] = hex[i>>4], hex[i&0xf]
	}
	return string(b[:])
}()

// emit closes the event object started by ev.
func (t *Writer) emit(b []byte) {
	b = append(b, '}')
	if t.format == JSONL {
		b = append(b, '\n')
	}
	t.buf = b
	t.n++
}

func (t *Writer) meta(pid, tid int, what, name string) {
	b := t.ev(what, hMeta, 0, pid, tid)
	b = append(b, `,"args":{"name":`...)
	b = appendString(b, name)
	b = append(b, '}')
	t.emit(b)
}

// lane returns n's lane number, announcing a new lane with its name.
// Nodes are few: a search of the first ones finds them, a map the rest.
func (t *Writer) lane(n *blk.Node) int {
	if t.lanes == nil {
		for i, m := range t.nodes {
			if m == n {
				return i + 1
			}
		}
	} else if l, ok := t.lanes[n]; ok {
		return l
	}
	t.nodes = append(t.nodes, n)
	l := len(t.nodes)
	if t.lanes != nil || l > 16 {
		if t.lanes == nil {
			t.lanes = make(map[*blk.Node]int, 2*l)
			for i, m := range t.nodes {
				t.lanes[m] = i + 1
			}
		}
		t.lanes[n] = l
	}
	name := "?"
	if n != nil {
		name = n.Name()
	}
	for len(t.laneTid) <= l {
		t.laneTid = append(t.laneTid, nil)
		t.laneID = append(t.laneID, piece{})
	}
	t.laneTid[l] = appendInt(append([]byte(nil), pidNodesTid...), l)
	t.laneID[l].set(append(append([]byte(nil), t.laneTid[l]...), `,"id":`...))
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
	if off < 0 || bytes < 0 {
		b = append(b, '0', 'x')
		b = strconv.AppendInt(b, off, 16)
		b = append(b, '+', '0', 'x')
		return strconv.AppendInt(b, bytes, 16)
	}
	b = append(b, '0', 'x')
	b = appendHex(b, uint64(off))
	b = append(b, '+', '0', 'x')
	return appendHex(b, uint64(bytes))
}

// renderRange renders the range piece of span events: `,"range":"`,
// the range, the end of args and of the event. Most requests have the
// size of the last one: what follows the offset is kept.
func (t *Writer) renderRange(off, bytes int64) {
	if off < 0 || bytes < 0 || bytes != t.rngBytes || !t.rngOK {
		r := appendRange(append(t.rng.b[:0], `,"range":"`...), off, bytes)
		t.rng.set(append(append(r, `"}`...), t.hot.end...))
		t.rngOff, t.rngBytes, t.rngOK = off, bytes, off >= 0 && bytes >= 0
		if t.rngOK {
			t.rngTail.set(append(appendHex(append(t.rngTail.b[:0], '+', '0', 'x'), uint64(bytes)), `"}`+t.hot.end...))
		}
		return
	}
	t.rngOff = off
	r := appendHex(t.rng.b[:len(`,"range":"0x`)], uint64(off))
	t.rng.set(append(r, t.rngTail.bytes()...))
}

// formatEvent writes e. The events every request writes (submission,
// completion, yields, spans) take the short paths: constant heads that
// include the separator, and the pieces of the current request, lane,
// timestamp and range rendered once.
func (t *Writer) formatEvent(e *blk.TraceEvent) {
	if e.At > t.last {
		t.last = e.At
	}
	// A request already in flight when the trace started gets its lane
	// when it first shows up, so that every event has its request.
	if e.Req != t.open && e.Kind != blk.TraceSubmit {
		t.adopt(e.Req, e.At)
	}
	if e.Kind == blk.TraceWait {
		t.adopt(e.Target, e.At)
	}
	switch e.Kind {
	case blk.TraceSubmit:
		// The request's lane is its tid; its slice's name is its
		// command line (no thread_name: it would repeat both).
		b := appendEscaped(append(room(t.buf), t.hot.name...), e.Name)
		b = put(put(room(b), &t.reqB), t.tsFor(e.At))
		t.renderReq(e.Req)
		t.buf = put(b, &t.reqEnd)
		t.n++
		t.reqs.set(e.Req, 1)
		t.open = e.Req
	case blk.TraceComplete:
		t.closeReq(e.Req, e.At, e.Err, false)
	case blk.TraceYield:
		t.emit(t.evPlain(e.Why, &t.plainWhy, hYieldB, e.At, pidRequests, e.Req))
		d, _ := t.reqs.get(e.Req)
		t.reqs.set(e.Req, d+1)
	case blk.TraceWaited:
		// A yield with nothing inside it: one complete slice.
		if e.End > t.last {
			t.last = e.End
		}
		if t.ambiguous(e.Req, e.At, e.End) {
			y := *e
			y.Kind = blk.TraceYield
			t.formatEvent(&y)
			y.Kind, y.At = blk.TraceResume, e.End
			t.formatEvent(&y)
			return
		}
		b := room(t.buf)
		if e.Why == t.yieldName && t.yieldHead.n > 0 {
			b = put(b, &t.yieldHead)
		} else {
			b = t.head(b, e.Why, &t.plainWhy, hYieldX, &t.yieldHead, &t.yieldName)
		}
		b = put(put(b, t.tsFor(e.At)), t.durFor(e.End-e.At))
		t.renderReq(e.Req)
		t.buf = put(b, &t.reqEnd)
		t.n++
	case blk.TraceResume:
		d, _ := t.reqs.get(e.Req)
		if d < 2 {
			return
		}
		t.renderReq(e.Req)
		t.buf = put(put(put(room(t.buf), &t.sliceE), t.tsFor(e.At)), &t.reqEnd)
		t.n++
		t.reqs.set(e.Req, d-1)
	case blk.TraceBegin:
		t.span(e, false, 0, false)
	case blk.TraceEnd:
		s, ok := t.spans.get(e.Span)
		if !ok {
			return
		}
		t.spans.del(e.Span)
		if s.idEnd == 0 {
			t.endSpan(e.Span, s, e.At, false)
			return
		}
		b := put(put(put(room(t.buf), &t.reqE), t.tsFor(e.At)), &t.laneID[s.lane])
		t.buf = put16(b, &s.id, int(s.idEnd))
		t.n++
	case blk.TraceSerialise:
		t.instant(e, "serialising", "req", e.Req, "span", e.Span, "overlap", rng(e.Off, e.Bytes))
	case blk.TraceWait:
		t.instant(e, "wait", "req", e.Req, "span", e.Span, "waits_for", e.Target, "on_span", e.Parent, "overlap", rng(e.Off, e.Bytes))
		// A flow arrow from the waiting request to the one it waits
		// for, for Perfetto and chrome://tracing (the timeline page
		// draws its own from the instant above).
		t.flows++
		for _, f := range [...]struct {
			head string
			req  int
		}{{hWaitS, e.Req}, {hWaitF, e.Target}} {
			b := t.ev("waits for", f.head, e.At, pidRequests, f.req)
			b = append(b, `,"id":`...)
			b = appendInt(b, t.flows)
			if f.head == hWaitF {
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
		b := t.ev("flush", hFlushB, e.At, pidNodes, l)
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
		b := t.evEnd(hFlushE, e.At, pidNodes, l)
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

// span writes the begin of span e (a TraceBegin): an async begin, or,
// folded (see chain), a complete slice that ends at end; one that
// continues a chain (derived) has no "req" or "parent" arg (Read gives
// them back from the slice before it).
func (t *Writer) span(e *blk.TraceEvent, folded bool, end time.Duration, derived bool) {
	l := t.lane(e.Node)
	// The parent: most often the span begun last (spanD), else an
	// open one.
	var parent piece
	var ps spanInfo
	ok := false
	if e.Parent != 0 {
		if e.Parent == t.spanD.v && t.spanD.p.n > 0 {
			parent.set(append(append(parent.b[:0], `,"parent":`...), t.spanD.p.bytes()...))
		} else {
			ps, ok = t.spans.get(e.Parent)
		}
	}
	b := room(t.buf)
	switch {
	case folded && e.Name == t.spanXName && t.spanXHead.n > 0:
		b = put(b, &t.spanXHead)
	case folded:
		b = t.head(b, e.Name, &t.plainSpan, hReqX, &t.spanXHead, &t.spanXName)
	case e.Name == t.spanName && t.spanHead.n > 0:
		b = put(b, &t.spanHead)
	default:
		b = t.head(b, e.Name, &t.plainSpan, hReqB, &t.spanHead, &t.spanName)
	}
	b = put(b, t.tsFor(e.At))
	if folded {
		b = put(b, t.durFor(end-e.At))
	}
	b = put(b, &t.laneID[l])
	t.spanD.set(e.Span)
	b = put(b, &t.spanD.p)
	if !folded {
		si := spanInfo{lane: int32(l)}
		if n := t.spanD.p.n; n+len(t.hot.end) <= len(si.id) {
			copy(si.id[:], t.spanD.p.b[:n])
			si.idn, si.idEnd = uint8(n), uint8(n+copy(si.id[n:], t.hot.end))
		}
		t.spans.set(e.Span, si)
	}
	// A span's parent usually has the same range: its rendering,
	// with the end of the event, is kept.
	if e.Off != t.rngOff || e.Bytes != t.rngBytes || !t.rngOK {
		t.renderRange(e.Off, e.Bytes)
	}
	if derived {
		b = append(b, `,"args":{`...)
		t.buf = append(b, t.rng.b[1:t.rng.n]...) // the range without its comma
		t.n++
		return
	}
	t.renderReq(e.Req)
	b = put(b, &t.reqArgs)
	if parent.n > 0 {
		b = put(b, &parent)
	} else if ok {
		b = append(b, `,"parent":`...)
		b = ps.appendID(b, e.Parent)
	}
	t.buf = put(b, &t.rng)
	t.n++
}

// adopt opens a lane and a slice for request req, in flight before the
// trace started, unless it has one (or req is 0: no request).
func (t *Writer) adopt(req int, at time.Duration) {
	if req == 0 || req == t.open {
		return
	}
	if _, ok := t.reqs.get(req); ok {
		t.open = req
		return
	}
	t.emit(t.ev("(in flight when the trace started)", hRequestB, at, pidRequests, req))
	t.reqs.set(req, 1)
}

// instant writes an instant event on e's node lane.
func (t *Writer) instant(e *blk.TraceEvent, name string, kv ...any) {
	l := t.lane(e.Node)
	b := t.ev(name, hMark, e.At, pidNodes, l)
	b = append(b, `,"s":"t"`...)
	t.emit(appendArgs(b, kv...))
}

func (t *Writer) endSpan(span int, s spanInfo, at time.Duration, unfinished bool) {
	b := put(put(put(room(t.buf), &t.reqE), t.tsFor(at)), &t.laneID[s.lane])
	b = s.appendID(b, span)
	if unfinished {
		b = appendArgs(b, "unfinished", true)
	}
	t.buf = append(b, t.hot.end...)
	t.n++
}

// closeReq ends request req's open slices (its yield, if unfinished, and
// the request).
func (t *Writer) closeReq(req int, at time.Duration, err error, unfinished bool) {
	d, _ := t.reqs.get(req)
	t.reqs.del(req)
	if t.open == req {
		t.open = 0
	}
	t.renderReq(req)
	b := t.buf
	for ; d > 1; d-- {
		b = put(put(put(room(b), &t.sliceE), t.tsFor(at)), &t.reqEnd)
		t.n++
	}
	b = put(put(room(b), &t.sliceE), t.tsFor(at))
	if err == nil && !unfinished {
		t.buf = put(b, &t.reqEnd)
		t.n++
		return
	}
	b = append(b, t.reqTid.bytes()...)
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
	if t.closed {
		return t.err // closed before
	}
	t.closed = true
	if t.err == nil && t.carry > 0 {
		t.formatBatch(t.batch[:t.carry], true)
	}
	t.batch = nil
	if t.err == nil {
		for _, s := range t.spans.ids() {
			si, _ := t.spans.get(s)
			t.endSpan(s, si, t.last, true)
		}
		ids := make([]string, 0, len(t.flushes))
		for id := range t.flushes {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			b := t.evEnd(hFlushE, t.last, pidNodes, t.flushes[id])
			b = append(b, `,"id":`...)
			b = appendString(b, id)
			t.emit(appendArgs(b, "unfinished", true))
		}
		for _, r := range t.reqs.ids() {
			t.closeReq(r, t.last, nil, true)
		}
		if t.format == Chrome {
			t.buf = append(t.buf, "\n]\n"...)
		}
		t.flush()
	}
	t.buf = nil
	t.spans, t.reqs, t.flushes = table[spanInfo]{}, table[int]{}, nil
	if t.c != nil {
		if err := t.c.Close(); err != nil && t.err == nil {
			t.err = err
		}
		t.c = nil
	}
	if t.err != nil {
		t.tell()
	}
	return t.err
}

// table maps the numbers of open requests or spans to their state. Few
// are open at a time and they are numbered in order, so a slot picked by
// the low bits of the number serves almost every lookup without hashing
// or searching; a number whose slot is taken goes to a map.
type table[V any] struct {
	slots [tableSlots]tableSlot[V]
	more  map[int]V
}

type tableSlot[V any] struct {
	key  int
	used bool
	val  V
}

// tableSlots is how many slots a table has (a power of two).
const tableSlots = 64

func (t *table[V]) get(k int) (V, bool) {
	if s := &t.slots[k&(tableSlots-1)]; s.used && s.key == k {
		return s.val, true
	}
	v, ok := t.more[k]
	return v, ok
}

func (t *table[V]) set(k int, v V) {
	s := &t.slots[k&(tableSlots-1)]
	switch {
	case s.used && s.key == k:
		s.val = v
	case !s.used && (t.more == nil || !t.hasMore(k)):
		s.key, s.used, s.val = k, true, v
	default:
		if t.more == nil {
			t.more = map[int]V{}
		}
		t.more[k] = v
	}
}

func (t *table[V]) del(k int) {
	if s := &t.slots[k&(tableSlots-1)]; s.used && s.key == k {
		var zero V
		s.used, s.val = false, zero
		return
	}
	delete(t.more, k)
}

func (t *table[V]) hasMore(k int) bool {
	_, ok := t.more[k]
	return ok
}

// ids returns the keys in increasing order.
func (t *table[V]) ids() []int {
	var ids []int
	for i := range t.slots {
		if t.slots[i].used {
			ids = append(ids, t.slots[i].key)
		}
	}
	for k := range t.more {
		ids = append(ids, k)
	}
	sort.Ints(ids)
	return ids
}

// appendMicros renders d in microseconds with three decimals. A time
// under 100 s (eight digits before the point), with room in b, is
// rendered in words: its digit pairs packed into one, less the leading
// zeros, and the point and decimals into another.
func appendMicros(b []byte, d time.Duration) []byte {
	ns := uint64(d)
	l := len(b)
	if ns >= 1e11 || cap(b)-l < 16 { // or negative
		return appendMicrosLong(b, d)
	}
	us := ns / 1000
	f := ns - us*1000
	hi := us / 10000
	lo := us - hi*10000
	h1, l1 := hi/100, lo/100
	w := pair(h1) | pair(hi-h1*100)<<16 | pair(l1)<<32 | pair(lo-l1*100)<<48
	n := (bits.Len64(us) * 1233) >> 12 // digits before the point (see appendUint)
	if us >= pow10[n&15] {
		n++
	}
	n = max(n, 1) & 15
	w >>= 8 * (8 - n)
	f1 := f / 100
	f23 := pair(f - f1*100)
	frac := uint32('.') | uint32('0'+f1)<<8 | uint32(f23)<<16
	binary.LittleEndian.PutUint64(b[l:l+8], w)
	binary.LittleEndian.PutUint32(b[l+n:l+n+4], frac)
	return b[:l+n+4]
}

// pair returns the two digits of v (under 100) as the bytes of a
// little-endian word.
func pair(v uint64) uint64 {
	return uint64(digits2[2*v]) | uint64(digits2[2*v+1])<<8
}

// appendMicrosLong is appendMicros for any time.
func appendMicrosLong(b []byte, d time.Duration) []byte {
	ns := int64(d)
	if ns < 0 {
		b = append(b, '-')
		ns = -ns
	}
	b = appendUint(b, uint64(ns/1000))
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

// plainByte says which bytes a JSON string holds as they are: printable
// ASCII but the quote and the backslash.
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// plainPrefix returns the length of s's longest prefix of plainBytes. It
// tests eight bytes at a time (command lines are tens of bytes), then
// byte by byte from the first word that holds anything else.
func plainPrefix(s string) int {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(s); i += 8 {
		w := s[i : i+8]
		v := uint64(w[0]) | uint64(w[1])<<8 | uint64(w[2])<<16 | uint64(w[3])<<24 |
			uint64(w[4])<<32 | uint64(w[5])<<40 | uint64(w[6])<<48 | uint64(w[7])<<56
		// A byte below 0x20 or from 0x80 up, or a zero byte after
		// xoring with '"' or '\\', sets its high bit here (a borrow
		// can set more, which only sends us to the byte loop).
		q, bs := v^(ones*'"'), v^(ones*'\\')
		if (v-ones*0x20|v|(q-ones)&^q|(bs-ones)&^bs)&highs != 0 {
			break
		}
	}
	for i < len(s) && plainByte[s[i]] {
		i++
	}
	return i
}

// appendEscaped appends s escaped for the inside of a JSON string.
func appendEscaped(b []byte, s string) []byte {
	// Most strings (operations, command lines) need no escaping: copy
	// the plain prefix in one go.
	plain := plainPrefix(s)
	if plain == len(s) {
		return append(b, s...)
	}
	return appendEscapedRest(b, s, plain)
}

// appendEscapedRest appends s, whose first plain bytes need no escaping.
func appendEscapedRest(b []byte, s string, plain int) []byte {
	const hex = "0123456789abcdef"
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
