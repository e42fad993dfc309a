package commands

import (
	"bytes"
	"strings"
	"testing"

	"gio/blk"
	"gio/blk/qdict"
)

// ctrlCDisk takes a write's data, then Ctrl-C arrives while the request
// waits for its completion (a thread-pool or io_uring wait at a
// terminal).
var ctrlCDisk = &blk.Driver{Name: "ctrlcdisk", Open: func(a *blk.OpenArgs) (blk.Impl, error) {
	a.Opts.TakeString("filename")
	return &ctrlCNode{yieldNode{data: make([]byte, 1<<20)}}, nil
}}

type ctrlCNode struct{ yieldNode }

func (c *ctrlCNode) PWrite(co *blk.Co, off int64, buf []byte, _ blk.ReqFlags) error {
	copy(c.data[off:], buf)
	co.Loop().Interrupt()
	co.YieldIO()
	return nil
}

// TestInterruptedWriteNotCalledFailed is issue 14 item 1's rule under
// Ctrl-C: a synchronous write whose data already reached the driver when
// the wait was interrupted must not print "write failed": it stays in
// flight and prints its completion when it comes.
func TestInterruptedWriteNotCalledFailed(t *testing.T) {
	var out, errw bytes.Buffer
	loop := blk.NewLoop(blk.NewVirtualClock())
	s := NewSession(&out, &errw, blk.NewRegistry(ctrlCDisk), loop)
	opts := qdict.New()
	opts.Set("driver", "ctrlcdisk")
	if !s.OpenImage("", OpenOptions{Opts: opts}) {
		t.Fatal("open failed")
	}
	defer s.CloseImage()
	if !s.Execute("write -P 0x5a 0 4k") {
		t.Errorf("the interrupted write was reported failed:\n%s%s", out.String(), errw.String())
	}
	loop.ClearInterrupt()
	if !s.Execute("aio_flush") {
		t.Fatalf("aio_flush failed:\n%s%s", out.String(), errw.String())
	}
	if got := out.String(); !strings.Contains(got, "wrote 4096/4096 bytes at offset 0") || strings.Contains(got, "failed") {
		t.Errorf("stdout %q, want the write's completion and no failure", got)
	}
	if got := errw.String(); !strings.Contains(got, "interrupted, left in flight") {
		t.Errorf("stderr %q, want it to say the write was left in flight", got)
	}
}
