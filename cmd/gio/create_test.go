package main

// gio's create against qemu-img create: the same bytes (qed, qcow), or
// the same bytes but for the fields qemu-img draws at random or from the
// clock (vdi, vpc). The differential cases of these formats are recorded
// (testdata/formats).

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCreateFormats checks that gio's create makes the bytes qemu-img
// create makes.
func TestCreateFormats(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed")
	}
	for _, c := range []struct{ format, opts, size string }{
		{"qed", "", "1M"}, {"qed", "cluster_size=4k,table_size=1", "3M"}, {"qed", "cluster_size=64k,table_size=16", "1G"},
		{"qed", "backing_file=b.raw,backing_fmt=raw", "1M"}, {"qed", "", "1000"},
		{"qcow", "", "1M"}, {"qcow", "", "1000"}, {"qcow", "", "100G"}, {"qcow", "backing_file=b.raw,backing_fmt=raw", "3M"},
	} {
		t.Run(c.format+"-"+c.opts+"-"+c.size, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "b.raw"), make([]byte, 4096), 0o644); err != nil {
				t.Fatal(err)
			}
			createBoth(t, dir, c.format, c.opts, c.size)
			if off, err := firstDifference(filepath.Join(dir, "q"), filepath.Join(dir, "g")); err != nil || off >= 0 {
				t.Errorf("images differ at byte %d (%v)", off, err)
			}
		})
	}
}

// randomFields are the byte ranges qemu-img create fills at random or
// from the clock, per format: gio's create fills them deterministically.
var randomFields = map[string][][2]int{
	"vdi": {{0x188, 0x1a8}}, // uuid_image, uuid_last_snap
	// The footer's timestamp, checksum and UUID, at the start of a
	// dynamic image; a fixed image's footer is its last 512 bytes.
	"vpc": {{24, 28}, {64, 84}},
}

// TestCreateFormats2 checks that gio's create makes what qemu-img
// create makes, random fields aside.
func TestCreateFormats2(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed")
	}
	for _, c := range []struct{ format, opts, size string }{
		{"vdi", "", "1M"}, {"vdi", "", "1000"}, {"vdi", "", "0"}, {"vdi", "static=on", "3M"},
		{"vdi", "static=on", "1537k"}, {"vdi", "", "300M"},
		{"vpc", "", "1M"}, {"vpc", "", "10M"}, {"vpc", "", "0"}, {"vpc", "", "1000"}, {"vpc", "", "127G"},
		{"vpc", "force_size=on", "10M"}, {"vpc", "subformat=fixed", "5M"}, {"vpc", "subformat=fixed,force_size=on", "3M"},
		{"vpc", "", "2040G"},
	} {
		t.Run(c.format+"-"+c.opts+"-"+c.size, func(t *testing.T) {
			dir := t.TempDir()
			createBoth(t, dir, c.format, c.opts, c.size)
			qm, err1 := mapFile(filepath.Join(dir, "q"))
			gm, err2 := mapFile(filepath.Join(dir, "g"))
			if err1 != nil || err2 != nil {
				t.Fatal(err1, err2)
			}
			defer qm.unmap()
			defer gm.unmap()
			qb, gb := qm.b, gm.b // gb's copy-on-write pages take qb's random fields
			if len(qb) != len(gb) {
				t.Fatalf("lengths differ: qemu-img %d, gio %d", len(qb), len(gb))
			}
			for _, r := range randomFields[c.format] {
				copy(gb[r[0]:r[1]], qb[r[0]:r[1]])
				if c.format == "vpc" && len(qb) >= 512 {
					e := len(qb) - 512
					copy(gb[e+r[0]:e+r[1]], qb[e+r[0]:e+r[1]])
				}
			}
			if i := firstMismatch(qb, gb); i >= 0 {
				t.Fatalf("images differ at byte %#x: qemu-img %#x, gio %#x", i, qb[i], gb[i])
			}
			if b, err := exec.Command("qemu-img", "check", "-f", c.format, filepath.Join(dir, "g")).CombinedOutput(); err != nil && !strings.Contains(string(b), "does not support checks") {
				t.Errorf("qemu-img check: %v\n%s", err, b)
			}
		})
	}
}

// createBoth makes dir/q with qemu-img create and dir/g with gio's.
func createBoth(t *testing.T, dir, format, opts, size string) {
	t.Helper()
	q := []string{"create", "-q", "-f", format}
	g := "create -f " + format
	if opts != "" {
		q = append(q, "-o", opts)
		g += " -o " + opts
	}
	mustRun(t, "qemu-img", append(q, filepath.Join(dir, "q"), size)...)
	r := runIn(t, gioBin, dir, cmds(g+" ./g "+size), nil)
	if r.rc != 0 || r.out != "" {
		t.Fatalf("gio create: rc %d\n%s", r.rc, r.out)
	}
}
