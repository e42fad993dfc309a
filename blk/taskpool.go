package blk

import (
	"slices"
	"strings"
)

// TaskPool is QEMU's AioTaskPool: a request splits its work into tasks,
// each a coroutine of its own, and keeps up to max of them in flight. A
// format driver (qcow2) uses it so that the pieces of one request are all
// submitted to its child before the request waits for any of them; the
// order of child I/O, debug events and completions is then QEMU's, which
// decides the data that wins when requests overlap.
//
// Tasks belong to the request that started them: they carry its number
// and name, their debug events count as the request's, and the loop's
// reports show the request waiting where its tasks wait. Only the
// request that made the pool may call its methods, and it must call
// WaitAll before it ends.
type TaskPool struct {
	main    *Co
	max     int
	tasks   []*Co // tasks started and not finished, oldest first
	err     error
	waiting bool // main is parked until a task finishes
}

// whyTasks is the yield reason of a request waiting for its tasks.
const whyTasks = "waits for its tasks"

// NewTaskPool returns a pool for co's tasks, at most max in flight
// (aio_task_pool_new).
func NewTaskPool(co *Co, max int) *TaskPool {
	if max < 1 {
		max = 1
	}
	return &TaskPool{main: co, max: max}
}

// Err returns the error of the first task that failed
// (aio_task_pool_status); nil for a nil pool, so that a request can
// create its pool lazily.
func (p *TaskPool) Err() error {
	if p == nil {
		return nil
	}
	return p.err
}

// Start waits for a free slot, then starts fn as a task, which runs at
// once until it first yields or ends; Start returns then
// (aio_task_pool_start_task, whose qemu_coroutine_enter runs the new
// coroutine before its caller goes on).
func (p *TaskPool) Start(fn func(co *Co) error) {
	if len(p.tasks) >= p.max {
		p.waitOne()
	}
	main := p.main
	l := main.loop
	t := &Co{loop: l, id: main.id, name: main.name, lastEvent: -1, req: main.request()}
	if k := len(main.spans); k > 0 {
		// The task's child requests nest in the request's innermost
		// span, as if the request had made them itself.
		t.spanBuf[0] = main.spans[k-1]
		t.spans = t.spanBuf[:1]
	}
	p.tasks = append(p.tasks, t)
	t.fn = func(co *Co) {
		err := fn(co)
		if i := slices.Index(p.tasks, co); i >= 0 {
			p.tasks = slices.Delete(p.tasks, i, i+1)
		}
		if err != nil && p.err == nil {
			p.err = err
		}
		if p.waiting {
			// aio_co_wake from a coroutine: the request runs as
			// soon as this task has ended, before anything else.
			p.waiting = false
			co.after = append(co.after, main)
		}
	}
	prev := l.cur
	l.cur = t
	t.resume()
	l.cur = prev
}

// waitOne parks the request until one of its tasks ends
// (aio_task_pool_wait_one).
func (p *TaskPool) waitOne() {
	p.waiting = true
	p.main.pool = p
	p.main.park(whyTasks)
	p.main.pool = nil
}

// WaitAll waits until every task has ended (aio_task_pool_wait_all).
func (p *TaskPool) WaitAll() {
	for len(p.tasks) > 0 {
		p.waitOne()
	}
}

// where describes where the tasks wait, for a request waiting for them:
// each distinct reason once, oldest task first.
func (p *TaskPool) where() string {
	var whys []string
	for _, t := range p.tasks {
		w := t.where()
		if w == "" {
			w = "runnable"
		}
		if !slices.Contains(whys, w) {
			whys = append(whys, w)
		}
	}
	if len(whys) == 0 {
		return whyTasks
	}
	return strings.Join(whys, ", ")
}
