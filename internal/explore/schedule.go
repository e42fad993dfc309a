package explore

import (
	"fmt"
	"strconv"
	"strings"

	"gio/blk"
)

// A schedule is the list of answers a run gives at the loop's choice
// points (blk.ChoicePoint), numbered from 0 in the order the loop asks.
// Every answer is normalised so that 0 is what the loop does without a
// chooser: at a run point the index of the runnable request (0 is the
// oldest), at a deliver point 0 for "the script goes on" and i+1 for
// "deliver the i-th completed request first". A schedule is printed as
// its non-default answers, "STEP:ALT,STEP:ALT", or "fifo" when it has
// none, and replays from that string.

// Choice is one non-default answer.
type Choice struct {
	Step int // index of the choice point in the run
	Alt  int // normalised answer, >= 1
}

// Schedule is a run's non-default answers, by increasing step.
type Schedule []Choice

func (s Schedule) String() string {
	if len(s) == 0 {
		return "fifo"
	}
	parts := make([]string, len(s))
	for i, c := range s {
		parts[i] = fmt.Sprintf("%d:%d", c.Step, c.Alt)
	}
	return strings.Join(parts, ",")
}

// maxStep bounds the step numbers a schedule string may name, so that a
// typo cannot make the dense form huge.
const maxStep = 1 << 20

// ParseSchedule reads a schedule string (see Schedule.String).
func ParseSchedule(s string) (Schedule, error) {
	s = strings.TrimSpace(s)
	if s == "fifo" || s == "" {
		return nil, nil
	}
	var out Schedule
	for _, part := range strings.Split(s, ",") {
		a, b, ok := strings.Cut(part, ":")
		step, err1 := strconv.Atoi(a)
		alt, err2 := strconv.Atoi(b)
		if !ok || err1 != nil || err2 != nil || step < 0 || step > maxStep || alt < 1 || alt > 1<<16 {
			return nil, fmt.Errorf("schedule %q: %q is not STEP:ALT (ALT >= 1)", s, part)
		}
		if len(out) > 0 && step <= out[len(out)-1].Step {
			return nil, fmt.Errorf("schedule %q: steps must increase", s)
		}
		out = append(out, Choice{step, alt})
	}
	return out, nil
}

// dense expands a schedule to one answer per step up to its last.
func (s Schedule) dense() []int {
	if len(s) == 0 {
		return nil
	}
	d := make([]int, s[len(s)-1].Step+1)
	for _, c := range s {
		d[c.Step] = c.Alt
	}
	return d
}

// point is one choice point as a run met it.
type point struct {
	kind blk.ChoicePoint
	n    int   // number of alternatives (normalised)
	alt  int   // the answer given
	ids  []int // candidate request ids in normalised order (0: none for deliver)
	rngs []span
	cost int // 1 when the answer is a deviation the bound counts
	line int // the body line running when the point was met
}

// sparse returns the schedule of a trace.
func sparse(tr []point) Schedule {
	var s Schedule
	for i, p := range tr {
		if p.alt != 0 {
			s = append(s, Choice{i, p.alt})
		}
	}
	return s
}

// Trace runs schedule s and describes every choice point the run met:
// step, kind, the candidates (request ids; "script" for the script
// going on) and the answer taken, one line each.
func (e Env) Trace(sc *Script, s Schedule) []string {
	ch, o := e.replay(sc, s)
	var out []string
	for i, p := range ch.tr {
		var cands []string
		for j, id := range p.ids {
			switch {
			case p.kind == blk.ChooseDeliver && j == 0:
				cands = append(cands, "script")
			case p.kind == blk.ChooseEffect:
				cands = []string{fmt.Sprintf("#%d now", id), fmt.Sprintf("#%d late", id)}
			default:
				cands = append(cands, fmt.Sprintf("#%d", id))
			}
		}
		out = append(out, fmt.Sprintf("%d %s line %d [%s] -> %d", i, p.kind, p.line+1, strings.Join(cands, " "), p.alt))
	}
	if o.fail != "" {
		out = append(out, "failure: "+o.fail)
	}
	return out
}
