package blk

import (
	"math/bits"
	"sync"
	"unsafe"
)

// The generic path's padding and bounce buffers (initPadding, a padded
// read's or write's whole-block buffer) live only while the request runs
// in PRead or pwrite, and drivers may not keep a buffer after returning
// (Impl): they are recycled, by power-of-two size class, instead of
// being made and collected per request (explore runs thousands of
// padded requests a second). A request that never returns (left in
// flight at a breakpoint) simply never gives its buffers back.
const (
	minPoolShift = 9  // 512 bytes
	maxPoolShift = 20 // 1 MiB; larger buffers are made each time
)

var bufPools [maxPoolShift - minPoolShift + 1]sync.Pool

// getBuf returns a zeroed buffer of n bytes, recycled when it can be.
// The pools hold a buffer's first byte: a pointer goes into an interface
// without an allocation, where a slice would need one per putBuf.
func getBuf(n int64) []byte {
	if n <= 0 || n > 1<<maxPoolShift {
		return make([]byte, n)
	}
	shift := max(bits.Len64(uint64(n-1)), minPoolShift)
	if p, ok := bufPools[shift-minPoolShift].Get().(*byte); ok {
		b := unsafe.Slice(p, 1<<shift)[:n]
		clear(b)
		return b
	}
	return make([]byte, n, 1<<shift)
}

// putBuf gives back a buffer getBuf made; the caller and everything it
// handed the buffer to are done with it.
func putBuf(b []byte) {
	c := cap(b)
	if c < 1<<minPoolShift || c > 1<<maxPoolShift || c&(c-1) != 0 {
		return
	}
	bufPools[bits.Len64(uint64(c))-1-minPoolShift].Put(unsafe.SliceData(b[:c]))
}

// AlignedBuffer returns a zeroed slice of n bytes whose first byte lies at
// an address that is a multiple of align (a power of two), as O_DIRECT
// needs (QEMU's qemu_memalign). Go's collector does not move heap
// objects, so the address stays valid for the slice's lifetime.
func AlignedBuffer(n, align int) []byte {
	if align <= 1 {
		return make([]byte, n)
	}
	b := make([]byte, n+align-1)
	off := 0
	if r := int(uintptr(unsafe.Pointer(unsafe.SliceData(b))) & uintptr(align-1)); r != 0 {
		off = align - r
	}
	return b[off : off+n : off+n]
}

// minBlockAlign is the buffer alignment BlockAlign never goes below: a
// page, as QEMU's bdrv_opt_mem_align defaults to, so that a buffer suits
// O_DIRECT on any node below.
const minBlockAlign = 4096

// BlockAlign returns a zeroed buffer of n bytes aligned for every node of
// the graph (blk_blockalign), so that an O_DIRECT file node can use it
// without a bounce buffer.
func (b *Backend) BlockAlign(n int) []byte {
	align := minBlockAlign
	for node := b.Root; node != nil; {
		align = max(align, int(node.limits.MemAlignment))
		if node.file == nil {
			break
		}
		node = node.file.Node
	}
	return AlignedBuffer(n, align)
}
