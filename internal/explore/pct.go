package explore

import (
	"math/rand"

	"gio/blk"
)

// pct is the random policy of Burckhardt et al. 2010 ("A randomized
// scheduler with probabilistic guarantees of finding bugs"): every
// request gets a random priority when first seen, the highest-priority
// runnable request runs, and at depth-1 random steps the request that
// runs has its priority dropped below all others. The script itself is
// one more thread (id 0): a completion is delivered before the script
// goes on when its request outranks the script.
type pct struct {
	rnd    *rand.Rand
	prio   map[int]int
	change map[int]int // step -> low priority to give the chosen request
}

// newPCT seeds a run. steps estimates how many choice points a run
// meets (the change points fall among them).
func newPCT(seed int64, depth, steps int) *pct {
	r := rand.New(rand.NewSource(seed))
	p := &pct{rnd: r, prio: map[int]int{}, change: map[int]int{}}
	for i := 1; i < depth; i++ {
		p.change[r.Intn(max(steps, 1))] = depth - i
	}
	return p
}

func (p *pct) priority(id int) int {
	v, ok := p.prio[id]
	if !ok {
		v = depthLimit + p.rnd.Intn(1<<20)
		p.prio[id] = v
	}
	return v
}

// depthLimit keeps initial priorities above every lowered one.
const depthLimit = 1 << 10

func (p *pct) choose(step int, pt point) int {
	if pt.kind == blk.ChooseEffect {
		// Late with the probability of a change point: rare, as a
		// syscall overtaken by later requests is.
		if _, ok := p.change[step]; ok || p.rnd.Intn(8) == 0 {
			return 1
		}
		return 0
	}
	best, bestPrio := 0, -1
	for i, id := range pt.ids {
		if pt.kind == blk.ChooseDeliver && i == 0 {
			id = 0 // the script
		}
		if pr := p.priority(id); pr > bestPrio {
			best, bestPrio = i, pr
		}
	}
	if low, ok := p.change[step]; ok {
		id := pt.ids[best]
		if pt.kind == blk.ChooseDeliver && best == 0 {
			id = 0
		}
		p.prio[id] = low
	}
	return best
}
