package blk_test

import (
	"errors"
	"testing"
	"time"

	"gio/blk"

	"golang.org/x/sys/unix"
)

// interruptAfter interrupts l from another goroutine, as the shell's
// SIGINT handler does.
func interruptAfter(l *blk.Loop, d time.Duration) {
	go func() {
		time.Sleep(d)
		l.Interrupt()
	}()
}

func TestInterruptRealSleep(t *testing.T) {
	l := blk.NewLoop(blk.NewRealClock())
	interruptAfter(l, 20*time.Millisecond)
	start := time.Now()
	l.Sleep(time.Hour)
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("interrupted Sleep took %v", d)
	}
	if !l.Interrupted() {
		t.Error("Interrupted() = false after Interrupt")
	}
	l.Interrupt() // twice is harmless
	l.ClearInterrupt()
	if l.Interrupted() {
		t.Error("Interrupted() = true after ClearInterrupt")
	}
	start = time.Now()
	l.Sleep(20 * time.Millisecond)
	if d := time.Since(start); d < 20*time.Millisecond {
		t.Errorf("Sleep(20ms) after ClearInterrupt took only %v", d)
	}
}

func TestInterruptRunUntil(t *testing.T) {
	l := blk.NewLoop(blk.NewRealClock())
	co := l.Spawn("sleeper", func(co *blk.Co) { co.Sleep(time.Hour) })
	interruptAfter(l, 20*time.Millisecond)
	err := l.RunUntil("sleeper", co.Done)
	if !errors.Is(err, blk.ErrInterrupted) || !errors.Is(err, unix.EINTR) {
		t.Fatalf("RunUntil = %v, want ErrInterrupted (EINTR)", err)
	}
	if co.Done() {
		t.Error("the request finished: its timer fired early")
	}
	// The request is still in flight and its timer still pending: after
	// the interrupt is cleared it can be waited for again (a short one
	// here, so the test does not sleep an hour).
	l.ClearInterrupt()
	co2 := l.Spawn("short", func(co *blk.Co) { co.Sleep(time.Millisecond) })
	if err := l.RunUntil("short", co2.Done); err != nil {
		t.Fatalf("RunUntil after ClearInterrupt: %v", err)
	}
	if got := l.InFlight(); got != 1 {
		t.Errorf("InFlight = %d, want 1 (the hour-long sleeper)", got)
	}
}

// TestInterruptVirtual: a virtual clock never waits, and an interrupt
// still stops a sleep before its timers fire.
func TestInterruptVirtual(t *testing.T) {
	l := blk.NewLoop(blk.NewVirtualClock())
	fired := false
	l.AddTimer(time.Second, func() { fired = true })
	l.Interrupt()
	l.Sleep(time.Hour)
	if fired {
		t.Error("timer fired during an interrupted sleep")
	}
	l.ClearInterrupt()
	l.Sleep(time.Hour)
	if !fired {
		t.Error("timer did not fire after ClearInterrupt")
	}
}

// chanWaiter is an engine that waits on the loop's goroutine (a
// blk.Waiter) for a channel that only Unwait or the test fills.
type chanWaiter struct {
	co     *blk.Co
	wake   chan struct{}
	woken  bool
	waited int
}

func (w *chanWaiter) Pending() int {
	if w.co != nil && !w.woken {
		return 1
	}
	return 0
}

func (w *chanWaiter) Poll(block bool) bool {
	select {
	case <-w.wake:
		w.woken = true
		w.co.Wake()
		return true
	default:
		return false
	}
}

func (w *chanWaiter) Wait() {
	w.waited++
	<-w.wake
	w.wake <- struct{}{} // for Poll
}

func (w *chanWaiter) Unwait() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// An engine that waits on the loop's goroutine (blk.Waiter) is woken by
// Interrupt through Unwait.
func TestInterruptWaiter(t *testing.T) {
	l := blk.NewLoop(blk.NewRealClock())
	w := &chanWaiter{wake: make(chan struct{}, 1)}
	l.AddEngine(w)
	co := l.Spawn("waiter", func(co *blk.Co) {
		w.co = co
		co.Park("waits for the engine")
	})
	interruptAfter(l, 20*time.Millisecond)
	if err := l.RunUntil("waiter", co.Done); err != nil && !errors.Is(err, blk.ErrInterrupted) {
		t.Fatalf("RunUntil = %v", err)
	}
	if w.waited == 0 {
		t.Error("the loop never called Wait")
	}
	if !l.Interrupted() {
		t.Error("not interrupted")
	}
}
