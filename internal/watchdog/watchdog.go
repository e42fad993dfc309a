// Package watchdog stops a fuzz input that runs away. The fuzzing
// engine has no timeout per input, so each fuzz target arms a watchdog
// around one input; when it fires it prints every goroutine's stack and
// exits, a crash that makes the engine keep the input.
//
// The budget is CPU time of the process, not wall time: on a machine
// shared with other work an input gets a fraction of a core, and a
// wall-clock limit then fails inputs that are merely slow to be
// scheduled (a qcow corpus entry of 3 CPU-seconds under -race took 22 s
// of wall time at load 30). A loop that never ends burns CPU and still
// trips it; a wait that never ends trips the wall-clock backstop, many
// times the budget. Fuzz inputs run one at a time in a process (the
// seed corpus after the package's tests, the fuzzing workers one input
// each), so the process's CPU time is the input's.
package watchdog

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"
)

// backstop is how many times the CPU budget an input may wait in wall
// time before the watchdog fires anyway.
const backstop = 30

// period is how often the watchdog looks at the CPU time used.
var period = time.Second

// Start arms a watchdog for one input named what: it fires once the
// process has used more than budget of CPU time (user and system) since
// Start, or backstop times budget of wall time has passed. It writes to
// os.Stderr as it is when Start is called (a test may swap it later).
// The returned stop disarms it.
func Start(what string, budget time.Duration) (stop func()) {
	return start(what, budget, os.Stderr, func() { os.Exit(2) })
}

func start(what string, budget time.Duration, w io.Writer, exit func()) (stop func()) {
	d := &dog{what: what, budget: budget, w: w, exit: exit, cpu0: cpuTime(), wall0: time.Now()}
	d.mu.Lock()
	d.timer = time.AfterFunc(min(period, budget), d.check)
	d.mu.Unlock()
	return d.stop
}

type dog struct {
	what    string
	budget  time.Duration
	w       io.Writer
	exit    func()
	cpu0    time.Duration
	wall0   time.Time
	mu      sync.Mutex
	timer   *time.Timer
	stopped bool
}

func (d *dog) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stopped = true
	d.timer.Stop()
}

// check fires the watchdog if the input is over its budget, else looks
// again a period later.
func (d *dog) check() {
	cpu, wall := cpuTime()-d.cpu0, time.Since(d.wall0)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return
	}
	if cpu <= d.budget && wall <= backstop*d.budget {
		d.timer = time.AfterFunc(min(period, d.budget), d.check)
		return
	}
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	fmt.Fprintf(d.w, "%s: input still running after %v of CPU time (budget %v), %v of wall time:\n%s\n",
		d.what, cpu.Round(time.Millisecond), d.budget, wall.Round(time.Millisecond), buf)
	d.exit()
}

// cpuTime is the CPU time (user and system) the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
