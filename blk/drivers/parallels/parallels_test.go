package parallels_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"gio/blk"
	"gio/blk/blktest"
	"gio/blk/drivers/file"
	"gio/blk/drivers/parallels"
	"gio/blk/qdict"
)

// TestConformance runs blk's driver suite on images made by create,
// with QEMU's default cluster size and a small one.
func TestConformance(t *testing.T) {
	for _, cl := range []string{"", "4k"} {
		t.Run("cluster"+cl, func(t *testing.T) {
			blktest.Run(t, func(t *testing.T) *blk.Backend {
				reg := blk.NewRegistry(file.Driver, parallels.Driver)
				path := filepath.Join(t.TempDir(), "img")
				if err := os.WriteFile(path, nil, 0o644); err != nil {
					t.Fatal(err)
				}
				opts := qdict.New()
				if cl != "" {
					opts.Set("cluster_size", cl)
				}
				loop := blk.NewLoop(blk.NewVirtualClock())
				if err := reg.Create("parallels", path, 5<<20, opts, loop); err != nil {
					t.Fatal(err)
				}
				b, err := reg.Open(blk.Spec{Filename: path, Format: "parallels"}, loop)
				if err != nil {
					t.Fatal(err)
				}
				return b
			}, blktest.SectorSizes(), blktest.FixedLength())
		})
	}
}

// FuzzOpen feeds corrupted headers and BATs to the driver and runs a few
// requests on each.
func FuzzOpen(f *testing.F) {
	reg := blk.NewRegistry(file.Driver, parallels.Driver)
	write := func(co *blk.Co, b *blk.Backend) error {
		if err := b.PWrite(co, 1000, bytes.Repeat([]byte{0xaa}, 5000), 0); err != nil {
			return err
		}
		return b.PWrite(co, 70<<10, bytes.Repeat([]byte{0xbb}, 3000), 0)
	}
	small := qdict.New()
	small.Set("cluster_size", "4k")
	for _, s := range [][]byte{
		blktest.CreateSeed(f, reg, "parallels", 256<<10, small, write),
		blktest.CreateSeed(f, reg, "parallels", 1000, small, nil),
	} {
		f.Add(s, []byte{0, 1, 2, 3, 4, 5, 6})
	}
	f.Fuzz(func(t *testing.T, img, ops []byte) { blktest.FuzzFormat(t, parallels.Driver, img, ops) })
}

// TestCreateMatchesQemuImg compares create with qemu-img create byte
// for byte (QEMU's parallels images have nothing random in them).
func TestCreateMatchesQemuImg(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("no qemu-img")
	}
	for _, c := range []struct {
		size    int64
		cluster string
	}{{1 << 20, ""}, {5 << 20, "64k"}, {1000, "512"}, {3<<30 + 512, ""}, {100 << 20, "4k"}, {0, ""}} {
		dir := t.TempDir()
		want, got := filepath.Join(dir, "want"), filepath.Join(dir, "got")
		args := []string{"create", "-q", "-f", "parallels"}
		opts := qdict.New()
		if c.cluster != "" {
			args = append(args, "-o", "cluster_size="+c.cluster)
			opts.Set("cluster_size", c.cluster)
		}
		if out, err := exec.Command("qemu-img", append(args, want, strconv.FormatInt(c.size, 10))...).CombinedOutput(); err != nil {
			t.Fatalf("qemu-img: %v: %s", err, out)
		}
		if err := os.WriteFile(got, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		reg := blk.NewRegistry(file.Driver, parallels.Driver)
		if err := reg.Create("parallels", got, c.size, opts, blk.NewLoop(blk.NewVirtualClock())); err != nil {
			t.Fatal(err)
		}
		w, _ := os.ReadFile(want)
		g, _ := os.ReadFile(got)
		if !bytes.Equal(w, g) {
			t.Errorf("size %d cluster %q: gio's image (%d bytes) differs from qemu-img's (%d bytes)", c.size, c.cluster, len(g), len(w))
		}
	}
}
