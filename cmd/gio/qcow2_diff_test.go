package main

// Differential tests of the qcow2 driver: qemu-img makes identical images
// (cluster sizes 512 B, 64 KiB and 2 MiB, with and without a backing
// file) in two directories, qemu-io and gio run the same commands on
// them, and then
//   - the outputs (after _filter_qemu_io) and exit statuses are equal,
//   - qemu-img check finds no errors and no leaks in gio's image,
//   - qemu-img compare finds both images identical in content,
//   - every file in both directories is identical byte for byte: gio
//     allocates clusters exactly where QEMU does, so even the layout is
//     the same,
//   - and gio's "map -s" and "map --output=json" print what qemu-img map
//     prints for the image.

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

// qcowCase is one qcow2 comparison.
type qcowCase struct {
	name string
	// setup commands run in both directories (argv; qemu-img, qemu-io).
	setup [][]string
	// image is the qcow2 image checked and compared (img.qcow2 if empty).
	image string
	args  []string
	// leaks allows leaked clusters (injected errors leave them).
	leaks bool
	// anyLayout compares the images' content only, not their bytes.
	anyLayout bool
	// noCheck skips qemu-img check and compare (images that cannot be
	// opened).
	noCheck bool
}

func qimg(args ...string) []string { return append([]string{"qemu-img"}, args...) }
func qio(image string, cs ...string) []string {
	return append(append([]string{"qemu-io", "-f", "qcow2"}, cmds(cs...)...), image)
}

// newImage creates img.qcow2 (and, with a backing file, base.qcow2 filled
// with a pattern, some zero and some unallocated clusters).
func newImage(cluster string, size string, backing bool, extra ...string) [][]string {
	opts := "cluster_size=" + cluster
	for _, e := range extra {
		opts += "," + e
	}
	if !backing {
		return [][]string{qimg("create", "-q", "-f", "qcow2", "-o", opts, "img.qcow2", size)}
	}
	return [][]string{
		qimg("create", "-q", "-f", "qcow2", "-o", opts, "base.qcow2", size),
		qio("base.qcow2", "write -P 0x77 0 "+size, "write -z 1M 512k", "discard 2M 1M"),
		qimg("create", "-q", "-f", "qcow2", "-o", opts, "-b", "base.qcow2", "-F", "qcow2", "img.qcow2"),
	}
}

// sequences are command sequences run on every image geometry; offsets
// are chosen to hit cluster boundaries of all three cluster sizes.
var sequences = map[string][]string{
	"basic": {
		"write -P 1 100 3000", "write -P 2 64k 64k", "write -P 3 1000k 300k",
		"read -P 1 100 3000", "read -P 2 64k 64k", "read -P 3 1000k 300k",
		"read 0 4M", "map", "alloc 0 4M", "alloc 64k 1",
	},
	"zero": {
		"write -P 1 0 3M", "write -z 4096 8192", "write -z 1M 1M", "write -z -u 2M 512k",
		"write -z 3M 1M", "write -z 3500k 1k", "write -zu 100 1000",
		"read -P 1 0 100", "read -P 0 100 1000", "read -P 0 1M 1M", "read -P 0 3M 1M",
		"map", "alloc 0 4M",
	},
	"discard": {
		"write -P 5 0 4M", "discard 0 1M", "discard 1536k 600k", "discard 3M 4096", "discard 100 1000",
		"read -P 0 0 1M", "read -P 5 1M 512k", "read 1536k 600k", "read -P 5 3M 4096",
		"map", "alloc 0 4M",
	},
	"overwrite": {
		"write -P 1 0 2M", "write -z 512k 512k", "write -P 2 600k 10k", "write -P 3 100k 1k",
		"write -P 4 2M 100", "write -P 5 2047k 2k",
		"read -P 0 512k 88k", "read -P 2 600k 10k", "read -P 0 610k 414k", "read -P 3 100k 1k",
		"read -P 1 0 100k", "read -P 4 2M 100", "read -P 5 2047k 2k", "map",
	},
	// Completions of overlapping aio_writes come in an order that varies
	// from run to run in qemu-io (its thread pool), and so can the layout
	// when requests span L2 tables: -q, and the content is compared.
	"aio": {
		"aio_write -q -P 1 0 4k", "aio_write -q -P 2 2k 4k", "aio_write -q -P 3 200k 64k", "aio_write -q -P 4 64k 128k",
		"aio_flush", "read -P 1 0 2k", "read -P 2 2k 4k", "read -P 3 200k 64k", "map",
	},
	"truncate": {
		"write -P 1 0 4M", "truncate 1500k", "length", "map", "truncate 5M", "length",
		"read -P 1 0 1500k", "read -P 0 1500k 3596k", "write -P 2 4M 1M", "map",
	},
}

func qcow2Cases() []qcowCase {
	var cs []qcowCase
	for _, cluster := range []string{"512", "64k", "2M"} {
		for _, backing := range []bool{false, true} {
			for name, seq := range sequences {
				b := "plain"
				if backing {
					b = "backing"
				}
				cs = append(cs, qcowCase{
					name:      fmt.Sprintf("%s/%s/%s", cluster, b, name),
					setup:     newImage(cluster, "4M", backing),
					args:      withArgs(nil, "img.qcow2", seq...),
					anyLayout: name == "aio",
				})
			}
		}
	}
	compressed := [][]string{
		qimg("create", "-q", "-f", "qcow2", "src.qcow2", "1M"),
		qio("src.qcow2", "write -P 5 0 300k", "write -P 6 512k 64k"),
		qimg("convert", "-c", "-O", "qcow2", "src.qcow2", "img.qcow2"),
	}
	cs = append(cs,
		qcowCase{name: "info/v3", setup: newImage("64k", "1M", false), args: withArgs(nil, "img.qcow2", "info", "length")},
		qcowCase{name: "info/v2", setup: newImage("64k", "1M", false, "compat=0.10"), args: withArgs(nil, "img.qcow2", "info")},
		qcowCase{name: "info/lazy-refcounts-flag", setup: newImage("64k", "1M", false, "lazy_refcounts=on"), args: withArgs([]string{"-r"}, "img.qcow2", "info")},
		qcowCase{name: "info/format-given", setup: newImage("4k", "1M", false), args: withArgs([]string{"-f", "qcow2"}, "img.qcow2", "info", "write 0 512")},
		qcowCase{name: "info/blkdebug-on-top", setup: newImage("512", "3M", false), args: withArgs(nil, "blkdebug::img.qcow2", "info")},
		qcowCase{name: "probe/no-warning", setup: newImage("64k", "1M", false), args: withArgs(nil, "img.qcow2", "write -P 1 0 512", "read -P 1 0 512")},
		qcowCase{name: "probe/raw-refuses-qcow2-header", setup: [][]string{qimg("create", "-q", "-f", "raw", "img.raw", "1M"), qimg("create", "-q", "-f", "qcow2", "img.qcow2", "1M"), {"sh", "-c", "head -c 512 img.qcow2 > hdr"}},
			image: "img.qcow2", args: withArgs(nil, "img.raw", "write -s hdr 0 512", "read -P 0 0 512")},
		qcowCase{name: "v2/plain", setup: newImage("64k", "4M", false, "compat=0.10"), args: withArgs(nil, "img.qcow2", sequences["zero"]...)},
		qcowCase{name: "v2/backing", setup: newImage("64k", "4M", true, "compat=0.10"), args: withArgs(nil, "img.qcow2", append(sequences["zero"], sequences["discard"]...)...)},
		qcowCase{name: "refcount-bits/1", setup: newImage("4k", "4M", false, "refcount_bits=1"), args: withArgs(nil, "img.qcow2", sequences["discard"]...)},
		qcowCase{name: "refcount-bits/8", setup: newImage("4k", "4M", false, "refcount_bits=8"), args: withArgs(nil, "img.qcow2", sequences["overwrite"]...)},
		qcowCase{name: "refcount-bits/64", setup: newImage("4k", "4M", false, "refcount_bits=64"), args: withArgs(nil, "img.qcow2", sequences["basic"]...)},
		qcowCase{name: "reftable-grows", setup: newImage("512", "32M", false), args: withArgs(nil, "img.qcow2", "write -P 1 0 10M", "write -P 2 30M 1M", "discard 1M 2M", "write -P 3 1M 4k", "map", "read -P 1 0 1M", "read -P 3 1M 4k")},
		qcowCase{name: "odd-size", setup: newImage("64k", "1000k", false), args: withArgs(nil, "img.qcow2", "write -P 1 900k 100k", "write -z 960k 40k", "discard 768k 232k", "map", "read -P 0 900k 100k", "length")},
		qcowCase{name: "compressed", setup: compressed, args: withArgs(nil, "img.qcow2", "map", "read -P 5 0 300k", "read -P 0 300k 212k",
			"read -P 6 512k 64k", "write -P 1 100k 4k", "read -P 5 0 100k", "read -P 1 100k 4k", "read -P 5 104k 196k",
			"write -z -u 0 64k", "discard 128k 64k", "write -z 192k 64k", "map")},
		// gio deflates differently from zlib: the same clusters hold the
		// same data, the bytes differ.
		qcowCase{name: "compressed-write", setup: newImage("64k", "1M", false), anyLayout: true, args: withArgs(nil, "img.qcow2",
			"write -c -P 1 0 64k", "write -c -P 2 0 64k", "write -c 1000 64k", "write -c 64k 100k", "write -z 128k 64k",
			"write -c -P 3 128k 64k", "write -c -P 4 960k 64k", "write -c -P 4 1M 0", "map", "read -P 1 0 64k",
			"read -P 3 128k 64k", "write -P 5 130k 1k", "read -P 3 128k 2k", "read -P 5 130k 1k", "write -c 256k 512k",
			"read -P 0xcd 256k 512k", "discard 256k 64k", "write -z -u 320k 64k", "map")},
		qcowCase{name: "backing/shorter-than-image", setup: [][]string{
			qimg("create", "-q", "-f", "qcow2", "base.qcow2", "1M"),
			qio("base.qcow2", "write -P 9 0 1M"),
			qimg("create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", "img.qcow2", "3M"),
		}, args: withArgs(nil, "img.qcow2", "read -P 9 0 1M", "read -P 0 1M 2M", "write -P 1 1000k 100k", "read -P 9 960k 40k", "read -P 0 1100k 4k", "map")},
		qcowCase{name: "backing/raw", setup: [][]string{
			qimg("create", "-q", "-f", "raw", "base.raw", "1M"),
			{"qemu-io", "-f", "raw", "-c", "write -P 9 0 1M", "base.raw"},
			{"qemu-io", "-f", "raw", "-c", "write -P 8 0 64k", "base.raw"},
			qimg("create", "-q", "-f", "qcow2", "-b", "base.raw", "-F", "raw", "img.qcow2"),
		}, args: withArgs(nil, "img.qcow2", "read -P 8 0 64k", "read -P 9 64k 960k", "write -P 1 1000 100", "read -P 8 0 1000", "map")},
		qcowCase{name: "backing/grow-zero-fills", setup: [][]string{
			qimg("create", "-q", "-f", "qcow2", "base.qcow2", "4M"),
			qio("base.qcow2", "write -P 9 0 4M"),
			qimg("create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", "img.qcow2", "1M"),
		}, args: withArgs(nil, "img.qcow2", "write -P 1 0 100k", "truncate 3M", "map", "read -P 1 0 100k", "read -P 0 1M 2M")},
		qcowCase{name: "backing/missing", setup: [][]string{
			qimg("create", "-q", "-f", "qcow2", "base.qcow2", "1M"),
			qimg("create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", "img.qcow2"),
			{"rm", "base.qcow2"},
		}, noCheck: true, args: withArgs(nil, "img.qcow2", "read 0 512")},
		qcowCase{name: "read-only", setup: newImage("64k", "1M", false), args: withArgs([]string{"-r"}, "img.qcow2", "write 0 512", "read 0 512", "map")},
		qcowCase{name: "errors/out-of-range", setup: newImage("64k", "1M", false), args: withArgs(nil, "img.qcow2", "read 1M 1", "write 1020k 8k", "write -z 1M 1", "discard 1M 1", "truncate 1000")},
		qcowCase{name: "discard-ignore", setup: newImage("64k", "1M", false), args: withArgs([]string{"-d", "ignore"}, "img.qcow2", "write -P 1 0 1M", "discard 0 512k", "read -P 1 0 1M", "map")},
		qcowCase{name: "cache-writeback", setup: newImage("64k", "4M", false), args: withArgs([]string{"-t", "writeback"}, "img.qcow2", append(sequences["overwrite"], "flush")...)},
	)
	// Errors injected by blkdebug under the qcow2 node, at qcow2's own
	// events: the same request fails in both, and the image stays
	// consistent (leaks allowed).
	for _, ev := range []string{"l1_update", "l2_update", "l2_alloc_write", "cluster_alloc", "cow_read", "cow_write",
		"refblock_alloc", "refblock_load", "refblock_update_part", "write_aio", "read_aio", "read_backing_aio",
		"l1_grow_alloc_table", "flush_to_os", "flush_to_disk"} {
		rules := fmt.Sprintf("[inject-error]\nevent = \"%s\"\nerrno = \"5\"\nonce = \"on\"\n", ev)
		setup := append(newImage("4k", "4M", true), []string{"sh", "-c", "printf '" + strings.ReplaceAll(rules, "\n", `\n`) + "' > rules.cfg"})
		cs = append(cs, qcowCase{
			name:  "blkdebug/" + ev,
			setup: setup,
			leaks: true,
			args: withArgs([]string{"--image-opts"}, "driver=qcow2,file.driver=blkdebug,file.config=rules.cfg,file.image.filename=img.qcow2",
				"write -P 1 100 3000", "write -P 2 8k 4k", "write -z 16k 4k", "read -P 0x77 40k 4k", "read -P 1 100 3000",
				"write -P 3 3M 100k", "discard 0 8k", "flush", "map"),
		})
	}
	return cs
}

func TestQcow2Diff(t *testing.T) {
	for _, tool := range []string{"qemu-io", "qemu-img"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not on PATH", tool)
		}
	}
	seen := map[string]bool{}
	for _, c := range qcow2Cases() {
		if seen[c.name] {
			t.Fatalf("duplicate case name %s", c.name)
		}
		seen[c.name] = true
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			qdir, gdir := t.TempDir(), t.TempDir()
			for _, dir := range []string{qdir, gdir} {
				for _, argv := range c.setup {
					cmd := exec.Command(argv[0], argv[1:]...)
					cmd.Dir = dir
					if out, err := cmd.CombinedOutput(); err != nil {
						t.Fatalf("setup %q: %v\n%s", argv, err, out)
					}
				}
			}
			q := runIn(t, "qemu-io", qdir, c.args, nil)
			g := runIn(t, gioBin, gdir, c.args, nil)
			qo, gout := filterQemuIO(q.out), filterQemuIO(g.out)
			if qo != gout {
				t.Errorf("output differs (args %q)\n--- qemu-io\n%s\n--- gio\n%s\n--- diff\n%s", c.args, qo, gout, lineDiff(qo, gout))
			}
			if q.rc != g.rc {
				t.Errorf("exit status: qemu-io %d, gio %d", q.rc, g.rc)
			}
			image := c.image
			if image == "" {
				image = "img.qcow2"
			}
			if c.anyLayout {
				delete(q.files, "img.qcow2")
				delete(g.files, "img.qcow2")
			}
			if d := compareFiles(q.files, g.files); d != "" {
				t.Errorf("files differ:\n%s", d)
			}
			if c.noCheck {
				return
			}
			check := exec.Command("qemu-img", "check", image)
			check.Dir = gdir
			out, err := check.CombinedOutput()
			if ee, ok := err.(*exec.ExitError); ok && !(c.leaks && ee.ExitCode() == 3) || err != nil && !ok {
				t.Errorf("qemu-img check on gio's image: %v\n%s", err, out)
			}
			cmp := exec.Command("qemu-img", "compare", qdir+"/"+image, gdir+"/"+image)
			if out, err := cmp.CombinedOutput(); err != nil {
				t.Errorf("qemu-img compare: %v\n%s", err, out)
			}
			// gio's map -s and map --output=json print what qemu-img map
			// prints; on qemu-io's image, since the layouts are the same
			// (where they are not, on gio's own).
			mapDir := qdir
			if c.anyLayout {
				mapDir = gdir
			}
			var qmap string
			for _, f := range []string{"--output=human", "--output=json"} {
				m := exec.Command("qemu-img", "map", f, image)
				m.Dir = mapDir
				out, err := m.Output() // the error line goes to stderr
				if _, ok := err.(*exec.ExitError); err != nil && !ok {
					t.Fatalf("qemu-img map: %v", err)
				}
				qmap += string(out)
			}
			gm := exec.Command(gioBin, "-r", "-c", "map -s", "-c", "map --output=json", image)
			gm.Dir = mapDir
			gmap, err := gm.Output() // errors go to stderr, as qemu-img's
			if _, ok := err.(*exec.ExitError); err != nil && !ok {
				t.Fatalf("gio map: %v", err)
			}
			if string(gmap) != qmap {
				t.Errorf("map differs\n--- qemu-img map\n%s\n--- gio map -s, map --output=json\n%s\n--- diff\n%s", qmap, gmap, lineDiff(qmap, string(gmap)))
			}
		})
	}
}
