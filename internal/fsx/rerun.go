package fsx

// Rewinder is a session that can go back to the state it had after the
// setup lines, so that another body runs on it without closing the
// image and making it again (commands.Session implements it). The
// contract, both ways:
//   - fsx calls Mark once, after the setup lines, with nothing in flight,
//     and Rewind after a body, before the next;
//   - Mark fails when the session cannot go back (fsx then makes a new
//     session per body); Rewind fails while requests are in flight or
//     when the body changed what Mark does not cover (another image),
//     and leaves the session to be closed. After a Rewind that succeeded,
//     every line runs, prints and changes the image as on a new session
//     that ran the setup lines.
type Rewinder interface {
	Mark() error
	Rewind() error
}

// Rerunner runs bodies after one run of the setup lines: Check on a
// Rerunner gives what Env.Check gives for the same setup and body.
type Rerunner struct {
	r  *runner
	rw Rewinder
	// What the runner held after the setup.
	m       *model
	now     int
	lastErr string
}

// NewRerunner runs setup on a new session and marks it. It returns nil,
// with the session closed, when the session cannot be rewound or the
// setup did not end cleanly (a failure, output fsx does not follow,
// requests in flight): Check then has nothing to save.
func (e Env) NewRerunner(setup []string) *Rerunner {
	r := newRunner(e)
	for _, l := range setup {
		r.exec(l, -1)
	}
	rw, ok := r.s.(Rewinder)
	if !ok || r.harness != nil || len(r.failures) > 0 || len(r.pending) > 0 || len(r.suspended) > 0 ||
		len(r.unfired) > 0 || r.lateVerify > 0 || len(r.dumpData) > 0 || r.m == nil || rw.Mark() != nil {
		r.close()
		return nil
	}
	return &Rerunner{r: r, rw: rw, m: r.m.clone(), now: r.now, lastErr: r.lastErr}
}

// Check runs body from the state after the setup and checks it against
// the model, as Env.Check(setup, body, nil) does. It then rewinds the
// session; reusable says whether that worked. When it did not, the
// Rerunner is closed, and its session printed what closing it prints,
// as after Env.Check.
func (x *Rerunner) Check(body []string) (res Result, reusable bool) {
	r := x.r
	for i, l := range body {
		r.exec(l, i)
	}
	res = Result{Failures: r.failures, Harness: r.harness}
	if x.rw.Rewind() != nil {
		x.Close()
		return res, false
	}
	// The runner as the setup left it. Output a line cut short by a
	// harness error left unread goes (a closed session drops it too).
	r.s.FlushOutput()
	r.out.Reset()
	r.errb.Reset()
	r.m = x.m.clone()
	r.now = x.now
	r.lastErr = x.lastErr
	r.pending = r.pending[:0]
	clear(r.suspended)
	clear(r.unfired)
	r.line = -1
	r.bodyText = r.bodyText[:0]
	r.ids = r.ids[:0]
	r.cur = nil
	r.dumpData = nil
	r.lateVerify = 0
	r.failures = nil
	r.harness = nil
	r.drained = false
	return res, true
}

// Close closes the session.
func (x *Rerunner) Close() { x.r.close() }

// clone copies the model (a run changes its requests and segments).
func (m *model) clone() *model {
	c := *m
	c.reqs = append([]wreq(nil), m.reqs...)
	c.segs = make([]segment, len(m.segs))
	for i, s := range m.segs {
		c.segs[i] = segment{off: s.off, end: s.end, cands: append([]int(nil), s.cands...)}
	}
	return &c
}
