package qcow2

import (
	"encoding/binary"
	"math/bits"
	"slices"
)

// dirtyBitmap is one bitmap in memory (QEMU's BdrvDirtyBitmap over an
// HBitmap): bit i says whether bytes [i<<granBits, (i+1)<<granBits) of
// the image were written since the bitmap was cleared. The bits are kept
// in chunks allocated when a bit in them is first set, so a bitmap over
// a huge, mostly clean image costs no memory.
type dirtyBitmap struct {
	name     string
	granBits uint
	size     int64 // bytes covered: the image's length (bdrv_dirty_bitmap_size)
	chunks   map[int64][]uint64

	// disabled bitmaps do not track writes (no "auto" flag, or
	// inconsistent); readonly ones belong to a read-only image;
	// inconsistent ones were found in use at open: their data is lost,
	// they are never stored, and the image keeps them as they were.
	disabled, readonly, inconsistent bool
}

const (
	chunkBits  = 1 << 18 // bits per chunk
	chunkWords = chunkBits / 64
)

func newDirtyBitmap(name string, granBits uint, size int64) *dirtyBitmap {
	return &dirtyBitmap{name: name, granBits: granBits, size: size, chunks: map[int64][]uint64{}}
}

// nbits is the number of bits: the size rounded up to the granularity.
func (b *dirtyBitmap) nbits() int64 {
	return int64((uint64(b.size) + uint64(1)<<b.granBits - 1) >> b.granBits)
}

// setBits sets bits [first, last].
func (b *dirtyBitmap) setBits(first, last int64) {
	for first <= last {
		c := first / chunkBits
		end := min(last, (c+1)*chunkBits-1)
		w := b.chunks[c]
		if w == nil {
			w = make([]uint64, chunkWords)
			b.chunks[c] = w
		}
		for i := first - c*chunkBits; i <= end-c*chunkBits; {
			if i%64 == 0 && end-c*chunkBits-i >= 63 {
				w[i/64] = ^uint64(0)
				i += 64
				continue
			}
			w[i/64] |= 1 << (i % 64)
			i++
		}
		first = end + 1
	}
}

// setRange marks the bytes [off, off+n) dirty (hbitmap_set), clipped to
// the bitmap.
func (b *dirtyBitmap) setRange(off, n int64) {
	if n <= 0 || off < 0 || off >= b.size {
		return
	}
	last := min(off+n-1, b.size-1)
	b.setBits(off>>b.granBits, last>>b.granBits)
}

// clearFrom clears every bit from bit first on (hbitmap_truncate's
// reset of the lost bits when shrinking).
func (b *dirtyBitmap) clearFrom(first int64) {
	for c, w := range b.chunks {
		lo := c * chunkBits
		if lo+chunkBits <= first {
			continue
		}
		if lo >= first {
			delete(b.chunks, c)
			continue
		}
		for i := first - lo; i < chunkBits; i++ {
			w[i/64] &^= 1 << (i % 64)
		}
	}
}

// truncate resizes the bitmap to the image's new length
// (bdrv_dirty_bitmap_truncate): bits past the new end are dropped, new
// ones are clean.
func (b *dirtyBitmap) truncate(size int64) {
	b.size = size
	b.clearFrom(b.nbits())
}

// anyIn says whether a bit in [first, last] is set.
func (b *dirtyBitmap) anyIn(first, last int64) bool {
	for c := first / chunkBits; c <= last/chunkBits; c++ {
		w := b.chunks[c]
		if w == nil {
			continue
		}
		lo := max(first, c*chunkBits) - c*chunkBits
		hi := min(last, (c+1)*chunkBits-1) - c*chunkBits
		for i := lo; i <= hi; {
			if i%64 == 0 && hi-i >= 63 {
				if w[i/64] != 0 {
					return true
				}
				i += 64
				continue
			}
			if w[i/64]&(1<<(i%64)) != 0 {
				return true
			}
			i++
		}
	}
	return false
}

// count is the number of dirty bits (for tests).
func (b *dirtyBitmap) count() int64 {
	var n int64
	for _, w := range b.chunks {
		for _, x := range w {
			n += int64(bits.OnesCount64(x))
		}
	}
	return n
}

// chunkIndexes are the allocated chunks in order.
func (b *dirtyBitmap) chunkIndexes() []int64 {
	idx := make([]int64, 0, len(b.chunks))
	for c := range b.chunks {
		idx = append(idx, c)
	}
	slices.Sort(idx)
	return idx
}

// serialize writes bits [first, first+len(buf)*8) into buf, bit k of
// byte j being bit first+8j+k (hbitmap_serialize_part: little-endian
// words). Bits past the end are zero.
func (b *dirtyBitmap) serialize(buf []byte, first int64) {
	clear(buf)
	n := int64(len(buf)) * 8
	for c := first / chunkBits; c*chunkBits < first+n; c++ {
		w := b.chunks[c]
		if w == nil {
			continue
		}
		for i := max(first, c*chunkBits); i < min(first+n, (c+1)*chunkBits); i += 64 {
			// first is a multiple of 64 (a cluster's worth of bits).
			x := w[(i-c*chunkBits)/64]
			if x != 0 {
				binary.LittleEndian.PutUint64(buf[(i-first)/8:], x)
			}
		}
	}
}

// deserialize reads bits [first, first+count) from buf, the inverse of
// serialize (hbitmap_deserialize_part). Bits past the bitmap's end that
// the image may hold are dropped.
func (b *dirtyBitmap) deserialize(buf []byte, first, count int64) {
	nb := b.nbits()
	for i := int64(0); i < count && first+i < nb; i += 64 {
		x := binary.LittleEndian.Uint64(buf[i/8:])
		if rem := nb - (first + i); rem < 64 {
			x &= 1<<rem - 1
		}
		if x == 0 {
			continue
		}
		bit := first + i
		c := bit / chunkBits
		w := b.chunks[c]
		if w == nil {
			w = make([]uint64, chunkWords)
			b.chunks[c] = w
		}
		w[(bit-c*chunkBits)/64] |= x
	}
}
