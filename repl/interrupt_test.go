package repl

import (
	"syscall"
	"testing"
	"time"
)

// TestSecondInterruptExits: a SIGINT that finds the loop still
// interrupted (the first Ctrl-C has not brought the prompt back) ends
// gio instead of being ignored.
func TestSecondInterruptExits(t *testing.T) {
	s := testSession(t)
	exited := make(chan struct{}, 1)
	stop := trapInterrupts(s, func() { exited <- struct{}{} })
	defer stop()
	syscall.Kill(syscall.Getpid(), syscall.SIGINT)
	deadline := time.Now().Add(10 * time.Second)
	for !s.Loop.Interrupted() {
		if time.Now().After(deadline) {
			t.Fatal("the first SIGINT did not interrupt the loop")
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case <-exited:
		t.Fatal("the first SIGINT exited")
	default:
	}
	syscall.Kill(syscall.Getpid(), syscall.SIGINT)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the second SIGINT was ignored")
	}
	// Once the prompt is back (interrupt cleared), a SIGINT interrupts again.
	s.Loop.ClearInterrupt()
	syscall.Kill(syscall.Getpid(), syscall.SIGINT)
	for !s.Loop.Interrupted() {
		if time.Now().After(deadline) {
			t.Fatal("SIGINT after the prompt came back did not interrupt")
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case <-exited:
		t.Fatal("a SIGINT after the prompt came back exited")
	default:
	}
}
