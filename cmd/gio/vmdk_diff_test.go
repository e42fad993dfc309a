package main

// Differential tests of the vmdk driver: the same qemu-img create in two
// directories, the same qemu-io commands run by qemu-io in one and gio in
// the other; then the outputs are equal, every file is equal byte for
// byte but for the CID (random in QEMU, at creation and on the first
// write), qemu-img check finds gio's image clean and qemu-img compare
// finds the two identical.

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

var vmdkCID = regexp.MustCompile(`(?m)^(parent)?CID=[0-9a-f]+$`)

func TestVmdkDiff(t *testing.T) {
	for _, tool := range []string{"qemu-io", "qemu-img"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not on PATH", tool)
		}
	}
	mixed := []string{
		"write -P 0x11 0 64k", "write -P 0x22 100k 10k", "write -z 192k 64k",
		"write -z 300k 1k", "write -z -u 1M 128k", "read -P 0x11 0 64k",
		"read -P 0x22 100k 10k", "read -P 0 64k 36k", "discard 0 64k",
		"write -c 2M 64k", "write -P 0x33 4095k 1k", "map", "alloc 0 4M",
		"read -v 100k 512", "write -z 0 64k", "read -P 0 0 64k", "map",
		"write -P 0x44 3M 512", "aio_write -P 0x55 3M 64k", "aio_write -P 0x66 3200k 4k",
		"aio_flush", "read -P 0x55 3M 64k", "map",
	}
	small := []string{
		"write -P 0x11 0 64k", "write -P 0x22 100k 10k", "write -z 192k 64k",
		"write -z -u 1M 128k", "read -P 0x22 100k 10k", "write -c 2M 64k",
		"map", "alloc 0 4M", "read -P 0 64k 36k", "discard 0 128k", "map",
	}
	// streamOptimized: whole grains compressed in the order written,
	// partial ones refused (EINVAL, after the grain was allocated),
	// allocated ones refused (EIO), zero writes as compressed zeroes, the
	// end-of-stream write of 0 bytes; the disk's last grain may be short.
	stream := []string{
		"write -c -P 1 0 64k", "write -P 2 64k 64k", "write -P 3 128k 4k", "write -c -P 4 0 64k",
		"write -c 192k 0", "read -P 1 0 64k", "read -P 2 64k 64k", "map", "alloc 0 1M",
		"write -z 256k 64k", "write -z 320k 4k", "write -P 5 960k 40k", "write -P 6 384k 128k",
		"aio_write -P 7 512k 64k", "aio_write -P 8 576k 64k", "aio_flush", "read -P 6 384k 128k",
		"read -P 7 512k 64k", "read -P 0 256k 64k", "read -P 5 960k 40k", "map", "alloc 0 1000k",
	}
	// Across the 2 GiB extent boundary of the twoGbMaxExtent formats.
	split := []string{"write -P 0x33 2047M 2M", "read -P 0x33 2047M 2M", "write -z 2046M 4M", "map", "alloc 2040M 20M"}
	for _, c := range []struct {
		name, opts, size string
		steps            [][]string
		base             bool // img.vmdk has a backing file base.vmdk with data
		// deflated: compressed grains, whose bytes differ (Go's deflate
		// is not zlib's): files are compared by qemu-img compare only.
		deflated bool
	}{
		{"plain", "zeroed_grain=off", "4M", [][]string{mixed, {"map", "read -P 0 0 4M"}}, false, false},
		{"zeroed", "zeroed_grain=on", "4M", [][]string{mixed, {"map", "write -z 64k 128k", "map"}}, false, false},
		{"odd-size", "zeroed_grain=on", "3000k", [][]string{{"write -P 1 2990k 10k", "write -z 2944k 56k", "map", "read -P 0 2944k 46k"}}, false, false},
		{"bigger-tables", "", "70M", [][]string{{"write -P 7 0 1k", "write -P 8 33M 96k", "write -P 9 69M 1M", "map", "alloc 0 70M"}}, false, false},
		{"monolithicFlat", "subformat=monolithicFlat", "4M", [][]string{small, {"read -P 0x11 0 64k", "map"}}, false, false},
		{"twoGbMaxExtentSparse", "subformat=twoGbMaxExtentSparse", "2100M", [][]string{small, split, {"map"}}, false, false},
		{"twoGbMaxExtentFlat", "subformat=twoGbMaxExtentFlat", "2100M", [][]string{small, split}, false, false},
		{"backing", "", "4M", [][]string{{"read -P 0x77 0 1M", "write -P 0x11 4k 8k", "write -z 1M 64k", "read -P 0x77 0 4k", "read -P 0x11 4k 8k", "read -P 0x77 12k 52k", "map", "read -P 0 3M 64k"}}, true, false},
		{"streamOptimized", "subformat=streamOptimized", "1000k", [][]string{stream, {"map", "read -P 4 0 0", "read -P 2 64k 64k"}}, false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			qdir, gdir := t.TempDir(), t.TempDir()
			args := []string{"create", "-q", "-f", "vmdk"}
			if c.opts != "" {
				args = append(args, "-o", c.opts)
			}
			// Made in each directory (flat extents are large sparse
			// files): the images differ only in their CIDs.
			for _, dir := range []string{qdir, gdir} {
				var cmds [][]string
				if c.base {
					cmds = append(cmds,
						[]string{"qemu-img", "create", "-q", "-f", "vmdk", "base.vmdk", "2M"},
						[]string{"qemu-io", "-c", "write -P 0x77 0 2M", "base.vmdk"},
						append(append([]string{"qemu-img"}, args[:len(args):len(args)]...), "-b", "base.vmdk", "-F", "vmdk", "img.vmdk", c.size))
				} else {
					cmds = append(cmds, append(append([]string{"qemu-img"}, args[:len(args):len(args)]...), "img.vmdk", c.size))
				}
				for _, argv := range cmds {
					mk := exec.Command(argv[0], argv[1:]...)
					mk.Dir = dir
					if out, err := mk.CombinedOutput(); err != nil {
						t.Fatalf("%q: %v\n%s", argv, err, out)
					}
				}
			}
			var q, g result
			for _, step := range c.steps {
				a := withArgs([]string{"-f", "vmdk"}, "img.vmdk", step...)
				q = runIn(t, "qemu-io", qdir, a, nil)
				g = runIn(t, gioBin, gdir, a, nil)
				qo, gout := filterQemuIO(q.out), filterQemuIO(g.out)
				if qo != gout {
					t.Errorf("step %q: output differs\n--- diff\n%s", step, lineDiff(qo, gout))
				}
				if q.rc != g.rc {
					t.Errorf("step %q: exit status: qemu-io %d, gio %d", step, q.rc, g.rc)
				}
			}
			if len(q.files) != len(g.files) {
				t.Errorf("files: qemu-io %v, gio %v", q.files, g.files)
			}
			for name, qp := range q.files {
				gp, ok := g.files[name]
				if !ok {
					t.Errorf("gio has no %s", name)
					continue
				}
				if c.deflated {
					continue
				}
				if d := vmdkFileDiff(t, qp, gp); d != "" {
					t.Errorf("%s differs: %s", name, d)
				}
			}
			check := exec.Command("qemu-img", "check", "img.vmdk")
			check.Dir = gdir
			if out, err := check.CombinedOutput(); err != nil {
				t.Errorf("qemu-img check on gio's image: %v\n%s", err, out)
			}
			cmp := exec.Command("qemu-img", "compare", qdir+"/img.vmdk", gdir+"/img.vmdk")
			if out, err := cmp.CombinedOutput(); err != nil {
				t.Errorf("qemu-img compare: %v\n%s", err, out)
			}
		})
	}
}

// vmdkFileDiff compares one file of two image sets: a descriptor file
// as text with the CID masked, a sparse extent byte for byte but for its
// embedded descriptor (masked the same way), a flat extent byte for byte.
func vmdkFileDiff(t *testing.T, qp, gp string) string {
	head := func(p string) []byte {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		b := make([]byte, 16)
		n, _ := f.Read(b)
		return b[:n]
	}
	switch qh := head(qp); {
	case bytes.HasPrefix(qh, []byte("KDMV")):
		qb, err := os.ReadFile(qp)
		if err != nil {
			t.Fatal(err)
		}
		gb, err := os.ReadFile(gp)
		if err != nil {
			t.Fatal(err)
		}
		return vmdkBytesDiff(qb, gb)
	case bytes.HasPrefix(qh, []byte("# Disk")):
		qb, err := os.ReadFile(qp)
		if err != nil {
			t.Fatal(err)
		}
		gb, err := os.ReadFile(gp)
		if err != nil {
			t.Fatal(err)
		}
		if len(qb) != len(gb) {
			return fmt.Sprintf("lengths: qemu-io %d, gio %d", len(qb), len(gb))
		}
		// The first write rewrites the file at its length, NUL-padded
		// after the text (whose CID may have fewer digits).
		mask := func(b []byte) string {
			return vmdkCID.ReplaceAllString(strings.TrimRight(string(b), "\x00"), "${1}CID=X")
		}
		qt, gt := mask(qb), mask(gb)
		if qt != gt {
			return lineDiff(qt, gt)
		}
		return ""
	default:
		i, err := firstDifference(qp, gp)
		if err != nil {
			t.Fatal(err)
		}
		if i >= 0 {
			return fmt.Sprintf("at byte %d", i)
		}
		return ""
	}
}

// vmdkBytesDiff compares two monolithicSparse images byte for byte but
// for the descriptor (20 sectors at 0x200), compared as text with the
// CID masked: QEMU writes a random CID of varying length.
func vmdkBytesDiff(q, g []byte) string {
	const lo, hi = 0x200, 0x200 + 20*512
	if len(q) != len(g) {
		return fmt.Sprintf("lengths: qemu-io %d, gio %d", len(q), len(g))
	}
	if len(q) < hi {
		return "image shorter than its descriptor"
	}
	text := func(b []byte) string {
		b = b[lo:hi]
		if i := bytes.IndexByte(b, 0); i >= 0 {
			b = b[:i]
		}
		return vmdkCID.ReplaceAllString(string(b), "${1}CID=X")
	}
	if qt, gt := text(q), text(g); qt != gt {
		return "descriptor:\n" + lineDiff(qt, gt)
	}
	if i := firstMismatch(append(q[:lo:lo], q[hi:]...), append(g[:lo:lo], g[hi:]...)); i >= 0 {
		if i >= lo {
			i += hi - lo
		}
		return fmt.Sprintf("at byte %d", i)
	}
	return ""
}
