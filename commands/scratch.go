package commands

import (
	"os"
	"os/signal"
	"sync"

	"golang.org/x/sys/unix"
)

// Scratch directories outlive nothing: a session removes its own at
// Cleanup, and a signal that ends the process removes every one still
// registered before the signal takes its default action. On a tmpfs
// (/dev/shm) a forgotten scratch image holds memory until reboot.

// ScratchPrefix starts the name of every scratch directory.
const ScratchPrefix = "gio-scratch-"

var scratchDirs struct {
	sync.Mutex
	m map[string]bool
}

func registerScratch(dir string) {
	scratchDirs.Lock()
	defer scratchDirs.Unlock()
	if scratchDirs.m == nil {
		scratchDirs.m = map[string]bool{}
	}
	scratchDirs.m[dir] = true
}

func unregisterScratch(dir string) {
	scratchDirs.Lock()
	defer scratchDirs.Unlock()
	delete(scratchDirs.m, dir)
}

// RemoveScratchDirs removes every scratch directory of the process. It
// is for the way out (a terminating signal): sessions may still use them.
func RemoveScratchDirs() {
	scratchDirs.Lock()
	defer scratchDirs.Unlock()
	for d := range scratchDirs.m {
		os.RemoveAll(d)
		delete(scratchDirs.m, d)
	}
}

// TerminatingSignals are the signals whose default action ends gio and
// that a handler can catch: gio removes its scratch directories on them.
// SIGINT is left to the caller, because the interactive shell takes it
// as "interrupt the command".
var TerminatingSignals = []os.Signal{unix.SIGHUP, unix.SIGQUIT, unix.SIGTERM, unix.SIGUSR2,
	unix.SIGXCPU, unix.SIGXFSZ, unix.SIGVTALRM, unix.SIGPROF, unix.SIGPWR}

// CleanupOnSignals removes the scratch directories when one of sigs
// arrives, then lets the signal take its default action (the exit status
// is still "killed by SIG"). Standard output is not flushed, as a C
// program killed by the signal would not flush it. stop undoes it.
func CleanupOnSignals(sigs ...os.Signal) (stop func()) {
	ch := make(chan os.Signal, 1)
	done := make(chan struct{})
	signal.Notify(ch, sigs...)
	go func() {
		select {
		case sig := <-ch:
			RemoveScratchDirs()
			raise(sig.(unix.Signal))
			// A signal whose default action is to stop or ignore
			// returns here; the process goes on without its
			// scratch directory only in that unlikely case.
		case <-done:
		}
	}()
	return func() {
		signal.Stop(ch)
		close(done)
	}
}

// scratchBase is where scratch images live: $GIO_SCRATCH_DIR, else a
// tmpfs (/dev/shm) when there is one, because scratch images are thrown
// away at exit and syncing them to a disk only costs time; else the
// system temporary directory.
func scratchBase() string {
	if d := os.Getenv("GIO_SCRATCH_DIR"); d != "" {
		return d
	}
	return shmProbe()
}

// shmProbe answers "/dev/shm" when a file can be made there, else "";
// once per process (explore creates a scratch image per schedule).
var shmProbe = sync.OnceValue(func() string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if f, err := os.CreateTemp("/dev/shm", ".gio-probe-"); err == nil {
			f.Close()
			os.Remove(f.Name())
			return "/dev/shm"
		}
	}
	return ""
})
