package blk

import (
	"iter"
	"sync"
)

// worker is a pooled coroutine that runs requests one after another:
// QEMU's coroutine pool. Creating a goroutine per request (and handing the
// token to it by channel) made every request pay a goroutine start and
// two cross-thread wake-ups; a worker is resumed with iter.Pull's next,
// a direct switch on the loop's thread.
//
// A worker belongs to no loop: it runs whichever request it is given, and
// returns to the pool when that request ends.
type worker struct {
	next  func() (struct{}, bool)
	stop  func()
	yield func(struct{}) bool
	co    *Co // the request being run; set before the first resume
}

// maxIdleWorkers bounds the pool. More workers than this exist only while
// that many requests are parked at once (20000 aio_write commands before
// one aio_flush); the surplus is stopped when they finish.
const maxIdleWorkers = 256

var workerPool struct {
	sync.Mutex
	idle []*worker
}

func getWorker() *worker {
	workerPool.Lock()
	if n := len(workerPool.idle); n > 0 {
		w := workerPool.idle[n-1]
		workerPool.idle[n-1] = nil
		workerPool.idle = workerPool.idle[:n-1]
		workerPool.Unlock()
		return w
	}
	workerPool.Unlock()
	w := &worker{}
	w.next, w.stop = iter.Pull(w.run)
	return w
}

func putWorker(w *worker) {
	w.co = nil
	workerPool.Lock()
	if len(workerPool.idle) < maxIdleWorkers {
		workerPool.idle = append(workerPool.idle, w)
		workerPool.Unlock()
		return
	}
	workerPool.Unlock()
	w.stop()
}

// run is the worker's body: each turn runs one request to its end, then
// yields to whoever resumed it last and waits for the next request. A
// request that parks yields from inside fn (Co.park).
func (w *worker) run(yield func(struct{}) bool) {
	w.yield = yield
	for {
		co := w.co
		fn := co.fn
		co.fn = nil
		fn(co)
		co.done = true
		delete(co.loop.live, co)
		if !yield(struct{}{}) {
			return
		}
	}
}
