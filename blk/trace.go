package blk

import "time"

// This file is the tracing hook of the loop and the generic request path:
// they report what they already know (submission, every yield and its
// reason, serialisation waits, debug events, flushes, completion) to one
// Tracer. Writers and renderers live above blk (package gio/trace); blk
// only declares the interface. With no tracer set every hook is a nil
// check, so tracing costs nothing when it is off.

// Tracer receives trace events. It is called under the scheduler token,
// so it needs no lock, in an order that is a pure function of the script:
// with a virtual clock the events and their timestamps are the same on
// every run. Events must not call back into the loop, except that it may
// stop tracing (SetTracer), as a tracer that failed does.
//
// The loop fills the events in place, in batches the tracer lends it, so
// that tracing costs the request path a few stores per event rather than
// copies of the whole record and a call each. Events(n) takes back the
// first n events of the batch the previous call returned (n is 0 on the
// first call), complete, and returns the next batch: at least one event,
// whatever it holds (the loop sets every field of an event it uses).
// The loop uses a batch from its start, asks for the next one only when
// it is full, and hands the rest back with a last call when tracing
// stops (SetTracer); it keeps no event of a batch it has handed back.
// Until then it may change the last event it filled: a yield that is
// resumed before anything else is traced becomes one event (TraceWaited).
type Tracer interface {
	Events(n int) []TraceEvent
}

// TraceKind says what a TraceEvent reports.
type TraceKind uint8

// The trace events. Each names the fields it fills besides At.
const (
	// TraceSubmit: request Req (a coroutine) was submitted; Name is its
	// command line ("aio_write 0 512").
	TraceSubmit TraceKind = iota + 1
	// TraceComplete: request Req ended; Err is its result when the
	// front end reported one (Co.NoteError).
	TraceComplete
	// TraceYield: request Req gave up the token; Why is the reason
	// ("waits for #2 ...", "suspended at 'A'", "waits for I/O"), Target
	// the request waited for, if any.
	TraceYield
	// TraceResume: request Req holds the token again.
	TraceResume
	// TraceWaited: a TraceYield (Req, Why, Target) whose TraceResume came
	// before any other event, in one event: request Req gave up the
	// token at At and had it back at End. A plain I/O (the request waits
	// for the driver, nothing else happens) costs one event, not two.
	TraceWaited
	// TraceBegin: a tracked request (Span) of request Req began on Node
	// for [Off, Off+Bytes); Parent is the span it was issued from (0: the
	// request itself); Name is the operation ("read", "write", ...).
	TraceBegin
	// TraceEnd: span Span of request Req on Node ended.
	TraceEnd
	// TraceSerialise: span Span became serialising; [Off, Off+Bytes) is
	// its overlap range, widened to the alignment.
	TraceSerialise
	// TraceWait: span Span of Req waits for request Target (span Parent)
	// whose overlap range [Off, Off+Bytes) conflicts with its own.
	TraceWait
	// TraceDebugEvent: debug event Name fired on Node for Req (0: none).
	TraceDebugEvent
	// TraceRule: a blkdebug rule fired on Node for event Name; Why is the
	// rule ("inject-error errno=5", "set-state 2", "suspend A").
	TraceRule
	// TraceBreakSet: a breakpoint was set on Node: event Name, tag Why.
	TraceBreakSet
	// TraceBreakHit: request Req was suspended at tag Why on Node.
	TraceBreakHit
	// TraceBreakResume: request Req suspended at tag Why was resumed.
	TraceBreakResume
	// TraceFlushBegin / TraceFlushEnd: request Req flushes Node.
	TraceFlushBegin
	TraceFlushEnd
	// TraceError: an error Err on Node (injected, or returned by a driver)
	// for request Req; Name says where.
	TraceError
)

var traceKindNames = [...]string{
	TraceSubmit: "submit", TraceComplete: "complete", TraceYield: "yield", TraceResume: "resume",
	TraceWaited: "waited",
	TraceBegin:  "begin", TraceEnd: "end", TraceSerialise: "serialise", TraceWait: "wait",
	TraceDebugEvent: "event", TraceRule: "rule", TraceBreakSet: "break", TraceBreakHit: "suspend",
	TraceBreakResume: "resume_break", TraceFlushBegin: "flush", TraceFlushEnd: "flush_done",
	TraceError: "error",
}

func (k TraceKind) String() string {
	if int(k) < len(traceKindNames) && traceKindNames[k] != "" {
		return traceKindNames[k]
	}
	return "unknown"
}

// TraceEvent is one trace record. Fields a kind does not use are zero.
type TraceEvent struct {
	Kind   TraceKind
	At     time.Duration // the loop clock
	Req    int           // request number (Co.ID), 0 outside requests
	Span   int           // tracked-request span number, unique per loop
	Parent int           // parent span (TraceBegin) or span waited for (TraceWait)
	Target int           // request waited for (TraceYield, TraceWaited, TraceWait)
	End    time.Duration // when a TraceWaited's request had the token back
	Node   *Node
	Name   string
	Why    string
	Off    int64
	Bytes  int64
	Err    error
}

// SetTracer starts (t != nil) or stops (nil) tracing on the loop. Only
// the loop's driver calls it, between commands.
func (l *Loop) SetTracer(t Tracer) {
	old, n := l.tracer, l.tracePos
	l.tracer, l.traceBuf, l.tracePos, l.traceLast = t, nil, 0, nil
	l.traceSeq++
	if old != nil && n > 0 {
		old.Events(n) // the last events; the batch returned goes unused
	}
}

// Tracer returns the loop's tracer, nil when tracing is off. Filters
// (blkdebug) report their own events through it.
func (l *Loop) Tracer() Tracer { return l.tracer }

// Trace stamps ev with the loop's clock and hands it to the tracer. The
// caller checks l.Tracer() != nil first, so that building ev costs nothing
// when tracing is off. The hot hooks of the request path fill their
// events in place instead (event).
func (l *Loop) Trace(ev TraceEvent) {
	if l.tracer == nil {
		return
	}
	e := l.event(ev.Kind, ev.Req)
	at := e.At
	*e = ev
	e.At = at
}

// event returns the tracer's next event, of kind k for request req at the
// loop's time, for the caller to fill in. Tracing must be on.
// It takes the next event of the batch, asking the tracer for a new
// batch when it is full.
func (l *Loop) event(k TraceKind, req int) *TraceEvent {
	if l.tracePos == len(l.traceBuf) {
		l.refill()
	}
	e := &l.traceBuf[l.tracePos]
	l.tracePos++
	l.traceSeq++
	l.traceLast = e
	// The virtual clock's time without a call through the interface:
	// a traced plain write makes seven events.
	var at time.Duration
	if c, ok := l.clock.(*VirtualClock); ok {
		at = c.offset
	} else {
		at = l.clock.Now()
	}
	*e = TraceEvent{Kind: k, At: at, Req: req}
	return e
}

// refill hands the full batch back and takes the next one. A tracer that
// stops tracing meanwhile (SetTracer) gets nothing more: the event being
// made goes to a spare the loop never hands over.
func (l *Loop) refill() {
	t, n := l.tracer, l.tracePos
	l.traceBuf, l.tracePos = nil, 0
	b := t.Events(n)
	if l.tracer != t || len(b) == 0 {
		b = l.traceSpare[:]
	}
	l.traceBuf, l.tracePos = b, 0
}

// traceYield reports that co gives up the token for why; it returns the
// event's sequence number for traceResume.
func (co *Co) traceYield(why string) uint64 {
	co.loop.event(TraceYield, co.id).Why = why
	return co.loop.traceSeq
}

// traceResume reports that co holds the token again, after the yield
// numbered seq: when nothing was traced in between, the yield event,
// still the tracer's last, becomes a TraceWaited.
func (co *Co) traceResume(seq uint64) {
	l := co.loop
	if seq == l.traceSeq && l.traceLast != nil {
		e := l.traceLast
		e.Kind, e.End = TraceWaited, l.clock.Now()
		return
	}
	l.event(TraceResume, co.id)
}

// NoteError records err as the request's result for the trace (a front
// end calls it when the request's function returns); a no-op when
// tracing is off or err is nil.
func (co *Co) NoteError(err error) {
	if err != nil && co.loop.tracer != nil {
		co.err = err
	}
}

// traceSpan opens a span for a tracked request: its number and its parent
// (the innermost span the same request has open, 0 for none).
func (co *Co) traceSpan(r *trackedReq) {
	l := co.loop
	l.spanSeq++
	r.span = l.spanSeq
	parent := 0
	if k := len(co.spans); k > 0 {
		parent = co.spans[k-1]
	}
	if co.spans == nil {
		co.spans = co.spanBuf[:0]
	}
	co.spans = append(co.spans, r.span)
	e := l.event(TraceBegin, co.id)
	e.Span, e.Parent, e.Node, e.Name, e.Off, e.Bytes = r.span, parent, r.node, r.kind.String(), r.off, r.bytes
}

// traceSpanEnd closes r's span.
func (co *Co) traceSpanEnd(r *trackedReq) {
	if k := len(co.spans); k > 0 && co.spans[k-1] == r.span {
		co.spans = co.spans[:k-1]
	}
	e := co.loop.event(TraceEnd, co.id)
	e.Span, e.Node = r.span, r.node
}

func (k reqKind) String() string {
	switch k {
	case trackRead:
		return "read"
	case trackWrite:
		return "write"
	case trackDiscard:
		return "discard"
	case trackTruncate:
		return "truncate"
	}
	return "request"
}
