package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestMapStatusAgainstQemuImg compares gio's "map -s" and
// "map --output=json" with "qemu-img map" on sparse raw files: holes at
// the start, middle and end, sizes that are not multiples of 512 (the
// partial last sector is a separate zero extent), fully allocated files.
func TestMapStatusAgainstQemuImg(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed (apt-get install qemu-utils)")
	}
	type write struct{ off, n int64 }
	cases := []struct {
		name   string
		size   int64
		writes []write
		dense  bool
	}{
		{"empty-sparse", 1 << 20, nil, false},
		{"hole-start", 1 << 20, []write{{512 << 10, 512 << 10}}, false},
		{"hole-middle", 1 << 20, []write{{0, 64 << 10}, {960 << 10, 64 << 10}}, false},
		{"hole-end", 1 << 20, []write{{0, 4096}}, false},
		{"many-extents", 4 << 20, []write{{4096, 4096}, {16384, 8192}, {1 << 20, 4096}, {3 << 20, 12288}}, false},
		{"odd-size-data-at-end", 1048000, []write{{1047990, 3}}, false},
		{"odd-size-1000", 1000, []write{{0, 1000}}, false},
		{"odd-size-sparse", 6000, nil, false},
		{"dense", 256 << 10, nil, true},
		{"zero-length", 0, nil, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			img := filepath.Join(dir, "img.raw")
			f, err := os.Create(img)
			if err != nil {
				t.Fatal(err)
			}
			if tc.dense {
				f.Write(make([]byte, tc.size))
			}
			f.Truncate(tc.size)
			for _, w := range tc.writes {
				buf := make([]byte, w.n)
				for i := range buf {
					buf[i] = 0xcd
				}
				f.WriteAt(buf, w.off)
			}
			f.Close()
			for _, form := range []struct{ gio, qemu string }{{"map -s", "human"}, {"map --output=json", "json"}} {
				qo := runQemuImgIn(t, dir, form.qemu)
				g := runIn(t, gioBin, dir, []string{"-f", "raw", "-c", form.gio, "img.raw"}, nil)
				if g.out != qo {
					t.Errorf("%s differs from qemu-img map --output=%s:\n--- qemu-img\n%s--- gio\n%s", form.gio, form.qemu, qo, g.out)
				}
			}
		})
	}
}

func runQemuImgIn(t *testing.T, dir, form string) string {
	t.Helper()
	cmd := exec.Command("qemu-img", "map", "-f", "raw", "--output="+form, "img.raw")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-img map: %v\n%s", err, out)
	}
	return string(out)
}
