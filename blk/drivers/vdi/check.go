package vdi

import (
	"fmt"
	"io"
	"strings"

	"gio/blk"

	"golang.org/x/sys/unix"
)

// Check is vdi_co_check: every allocated block-map entry must name a
// block inside the image, no two entries the same block, and the
// header's allocated-block count must match the entries. Each problem is
// a corruption with QEMU's line (its "also used by" line prints the
// block twice, as QEMU's does). VDI repairs nothing: a repair answers
// ENOTSUP, which qemu-img check reports as a format without checks.
func (s *state) Check(co *blk.Co, fix blk.CheckMode, msgs io.Writer, res *blk.CheckResult) error {
	if fix != 0 {
		return unix.ENOTSUP
	}
	s.mu.lock(co)
	defer s.mu.unlock()
	// used holds the blocks named so far. Only the entries the file
	// holds are walked one by one; the rest read as 0 (block 0, as QEMU
	// reads them past the end of the file) and are counted at once, so
	// a corrupt block count costs no memory.
	used := map[uint32]bool{}
	var allocated uint32
	stored := min(int64(s.blocksInImage), int64(len(s.bmap))/4)
	for i := int64(0); i < stored; i++ {
		e := s.entry(i)
		if !isAllocated(e) {
			continue
		}
		if e >= s.blocksInImage {
			fmt.Fprintf(msgs, "ERROR: block index %d too large, is %d\n", i, e)
			res.Corruptions++
			continue
		}
		allocated++
		if used[e] {
			fmt.Fprintf(msgs, "ERROR: block index %d also used by %d\n", e, e)
			res.Corruptions++
			continue
		}
		used[e] = true
	}
	if tail := int64(s.blocksInImage) - stored; tail > 0 {
		allocated += uint32(tail)
		dups := tail
		if !used[0] {
			dups--
		}
		res.Corruptions += int(dups)
		repeatLine(msgs, "ERROR: block index 0 also used by 0\n", dups)
	}
	if allocated != s.blocksAllocated {
		fmt.Fprintf(msgs, "ERROR: allocated blocks mismatch, is %d, should be %d\n", allocated, s.blocksAllocated)
		res.Corruptions++
	}
	return nil
}

// repeatLine writes line n times, in large writes.
func repeatLine(w io.Writer, line string, n int64) {
	const batch = 4096
	chunk := []byte(strings.Repeat(line, int(min(n, batch))))
	for ; n > 0; n -= batch {
		k := min(n, batch)
		if _, err := w.Write(chunk[:k*int64(len(line))]); err != nil {
			return
		}
	}
}
