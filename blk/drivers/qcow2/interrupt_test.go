package qcow2_test

import (
	"errors"
	"path/filepath"
	"testing"

	"gio/blk"
)

// TestInterruptedZeroRead: reading a long unallocated range (one mapping
// step of up to 2 GiB) stops with ErrInterrupted when the loop is
// interrupted (Ctrl-C at the shell) instead of zeroing all of it first.
func TestInterruptedZeroRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "z.qcow2")
	create(t, path, 64<<20)
	b := mustOpen(t, path, "driver", "qcow2")
	defer b.Close()
	buf := make([]byte, 64<<20)
	buf[0] = 1
	loop := b.Loop()
	loop.Interrupt()
	var err error
	co := loop.Spawn("read", func(co *blk.Co) { err = b.PRead(co, 0, buf) })
	for !co.Done() {
		loop.Poll() // unlike RunUntil, Poll runs requests while interrupted
	}
	loop.ClearInterrupt()
	if !errors.Is(err, blk.ErrInterrupted) || buf[0] != 1 {
		t.Errorf("read: %v (first byte %d); want interrupted before zeroing", err, buf[0])
	}
	if err := do(t, b, func(co *blk.Co) error { return b.PRead(co, 0, buf) }); err != nil || buf[0] != 0 {
		t.Errorf("read after the interrupt: %v (first byte %d)", err, buf[0])
	}
}
