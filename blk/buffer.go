package blk

import "unsafe"

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
