package explore

import "gio/blk"

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
func (s *search) runPath(task int, path []node) ([]node, bool) {
	ch := newChooser(prefixOf(path), s.grain(), s.reduce())
	ch.extra = extrasOf(path)
	if ch.reduce {
		ch.lines = s.sc.lines
	}
	o := s.run(ch)
	if len(path) == 0 {
		// Effect choices skipped statically, counted once (the FIFO
		// run meets every request).
		s.tasks[task].pruned += int64(ch.skipped)
	}
	limit := len(ch.tr)
	goOn := true
	recorded := ch.redundant < 0
	if recorded {
		goOn = s.record(task, o, sparse(ch.tr), 0)
	} else {
		s.tasks[task].pruned++
		limit = ch.redundant
		goOn = !s.stop.Load()
	}
	for i := len(path); i < limit; i++ {
		n := node{pt: ch.tr[i], def: ch.defAt[i], explored: []int{ch.tr[i].alt}}
		if ch.reduce {
			n.sleep0 = ch.sleepAt[i]
			for a := 0; a < n.pt.n; a++ {
				if n.asleep(a) {
					s.tasks[task].pruned++
				}
			}
		}
		path = append(path, n)
	}
	if recorded {
		s.ranPath(task)
	}
	return path, goOn
}

// dfs explores the subtree below path[floor].
func (s *search) dfs(task int, path []node, floor int) {
	bound := s.cfg.MaxPreemptions
	for {
		if s.stop.Load() || s.pointless(task) {
			return
		}
		var goOn bool
		path, goOn = s.runPath(task, path)
		if !goOn {
			return
		}
		found := false
		for m := len(path) - 1; m > floor && !found; m-- {
			dev := deviations(path[:m])
			for a := 0; a < path[m].pt.n; a++ {
				if path[m].open(a, dev, bound) {
					path[m].explored = append(path[m].explored, a)
					path = path[:m+1]
					found = true
					break
				}
			}
		}
		if !found {
			return
		}
	}
}

// exhaustive runs the FIFO schedule, then the subtrees rooted at its
// alternatives as tasks.
func (s *search) exhaustive() {
	root, goOn := s.runPath(0, nil)
	if !goOn {
		return
	}
	type task struct{ m, a int }
	var tasks []task
	for m := len(root) - 1; m >= 0; m-- {
		for a := 0; a < root[m].pt.n; a++ {
			if root[m].open(a, 0, s.cfg.MaxPreemptions) {
				tasks = append(tasks, task{m, a})
			}
		}
	}
	s.setTasks(len(tasks))
	s.parallel(len(tasks), func(t int) {
		tk := tasks[t]
		path := make([]node, tk.m+1)
		copy(path, root[:tk.m+1])
		n := &path[tk.m]
		n.explored = append([]int(nil), n.explored...)
		for _, u := range tasks[:t] {
			if u.m == tk.m {
				n.explored = append(n.explored, u.a)
			}
		}
		n.explored = append(n.explored, tk.a)
		s.dfs(t+1, path, tk.m)
	})
}
