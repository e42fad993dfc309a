package file

import (
	"unsafe"

	"gio/blk"

	"golang.org/x/sys/unix"
)

// maxBlockSize is QEMU's MAX_BLOCKSIZE: the largest request alignment
// probed, and the size of the block written by allocateFirstBlock.
const maxBlockSize = 4096

// maxAlign is the alignment used for probe buffers (QEMU: the larger of
// MAX_BLOCKSIZE and the page size).
func maxAlign() int { return max(maxBlockSize, unix.Getpagesize()) }

// AlignedBuffer returns a zeroed slice of n bytes whose first byte lies at
// an address that is a multiple of align (a power of two), as O_DIRECT
// needs (QEMU's qemu_memalign). Go's collector does not move heap objects,
// so the address stays valid for the slice's lifetime.
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

// isAligned reports whether buf can be handed to an O_DIRECT syscall as
// is: its address and length are multiples of align
// (bdrv_qiov_is_aligned).
func isAligned(buf []byte, align int64) bool {
	if align <= 1 || len(buf) == 0 {
		return true
	}
	addr := uintptr(unsafe.Pointer(unsafe.SliceData(buf)))
	return int64(addr)&(align-1) == 0 && int64(len(buf))&(align-1) == 0
}

// ioAligned is raw_is_io_aligned: an O_DIRECT read of len bytes at offset
// 0 into buf works. Linux reports misalignment with EINVAL; any other
// error (a failing disk) says nothing about alignment, so it counts as
// success.
func ioAligned(fd int, buf []byte) bool {
	for {
		_, err := unix.Pread(fd, buf, 0)
		if err == unix.EINTR {
			continue
		}
		return err != unix.EINVAL
	}
}

// probeAlignment is raw_probe_alignment for a descriptor opened with
// O_DIRECT: find the smallest read size that works, then the smallest
// buffer offset. A read of 1 byte succeeding means the filesystem told
// nothing (an empty file, say), so the safe maximum is used instead.
func probeAlignment(fd int) (reqAlign, memAlign int64, err error) {
	ma := maxAlign()
	alignments := []int{1, 512, 1024, 2048, 4096}

	buf := AlignedBuffer(ma, ma)
	for _, a := range alignments {
		if ioAligned(fd, buf[:a]) {
			reqAlign = int64(ma)
			if a != 1 {
				reqAlign = int64(a)
			}
			break
		}
	}

	buf = AlignedBuffer(2*ma, ma)
	for _, a := range alignments {
		if ioAligned(fd, buf[a:a+ma]) {
			memAlign = reqAlign
			if a != 1 {
				memAlign = int64(a)
			}
			break
		}
	}

	if reqAlign == 0 || memAlign == 0 {
		// QEMU appends the hint on a line of its own.
		return 0, 0, blk.Msgf(unix.EINVAL, "Could not find working O_DIRECT alignment\nTry cache.direct=off")
	}
	return reqAlign, memAlign, nil
}
