package fsx

import (
	"strings"
)

// Shrink deletes body lines while the failure remains: the same kind of
// failure, of the request issued by the same original line. Deleting
// may leave a resume without its breakpoint or a breakpoint nobody
// resumes; the shell reports those and goes on (a drain that can never
// finish is an error, not a hang), so they need no special care, but
// lines that share a breakpoint tag are also tried away together.
// budget bounds the number of runs.
func (e Env) Shrink(setup, body []string, target *Failure, budget int) ([]string, *Failure) {
	ids := make([]int, len(body))
	for i := range ids {
		ids[i] = i
	}
	if target.ID >= 0 {
		// The target's identity is its index in body.
		target = &Failure{Kind: target.Kind, Line: target.Line, ID: target.Line, Cmd: target.Cmd, Detail: target.Detail}
	}
	best := target
	runs := 0
	try := func(cand []int) bool {
		if runs >= budget {
			return false
		}
		runs++
		lines := make([]string, len(cand))
		for i, id := range cand {
			lines[i] = body[id]
		}
		res := e.Check(setup, lines, cand)
		if res.Harness != nil {
			return false
		}
		for _, f := range res.Failures {
			if f.Kind == target.Kind && f.ID == target.ID {
				best = f
				return true
			}
		}
		return false
	}
	without := func(cur []int, drop func(i, id int) bool) []int {
		var out []int
		for i, id := range cur {
			if !drop(i, id) {
				out = append(out, id)
			}
		}
		return out
	}
	cur := ids
	// Breakpoint tags: a break and the resumes of its tag go together.
	tagPass := func() {
		for _, tag := range tagsOf(body, cur) {
			cand := without(cur, func(_, id int) bool { return lineTag(body[id]) == tag && id != target.ID })
			if len(cand) < len(cur) && try(cand) {
				cur = cand
			}
		}
	}
	tagPass()
	for chunk := len(cur) / 2; chunk >= 1 && runs < budget; {
		progress := false
		for start := 0; start < len(cur) && runs < budget; {
			end := min(start+chunk, len(cur))
			cand := without(cur, func(i, id int) bool { return i >= start && i < end && id != target.ID })
			if len(cand) < len(cur) && try(cand) {
				cur = cand
				progress = true
				continue
			}
			start = end
		}
		if !progress {
			chunk /= 2
		}
	}
	tagPass()
	out := make([]string, len(cur))
	for i, id := range cur {
		out[i] = body[id]
	}
	// Report the failure with its place in the shrunk body.
	for i, id := range cur {
		if id == best.ID {
			best = &Failure{Kind: best.Kind, Line: i, ID: i, Cmd: out[i], Detail: best.Detail}
		}
	}
	return out, best
}

// lineTag is the breakpoint tag a line names (break, resume,
// remove_break, wait_break), or "".
func lineTag(l string) string {
	f := strings.Fields(l)
	switch {
	case len(f) == 3 && f[0] == "break":
		return f[2]
	case len(f) == 2 && (f[0] == "resume" || f[0] == "remove_break" || f[0] == "wait_break"):
		return f[1]
	}
	return ""
}

func tagsOf(body []string, cur []int) []string {
	seen := map[string]bool{}
	var out []string
	for _, id := range cur {
		if t := lineTag(body[id]); t != "" && !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out
}
