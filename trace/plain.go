package trace

import (
	"encoding/binary"
	"time"
	"unsafe"

	"gio/blk"
)

// The plain chain: most requests of a trace (every piped read or write
// through raw and file) leave the same chain of events, and foldChain
// writes them as the same complete slices, which differ from one request
// to the next only in a few numbers. The first such chain of a shape
// (the spans' nodes and operations, the yield's reason) goes through
// foldChain, and a template of its slices is kept: constant text with
// holes for the timestamp, duration, request, span numbers, offset and
// size. The next chains of that shape are the request's command line,
// then the template's text and the holes' values copied in turn, with
// no event-by-event dispatch, lookups or rendering of what has not
// changed. The bytes are those foldChain writes (TestPlainSame).

// maxShapes is how many shapes are kept (a session mixing reads and
// writes through a node graph or two uses a few).
const maxShapes = 4

// plainShape is the template of a plain chain: a request (TraceSubmit)
// whose spans (k of them, on nodes, named names), each the parent of the
// next, the first without one, all begin when the request does, over the
// same range, and end when it completes, and whose one yield, for why,
// lasts as long (its reason is the request slice's "yield" arg).
type plainShape struct {
	k     int
	nodes [maxFold - 1]*blk.Node
	names [maxFold - 1]string
	why   string
	// tpl is the text of the slices after the request's name, holes
	// the places of the values in it; tpl has pieceSize bytes of slack,
	// so that its text is copied in whole words (see fill).
	tpl   []byte
	holes []hole
	tail  int // where the text after the last hole starts
}

// hole is a value in a template, after the n bytes of text at
// tpl[from:]: the bytes of *v.
type hole struct {
	from, n int
	v       *piece
}

// The values of the holes, rendered once per chain: the timestamp with
// the duration after it (the slices of a chain share both), the
// request, the span numbers, and the range.
type plainValues struct {
	tsDur piece // TS,"dur":DUR
	dur   piece // ,"dur":DUR, for tsDur
	durV  time.Duration
	req   decimal
	spans [maxFold - 1]decimal
	rng   piece // OFF+0xBYTES (hex)
	size  [32]byte
	sizeN int // size[:sizeN] is +0xBYTES
	sizeV int64
}

// holeSize is how many bytes a hole's value is copied with: values are
// numbers, shorter.
const holeSize = 32

// plainChain writes the chain at evs[i], a TraceSubmit, from a template,
// and returns its length in events; 0 if it is no plain chain of a shape
// kept (or evs ends before it does), which foldChain then writes.
func (t *Writer) plainChain(evs []blk.TraceEvent, i int) int {
	e := &evs[i]
	if i+4 > len(evs) || evs[i+1].Kind != blk.TraceBegin {
		return 0
	}
	var sh *plainShape
	for s := range t.shapes[:t.nShapes] {
		if c := &t.shapes[s]; c.nodes[0] == evs[i+1].Node && sameString(c.names[0], evs[i+1].Name) {
			sh = c
			break
		}
	}
	if sh == nil {
		return 0
	}
	k := sh.k
	n := 2*k + 3
	if i+n > len(evs) {
		return 0
	}
	c := evs[i : i+n]
	req, at := e.Req, e.At
	y := &c[k+1]
	end := y.End
	off, bytes := c[1].Off, c[1].Bytes
	if y.Kind != blk.TraceWaited || y.Req != req || y.At != at || !sameString(y.Why, sh.why) ||
		off < 0 || bytes < 0 || c[n-1].Kind != blk.TraceComplete || c[n-1].Req != req ||
		c[n-1].At != end || c[n-1].Err != nil {
		return 0
	}
	parent := 0
	for j := 1; j <= k; j++ {
		b, x := &c[j], &c[n-1-j]
		if b.Kind != blk.TraceBegin || b.Req != req || b.At != at || b.Parent != parent ||
			b.Node != sh.nodes[j-1] || !sameString(b.Name, sh.names[j-1]) || b.Off != off || b.Bytes != bytes ||
			x.Kind != blk.TraceEnd || x.Span != b.Span || x.Req != req || x.At != end {
			return 0
		}
		parent = b.Span
	}
	if t.ambiguous(req, at, end) {
		return 0
	}
	// The values.
	v := &t.plain
	if d := end - at; d != v.durV || v.dur.n == 0 {
		v.durV = d
		v.dur.set(appendMicros(append(v.dur.b[:0], `,"dur":`...), d))
	}
	if bytes != v.sizeV || v.sizeN == 0 {
		v.sizeV = bytes
		v.sizeN = len(appendHex(append(v.size[:0], "+0x"...), uint64(bytes)))
	}
	td := appendMicros(v.tsDur.b[:0], at)
	if len(td)+v.dur.n > holeSize || v.sizeN+16 > holeSize {
		return 0 // not a clock's time, or a huge range
	}
	l := len(td) & 31
	*(*[16]byte)(v.tsDur.b[l : l+16]) = [16]byte(v.dur.b[:16])
	*(*[16]byte)(v.tsDur.b[l+16 : l+32]) = [16]byte(v.dur.b[16:32])
	v.tsDur.n = l + v.dur.n
	r := appendHex(v.rng.b[:0], uint64(off))
	*(*[holeSize]byte)(r[len(r) : len(r)+holeSize]) = v.size
	if v.rng.n = len(r) + v.sizeN; v.rng.n > holeSize {
		return 0
	}
	v.req.set(req)
	for j := 1; j <= k; j++ {
		v.spans[j-1].set(c[j].Span)
	}
	b := t.appendName(t.buf, e.Name)
	if need := len(sh.tpl) + len(sh.holes)*holeSize + pieceSize; cap(b)-len(b) < need {
		b = append(b, make([]byte, need)...)[:len(b)]
	}
	t.buf = fill(b, sh)
	if at > t.last {
		t.last = at
	}
	if end > t.last {
		t.last = end
	}
	t.n += k + 1
	t.plains++
	t.fold = foldState{n: t.n, req: req, at: at, end: end}
	t.open = 0
	return n
}

// appendName appends the start of an event object and its name,
// escaped: a name of 8 to 32 bytes that needs no escaping in two or
// four words (a command line is most often that).
func (t *Writer) appendName(b []byte, name string) []byte {
	l, n := len(b), len(name)
	if n < 8 || n > 32 || cap(b)-l < 64 || !plainWords(name) {
		return appendEscaped(append(b, t.hot.name...), name)
	}
	d := b[l : l+64]
	*(*[16]byte)(d[:16]) = t.hotName
	h := t.hotNameN & 15
	d = d[h : h+48]
	p := unsafe.Pointer(unsafe.StringData(name))
	if n <= 16 { // the first and the last eight bytes, which may overlap
		*(*[8]byte)(d[:8]) = *(*[8]byte)(p)
		*(*[8]byte)(d[n-8 : n]) = *(*[8]byte)(unsafe.Add(p, n-8))
	} else {
		*(*[16]byte)(d[:16]) = *(*[16]byte)(p)
		*(*[16]byte)(d[n-16 : n]) = *(*[16]byte)(unsafe.Add(p, n-16))
	}
	return b[:l+h+n]
}

// plainWords reports whether s, of at least 8 bytes, needs no escaping
// (plainPrefix): it tests it eight bytes at a time, the last eight
// overlapping the word before.
func plainWords(s string) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	for i := 0; ; i += 8 {
		if i+8 > len(s) {
			i = len(s) - 8
		}
		v := binary.LittleEndian.Uint64((*[8]byte)(unsafe.Add(unsafe.Pointer(unsafe.StringData(s)), i))[:])
		q, bs := v^(ones*'"'), v^(ones*'\\')
		if (v-ones*0x20|v|(q-ones)&^q|(bs-ones)&^bs)&highs != 0 {
			return false
		}
		if i+8 == len(s) {
			return true
		}
	}
}

// sameString is a == b, at once when they are the same string (the
// loop passes the same constants again and again).
func sameString(a, b string) bool {
	return len(a) == len(b) && (unsafe.StringData(a) == unsafe.StringData(b) || a == b)
}

// fill appends the text and values of template sh to b, which has room
// for the text and holeSize bytes for each value. Text and values are
// copied in whole 16-byte words, each over the slack of the previous
// one, through unsafe pointers: with bounds checks on every word, and
// the spills they cause, the copying cost three times as much. It stays
// inside b's array (the room asked for) and sh.tpl's (its slack) and
// reads holeSize bytes of a piece.
func fill(b []byte, sh *plainShape) []byte {
	if cap(b)-len(b) < len(sh.tpl)+len(sh.holes)*holeSize+pieceSize {
		panic("trace: no room for a template")
	}
	base := unsafe.Pointer(unsafe.SliceData(b))
	d := unsafe.Add(base, len(b))
	tpl := unsafe.Pointer(unsafe.SliceData(sh.tpl))
	for i := range sh.holes {
		h := &sh.holes[i]
		src := unsafe.Add(tpl, h.from)
		// Most texts are shorter than three words: those are
		// copied with no loop.
		*(*[16]byte)(d) = *(*[16]byte)(src)
		*(*[16]byte)(unsafe.Add(d, 16)) = *(*[16]byte)(unsafe.Add(src, 16))
		*(*[16]byte)(unsafe.Add(d, 32)) = *(*[16]byte)(unsafe.Add(src, 32))
		for s := 48; s < h.n; s += 16 {
			*(*[16]byte)(unsafe.Add(d, s)) = *(*[16]byte)(unsafe.Add(src, s))
		}
		d = unsafe.Add(d, h.n)
		v := unsafe.Pointer(&h.v.b)
		*(*[16]byte)(d) = *(*[16]byte)(v)
		*(*[16]byte)(unsafe.Add(d, 16)) = *(*[16]byte)(unsafe.Add(v, 16))
		d = unsafe.Add(d, h.v.n)
	}
	src := unsafe.Add(tpl, sh.tail)
	n := len(sh.tpl) - pieceSize - sh.tail
	for s := 0; s < n; s += 16 {
		*(*[16]byte)(unsafe.Add(d, s)) = *(*[16]byte)(unsafe.Add(src, s))
	}
	return b[:uintptr(d)-uintptr(base)+uintptr(n)]
}

// is reports whether sh is the shape of chain c, of k spans and a yield
// for why.
func (sh *plainShape) is(c []blk.TraceEvent, k int, why string) bool {
	if sh.k != k || sh.why != why {
		return false
	}
	for j := 1; j <= k; j++ {
		if sh.nodes[j-1] != c[j].Node || sh.names[j-1] != c[j].Name {
			return false
		}
	}
	return true
}

// keepShape keeps the template of chain c (begins of them), just written
// by foldChain with its yield in the request's args, if it is a plain
// chain (see plainShape) whose shape is not kept.
func (t *Writer) keepShape(c []blk.TraceEvent, begins int) {
	k := begins - 1
	if k < 1 || len(c) != 2*k+3 {
		return
	}
	e, y, c1 := &c[0], &c[k+1], &c[1]
	if e.Kind != blk.TraceSubmit || y.Kind != blk.TraceWaited || y.At != e.At || y.Why == "" {
		return
	}
	end := y.End
	parent := 0
	for j := 1; j <= k; j++ {
		b := &c[j]
		if b.Kind != blk.TraceBegin || b.At != e.At || b.Parent != parent || b.Off != c[1].Off ||
			b.Bytes != c[1].Bytes || b.Off < 0 || b.Bytes < 0 || c[len(c)-1-j].At != end {
			return
		}
		parent = b.Span
	}
	slot := -1 // a shape of the same first span, replaced
	for s := range t.shapes[:t.nShapes] {
		if c := &t.shapes[s]; c.nodes[0] == c1.Node && c.names[0] == c1.Name {
			slot = s
		}
	}
	if slot >= 0 && t.shapes[slot].is(c, k, y.Why) {
		return // kept: plainChain passed this chain over for its values
	}
	// Build the template: the text foldChain writes, with holes.
	v := &t.plain
	sh := plainShape{k: k, why: y.Why}
	var tpl []byte
	addHole := func(p *piece) {
		sh.holes = append(sh.holes, hole{sh.tail, len(tpl) - sh.tail, p})
		sh.tail = len(tpl)
	}
	tpl = append(tpl, hRequestX...)
	addHole(&v.tsDur)
	tpl = append(tpl, pidReqsTid...)
	addHole(&v.req.p)
	tpl = append(appendEscaped(append(tpl, `,"args":{"yield":"`...), y.Why), `"}`...)
	tpl = append(tpl, t.hot.end...)
	for j := 1; j <= k; j++ {
		b := &c[j]
		sh.nodes[j-1], sh.names[j-1] = b.Node, b.Name
		tpl = append(appendEscaped(append(tpl, t.hot.name...), b.Name), hReqX...)
		addHole(&v.tsDur)
		tpl = append(tpl, t.laneID[t.lane(b.Node)].bytes()...)
		addHole(&v.spans[j-1].p)
		// Each span continues the chain: its request and parent
		// are derived (see span).
		tpl = append(tpl, `,"args":{"range":"0x`...)
		addHole(&v.rng)
		tpl = append(tpl, `"}`...)
		tpl = append(tpl, t.hot.end...)
	}
	sh.tpl = append(tpl, make([]byte, pieceSize)...)
	if slot >= 0 {
		t.shapes[slot] = sh
		return
	}
	if t.nShapes < maxShapes {
		t.nShapes++
	} else {
		copy(t.shapes[:], t.shapes[1:])
	}
	t.shapes[t.nShapes-1] = sh
}
