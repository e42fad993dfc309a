package explore

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Shrink makes a failure smaller: fewer deviations from FIFO (each
// answer of the schedule dropped if the run still fails), then fewer
// body lines (each deleted if a search of the smaller script within
// small bounds still fails the same way), until nothing goes.
func (e Env) Shrink(sc *Script, f *Failure, cfg Config) (*Script, *Failure) {
	class := failureClass(f.What)
	for {
		f = e.fewerChoices(sc, f)
		changed := false
		for i := len(sc.Body) - 1; i >= 0 && len(sc.Body) > 1; i-- {
			body := append(append([]string(nil), sc.Body[:i]...), sc.Body[i+1:]...)
			cand, err := newScript(sc.Setup, body)
			if err != nil {
				continue
			}
			if what, fits := e.Replay(cand, f.Schedule); fits && what != "" && failureClass(what) == class {
				sc, f, changed = cand, &Failure{Schedule: f.Schedule, What: what, From: f.From}, true
				continue
			}
			c := cfg
			c.Random, c.Jobs, c.Progress = false, 1, nil
			c.MaxSchedules = min(max(c.MaxSchedules, 1), 2000)
			c.Budget = 2 * time.Second
			if g := e.Explore(cand, c).First; g != nil && failureClass(g.What) == class {
				sc, f, changed = cand, g, true
			}
		}
		if !changed {
			return sc, f
		}
	}
}

// ShrinkRanges shrinks the ranges of a shrunk failure's lines, keeping
// its schedule (for a breakpoint reproducer: FIFO, as "gio run" runs
// it): see smallerRanges.
func (e Env) ShrinkRanges(sc *Script, f *Failure) (*Script, *Failure) {
	class := failureClass(f.What)
	return smallerRanges(sc, f, func(cand *Script) *Failure {
		if what, fits := e.Replay(cand, f.Schedule); fits && what != "" && failureClass(what) == class {
			return &Failure{Schedule: f.Schedule, What: what, From: f.From}
		}
		return nil
	})
}

// failureClass is how a failure fails, for shrinking to keep it: the
// oracle and the kind of its verdict ("" for the model losing track,
// which is no failure to keep).
func failureClass(what string) string {
	switch {
	case strings.HasPrefix(what, "explore could not follow"):
		return ""
	case strings.HasPrefix(what, "a request can never finish"):
		return "stuck"
	}
	if m := classRE.FindStringSubmatch(what); m != nil {
		return m[1] + ": " + m[2]
	}
	return what
}

var classRE = regexp.MustCompile(`^(line|final image check) (?:\d+ )?\([^)]*\): ([^:]+):`)

// smallerRanges shrinks the ranges of the body's lines ("CMD ... OFF
// LEN"): each line's length is halved, and its offset brought to 0 or
// halved (multiples of 512 while the numbers are), while fails (a
// failure of the candidate, or nil) still finds one.
func smallerRanges[F any](sc *Script, f *F, fails func(*Script) *F) (*Script, *F) {
	for changed, rounds := true, 0; changed && rounds < 64; rounds++ {
		changed = false
		for i, l := range sc.Body {
			for _, cand := range rangeCandidates(l) {
				body := append([]string(nil), sc.Body...)
				body[i] = cand
				c, err := newScript(sc.Setup, body)
				if err != nil {
					continue
				}
				if g := fails(c); g != nil {
					sc, f, changed = c, g, true
					break
				}
			}
		}
	}
	return sc, f
}

// fewerChoices drops the schedule's answers one at a time while the run
// still fails.
func (e Env) fewerChoices(sc *Script, f *Failure) *Failure {
	for i := len(f.Schedule) - 1; i >= 0; i-- {
		s := append(append(Schedule(nil), f.Schedule[:i]...), f.Schedule[i+1:]...)
		if what, fits := e.Replay(sc, s); fits && what != "" {
			f = &Failure{Schedule: s, What: what}
		}
	}
	return f
}

// WithBreakpoints rewrites a failing schedule as breakpoints, so that
// "gio run" replays it: each write whose effect the schedule placed late
// is suspended at its pwritev event by a "break" line before the line
// that submits it, and a "resume" before the line where its effect came
// lets it go on. The rewritten script is returned (with the FIFO
// schedule) only when it fails under FIFO order, as "gio run" runs it.
func (e Env) WithBreakpoints(sc *Script, f *Failure) (*Script, *Failure, bool) {
	if len(f.Schedule) == 0 {
		return sc, f, true
	}
	ch, _ := e.replay(sc, f.Schedule)
	if len(ch.late) == 0 || len(ch.late) > 26 {
		return nil, nil, false
	}
	before := make([][]string, len(sc.Body)+1)
	at := func(line int) int {
		if line < 0 || line > len(sc.Body) {
			return len(sc.Body)
		}
		return line
	}
	for i, l := range ch.late {
		if sp := spanOf(l.reqName, 1); !sp.known || !sp.write || l.atLine < 0 || l.atLine >= len(sc.Body) {
			return nil, nil, false
		}
		tag := string(rune('A' + i))
		before[l.atLine] = append(before[l.atLine], "break pwritev "+tag)
		before[at(l.effectAt)] = append(before[at(l.effectAt)], "resume "+tag)
	}
	var body []string
	for i, l := range sc.Body {
		body = append(body, before[i]...)
		body = append(body, l)
	}
	body = append(body, before[len(sc.Body)]...)
	out, err := newScript(sc.Setup, body)
	if err != nil {
		return nil, nil, false
	}
	if what, _ := e.Replay(out, nil); what != "" {
		return out, &Failure{What: what, From: f.Schedule}, true
	}
	return nil, nil, false
}

// oneValue matches a model failure that names the one value allowed.
var oneValue = regexp.MustCompile(`byte at 0x([0-9a-f]+) is 0x[0-9a-f]+, allowed \{0x([0-9a-f]+) \([^)]*\)\}`)

// Reproducer formats a failure as a .gio script. A FIFO schedule is the
// order "gio run" follows, so the script fails under "gio run" too: a
// failure of the final image check becomes a "read -P" of the first
// wrong byte. Other schedules replay with "gio explore --schedule".
func Reproducer(sc *Script, f *Failure) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# gio explore reproducer: %s\n", f.What)
	switch {
	case len(f.Schedule) == 0 && len(f.From) > 0:
		fmt.Fprintf(&b, "# replay: gio run FILE (the breakpoints stand for schedule %s of the script without them)\n", f.From)
	case len(f.Schedule) == 0:
		b.WriteString("# replay: gio run FILE (schedule fifo)\n")
	default:
		fmt.Fprintf(&b, "# replay: gio explore --schedule %s FILE\n", f.Schedule)
	}
	for _, l := range sc.Setup {
		b.WriteString(l + "\n")
	}
	for _, l := range sc.Body {
		b.WriteString(l + "\n")
	}
	if m := oneValue.FindStringSubmatch(f.What); m != nil && strings.HasPrefix(f.What, "final image check") {
		fmt.Fprintf(&b, "aio_flush\nread -P 0x%s 0x%s 1\n", m[2], m[1])
	}
	return b.String()
}

// rangeCandidates are smaller versions of a line's range, best first.
func rangeCandidates(line string) []string {
	f := strings.Fields(line)
	if len(f) < 3 || harmless[f[0]] {
		return nil
	}
	off, err1 := parseSize(f[len(f)-2])
	n, err2 := parseSize(f[len(f)-1])
	if err1 != nil || err2 != nil {
		return nil
	}
	unit := int64(1)
	if off%512 == 0 && n%512 == 0 {
		unit = 512
	}
	with := func(o, l int64) string {
		g := append([]string(nil), f[:len(f)-2]...)
		return strings.Join(append(g, fmt.Sprint(o), fmt.Sprint(l)), " ")
	}
	var out []string
	if h := n / 2 / unit * unit; h > 0 && h < n {
		out = append(out, with(off, h))
	}
	if off > 0 {
		out = append(out, with(0, n))
		if h := off / 2 / unit * unit; h > 0 && h < off {
			out = append(out, with(h, n))
		}
	}
	return out
}
