package main

// Differential tests for the image formats beyond raw and qcow2 (issue
// 16): the same command sequences through qemu-io and gio on copies of
// one qemu-img-made image give the same output, the same image bytes,
// and images qemu-img check finds clean and qemu-img compare identical.

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// formatCase is one sequence on one image made by qemu-img create.
type formatCase struct {
	name   string
	format string
	create []string // qemu-img create arguments after -f FORMAT, image "img" implied
	base   []string // qemu-img create arguments of a backing image "base" (raw data written by qemu-io)
	prep   []string // qemu-io commands run on the image first (data gio must read)
	cmds   []string
	check  bool // qemu-img check supports the format
	// anyBytes: the images may differ in bytes (compressed clusters:
	// Go's deflate is not zlib's) but not in content.
	anyBytes bool
	// unordered: concurrent allocating writes complete in another order
	// than in qemu-io (the scheduler's model, qcow2's too), so lines are
	// compared sorted and the layouts may differ.
	unordered bool
}

var formatCases = []formatCase{
	{name: "qed-basic", format: "qed", create: []string{"-o", "cluster_size=4k", "4M"}, check: true, cmds: []string{
		"write -P 0xaa 0 4k", "write -P 0xbb 6k 3k", "write -P 0xcc 1M 64k",
		"read -P 0xaa 0 4k", "read -P 0 4k 2k", "read -P 0xbb 6k 3k", "read -v 9k 32",
		"map", "alloc 0 4M", "alloc 4k 8k",
		"write -z 1M 8k", "write -z 1056768 1k", "read -P 0 1M 9k", "read -P 0xcc 1057792 3k",
		"map", "alloc 1M 64k", "discard 0 64k", "read -P 0xaa 0 4k",
		"aio_write -P 0x11 2M 4k", "aio_write -P 0x22 2099200 4k", "aio_flush", "read -P 0x11 2M 2k", "read -P 0x22 2099200 4k",
		"write -z 3M 128k", "map", "truncate 8M", "length", "write -P 0xdd 7M 4k", "map", "info",
	}},
	{name: "qed-default-table", format: "qed", create: []string{"16M"}, check: true, cmds: []string{
		"write -P 1 0 1k", "write -P 2 15M 1M", "write -P 3 64k 192k", "map", "alloc 0 16M",
		"read -P 1 0 1k", "read -P 2 15M 1M", "read -P 3 64k 192k", "write -z 0 64k", "map",
		"writev -P 4 300k 512 1k 2k", "readv -P 4 300k 512 1k 2k",
	}},
	{name: "qed-aio-same-l2", format: "qed", create: []string{"-o", "cluster_size=4k", "4M"}, check: true, unordered: true,
		// Requests loading the same L2 table at once (iotest 011): none
		// may lose another's L2 update (a leak, then data in the wrong
		// place).
		prep: []string{"write -P 1 0 4k"}, cmds: []string{
			"aio_write -P 2 8k 4k", "aio_write -P 3 16k 4k", "aio_write -P 4 24k 6k", "aio_write -P 5 40k 2k", "aio_flush",
			"read -P 2 8k 4k", "read -P 3 16k 4k", "read -P 4 24k 6k", "read -P 5 40k 2k", "map",
		}},
	{name: "qed-backing", format: "qed", base: []string{"-f", "raw", "base", "2M"},
		create: []string{"-o", "cluster_size=4k", "-b", "base", "-F", "raw", "2M"}, check: true, cmds: []string{
			"read -P 0x5a 0 2M", "map", "alloc 0 2M",
			"write -P 0xaa 1k 1k", "read -P 0x5a 0 1k", "read -P 0xaa 1k 1k", "read -P 0x5a 2k 2k",
			"write -z 8k 4k", "read -P 0 8k 4k", "write -z 13k 2k", "read -P 0x5a 12k 1k", "read -P 0 13k 2k",
			"map", "alloc 0 64k", "write -P 0xbb 1048064 1k", "read -P 0xbb 1048064 1k", "map",
		}},
	{name: "qcow-basic", format: "qcow", create: []string{"4M"}, anyBytes: true, cmds: []string{
		"write -P 0xaa 0 4k", "write -P 0xbb 6k 3k", "write -P 0xcc 2097664 64k",
		"read -P 0xaa 0 4k", "read -P 0 4k 2k", "read -P 0xbb 6k 3k", "read -v 9k 32",
		"map", "alloc 0 4M", "alloc 4k 8k", "write -z 1M 8k", "read -P 0 1M 8k", "discard 0 4k", "map",
		"aio_write -P 0x11 3M 4k", "aio_write -P 0x22 3147776 4k", "aio_flush", "read -P 0x11 3M 2k", "read -P 0x22 3147776 4k",
		"write -c -P 0x33 1114112 4k", "read -P 0x33 1114112 4k", "write -P 0x44 1115136 512", "read -P 0x33 1114112 1k",
		"read -P 0x44 1115136 512", "read -P 0x33 1115648 2560", "write -c 4190208 4k", "map", "info",
	}},
	{name: "qcow-compressed-read", format: "qcow", create: []string{"1M"},
		prep: []string{"write -c -P 0x33 64k 4k", "write -c 12k 4k", "write -c -P 0x44 1044480 4k", "write -P 0x55 512k 4k"}, cmds: []string{
			"read -P 0x33 64k 4k", "read -P 0 12k 4k", "read -P 0x44 1044480 4k", "read -v 65530 12", "map", "alloc 0 1M",
			"write -P 0x66 66k 1k", "read -P 0x33 64k 2k", "read -P 0x66 66k 1k", "read -P 0x33 67k 1k", "map",
		}},
	{name: "qcow-backing", format: "qcow", base: []string{"-f", "raw", "base", "2M"},
		create: []string{"-b", "base", "-F", "raw", "2M"}, cmds: []string{
			"read -P 0x5a 0 2M", "map", "alloc 0 2M",
			"write -P 0xaa 1k 1k", "read -P 0x5a 0 1k", "read -P 0xaa 1k 1k", "read -P 0x5a 2k 2k",
			"write -P 0xbb 1048676 1k", "read -P 0 1M 100", "read -P 0xbb 1048676 1k", "read -P 0 1049700 412",
			"write -z 8k 4k", "read -P 0 8k 4k", "map", "alloc 0 64k",
		}},
}

func TestFormatsDifferential(t *testing.T) {
	for _, tool := range []string{"qemu-io", "qemu-img"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	for _, c := range formatCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var out [2]string
			var img [2]string
			for i, bin := range []string{"qemu-io", gioBin} {
				dir := t.TempDir()
				if c.base != nil {
					mustRun(t, "qemu-img", append([]string{"create", "-q"}, prefixDir(dir, c.base)...)...)
					mustRun(t, "qemu-io", "-f", "raw", "-c", "write -P 0x5a 0 2M", filepath.Join(dir, "base"))
				}
				img[i] = filepath.Join(dir, "img")
				mustRun(t, "qemu-img", append([]string{"create", "-q", "-f", c.format, img[i]}, c.create...)...)
				if c.prep != nil {
					mustRun(t, "qemu-io", append(withArgs([]string{"-f", c.format}, "", c.prep...), img[i])...)
				}
				r := runIn(t, bin, dir, withArgs([]string{"-f", c.format}, "img", c.cmds...), nil)
				out[i] = filterQemuIO(r.out)
				if c.unordered {
					lines := strings.Split(out[i], "\n")
					slices.Sort(lines)
					out[i] = strings.Join(lines, "\n")
				}
			}
			if out[0] != out[1] {
				t.Errorf("output differs\nqemu-io:\n%s\ngio:\n%s", out[0], out[1])
			}
			if off, err := firstDifference(img[0], img[1]); !c.anyBytes && !c.unordered && (err != nil || off >= 0) {
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

// prefixDir makes the image name of a qemu-img create argument list (the
// first argument not an option or its value) a path in dir.
func prefixDir(dir string, args []string) []string {
	a := append([]string(nil), args...)
	for i := 0; i < len(a); i++ {
		if strings.HasPrefix(a[i], "-") {
			i++
			continue
		}
		a[i] = filepath.Join(dir, a[i])
		break
	}
	return a
}

// TestCreateFormats checks that gio's create makes the bytes qemu-img
// create makes.
func TestCreateFormats(t *testing.T) {
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
			if off, err := firstDifference(filepath.Join(dir, "q"), filepath.Join(dir, "g")); err != nil || off >= 0 {
				t.Errorf("images differ at byte %d (%v)", off, err)
			}
		})
	}
}

// TestFormatsOpenErrors corrupts header fields of qemu-img-made images
// and checks that gio refuses (or opens) each as qemu-io does, with its
// message.
func TestFormatsOpenErrors(t *testing.T) {
	for _, tool := range []string{"qemu-io", "qemu-img"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	for _, c := range []struct {
		format string
		off    int64
		patch  string
	}{
		{"qed", 0, "X"}, {"qed", 4, "\x00\x10\x00\x01"}, {"qed", 8, "\x03"}, {"qed", 8, "\x01"}, {"qed", 16, "\x10"},
		{"qed", 16, "\x01"}, {"qed", 16, "\x05"}, {"qed", 40, "\x00\x00\x00\x00\x00\x00\x10"}, {"qed", 48, "\x01\x02"},
		{"qed", 12, "\xff\xff\x00\x00"}, {"qed", 16, "\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x40\x00\x00\x00\x00\xf0\x00\x00"},
		{"qcow", 7, "\x02"}, {"qcow", 7, "\x03"}, {"qcow", 7, "\x07"}, {"qcow", 32, "\x08"}, {"qcow", 33, "\x05"},
		{"qcow", 36, "\x00\x00\x00\x02"}, {"qcow", 36, "\x00\x00\x00\x01"}, {"qcow", 24, "\x00\x00\x00\x00\x00\x00\x00\x01"},
		{"qcow", 16, "\x00\x00\x04\x00"}, {"qcow", 8, "\x00\x00\x00\x00\x00\x00\x00\x30"}, {"qcow", 24, "\xff\xff\xff\xff\xff\xff\xff\xff"},
	} {
		t.Run(fmt.Sprintf("%s-%d-%x", c.format, c.off, c.patch), func(t *testing.T) {
			t.Parallel()
			var out [2]string
			for i, bin := range []string{"qemu-io", gioBin} {
				dir := t.TempDir()
				img := filepath.Join(dir, "img")
				mustRun(t, "qemu-img", "create", "-q", "-f", c.format, img, "1M")
				f, err := os.OpenFile(img, os.O_WRONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				_, err = f.WriteAt([]byte(c.patch), c.off)
				f.Close()
				if err != nil {
					t.Fatal(err)
				}
				r := runIn(t, bin, dir, withArgs([]string{"-f", c.format}, "img", "read 0 4k"), nil)
				out[i] = fmt.Sprintf("rc %d\n%s", r.rc, filterQemuIO(r.out))
			}
			if out[0] != out[1] {
				t.Errorf("qemu-io:\n%s\ngio:\n%s", out[0], out[1])
			}
		})
	}
}

// TestQEDNeedCheckRepair opens a QED image marked as needing a check,
// with an L1 entry and an L2 entry pointing past the end of the file: a
// writable open repairs both and clears the bit, a read-only one leaves
// the image alone, each as qemu-io does (same output, same bytes).
func TestQEDNeedCheckRepair(t *testing.T) {
	for _, tool := range []string{"qemu-io", "qemu-img"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	for _, ro := range []bool{false, true} {
		t.Run(fmt.Sprint("readonly=", ro), func(t *testing.T) {
			var out, img [2]string
			for i, bin := range []string{"qemu-io", gioBin} {
				dir := t.TempDir()
				img[i] = filepath.Join(dir, "img")
				mustRun(t, "qemu-img", "create", "-q", "-f", "qed", "-o", "cluster_size=4k", img[i], "64M")
				mustRun(t, "qemu-io", "-f", "qed", "-c", "write -P 0x11 0 8k", "-c", "write -P 0x22 32M 4k", img[i])
				// Layout: header, L1 at 4k (16k), data at 20k, L2 at 28k,
				// data at 44k, the second L2 at 48k.
				f, err := os.OpenFile(img[i], os.O_WRONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				for _, p := range []struct {
					off int64
					b   []byte
				}{{16, []byte{3}}, {28<<10 + 8, []byte{0, 0, 0, 1}}, {4<<10 + 8*3, []byte{0, 0, 0, 2}}} {
					if _, err := f.WriteAt(p.b, p.off); err != nil {
						t.Fatal(err)
					}
				}
				f.Close()
				args := []string{"-f", "qed"}
				if ro {
					args = append(args, "-r")
				}
				r := runIn(t, bin, dir, withArgs(args, "img", "read -P 0x11 0 4k", "read -P 0 4k 4k", "read -P 0x22 32M 4k", "map"), nil)
				out[i] = filterQemuIO(r.out)
			}
			if out[0] != out[1] {
				t.Errorf("qemu-io:\n%s\ngio:\n%s", out[0], out[1])
			}
			if off, err := firstDifference(img[0], img[1]); err != nil || off >= 0 {
				t.Errorf("images differ at byte %d (%v)", off, err)
			}
			if !ro {
				// The cluster the dropped L2 entry pointed to leaks (exit
				// status 3); anything worse is a failure.
				b, err := exec.Command("qemu-img", "check", "-f", "qed", img[1]).CombinedOutput()
				var ee *exec.ExitError
				if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 3) {
					t.Errorf("qemu-img check: %v\n%s", err, b)
				}
			}
		})
	}
}

// TestFormatsBlkdebugEvents runs write and read sequences on images
// under blkdebug, failing the n-th occurrence of each debug event the
// driver fires: the same event at the same point of the request gives
// qemu-io's output and image bytes.
func TestFormatsBlkdebugEvents(t *testing.T) {
	for _, tool := range []string{"qemu-io", "qemu-img"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	seq := []string{"write -P 0xaa 1k 2k", "write -P 0xbb 5M 4k", "write -P 0xcc 0 1k", "write -z 64k 64k",
		"read -P 0xaa 1k 2k", "read -P 0xbb 5M 4k", "read 8M 4k", "write -c 12k 4k", "read 12k 4k", "map"}
	for _, format := range []string{"qed", "qcow"} {
		for _, ev := range []string{"l1_update", "l2_load", "l2_update", "l2_update_compressed", "read_aio", "write_aio",
			"read_backing_aio", "cow_write", "cluster_alloc", "read_compressed", "write_compressed"} {
			for _, once := range []string{"on", "off"} {
				t.Run(format+"-"+ev+"-once="+once, func(t *testing.T) {
					t.Parallel()
					var out, img [2]string
					for i, bin := range []string{"qemu-io", gioBin} {
						dir := t.TempDir()
						mustRun(t, "qemu-img", "create", "-q", "-f", "raw", filepath.Join(dir, "base"), "16M")
						mustRun(t, "qemu-io", "-f", "raw", "-c", "write -P 0x5a 0 16M", filepath.Join(dir, "base"))
						img[i] = filepath.Join(dir, "img")
						opts := []string{"create", "-q", "-f", format, "-b", "base", "-F", "raw"}
						if format == "qed" {
							opts = append(opts, "-o", "cluster_size=4k")
						}
						mustRun(t, "qemu-img", append(opts, img[i], "16M")...)
						conf := "[inject-error]\nevent = \"" + ev + "\"\nerrno = \"5\"\nonce = \"" + once + "\"\n"
						if err := os.WriteFile(filepath.Join(dir, "bd.conf"), []byte(conf), 0o644); err != nil {
							t.Fatal(err)
						}
						r := runIn(t, bin, dir, withArgs([]string{"-f", format}, "blkdebug:bd.conf:img", seq...), nil)
						out[i] = filterQemuIO(r.out)
					}
					if out[0] != out[1] {
						t.Errorf("qemu-io:\n%s\ngio:\n%s", out[0], out[1])
					}
					if format != "qcow" || !strings.Contains(out[0], "wrote 4096/4096 bytes at offset 12288") {
						if off, err := firstDifference(img[0], img[1]); err != nil || off >= 0 {
							t.Errorf("images differ at byte %d (%v)", off, err)
						}
					}
				})
			}
		}
	}
}
