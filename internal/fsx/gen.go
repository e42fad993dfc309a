package fsx

import (
	"fmt"
	"math/rand"
	"sort"
)

// Config describes the sequences to generate.
type Config struct {
	Seed int64
	// Ops is the number of random commands per sequence (before the
	// closing resumes, drain and verification).
	Ops int
	// Align is blkdebug's align option: 1, 512 or 4096.
	Align int64
	// Size is the image size (a multiple of Align).
	Size int64
	// NoSerialise opens blkdebug with serialise=off, which lets
	// overlapping read-modify-write requests lose updates: the bug fsx
	// must find.
	NoSerialise bool
}

func (c Config) withDefaults() Config {
	if c.Ops <= 0 {
		c.Ops = 60
	}
	if c.Align <= 0 {
		c.Align = 4096
	}
	if c.Size <= 0 {
		c.Size = 64 << 10
	}
	return c
}

// Setup returns the lines that create and open the image.
func (c Config) Setup() []string {
	c = c.withDefaults()
	opts := fmt.Sprintf("driver=raw,file.align=%d", c.Align)
	if c.NoSerialise {
		opts += ",file.serialise=off"
	}
	return []string{
		fmt.Sprintf("create img %d", c.Size),
		fmt.Sprintf("open -t writeback -o %s blkdebug::img", opts),
	}
}

// events are the breakpoints the generator sets: every step of a write
// through the generic layer, and the raw layer's entry points.
var events = []string{
	"write_aio", "read_aio", "pwritev_rmw_head", "pwritev_rmw_after_head",
	"pwritev_rmw_tail", "pwritev_rmw_after_tail", "pwritev", "pwritev_zero", "pwritev_done",
}

// gen chooses the next command from what the runner has seen so far.
type gen struct {
	rnd  *rand.Rand
	cfg  Config
	r    *runner
	pat  int
	tags int
	// hot is the region requests go to: small, so that they overlap.
	hot int64
}

// unit is the block size that makes requests interesting: the
// alignment, and sectors when there is none.
func (g *gen) unit() int64 { return max(g.cfg.Align, 512) }

// rangeFor picks an offset and length inside the hot region: unaligned,
// sector-aligned or block-aligned, never the range of a request of the
// same kind in flight (completions are matched by range).
func (g *gen) rangeFor(write bool) (int64, int64) {
	for try := 0; ; try++ {
		u := g.unit()
		var off, n int64
		switch g.rnd.Intn(3) {
		case 0:
			off = g.rnd.Int63n(g.hot)
			n = 1 + g.rnd.Int63n(2*u)
		case 1:
			off = g.rnd.Int63n(g.hot/512) * 512
			n = 512 * (1 + g.rnd.Int63n(2*u/512))
		default:
			off = g.rnd.Int63n(g.hot/u) * u
			n = u * (1 + g.rnd.Int63n(2))
		}
		n = min(n, g.cfg.Size-off)
		if !g.inFlight(write, off, n) || try > 100 {
			return off, n
		}
	}
}

func (g *gen) inFlight(write bool, off, n int64) bool {
	for _, p := range g.r.pending {
		if p.write == write && p.off == off && p.n == n {
			return true
		}
	}
	return false
}

func (g *gen) pattern() int {
	g.pat = g.pat%254 + 1 // 1..254: never the initial zeroes, never 0xff
	return g.pat
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// next returns a random command.
func (g *gen) next() string {
	for {
		switch x := g.rnd.Intn(100); {
		case x < 28:
			off, n := g.rangeFor(true)
			return fmt.Sprintf("aio_write -P 0x%02x %d %d", g.pattern(), off, n)
		case x < 36:
			off, n := g.rangeFor(true)
			if g.rnd.Intn(2) == 0 {
				return fmt.Sprintf("aio_write -z -u %d %d", off, n)
			}
			return fmt.Sprintf("aio_write -z %d %d", off, n)
		case x < 40:
			off, n := g.rangeFor(true)
			return fmt.Sprintf("discard -q %d %d", off, n)
		case x < 58:
			off, n := g.rangeFor(false)
			return fmt.Sprintf("aio_read -v %d %d", off, n)
		case x < 70:
			if len(g.r.unfired) >= 3 {
				continue
			}
			g.tags++
			return fmt.Sprintf("break %s t%d", events[g.rnd.Intn(len(events))], g.tags)
		case x < 84:
			tags := sortedKeys(g.r.suspended)
			if len(tags) == 0 {
				continue
			}
			return "resume " + tags[g.rnd.Intn(len(tags))]
		case x < 86:
			tags := sortedKeys(g.r.unfired)
			if len(tags) == 0 {
				continue
			}
			return "remove_break " + tags[g.rnd.Intn(len(tags))]
		case x < 93:
			return fmt.Sprintf("sleep %d", 1+g.rnd.Intn(10))
		default:
			return "aio_flush"
		}
	}
}

// verification returns the lines that check the hot region once nothing
// is in flight: "read -q -P" where the model knows the value, "read -v"
// where several are possible (the read then tells which).
func (g *gen) verification() []string {
	var out []string
	for _, rn := range g.r.m.runs(0, min(g.cfg.Size, g.hot+2*g.unit()), g.r.now+1) {
		if rn.ok {
			out = append(out, fmt.Sprintf("read -q -P 0x%02x %d %d", rn.val, rn.off, rn.end-rn.off))
		} else {
			out = append(out, fmt.Sprintf("read -v %d %d", rn.off, rn.end-rn.off))
		}
	}
	return out
}

// Generated is a generated sequence and the result of running it.
type Generated struct {
	Config Config
	Setup  []string
	Body   []string
	Result Result
}

// Generate makes the sequence of seed cfg.Seed, running each command as
// it is chosen: the choice of a resume depends on which requests were
// suspended. It ends with resumes, a drain and a check of every byte.
func (e Env) Generate(cfg Config) *Generated {
	cfg = cfg.withDefaults()
	g := &gen{rnd: rand.New(rand.NewSource(cfg.Seed)), cfg: cfg}
	g.hot = min(cfg.Size, 4*g.unit())
	r := newRunner(e)
	g.r = r
	defer r.close()
	out := &Generated{Config: cfg, Setup: cfg.Setup()}
	for _, l := range out.Setup {
		r.exec(l, -1)
	}
	run := func(l string) {
		r.exec(l, len(out.Body))
		out.Body = append(out.Body, l)
	}
	for i := 0; i < cfg.Ops && r.harness == nil; i++ {
		l := g.next()
		run(l)
		if l == "aio_flush" && r.drained && len(r.suspended) == 0 && g.rnd.Intn(2) == 0 {
			for _, v := range g.verification() {
				run(v)
			}
		}
	}
	g.finish(run)
	out.Result = Result{Failures: r.failures, Harness: r.harness}
	return out
}

// finish lets everything finish (resume what is suspended, remove the
// breakpoints nobody hit, drain) and checks every byte the requests
// could reach.
func (g *gen) finish(run func(string)) {
	r := g.r
	for i := 0; i < 200 && r.harness == nil; i++ {
		if tags := sortedKeys(r.suspended); len(tags) > 0 {
			run("resume " + tags[0])
			continue
		}
		if tags := sortedKeys(r.unfired); len(tags) > 0 {
			run("remove_break " + tags[0])
			continue
		}
		run("aio_flush")
		if r.drained {
			break
		}
	}
	if r.drained && r.harness == nil {
		for _, v := range g.verification() {
			run(v)
		}
	}
}

// Finish runs setup and body, then the closing lines Generate would add
// (resumes, drain, a check of every byte): it returns those lines and
// the result of the whole run.
func (e Env) Finish(cfg Config, setup, body []string) ([]string, Result) {
	cfg = cfg.withDefaults()
	g := &gen{cfg: cfg}
	g.hot = min(cfg.Size, 4*g.unit())
	r := newRunner(e)
	g.r = r
	defer r.close()
	for _, l := range setup {
		r.exec(l, -1)
	}
	for i, l := range body {
		r.exec(l, i)
	}
	var extra []string
	g.finish(func(l string) {
		r.exec(l, len(body)+len(extra))
		extra = append(extra, l)
	})
	return extra, Result{Failures: r.failures, Harness: r.harness}
}

// Target picks the failure to shrink for: the first "read -P" check
// that failed if there is one (a reproducer ending in it makes "gio
// run" itself fail), else the first failure.
func (r Result) Target() *Failure {
	for _, f := range r.Failures {
		if f.Kind == KindVerify {
			return f
		}
	}
	if len(r.Failures) > 0 {
		return r.Failures[0]
	}
	return nil
}

// Minimise shrinks a failing sequence. When the failure it keeps is not
// a "read -P" check, it adds Generate's closing lines and, if their
// check of the image fails, shrinks again for that: the reproducer then
// makes "gio run" fail (exit status 1, "Pattern verification failed").
func (e Env) Minimise(g *Generated, budget int) ([]string, *Failure) {
	target := g.Result.Target()
	body, f := e.Shrink(g.Setup, g.Body, target, budget)
	if f.Kind == KindVerify {
		return body, f
	}
	extra, res := e.Finish(g.Config, g.Setup, body)
	for _, v := range res.Failures {
		if v.Kind == KindVerify && v.Line >= len(body) && res.Harness == nil {
			full := append(append([]string(nil), body...), extra...)
			if b2, f2 := e.Shrink(g.Setup, full, v, budget); f2 != nil {
				return b2, f2
			}
		}
	}
	return body, f
}

// Check runs setup and body lines and checks them against the model.
// ids, if not nil, gives each body line's identity for failures.
func (e Env) Check(setup, body []string, ids []int) Result {
	r := newRunner(e)
	defer r.close()
	for _, l := range setup {
		r.exec(l, -1)
	}
	if ids != nil {
		r.ids = append([]int(nil), ids...)
		r.bodyText = make([]string, len(body))
	}
	for i, l := range body {
		r.exec(l, i)
	}
	return Result{Failures: r.failures, Harness: r.harness}
}
