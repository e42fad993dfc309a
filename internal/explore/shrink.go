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
// small bounds still fails), until nothing goes.
func (e Env) Shrink(sc *Script, f *Failure, cfg Config) (*Script, *Failure) {
	for {
		f = e.fewerChoices(sc, f)
		changed := false
		for i := len(sc.Body) - 1; i >= 0 && len(sc.Body) > 1; i-- {
			body := append(append([]string(nil), sc.Body[:i]...), sc.Body[i+1:]...)
			cand, err := newScript(sc.Setup, body)
			if err != nil {
				continue
			}
			if what, fits := e.Replay(cand, f.Schedule); fits && what != "" {
				sc, f, changed = cand, &Failure{Schedule: f.Schedule, What: what}, true
				continue
			}
			c := cfg
			c.Random, c.Jobs, c.Progress = false, 1, nil
			c.MaxSchedules = min(max(c.MaxSchedules, 1), 2000)
			c.Budget = 2 * time.Second
			if sum := e.Explore(cand, c); sum.First != nil {
				sc, f, changed = cand, sum.First, true
			}
		}
		if !changed {
			return sc, f
		}
	}
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
