package qcow2

import (
	"crypto/sha256"
	"fmt"
	"slices"

	"gio/blk"
)

// Describe prints everything a qcow2 node keeps in memory between
// requests that a rewind must restore (tests of Mark).
func Describe(n *blk.Node) string {
	s := n.Impl().(*state)
	c := *s
	c.self, c.file, c.backing, c.loop, c.data, c.stderr, c.report, c.warnf = nil, nil, nil, nil, nil, nil, nil, nil
	c.l2Cache, c.rcCache = nil, nil
	out := fmt.Sprintf("%+v\n", c)
	for _, ca := range []*cache{s.l2Cache, s.rcCache} {
		out += fmt.Sprintf("cache lru %d depends %v flush %v index %v\n", ca.lru, ca.depends != nil, ca.dependsOnFlush, slices.Sorted(mapsKeys(ca.index)))
		for _, e := range ca.entries {
			out += fmt.Sprintf("  %d lru %d ref %d dirty %v %x\n", e.offset, e.lru, e.ref, e.dirty, sha256.Sum256(e.data))
		}
	}
	return out
}

func mapsKeys(m map[int64]*centry) func(func(int64) bool) {
	return func(yield func(int64) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}
