package blk

import (
	"errors"
	"fmt"
	"time"
)

// Rewinding: explore runs one script's body thousands of times on the
// same image. Closing the image, making it again and opening it cost as
// much as the run itself, so explore marks the open image once, after
// the script's setup, and rewinds it to the mark before the next run.
//
// Rewinder is a driver's node that can go back to an earlier state.
// The contract, both ways:
//   - blk calls Mark and the function it returns only when nothing is in
//     flight on the loop (no request live, runnable, held, no bottom half
//     or timer), and calls rewind any number of times, each after the
//     node served requests since the mark or the last rewind;
//   - Mark records everything of the node that a request, a flush or a
//     debug command can change (the data of a protocol node, learnt
//     capabilities, rules and state of a filter), and rewind restores it,
//     so that the node answers every request as it would have at the
//     mark. Options, limits and the graph are not covered: a caller that
//     reopens, resizes or changes the graph after Mark must not rewind.
//
// A node whose driver does not implement Rewinder, or whose Mark fails
// (a file too large to copy, O_DIRECT), makes the backend not
// rewindable: the caller opens the image afresh instead.
type Rewinder interface {
	Mark() (rewind func() error, err error)
}

// Mark is the state of a backend's graph and of its loop at one moment,
// for Rewind.
type Mark struct {
	b      *Backend
	nodes  []nodeMark
	now    time.Duration
	nextID int
	seq    int
	span   int
}

// nodeMark is what blk itself keeps of a node between requests, and the
// driver's rewind.
type nodeMark struct {
	n                    *Node
	writeGen, flushedGen uint64
	totalBytes           int64
	rewind               func() error
}

// ErrNotRewindable says that a backend cannot be marked or rewound.
var ErrNotRewindable = errors.New("not rewindable")

// Mark records the state of every node of b's graph and of its loop, or
// fails with ErrNotRewindable (wrapped) when some of it cannot be
// recorded: a driver without Rewinder, requests in flight, a clock that
// is not virtual, a parallel I/O engine.
func (b *Backend) Mark() (*Mark, error) {
	l := b.loop
	if err := l.idle(); err != nil {
		return nil, err
	}
	vc, ok := l.clock.(*VirtualClock)
	if !ok || len(l.engines) > 0 || l.pool != nil {
		return nil, fmt.Errorf("%w: a real clock or an I/O engine", ErrNotRewindable)
	}
	m := &Mark{b: b, now: vc.offset, nextID: l.nextID, seq: l.seq, span: l.spanSeq}
	seen := map[*Node]bool{}
	var walk func(n *Node) error
	walk = func(n *Node) error {
		if seen[n] {
			return nil
		}
		seen[n] = true
		for _, c := range n.children {
			if err := walk(c.Node); err != nil {
				return err
			}
		}
		r, ok := n.impl.(Rewinder)
		if !ok {
			return fmt.Errorf("%w: driver %s", ErrNotRewindable, n.driver.Name)
		}
		rewind, err := r.Mark()
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrNotRewindable, n.driver.Name, err)
		}
		m.nodes = append(m.nodes, nodeMark{n: n, writeGen: n.writeGen, flushedGen: n.flushedGen,
			totalBytes: n.totalBytes, rewind: rewind})
		return nil
	}
	if err := walk(b.Root); err != nil {
		return nil, err
	}
	return m, nil
}

// Rewind brings the graph and the loop back to the mark: the nodes'
// data and state, the virtual clock, the numbering of requests and
// timers. It fails, changing nothing, while anything is in flight, and
// with the error of a driver's rewind (the backend is then in no known
// state: close it).
func (m *Mark) Rewind() error {
	l := m.b.loop
	if err := l.idle(); err != nil {
		return err
	}
	for _, nm := range m.nodes {
		n := nm.n
		if n.tracked != nil || n.serialisingInFlight != 0 || n.activeFlush || len(n.flushQueue) > 0 {
			return fmt.Errorf("%w: node %s busy", ErrNotRewindable, n.name)
		}
	}
	for _, nm := range m.nodes {
		n := nm.n
		n.writeGen, n.flushedGen, n.totalBytes = nm.writeGen, nm.flushedGen, nm.totalBytes
		if err := nm.rewind(); err != nil {
			return err
		}
	}
	l.clock.(*VirtualClock).offset = m.now
	l.nextID, l.seq, l.spanSeq = m.nextID, m.seq, m.span
	return nil
}

// idle reports, as an error, anything in flight on the loop.
func (l *Loop) idle() error {
	if len(l.live) > 0 || len(l.ready) > 0 || len(l.ioDone) > 0 || len(l.bhs) > 0 ||
		len(l.timers) > 0 || len(l.held) > 0 || l.cur != nil {
		return fmt.Errorf("%w: requests in flight", ErrNotRewindable)
	}
	return nil
}
