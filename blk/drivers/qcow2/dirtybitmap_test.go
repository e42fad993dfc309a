package qcow2

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"testing"

	"gio/blk"
	"gio/blk/drivers/file"
	"gio/blk/qdict"

	"golang.org/x/sys/unix"
)

func TestDirtyBitmapBits(t *testing.T) {
	for _, c := range []struct {
		name      string
		granBits  uint
		size      int64
		sets      [][2]int64 // off, n
		wantCount int64
	}{
		{"one byte", 9, 1 << 20, [][2]int64{{1000, 1}}, 1},
		{"unaligned span", 9, 1 << 20, [][2]int64{{1000, 70000}}, (1000+70000-1)/512 - 1000/512 + 1},
		{"past the end is clipped", 16, 1<<20 + 512, [][2]int64{{1 << 20, 1 << 20}}, 1},
		{"word and chunk edges", 9, 1 << 40, [][2]int64{{63 * 512, 2 * 512}, {(chunkBits - 1) * 512, 2 * 512}}, 4},
		{"whole bitmap", 9, 3 << 20, [][2]int64{{0, 3 << 20}}, 3 << 11},
		{"overlapping", 12, 1 << 20, [][2]int64{{0, 8192}, {4096, 8192}}, 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := newDirtyBitmap("b", c.granBits, c.size)
			for _, s := range c.sets {
				b.setRange(s[0], s[1])
			}
			if got := b.count(); got != c.wantCount {
				t.Fatalf("count %d, want %d", got, c.wantCount)
			}
			// A serialized copy reads back the same bits.
			nb := b.nbits()
			per := int64(4096 * 8)
			r := newDirtyBitmap("r", c.granBits, c.size)
			buf := make([]byte, 4096)
			for first := int64(0); first < nb && first < 1<<24; first += per {
				if !b.anyIn(first, min(first+per, nb)-1) {
					continue
				}
				b.serialize(buf, first)
				r.deserialize(buf, first, min(per, nb-first))
			}
			if nb <= 1<<24 && r.count() != b.count() {
				t.Fatalf("round trip: %d bits, want %d", r.count(), b.count())
			}
			b.truncate(0)
			if b.count() != 0 {
				t.Fatalf("%d bits left after truncate to 0", b.count())
			}
		})
	}
}

func TestDirtyBitmapTruncateKeepsHead(t *testing.T) {
	b := newDirtyBitmap("b", 16, 10<<20)
	b.setRange(0, 10<<20)
	b.truncate(5<<20 + 1)
	if got := b.count(); got != 81 {
		t.Fatalf("after shrink: %d bits, want 81", got)
	}
	b.truncate(20 << 20)
	if got := b.count(); got != 81 {
		t.Fatalf("after grow: %d bits, want 81 (new bits clean)", got)
	}
}

// TestSetDirtyRequests checks which requests set bits in which bitmaps:
// writes, zero writes, discards and compressed writes in the enabled
// bitmaps at their granularity, nothing in a disabled one; a read-only
// image keeps its bitmaps read-only.
func TestSetDirtyRequests(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not on PATH")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "img.qcow2")
	for _, argv := range [][]string{
		{"create", "-q", "-f", "qcow2", path, "4M"},
		{"bitmap", "--add", path, "b64k"},
		{"bitmap", "--add", "-g", "512", path, "b512"},
		{"bitmap", "--add", "--disable", path, "off"},
	} {
		if out, err := exec.Command("qemu-img", argv...).CombinedOutput(); err != nil {
			t.Fatalf("qemu-img %v: %v\n%s", argv, err, out)
		}
	}
	openImg := func(ro bool) (*blk.Backend, *state) {
		opts := qdict.New()
		reg := blk.NewRegistry(file.Driver, Driver)
		b, err := reg.Open(blk.Spec{Filename: path, Opts: opts, Flags: blk.OpenFlags{ReadOnly: ro, Unmap: true}}, blk.NewLoop(blk.NewVirtualClock()))
		if err != nil {
			t.Fatal(err)
		}
		return b, b.Root.Impl().(*state)
	}
	run := func(b *blk.Backend, fn func(co *blk.Co) error) error {
		var err error
		co := b.Loop().Spawn("test", func(co *blk.Co) { err = fn(co) })
		if e := b.Loop().RunUntil("test", co.Done); e != nil {
			t.Fatal(e)
		}
		return err
	}
	b, s := openImg(false)
	if err := run(b, func(co *blk.Co) error {
		if err := b.PWrite(co, 1000, bytes.Repeat([]byte{1}, 3000), 0); err != nil {
			return err
		}
		if err := b.PWriteZeroes(co, 1<<20, 4096, 0); err != nil {
			return err
		}
		if err := b.PDiscard(co, 2<<20, 64<<10); err != nil {
			return err
		}
		return b.PWriteCompressed(co, 3<<20, bytes.Repeat([]byte{3}, 64<<10))
	}); err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"b64k": 4, "b512": 7 + 8 + 128 + 128, "off": 0}
	for _, bm := range s.dirtyBitmaps {
		if bm.count() != want[bm.name] {
			t.Errorf("bitmap %s: %d bits, want %d", bm.name, bm.count(), want[bm.name])
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	// Stored and read back by a read-only open: the same bits.
	b, s = openImg(true)
	defer b.Close()
	for _, bm := range s.dirtyBitmaps {
		if !bm.readonly {
			t.Errorf("bitmap %s of a read-only image is not read-only", bm.name)
		}
		if bm.count() != want[bm.name] {
			t.Errorf("bitmap %s read back: %d bits, want %d", bm.name, bm.count(), want[bm.name])
		}
	}
	if err := run(b, func(co *blk.Co) error { return b.PWrite(co, 0, make([]byte, 512), 0) }); err != unix.EPERM {
		t.Errorf("write to the read-only image: %v, want EPERM", err)
	}
}
