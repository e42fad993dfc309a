package qcow2

import (
	"errors"
	"maps"
	"slices"

	"gio/blk"
)

// Rewinding (blk.Rewinder): gio explore runs one script thousands of
// times on one open image and rewinds it after each run. The file below
// restores its bytes (and blkdebug its rules); the qcow2 node restores
// what it keeps in memory: the header's fields, the L1 and refcount
// tables, the allocation hints, and the L2 and refcount caches with the
// tables they held, so that the next run misses and loads (and fires
// l2_load, refblock_load) exactly where a run on a freshly set up image
// would.
var _ blk.Rewinder = (*state)(nil)

// cacheMark is a cache at the mark: its clean entries in slot order.
type cacheMark struct {
	entries []centry
	lru     uint64
	depends *cache
	flush   bool
}

func (c *cache) mark() cacheMark {
	m := cacheMark{lru: c.lru, depends: c.depends, flush: c.dependsOnFlush}
	for _, e := range c.entries {
		m.entries = append(m.entries, centry{offset: e.offset, data: slices.Clone(e.data), lru: e.lru})
	}
	return m
}

func (c *cache) rewind(m cacheMark) {
	c.lru, c.depends, c.dependsOnFlush = m.lru, m.depends, m.flush
	clear(c.index)
	for i, e := range m.entries {
		ce := c.entries[i]
		ce.offset, ce.lru, ce.ref, ce.dirty = e.offset, e.lru, 0, false
		ce.data = append(ce.data[:0], e.data...)
		if e.data == nil {
			ce.data = nil
		}
		if e.offset != 0 {
			c.index[e.offset] = ce
		}
	}
}

// Mark implements blk.Rewinder. It refuses an image whose state it
// does not restore: metadata not yet written back, requests or
// discards pending, persistent bitmaps, encryption, an external data
// file, a corrupt image.
func (s *state) Mark() (func() error, error) {
	switch {
	case !s.idle():
		return nil, errors.New("requests in flight or metadata not written back")
	case len(s.dirtyBitmaps) > 0 || s.nbBitmaps > 0 || s.crypt != nil || s.data != s.file || s.broken:
		return nil, errors.New("bitmaps, encryption, an external data file or corruption")
	case len(s.l2Cache.entries) == 0 || len(s.rcCache.entries) == 0:
		return nil, errors.New("no caches")
	}
	saved := *s
	l1, reftable := slices.Clone(s.l1), slices.Clone(s.reftable)
	l2, rc := s.l2Cache.mark(), s.rcCache.mark()
	return func() error {
		if !s.idle() {
			return errors.New("qcow2: requests in flight or metadata not written back")
		}
		*s = saved
		s.l1 = append(s.l1[:0], l1...)
		s.reftable = append(s.reftable[:0], reftable...)
		s.discards, s.allocs = nil, nil
		s.dataWrites = maps.Clone(saved.dataWrites)
		s.l2Cache.rewind(l2)
		s.rcCache.rewind(rc)
		return nil
	}, nil
}

// idle reports whether nothing is in flight in the node and its caches
// are clean.
func (s *state) idle() bool {
	return len(s.allocs) == 0 && len(s.discards) == 0 && len(s.writesDone.waiters) == 0 &&
		!s.mu.Locked() && len(s.dataWrites) == 0 && !s.l2Cache.dirty() && !s.rcCache.dirty()
}
