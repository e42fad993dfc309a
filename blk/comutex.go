package blk

// CoMutex is QEMU's CoMutex: the lock a format driver holds to keep its
// metadata consistent while the request holding it yields in the middle
// of child I/O. Waiters park in FIFO order and are woken one at a time,
// in the order they came, as qemu_co_mutex_unlock hands the lock over.
//
// The zero value is unlocked. Lock and Unlock must be called by the
// token holder; a request must not Lock a mutex it already holds (that
// waits forever, and the loop reports it as a wait that can never
// finish). Unlock must be called by the holder, once.
type CoMutex struct {
	locked  bool
	waiters []*Co
}

// Locked reports whether a request holds the mutex.
func (m *CoMutex) Locked() bool { return m.locked }

// Lock takes the mutex, parking co with the reason why (a request
// report's "waits for the qcow2 lock") while another request holds it.
func (m *CoMutex) Lock(co *Co, why string) {
	for m.locked {
		m.waiters = append(m.waiters, co)
		co.Park(why)
	}
	m.locked = true
}

// Unlock releases the mutex and wakes the oldest waiter, which then
// takes it before any request that comes later.
func (m *CoMutex) Unlock() {
	m.locked = false
	if len(m.waiters) > 0 {
		w := m.waiters[0]
		m.waiters = m.waiters[1:]
		w.Wake()
	}
}
