package blk_test

import (
	"strings"
	"testing"

	"gio/blk"
)

// TestCoMutexHandOff checks qemu_co_mutex_unlock's hand-over: a holder
// that unlocks and locks again at once queues behind the request that
// waited, which owns the mutex as soon as it is woken.
func TestCoMutexHandOff(t *testing.T) {
	loop := blk.NewLoop(blk.NewVirtualClock())
	var m blk.CoMutex
	var log []string
	loop.Spawn("a", func(co *blk.Co) {
		m.Lock(co, "waits")
		co.YieldIO()
		m.Unlock()
		m.Lock(co, "waits")
		log = append(log, "a again")
		m.Unlock()
	})
	loop.Spawn("b", func(co *blk.Co) {
		m.Lock(co, "waits")
		log = append(log, "b")
		co.YieldIO()
		m.Unlock()
	})
	if err := loop.Drain("drain"); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(log, ", "), "b, a again"; got != want {
		t.Errorf("lock order %q, want %q", got, want)
	}
}
