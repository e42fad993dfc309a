package cor_test

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gio/blk"
	"gio/blk/drivers/cor"
	"gio/blk/drivers/file"
	"gio/blk/drivers/qcow2"
	"gio/blk/drivers/raw"
	"gio/blk/qdict"
	"gio/blkdebug"
)

func registry() *blk.Registry {
	return blk.NewRegistry(file.Driver, raw.Driver, qcow2.Driver, cor.Driver,
		blkdebug.NewDriver(func() io.Writer { return io.Discard }))
}

// chain makes a raw base with data at 64 KiB and a qcow2 overlay on it.
func chain(t *testing.T) (base, top string) {
	t.Helper()
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed")
	}
	dir := t.TempDir()
	base, top = filepath.Join(dir, "base.raw"), filepath.Join(dir, "top.qcow2")
	data := make([]byte, 1<<20)
	copy(data[64<<10:], bytes.Repeat([]byte{0x5a}, 4096))
	if err := os.WriteFile(base, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-b", base, "-F", "raw", top).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return base, top
}

func do(t *testing.T, b *blk.Backend, fn func(co *blk.Co) error) error {
	t.Helper()
	var err error
	co := b.Loop().Spawn("t", func(co *blk.Co) { err = fn(co) })
	if rerr := b.Loop().RunUntil("t", co.Done); rerr != nil {
		t.Fatal(rerr)
	}
	return err
}

// check reads 64 KiB+100 bytes through b and expects the overlay to own
// the whole cluster afterwards, with the backing file's bytes.
func check(t *testing.T, b *blk.Backend) {
	t.Helper()
	alloc := func() (bool, int64) {
		var a bool
		var n int64
		if err := do(t, b, func(co *blk.Co) (err error) { a, n, err = b.IsAllocated(co, 64<<10, 64<<10); return }); err != nil {
			t.Fatal(err)
		}
		return a, n
	}
	if a, _ := alloc(); a {
		t.Fatal("allocated before the read")
	}
	buf := make([]byte, 100)
	if err := do(t, b, func(co *blk.Co) error { return b.PRead(co, 64<<10+100, buf) }); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf, bytes.Repeat([]byte{0x5a}, 100)) {
		t.Fatalf("read % x", buf[:8])
	}
	if a, n := alloc(); !a || n != 64<<10 {
		t.Fatalf("after the read: allocated %v for %d bytes, want the whole cluster", a, n)
	}
}

func TestCopyOnReadFlag(t *testing.T) {
	_, top := chain(t)
	b, err := registry().Open(blk.Spec{Filename: top, Format: "qcow2"}, blk.NewLoop(blk.NewVirtualClock()))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.SetCopyOnRead(); err != nil {
		t.Fatal(err)
	}
	check(t, b)
}

func TestFilter(t *testing.T) {
	_, top := chain(t)
	opts := qdict.FromPairs("driver", "copy-on-read", "file.driver", "qcow2")
	b, err := registry().Open(blk.Spec{Filename: top, Opts: opts}, blk.NewLoop(blk.NewVirtualClock()))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	check(t, b)
}

func TestReadOnly(t *testing.T) {
	_, top := chain(t)
	spec := blk.Spec{Filename: top, Format: "qcow2"}
	spec.Flags.ReadOnly = true
	ro, err := registry().Open(spec, blk.NewLoop(blk.NewVirtualClock()))
	if err != nil {
		t.Fatal(err)
	}
	if err := ro.SetCopyOnRead(); err == nil || err.Error() != "Can't use copy-on-read on read-only device" {
		t.Errorf("-C -r: %v", err)
	}
	ro.Close()
	spec = blk.Spec{Filename: top, Opts: qdict.FromPairs("driver", "copy-on-read", "file.driver", "qcow2")}
	spec.Flags.ReadOnly = true
	if _, err := registry().Open(spec, blk.NewLoop(blk.NewVirtualClock())); err == nil || !strings.Contains(err.Error(), "Block node is read-only") {
		t.Errorf("filter read-only: %v", err)
	}
}
