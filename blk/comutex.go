package blk

// CoMutex is QEMU's CoMutex: the lock a format driver holds to keep its
// metadata consistent while the request holding it yields in the middle
// of child I/O. Waiters park in FIFO order and are woken one at a time,
// in the order they came. Unlock hands the mutex over to the oldest
// waiter, as qemu_co_mutex_unlock does: it stays locked, so the request
// that unlocked cannot take it back before the waiter has run (a qcow2
// request that drops the lock between its block-status check and its
// update queues behind the request that waited).
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
	if !m.locked {
		m.locked = true
		return
	}
	m.waiters = append(m.waiters, co)
	co.Park(why)
	// Only Unlock wakes a waiter, handing it the mutex, still locked.
}

// Unlock releases the mutex, or hands it to the oldest waiter and wakes
// it: the mutex stays locked, now held by that waiter.
func (m *CoMutex) Unlock() {
	if len(m.waiters) == 0 {
		m.locked = false
		return
	}
	w := m.waiters[0]
	m.waiters = m.waiters[1:]
	w.Wake()
}
