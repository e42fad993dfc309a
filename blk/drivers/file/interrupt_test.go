package file_test

import (
	"bytes"
	"errors"
	"os"
	"testing"

	"gio/blk"
)

// TestInterruptBetweenPieces: an interrupted loop (Ctrl-C at the shell)
// stops a long transfer of the deterministic engine after its first
// 16 MiB piece, with ErrInterrupted; the rest of the file is untouched.
func TestInterruptBetweenPieces(t *testing.T) {
	const size = 48 << 20
	path := newImage(t, t.TempDir(), size)
	b := mustOpen(t, path, blk.OpenFlags{})
	defer b.Close()
	loop := b.Loop()
	loop.Interrupt()
	var werr, rerr error
	buf := bytes.Repeat([]byte{0xab}, size)
	rbuf := make([]byte, size)
	w := loop.Spawn("write", func(co *blk.Co) {
		werr = b.PWrite(co, 0, buf, 0)
		rerr = b.PRead(co, 0, rbuf)
	})
	for !w.Done() {
		loop.Poll() // unlike RunUntil, Poll runs requests while interrupted
	}
	loop.ClearInterrupt()
	if !errors.Is(werr, blk.ErrInterrupted) || !errors.Is(rerr, blk.ErrInterrupted) {
		t.Fatalf("write: %v, read: %v; want both interrupted", werr, rerr)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	first := bytes.IndexByte(got, 0)
	if first <= 0 || first >= size || bytes.IndexByte(got[first:], 0xab) >= 0 {
		t.Errorf("the write landed in [0, %d) then stopped? first zero at %d", size, first)
	}
	if first != 16<<20 {
		t.Errorf("stopped after %d bytes, want one 16 MiB piece", first)
	}
}
