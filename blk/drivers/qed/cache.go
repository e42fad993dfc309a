package qed

import "gio/blk"

// l2Table is a cached L2 table: its offset in the file and its entries.
type l2Table struct {
	offset  int64
	entries []uint64
}

// l2Cache is QED's write-through L2 cache: at most l2CacheSize tables,
// the least recently committed evicted first (qed-l2-cache.c). Because
// it is write-through, eviction never writes.
type l2Cache struct{ tables []*l2Table }

func (c *l2Cache) init() { c.tables = nil }

func (c *l2Cache) find(off int64) *l2Table {
	for _, t := range c.tables {
		if t.offset == off {
			return t
		}
	}
	return nil
}

// commit adds t, replacing a table at the same offset; a full cache
// drops its oldest entry.
func (c *l2Cache) commit(t *l2Table) {
	for i, o := range c.tables {
		if o.offset == t.offset {
			c.tables = append(c.tables[:i], c.tables[i+1:]...)
			break
		}
	}
	if len(c.tables) >= l2CacheSize {
		c.tables = c.tables[1:]
	}
	c.tables = append(c.tables, t)
}

// coMutex is QEMU's CoMutex (table_lock).
type coMutex struct{ blk.CoMutex }

func (m *coMutex) lock(co *blk.Co) { m.Lock(co, "waits for the qed table lock") }
func (m *coMutex) unlock()         { m.Unlock() }

// coQueue is QEMU's CoQueue: allocating writes waiting their turn.
type coQueue struct{ waiters []*blk.Co }

// wait parks co until next wakes it, releasing m meanwhile.
func (q *coQueue) wait(co *blk.Co, m *coMutex) {
	q.waiters = append(q.waiters, co)
	m.unlock()
	co.Park("waits for an allocating qed write")
	m.lock(co)
}

// next wakes the first waiter.
func (q *coQueue) next() {
	if len(q.waiters) > 0 {
		w := q.waiters[0]
		q.waiters = q.waiters[1:]
		w.Wake()
	}
}
