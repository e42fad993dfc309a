package fsx

import (
	"bytes"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// Env is what fsx needs from the program: sessions built the way the
// shell builds them (drivers, blkdebug printing to out, a virtual
// clock), so that a sequence run here behaves exactly as the same lines
// run by "gio run".
type Env struct {
	NewSession func(out, errw io.Writer) Session
}

// Session is the shell session fsx drives (cmd/gio passes a
// *commands.Session; fsx sits below commands and does not import it).
type Session interface {
	// Execute runs one command line and reports whether it succeeded.
	Execute(line string) bool
	// RunPending delivers the completions due now, as the shell does
	// before every line.
	RunPending()
	// FlushOutput flushes what the session buffered for its out writer.
	FlushOutput()
	// Close closes the image and removes scratch images.
	Close()
}

// Kind classifies a failure.
type Kind string

// Failure kinds.
const (
	// KindRead: a read returned a byte no ordering of the requests in
	// flight allows.
	KindRead Kind = "read"
	// KindVerify: "read -P" disagreed with a byte the model knows.
	KindVerify Kind = "verify"
	// KindError: a request failed although nothing injects errors.
	KindError Kind = "error"
)

// Failure is one disagreement between gio and the model.
type Failure struct {
	Kind Kind
	// Line is the index of the body line that issued the request (the
	// request may have completed during a later line).
	Line int
	// ID is the line's identity in the sequence it was shrunk from.
	ID     int
	Cmd    string
	Detail string
}

func (f *Failure) String() string {
	return fmt.Sprintf("body line %d (%s): %s: %s", f.Line+1, f.Cmd, f.Kind, f.Detail)
}

// Result is the outcome of one run of a sequence.
type Result struct {
	Failures []*Failure
	// Harness reports that the run itself went wrong: output fsx does
	// not understand, a completion it cannot attribute. Such a run says
	// nothing about gio's block layer.
	Harness error
}

// request is a request the runner saw issued and has not seen finish.
type request struct {
	write  bool
	off, n int64
	start  int
	id     int // model id of a write-like request
	line   int
	sync   bool
	silent bool // completion is never printed (sync discard that got stuck)
	// withdrawn: a sync request that could never finish and was taken
	// back before its I/O ("... failed: Operation canceled").
	withdrawn bool
	verify    int  // "read -P": the pattern, else -1
	dump      bool // "-v": data comes as a hex dump
	mismatch  bool
}

// runner executes lines on a session and checks what they print.
type runner struct {
	env  Env
	s    Session
	out  bytes.Buffer
	errb bytes.Buffer
	// lastErr is what the session wrote to stderr during the last line.
	lastErr string
	m       *model
	now     int
	align   int64

	pending   []*request
	suspended map[string]int  // tag -> requests suspended under it
	unfired   map[string]bool // breakpoints set and not yet hit

	line     int // current body line, -1 during setup
	bodyText []string
	ids      []int    // each body line's identity (its index in the original sequence)
	cur      *request // the synchronous request of the current line

	dumpOff  int64
	dumpData []byte

	// lateVerify counts "read -q -P" commands left in flight: a
	// pattern failure they print later cannot be placed in time.
	lateVerify int

	failures []*Failure
	harness  error
	drained  bool // the last aio_flush drained everything

	// parsed caches parseWords by line (words are read only).
	parsed map[string]words
}

func newRunner(env Env) *runner {
	r := &runner{env: env, suspended: map[string]int{}, unfired: map[string]bool{}, line: -1, parsed: map[string]words{}}
	r.s = env.NewSession(&r.out, &r.errb)
	UseRecords(r.s)
	return r
}

// close ends the session and removes its scratch image.
func (r *runner) close() {
	r.s.Close()
}

func (r *runner) harnessf(format string, args ...any) {
	if r.harness == nil {
		r.harness = fmt.Errorf(format, args...)
	}
}

func (r *runner) fail(kind Kind, req *request, detail string) {
	line, id, cmd := r.line, -1, ""
	if req != nil {
		line = req.line
	}
	if line >= 0 && line < len(r.ids) {
		id = r.ids[line]
	}
	cmd = r.cmdText(line)
	r.failures = append(r.failures, &Failure{Kind: kind, Line: line, ID: id, Cmd: cmd, Detail: detail})
}

// body holds the body lines run so far, for failure messages.
func (r *runner) cmdText(line int) string {
	if line >= 0 && line < len(r.bodyText) {
		return r.bodyText[line]
	}
	return ""
}

// words of a generated command line: the name, its flags (with the
// value of -P) and its numeric arguments.
type words struct {
	name  string
	flags string
	pat   int
	args  []string
}

func parseWords(line string) words {
	f := splitLine(line)
	w := words{pat: -1}
	if len(f) == 0 {
		return w
	}
	w.name = f[0]
	for i := 1; i < len(f); i++ {
		a := f[i]
		if len(a) > 1 && a[0] == '-' && a != "--" {
			for _, c := range a[1:] {
				if c == 'P' {
					v := strings.TrimPrefix(a[1:], "P")
					if strings.HasSuffix(a, "P") && i+1 < len(f) {
						i++
						v = f[i]
					}
					if p, err := strconv.ParseInt(v, 0, 64); err == nil {
						w.pat = int(p)
					}
					break
				}
				w.flags += string(c)
			}
			continue
		}
		w.args = append(w.args, a)
	}
	return w
}

func (w words) has(flag byte) bool { return strings.IndexByte(w.flags, flag) >= 0 }

// offLen reads the last two arguments as offset and length.
func (w words) offLen() (int64, int64, bool) {
	if len(w.args) != 2 {
		return 0, 0, false
	}
	off, err1 := parseNum(w.args[0])
	n, err2 := parseNum(w.args[1])
	return off, n, err1 == nil && err2 == nil
}

func parseNum(s string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "k"), strings.HasSuffix(s, "K"):
		mult, s = 1<<10, s[:len(s)-1]
	case strings.HasSuffix(s, "M"):
		mult, s = 1<<20, s[:len(s)-1]
	}
	v, err := strconv.ParseInt(s, 0, 64)
	return v * mult, err
}

// exec runs one line. body is its index among the body lines (-1 for
// setup lines).
func (r *runner) exec(line string, body int) bool {
	if r.harness != nil {
		return false
	}
	r.line = body
	if body >= 0 {
		for len(r.bodyText) <= body {
			r.bodyText = append(r.bodyText, "")
			r.ids = append(r.ids, len(r.ids))
		}
		r.bodyText[body] = line
	}
	// What the loop delivers before the line runs ("gio run" runs
	// pending bottom halves before every line).
	r.s.RunPending()
	r.collect()

	w, seen := r.parsed[line]
	if !seen {
		// Explore runs the same lines again and again.
		w = parseWords(line)
		r.parsed[line] = w
	}
	r.cur = nil
	r.now++
	switch w.name {
	case "create":
		// create [-f FMT] [-o OPTS] NAME SIZE: the model follows the
		// guest's view whatever the format.
		if len(w.args) >= 2 {
			if n, err := parseNum(w.args[len(w.args)-1]); err == nil {
				r.m = newModel(n)
			}
		}
	case "aio_write", "discard", "write":
		off, n, ok := w.offLen()
		if !ok || r.m == nil {
			break
		}
		zero := w.has('z') || w.name == "discard"
		val := byte(0xcd)
		if w.pat >= 0 {
			val = byte(w.pat)
		}
		if zero {
			val = 0
		}
		req := &request{write: true, off: off, n: n, start: r.now, line: body, verify: -1, sync: w.name != "aio_write"}
		req.id = r.m.issue(r.now, off, n, val, w.name == "discard", body)
		r.pending = append(r.pending, req)
		if req.sync {
			r.cur = req
		}
	case "aio_read", "read":
		off, n, ok := w.offLen()
		if !ok || r.m == nil {
			break
		}
		req := &request{off: off, n: n, start: r.now, line: body, verify: w.pat, dump: w.has('v'), sync: w.name == "read"}
		r.pending = append(r.pending, req)
		if req.sync {
			r.cur = req
		}
	}
	ok := r.s.Execute(line)
	r.collect()
	r.now++
	r.finish(w, ok)
	if r.m != nil {
		horizon := r.now + 1
		for _, p := range r.pending {
			if !p.write {
				horizon = min(horizon, p.start)
			}
		}
		r.m.prune(horizon)
	}
	return ok
}

// finish handles the end of a line: synchronous requests complete, a
// successful aio_flush proves everything finished, breakpoints change.
func (r *runner) finish(w words, ok bool) {
	switch w.name {
	case "open":
		if !ok {
			r.harnessf("open failed: %s", strings.TrimSpace(r.lastErr))
		}
	case "break":
		if ok && len(w.args) == 2 {
			r.unfired[w.args[1]] = true
		}
	case "remove_break":
		if len(w.args) == 1 {
			delete(r.unfired, w.args[0])
		}
	case "aio_flush":
		r.drained = ok
		if !ok {
			return
		}
		for _, p := range r.pending {
			if p.silent {
				r.m.complete(p.id, r.now)
				continue
			}
			r.harnessf("aio_flush returned with %s %d+%d in flight", map[bool]string{true: "write", false: "read"}[p.write], p.off, p.n)
		}
		r.pending = nil
	}
	req := r.cur
	if req == nil || !r.isPending(req) {
		return
	}
	// A sync request that can never finish is either withdrawn (failed
	// with ECANCELED, no effect) or left in flight (the command succeeds
	// and its output comes when the request completes).
	inFlight := strings.Contains(r.lastErr, "left in flight")
	switch {
	case req.write && req.withdrawn: // sync write or discard, withdrawn
		// It never ran: for a discard, as one that did not zero its
		// bytes, which the model allows; a write is forgotten.
		if r.m.reqs[req.id].discard {
			r.m.complete(req.id, r.now)
		} else {
			r.m.withdraw(req.id, r.now)
		}
		r.remove(req)
	case req.write: // sync discard
		if ok && !inFlight {
			r.m.complete(req.id, r.now)
			r.remove(req)
		} else {
			// Stuck behind a suspended request: it goes on when that
			// one does, without a word. The next drain ends it.
			req.silent = true
		}
	case inFlight && req.dump:
		// Its dump and "read" line come when it completes
		// (completeRead), like an aio_read's.
	case inFlight && req.verify >= 0:
		r.remove(req)
		r.lateVerify++
	case req.verify >= 0 && !req.dump:
		r.remove(req)
		r.checkVerify(req, ok)
	default:
		// A sync read that printed nothing: stuck or failed; its data
		// is unknown and it changes nothing.
		r.remove(req)
	}
}

// checkVerify judges a "read -q -P v": the command says only whether
// every byte was v.
func (r *runner) checkVerify(req *request, ok bool) {
	if !ok && !req.mismatch {
		return // stuck or failed otherwise: nothing learnt
	}
	v := byte(req.verify)
	runs := r.m.runs(req.off, req.off+req.n, req.start)
	if req.mismatch {
		for _, rn := range runs {
			if !rn.ok || rn.val != v {
				return // the model allows other values: inconclusive
			}
		}
		r.fail(KindVerify, req, fmt.Sprintf("some byte of 0x%x+0x%x is not 0x%02x, the only value the model allows", req.off, req.n, v))
		return
	}
	data := bytes.Repeat([]byte{v}, int(req.n))
	if msg := r.m.check(req.off, data, req.start, r.now); msg != "" {
		r.fail(KindVerify, req, msg)
		return
	}
	if r.m.quietSince(req.start) {
		r.m.settle(r.now, req.off, data)
	}
}

func (r *runner) isPending(req *request) bool {
	for _, p := range r.pending {
		if p == req {
			return true
		}
	}
	return false
}

func (r *runner) remove(req *request) {
	for i, p := range r.pending {
		if p == req {
			r.pending = append(r.pending[:i], r.pending[i+1:]...)
			return
		}
	}
}

// isHex8 reports whether s is 8 lower-case hex digits (a dump line's
// offset), without a regexp: dump lines are most of the output.
func isHex8(s string) bool {
	for i := 0; i < 8; i++ {
		if unhex(s[i]) < 0 {
			return false
		}
	}
	return true
}

var (
	readLine  = regexp.MustCompile(`^read (\d+)/(\d+) bytes at offset (\d+)$`)
	wroteLine = regexp.MustCompile(`^wrote (\d+)/(\d+) bytes at offset (\d+)$`)
	statsLine = regexp.MustCompile(`^[0-9.]+ [A-Za-z]+, \d+ ops; `)
	verifyBad = regexp.MustCompile(`^Pattern verification failed at offset (\d+), (\d+) bytes$`)
	suspended = regexp.MustCompile(`^blkdebug: Suspended request '(.*)'$`)
	resuming  = regexp.MustCompile(`^blkdebug: Resuming request '(.*)'$`)
	failed    = regexp.MustCompile(`^(readv|aio_write|read|write|discard) failed: (.*)$`)
)

// collect parses what the session printed since the last call.
func (r *runner) collect() {
	r.s.FlushOutput()
	rest := SplitOutput(r.out.Bytes(), r.parseBytes, r.dumped)
	if len(rest) > 0 && rest[0] != 0 {
		// A last line without its newline.
		r.parseBytes(rest)
	}
	r.out.Reset()
	r.lastErr = r.errb.String()
	r.errb.Reset()
}

func (r *runner) parseBytes(l []byte) {
	if len(l) > 0 {
		r.parseLine(string(l))
	}
}

// dumped takes a dump record: the data of the read whose "read" line
// comes next, as its hex dump lines would have said.
func (r *runner) dumped(off int64, data []byte) {
	if len(r.dumpData) == 0 {
		r.dumpOff = off
	}
	r.dumpData = append(r.dumpData, data...)
}

// isStats reports whether l is a report's statistics line (statsLine),
// without the regular expression: one follows every "read" and "wrote"
// line that is not -q.
func isStats(l string) bool {
	i := 0
	for i < len(l) && (l[i] >= '0' && l[i] <= '9' || l[i] == '.') {
		i++
	}
	if i == 0 || i == len(l) || l[i] != ' ' {
		return false
	}
	i++
	j := i
	for i < len(l) && (l[i] >= 'a' && l[i] <= 'z' || l[i] >= 'A' && l[i] <= 'Z') {
		i++
	}
	if i == j || !strings.HasPrefix(l[i:], ", ") {
		return false
	}
	i += 2
	j = i
	for i < len(l) && l[i] >= '0' && l[i] <= '9' {
		i++
	}
	return i > j && strings.HasPrefix(l[i:], " ops; ")
}

// xferLine reads "VERB N/M bytes at offset OFF" (readLine, wroteLine)
// without a regular expression: N and OFF.
func xferLine(l, verb string) (n, off int64, ok bool) {
	rest, ok := strings.CutPrefix(l, verb)
	if !ok {
		return 0, 0, false
	}
	num := func(sep string) (int64, bool) {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 || !strings.HasPrefix(rest[i:], sep) {
			return 0, false
		}
		v, err := strconv.ParseInt(rest[:i], 10, 64)
		rest = rest[i+len(sep):]
		return v, err == nil
	}
	n, ok1 := num("/")
	_, ok2 := num(" bytes at offset ")
	off, ok3 := num("")
	return n, off, ok1 && ok2 && ok3 && rest == ""
}

func (r *runner) parseLine(l string) {
	// Hex dump lines are most of the output: parsed by hand.
	// "00001000:  cd cd ...  ................"
	if len(l) > 11 && l[8] == ':' && l[9] == ' ' && l[10] == ' ' && isHex8(l[:8]) {
		off, _ := strconv.ParseInt(l[:8], 16, 64)
		if len(r.dumpData) == 0 {
			r.dumpOff = off
		}
		rest := l[11:]
		for len(rest) >= 3 && rest[2] == ' ' && rest[0] != ' ' {
			hi, lo := unhex(rest[0]), unhex(rest[1])
			if hi < 0 || lo < 0 {
				break
			}
			r.dumpData = append(r.dumpData, byte(hi<<4|lo))
			rest = rest[3:]
		}
		return
	}
	// Report lines, by hand first: explore parses a few per schedule,
	// and the regular expressions below cost more than the rest of the
	// line's handling. Anything else goes on to them.
	if n, off, ok := xferLine(l, "read "); ok {
		data := r.dumpData
		r.dumpData = nil
		r.completeRead(off, n, data)
		r.dumpData = data[:0] // the model keeps no read's data
		return
	}
	if n, off, ok := xferLine(l, "wrote "); ok {
		r.completeWrite(off, n)
		return
	}
	if isStats(l) {
		return
	}
	if m := readLine.FindStringSubmatch(l); m != nil {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		off, _ := strconv.ParseInt(m[3], 10, 64)
		data := r.dumpData
		r.dumpData = nil
		r.completeRead(off, n, data)
		r.dumpData = data[:0] // the model keeps no read's data
		return
	}
	if m := wroteLine.FindStringSubmatch(l); m != nil {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		off, _ := strconv.ParseInt(m[3], 10, 64)
		r.completeWrite(off, n)
		return
	}
	if m := verifyBad.FindStringSubmatch(l); m != nil {
		if r.cur != nil && !r.cur.write && r.cur.verify >= 0 {
			r.cur.mismatch = true
			return
		}
		if r.lateVerify > 0 {
			return // a read left in flight: inconclusive
		}
		r.harnessf("unexpected %q", l)
		return
	}
	if m := suspended.FindStringSubmatch(l); m != nil {
		r.suspended[m[1]]++
		delete(r.unfired, m[1])
		return
	}
	if m := resuming.FindStringSubmatch(l); m != nil {
		if r.suspended[m[1]]--; r.suspended[m[1]] <= 0 {
			delete(r.suspended, m[1])
		}
		return
	}
	if m := failed.FindStringSubmatch(l); m != nil {
		if r.cur != nil && (m[1] == "read") != r.cur.write && m[1] != "aio_write" && m[2] == "Operation canceled" {
			r.cur.withdrawn = true
			return
		}
		r.fail(KindError, nil, l)
		return
	}
	if strings.HasPrefix(l, "Could not ") || strings.HasPrefix(l, "discard ") {
		return
	}
	r.harnessf("unexpected output %q", l)
}

// completeWrite attributes a "wrote" line to the write in flight with
// that range; the generator never has two such writes in flight, and a
// shrunk sequence that does is not trusted.
func (r *runner) completeWrite(off, n int64) {
	var match []*request
	for _, p := range r.pending {
		// A synchronous write's line comes during its own command.
		if p.write && (!p.sync || p == r.cur) && p.off == off && p.n == n {
			match = append(match, p)
		}
	}
	if len(match) != 1 {
		r.harnessf("%d writes in flight match \"wrote %d/%d bytes at offset %d\"", len(match), n, n, off)
		return
	}
	r.now++
	r.m.complete(match[0].id, r.now)
	r.remove(match[0])
}

func (r *runner) completeRead(off, n int64, data []byte) {
	var match []*request
	for _, p := range r.pending {
		if !p.write && p.off == off && p.n == n && p.dump {
			match = append(match, p)
		}
	}
	if len(match) == 0 && len(data) == 0 {
		// A read without -v (scripts that are not generated print
		// its line): nothing to check but its -P, which finish does
		// for a synchronous read; an aio_read without -P just ends.
		if c := r.cur; c != nil && !c.write && c.off == off && c.n == n {
			return
		}
		for _, p := range r.pending {
			if !p.write && !p.sync && p.off == off && p.n == n && p.verify < 0 {
				r.remove(p)
				return
			}
		}
	}
	if len(match) != 1 {
		r.harnessf("%d reads in flight match \"read %d/%d bytes at offset %d\"", len(match), n, n, off)
		return
	}
	req := match[0]
	r.remove(req)
	r.now++
	if int64(len(data)) != n || r.dumpOff != off {
		r.harnessf("read %d+%d: dump of %d bytes at %d", off, n, len(data), r.dumpOff)
		return
	}
	if msg := r.m.check(off, data, req.start, r.now); msg != "" {
		r.fail(KindRead, req, msg)
		return
	}
	if r.m.quietSince(req.start) {
		r.m.settle(r.now, off, data)
	}
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	}
	return -1
}

// splitLine splits a command line into words as the shell does: at
// spaces only (a tab is part of a word).
func splitLine(line string) []string {
	return strings.FieldsFunc(line, func(r rune) bool { return r == ' ' })
}
