package blkdebug

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"gio/blk"

	"golang.org/x/sys/unix"
)

// node is an open blkdebug node. Its fields are touched only under the
// scheduler token (or during open), so they need no lock.
type node struct {
	out   func() io.Writer
	self  *blk.Node
	image *blk.Child
	loop  *blk.Loop

	// Limit overrides, immutable after open; 0 means "not set".
	align, maxTransfer         int64
	optWriteZero, maxWriteZero int64
	optDiscard, maxDiscard     int64
	takePerms, unsharePerms    blk.Perm

	// state is the state machine's state; rules with a State only fire
	// in it. It starts at 1.
	state int
	// rules holds each event's rules, newest first (QLIST_INSERT_HEAD).
	rules [][]*rule
	// active is the set of inject-error rules the last event that had
	// matching ones activated, most recently inserted first; every
	// request checks it.
	active []*rule
	// suspended lists the requests stopped by Suspend rules, most
	// recently suspended first, so that resume picks the newest.
	suspended []*suspendedReq
	// scheduled holds requests that failed with a non-immediate error and
	// wait for the next loop point (QEMU's aio_co_schedule list).
	scheduled []*blk.Co
	// onEvent, if set, sees every event fired on the node (tests).
	onEvent func(blk.Event)
}

// rule is a Rule with an identity, so that it can sit in both an event's
// list and the active list and be removed from both.
type rule struct{ Rule }

type suspendedReq struct {
	co  *blk.Co
	tag string
}

var (
	_ blk.Impl            = (*node)(nil)
	_ blk.ZeroWriter      = (*node)(nil)
	_ blk.Discarder       = (*node)(nil)
	_ blk.BlockStatuser   = (*node)(nil)
	_ blk.DiskFlusher     = (*node)(nil)
	_ blk.Truncater       = (*node)(nil)
	_ blk.LimitsRefresher = (*node)(nil)
	_ blk.DebugEventer    = (*node)(nil)
	_ blk.Breakpointer    = (*node)(nil)
)

// add puts r at the head of its event's list.
func (b *node) add(r Rule) {
	b.rules[r.Event] = slices.Insert(b.rules[r.Event], 0, &rule{r})
}

// remove deletes r from its event's list and from the active list.
func (b *node) remove(r *rule) {
	b.rules[r.Event] = slices.DeleteFunc(b.rules[r.Event], func(x *rule) bool { return x == r })
	b.active = slices.DeleteFunc(b.active, func(x *rule) bool { return x == r })
}

// Rules returns the node's unfired rules, event by event in QEMU's event
// order, each event's newest first.
func (b *node) Rules() []Rule {
	var out []Rule
	for _, l := range b.rules {
		for _, r := range l {
			out = append(out, r.Rule)
		}
	}
	return out
}

// ---------------------------------------------------------------------
// Events (blkdebug_co_debug_event, process_rule, suspend_request).

// DebugEvent processes ev's rules for the request co. Each Suspend rule
// that fires stops co once: it needs one resume per rule.
func (b *node) DebugEvent(co *blk.Co, ev blk.Event) {
	if b.onEvent != nil {
		b.onEvent(ev)
	}
	n := b.processFor(co, ev)
	for ; n > 0; n-- {
		co.Park("suspended at " + b.suspendedTags(co))
	}
}

// process handles an event fired outside any request (none, at open).
func (b *node) process(ev blk.Event) { b.processFor(nil, ev) }

// processFor walks ev's rules newest first and returns how many
// suspended co. Only rules for the current state (or any state) fire:
// the first inject-error rule of the event replaces the active set and
// each one goes to its head; set-state rules take effect after the walk,
// so every rule of the event sees the same state; suspend rules are
// consumed.
func (b *node) processFor(co *blk.Co, ev blk.Event) int {
	if ev < 0 || int(ev) >= len(b.rules) {
		return 0
	}
	newState := b.state
	injected, suspends := false, 0
	for _, r := range slices.Clone(b.rules[ev]) {
		if r.State != 0 && r.State != b.state {
			continue
		}
		if b.tracing() {
			b.trace(blk.TraceEvent{Kind: blk.TraceRule, Req: coID(co), Name: ev.String(),
				Why: strings.TrimSpace(strings.ReplaceAll(r.String(), "\n", " "))})
		}
		switch r.Action {
		case InjectError:
			if !injected {
				b.active = nil
				injected = true
			}
			b.active = slices.Insert(b.active, 0, r)
		case SetState:
			newState = r.NewState
		case Suspend:
			if co == nil {
				continue // cannot happen: breakpoints need an open node
			}
			b.remove(r)
			b.suspended = slices.Insert(b.suspended, 0, &suspendedReq{co: co, tag: r.Tag})
			fmt.Fprintf(b.out(), "blkdebug: Suspended request '%s'\n", r.Tag)
			b.trace(blk.TraceEvent{Kind: blk.TraceBreakHit, Req: co.ID(), Name: ev.String(), Why: r.Tag})
			suspends++
		}
	}
	b.state = newState
	return suspends
}

// suspendedTags names where co waits, for reports of stuck waits.
func (b *node) suspendedTags(co *blk.Co) string {
	var tags []string
	for _, s := range b.suspended {
		if s.co == co {
			tags = append(tags, "'"+s.tag+"'")
		}
	}
	return strings.Join(tags, ", ")
}

// ---------------------------------------------------------------------
// Breakpoints.

// Break adds a one-shot rule that suspends the next request firing event
// under tag (blkdebug_debug_breakpoint). An unknown event is ENOENT.
func (b *node) Break(event, tag string) error {
	ev, ok := blk.ParseEvent(event)
	if !ok {
		return unix.ENOENT
	}
	b.add(NewSuspend(ev, tag))
	b.trace(blk.TraceEvent{Kind: blk.TraceBreakSet, Name: event, Why: tag})
	return nil
}

// resumeOne takes the most recently suspended request with tag off the
// list, says so and makes it runnable.
func (b *node) resumeOne(tag string) bool {
	i := slices.IndexFunc(b.suspended, func(s *suspendedReq) bool { return s.tag == tag })
	if i < 0 {
		return false
	}
	co := b.suspended[i].co
	b.suspended = slices.Delete(b.suspended, i, i+1)
	fmt.Fprintf(b.out(), "blkdebug: Resuming request '%s'\n", tag)
	b.trace(blk.TraceEvent{Kind: blk.TraceBreakResume, Req: co.ID(), Why: tag})
	co.Wake()
	return true
}

// Resume lets the most recently suspended request with tag go on
// (blkdebug_debug_resume). The request becomes runnable; the caller runs
// the loop to let it run until it blocks again, as qemu_coroutine_enter
// does. ENOENT if no request is suspended under tag.
func (b *node) Resume(tag string) error {
	if !b.resumeOne(tag) {
		return unix.ENOENT
	}
	return nil
}

// RemoveBreak deletes every unfired breakpoint with tag and resumes every
// request suspended under it (blkdebug_debug_remove_breakpoint). QEMU
// enters each resumed request before looking for the next, so each one
// runs until it blocks before the next "Resuming" line: RemoveBreak runs
// the loop's ready requests after each resume, and must therefore be
// called by the loop's driver, never from inside a request.
//
// The error is ENOENT when no unfired breakpoint had the tag, even if
// requests were resumed: QEMU 7.2's resume loop always ends by reporting
// that it found nothing more, and qemu-io prints "Could not remove
// breakpoint TAG: No such file or directory" after the Resuming lines.
func (b *node) RemoveBreak(tag string) error {
	found := false
	for ev := range b.rules {
		for _, r := range slices.Clone(b.rules[ev]) {
			if r.Action == Suspend && r.Tag == tag {
				b.remove(r)
				found = true
			}
		}
	}
	for b.resumeOne(tag) {
		if b.loop != nil {
			b.loop.RunReady()
		}
	}
	if !found {
		return unix.ENOENT
	}
	return nil
}

// IsSuspended reports whether a request is suspended under tag.
func (b *node) IsSuspended(tag string) bool {
	return slices.ContainsFunc(b.suspended, func(s *suspendedReq) bool { return s.tag == tag })
}

// Tags lists the tags of unfired breakpoints and suspended requests,
// sorted, each once (for completion).
func (b *node) Tags() []string {
	seen := map[string]bool{}
	for _, l := range b.rules {
		for _, r := range l {
			if r.Action == Suspend {
				seen[r.Tag] = true
			}
		}
	}
	for _, s := range b.suspended {
		seen[s.tag] = true
	}
	out := make([]string, 0, len(seen))
	for t := range seen {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// ---------------------------------------------------------------------
// Error injection (rule_check).

// ruleCheck asks the active rules about a request of type t covering
// [off, off+bytes) as this node sees it. It returns the error to fail
// with, or skip when a rule with a negative errno says the request
// "succeeds" without doing anything. A match that injects yields once
// first unless the rule says immediately.
func (b *node) ruleCheck(co *blk.Co, off, bytes int64, t IOType) (skip bool, err error) {
	var hit *rule
	for _, r := range b.active {
		if r.IOTypeMask.Has(t) && sectorMatches(r.Sector, off, bytes) {
			hit = r
			break
		}
	}
	if hit == nil || hit.Errno == 0 {
		return false, nil
	}
	errno, immediately := hit.Errno, hit.Immediately
	if hit.Once {
		b.remove(hit)
	}
	if errno > 0 {
		b.trace(blk.TraceEvent{Kind: blk.TraceError, Req: coID(co), Name: "injected", Off: off, Bytes: bytes, Err: unix.Errno(errno)})
	}
	if !immediately {
		b.reschedule(co)
	}
	if errno < 0 {
		return true, nil
	}
	return false, unix.Errno(errno)
}

// sectorMatches is rule_check's position test, in QEMU's unsigned
// arithmetic: a request matches when the rule's byte offset lies inside
// it, which an empty request (a flush) never does.
func sectorMatches(sector, off, bytes int64) bool {
	if sector == AnySector {
		return true
	}
	s := uint64(sector * 512)
	return bytes > 0 && s >= uint64(off) && s < uint64(off)+uint64(bytes)
}

// reschedule parks co until the next loop point (aio_co_schedule of the
// current coroutine, then yield): the error then completes after
// everything already due, which is the completion order qemu-io shows.
// As in QEMU, one bottom half serves every request scheduled before it
// runs, and enters them in order, each running until it blocks.
func (b *node) reschedule(co *blk.Co) {
	if len(b.scheduled) == 0 {
		co.Loop().ScheduleBH(func() {
			cos := b.scheduled
			b.scheduled = nil
			for _, c := range cos {
				c.Wake()
				c.Loop().RunReady()
			}
		})
	}
	b.scheduled = append(b.scheduled, co)
	co.Park("injected error")
}

// ---------------------------------------------------------------------
// The request path. Each entry point checks the guarantees blk gives
// (blkdebug is a contract checker as much as an error injector), asks
// the rules, and forwards to the image through blk's generic path.

// contractHook is called with a description of every broken guarantee;
// tests make it fail the test. The request itself fails with EIO, since
// QEMU's assertions would have aborted.
var contractHook = func(msg string) {}

func (b *node) violation(format string, args ...any) error {
	contractHook(fmt.Sprintf(format, args...))
	return unix.EIO
}

// checkIO is the sanity check of blkdebug_co_preadv/pwritev.
func (b *node) checkIO(op string, off, bytes int64) error {
	l := b.self.Limits()
	a := l.RequestAlignment
	if off%a != 0 || bytes%a != 0 {
		return b.violation("blkdebug: %s %d+%d not aligned to %d", op, off, bytes, a)
	}
	if l.MaxTransfer > 0 && bytes > l.MaxTransfer {
		return b.violation("blkdebug: %s %d+%d longer than max-transfer %d", op, off, bytes, l.MaxTransfer)
	}
	return nil
}

// crossesBoundary reports whether [off, off+bytes) crosses a multiple of
// align without starting or ending on one: a piece the generic layer
// should have cut.
func crossesBoundary(off, bytes, align int64) bool {
	end := off + bytes
	return off%align != 0 && end%align != 0 && ceilDiv(off, align) != ceilDiv(end, align)
}

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }

// PRead implements blk.Impl.
func (b *node) PRead(co *blk.Co, off int64, buf []byte, flags blk.ReqFlags) error {
	if err := b.checkIO("read", off, int64(len(buf))); err != nil {
		return err
	}
	if skip, err := b.ruleCheck(co, off, int64(len(buf)), IORead); skip || err != nil {
		return err
	}
	return b.image.Node.PRead(co, off, buf, flags)
}

// PWrite implements blk.Impl.
func (b *node) PWrite(co *blk.Co, off int64, buf []byte, flags blk.ReqFlags) error {
	if err := b.checkIO("write", off, int64(len(buf))); err != nil {
		return err
	}
	if skip, err := b.ruleCheck(co, off, int64(len(buf)), IOWrite); skip || err != nil {
		return err
	}
	return b.image.Node.PWrite(co, off, buf, flags)
}

// PWriteZeroes implements blk.ZeroWriter. Pieces shorter than the zero
// alignment are refused with ENOTSUP, so that blk's fallback to writing
// zeroes gets exercised; they must not cross an alignment boundary.
func (b *node) PWriteZeroes(co *blk.Co, off, bytes int64, flags blk.ReqFlags) error {
	l := b.self.Limits()
	align := max(l.RequestAlignment, l.PwriteZeroesAlignment)
	if bytes < align {
		if crossesBoundary(off, bytes, align) {
			return b.violation("blkdebug: write-zeroes %d+%d crosses a %d boundary", off, bytes, align)
		}
		return unix.ENOTSUP
	}
	if off%align != 0 || bytes%align != 0 {
		return b.violation("blkdebug: write-zeroes %d+%d not aligned to %d", off, bytes, align)
	}
	if l.MaxPwriteZeroes > 0 && bytes > l.MaxPwriteZeroes {
		return b.violation("blkdebug: write-zeroes %d+%d longer than max-write-zero %d", off, bytes, l.MaxPwriteZeroes)
	}
	if skip, err := b.ruleCheck(co, off, bytes, IOWriteZeroes); skip || err != nil {
		return err
	}
	return b.image.Node.PWriteZeroes(co, off, bytes, flags)
}

// PDiscard implements blk.Discarder. Pieces shorter than the request
// alignment are skipped (ENOTSUP: discard is advisory). QEMU 7.2 divides
// by the discard alignment here and dies of SIGFPE when align is set but
// opt-discard is not; gio checks against align instead.
func (b *node) PDiscard(co *blk.Co, off, bytes int64) error {
	l := b.self.Limits()
	ra, pa := l.RequestAlignment, l.PdiscardAlignment
	if bytes < ra {
		if pa == 0 {
			pa = ra
		}
		if crossesBoundary(off, bytes, pa) {
			return b.violation("blkdebug: discard %d+%d crosses a %d boundary", off, bytes, pa)
		}
		return unix.ENOTSUP
	}
	if off%ra != 0 || bytes%ra != 0 {
		return b.violation("blkdebug: discard %d+%d not aligned to %d", off, bytes, ra)
	}
	if pa != 0 && bytes >= pa && (off%pa != 0 || bytes%pa != 0) {
		return b.violation("blkdebug: discard %d+%d not aligned to opt-discard %d", off, bytes, pa)
	}
	if l.MaxPdiscard > 0 && bytes > l.MaxPdiscard {
		return b.violation("blkdebug: discard %d+%d longer than max-discard %d", off, bytes, l.MaxPdiscard)
	}
	if skip, err := b.ruleCheck(co, off, bytes, IODiscard); skip || err != nil {
		return err
	}
	return b.image.Node.PDiscard(co, off, bytes)
}

// FlushToDisk implements blk.DiskFlusher (blkdebug_co_flush): flush-type
// rules, then a whole flush of the image.
func (b *node) FlushToDisk(co *blk.Co) error {
	if skip, err := b.ruleCheck(co, 0, 0, IOFlush); skip || err != nil {
		return err
	}
	return b.image.Node.Flush(co)
}

// BlockStatus implements blk.BlockStatuser: everything is as the image
// says, at the same offset. Only rules with iotype block-status fail it;
// a negative errno has no effect here.
func (b *node) BlockStatus(co *blk.Co, wantZero bool, off, bytes int64) (blk.Status, error) {
	a := b.self.Limits().RequestAlignment
	if (off|bytes)%a != 0 {
		return blk.Status{}, b.violation("blkdebug: block-status %d+%d not aligned to %d", off, bytes, a)
	}
	if _, err := b.ruleCheck(co, off, bytes, IOBlockStatus); err != nil {
		return blk.Status{}, err
	}
	return blk.Status{Flags: blk.StatusRaw | blk.StatusOffsetValid, Pnum: bytes, Map: off, File: b.image.Node}, nil
}

// Length implements blk.Impl: the image's length.
func (b *node) Length(co *blk.Co) (int64, error) { return b.image.Node.Length(co) }

// Truncate implements blk.Truncater. blkdebug has no truncate of its own;
// QEMU passes the resize to the filtered child.
func (b *node) Truncate(co *blk.Co, size int64, exact bool, prealloc blk.Prealloc) error {
	return b.image.Node.Truncate(co, size, exact, prealloc)
}

// Close implements blk.Impl. The image is closed by blk.
func (b *node) Close() error { return nil }

// RefreshLimits implements blk.LimitsRefresher (blkdebug_refresh_limits
// plus the supported flags of blkdebug_open): the overrides replace what
// blk inherited from the image, and blkdebug honours natively only the
// flags the image honours.
func (b *node) RefreshLimits(l *blk.Limits) {
	if b.align != 0 {
		l.RequestAlignment = b.align
	}
	if b.maxTransfer != 0 {
		l.MaxTransfer = b.maxTransfer
	}
	if b.optWriteZero != 0 {
		l.PwriteZeroesAlignment = b.optWriteZero
	}
	if b.maxWriteZero != 0 {
		l.MaxPwriteZeroes = b.maxWriteZero
	}
	if b.optDiscard != 0 {
		l.PdiscardAlignment = b.optDiscard
	}
	if b.maxDiscard != 0 {
		l.MaxPdiscard = b.maxDiscard
	}
	il := b.image.Node.Limits()
	l.SupportedWriteFlags = blk.FUA & il.SupportedWriteFlags
	l.SupportedZeroFlags = (blk.FUA | blk.MayUnmap | blk.NoFallback) & il.SupportedZeroFlags
}

// tracing reports whether the loop has a tracer.
func (b *node) tracing() bool { return b.loop != nil && b.loop.Tracer() != nil }

// trace reports ev on this node when the loop is tracing (rules fired,
// breakpoints set, hit and resumed, injected errors).
func (b *node) trace(ev blk.TraceEvent) {
	if b.tracing() {
		ev.Node = b.self
		b.loop.Trace(ev)
	}
}

// coID is co's request number, 0 for none.
func coID(co *blk.Co) int {
	if co == nil {
		return 0
	}
	return co.ID()
}
