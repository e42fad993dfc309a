package qcow2

import (
	"gio/blk"

	"golang.org/x/sys/unix"
)

// This file is QEMU's block/qcow2-cache.c: a small write-back cache of
// metadata clusters (L2 tables, refcount blocks) with the two ordering
// tools qcow2's crash safety rests on. A cache may depend on another one
// (its dirty entries are written only after the other cache has been
// written and flushed: refcount blocks before the L2 tables that use the
// new clusters), or on a flush of the file (data written by COW before
// the L2 entry that points to it).

type cacheKind int

const (
	l2Cache cacheKind = iota
	refblockCache
)

// centry is one cached table. Fields are touched only under the qcow2
// lock.
type centry struct {
	offset int64 // host offset of the table; 0 means the slot is free
	data   []byte
	ref    int // users holding the entry; referenced entries are never evicted
	dirty  bool
	lru    uint64
}

type cache struct {
	s       *state
	kind    cacheKind
	entries []*centry
	index   map[int64]*centry
	lru     uint64
	// depends is a cache to write and flush before any entry of this one.
	depends *cache
	// dependsOnFlush asks for a flush of the file before the next entry
	// of this cache is written.
	dependsOnFlush bool
}

func newCache(s *state, kind cacheKind, n int) *cache {
	c := &cache{s: s, kind: kind, index: map[int64]*centry{}}
	for range n {
		c.entries = append(c.entries, &centry{})
	}
	return c
}

// entryFlush writes one dirty entry back (qcow2_cache_entry_flush),
// honouring the cache's dependencies first.
func (c *cache) entryFlush(co *blk.Co, e *centry) error {
	if !e.dirty || e.offset == 0 {
		return nil
	}
	switch {
	case c.kind == l2Cache && c.s.noWriteOrder:
		// The mutation x-write-order=off: the L2 table goes out before
		// the refcounts and data it depends on are on the disk.
	case c.depends != nil:
		if err := c.flushDependency(co); err != nil {
			return err
		}
	case c.dependsOnFlush:
		if err := c.s.file.Node.Flush(co); err != nil {
			return err
		}
		c.dependsOnFlush = false
	}
	ignore := olRefcountBlock
	ev := blk.EvRefblockUpdatePart
	if c.kind == l2Cache {
		ignore, ev = olActiveL2, blk.EvL2Update
	}
	if err := c.s.overlapCheck(ignore, e.offset, int64(len(e.data))); err != nil {
		return err
	}
	c.s.file.Event(co, ev)
	if err := c.s.file.Node.PWrite(co, e.offset, e.data, 0); err != nil {
		return err
	}
	e.dirty = false
	return nil
}

// write writes every dirty entry (qcow2_cache_write); the first error
// other than ENOSPC is returned, after trying all entries.
func (c *cache) write(co *blk.Co) error {
	var result error
	for _, e := range c.entries {
		if err := c.entryFlush(co, e); err != nil && !errnoIs(result, unix.ENOSPC) {
			result = err
		}
	}
	return result
}

// flush writes every dirty entry and flushes the file (qcow2_cache_flush).
func (c *cache) flush(co *blk.Co) error {
	result := c.write(co)
	if err := c.s.file.Node.Flush(co); result == nil {
		result = err
	}
	return result
}

func (c *cache) flushDependency(co *blk.Co) error {
	if err := c.depends.flush(co); err != nil {
		return err
	}
	c.depends = nil
	c.dependsOnFlush = false
	return nil
}

// setDependency makes c's entries wait for dep (qcow2_cache_set_dependency).
func (c *cache) setDependency(co *blk.Co, dep *cache) error {
	if dep.depends != nil {
		if err := dep.flushDependency(co); err != nil {
			return err
		}
	}
	if c.depends != nil && c.depends != dep {
		if err := c.flushDependency(co); err != nil {
			return err
		}
	}
	c.depends = dep
	return nil
}

// dependOnFlush asks for a file flush before c's next write
// (qcow2_cache_depends_on_flush).
func (c *cache) dependOnFlush() { c.dependsOnFlush = true }

// get returns the entry for the table at offset, loading it from the file
// unless empty is set (qcow2_cache_get / qcow2_cache_get_empty). The
// caller must put it.
func (c *cache) get(co *blk.Co, offset int64, empty bool) (*centry, error) {
	if e := c.index[offset]; e != nil {
		e.ref++
		return e, nil
	}
	var victim *centry
	for _, e := range c.entries {
		if e.ref == 0 && (victim == nil || e.lru < victim.lru) {
			victim = e
		}
	}
	if victim == nil {
		return nil, blk.Msgf(unix.EIO, "qcow2: metadata cache exhausted")
	}
	if err := c.entryFlush(co, victim); err != nil {
		return nil, err
	}
	if victim.offset != 0 {
		delete(c.index, victim.offset)
		victim.offset = 0
	}
	size := int(c.s.clusterSize)
	if len(victim.data) != size {
		victim.data = make([]byte, size)
	}
	if !empty {
		if err := c.s.checkTableInFile(co, c.tableName(), offset, int64(size)); err != nil {
			return nil, err
		}
		if c.kind == l2Cache {
			c.s.file.Event(co, blk.EvL2Load)
		}
		if err := c.s.file.Node.PRead(co, offset, victim.data, 0); err != nil {
			return nil, err
		}
	}
	victim.offset = offset
	victim.ref++
	c.index[offset] = victim
	return victim, nil
}

func (c *cache) tableName() string {
	if c.kind == l2Cache {
		return "L2 table"
	}
	return "refcount block"
}

// put releases an entry obtained with get.
func (c *cache) put(e *centry) {
	e.ref--
	if e.ref == 0 {
		c.lru++
		e.lru = c.lru
	}
}

func (c *cache) markDirty(e *centry) { e.dirty = true }

// lookup returns the cached entry for offset, if any
// (qcow2_cache_is_table_offset).
func (c *cache) lookup(offset int64) *centry { return c.index[offset] }

// discard drops an unreferenced entry without writing it: its cluster
// was freed (qcow2_cache_discard).
func (c *cache) discard(e *centry) {
	if e.ref != 0 {
		return
	}
	delete(c.index, e.offset)
	e.offset, e.lru, e.dirty = 0, 0, false
}

// dirty reports whether any entry waits to be written.
func (c *cache) dirty() bool {
	for _, e := range c.entries {
		if e.dirty {
			return true
		}
	}
	return false
}

// empty writes every entry and forgets them all (qcow2_cache_empty).
func (c *cache) empty(co *blk.Co) error {
	if err := c.flush(co); err != nil {
		return err
	}
	for _, e := range c.entries {
		if e.offset != 0 {
			delete(c.index, e.offset)
		}
		e.offset, e.lru, e.dirty = 0, 0, false
	}
	return nil
}
