package qed

import (
	"io"

	"gio/blk"
)

// Check is bdrv_qed_co_check: qed_check under the table lock. Any repair
// mode repairs what QED can repair (invalid table and cluster offsets are
// dropped), as QEMU passes !!fix; leaks are counted, never repaired. QED
// prints no message per problem.
func (s *state) Check(co *blk.Co, fix blk.CheckMode, _ io.Writer, res *blk.CheckResult) error {
	s.mu.lock(co)
	defer s.mu.unlock()
	return s.check(co, res, fix != 0)
}

// check is qed_check: walk the L1 and L2 tables, drop (with fix) entries
// pointing outside the allocated area, count clusters referenced twice
// as corruptions and clusters referenced by nothing as leaks, and clear
// the need-check bit when fix found nothing it could not repair. The
// error is the last table read or write that failed (the leak count is
// then left out, as in QEMU). Called with mu held.
func (s *state) check(co *blk.Co, r *blk.CheckResult, fix bool) error {
	nclusters := s.checkClusters(s.fileSize)
	used := make([]bool, nclusters)
	// setUsed marks n clusters from off; a cluster marked before is a
	// corruption. The offsets were checked against the file's end, so
	// the range test only guards against what the check does not see.
	setUsed := func(off uint64, n int64) bool {
		c := s.checkClusters(int64(off))
		bad := 0
		for ; n > 0; n-- {
			if c >= 0 && c < nclusters {
				if used[c] {
					bad++
				}
				used[c] = true
			}
			c++
		}
		r.Corruptions += bad
		return bad == 0
	}
	r.TotalClusters = int64((s.h.ImageSize + uint64(s.h.ClusterSize) - 1) / uint64(s.h.ClusterSize))
	setUsed(s.h.L1TableOffset, int64(s.h.TableSize))
	invalidL1 := 0
	var lastErr error
	for i, off := range s.l1 {
		if off == 0 {
			continue
		}
		if !s.checkTableOffset(off) {
			if fix {
				s.l1[i] = 0
				r.CorruptionsFixed++
			} else {
				r.Corruptions++
			}
			invalidL1++
			continue
		}
		if !setUsed(off, int64(s.h.TableSize)) {
			continue // a table sharing clusters is not looked into
		}
		t, err := s.readL2(co, int64(off))
		if err != nil {
			r.CheckErrors++
			lastErr = err
			continue
		}
		if s.checkL2(t, r, fix, setUsed) > 0 && fix {
			if err := s.writeL2(co, t, 0, s.tableNelems, false); err != nil {
				r.CheckErrors++
				lastErr = err
			}
		}
	}
	if invalidL1 > 0 && fix {
		if err := s.writeL1(co, 0, s.tableNelems); err != nil {
			r.CheckErrors++
			lastErr = err
		}
	}
	if lastErr != nil {
		return lastErr
	}
	// Leaks only when every table was read.
	for i := int64(s.h.HeaderSize); i < nclusters; i++ {
		if !used[i] {
			r.Leaks++
		}
	}
	if fix && r.Corruptions == 0 && r.CheckErrors == 0 && s.h.Features&fNeedCheck != 0 {
		// The repairs reach the disk before the bit goes.
		s.mu.unlock()
		_ = s.flushSelf(co)
		s.h.Features &^= fNeedCheck
		_ = s.writeHeaderSync(co)
		s.mu.lock(co)
	}
	return nil
}

// checkL2 is qed_check_l2_table: it counts allocated and fragmented
// clusters (in file order of the table's entries), drops (fix) or counts
// the entries pointing outside the allocated area, marks the others used
// and returns how many were invalid.
func (s *state) checkL2(t *l2Table, r *blk.CheckResult, fix bool, setUsed func(uint64, int64) bool) int {
	invalid := 0
	var last uint64
	for j, e := range t.entries {
		if e <= 1 { // unallocated or a zero cluster
			continue
		}
		r.AllocatedClusters++
		if last != 0 && last+uint64(s.h.ClusterSize) != e {
			r.FragmentedClusters++
		}
		last = e
		if !s.checkClusterOffset(e) {
			if fix {
				t.entries[j] = 0
				r.CorruptionsFixed++
			} else {
				r.Corruptions++
			}
			invalid++
			continue
		}
		setUsed(e, 1)
	}
	return invalid
}

// checkClusters is qed_bytes_to_clusters as qed_check uses it: QEMU 7.2
// divides by cluster_size - 1, not cluster_size. The answer is right
// below cluster_size - 1 clusters; above, cluster numbers skip one every
// cluster_size - 1 clusters, so a file of 4095 or more 4 KiB clusters
// gets one more leak counted per 4095 clusters. gio's check reports what
// qemu-img check reports, so it counts the same way. (The other users of
// the macro in QEMU never see a count that large.)
func (s *state) checkClusters(bytes int64) int64 {
	return ((bytes + s.clusterSize - 1) &^ (s.clusterSize - 1)) / (s.clusterSize - 1)
}
