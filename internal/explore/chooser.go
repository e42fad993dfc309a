package explore

import (
	"strconv"
	"strings"

	"gio/blk"
)

// span is the part of the image a request may touch, widened to the
// grain (the alignment read-modify-write works in), from its name
// "#N VERB OFF LEN". A request whose name says nothing of a range
// (flush, open, close) is dependent on everything.
type span struct {
	off, end int64
	write    bool
	known    bool
}

// spanOf reads a request's span from its name.
func spanOf(name string, grain int64) span {
	// The chooser asks at every choice point: split the four words
	// without allocating.
	var f [4]string
	k := 0
	for w := range strings.FieldsSeq(name) {
		if k == len(f) {
			return span{}
		}
		f[k] = w
		k++
	}
	if k != 4 {
		return span{}
	}
	off, err1 := strconv.ParseInt(f[2], 10, 64)
	n, err2 := strconv.ParseInt(f[3], 10, 64)
	if err1 != nil || err2 != nil || off < 0 || n < 0 {
		return span{}
	}
	var write bool
	switch f[1] {
	case "read", "aio_read", "readv":
	case "write", "aio_write", "writev", "discard":
		write = true
	default:
		return span{}
	}
	return span{off: off / grain * grain, end: (off + n + grain - 1) / grain * grain, write: write, known: true}
}

// independent reports whether two requests' steps commute as far as the
// image's data goes: both ranges known, and both reads or the widened
// ranges disjoint.
func independent(a, b span) bool {
	if !a.known || !b.known {
		return false
	}
	if !a.write && !b.write {
		return true
	}
	return a.end <= b.off || b.end <= a.off
}

// sleeper is a request asleep in the sense of sleep sets: a sibling
// already explored, whose step the current branch need not try again
// until something dependent on it has run.
type sleeper struct {
	id int
	sp span
}

// chooser answers the loop's choice points: from a replayed prefix, then
// by its policy (FIFO, skipping sleeping requests, or PCT priorities).
type chooser struct {
	prefix []int
	// extra adds sleepers at a step of the prefix: the siblings the
	// search explored before the branch this run takes there.
	extra map[int][]sleeper
	grain int64
	// reduce turns on sleep sets.
	reduce bool
	pct    *pct

	tr      []point
	sleep   []sleeper
	sleepAt [][]sleeper // the sleep set when each step was met
	// snap is the copy of sleep the last step took, while sleep has
	// not changed since (snapOK): steps share it (read only).
	snap      []sleeper
	snapOK    bool
	defAt     []int // the answer the policy would give at each step
	redundant int   // the step where every candidate slept, or -1
	invalid   bool  // a prefix answer had no such alternative

	// line is the body line running (set by the session); late lists
	// the requests whose effect came late, with the lines of their
	// submission and of the effect.
	line int
	late []lateEffect

	// lines are the script's I/O spans (Script.lines) when reducing;
	// skipped counts the effect choices they made pointless.
	lines   []span
	skipped int

	// spans caches spanFor's answers by request number (small numbers,
	// given by the loop in order).
	spans []cachedSpan

	// idSlab and spanSlab are where points' ids and spans are cut
	// from (alloc).
	idSlab   []int
	spanSlab []span
}

type cachedSpan struct {
	sp span
	ok bool
}

// spanFor is spanOf(co.Name()), parsed once per request: the chooser
// asks at every choice point.
func (c *chooser) spanFor(co *blk.Co) span {
	id := co.ID()
	if id < 0 || id > 1<<16 {
		return spanOf(co.Name(), c.grain)
	}
	if id >= len(c.spans) {
		c.spans = append(c.spans, make([]cachedSpan, id+1-len(c.spans))...)
	}
	if e := &c.spans[id]; !e.ok {
		*e = cachedSpan{sp: spanOf(co.Name(), c.grain), ok: true}
	}
	return c.spans[id].sp
}

// alone reports whether only one line of the script (the request's
// own) touches data the request's span depends on: then its effect
// commutes with every other request's, and now or late is no choice.
func (c *chooser) alone(sp span) bool {
	if !sp.known || c.lines == nil {
		return false
	}
	n := 0
	for _, l := range c.lines {
		if !independent(sp, l) {
			n++
		}
	}
	return n <= 1
}

// lateEffect is an I/O whose effect the schedule placed late.
type lateEffect struct {
	id               int
	reqName          string
	atLine, effectAt int
}

// ranReq notes that request id runs: a late effect happens now. With
// sleep sets, a late effect whose request still sleeps (its effect at
// once was explored in a sibling branch, and nothing dependent on it has
// run since) makes the run redundant: moving the effect back to its
// choice point commutes with every step between.
func (c *chooser) ranReq(id int) {
	for i := range c.late {
		if c.late[i].id == id && c.late[i].effectAt < 0 {
			c.late[i].effectAt = c.line
			if c.reduce && c.redundant < 0 && len(c.tr) >= len(c.prefix) && c.asleep(id) {
				c.redundant = len(c.tr)
			}
		}
	}
}

func newChooser(prefix []int, grain int64, reduce bool) *chooser {
	// Room for the steps of a small script's run, which would
	// otherwise grow the trace a few times per run.
	const steps = 32
	c := &chooser{prefix: prefix, grain: grain, reduce: reduce, redundant: -1,
		tr: make([]point, 0, steps), defAt: make([]int, 0, steps)}
	if reduce {
		c.sleepAt = make([][]sleeper, 0, steps)
	}
	return c
}

func (c *chooser) asleep(id int) bool {
	for _, s := range c.sleep {
		if s.id == id {
			return true
		}
	}
	return false
}

// ran updates the sleep set after the step of a request with span sp.
func (c *chooser) ran(sp span) {
	if len(c.sleep) == 0 {
		return
	}
	keep := c.sleep[:0]
	for _, s := range c.sleep {
		if independent(s.sp, sp) {
			keep = append(keep, s)
		}
	}
	if len(keep) < len(c.sleep) {
		c.snapOK = false
	}
	c.sleep = keep
}

// allAlone reports whether every request in cands is alone.
func (c *chooser) allAlone(cands []*blk.Co) bool {
	for _, co := range cands {
		if !c.alone(c.spanFor(co)) {
			return false
		}
	}
	return true
}

// Choose implements blk.Chooser.
func (c *chooser) Choose(kind blk.ChoicePoint, cands []*blk.Co) int {
	if c.line < 0 {
		// Creating and opening the image is not what is explored.
		if kind == blk.ChooseDeliver {
			return len(cands)
		}
		return 0
	}
	if kind == blk.ChooseEffect && c.reduce && c.alone(c.spanFor(cands[0])) {
		c.skipped++
		return 0
	}
	if kind == blk.ChooseDeliver && c.reduce && c.allAlone(cands) {
		// Delivering any of them early commutes with what the
		// script does next.
		c.skipped++
		return len(cands)
	}
	if kind == blk.ChooseRun && len(cands) == 1 {
		c.ranReq(cands[0].ID())
		if c.reduce {
			c.ran(c.spanFor(cands[0]))
		}
		return 0
	}
	step := len(c.tr)
	p := point{kind: kind, n: len(cands), line: c.line}
	switch kind {
	case blk.ChooseDeliver:
		p.n++
		p.ids, p.rngs = c.alloc(p.n)
		for i, co := range cands {
			p.ids[i+1] = co.ID()
			p.rngs[i+1] = c.spanFor(co)
		}
	case blk.ChooseEffect:
		p.n = 2
		p.ids, p.rngs = c.alloc(2)
		sp := c.spanFor(cands[0])
		p.ids[0], p.ids[1] = cands[0].ID(), cands[0].ID()
		p.rngs[0], p.rngs[1] = sp, sp
	default:
		p.ids, p.rngs = c.alloc(p.n)
		for i, co := range cands {
			p.ids[i] = co.ID()
			p.rngs[i] = c.spanFor(co)
		}
	}
	if c.reduce {
		if x := c.extra[step]; len(x) > 0 {
			c.sleep = append(c.sleep, x...)
			c.snapOK = false
		}
		if !c.snapOK {
			c.snap = append([]sleeper(nil), c.sleep...)
			c.snapOK = true
		}
		c.sleepAt = append(c.sleepAt, c.snap)
	}
	def := c.policy(p, step >= len(c.prefix))
	c.defAt = append(c.defAt, def)
	alt := def
	if step < len(c.prefix) {
		alt = c.prefix[step]
		if alt >= p.n {
			c.invalid = true
			alt = 0
		}
	}
	p.alt = alt
	c.tr = append(c.tr, p)
	if kind == blk.ChooseEffect {
		if alt == 1 {
			c.late = append(c.late, lateEffect{id: cands[0].ID(), reqName: cands[0].Name(), atLine: c.line, effectAt: -1})
		}
		return alt
	}
	if kind == blk.ChooseDeliver {
		if alt == 0 {
			return len(cands)
		}
		return alt - 1
	}
	c.ranReq(p.ids[alt])
	if c.reduce {
		c.ran(p.rngs[alt])
	}
	return alt
}

// alloc returns zeroed ids and spans for a point of n alternatives,
// cut from slabs the chooser's points share (a point's slices are
// never appended to, and outlive the run in the search's path).
func (c *chooser) alloc(n int) ([]int, []span) {
	if len(c.idSlab)+n > cap(c.idSlab) {
		c.idSlab = make([]int, 0, max(64, n))
		c.spanSlab = make([]span, 0, max(64, n))
	}
	k := len(c.idSlab)
	c.idSlab = c.idSlab[:k+n]
	c.spanSlab = c.spanSlab[:k+n]
	return c.idSlab[k : k+n : k+n], c.spanSlab[k : k+n : k+n]
}

// policy is the answer beyond the prefix: PCT's, or the first request
// not asleep (FIFO without reduction). A run point where every request
// sleeps makes the run redundant.
func (c *chooser) policy(p point, free bool) int {
	if c.pct != nil {
		return c.pct.choose(len(c.tr), p)
	}
	if p.kind != blk.ChooseRun || !c.reduce {
		return 0
	}
	for i, id := range p.ids {
		if !c.asleep(id) {
			return i
		}
	}
	if free && c.redundant < 0 {
		c.redundant = len(c.tr)
	}
	return 0
}
