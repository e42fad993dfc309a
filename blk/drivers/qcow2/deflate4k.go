package qcow2

// deflate4k is a small deflate encoder whose back references never reach
// further than 4 KiB, the window QEMU inflates with (zlib windowBits
// -12): greedy LZ77 over a hash of three bytes, one block with the fixed
// Huffman codes (RFC 1951, 3.2.6). Go's compress/flate cannot bound its
// window, so without this gio could only write Huffman-only streams,
// which leave a cluster of a repeated pattern at a sixth of its size
// where zlib makes it a few hundred bytes (the compressed cluster sizes
// iotest 271 prints).

const (
	deflateWindow   = 4096
	deflateMinMatch = 3
	deflateMaxMatch = 258
	deflateHashBits = 15
)

// Base values and extra bits of the length codes 257..285 and the
// distance codes 0..29.
var (
	lengthBase  = [29]uint16{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	lengthExtra = [29]uint8{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	distBase    = [30]uint16{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
	distExtra   = [30]uint8{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}
)

// bitWriter packs bits least significant first, as deflate stores them.
type bitWriter struct {
	out  []byte
	acc  uint64
	nacc uint
}

func (w *bitWriter) bits(v uint64, n uint) {
	w.acc |= v << w.nacc
	w.nacc += n
	for w.nacc >= 8 {
		w.out = append(w.out, byte(w.acc))
		w.acc >>= 8
		w.nacc -= 8
	}
}

// code writes a Huffman code, which deflate stores most significant bit
// first.
func (w *bitWriter) code(c uint32, n uint) {
	var r uint64
	for i := uint(0); i < n; i++ {
		r = r<<1 | uint64(c>>i&1)
	}
	w.bits(r, n)
}

func (w *bitWriter) flush() []byte {
	if w.nacc > 0 {
		w.out = append(w.out, byte(w.acc))
	}
	return w.out
}

// litLen writes literal/length symbol v with the fixed code.
func (w *bitWriter) litLen(v int) {
	switch {
	case v < 144:
		w.code(uint32(0x30+v), 8)
	case v < 256:
		w.code(uint32(0x190+v-144), 9)
	case v < 280:
		w.code(uint32(v-256), 7)
	default:
		w.code(uint32(0xc0+v-280), 8)
	}
}

func (w *bitWriter) match(length, dist int) {
	li := 28
	for lengthBase[li] > uint16(length) {
		li--
	}
	w.litLen(257 + li)
	w.bits(uint64(length-int(lengthBase[li])), uint(lengthExtra[li]))
	di := 29
	for distBase[di] > uint16(dist) {
		di--
	}
	w.code(uint32(di), 5)
	w.bits(uint64(dist-int(distBase[di])), uint(distExtra[di]))
}

// deflate4k returns in as one raw deflate stream with back references of
// at most 4 KiB.
func deflate4k(in []byte) []byte {
	w := &bitWriter{out: make([]byte, 0, len(in)/4)}
	w.bits(1, 1) // BFINAL
	w.bits(1, 2) // BTYPE 01: fixed codes
	head := make([]int32, 1<<deflateHashBits)
	for i := range head {
		head[i] = -1
	}
	hash := func(i int) int {
		v := uint32(in[i]) | uint32(in[i+1])<<8 | uint32(in[i+2])<<16
		return int((v * 2654435761) >> (32 - deflateHashBits))
	}
	insert := func(i int) {
		if i+deflateMinMatch <= len(in) {
			head[hash(i)] = int32(i)
		}
	}
	for i := 0; i < len(in); {
		length, dist := 0, 0
		if i+deflateMinMatch <= len(in) {
			// The byte before is the best candidate for runs; the
			// hash finds the rest.
			for _, c := range []int{i - 1, int(head[hash(i)])} {
				if c < 0 || c >= i || i-c > deflateWindow {
					continue
				}
				n := 0
				for n < deflateMaxMatch && i+n < len(in) && in[c+n] == in[i+n] {
					n++
				}
				if n > length {
					length, dist = n, i-c
				}
			}
		}
		if length >= deflateMinMatch {
			w.match(length, dist)
			for k := 0; k < length; k++ {
				insert(i + k)
			}
			i += length
			continue
		}
		w.litLen(int(in[i]))
		insert(i)
		i++
	}
	w.litLen(256) // end of block
	return w.flush()
}
