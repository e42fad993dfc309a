package blkdebug

import (
	"bytes"
	"errors"
	"testing"

	"gio/blk"

	"golang.org/x/sys/unix"
)

// spawnStuck submits fn as a synchronous request and runs the loop until
// it can go no further, which must be because it can never finish.
func (e *env) spawnStuck(name string, fn func(co *blk.Co) error) (*blk.Co, *error) {
	e.t.Helper()
	err := new(error)
	co := e.loop.Spawn(name, func(co *blk.Co) { *err = fn(co) })
	var st *blk.ErrStuck
	if rerr := e.loop.RunUntil(name, co.Done); !errors.As(rerr, &st) {
		e.t.Fatalf("%s: RunUntil = %v, want *blk.ErrStuck", name, rerr)
	}
	return co, err
}

// TestWithdrawQueuedWrite is issue 14's reproducer at the block layer: an
// aligned write waits behind a read-modify-write suspended between its
// padding read and its write. Withdrawn, it fails with ECANCELED and must
// never reach the image, even after the suspended request is resumed.
func TestWithdrawQueuedWrite(t *testing.T) {
	e := openEnv(t, "driver=blkdebug,image.driver=mem,image.size=64k,align=4096", blk.Spec{})
	bp := e.img.Root.Breakpointer()
	must(t, bp.Break("pwritev_rmw_after_head", "A"))
	e.aioWrite(512, 512, 0x11)
	co, werr := e.spawnStuck("write 0 4096", func(co *blk.Co) error {
		return e.img.PWrite(co, 0, bytes.Repeat([]byte{0x33}, 4096), 0)
	})
	if !e.loop.Withdraw(co) {
		t.Fatal("Withdraw of a request waiting for serialisation = false")
	}
	if err := e.loop.RunUntil("withdrawn", co.Done); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(*werr, unix.ECANCELED) {
		t.Errorf("withdrawn write returned %v, want ECANCELED", *werr)
	}
	must(t, bp.Resume("A"))
	e.drain()
	want := make([]byte, 4096)
	copy(want[512:1024], bytes.Repeat([]byte{0x11}, 512))
	if got := e.mem.Data[:4096]; !bytes.Equal(got, want) {
		t.Errorf("image starts % x..., want only the aio_write's bytes (the withdrawn write landed)", got[:16])
	}
}

// TestWithdrawRefused: a request suspended at a breakpoint, or one that
// has handed a write to a driver, is not withdrawn; it stays in flight
// and completes after a resume.
func TestWithdrawRefused(t *testing.T) {
	t.Run("breakpoint", func(t *testing.T) {
		e := openEnv(t, "driver=blkdebug,image.driver=mem,image.size=64k", blk.Spec{})
		bp := e.img.Root.Breakpointer()
		must(t, bp.Break("pwritev", "A"))
		co, werr := e.spawnStuck("write 0 512", func(co *blk.Co) error {
			return e.img.PWrite(co, 0, bytes.Repeat([]byte{0x22}, 512), 0)
		})
		if e.loop.Withdraw(co) {
			t.Fatal("Withdraw of a request suspended at a breakpoint = true")
		}
		must(t, bp.Resume("A"))
		e.drain()
		if *werr != nil || !allBytes(e.mem.Data[:512], 0x22) {
			t.Errorf("after resume: err %v, data % x...; want the write done", *werr, e.mem.Data[:4])
		}
	})
	t.Run("started", func(t *testing.T) {
		// top is not pass-through: a write that entered it has started,
		// wherever below it waits.
		e := openEnv(t, "driver=top,file.driver=blkdebug,file.image.driver=mem,file.image.size=64k,file.align=4096", blk.Spec{})
		bp := e.img.Root.Breakpointer()
		must(t, bp.Break("pwritev_rmw_after_head", "A"))
		e.aioWrite(512, 512, 0x11)
		co, werr := e.spawnStuck("write 0 4096", func(co *blk.Co) error {
			return e.img.PWrite(co, 0, bytes.Repeat([]byte{0x33}, 4096), 0)
		})
		if e.loop.Withdraw(co) {
			t.Fatal("Withdraw of a request that entered a non-pass-through driver = true")
		}
		must(t, bp.Resume("A"))
		e.drain()
		if *werr != nil || !allBytes(e.mem.Data[:4096], 0x33) {
			t.Errorf("after resume: err %v, data % x...; want the write done", *werr, e.mem.Data[:4])
		}
	})
}
