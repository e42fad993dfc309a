package explore

import (
	"io"
	"strings"
	"sync"

	"gio/blk"
	"gio/internal/fsx"
)

// A search runs one script thousands of times. Making a session, a
// scratch image and a node graph per run, and closing them, cost as
// much as the run itself; so each worker keeps a session that ran the
// setup once, and rewinds it after each run (fsx.Rerunner,
// blk.Rewinder). A kept session gives every run exactly what a new one
// would: the image's bytes, the nodes' state, the virtual clock and
// the request numbers are those after the setup. Where that cannot be
// promised (a format without Rewinder, such as qcow2, a body that opens
// or resizes, requests left in flight) runs go on new sessions, as
// before.

// rewindable are the commands a body may use on a kept session: I/O,
// drains and breakpoints, which change only what blk.Rewinder restores.
var rewindable = map[string]bool{"aio_read": true, "aio_write": true, "read": true, "write": true,
	"readv": true, "writev": true, "discard": true, "aio_flush": true, "flush": true, "break": true,
	"wait_break": true, "resume": true, "remove_break": true, "sleep": true, "echo": true}

// canKeep reports whether sc's runs may share kept sessions.
func canKeep(sc *Script) bool {
	for _, l := range append(append([]string(nil), sc.Body...), sc.Closing...) {
		if f := strings.Fields(l); len(f) == 0 || !rewindable[f[0]] {
			return false
		}
	}
	return true
}

// kept is a session after the setup, with the writers and wrapper the
// runs share; each run points them at its chooser.
type kept struct {
	rr   *fsx.Rerunner
	slot *chooserSlot
	sw   *stateWriter
	st   *stuckWriter
	ls   *lineSession
	// h0 is the state hash after the setup (what a new session's
	// setup would have hashed).
	h0 uint64
}

// chooserSlot is the loop's chooser on a kept session: the chooser of
// the run going on.
type chooserSlot struct{ c *chooser }

func (s *chooserSlot) Choose(p blk.ChoicePoint, cands []*blk.Co) int { return s.c.Choose(p, cands) }

// keeper hands kept sessions to the runs of one search, at most one per
// worker at a time.
type keeper struct {
	env  Env
	sc   *Script
	mu   sync.Mutex
	free []*kept
	// off is set when the setup cannot be kept: every run makes its
	// own session.
	off bool
}

// run runs sc under ch, on a kept session when it can.
func (kp *keeper) run(ch *chooser) outcome {
	k := kp.take()
	if k == nil {
		return kp.env.run(kp.sc, ch)
	}
	// Everything a new session's run starts from.
	kp.bind(k, ch)
	k.sw.h, k.sw.buf = k.h0, k.sw.buf[:0]
	k.st.stuck = ""
	res, ok := k.rr.Check(kp.body())
	o := verdict(kp.sc, res, k.sw, k.st)
	if ok {
		kp.give(k)
	}
	return o
}

// bind points a kept session's line counting at ch, as at the start of
// a body on a new session.
func (kp *keeper) bind(k *kept, ch *chooser) {
	k.slot.c = ch
	k.st.line = &ch.line
	k.ls.line = &ch.line
	k.ls.n = k.ls.base
}

func (kp *keeper) body() []string {
	return append(append([]string(nil), kp.sc.Body...), kp.sc.Closing...)
}

// take returns a free kept session, a new one, or nil when runs cannot
// share sessions.
func (kp *keeper) take() *kept {
	kp.mu.Lock()
	if kp.off {
		kp.mu.Unlock()
		return nil
	}
	if n := len(kp.free); n > 0 {
		k := kp.free[n-1]
		kp.free = kp.free[:n-1]
		kp.mu.Unlock()
		return k
	}
	kp.mu.Unlock()
	k := kp.make()
	if k == nil {
		kp.mu.Lock()
		kp.off = true
		kp.mu.Unlock()
	}
	return k
}

func (kp *keeper) give(k *kept) {
	kp.mu.Lock()
	kp.free = append(kp.free, k)
	kp.mu.Unlock()
}

// make runs the setup on a new session, under a chooser that answers
// FIFO there (as every run's chooser does during the setup).
func (kp *keeper) make() *kept {
	sc := kp.sc
	k := &kept{slot: &chooserSlot{c: newChooser(nil, sc.grain, false)}}
	k.slot.c.line = -len(sc.Setup)
	fe := fsx.Env{NewSession: func(out, errw io.Writer) fsx.Session {
		k.sw = &stateWriter{w: out}
		k.st = &stuckWriter{w: errw, body: len(sc.Body), line: &k.slot.c.line}
		s := kp.env.NewSession(k.sw, k.st, k.slot)
		fsx.UseRecords(s)
		k.ls = &lineSession{Session: s, line: &k.slot.c.line, base: len(sc.Setup)}
		return k.ls
	}}
	k.rr = fe.NewRerunner(sc.Setup)
	if k.rr == nil {
		return nil
	}
	if k.st.unknown != "" || k.st.stuck != "" || len(k.sw.buf) > 0 || len(k.slot.c.tr) > 0 {
		k.rr.Close()
		return nil
	}
	k.h0 = k.sw.h
	return k
}

// close closes the free kept sessions (at the end of the search, when
// every run is over).
func (kp *keeper) close() {
	for _, k := range kp.free {
		k.rr.Close()
	}
	kp.free = nil
}
