package qed

import "gio/blk"

// checkResult counts what check found (BdrvCheckResult's fields QED
// fills).
type checkResult struct {
	corruptions, corruptionsFixed, leaks, checkErrors int
}

// check is qed_check: walk L1 and L2 tables, drop (with fix) entries
// pointing outside the allocated area, count clusters referenced twice
// and leaks, and clear the need-check bit when all is well. Called with
// mu held.
func (s *state) check(co *blk.Co, r *checkResult, fix bool) error {
	nclusters := s.bytesToClusters(s.fileSize)
	used := make([]bool, nclusters)
	setUsed := func(off uint64, n int64) bool {
		c := s.bytesToClusters(int64(off))
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
		r.corruptions += bad
		return bad == 0
	}
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
				r.corruptionsFixed++
			} else {
				r.corruptions++
			}
			invalidL1++
			continue
		}
		if !setUsed(off, int64(s.h.TableSize)) {
			continue
		}
		t, err := s.readL2(co, int64(off))
		if err != nil {
			r.checkErrors++
			lastErr = err
			continue
		}
		invalid := 0
		for j, e := range t.entries {
			if e <= 1 {
				continue
			}
			if !s.checkClusterOffset(e) {
				if fix {
					t.entries[j] = 0
					r.corruptionsFixed++
				} else {
					r.corruptions++
				}
				invalid++
				continue
			}
			setUsed(e, 1)
		}
		if invalid > 0 && fix {
			if err := s.writeL2(co, t, 0, s.tableNelems, false); err != nil {
				r.checkErrors++
				lastErr = err
			}
		}
	}
	if invalidL1 > 0 && fix {
		if err := s.writeL1(co, 0, s.tableNelems); err != nil {
			r.checkErrors++
			lastErr = err
		}
	}
	if lastErr != nil {
		return lastErr
	}
	for i := int64(s.h.HeaderSize); i < nclusters; i++ {
		if !used[i] {
			r.leaks++
		}
	}
	if fix && r.corruptions == 0 && r.checkErrors == 0 && s.h.Features&fNeedCheck != 0 {
		s.mu.unlock()
		_ = s.flushSelf(co)
		s.h.Features &^= fNeedCheck
		_ = s.writeHeaderSync(co)
		s.mu.lock(co)
	}
	return nil
}
