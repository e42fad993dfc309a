package explore

import (
	"slices"

	"gio/blk"
)

// The exhaustive search is stateless depth-first search: a run replays
// the answers of a path from the root and answers by policy beyond it;
// backtracking takes the deepest choice point with an alternative left
// within the preemption bound. With sleep sets (Godefroid 1996), the
// siblings explored before a branch sleep in it until a request whose
// range overlaps theirs runs; a sleeping request is not tried, and a run
// where every runnable request sleeps is redundant. Delivery and effect
// choices take part: a completion delivered early in one branch sleeps
// in its siblings (its early delivery is not tried again until a
// dependent step ran), and an effect taken at once sleeps in the late
// branch (a late effect that happens while it still sleeps makes the run
// redundant). Under a bound on
// deviations, sleep sets can skip a schedule the bound would have
// reached only through a pruned one (a known incompleteness of bounded
// search with sleep sets); --no-reduce explores without them.
//
// For -j, the FIFO run's choice points split the tree: each alternative
// at each of its points roots one subtree (a task). The tasks partition
// the space and each task's sleep sets depend only on the FIFO run, so
// the schedules run do not depend on the number of jobs; the failure
// reported is the first in task order.

// node is a choice point on the current path.
type node struct {
	pt       point
	def      int       // the policy's answer (a forced answer is no deviation)
	sleep0   []sleeper // asleep when the point was met
	explored []int     // answers taken here so far; the last is the current one
}

func (n *node) cur() int { return n.explored[len(n.explored)-1] }

func (n *node) cost(a int) int {
	if a != n.def {
		return 1
	}
	return 0
}

func (n *node) asleep(a int) bool {
	if n.pt.kind == blk.ChooseEffect || n.pt.kind == blk.ChooseDeliver && a == 0 {
		return false
	}
	for _, s := range n.sleep0 {
		if s.id == n.pt.ids[a] {
			return true
		}
	}
	return false
}

func (n *node) taken(a int) bool {
	for _, e := range n.explored {
		if e == a {
			return true
		}
	}
	return false
}

// open reports whether answer a is still to be explored at n within the
// bound, given dev deviations above n.
func (n *node) open(a, dev, bound int) bool {
	return !n.taken(a) && !n.asleep(a) && dev+n.cost(a) <= bound
}

func prefixOf(path []node) []int {
	p := make([]int, len(path))
	for i := range path {
		p[i] = path[i].cur()
	}
	return p
}

// extrasOf returns, per step, the siblings explored before the current
// answer: they sleep in the current branch.
func extrasOf(path []node) map[int][]sleeper {
	var m map[int][]sleeper
	for i := range path {
		n := &path[i]
		if len(n.explored) < 2 {
			continue
		}
		if m == nil {
			m = map[int][]sleeper{}
		}
		for _, a := range n.explored[:len(n.explored)-1] {
			if n.pt.kind == blk.ChooseDeliver && a == 0 {
				// The script going on is no request to put to sleep.
				continue
			}
			// An effect explored at once sleeps in the late branch:
			// the late effect is redundant until a dependent step ran
			// (chooser.ranReq).
			m[i] = append(m[i], sleeper{id: n.pt.ids[a], sp: n.pt.rngs[a]})
		}
	}
	return m
}

func deviations(path []node) int {
	d := 0
	for i := range path {
		d += path[i].cost(path[i].cur())
	}
	return d
}

// runPath runs the path's schedule and extends the path with the points
// the run met beyond it. It reports whether the search goes on in this
// task (no failure, no bound reached).
func (s *search) runPath(tk *task, path []node) ([]node, bool) {
	ch := newChooser(prefixOf(path), s.grain(), s.reduce())
	ch.extra = extrasOf(path)
	if ch.reduce {
		ch.lines = s.sc.lines
	}
	o := s.run(ch)
	if len(path) == 0 {
		// Effect choices skipped statically, counted once (the FIFO
		// run meets every request).
		tk.res.pruned += int64(ch.skipped)
	}
	limit := len(ch.tr)
	goOn := true
	recorded := ch.redundant < 0
	if recorded {
		goOn = s.record(tk, o, sparse(ch.tr), 0)
	} else {
		tk.res.pruned++
		limit = ch.redundant
		goOn = !s.stop.Load()
	}
	for i := len(path); i < limit; i++ {
		n := node{pt: ch.tr[i], def: ch.defAt[i], explored: []int{ch.tr[i].alt}}
		if ch.reduce {
			n.sleep0 = ch.sleepAt[i]
			for a := 0; a < n.pt.n; a++ {
				if n.asleep(a) {
					tk.res.pruned++
				}
			}
		}
		path = append(path, n)
	}
	if recorded {
		s.ranPath(tk)
	}
	return path, goOn
}

// dfs explores the subtree below path[floor] in tk; a task that
// splits makes its first run's subtrees tasks of their own instead.
func (s *search) dfs(tk *task, path []node, floor int) {
	for {
		if s.stop.Load() || s.pointless(tk) {
			return
		}
		var goOn bool
		path, goOn = s.runPath(tk, path)
		if !goOn {
			return
		}
		if tk.split {
			s.add(s.subtrees(tk.key, path, floor)...)
			return
		}
		if !s.backtrack(&path, floor) {
			return
		}
	}
}

// backtrack moves path to the next alternative below path[floor]
// within the bound, deepest first, and reports whether there was one.
func (s *search) backtrack(path *[]node, floor int) bool {
	p := *path
	for m := len(p) - 1; m > floor; m-- {
		dev := deviations(p[:m])
		for a := 0; a < p[m].pt.n; a++ {
			if p[m].open(a, dev, s.cfg.MaxPreemptions) {
				p[m].explored = append(p[m].explored, a)
				*path = p[:m+1]
				return true
			}
		}
	}
	return false
}

// subtrees are the tasks below path[floor], in the order backtrack
// would reach them: each alternative at each point of path, deepest
// first, with the alternatives taken before it at its point explored
// (they sleep in it). The first has key's first part and second 1.
func (s *search) subtrees(key taskKey, path []node, floor int) []*task {
	type alt struct{ m, a int }
	var alts []alt
	for m := len(path) - 1; m > floor; m-- {
		dev := deviations(path[:m])
		for a := 0; a < path[m].pt.n; a++ {
			if path[m].open(a, dev, s.cfg.MaxPreemptions) {
				alts = append(alts, alt{m, a})
			}
		}
	}
	tasks := make([]*task, len(alts))
	for i, al := range alts {
		p := make([]node, al.m+1)
		copy(p, path[:al.m+1])
		n := &p[al.m]
		n.explored = slices.Clone(n.explored)
		for _, u := range alts[:i] {
			if u.m == al.m {
				n.explored = append(n.explored, u.a)
			}
		}
		n.explored = append(n.explored, al.a)
		tasks[i] = &task{key: taskKey{key[0], key[1] + 1 + i}, path: p, floor: al.m}
	}
	return tasks
}

// exhaustive runs the FIFO schedule, then the subtrees rooted at its
// alternatives as tasks, each split once more below its first run.
func (s *search) exhaustive() {
	first := &task{}
	s.tasks = append(s.tasks, first)
	root, goOn := s.runPath(first, nil)
	if !goOn {
		return
	}
	tasks := s.subtrees(taskKey{}, root, -1)
	for i, tk := range tasks {
		tk.key, tk.split = taskKey{i + 1}, true
	}
	s.add(tasks...)
	s.work(func(tk *task) { s.dfs(tk, tk.path, tk.floor) })
}
