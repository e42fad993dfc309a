package explore

import (
	"bytes"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"gio/blk"
)

// Crash mode (gio explore --crash): the script runs once, in order, with
// its disk's changes logged below the format node (crashlog.go). At every
// flush boundary of the log (the start, and each flush to disk) crash
// images are built: the base disk, every change before that flush, and
// each subset of at most CrashWrites of the changes that follow it up to
// the next flush, in log order (a disk may persist unflushed writes in
// any order), the last one optionally torn. Each distinct image is
// opened read-only and checked: the format's consistency check must find
// no corruption (leaks are allowed: a crash may leak clusters), and the
// guest data that was flushed must be there.

// CrashState names one crash image: the flushes to disk it survived, the
// unflushed changes it has (indices among those after that flush, in log
// order), and whether the last of them is torn (all but its last sector).
type CrashState struct {
	Flushes int
	Writes  []int
	Torn    bool
}

// String is "FLUSHES:W1,W2[:torn]", "-" for no write.
func (c CrashState) String() string {
	w := "-"
	if len(c.Writes) > 0 {
		var s []string
		for _, i := range c.Writes {
			s = append(s, strconv.Itoa(i))
		}
		w = strings.Join(s, ",")
	}
	s := fmt.Sprintf("%d:%s", c.Flushes, w)
	if c.Torn {
		s += ":torn"
	}
	return s
}

// ParseCrashState reads a crash state as String prints it.
func ParseCrashState(s string) (CrashState, error) {
	var c CrashState
	bad := fmt.Errorf("crash state %q: want FLUSHES:W1,W2[:torn] (\"2:0,3\", \"0:-\")", s)
	f := strings.Split(s, ":")
	if len(f) < 2 || len(f) > 3 || len(f) == 3 && f[2] != "torn" {
		return c, bad
	}
	c.Torn = len(f) == 3
	n, err := strconv.Atoi(f[0])
	if err != nil || n < 0 || n > 1<<20 || strconv.Itoa(n) != f[0] {
		return c, bad
	}
	c.Flushes = n
	if f[1] == "-" {
		if c.Torn {
			return c, bad
		}
		return c, nil
	}
	last := -1
	for _, w := range strings.Split(f[1], ",") {
		i, err := strconv.Atoi(w)
		if err != nil || i <= last || i > 1<<20 || strconv.Itoa(i) != w {
			return c, bad
		}
		c.Writes = append(c.Writes, i)
		last = i
	}
	return c, nil
}

// CrashFailure is a crash image that fails a check.
type CrashFailure struct {
	State CrashState
	// Kind is "corrupt" (the checker found corruption, or the image
	// does not open) or "lost" (flushed data is not there).
	Kind string
	What string
}

// CrashSummary sums up a crash search.
type CrashSummary struct {
	Ops, Flushes int   // changes and flushes the run logged
	States       int64 // crash images built
	Distinct     int64 // distinct images checked
	Leaky        int   // images with leaked clusters (allowed)
	Failures     int
	Elapsed      time.Duration
	Stopped      string
	First        *CrashFailure
	// Unsupported says why the script cannot be explored.
	Unsupported string
}

func (s CrashSummary) String() string {
	stop := "bounds covered"
	if s.Stopped != "" {
		stop = "stopped: " + s.Stopped
	}
	rate := 0.0
	if s.Elapsed > 0 {
		rate = float64(s.Distinct) / s.Elapsed.Seconds()
	}
	return fmt.Sprintf("%d disk changes, %d flushes: %d crash states, %d distinct checked, %d with leaks, %d failures, %.0f images/s (%.2fs, %s)",
		s.Ops, s.Flushes, s.States, s.Distinct, s.Leaky, s.Failures, rate, s.Elapsed.Seconds(), stop)
}

// snapshot is the guest data at a sync flush line of the body (line -1:
// the image as opened), and the log position then.
type snapshot struct {
	line, ops, flushes int
	data               []byte
}

// crashRun is one recorded run of a script.
type crashRun struct {
	sc      *Script
	format  string
	log     *diskLog
	flushAt []int // indices of the flushes in log.ops
	snaps   []snapshot
	touch   []lineTouch
}

// lineTouch is the guest range a body line may change: none, one span,
// or anything (all). aio marks a request that may still run after the
// line.
type lineTouch struct {
	none, all, aio bool
	off, end       int64
}

// readOnlyCmds change no guest data.
var readOnlyCmds = map[string]bool{"read": true, "aio_read": true, "readv": true, "map": true,
	"alloc": true, "info": true, "length": true, "flush": true, "aio_flush": true, "sleep": true,
	"echo": true, "break": true, "wait_break": true, "resume": true, "remove_break": true}

func touchOf(line string) lineTouch {
	f := strings.Fields(line)
	if readOnlyCmds[f[0]] {
		return lineTouch{none: true}
	}
	t := lineTouch{aio: strings.HasPrefix(f[0], "aio_")}
	switch f[0] {
	case "write", "aio_write", "discard", "aio_discard":
		if len(f) >= 3 {
			off, err1 := parseSize(f[len(f)-2])
			n, err2 := parseSize(f[len(f)-1])
			if err1 == nil && err2 == nil {
				t.off, t.end = off, off+n
				return t
			}
		}
	}
	t.all = true
	return t
}

// imageFormat is the format the script creates its image in.
func imageFormat(setup []string) string {
	for _, l := range setup {
		f := strings.Fields(l)
		for i := 1; i+1 < len(f) && f[0] == "create"; i++ {
			if f[i] == "-f" {
				return f[i+1]
			}
		}
	}
	return "raw"
}

// crashInspector opens crash images and checks them, one at a time.
// The image is served from memory by a protocol driver of its own
// ("crash-image"), under the format driver of the registry.
type crashInspector struct {
	reg    *blk.Registry
	loop   *blk.Loop
	img    []byte
	stderr bytes.Buffer
}

func (e Env) newInspector() *crashInspector {
	in := &crashInspector{reg: e.NewRegistry(io.Discard), loop: blk.NewLoop(blk.NewVirtualClock())}
	in.reg.Stderr = &in.stderr
	in.reg.Add(&blk.Driver{Name: "crash-image",
		Open: func(*blk.OpenArgs) (blk.Impl, error) { return memImage(in.img), nil }})
	return in
}

// memImage is a read-only disk in memory.
type memImage []byte

func (m memImage) PRead(co *blk.Co, off int64, buf []byte, _ blk.ReqFlags) error {
	clear(buf)
	if off < int64(len(m)) {
		copy(buf, m[off:])
	}
	return nil
}

func (m memImage) PWrite(*blk.Co, int64, []byte, blk.ReqFlags) error { return syscall.EROFS }
func (m memImage) Length(*blk.Co) (int64, error)                     { return int64(len(m)), nil }
func (m memImage) Close() error                                      { return nil }

// inspect opens img read-only as format and returns the guest data and
// what the consistency check found wrong ("" when nothing but leaks).
func (in *crashInspector) inspect(img []byte, format string, check bool) (data []byte, corrupt string, leaks int) {
	in.img = img
	in.stderr.Reset()
	spec := fmt.Sprintf(`json:{"driver":%q,"file":{"driver":"crash-image"}}`, format)
	b, err := in.reg.Open(blk.Spec{Filename: spec, Flags: blk.OpenFlags{ReadOnly: true, Check: true}}, in.loop)
	if err != nil {
		return nil, "the crash image does not open: " + firstLine(err.Error()), 0
	}
	defer b.Close()
	err = in.loop.RunSync("crash check", func(co *blk.Co) error {
		if check {
			// The full consistency check (qemu-img check's), no repair;
			// leaks are allowed after a crash. A format without a check
			// is checked on its data only.
			res, err := b.Check(co, 0, &in.stderr)
			switch {
			case errors.Is(err, syscall.ENOTSUP):
			case err != nil:
				corrupt = "the check did not complete: " + firstLine(err.Error())
				return nil
			case res.Corruptions+res.CheckErrors > 0:
				corrupt = fmt.Sprintf("check: %d corruptions, %d check errors (%s)", res.Corruptions, res.CheckErrors, firstLine(in.stderr.String()))
				return nil
			}
			leaks = res.Leaks
		}
		n, err := b.Length(co)
		if err != nil {
			return err
		}
		data = make([]byte, n)
		return b.PRead(co, 0, data)
	})
	if err != nil && corrupt == "" {
		corrupt = "reading the crash image fails: " + firstLine(err.Error())
	}
	return data, corrupt, leaks
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// apply makes op's change to img and returns it. A torn write writes
// all but its last sector.
func apply(img []byte, op diskOp, torn bool) []byte {
	grow := func(end int64) {
		if end > int64(len(img)) {
			img = append(img, make([]byte, end-int64(len(img)))...)
		}
	}
	switch op.kind {
	case opWrite:
		data := op.data
		if torn {
			data = data[:(len(data)-1)/512*512]
		}
		grow(op.off + int64(len(data)))
		copy(img[op.off:], data)
	case opZero:
		end := op.off + op.n
		grow(end)
		clear(img[op.off:end])
	case opDiscard:
		if end := min(op.off+op.n, int64(len(img))); op.off < end {
			clear(img[op.off:end])
		}
	case opTruncate:
		if op.off < int64(len(img)) {
			img = img[:op.off]
		} else {
			grow(op.off)
		}
	}
	return img
}

// record runs sc once, in order, logging its disk.
func (e Env) record(sc *Script) (*crashRun, error) {
	if e.NewRegistry == nil || e.NewSessionOn == nil {
		return nil, fmt.Errorf("crash mode is not available here")
	}
	lg := &diskLog{}
	reg := e.NewRegistry(io.Discard)
	fd := reg.Lookup("file")
	if fd == nil || !reg.Replace(recordingFile(fd, lg)) {
		return nil, fmt.Errorf("crash mode needs the file driver")
	}
	var errb bytes.Buffer
	s := e.NewSessionOn(io.Discard, &errb, reg)
	defer s.Close()
	for _, l := range sc.Setup {
		if !s.Execute(l) {
			return nil, fmt.Errorf("%q fails: %s", l, firstLine(errb.String()))
		}
	}
	run := &crashRun{sc: sc, format: imageFormat(sc.Setup), log: lg}
	run.snaps = append(run.snaps, snapshot{line: -1})
	lg.active = true
	for i, l := range sc.Body {
		lg.line = i
		s.RunPending()
		// A line that fails had no effect (the shell's rule); the
		// script's own checks are not crash mode's business: the
		// crash images are checked against what the run read back.
		errb.Reset()
		ok := s.Execute(l)
		if !ok && unknownCommand(errb.Bytes()) {
			return nil, fmt.Errorf("body line %d: %s", i+1, firstLine(errb.String()))
		}
		run.touch = append(run.touch, touchOf(l))
		if ok && strings.Fields(l)[0] == "flush" {
			run.snaps = append(run.snaps, snapshot{line: i, ops: len(lg.ops)})
		}
	}
	s.RunPending()
	lg.active = false
	if lg.other {
		return nil, fmt.Errorf("the body writes to more than one file; crash mode follows one image")
	}
	for i, op := range lg.ops {
		if op.kind == opFlush {
			run.flushAt = append(run.flushAt, i)
		}
	}
	for i := range run.snaps {
		sn := &run.snaps[i]
		for _, at := range run.flushAt {
			if at < sn.ops {
				sn.flushes++
			}
		}
	}
	return run, nil
}

// window returns the log indices of the changes after flush boundary j
// (j flushes to disk done) up to the next flush, and the index where it
// ends.
func (r *crashRun) window(j int) (w []int, end int) {
	start := 0
	if j > 0 {
		start = r.flushAt[j-1] + 1
	}
	end = len(r.log.ops)
	if j < len(r.flushAt) {
		end = r.flushAt[j]
	}
	for i := start; i < end; i++ {
		w = append(w, i)
	}
	return w, end
}

// durable returns the disk after j flushes, with no unflushed change.
func (r *crashRun) durable(j int) []byte {
	img := append([]byte(nil), r.log.base...)
	end := 0
	if j > 0 {
		end = r.flushAt[j-1]
	}
	for _, op := range r.log.ops[:end] {
		img = apply(img, op, false)
	}
	return img
}

// image builds crash state c from the durable disk of its boundary.
func (r *crashRun) image(durable []byte, w []int, c CrashState) []byte {
	img := append([]byte(nil), durable...)
	for k, i := range c.Writes {
		img = apply(img, r.log.ops[w[i]], c.Torn && k == len(c.Writes)-1)
	}
	return img
}

// expected returns the snapshot crash state at boundary j must agree
// with, and the guest ranges that may differ from it: what body lines
// after the snapshot's flush and up to the crash changed.
func (r *crashRun) expected(j, end int) (*snapshot, []lineTouch) {
	var sn *snapshot
	for i := range r.snaps {
		if r.snaps[i].flushes <= j {
			sn = &r.snaps[i]
		}
	}
	crashLine := len(r.sc.Body) - 1
	if end < len(r.log.ops) {
		crashLine = r.log.ops[end].line
	}
	var free []lineTouch
	for i, t := range r.touch {
		if !t.none && (i > sn.line && i <= crashLine || t.aio && i <= crashLine) {
			free = append(free, t)
		}
	}
	return sn, free
}

// lost compares a crash image's guest data with the flushed snapshot,
// outside the ranges changed since.
func lost(data []byte, sn *snapshot, free []lineTouch) string {
	var spans []span
	for _, t := range free {
		if t.all {
			return ""
		}
		spans = append(spans, span{off: t.off, end: t.end})
	}
	n := int64(min(len(data), len(sn.data)))
	at := int64(0)
	cmp := func(end int64) string {
		end = min(end, n)
		if at >= end || bytes.Equal(data[at:end], sn.data[at:end]) {
			return ""
		}
		for i := at; i < end; i++ {
			if data[i] != sn.data[i] {
				by := "the image as opened"
				if sn.line >= 0 {
					by = fmt.Sprintf("the flush of body line %d", sn.line+1)
				}
				return fmt.Sprintf("flushed data lost: guest byte at 0x%x is 0x%02x, 0x%02x after %s", i, data[i], sn.data[i], by)
			}
		}
		return ""
	}
	for _, sp := range mergeSpans(spans, true, 1) {
		if what := cmp(sp.off); what != "" {
			return what
		}
		at = max(at, sp.end)
	}
	return cmp(n)
}

// combinations calls f with each subset of 0..n-1 of at most k
// elements, smaller subsets first, each size in lexicographic order,
// until f returns false.
func combinations(n, k int, f func([]int) bool) bool {
	for size := 0; size <= min(k, n); size++ {
		idx := make([]int, size)
		for i := range idx {
			idx[i] = i
		}
		for {
			if !f(idx) {
				return false
			}
			i := size - 1
			for i >= 0 && idx[i] == n-size+i {
				i--
			}
			if i < 0 {
				break
			}
			idx[i]++
			for j := i + 1; j < size; j++ {
				idx[j] = idx[j-1] + 1
			}
		}
	}
	return true
}

// Crash runs crash mode on sc under cfg (MaxSchedules bounds the crash
// states, Budget the time, CrashWrites the unflushed changes per state,
// Torn adds torn states). With only set, just that state is checked.
func (e Env) Crash(sc *Script, cfg Config, only *CrashState) (sum CrashSummary) {
	start := time.Now()
	defer func() { sum.Elapsed = time.Since(start) }()
	run, err := e.record(sc)
	if err != nil {
		sum.Unsupported = err.Error()
		return sum
	}
	sum.Ops, sum.Flushes = len(run.log.ops)-len(run.flushAt), len(run.flushAt)
	if run.log.node == nil {
		return sum
	}
	in := e.newInspector()
	for i := range run.snaps {
		sn := &run.snaps[i]
		img := append([]byte(nil), run.log.base...)
		for _, op := range run.log.ops[:sn.ops] {
			img = apply(img, op, false)
		}
		data, bad, _ := in.inspect(img, run.format, false)
		if bad != "" {
			sum.Unsupported = fmt.Sprintf("the image after body line %d does not read back: %s", sn.line+1, bad)
			return sum
		}
		sn.data = data
	}
	k := cfg.CrashWrites
	if k <= 0 {
		k = 2
	}
	if only != nil {
		if only.Flushes > len(run.flushAt) {
			sum.Unsupported = fmt.Sprintf("crash state %s: the run has %d flushes", only, len(run.flushAt))
			return sum
		}
		w, end := run.window(only.Flushes)
		if n := len(only.Writes); n > 0 && only.Writes[n-1] >= len(w) {
			sum.Unsupported = fmt.Sprintf("crash state %s: %d changes after that flush", only, len(w))
			return sum
		}
		sum.States, sum.Distinct = 1, 1
		f, leaky := run.check(in, only.Flushes, run.durable(only.Flushes), w, end, *only)
		if leaky {
			sum.Leaky = 1
		}
		if f != nil {
			sum.First, sum.Failures = f, 1
		}
		return sum
	}
	cs := &crashSearch{run: run, cfg: cfg, k: k, start: start, seed: maphash.MakeSeed()}
	cs.failedAt.Store(math.MaxInt64)
	nb := len(run.flushAt) + 1
	cs.tallies = make([]tally, nb)
	left := int64(cfg.MaxSchedules)
	for j := range nb {
		cs.tallies[j].limit = math.MaxInt64
		if cfg.MaxSchedules > 0 {
			cs.tallies[j].limit = max(left, 0)
			left -= run.countStates(j, k, cfg.Torn)
		}
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range max(cfg.Jobs, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in := e.newInspector()
			for {
				j := int(next.Add(1) - 1)
				if j >= nb || cs.stop.Load() {
					return
				}
				if int64(j) > cs.failedAt.Load() {
					continue
				}
				cs.boundary(in, j)
			}
		}()
	}
	wg.Wait()
	for j := range nb {
		t := &cs.tallies[j]
		sum.States += t.states
		sum.Distinct += t.distinct
		sum.Leaky += t.leaky
		if t.first != nil {
			sum.First, sum.Failures = t.first, 1
			break
		}
		if !t.done && sum.Stopped == "" {
			sum.Stopped = fmt.Sprintf("time budget %v spent", cfg.Budget)
			if t.states >= t.limit {
				sum.Stopped = fmt.Sprintf("-n %d crash states reached", cfg.MaxSchedules)
			}
		}
	}
	return sum
}

// crashSearch is the shared state of a crash search. Boundaries are
// checked independently (-j: one loop each at a time), each to its end
// or its first failure, and summed in order up to the first failing one,
// so that the summary does not depend on the number of loops (a time
// budget aside).
type crashSearch struct {
	run      *crashRun
	cfg      Config
	k        int
	start    time.Time
	seed     maphash.Seed
	tallies  []tally
	failedAt atomic.Int64 // the lowest boundary with a failure
	stop     atomic.Bool  // the time budget is spent
	states   atomic.Int64 // for the progress line
}

// tally is what was found at one flush boundary.
type tally struct {
	limit            int64 // states it may check (-n)
	states, distinct int64
	leaky            int
	first            *CrashFailure
	done             bool // checked to its end or to a failure
}

// countStates is the number of crash states at boundary j.
func (r *crashRun) countStates(j, k int, torn bool) int64 {
	w, _ := r.window(j)
	var n int64
	combinations(len(w), k, func(sub []int) bool {
		n += int64(len(r.variants(w, sub, torn)))
		return true
	})
	return n
}

// variants are the crash states of one subset: itself, and torn when
// its last change is a write of more than a sector.
func (r *crashRun) variants(w, sub []int, torn bool) []bool {
	if last := len(sub) - 1; torn && last >= 0 {
		if op := r.log.ops[w[sub[last]]]; op.kind == opWrite && op.n > 512 {
			return []bool{false, true}
		}
	}
	return []bool{false}
}

// boundary checks the crash states of flush boundary j, images equal
// to one checked before at this boundary (or, the disk as flushed, at
// the one before) once.
func (cs *crashSearch) boundary(in *crashInspector, j int) {
	r, t := cs.run, &cs.tallies[j]
	durable := r.durable(j)
	w, end := r.window(j)
	seen := map[uint64]bool{}
	if j > 0 {
		// The disk as flushed here is the previous boundary's state
		// with all of its changes when it had at most k: checked there.
		if pw, _ := r.window(j - 1); len(pw) <= cs.k {
			seen[maphash.Bytes(cs.seed, durable)] = true
		}
	}
	complete := combinations(len(w), cs.k, func(sub []int) bool {
		for _, torn := range r.variants(w, sub, cs.cfg.Torn) {
			if t.states >= t.limit || cs.stop.Load() {
				return false
			}
			t.states++
			if n := cs.states.Add(1); cs.cfg.Progress != nil && n%64 == 0 {
				cs.cfg.Progress(n)
			}
			c := CrashState{Flushes: j, Writes: append([]int(nil), sub...), Torn: torn}
			img := r.image(durable, w, c)
			h := maphash.Bytes(cs.seed, img)
			if seen[h] {
				continue
			}
			seen[h] = true
			t.distinct++
			f, leaky := r.checkImage(in, j, img, end, c)
			if leaky {
				t.leaky++
			}
			if f != nil {
				t.first = f
				for {
					old := cs.failedAt.Load()
					if int64(j) >= old || cs.failedAt.CompareAndSwap(old, int64(j)) {
						break
					}
				}
				return false
			}
			if cs.cfg.Budget > 0 && time.Since(cs.start) > cs.cfg.Budget {
				cs.stop.Store(true)
				return false
			}
		}
		return true
	})
	t.done = complete || t.first != nil
}

// check builds crash state c of boundary j and checks it.
func (r *crashRun) check(in *crashInspector, j int, durable []byte, w []int, end int, c CrashState) (*CrashFailure, bool) {
	return r.checkImage(in, j, r.image(durable, w, c), end, c)
}

// checkImage checks the image of crash state c: the format's check, then
// the flushed data. It returns the failure, if any, and whether the
// image leaks.
func (r *crashRun) checkImage(in *crashInspector, j int, img []byte, end int, c CrashState) (*CrashFailure, bool) {
	data, corrupt, leaks := in.inspect(img, r.format, true)
	if corrupt != "" {
		return &CrashFailure{State: c, Kind: "corrupt", What: corrupt}, leaks > 0
	}
	if sn, free := r.expected(j, end); sn != nil {
		if what := lost(data, sn, free); what != "" {
			return &CrashFailure{State: c, Kind: "lost", What: what}, leaks > 0
		}
	}
	return nil, leaks > 0
}

// ShrinkCrash deletes body lines, then shrinks the lines' ranges, while
// the crash search of the smaller script still fails the same way (same
// kind).
func (e Env) ShrinkCrash(sc *Script, f *CrashFailure, cfg Config) (*Script, *CrashFailure) {
	fails := func(cand *Script) *CrashFailure {
		if sum := e.Crash(cand, cfg, nil); sum.First != nil && sum.First.Kind == f.Kind {
			return sum.First
		}
		return nil
	}
	for changed := true; changed; {
		changed = false
		for i := len(sc.Body) - 1; i >= 0 && len(sc.Body) > 1; i-- {
			body := append(append([]string(nil), sc.Body[:i]...), sc.Body[i+1:]...)
			if cand, err := newScript(sc.Setup, body); err == nil {
				if g := fails(cand); g != nil {
					sc, f, changed = cand, g, true
				}
			}
		}
	}
	return smallerRanges(sc, f, fails)
}

// CrashReproducer formats a crash failure as a .gio script that "gio
// explore --crash --crash-state" replays.
func CrashReproducer(sc *Script, f *CrashFailure) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# gio explore --crash reproducer: crash state %s: %s\n", f.State, f.What)
	fmt.Fprintf(&b, "# replay: gio explore --crash --crash-state %s FILE\n", f.State)
	for _, l := range sc.Setup {
		b.WriteString(l + "\n")
	}
	for _, l := range sc.Body {
		b.WriteString(l + "\n")
	}
	return b.String()
}
