package blk

// ChoicePoint names a place where the loop could go on in more than one
// way. There are three, so that a schedule is a short list of choices:
type ChoicePoint uint8

const (
	// ChooseRun: more than one request is runnable (it was submitted,
	// woken by another request, its I/O completion was delivered, or a
	// breakpoint was resumed); one of them runs next.
	ChooseRun ChoicePoint = iota
	// ChooseDeliver: the script is about to go on while requests have
	// finished their I/O; one completion may be delivered first (its
	// request becomes runnable), or none and the script goes on.
	ChooseDeliver
	// ChooseEffect: a request hands I/O to the outside world (Co.DoIO).
	// Its transfer takes effect now, before it yields (0, what the loop
	// does without a chooser), or as late as can be (1): the request is
	// held until a wait (RunUntil) has nothing else to run, then its
	// transfer happens and it goes on. QEMU's thread pool may run the
	// syscall at any moment between submission and completion.
	ChooseEffect
)

func (p ChoicePoint) String() string {
	switch p {
	case ChooseDeliver:
		return "deliver"
	case ChooseEffect:
		return "effect"
	}
	return "run"
}

// Chooser picks the next request at a choice point. The loop calls it
// under the token, always in the same order for the same script and the
// same earlier answers, so a schedule is the list of answers.
//
// For ChooseRun, cands (in FIFO order) are the runnable requests and
// Choose returns the index of the one to run; FIFO is 0. The loop asks
// before every request it runs, also when cands holds only one, so that
// a chooser sees every step (a reduction needs to know what ran); such
// a call is no choice and has no place in a schedule.
// For ChooseDeliver, cands (one or more, in completion order) are the
// requests whose I/O has completed, and Choose returns the index of the
// one to deliver now, or len(cands) (the default) to let the script go
// on. For ChooseEffect, cands is the one request doing I/O and Choose
// returns 0 (effect now) or 1 (effect late). An index out of range means
// the default. The chooser must not keep
// cands (the loop reuses the slice) nor call back into the loop.
type Chooser interface {
	Choose(p ChoicePoint, cands []*Co) int
}

// DoIO is YieldIO for I/O whose transfer is effect: effect runs before
// the request yields, or, when a chooser says so, once a wait has
// nothing else to run (see ChooseEffect). It returns effect's error.
func (co *Co) DoIO(effect func() error) error {
	l := co.loop
	if l.chooser == nil || l.chooser.Choose(ChooseEffect, []*Co{co}) != 1 {
		err := effect()
		co.YieldIO()
		return err
	}
	l.held = append(l.held, co)
	co.park("waits for I/O (held late)")
	return effect()
}

// releaseHeld makes the oldest held request runnable: its late transfer
// happens when it runs.
func (l *Loop) releaseHeld() bool {
	co := l.held[0]
	copy(l.held, l.held[1:])
	l.held[len(l.held)-1] = nil
	l.held = l.held[:len(l.held)-1]
	l.ready = append(l.ready, co)
	return true
}

// SetChooser installs c (nil restores FIFO, which costs nothing).
func (l *Loop) SetChooser(c Chooser) { l.chooser = c }

// choose runs the request the chooser picks among the runnable ones and
// reports whether it ran one.
func (l *Loop) choose() bool {
	live := l.ready[:0]
	for _, co := range l.ready {
		if !co.done {
			live = append(live, co)
		}
	}
	clear(l.ready[len(live):])
	l.ready = live
	if len(l.ready) == 0 {
		return false
	}
	i := l.chooser.Choose(ChooseRun, l.ready)
	if i < 0 || i >= len(l.ready) {
		i = 0
	}
	co := l.ready[i]
	copy(l.ready[i:], l.ready[i+1:])
	l.ready[len(l.ready)-1] = nil
	l.ready = l.ready[:len(l.ready)-1]
	l.cur = co
	co.resume()
	l.cur = nil
	return true
}

// deliverChosen makes the completion the chooser picks runnable, and
// reports whether it picked one.
func (l *Loop) deliverChosen() bool {
	if len(l.ioDone) == 0 {
		return false
	}
	i := l.chooser.Choose(ChooseDeliver, l.ioDone)
	if i < 0 || i >= len(l.ioDone) {
		return false
	}
	co := l.ioDone[i]
	copy(l.ioDone[i:], l.ioDone[i+1:])
	l.ioDone[len(l.ioDone)-1] = nil
	l.ioDone = l.ioDone[:len(l.ioDone)-1]
	l.ready = append(l.ready, co)
	return true
}
