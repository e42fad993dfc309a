// Package explore finds races by enumerating schedules: it runs a .gio
// script once per distinct answer sequence at the loop's choice points
// (blk.Chooser), and checks every run with the oracles fsx uses (every
// read against the overlap-aware model, the script's own "read -P",
// requests that can never finish). The search is exhaustive depth-first
// under a bound on deviations from FIFO, with sleep sets skipping
// orderings of requests on disjoint ranges, or seeded random (PCT).
package explore

import (
	"bytes"
	"container/heap"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gio/blk"
	"gio/internal/fsx"
)

// Env is what explore needs from the program: sessions built as the
// shell builds them, on a fresh loop with ch as its chooser.
type Env struct {
	NewSession func(out, errw io.Writer, ch blk.Chooser) fsx.Session
	// NewRegistry and NewSessionOn are for crash mode: a registry with
	// the drivers sessions have, and a session (FIFO, no chooser) on a
	// registry crash mode made from one (its file driver wrapped).
	NewRegistry  func(out io.Writer) *blk.Registry
	NewSessionOn func(out, errw io.Writer, reg *blk.Registry) fsx.Session
}

// Config bounds a search.
type Config struct {
	// MaxPreemptions bounds the deviations from FIFO per schedule (the
	// answers the search chose other than the default).
	MaxPreemptions int
	// MaxSchedules stops the search after that many runs (0: no limit).
	MaxSchedules int
	// Budget stops the search after that much wall time (0: no limit).
	Budget time.Duration
	// NoReduce turns sleep sets off.
	NoReduce bool
	// Grain is the unit request ranges are widened to for independence
	// (0: 4096, or the script's align= when larger).
	Grain int64
	// Random runs MaxSchedules seeded PCT schedules instead of the
	// exhaustive search; Seed is the first seed and Depth PCT's d.
	Random bool
	Seed   int64
	Depth  int
	// Crash is crash mode (crash.go): CrashWrites bounds the unflushed
	// changes in a crash state (0: 2), Torn adds states whose last
	// change is torn; MaxSchedules then bounds the crash states.
	Crash       bool
	CrashWrites int
	Torn        bool
	// Jobs is the number of parallel loops (0: 1).
	Jobs int
	// Progress, if not nil, is called now and then with the runs so far
	// (and by Command with -1 when the search is over).
	Progress func(runs int64)
	// fresh makes every run on a new session, as kept sessions are
	// promised to (keep.go): for the test that compares the two. onRun,
	// if set, sees the chooser of every run (tests).
	fresh bool
	onRun func(*chooser)
}

// Failure is a failing schedule.
type Failure struct {
	Schedule Schedule
	Seed     int64 // the PCT seed, in random mode
	What     string
	// From is the schedule a breakpoint reproducer was made from.
	From Schedule
}

// Summary sums up a search.
type Summary struct {
	Runs     int64 // schedules run and checked
	Pruned   int64 // redundant runs and alternatives skipped by sleep sets
	States   int   // distinct outcomes (data the reads returned)
	Failures int
	Elapsed  time.Duration
	// Stopped says which bound ended the search early ("" when the
	// bounded search space was covered).
	Stopped string
	First   *Failure
	// Unsupported says why the script cannot be explored: the model
	// could not follow its FIFO run (output it does not know, two
	// writes of one range in flight).
	Unsupported string
}

// Rate is schedules per second.
func (s Summary) Rate() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Runs) / s.Elapsed.Seconds()
}

func (s Summary) String() string {
	stop := "bounds covered"
	if s.Stopped != "" {
		stop = "stopped: " + s.Stopped
	}
	return fmt.Sprintf("%d schedules run, %d pruned, %d distinct outcomes, %d failures, %.0f schedules/s (%.2fs, %s)",
		s.Runs, s.Pruned, s.States, s.Failures, s.Rate(), s.Elapsed.Seconds(), stop)
}

// Script is a parsed script: the lines that make the image, the body
// explored, and the closing lines that check the final image.
type Script struct {
	Setup, Body, Closing []string
	grain                int64
	reduce               bool
	// lines are the spans of the body's I/O lines, for the static
	// reduction of effect choices (nil: off, a line may touch anything).
	lines []span
}

// harmless are the commands that touch no image data.
var harmless = map[string]bool{"aio_flush": true, "flush": true, "break": true, "wait_break": true,
	"resume": true, "remove_break": true, "sleep": true, "echo": true}

// lineSpans returns the spans of the body's I/O lines, or nil when a
// line may touch data in ways a span does not say.
func lineSpans(body []string, grain int64) []span {
	var out []span
	for _, l := range body {
		f := strings.Fields(l)
		if harmless[f[0]] {
			continue
		}
		if len(f) < 3 {
			return nil
		}
		off, err1 := parseSize(f[len(f)-2])
		n, err2 := parseSize(f[len(f)-1])
		sp := spanOf(fmt.Sprintf("#0 %s %d %d", f[0], off, n), grain)
		if err1 != nil || err2 != nil || !sp.known {
			return nil
		}
		out = append(out, sp)
	}
	return out
}

// ParseScript reads a .gio script for exploration. The closing lines
// drain the requests and read the image back under the model.
func ParseScript(src string) (*Script, error) {
	setup, body, err := fsx.ParseScript(src)
	if err != nil {
		return nil, err
	}
	return newScript(setup, body)
}

// newScript makes a script of setup and body lines.
func newScript(setup, body []string) (*Script, error) {
	if len(body) == 0 {
		return nil, fmt.Errorf("no command after the create and open lines")
	}
	s := &Script{Setup: setup, Body: body, grain: 4096, reduce: true}
	var size int64
	for _, l := range setup {
		f := strings.Fields(l)
		if f[0] == "create" {
			if len(f) < 3 {
				return nil, fmt.Errorf("%q: explore wants \"create [-f FMT] NAME SIZE\" (a scratch image the model follows)", l)
			}
			n, err := parseSize(f[len(f)-1])
			if err != nil || n <= 0 || n > 64<<20 {
				return nil, fmt.Errorf("%q: size %s: a size up to 64M", l, f[2])
			}
			size = n
		}
		if strings.Contains(l, "qcow2") {
			// Requests on disjoint ranges share qcow2 metadata.
			s.reduce = false
		}
		for _, kv := range strings.FieldsFunc(l, func(r rune) bool { return r == ',' || r == ' ' }) {
			if v, ok := strings.CutPrefix(kv, "file.align="); ok {
				if a, err := parseSize(v); err == nil && a > s.grain {
					s.grain = a
				}
			}
		}
	}
	if size == 0 {
		return nil, fmt.Errorf("no \"create NAME SIZE\" line: the model needs the image's size")
	}
	if s.reduce {
		s.lines = lineSpans(body, s.grain)
	}
	s.Closing = []string{"aio_flush"}
	// The final image is read back where the body wrote. On a raw
	// image nothing else can change: a stale read-modify-write puts
	// back what was there, and bytes nobody wrote were always there.
	// A format can misplace data (a cluster reused while a write still
	// lands in it), so there the whole span is read, widened to the
	// grain.
	var spans []span
	for _, l := range body {
		f := strings.Fields(l)
		switch f[0] {
		case "aio_write", "write", "discard":
		default:
			continue
		}
		if len(f) < 3 {
			continue
		}
		off, err1 := parseSize(f[len(f)-2])
		n, err2 := parseSize(f[len(f)-1])
		if err1 != nil || err2 != nil {
			continue
		}
		spans = append(spans, span{off: max(off, 0), end: min(off+n, size)})
	}
	for _, sp := range mergeSpans(spans, s.reduce, s.grain) {
		if sp.off < sp.end {
			s.Closing = append(s.Closing, fmt.Sprintf("read -v %d %d", sp.off, sp.end-sp.off))
		}
	}
	return s, nil
}

// mergeSpans sorts and merges spans; unless exact, into one span
// widened to the grain.
func mergeSpans(spans []span, exact bool, grain int64) []span {
	if len(spans) == 0 {
		return nil
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].off < spans[j].off })
	if !exact {
		w := span{off: spans[0].off / grain * grain}
		for _, sp := range spans {
			w.end = max(w.end, (sp.end+grain-1)/grain*grain)
		}
		return []span{w}
	}
	out := []span{spans[0]}
	for _, sp := range spans[1:] {
		if last := &out[len(out)-1]; sp.off <= last.end {
			last.end = max(last.end, sp.end)
			continue
		}
		out = append(out, sp)
	}
	return out
}

// parseSize reads 512, 4k, 1M.
func parseSize(s string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "k"), strings.HasSuffix(s, "K"):
		mult, s = 1<<10, s[:len(s)-1]
	case strings.HasSuffix(s, "M"), strings.HasSuffix(s, "m"):
		mult, s = 1<<20, s[:len(s)-1]
	}
	var n int64
	if _, err := fmt.Sscanf(s, "%d", &n); err != nil || fmt.Sprint(n) != s || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size", s)
	}
	return n * mult, nil
}

// outcome is one run's verdict.
type outcome struct {
	fail    string // "" when every oracle agreed
	harness bool   // fail is the model losing track, not a verdict
	state   uint64
}

// stateWriter hashes what a run's reads returned, and passes
// everything on. It hashes the lines with a colon after 8 characters:
// hex dump rows, "blkdebug: Suspended ...". Dumps come as fsx's records;
// each row a dump would have had is hashed as its address, length and
// bytes, which is what its text says, without the text. So two runs
// have the same state exactly when they would have printed the same
// such lines (hashes aside).
type stateWriter struct {
	w   io.Writer
	h   uint64
	buf []byte
}

func (s *stateWriter) Write(p []byte) (int, error) {
	// Whole lines and records are hashed where they lie; only an
	// unfinished one is kept for the next write.
	data := p
	if len(s.buf) > 0 {
		s.buf = append(s.buf, p...)
		data = s.buf
	}
	rest := fsx.SplitOutput(data, s.line, s.dump)
	s.buf = append(s.buf[:0], rest...)
	return s.w.Write(p)
}

func (s *stateWriter) line(l []byte) {
	if len(l) > 9 && l[8] == ':' {
		// FNV-1a, inline.
		h := s.h ^ 14695981039346656037
		for _, c := range l {
			h = (h ^ uint64(c)) * 1099511628211
		}
		s.h = h
	}
}

// dump hashes the rows of a dump of data read at off: 16 bytes each, at
// off+i. A row past 4 GiB has a longer address and no colon at 8: like
// its text, it is not hashed.
func (s *stateWriter) dump(off int64, data []byte) {
	h := s.h
	for i := 0; i < len(data); i += 16 {
		addr := uint64(off) + uint64(i)
		if addr >= 1<<32 {
			continue
		}
		row := data[i:min(i+16, len(data))]
		var w [16]byte
		copy(w[:], row)
		// Tagged apart from text lines (bit 63), whose FNV chain
		// starts from another basis.
		h = mix(h ^ (1<<63 | addr<<8 | uint64(len(row))))
		h = mix(h ^ binary.LittleEndian.Uint64(w[:8]))
		h = mix(h ^ binary.LittleEndian.Uint64(w[8:]))
	}
	s.h = h
}

// mix is a 64-bit finaliser (MurmurHash3's fmix64) with a step that
// makes it depend on the order of what is mixed in.
func mix(h uint64) uint64 {
	h += 0x9e3779b97f4a7c15
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// stuckWriter notices "can never happen" on stderr during the closing
// drain: a request that can never finish. Earlier, such a message is
// the script's business (a request it suspended, a withdrawn write),
// printed by "gio run" too; at the end every request must finish.
type stuckWriter struct {
	w     io.Writer
	line  *int // the body line running
	body  int  // the number of body lines
	stuck string
	// unknown is a command the shell does not have: the script is
	// malformed, whatever the schedule.
	unknown string
}

func (s *stuckWriter) Write(p []byte) (int, error) {
	if s.unknown == "" && unknownCommand(p) {
		s.unknown = strings.TrimSpace(string(p))
	}
	if s.stuck == "" && s.line != nil && *s.line >= s.body &&
		(bytes.Contains(p, []byte("can never happen")) || bytes.Contains(p, []byte("cannot finish"))) {
		s.stuck = strings.TrimSpace(string(p))
	}
	return s.w.Write(p)
}

// unknownCommand reports whether a message on stderr says a command
// does not exist: the script is malformed.
func unknownCommand(msg []byte) bool {
	return bytes.HasPrefix(msg, []byte(`command "`)) && bytes.Contains(msg, []byte(`" not found`))
}

// lineSession tells the chooser which body line runs (for reproducers
// that place breakpoints): -1 and below during setup.
type lineSession struct {
	fsx.Session
	line *int
	base int
	n    int
}

func (l *lineSession) Execute(line string) bool {
	*l.line = l.n - l.base
	l.n++
	return l.Session.Execute(line)
}

func (l *lineSession) RunPending() {
	*l.line = l.n - l.base
	l.Session.RunPending()
}

// Mark and Rewind pass fsx.Rewinder on (keep.go).
func (l *lineSession) Mark() error {
	if rw, ok := l.Session.(fsx.Rewinder); ok {
		return rw.Mark()
	}
	return blk.ErrNotRewindable
}

func (l *lineSession) Rewind() error {
	if rw, ok := l.Session.(fsx.Rewinder); ok {
		return rw.Rewind()
	}
	return blk.ErrNotRewindable
}

// run runs the script once under ch.
func (e Env) run(sc *Script, ch blk.Chooser) outcome {
	var sw *stateWriter
	var st *stuckWriter
	fe := fsx.Env{NewSession: func(out, errw io.Writer) fsx.Session {
		sw = &stateWriter{w: out}
		st = &stuckWriter{w: errw, body: len(sc.Body)}
		s := e.NewSession(sw, st, ch)
		fsx.UseRecords(s) // before the wrapper hides SetDump
		if c, ok := ch.(*chooser); ok {
			c.line = -len(sc.Setup)
			st.line = &c.line
			return &lineSession{Session: s, line: &c.line, base: len(sc.Setup)}
		}
		return s
	}}
	body := append(append([]string(nil), sc.Body...), sc.Closing...)
	return verdict(sc, fe.Check(sc.Setup, body, nil), sw, st)
}

// verdict is a run's outcome from fsx's result and what the run printed.
func verdict(sc *Script, res fsx.Result, sw *stateWriter, st *stuckWriter) outcome {
	o := outcome{state: sw.h}
	switch {
	case st.unknown != "":
		o.fail = "explore could not follow the run: " + st.unknown
		o.harness = true
	case res.Harness != nil:
		o.fail = "explore could not follow the run: " + res.Harness.Error()
		o.harness = true
	case len(res.Failures) > 0:
		f := res.Target()
		o.fail = fmt.Sprintf("line %d (%s): %s: %s", f.Line+1, f.Cmd, f.Kind, f.Detail)
		if f.Line >= len(sc.Body) {
			o.fail = fmt.Sprintf("final image check (%s): %s: %s", f.Cmd, f.Kind, f.Detail)
		}
	case st.stuck != "":
		o.fail = "a request can never finish: " + st.stuck
	}
	return o
}

// Replay runs one schedule and returns its verdict ("" when it passes)
// and whether the schedule fitted the run (every step it names was met
// with that many alternatives).
func (e Env) Replay(sc *Script, s Schedule) (string, bool) {
	ch, o := e.replay(sc, s)
	return o.fail, !ch.invalid && len(ch.tr) >= len(ch.prefix)
}

func (e Env) replay(sc *Script, s Schedule) (*chooser, outcome) {
	ch := newChooser(s.dense(), sc.grain, false)
	return ch, e.run(sc, ch)
}

// search is the shared state of one exploration.
type search struct {
	env   Env
	sc    *Script
	cfg   Config
	start time.Time
	// keep has the kept sessions runs go on (nil: a new one per run).
	keep *keeper

	// runs counts the runs of every task, for the bounds and progress.
	runs    atomic.Int64
	stop    atomic.Bool
	stopped string

	mu sync.Mutex
	// tasks are every task made so far (the FIFO run is the first),
	// queue those not started yet, smallest key first; busy counts
	// the workers running one, which may add more (cond wakes the
	// others then).
	tasks []*task
	queue taskHeap
	busy  int
	cond  *sync.Cond
	// last is the key of the last task that can count: the first
	// failing one, or the one in which the runs reached -max-schedules.
	last taskKey
	// unsupported is set when the model cannot follow the FIFO run.
	unsupported string
}

// A task is a part of the search that one worker runs. Tasks are
// ordered by key, the order in which one job runs them: the summary
// takes their runs in that order, up to the first failure or the
// -max-schedules bound, so that it does not depend on the number of
// jobs (others may have run past that point in the meantime).
type task struct {
	key taskKey
	// path and floor are the subtree it explores (dfs); split says
	// that its first run's subtrees become tasks of their own.
	path  []node
	floor int
	split bool
	seed  int64 // random mode: the task is one PCT run
	// res is written only by the worker running the task; done counts
	// its runs, for the others.
	res  taskResult
	done atomic.Int64
}

// taskKey orders tasks: the FIFO run is {0, 0}, the subtree of its
// i-th alternative {i, 0} (its first run), and the subtrees below that
// run {i, 1}, {i, 2}... A run's subtrees come before the next
// alternative's, as in a depth-first search.
type taskKey [2]int

func (k taskKey) less(o taskKey) bool { return k[0] < o[0] || k[0] == o[0] && k[1] < o[1] }

var maxKey = taskKey{math.MaxInt, math.MaxInt}

// taskHeap is a min-heap of tasks by key.
type taskHeap []*task

func (h taskHeap) Len() int           { return len(h) }
func (h taskHeap) Less(i, j int) bool { return h[i].key.less(h[j].key) }
func (h taskHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *taskHeap) Push(x any)        { *h = append(*h, x.(*task)) }
func (h *taskHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	*h = old[:len(old)-1]
	return t
}

// taskResult is what the runs of one task found.
type taskResult struct {
	runs   []runResult
	pruned int64
	fail   *Failure // its first failure, its last run
}

// runResult is one run of a task: its outcome, and the task's count of
// pruned runs and alternatives once the run's choice points were met.
type runResult struct {
	state  uint64
	pruned int64
}

// add makes tasks and queues them.
func (s *search) add(tasks ...*task) {
	s.mu.Lock()
	for _, tk := range tasks {
		s.tasks = append(s.tasks, tk)
		heap.Push(&s.queue, tk)
	}
	s.mu.Unlock()
	s.cond.Broadcast()
}

// ranPath notes the end of a runPath in tk that recorded a run.
func (s *search) ranPath(tk *task) {
	if r := tk.res.runs; len(r) > 0 {
		r[len(r)-1].pruned = tk.res.pruned
	}
}

func (s *search) grain() int64 {
	if s.cfg.Grain > 0 {
		return s.cfg.Grain
	}
	return s.sc.grain
}

// run runs the script once under ch.
func (s *search) run(ch *chooser) outcome {
	if s.cfg.onRun != nil {
		s.cfg.onRun(ch)
	}
	if s.keep != nil {
		return s.keep.run(ch)
	}
	return s.env.run(s.sc, ch)
}

func (s *search) reduce() bool { return !s.cfg.NoReduce && s.sc.reduce && !s.cfg.Random }

// record counts a run and reports whether the search goes on in the
// task.
func (s *search) record(tk *task, o outcome, sched Schedule, seed int64) bool {
	if tk.key == (taskKey{}) && o.harness {
		s.unsupported = o.fail
		s.halt("unsupported")
		return false
	}
	n := s.runs.Add(1)
	tk.res.runs = append(tk.res.runs, runResult{state: o.state})
	tk.done.Add(1)
	goOn := true
	if o.fail != "" {
		tk.res.fail = &Failure{Schedule: sched, Seed: seed, What: o.fail}
		s.lastAt(tk.key)
		goOn = false
	}
	if s.cfg.Progress != nil && n%64 == 0 {
		s.cfg.Progress(n)
	}
	if max := int64(s.cfg.MaxSchedules); max > 0 && n >= max && s.runsTo(tk.key) >= max {
		// One job would have stopped here (or earlier); the tasks
		// before this one go on until they reach the bound themselves.
		s.lastAt(tk.key)
		goOn = false
	}
	if s.cfg.Budget > 0 && time.Since(s.start) > s.cfg.Budget {
		s.halt(fmt.Sprintf("time budget %v spent", s.cfg.Budget))
	}
	return goOn && !s.stop.Load()
}

// runsTo is how many runs the tasks up to key made so far.
func (s *search) runsTo(key taskKey) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var sum int64
	for _, tk := range s.tasks {
		if !key.less(tk.key) {
			sum += tk.done.Load()
		}
	}
	return sum
}

// lastAt makes the task of key the last one that can count, unless an
// earlier one already is.
func (s *search) lastAt(key taskKey) {
	s.mu.Lock()
	if key.less(s.last) {
		s.last = key
	}
	s.mu.Unlock()
}

func (s *search) halt(why string) {
	s.mu.Lock()
	if s.stopped == "" {
		s.stopped = why
	}
	s.mu.Unlock()
	s.stop.Store(true)
}

// pointless reports whether tk cannot count any more: a task before
// it failed or reached -max-schedules.
func (s *search) pointless(tk *task) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last.less(tk.key)
}

// Explore searches the schedules of sc under cfg.
func (e Env) Explore(sc *Script, cfg Config) Summary {
	defer raiseGC()()
	s := &search{env: e, sc: sc, cfg: cfg, start: time.Now(), last: maxKey}
	s.cond = sync.NewCond(&s.mu)
	if !cfg.fresh && canKeep(sc) {
		s.keep = &keeper{env: e, sc: sc}
		defer s.keep.close()
	}
	if cfg.Random {
		s.random()
	} else {
		s.exhaustive()
	}
	if s.unsupported != "" {
		return Summary{Unsupported: s.unsupported, Elapsed: time.Since(s.start)}
	}
	return s.summary()
}

// summary takes the tasks' runs in order, up to the first failure or
// the -max-schedules bound.
func (s *search) summary() Summary {
	sum := Summary{Elapsed: time.Since(s.start)}
	limit := int64(s.cfg.MaxSchedules)
	states := map[uint64]bool{}
	tasks := slices.Clone(s.tasks)
	sort.Slice(tasks, func(i, j int) bool { return tasks[i].key.less(tasks[j].key) })
tasks:
	for _, tk := range tasks {
		tr := &tk.res
		for i, r := range tr.runs {
			sum.Runs++
			states[r.state] = true
			end := false
			if tr.fail != nil && i == len(tr.runs)-1 {
				sum.Failures, sum.First, end = 1, tr.fail, true
			}
			if sum.Runs == limit {
				sum.Stopped, end = fmt.Sprintf("-max-schedules %d reached", limit), true
			}
			if end {
				sum.Pruned += r.pruned
				break tasks
			}
		}
		sum.Pruned += tr.pruned
	}
	sum.States = len(states)
	if sum.Stopped == "" && sum.First == nil {
		s.mu.Lock()
		sum.Stopped = s.stopped
		s.mu.Unlock()
	}
	return sum
}

// work runs the queued tasks on cfg.Jobs workers, smallest key first,
// until none is left and no worker can add more.
func (s *search) work(do func(tk *task)) {
	var wg sync.WaitGroup
	for w := 0; w < max(s.cfg.Jobs, 1); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				tk := s.next()
				if tk == nil {
					return
				}
				if !s.pointless(tk) {
					do(tk)
				}
				s.mu.Lock()
				s.busy--
				s.mu.Unlock()
				s.cond.Broadcast()
			}
		}()
	}
	wg.Wait()
}

// next takes the next task, waiting while the queue is empty and a
// busy worker may add to it; nil when the search is over.
func (s *search) next() *task {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.queue) == 0 && s.busy > 0 && !s.stop.Load() {
		s.cond.Wait()
	}
	if len(s.queue) == 0 || s.stop.Load() {
		return nil
	}
	s.busy++
	return heap.Pop(&s.queue).(*task)
}

// random runs seeded PCT schedules.
func (s *search) random() {
	fifo := newChooser(nil, s.grain(), false)
	first := &task{}
	s.tasks = append(s.tasks, first)
	o := s.run(fifo)
	if !s.record(first, o, nil, 0) || o.fail != "" {
		return
	}
	steps := len(fifo.tr)
	n := s.cfg.MaxSchedules
	if n <= 0 {
		n = 1000
	}
	tasks := make([]*task, n)
	for t := range tasks {
		tasks[t] = &task{key: taskKey{t + 1}, seed: s.cfg.Seed + int64(t)}
	}
	s.add(tasks...)
	depth := max(s.cfg.Depth, 1)
	s.work(func(tk *task) {
		ch := newChooser(nil, s.grain(), false)
		ch.pct = newPCT(tk.seed, depth, steps)
		s.record(tk, s.run(ch), sparse(ch.tr), tk.seed)
	})
}
