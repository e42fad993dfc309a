package blk

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Co is the coroutine handle of one request. QEMU runs every block request
// as a coroutine on one event loop; gio runs each on its own goroutine but
// hands a single token between them, so exactly one runs at a time and it
// gives the token back only at named yield points. Any function that may
// yield takes a *Co as its first parameter.
//
// The token passes by a coroutine switch (iter.Pull's next and yield: the
// loop resumes the request, the request yields when it parks or ends). The
// switch happens on the loop's own thread, without the scheduler, and
// carries the race detector's happens-before edges; every interleaving
// stays a pure function of the script. The goroutines behind requests
// are pooled workers (see worker), so a request costs no goroutine
// creation.
type Co struct {
	loop *Loop
	id   int
	name string
	fn   func(co *Co)
	w    *worker // the worker running the request, from its first run
	done bool
	// yielded records that the request parked at least once; a request that
	// finishes during its own submission delivers its completion as a bottom
	// half, the way QEMU's blk_aio_prwv does.
	yielded bool
	// why describes the current yield point for reports of waits that can
	// never finish ("waits for #2", "suspended at 'A'").
	why string
	// started records that the request handed a write, zero write,
	// discard, flush or truncate to a driver that is not pass-through
	// (Driver.PassThrough): from then on it may have changed the image,
	// or a format's state, and can no longer be withdrawn.
	started bool
	// queue is the generic layer's wait queue the request is parked in
	// (parkQueued), from which Loop.Withdraw takes it; nil at every other
	// yield point.
	queue *[]*Co
	// withdrawn is set by Loop.Withdraw; parkQueued then reports false.
	withdrawn bool
	// spans are the request's open tracked-request spans, innermost
	// last, and err its result as the front end noted it: trace only.
	spans   []int
	spanBuf [4]int // spans' first array: no allocation per request
	err     error
	// lastEvent is the last debug event the request fired (requests -v),
	// -1 for none.
	lastEvent Event
	// cost is virtual time its I/O has cost and the clock not yet
	// shown (cost.go).
	cost time.Duration
	// req is the request a task belongs to (TaskPool), nil for a
	// request; pool is the pool whose tasks the request waits for.
	req  *Co
	pool *TaskPool
	// after are coroutines to run as soon as this one yields or ends,
	// before anything else (QEMU's co_queue_wakeup).
	after []*Co
}

// ID returns the request number, in submission order.
func (co *Co) ID() int { return co.id }

// Name returns the request's display name, such as "#3 aio_write 0+512".
func (co *Co) Name() string { return co.name }

// Loop returns the loop the request runs on.
func (co *Co) Loop() *Loop { return co.loop }

// Yielded reports whether the request has parked at least once.
func (co *Co) Yielded() bool { return co.yielded }

// Done reports whether the request has finished.
func (co *Co) Done() bool { return co.done }

// Clock is the time source of a loop. Virtual clocks advance only when
// nothing is runnable; real ones sleep.
type Clock interface {
	// Now returns the time since the clock started.
	Now() time.Duration
	// AdvanceTo moves the clock to t (never backwards): a virtual clock
	// jumps, a real one sleeps until then.
	AdvanceTo(t time.Duration)
}

// VirtualClock is a clock that jumps: sleeping costs no wall time, and
// time passes only by jumps and by the I/O its cost model charges
// (Co.ChargeIO), never with the wall clock, so everything timed on it is
// the same on every run.
type VirtualClock struct {
	offset time.Duration
	// Cost is the virtual device's cost model (DefaultCost).
	Cost CostModel
}

// NewVirtualClock returns a virtual clock at 0 with DefaultCost.
func NewVirtualClock() *VirtualClock { return &VirtualClock{Cost: DefaultCost} }

// Now implements Clock.
func (c *VirtualClock) Now() time.Duration { return c.offset }

// AdvanceTo implements Clock.
func (c *VirtualClock) AdvanceTo(t time.Duration) {
	if now := c.Now(); t > now {
		c.offset += t - now
	}
}

// RealClock sleeps for real.
type RealClock struct{ start time.Time }

// NewRealClock returns a real clock starting now.
func NewRealClock() *RealClock { return &RealClock{start: time.Now()} }

// Now implements Clock.
func (c *RealClock) Now() time.Duration { return time.Since(c.start) }

// AdvanceTo implements Clock.
func (c *RealClock) AdvanceTo(t time.Duration) {
	if d := t - c.Now(); d > 0 {
		time.Sleep(d)
	}
}

// AdvanceToOrStop implements StoppableClock: it sleeps until t or until
// stop is closed, and reports whether t was reached.
func (c *RealClock) AdvanceToOrStop(t time.Duration, stop <-chan struct{}) bool {
	d := t - c.Now()
	if d <= 0 {
		return true
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-stop:
		return false
	}
}

// StoppableClock is a Clock whose waits can be cut short, so that Ctrl-C
// at the shell ends a real-time sleep at once (see Loop.Interrupt).
type StoppableClock interface {
	Clock
	// AdvanceToOrStop is AdvanceTo that gives up when stop is closed; it
	// reports whether the clock reached t.
	AdvanceToOrStop(t time.Duration, stop <-chan struct{}) bool
}

// ErrInterrupted is returned by waits abandoned because of Loop.Interrupt
// (and by long requests that stop between chunks); it is EINTR, so that
// commands print "Interrupted system call".
var ErrInterrupted error = unix.EINTR

type timer struct {
	at  time.Duration
	seq int
	fn  func()
}

// Loop is the event loop and scheduler. It is driven by a single caller
// goroutine (the shell); the requests' goroutines run only while that
// caller waits for them, so the loop's fields need no lock: they are
// touched only by whoever holds the token.
type Loop struct {
	clock  Clock
	ready  []*Co // runnable requests, FIFO
	ioDone []*Co // requests whose I/O "completed"; delivered at loop points
	bhs    []func()
	timers []timer
	seq    int
	nextID int
	live   map[*Co]struct{}
	cur    *Co
	// engines are the parallel I/O engines attached to the loop (see
	// Engine); empty in the deterministic default.
	engines []Engine
	// readyBuf is the array behind ready, kept for reuse.
	readyBuf []*Co
	// pool is the thread pool of -i threads, made on first use.
	pool *ThreadPool
	// chooser, when set, picks the next request at the choice points
	// (see Chooser); nil is FIFO and costs one comparison per request.
	// held are the requests whose I/O a chooser made late (Co.DoIO).
	chooser Chooser
	held    []*Co
	// tracer receives trace events (nil: tracing off); spanSeq numbers
	// tracked-request spans. See trace.go.
	tracer  Tracer
	spanSeq int
	// traceBuf is the batch of events the tracer lent, of which
	// tracePos are filled; traceSpare takes an event when a tracer stops
	// while lending. traceSeq counts the events made (and tracer
	// changes): while it has not moved since an event was made, that
	// event is traceBuf[tracePos-1], which the loop may still change
	// (see Tracer). vclock is clock when it is a *VirtualClock, so that
	// an event reads the time without a call through the interface.
	traceBuf   []TraceEvent
	tracePos   int
	traceSpare [1]TraceEvent
	traceSeq   uint64
	vclock     *VirtualClock
	traceEnd   int

	// interrupted and stop are the Ctrl-C state; the only fields another
	// goroutine (a signal handler) may touch.
	interrupted atomic.Bool
	stopMu      sync.Mutex
	stop        chan struct{} // closed while interrupted
	waiter      Waiter        // an engine waiting on the loop's goroutine; under stopMu
}

// NewLoop returns a loop on the given clock (a real clock if nil).
func NewLoop(clock Clock) *Loop {
	if clock == nil {
		clock = NewRealClock()
	}
	vclock, _ := clock.(*VirtualClock)
	return &Loop{clock: clock, vclock: vclock, live: map[*Co]struct{}{}}
}

// Interrupt asks the loop to stop waiting (Ctrl-C at the shell). It may be
// called from any goroutine. Until ClearInterrupt, Sleep returns early,
// RunUntil returns ErrInterrupted, timers no longer fire (a StoppableClock
// abandons its wait) and Interrupted reports true, so long requests can
// stop between chunks. Requests already in flight stay in flight.
func (l *Loop) Interrupt() {
	l.stopMu.Lock()
	defer l.stopMu.Unlock()
	if l.interrupted.Swap(true) {
		return
	}
	if l.stop == nil {
		l.stop = make(chan struct{})
	}
	close(l.stop)
	if l.waiter != nil {
		l.waiter.Unwait()
	}
}

// ClearInterrupt ends the interrupted state (before the next command).
func (l *Loop) ClearInterrupt() {
	l.stopMu.Lock()
	defer l.stopMu.Unlock()
	if l.interrupted.Swap(false) {
		l.stop = nil
	}
}

// Interrupted reports whether Interrupt was called since the last
// ClearInterrupt. Loops over chunks check it and return ErrInterrupted.
func (l *Loop) Interrupted() bool { return l.interrupted.Load() }

// stopChan returns a channel closed when the loop is interrupted.
func (l *Loop) stopChan() <-chan struct{} {
	l.stopMu.Lock()
	defer l.stopMu.Unlock()
	if l.stop == nil {
		l.stop = make(chan struct{})
	}
	return l.stop
}

// advance moves the clock to t, reporting false when an interrupt cut
// the wait short.
func (l *Loop) advance(t time.Duration) bool {
	if l.Interrupted() {
		return false
	}
	if sc, ok := l.clock.(StoppableClock); ok {
		return sc.AdvanceToOrStop(t, l.stopChan())
	}
	l.clock.AdvanceTo(t)
	return true
}

// Clock returns the loop's clock.
func (l *Loop) Clock() Clock { return l.clock }

// Now is shorthand for l.Clock().Now().
func (l *Loop) Now() time.Duration { return l.clock.Now() }

// Spawn creates a request running fn and makes it runnable. It does not run
// it: call Run, RunUntil or Poll.
func (l *Loop) Spawn(name string, fn func(co *Co)) *Co {
	l.nextID++
	co := &Co{loop: l, id: l.nextID, name: fmt.Sprintf("#%d %s", l.nextID, name), fn: fn, lastEvent: -1}
	l.live[co] = struct{}{}
	l.ready = append(l.ready, co)
	if l.tracer != nil {
		e := l.fastEvent(TraceSubmit, co.id)
		if e == nil {
			e = l.event(TraceSubmit, co.id)
		}
		e.Name = name
	}
	return co
}

// resume runs co until it parks or ends, giving it a pooled worker on its
// first run and taking the worker back when the request has ended.
func (co *Co) resume() {
	if co.w == nil {
		co.w = getWorker()
		co.w.co = co
	}
	co.w.next()
	if co.done {
		if co.loop.tracer != nil && co.req == nil {
			l := co.loop
			e := l.fastEvent(TraceComplete, co.id)
			if e == nil {
				e = l.event(TraceComplete, co.id)
			}
			e.Err = co.err
		}
		w := co.w
		co.w = nil
		putWorker(w)
	}
	for len(co.after) > 0 {
		next := co.after[0]
		co.after = co.after[1:]
		l := co.loop
		prev := l.cur
		l.cur = next
		next.resume()
		l.cur = prev
	}
}

// request returns the request co belongs to: co itself, or the request
// that started the task co.
func (co *Co) request() *Co {
	if co.req != nil {
		return co.req
	}
	return co
}

// where describes where co waits: its yield reason, or for a request
// waiting for its tasks, where they wait.
func (co *Co) where() string {
	if co.pool != nil {
		return co.pool.where()
	}
	return co.why
}

// park gives the token back to the loop and waits to be woken. The caller
// must already have arranged for someone to wake it.
func (co *Co) park(why string) {
	co.yielded = true
	co.why = why
	var seq uint64
	if co.loop.tracer != nil {
		seq = co.traceYield(why)
	}
	if co.cost != 0 {
		co.payCost()
	}
	co.w.yield(struct{}{})
	co.why = ""
	if co.loop.tracer != nil {
		co.traceResume(seq)
	}
}

// parkQueued parks in q, a FIFO wait queue of the generic layer whose
// owner wakes its requests in order; the request must already be in q.
// It reports false when the request was withdrawn instead of woken
// (Loop.Withdraw took it out of q): the caller must then unwind at once
// with ErrWithdrawn, doing nothing more.
func (co *Co) parkQueued(why string, q *[]*Co) bool {
	co.queue = q
	co.park(why)
	co.queue = nil
	return !co.withdrawn
}

// markStarted records that the request reached a driver that may change
// the image (see Co.started).
func (co *Co) markStarted(d *Driver) {
	if co != nil && !d.PassThrough {
		co.started = true
		co.request().started = true
	}
}

// ErrWithdrawn fails a request that Loop.Withdraw took out of its wait
// queue before it had started its I/O (ECANCELED: "Operation canceled").
var ErrWithdrawn error = unix.ECANCELED

// Withdraw takes a request that can never finish out of the wait queue it
// is parked in, if it has not started its I/O yet, and makes it runnable:
// it then ends with ErrWithdrawn, having had no effect on the image. It
// reports false, changing nothing, when the request is parked anywhere
// else (a breakpoint, a timer, I/O, a driver's own lock) or has started
// its I/O: such a request stays in flight and may still complete.
// Only the token holder may call it.
func (l *Loop) Withdraw(co *Co) bool {
	if co.loop != l || co.done || co.started || co.queue == nil {
		return false
	}
	if i := slices.Index(*co.queue, co); i >= 0 {
		*co.queue = slices.Delete(*co.queue, i, i+1)
	}
	co.queue = nil
	co.withdrawn = true
	co.Wake()
	return true
}

// Wake makes a parked request runnable. Only the token holder may call it.
func (co *Co) Wake() { co.loop.ready = append(co.loop.ready, co) }

// Park yields until someone calls Wake. why names the yield point.
func (co *Co) Park(why string) { co.park(why) }

// YieldIO models I/O handed to the outside world (QEMU's thread pool): the
// request gives up the token and continues at the next loop point. The
// data transfer itself has already happened, so ordering stays
// deterministic; what this preserves is qemu-io's observable order of
// completions relative to commands.
func (co *Co) YieldIO() {
	co.loop.ioDone = append(co.loop.ioDone, co)
	co.park("waits for I/O")
}

// Sleep parks the request for d on the loop's clock.
func (co *Co) Sleep(d time.Duration) {
	co.loop.AddTimer(d, co.Wake)
	co.park(fmt.Sprintf("sleeps %v", d))
}

// AddTimer runs fn (under the token) once the clock reaches now+d.
func (l *Loop) AddTimer(d time.Duration, fn func()) {
	l.seq++
	l.timers = append(l.timers, timer{at: l.clock.Now() + d, seq: l.seq, fn: fn})
	sort.SliceStable(l.timers, func(i, j int) bool {
		if l.timers[i].at != l.timers[j].at {
			return l.timers[i].at < l.timers[j].at
		}
		return l.timers[i].seq < l.timers[j].seq
	})
}

// ScheduleBH queues fn as a bottom half: it runs at the next loop point.
// Bottom halves scheduled between two loop points run newest first, as
// QEMU's aio_bh_poll does; that is why qemu-io prints the completions of
// requests that finished during submission in reverse order.
func (l *Loop) ScheduleBH(fn func()) { l.bhs = append(l.bhs, fn) }

// runReady runs every runnable request until none is runnable. It is what
// happens inside one command without polling (QEMU's qemu_coroutine_enter):
// I/O completions and bottom halves wait for a loop point.
func (l *Loop) runReady() bool {
	progress := false
	// The queue is popped from the front; once empty it starts again at
	// the front of its array (readyBuf), so that it reuses its memory
	// instead of allocating a new array every turn.
	if cap(l.ready) > cap(l.readyBuf) {
		l.readyBuf = l.ready[:0]
	}
	defer func() {
		if len(l.ready) == 0 {
			l.ready = l.readyBuf[:0]
		}
	}()
	for len(l.ready) > 0 {
		if l.chooser != nil && l.choose() {
			progress = true
			continue
		}
		co := l.ready[0]
		l.ready[0] = nil
		l.ready = l.ready[1:]
		if co.done {
			continue
		}
		l.cur = co
		co.resume()
		l.cur = nil
		progress = true
	}
	return progress
}

// RunReady runs runnable requests to quiescence without delivering I/O
// completions, bottom halves or timers.
func (l *Loop) RunReady() { l.runReady() }

// step makes one unit of progress at a loop point: runnable requests, then
// bottom halves (newest first), then I/O completions (oldest first).
// It reports false when nothing could progress without the clock moving.
func (l *Loop) step() bool {
	if l.runReady() {
		return true
	}
	if n := len(l.bhs); n > 0 {
		bhs := l.bhs
		l.bhs = nil
		for i := n - 1; i >= 0; i-- {
			bhs[i]()
		}
		return true
	}
	if len(l.ioDone) > 0 {
		l.ready = append(l.ready, l.ioDone...)
		clear(l.ioDone)
		l.ioDone = l.ioDone[:0]
		return true
	}
	return len(l.engines) > 0 && l.pollEngines()
}

// fireTimer advances the clock to the first timer if it is due no later
// than limit (a negative limit means no limit) and runs it.
func (l *Loop) fireTimer(limit time.Duration) bool {
	if len(l.timers) == 0 {
		return false
	}
	t := l.timers[0]
	if limit >= 0 && t.at > limit {
		return false
	}
	if !l.advance(t.at) {
		return false
	}
	l.timers = l.timers[1:]
	t.fn()
	return true
}

// MaxPendingIO bounds the requests whose I/O has completed and that wait
// for a loop point to go on (see RunPending).
const MaxPendingIO = 1024

// RunPending runs runnable requests and bottom halves until none is
// left, without delivering I/O completions or firing timers. It models
// qemu-io waiting for piped input: its main loop runs the bottom halves
// that are already scheduled, but input is ready long before thread-pool
// I/O completes.
//
// Except past MaxPendingIO such requests: each holds a parked goroutine
// (a 4 KiB stack and its bookkeeping), and 20000 piped aio_write commands
// before an aio_flush then took 120 MiB. RunPending then delivers them
// and runs the loop like Poll, as qemu-io's main loop does whenever its
// thread pool has finished work, which it has long before 1024 more
// commands are read. Only a script keeping that many requests in flight
// sees the difference, in a place where qemu-io's order depends on timing.
func (l *Loop) RunPending() {
	if len(l.ioDone) > MaxPendingIO {
		l.Poll()
		return
	}
	for {
		l.runReady()
		if len(l.bhs) == 0 {
			if l.chooser != nil && l.deliverChosen() {
				continue
			}
			return
		}
		l.step()
	}
}

// Poll runs the loop until nothing can progress without time passing.
func (l *Loop) Poll() {
	for l.step() {
	}
}

// Sleep runs the loop for d of clock time: everything that becomes
// runnable runs, timers fire in order, and the clock ends at now+d.
func (l *Loop) Sleep(d time.Duration) {
	end := l.clock.Now() + d
	for {
		l.Poll()
		if !l.fireTimer(end) {
			break
		}
	}
	l.advance(end)
	if len(l.engines) > 0 {
		// I/O that a parallel engine completed during the sleep
		// completes now, as it would have in QEMU's loop.
		l.Poll()
	}
}

// RunDue runs the loop like Poll and also fires the timers that are
// already due on the clock, without waiting for later ones (the shell,
// before showing its prompt).
func (l *Loop) RunDue() {
	for {
		l.Poll()
		if !l.fireTimer(l.clock.Now()) {
			return
		}
	}
}

// ErrStuck reports a wait that can never finish: nothing is runnable, no
// I/O is outstanding and no timer is pending.
type ErrStuck struct {
	What    string   // what was waited for
	Waiters []string // each live request and where it waits
}

func (e *ErrStuck) Error() string {
	if len(e.Waiters) == 0 {
		return e.What + " can never happen"
	}
	return e.What + " can never happen: " + strings.Join(e.Waiters, "; ")
}

// RunUntil runs the loop until cond holds, firing timers as needed. When
// nothing can progress any more and cond still fails it returns *ErrStuck
// instead of hanging. cond is checked before every step, so a condition
// already true costs no loop turn.
func (l *Loop) RunUntil(what string, cond func() bool) error {
	for !cond() {
		if l.Interrupted() {
			return ErrInterrupted
		}
		if l.step() {
			continue
		}
		// step polled the engines last, and found nothing.
		if len(l.engines) > 0 && l.waitEngines() {
			continue
		}
		if len(l.held) > 0 && l.releaseHeld() {
			continue
		}
		if l.fireTimer(-1) || l.Interrupted() {
			continue
		}
		return &ErrStuck{What: what, Waiters: l.Blocked()}
	}
	return nil
}

// Blocked describes every live request and where it waits, in request
// order.
func (l *Loop) Blocked() []string {
	cos := make([]*Co, 0, len(l.live))
	for co := range l.live {
		cos = append(cos, co)
	}
	sort.Slice(cos, func(i, j int) bool { return cos[i].id < cos[j].id })
	out := make([]string, 0, len(cos))
	for _, co := range cos {
		why := co.where()
		if why == "" {
			why = "runnable"
		}
		out = append(out, co.name+" "+why)
	}
	return out
}

// InFlight returns the number of requests that have not finished.
func (l *Loop) InFlight() int { return len(l.live) }

// Abandon forgets every request still live. Backend.Close calls it when
// its drain can never finish: the image goes away with the requests
// suspended in it, and nothing can resume them any more, so later drains
// (of the next image, aio_flush, exit) must not wait for them or report
// them again. Their goroutines stay parked for the life of the process.
func (l *Loop) Abandon() {
	for co := range l.live {
		delete(l.live, co)
	}
}

// Drain runs the loop until every request has finished and every pending
// bottom half has run (QEMU's bdrv_drain_all).
func (l *Loop) Drain(what string) error {
	return l.RunUntil(what, func() bool {
		return len(l.live) == 0 && len(l.bhs) == 0 && len(l.ready) == 0
	})
}
