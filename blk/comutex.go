package blk

// CoMutex is QEMU's CoMutex: the lock a format driver holds to keep its
// metadata consistent while the request holding it yields in the middle
// of child I/O. Waiters park in FIFO order; Unlock hands the mutex over
// to the oldest one, which owns it from then on, as
// qemu_co_mutex_unlock does: a holder that unlocks and locks again
// queues behind the requests that waited.
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
	co.Park(why) // Unlock handed the mutex over
}

// Unlock releases the mutex, or hands it over to the oldest waiter and
// wakes it.
func (m *CoMutex) Unlock() {
	if len(m.waiters) == 0 {
		m.locked = false
		return
	}
	w := m.waiters[0]
	m.waiters = m.waiters[1:]
	w.Wake()
}
