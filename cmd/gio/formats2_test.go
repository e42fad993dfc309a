package main

// Differential tests for the vdi, vpc and parallels drivers (issue 16):
// the same command sequences through qemu-io and gio on copies of one
// qemu-img-made image give the same output and the same image bytes;
// afterwards qemu-img check (where the format has it) is clean and
// qemu-img compare finds the images identical. And gio's create makes
// qemu-img create's bytes, but for the fields qemu-img draws at random
// or from the clock.

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// diffSeq is one command sequence on one image made by qemu-img create.
type diffSeq struct {
	name, format string
	create       []string // qemu-img create arguments after the image name
	cmds         []string
	check        bool // qemu-img check supports the format
}

var vdiSeqs = []diffSeq{
	{name: "vdi-dynamic", format: "vdi", create: []string{"5M"}, check: true, cmds: []string{
		"write -P 0xaa 0 4k", "write -P 0xbb 1049088 3k", "read -P 0 4k 4k", "read -P 0xbb 1049088 3k",
		"map", "alloc 0 5M", "alloc 2M 1M", "write -z 3M 64k", "read -P 0 3M 64k", "discard 0 64k", "read -P 0xaa 0 4k",
		"aio_write -P 1 4M 4k", "aio_write -P 2 4196352 4k", "aio_flush", "read -P 1 4M 2k", "read -P 2 4196352 4k",
		"writev -P 4 300k 512 1k 2k", "readv -P 4 300k 512 1k 2k", "map", "info", "truncate 8M", "length",
	}},
	{name: "vdi-static", format: "vdi", create: []string{"-o", "static=on", "3M"}, check: true, cmds: []string{
		"read -P 0 0 3M", "write -P 0xaa 1000 5000", "read -P 0xaa 1000 5000", "map", "alloc 0 3M",
		"write -z 1M 1M", "discard 2M 1M", "read -P 0 1M 2M", "map",
	}},
	{name: "vdi-odd-size", format: "vdi", create: []string{"1000"}, check: true, cmds: []string{
		"length", "write -P 7 0 1024", "read -P 7 0 1024", "map", "read 1024 1",
	}},
}

var vpcSeqs = []diffSeq{
	{name: "vpc-dynamic", format: "vpc", create: []string{"10M"}, cmds: []string{
		"length", "write -P 0xaa 0 4k", "write -P 0xbb 2096128 3k", "read -P 0 4k 4k", "read -P 0xbb 2096128 3k",
		"map", "alloc 0 10M", "alloc 4M 2M", "write -z 5M 64k", "read -P 0 5M 64k", "discard 0 64k", "read -P 0xaa 0 4k",
		"aio_write -P 1 8M 4k", "aio_write -P 2 8390656 4k", "aio_flush", "read -P 1 8M 2k", "read -P 2 8390656 4k",
		"writev -P 4 300k 512 1k 2k", "readv -P 4 300k 512 1k 2k", "map", "info", "truncate 20M",
	}},
	{name: "vpc-fixed", format: "vpc", create: []string{"-o", "subformat=fixed", "5M"}, cmds: []string{
		"length", "write -P 0xaa 1000 5000", "read -P 0xaa 1000 5000", "map", "alloc 0 5M",
		"write -z 1M 1M", "discard 2M 1M", "read -P 0 1M 1M", "map", "info",
	}},
	{name: "vpc-force-size", format: "vpc", create: []string{"-o", "force_size=on", "3M"}, cmds: []string{
		"length", "write -P 7 3141632 4k", "read -P 7 3141632 4k", "map", "alloc 0 3M",
	}},
	{name: "vpc-odd-chs", format: "vpc", create: []string{"1000k"}, cmds: []string{
		"length", "write -P 9 0 64k", "map",
	}},
}

func TestFormats2Differential(t *testing.T) {
	for _, tool := range []string{"qemu-io", "qemu-img"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	var seqs []diffSeq
	seqs = append(seqs, vdiSeqs...)
	seqs = append(seqs, vpcSeqs...)
	for _, c := range seqs {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			orig := filepath.Join(dir, "orig")
			mustRun(t, "qemu-img", append([]string{"create", "-q", "-f", c.format, orig}, c.create...)...)
			data, err := os.ReadFile(orig)
			if err != nil {
				t.Fatal(err)
			}
			var out, img [2]string
			for i, bin := range []string{"qemu-io", gioBin} {
				img[i] = filepath.Join(dir, []string{"q", "g"}[i])
				if err := os.WriteFile(img[i], data, 0o644); err != nil {
					t.Fatal(err)
				}
				r := runIn(t, bin, dir, withArgs([]string{"-f", c.format}, filepath.Base(img[i]), c.cmds...), nil)
				out[i] = filterQemuIO(r.out)
			}
			if out[0] != out[1] {
				t.Errorf("output differs\nqemu-io:\n%s\ngio:\n%s", out[0], out[1])
			}
			if off, err := firstDifference(img[0], img[1]); err != nil || off >= 0 {
				t.Errorf("images differ at byte %d (%v)", off, err)
			}
			if c.check {
				if b, err := exec.Command("qemu-img", "check", "-f", c.format, img[1]).CombinedOutput(); err != nil {
					t.Errorf("qemu-img check: %v\n%s", err, b)
				}
			}
			if b, err := exec.Command("qemu-img", "compare", "-f", c.format, "-F", c.format, img[0], img[1]).CombinedOutput(); err != nil {
				t.Errorf("qemu-img compare: %v\n%s", err, b)
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
			q := []string{"create", "-q", "-f", c.format}
			g := "create -f " + c.format
			if c.opts != "" {
				q = append(q, "-o", c.opts)
				g += " -o " + c.opts
			}
			mustRun(t, "qemu-img", append(q, filepath.Join(dir, "q"), c.size)...)
			r := runIn(t, gioBin, dir, cmds(g+" ./g "+c.size), nil)
			if r.rc != 0 || r.out != "" {
				t.Fatalf("gio create: rc %d\n%s", r.rc, r.out)
			}
			qb, err1 := os.ReadFile(filepath.Join(dir, "q"))
			gb, err2 := os.ReadFile(filepath.Join(dir, "g"))
			if err1 != nil || err2 != nil {
				t.Fatal(err1, err2)
			}
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
			for i := range qb {
				if qb[i] != gb[i] {
					t.Fatalf("images differ at byte %#x: qemu-img %#x, gio %#x", i, qb[i], gb[i])
				}
			}
			if b, err := exec.Command("qemu-img", "check", "-f", c.format, filepath.Join(dir, "g")).CombinedOutput(); err != nil && !strings.Contains(string(b), "does not support checks") {
				t.Errorf("qemu-img check: %v\n%s", err, b)
			}
		})
	}
}
