package inflate

import "encoding/binary"

// A fast path for the common case: a valid raw deflate stream (RFC 1951)
// that fills dst. It decodes straight into dst, whose bytes so far are
// the whole history a back-reference can reach (a cluster is one
// stream), with a 64-bit bit buffer refilled 8 bytes at a time and
// two-level Huffman tables, as zlib's inflate_fast does; the standard
// library's inflater copies every byte through its 32 KiB window and
// reads input a byte at a time.
//
// It is only ever an optimisation: it answers true only when compress/
// flate's io.ReadFull into dst would succeed with the same bytes, and
// false on anything else (corrupt or truncated data, codes the standard
// library refuses, a stream too short), in which case the caller asks
// the standard library, whose answer is the one that counts.
// TestFastAgrees and FuzzRaw hold the two to that.

const (
	primaryBits = 10 // bits of a code looked up in a table's first level
	maxCodeBits = 15
	// An entry is sym<<8 | flags | length: length is the code's bits
	// (or, in a first-level link, the second level's index bits), sym
	// the symbol (or the second level's offset).
	entryLink    = 1 << 7
	entryValid   = 1 << 6
	entryLenMask = 0x1f
)

// table is a two-level Huffman decoding table.
type table struct {
	entries []uint32 // primary (1<<primaryBits) then second levels
}

// build fills t from code lengths, refusing (false) any code the
// standard library would refuse.
func (t *table) build(lengths []uint8) bool {
	var count [maxCodeBits + 1]int
	for _, l := range lengths {
		count[l]++
	}
	count[0] = 0
	left := 1
	for l := 1; l <= maxCodeBits; l++ {
		left = left<<1 - count[l]
		if left < 0 {
			return false // over-subscribed
		}
	}
	// Incomplete codes are refused, except the two the standard library
	// (like zlib) accepts: none at all, and a single one-bit code (a
	// block without distances, or with one). A code they lack has no
	// entry and fails when it is read, as there.
	if left != 0 && left != 1<<maxCodeBits && !(count[1] == 1 && left == 1<<(maxCodeBits-1)) {
		return false
	}
	// Canonical codes: the first code of each length.
	var next [maxCodeBits + 2]int
	code := 0
	for l := 1; l <= maxCodeBits; l++ {
		code = (code + count[l-1]) << 1
		next[l] = code
	}
	// Symbols with codes longer than primaryBits share second-level
	// tables by their first primaryBits bits (reversed: deflate sends
	// codes most significant bit first, the bit buffer is LSB first).
	// Each second level is as deep as its longest code.
	var subBits [1 << primaryBits]uint8
	var codes [288]uint16
	for sym, l := range lengths {
		if l == 0 {
			continue
		}
		c := next[l]
		next[l]++
		r := reverse(uint16(c), uint(l))
		codes[sym] = r
		if l > primaryBits {
			p := r & (1<<primaryBits - 1)
			subBits[p] = max(subBits[p], l-primaryBits)
		}
	}
	size := 1 << primaryBits
	for _, sb := range subBits {
		if sb != 0 {
			size += 1 << sb
		}
	}
	if cap(t.entries) < size {
		t.entries = make([]uint32, size)
	}
	t.entries = t.entries[:size]
	clear(t.entries)
	off := 1 << primaryBits
	for p, sb := range subBits {
		if sb != 0 {
			t.entries[p] = uint32(off)<<8 | entryLink | uint32(sb)
			off += 1 << sb
		}
	}
	for sym, l := range lengths {
		if l == 0 {
			continue
		}
		r := uint32(codes[sym])
		e := uint32(sym)<<8 | entryValid | uint32(l)
		if l <= primaryBits {
			for i := r; i < 1<<primaryBits; i += 1 << l {
				t.entries[i] = e
			}
			continue
		}
		link := t.entries[r&(1<<primaryBits-1)]
		off, sb := link>>8, link&entryLenMask
		step := uint32(1) << (uint32(l) - primaryBits)
		for i := r >> primaryBits; i < 1<<sb; i += step {
			t.entries[off+i] = e
		}
	}
	return true
}

func reverse(c uint16, n uint) uint16 {
	var r uint16
	for range n {
		r = r<<1 | c&1
		c >>= 1
	}
	return r
}

// Length and distance codes: base values and extra bits (RFC 1951 3.2.5).
var (
	lengthBase  = [29]uint16{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	lengthExtra = [29]uint8{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	distBase    = [30]uint32{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
	distExtra   = [30]uint8{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}
	// The order in which code length code lengths are sent.
	clenOrder = [19]uint8{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}
)

// fastState holds a decoder's reusable tables.
type fastState struct {
	lit, dist, clen table
	lengths         [286 + 30]uint8
	fixedLit        table
	fixedDist       table
	fixedBuilt      bool
}

// bits is the input bit buffer. pad counts zero bits appended past the
// end of src: a code that reaches into them is truncated input.
type bits struct {
	src []byte
	i   int
	b   uint64
	n   uint
	pad uint
}

// fill makes at least 56 bits available (real or padding).
func (r *bits) fill() {
	if r.n >= 56 {
		return
	}
	if r.i+8 <= len(r.src) {
		r.b |= binary.LittleEndian.Uint64(r.src[r.i:]) << r.n
		r.i += int(63-r.n) >> 3
		r.n |= 56
		return
	}
	for r.n <= 56 && r.i < len(r.src) {
		r.b |= uint64(r.src[r.i]) << r.n
		r.i++
		r.n += 8
	}
	if r.n < 56 {
		r.pad += 56 - r.n
		r.n = 56
	}
}

// avail is the number of real bits buffered.
func (r *bits) avail() uint { return r.n - r.pad }

// take consumes n bits; false when they were not all real.
func (r *bits) take(n uint) (uint64, bool) {
	v := r.b & (1<<n - 1)
	r.b >>= n
	r.n -= n
	return v, r.n >= r.pad
}

// decode looks a symbol up in t; false when it has no code or the code
// runs past the input.
func (r *bits) decode(t *table) (int, bool) {
	e := t.entries[r.b&(1<<primaryBits-1)]
	if e&entryLink != 0 {
		e = t.entries[e>>8+uint32(r.b>>primaryBits)&(1<<(e&entryLenMask)-1)]
	}
	if e&entryValid == 0 {
		return 0, false
	}
	n := uint(e & entryLenMask)
	r.b >>= n
	r.n -= n
	return int(e >> 8), r.n >= r.pad
}

// fastRaw inflates src into dst; true when dst was filled exactly as
// compress/flate would fill it.
func (s *fastState) fastRaw(dst, src []byte) bool {
	if len(dst) == 0 {
		return true // io.ReadFull reads nothing
	}
	r := bits{src: src}
	o := 0
	for {
		r.fill()
		hdr, ok := r.take(3)
		if !ok {
			return false
		}
		final := hdr&1 != 0
		switch hdr >> 1 {
		case 0: // stored
			r.take(r.avail() & 7)
			// Back to byte input: the real bytes buffered are unread.
			pos := r.i - int(r.avail()/8)
			r = bits{src: src, i: pos}
			if pos+4 > len(src) {
				return false
			}
			ln := int(binary.LittleEndian.Uint16(src[pos:]))
			if ^binary.LittleEndian.Uint16(src[pos+2:]) != uint16(ln) {
				return false
			}
			r.i += 4
			want := min(ln, len(dst)-o)
			if r.i+want > len(src) {
				return false
			}
			copy(dst[o:], src[r.i:r.i+want])
			o += want
			r.i += want
			if o == len(dst) {
				return true
			}
		case 1:
			if !s.fixedBuilt {
				var l [288]uint8
				for i := range l {
					switch {
					case i < 144:
						l[i] = 8
					case i < 256:
						l[i] = 9
					case i < 280:
						l[i] = 7
					default:
						l[i] = 8
					}
				}
				// 32 five-bit distance codes; 30 and 31 are invalid, which
				// block checks.
				var d32 [32]uint8
				for i := range d32 {
					d32[i] = 5
				}
				if !s.fixedLit.build(l[:]) || !s.fixedDist.build(d32[:]) {
					return false
				}
				s.fixedBuilt = true
			}
			var done bool
			if o, done = s.block(&r, dst, o, &s.fixedLit, &s.fixedDist, 7); done {
				return true
			}
			if o < 0 {
				return false
			}
		case 2:
			eob, ok := s.readTables(&r)
			if !ok {
				return false
			}
			var done bool
			if o, done = s.block(&r, dst, o, &s.lit, &s.dist, eob); done {
				return true
			}
			if o < 0 {
				return false
			}
		default:
			return false
		}
		if final {
			return false // the stream ended before dst was full
		}
	}
}

// readTables reads a dynamic block's code lengths and builds its
// tables; it returns the end-of-block code's length.
func (s *fastState) readTables(r *bits) (uint, bool) {
	r.fill()
	h, ok := r.take(14)
	if !ok {
		return 0, false
	}
	nlit, ndist, nclen := int(h&31)+257, int(h>>5&31)+1, int(h>>10)+4
	if nlit > 286 || ndist > 30 {
		return 0, false
	}
	var cl [19]uint8
	for i := 0; i < nclen; i++ {
		r.fill()
		v, ok := r.take(3)
		if !ok {
			return 0, false
		}
		cl[clenOrder[i]] = uint8(v)
	}
	if !s.clen.build(cl[:]) {
		return 0, false
	}
	l := s.lengths[:nlit+ndist]
	for i := 0; i < len(l); {
		r.fill()
		sym, ok := r.decode(&s.clen)
		if !ok {
			return 0, false
		}
		if sym < 16 {
			l[i] = uint8(sym)
			i++
			continue
		}
		var rep int
		var v uint8
		switch sym {
		case 16:
			if i == 0 {
				return 0, false
			}
			x, ok := r.take(2)
			if !ok {
				return 0, false
			}
			rep, v = 3+int(x), l[i-1]
		case 17:
			x, ok := r.take(3)
			if !ok {
				return 0, false
			}
			rep = 3 + int(x)
		default:
			x, ok := r.take(7)
			if !ok {
				return 0, false
			}
			rep = 11 + int(x)
		}
		if i+rep > len(l) {
			return 0, false
		}
		for range rep {
			l[i] = v
			i++
		}
	}
	if l[256] == 0 || !s.lit.build(l[:nlit]) || !s.dist.build(l[nlit:]) {
		return 0, false
	}
	return uint(l[256]), true
}

// block decodes one Huffman block into dst from o. It returns the new
// output position and whether dst is full; a position below zero means
// the fast path gives up. While 8 bytes of input remain, the bit buffer
// lives in locals (the hot loop), refilled to at least 56 bits when fewer
// than a literal/length code (15) remain, and before a length's extra
// bits, distance code and extra bits (33 at most); no padding is ever
// needed there. The stream's last bytes go through blockTail, which
// checks every code against the end of the input.
func (s *fastState) block(r *bits, dst []byte, o int, lit, dist *table, eob uint) (int, bool) {
	if r.pad != 0 {
		return s.blockTail(r, dst, o, lit, dist, eob)
	}
	src, i, b, n := r.src, r.i, r.b, r.n
	lp := (*[1 << primaryBits]uint32)(lit.entries)
	le := lit.entries
	dp := (*[1 << primaryBits]uint32)(dist.entries)
	de := dist.entries
	for {
		if n < maxCodeBits {
			if i+8 > len(src) {
				break
			}
			b |= binary.LittleEndian.Uint64(src[i:]) << n
			i += int(63-n) >> 3
			n |= 56
		}
		e := lp[b&(1<<primaryBits-1)]
		if e&entryLink != 0 {
			e = le[e>>8+uint32(b>>primaryBits)&(1<<(e&entryLenMask)-1)]
		}
		if e&entryValid == 0 {
			return -1, false
		}
		l := uint(e & entryLenMask)
		b >>= l
		n -= l
		sym := int(e >> 8)
		if sym < 256 {
			dst[o] = byte(sym)
			o++
			if o == len(dst) {
				return o, true
			}
			continue
		}
		if sym == 256 {
			r.i, r.b, r.n = i, b, n
			return o, false
		}
		sym -= 257
		if sym >= len(lengthBase) {
			return -1, false
		}
		// pad stays zero unless this refill meets the end of the input.
		var pad uint
		if n < 33 {
			if i+8 <= len(src) {
				b |= binary.LittleEndian.Uint64(src[i:]) << n
				i += int(63-n) >> 3
				n |= 56
			} else {
				i, b, n, pad = slowFill(src, i, b, n, 0)
			}
		}
		xb := uint(lengthExtra[sym])
		length := int(lengthBase[sym]) + int(b&(1<<xb-1))
		b >>= xb
		n -= xb
		e = dp[b&(1<<primaryBits-1)]
		if e&entryLink != 0 {
			e = de[e>>8+uint32(b>>primaryBits)&(1<<(e&entryLenMask)-1)]
		}
		if e&entryValid == 0 {
			return -1, false
		}
		l = uint(e & entryLenMask)
		b >>= l
		n -= l
		dsym := int(e >> 8)
		if dsym >= len(distBase) {
			return -1, false
		}
		xb = uint(distExtra[dsym])
		d := int(distBase[dsym]) + int(b&(1<<xb-1))
		b >>= xb
		n -= xb
		if n < pad || d > o {
			return -1, false
		}
		o = backref(dst, o, d, length)
		if o == len(dst) {
			return o, true
		}
		if pad != 0 {
			r.i, r.b, r.n, r.pad = i, b, n, pad
			return s.blockTail(r, dst, o, lit, dist, eob)
		}
	}
	r.i, r.b, r.n = i, b, n
	return s.blockTail(r, dst, o, lit, dist, eob)
}

// backref copies length bytes from d back, as far as dst goes, and
// returns the new output position.
func backref(dst []byte, o, d, length int) int {
	length = min(length, len(dst)-o)
	if d >= length {
		copy(dst[o:o+length], dst[o-d:])
	} else {
		for k := range length {
			dst[o+k] = dst[o-d+k]
		}
	}
	return o + length
}

// blockTail is block with every code checked against the end of the
// input (the bits past it are padding).
func (s *fastState) blockTail(r *bits, dst []byte, o int, lit, dist *table, eob uint) (int, bool) {
	for {
		r.fill()
		// compress/flate reads at least the end-of-block code's bits
		// before decoding any literal/length symbol.
		if r.avail() < eob {
			return -1, false
		}
		sym, ok := r.decode(lit)
		if !ok {
			return -1, false
		}
		if sym < 256 {
			dst[o] = byte(sym)
			o++
			if o == len(dst) {
				return o, true
			}
			continue
		}
		if sym == 256 {
			return o, false
		}
		sym -= 257
		if sym >= len(lengthBase) {
			return -1, false
		}
		r.fill()
		x, ok := r.take(uint(lengthExtra[sym]))
		if !ok {
			return -1, false
		}
		length := int(lengthBase[sym]) + int(x)
		dsym, ok := r.decode(dist)
		if !ok || dsym >= len(distBase) {
			return -1, false
		}
		y, ok := r.take(uint(distExtra[dsym]))
		if !ok {
			return -1, false
		}
		d := int(distBase[dsym]) + int(y)
		if d > o {
			return -1, false
		}
		if o = backref(dst, o, d, length); o == len(dst) {
			return o, true
		}
	}
}

// slowFill is bits.fill for block's locals.
func slowFill(src []byte, i int, b uint64, n, pad uint) (int, uint64, uint, uint) {
	r := bits{src: src, i: i, b: b, n: n, pad: pad}
	r.fill()
	return r.i, r.b, r.n, r.pad
}
