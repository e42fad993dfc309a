package vmdk_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"gio/blk"
	"gio/blk/drivers/file"
	"gio/blk/drivers/vmdk"
	"gio/blk/qdict"
)

var cidLine = regexp.MustCompile(`(?m)^CID=[0-9a-f]+$`)

// TestCreateLikeQemuImg makes each subformat with gio's create and with
// qemu-img create in two directories: the same files, byte for byte but
// for the CID (whose digits vary in number), and flat extents of the
// same (sparse) size. With "backing_file" in the options, both
// directories first get the same base.vmdk (made by qemu-img), whose
// CID the images record. Skips without qemu-img.
func TestCreateLikeQemuImg(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not on PATH")
	}
	for _, c := range []struct {
		opts string
		size int64
	}{
		{"subformat=monolithicSparse", 3000 << 10},
		{"subformat=monolithicSparse,zeroed_grain=on,adapter_type=lsilogic", 70 << 20},
		{"subformat=streamOptimized", 1 << 20},
		{"subformat=monolithicFlat", 3000<<10 + 100},
		{"subformat=monolithicFlat,adapter_type=buslogic,hwversion=7", 1 << 30},
		{"subformat=twoGbMaxExtentSparse", 1 << 20},
		{"subformat=twoGbMaxExtentSparse,zeroed_grain=on", 4200 << 20},
		{"subformat=twoGbMaxExtentFlat", 2048 << 20},
		{"subformat=twoGbMaxExtentFlat", 5000 << 20},
		{"backing_file=base.vmdk,backing_fmt=vmdk", 4 << 20},
		{"subformat=streamOptimized,backing_file=base.vmdk,backing_fmt=vmdk", 1 << 20},
		{"subformat=twoGbMaxExtentSparse,zeroed_grain=on,backing_file=base.vmdk,backing_fmt=vmdk", 2100 << 20},
	} {
		t.Run(fmt.Sprintf("%s-%d", c.opts, c.size), func(t *testing.T) {
			qdir, gdir := t.TempDir(), t.TempDir()
			if strings.Contains(c.opts, "backing_file") {
				b := exec.Command("qemu-img", "create", "-q", "-f", "vmdk", "base.vmdk", "2M")
				b.Dir = qdir
				if out, err := b.CombinedOutput(); err != nil {
					t.Fatalf("qemu-img: %v\n%s", err, out)
				}
				base, err := os.ReadFile(filepath.Join(qdir, "base.vmdk"))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(gdir, "base.vmdk"), base, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			q := exec.Command("qemu-img", "create", "-q", "-f", "vmdk", "-o", c.opts, "img.vmdk", strconv.FormatInt(c.size, 10))
			q.Dir = qdir
			if out, err := q.CombinedOutput(); err != nil {
				t.Fatalf("qemu-img: %v\n%s", err, out)
			}
			img := filepath.Join(gdir, "img.vmdk")
			if err := os.WriteFile(img, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			o := qdict.New()
			for _, kv := range strings.Split(c.opts, ",") {
				k, v, _ := strings.Cut(kv, "=")
				o.Set(k, v)
			}
			reg := blk.NewRegistry(file.Driver, vmdk.Driver)
			if err := reg.Create("vmdk", img, c.size, o, blk.NewLoop(blk.NewVirtualClock())); err != nil {
				t.Fatal(err)
			}
			names := func(dir string) []string {
				es, err := os.ReadDir(dir)
				if err != nil {
					t.Fatal(err)
				}
				var n []string
				for _, e := range es {
					n = append(n, e.Name())
				}
				sort.Strings(n)
				return n
			}
			qn, gn := names(qdir), names(gdir)
			if len(qn) != len(gn) {
				t.Fatalf("files: qemu-img %v, gio %v", qn, gn)
			}
			for i, name := range qn {
				if gn[i] != name {
					t.Fatalf("files: qemu-img %v, gio %v", qn, gn)
				}
				qs, _ := os.Stat(filepath.Join(qdir, name))
				gs, _ := os.Stat(filepath.Join(gdir, name))
				if qs.Size() > 64<<20 {
					// A flat extent: a hole of that size.
					if qs.Size() != gs.Size() {
						t.Errorf("%s: size %d, qemu-img's %d", name, gs.Size(), qs.Size())
					}
					continue
				}
				qb, _ := os.ReadFile(filepath.Join(qdir, name))
				gb, _ := os.ReadFile(filepath.Join(gdir, name))
				if !sameButCID(qb, gb) {
					t.Errorf("%s differs from qemu-img's", name)
				}
			}
		})
	}
}

// sameButCID compares two vmdk files but for the CID: a descriptor file
// as text, a sparse extent byte for byte outside its descriptor area
// (sectors 1-20), which is compared as text up to its NUL padding.
func sameButCID(a, b []byte) bool {
	mask := func(b []byte) []byte { return cidLine.ReplaceAll(bytes.TrimRight(b, "\x00"), []byte("CID=xxxxxxxx")) }
	const descStart, descEnd = 0x200, 21 * 0x200
	if !bytes.HasPrefix(a, []byte("KDMV")) || len(a) < descEnd || len(b) < descEnd {
		return bytes.Equal(mask(a), mask(b))
	}
	return bytes.Equal(a[:descStart], b[:descStart]) && bytes.Equal(a[descEnd:], b[descEnd:]) &&
		bytes.Equal(mask(a[descStart:descEnd]), mask(b[descStart:descEnd]))
}
