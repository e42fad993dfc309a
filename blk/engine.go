package blk

import (
	"reflect"
	"slices"
	"sync"
	"time"
)

// Engine is a parallel I/O engine attached to a loop (-i threads,
// -i io_uring): requests hand it work and park; the work runs outside the
// token, and the engine makes the requests runnable again (Co.Wake) when
// the loop polls it. Determinism is not promised with an engine, only
// correctness: completions arrive in whatever order the kernel gives.
//
// Poll runs under the token, called by the loop's driver only: never from
// inside a request.
type Engine interface {
	// Pending reports how many requests wait for the engine.
	Pending() int
	// Poll submits queued work and wakes the requests whose work has
	// completed. With block set and work pending, it waits for at least
	// one completion. It reports whether it woke any request.
	Poll(block bool) bool
}

// AddEngine attaches e to the loop, which polls it at every loop point
// and waits for it when nothing else can progress.
func (l *Loop) AddEngine(e Engine) {
	if !slices.Contains(l.engines, e) {
		l.engines = append(l.engines, e)
	}
}

// RemoveEngine detaches e (when the node using it closes).
func (l *Loop) RemoveEngine(e Engine) {
	if i := slices.Index(l.engines, e); i >= 0 {
		l.engines = slices.Delete(l.engines, i, i+1)
	}
}

// Waker is implemented by engines that can tell when they may have
// progress: a channel that receives after work completes (or anything
// else the engine wants its waiter to see). With several engines
// pending, the loop waits on all their channels at once; without it, a
// wait on one engine could miss the completion of another (an NBD
// server waiting for clients while the thread pool finishes a read).
type Waker interface {
	WakeChan() <-chan struct{}
}

// Waiter is implemented by engines that wait for their own progress on
// the calling goroutine, through the Go runtime's netpoller (the NBD
// client reads its socket, the io_uring engine its eventfd): no goroutine
// of theirs hands completions over, which would cost a wake-up of
// another thread per batch. When such an engine is the only one pending,
// the loop's wait calls Wait on the loop's own goroutine.
type Waiter interface {
	// Wait blocks until the engine may have progress, or until Unwait.
	// It may return early (a spurious wake-up).
	Wait()
	// Unwait ends a Wait in progress, or makes the next one return at
	// once. Any goroutine may call it (Loop.Interrupt does).
	Unwait()
}

// pollEngines polls every engine without waiting.
func (l *Loop) pollEngines() bool {
	progress := false
	for _, e := range l.engines {
		if e.Pending() > 0 && e.Poll(false) {
			progress = true
		}
	}
	return progress
}

// waitEngines waits on every pending engine at once (and on an
// interrupt). The caller has just polled them all, in vain.
func (l *Loop) waitEngines() bool {
	npending := 0
	var last Engine
	for _, e := range l.engines {
		if e.Pending() > 0 {
			npending++
			last = e
		}
	}
	if npending == 0 {
		return false
	}
	if npending == 1 {
		// The common case (one image, one engine) waits without
		// reflect.Select and its allocations.
		if w, ok := last.(Waiter); ok {
			l.waitOn(w)
			last.Poll(false)
			return true
		}
		w, ok := last.(Waker)
		if !ok {
			return last.Poll(true)
		}
		select {
		case <-w.WakeChan():
		case <-l.stopChan():
		}
		last.Poll(false)
		return true
	}
	var pending []Engine
	for _, e := range l.engines {
		if e.Pending() > 0 {
			pending = append(pending, e)
		}
	}
	cases := make([]reflect.SelectCase, 0, len(pending)+1)
	for _, e := range pending {
		w, ok := e.(Waker)
		if !ok {
			return e.Poll(true)
		}
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(w.WakeChan())})
	}
	// Ctrl-C (Loop.Interrupt) ends the wait too: an NBD server may wait
	// for clients that never come.
	cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(l.stopChan())})
	reflect.Select(cases)
	for _, e := range pending {
		e.Poll(false)
	}
	// A wake counts as progress even when nothing became runnable: the
	// waiter looks at its condition again (a client came or went).
	return true
}

// waitOn lets w wait on the loop's goroutine; Interrupt ends the wait
// through w.Unwait.
func (l *Loop) waitOn(w Waiter) {
	l.stopMu.Lock()
	if l.interrupted.Load() {
		l.stopMu.Unlock()
		return
	}
	l.waiter = w
	l.stopMu.Unlock()
	w.Wait()
	l.stopMu.Lock()
	l.waiter = nil
	l.stopMu.Unlock()
}

// ThreadJob is blocking work (a pread, a pwrite, an fdatasync) that a
// request runs on the loop's thread pool with Co.RunInThread.
type ThreadJob interface {
	// RunInThread does the work. It runs on a pool goroutine, outside
	// the token: it may touch only what the parked request handed it.
	RunInThread()
}

// RunInThread runs job on the loop's thread pool (QEMU's thread pool:
// util/thread-pool.c) and parks until it has completed. Other requests
// run meanwhile. job should be a pointer the caller reuses, so that a
// request allocates nothing here.
func (co *Co) RunInThread(job ThreadJob) {
	co.loop.ThreadPool().submit(co, job)
	co.park("waits for I/O")
}

// maxPoolThreads is QEMU's default thread-pool-max.
const maxPoolThreads = 64

// ThreadPool runs blocking jobs for a loop's requests on up to 64
// goroutines (each becomes an OS thread while in its syscall).
type ThreadPool struct {
	loop    *Loop
	jobs    chan poolJob
	pending int // submitted, not yet woken; under the token

	threads int // running; under mu
	idle    int // threads waiting for a job, not yet promised one; under mu

	mu     sync.Mutex
	done   []*Co
	notify chan struct{} // a completion was added to done
	spare  []*Co
}

type poolJob struct {
	co  *Co
	job ThreadJob
}

// ThreadPool returns the loop's thread pool, creating it (and attaching
// it as an engine) on first use.
func (l *Loop) ThreadPool() *ThreadPool {
	if l.pool == nil {
		l.pool = &ThreadPool{loop: l, jobs: make(chan poolJob, 1024), notify: make(chan struct{}, 1)}
		l.AddEngine(l.pool)
	}
	return l.pool
}

func (p *ThreadPool) submit(co *Co, job ThreadJob) {
	p.pending++
	p.mu.Lock()
	spawn := p.idle == 0 && p.threads < maxPoolThreads
	if spawn {
		p.threads++
	} else if p.idle > 0 {
		p.idle--
	}
	p.mu.Unlock()
	if spawn {
		go p.thread()
	}
	p.jobs <- poolJob{co, job}
}

// poolIdleTimeout is how long a pool thread waits for work before it
// ends (QEMU's thread pool uses 10 s too).
const poolIdleTimeout = 10 * time.Second

// thread is one pool goroutine; it ends after poolIdleTimeout without
// work.
func (p *ThreadPool) thread() {
	idle := time.NewTimer(poolIdleTimeout)
	defer idle.Stop()
	for {
		select {
		case j := <-p.jobs:
			j.job.RunInThread()
			p.mu.Lock()
			p.done = append(p.done, j.co)
			p.idle++
			p.mu.Unlock()
			select {
			case p.notify <- struct{}{}:
			default:
			}
			idle.Reset(poolIdleTimeout)
		case <-idle.C:
			p.mu.Lock()
			if p.idle > 0 {
				// No job is promised to an idle thread: this one
				// can go.
				p.idle--
				p.threads--
				p.mu.Unlock()
				return
			}
			p.mu.Unlock()
			idle.Reset(poolIdleTimeout)
		}
	}
}

// Pending implements Engine.
func (p *ThreadPool) Pending() int { return p.pending }

// WakeChan implements Waker.
func (p *ThreadPool) WakeChan() <-chan struct{} { return p.notify }

// Poll implements Engine: completed jobs wake their requests in
// completion order.
func (p *ThreadPool) Poll(block bool) bool {
	for {
		p.mu.Lock()
		done := p.done
		p.done = p.spare[:0]
		p.mu.Unlock()
		if len(done) > 0 {
			for i, co := range done {
				co.Wake()
				done[i] = nil
			}
			p.pending -= len(done)
			p.spare = done
			return true
		}
		p.spare = done
		if !block || p.pending == 0 {
			return false
		}
		<-p.notify
	}
}
