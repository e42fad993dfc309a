package fsx

import (
	"fmt"
	"sort"
	"strings"
)

// The model: for every byte of the image, which values a read may still
// return, given the writes that are or were in flight.
//
// Time is a counter the runner advances at every event it observes: a
// request issued, a completion printed. A write W is in flight over
// [W.start, W.end] and lands at some unknown moment inside it; overlapping
// writes land in either order; a discard may or may not zero its bytes.
// The value of a byte at time t is that of the last write landed by t.
// A read in flight over [rs, re] may return, for each byte, the value of
// any write W that could be the last landed at some moment of the read:
//
//	W.start < re, and no write W2 (not a discard) has
//	W.end < W2.start and W2.end < rs
//
// (W2 certainly landed after W and before the read began). Reads are
// checked byte by byte: a read is not atomic in the block layer either.
// The image's initial content is a write that ended before time 0.
//
// Bytes are grouped in segments whose bytes have the same candidate
// writes; each segment keeps only the candidates some read may still see.

// infinity is the end of a write still in flight.
const infinity = int(^uint(0) >> 1)

// wreq is a write-like request: a data write, a zero write or a discard.
type wreq struct {
	start, end int
	val        byte
	discard    bool // may or may not have zeroed its bytes
	line       int  // body line that issued it (-1 for the initial content)
}

type segment struct {
	off, end int64
	cands    []int // indexes into model.reqs, in issue order
}

type model struct {
	size int64
	reqs []wreq
	segs []segment // sorted, covering [0, size)
	// quiet is the last time a write-like request was issued or
	// ended; infinity while one is in flight.
	pending int
	quiet   int
}

func newModel(size int64) *model {
	m := &model{size: size}
	m.reqs = []wreq{{start: -2, end: -1, line: -1}}
	m.segs = []segment{{off: 0, end: size, cands: []int{0}}}
	return m
}

// split makes a segment boundary at off.
func (m *model) split(off int64) {
	if off <= 0 || off >= m.size {
		return
	}
	i := sort.Search(len(m.segs), func(i int) bool { return m.segs[i].end > off })
	s := m.segs[i]
	if s.off == off {
		return
	}
	left := segment{off: s.off, end: off, cands: append([]int(nil), s.cands...)}
	right := segment{off: off, end: s.end, cands: s.cands}
	m.segs = append(m.segs[:i+1], m.segs[i:]...)
	m.segs[i], m.segs[i+1] = left, right
}

// span returns the index range of the segments covering [off, end), after
// splitting at both ends.
func (m *model) span(off, end int64) (int, int) {
	m.split(off)
	m.split(end)
	i := sort.Search(len(m.segs), func(i int) bool { return m.segs[i].end > off })
	j := sort.Search(len(m.segs), func(i int) bool { return m.segs[i].off >= end })
	return i, j
}

// issue records a write-like request at time t and returns its id.
func (m *model) issue(t int, off, n int64, val byte, discard bool, line int) int {
	id := len(m.reqs)
	m.reqs = append(m.reqs, wreq{start: t, end: infinity, val: val, discard: discard, line: line})
	m.pending++
	m.quiet = t
	i, j := m.span(off, off+n)
	for k := i; k < j; k++ {
		m.segs[k].cands = append(m.segs[k].cands, id)
	}
	return id
}

// complete records that request id ended at time t.
func (m *model) complete(id, t int) {
	m.reqs[id].end = t
	m.pending--
	m.quiet = t
}

// withdraw forgets request id, ended at time t without running (a
// synchronous write withdrawn with ECANCELED): no read may see it.
func (m *model) withdraw(id, t int) {
	for k := range m.segs {
		c := m.segs[k].cands
		for i, x := range c {
			if x == id {
				m.segs[k].cands = append(c[:i:i], c[i+1:]...)
				break
			}
		}
	}
	m.complete(id, t)
}

// quietSince reports whether no write-like request was in flight at any
// time since t: a read over [t, now] then saw exactly what is there.
func (m *model) quietSince(t int) bool { return m.pending == 0 && m.quiet < t }

// dominated reports whether candidate w cannot be seen by a read that
// starts at rs: another candidate that is no discard surely landed after
// it and before rs.
func (m *model) dominated(cands []int, w int, rs int) bool {
	W := m.reqs[w]
	for _, c := range cands {
		C := m.reqs[c]
		if !C.discard && C.start > W.end && C.end < rs {
			return true
		}
	}
	return false
}

// allowed returns the values a read in flight over [rs, re] may see in
// segment k, with one request that could have written each.
func (m *model) allowed(k int, rs, re int) map[byte]int {
	out := map[byte]int{}
	m.eachAllowed(k, rs, re, func(v byte, c int) {
		if _, ok := out[v]; !ok {
			out[v] = c
		}
	})
	return out
}

// eachAllowed calls f with every value a read in flight over [rs, re]
// may see in segment k and a request that could have written it, in
// the candidates' order (a value may come more than once).
func (m *model) eachAllowed(k int, rs, re int, f func(v byte, c int)) {
	s := m.segs[k]
	for _, c := range s.cands {
		W := m.reqs[c]
		if W.start >= re || m.dominated(s.cands, c, rs) {
			continue
		}
		v := W.val
		if W.discard {
			v = 0
		}
		// A discard that did nothing leaves what was there: the
		// candidates before it stay in, since it dominates nothing.
		f(v, c)
	}
}

// prune drops candidates no read starting at or after horizon can see,
// and merges neighbouring segments with the same candidates.
func (m *model) prune(horizon int) {
	for k := range m.segs {
		s := &m.segs[k]
		if len(s.cands) < 2 || !m.anyDominated(s.cands, horizon) {
			continue
		}
		keep := s.cands[:0:0]
		for _, c := range s.cands {
			if !m.dominated(s.cands, c, horizon) {
				keep = append(keep, c)
			}
		}
		s.cands = keep
	}
	out := m.segs[:1]
	for _, s := range m.segs[1:] {
		last := &out[len(out)-1]
		if equalInts(last.cands, s.cands) {
			last.end = s.end
			continue
		}
		out = append(out, s)
	}
	m.segs = out
}

// anyDominated reports whether prune drops one of cands: most of the
// time none, and the segment keeps its slice.
func (m *model) anyDominated(cands []int, horizon int) bool {
	for _, c := range cands {
		if m.dominated(cands, c, horizon) {
			return true
		}
	}
	return false
}

// settle replaces what the model allows over [off, off+len(data)) with
// what a read observed there at time t, when nothing was in flight: the
// bytes are then exactly known.
func (m *model) settle(t int, off int64, data []byte) {
	i, j := m.span(off, off+int64(len(data)))
	var segs []segment
	for p := int64(0); p < int64(len(data)); {
		q := p + 1
		for q < int64(len(data)) && data[q] == data[p] {
			q++
		}
		id := len(m.reqs)
		m.reqs = append(m.reqs, wreq{start: t - 1, end: t - 1, val: data[p], line: -1})
		segs = append(segs, segment{off: off + p, end: off + q, cands: []int{id}})
		p = q
	}
	rest := append(segs, m.segs[j:]...)
	m.segs = append(m.segs[:i], rest...)
}

// run is a stretch of bytes a read would see as one value (ok), or as
// one of several (not ok).
type run struct {
	off, end int64
	val      byte
	ok       bool // a single value
}

// runs cuts [off, end) into runs for a read at time t.
func (m *model) runs(off, end int64, t int) []run {
	var out []run
	for k, s := range m.segs {
		if s.end <= off || s.off >= end {
			continue
		}
		a := m.allowed(k, t, t)
		r := run{off: max(s.off, off), end: min(s.end, end)}
		if len(a) == 1 {
			for v := range a {
				r.val, r.ok = v, true
			}
		}
		if n := len(out); n > 0 && out[n-1].ok == r.ok && (!r.ok || out[n-1].val == r.val) {
			out[n-1].end = r.end
			continue
		}
		out = append(out, r)
	}
	return out
}

// check compares data read over [off, ...) by a read in flight over
// [rs, re] with the model. It returns a description of the first byte
// the model does not allow, or "".
func (m *model) check(off int64, data []byte, rs, re int) string {
	end := off + int64(len(data))
	for k, s := range m.segs {
		if s.end <= off || s.off >= end {
			continue
		}
		// A table, not allowed's map, per byte: reads are checked
		// byte by byte and gio explore checks thousands of runs a
		// second. The map is made for the message only.
		var ok [256]bool
		m.eachAllowed(k, rs, re, func(v byte, _ int) { ok[v] = true })
		for p := max(s.off, off); p < min(s.end, end); p++ {
			v := data[p-off]
			if !ok[v] {
				return fmt.Sprintf("byte at 0x%x is 0x%02x, allowed %s", p, v, m.describe(m.allowed(k, rs, re)))
			}
		}
	}
	return ""
}

// describe lists allowed values with the body line that wrote each.
func (m *model) describe(a map[byte]int) string {
	vals := make([]int, 0, len(a))
	for v := range a {
		vals = append(vals, int(v))
	}
	sort.Ints(vals)
	var parts []string
	for _, v := range vals {
		w := m.reqs[a[byte(v)]]
		switch {
		case w.line < 0:
			parts = append(parts, fmt.Sprintf("0x%02x (earlier content)", v))
		case w.discard:
			parts = append(parts, fmt.Sprintf("0x%02x (discard, body line %d)", v, w.line+1))
		default:
			parts = append(parts, fmt.Sprintf("0x%02x (body line %d)", v, w.line+1))
		}
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
