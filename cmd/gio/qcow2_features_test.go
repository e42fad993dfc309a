package main

// Differential tests of the newer qcow2 features and behaviours: cache
// options, reopen options, lazy refcounts and the dirty bit (with the
// repair a read/write open runs), the corrupt bit, and the VM state area.
// A setup makes the images once (qemu-img, or a qemu-io killed mid-way
// for a dirty image) and copies them into two directories; the same
// steps run in both, with qemu-io in one and gio in the other, and then
//   - each step's output (after _filter_qemu_io) and exit status are equal
//     (steps run qemu-img too, to show headers and check results),
//   - every file is identical byte for byte,
//   - qemu-img check finds gio's image clean, and qemu-img compare finds
//     both images identical.

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// featureCase is one comparison. In steps, "IO" stands for qemu-io or gio.
type featureCase struct {
	name  string
	setup [][]string
	steps [][]string
	// image is checked and compared at the end ("img.qcow2" if empty).
	image string
	// corrupt: the image ends with errors or the corrupt bit, so only the
	// outputs and the bytes are compared.
	corrupt bool
	// anyLayout: gio's zstd encoder is not libzstd's, so compressed
	// clusters it writes differ in bytes; only the content is compared.
	anyLayout bool
	// noCompare: the image names its data file relative to the current
	// directory, so qemu-img compare cannot open both; the bytes are
	// compared instead.
	noCompare bool
}

// ioStep builds a step running the tool under test.
func ioStep(args ...string) []string { return append([]string{"IO"}, args...) }

// dumpIncompat prints the incompatible feature bits, as 039's
// "qcow2.py dump-header | grep incompatible_features" does.
func dumpIncompat(img string) []string {
	return []string{"od", "-An", "-tx1", "-j72", "-N8", img}
}

// killed makes a dirty image: the writes go through with lazy refcounts,
// then the process dies before it can mark the image clean.
func killed(img string, cs ...string) []string {
	return append([]string{"sh", "-c", `qemu-io -t writethrough "$@" -c "sigraise 9" ` + img + ` >/dev/null 2>&1; true`, "sh"}, cmds(cs...)...)
}

func featureCases() []featureCase {
	img64k := [][]string{
		fqImg("create", "-q", "-f", "qcow2", "img.qcow2", "64k"),
		fqIO("img.qcow2", "write -P 42 0 64k"),
	}
	var cacheSteps [][]string
	for _, o := range []string{
		"cache-size=1.25M,l2-cache-size=1M,refcount-cache-size=0.25M", "cache-size=1M,l2-cache-size=2M",
		"cache-size=1M,refcount-cache-size=2M", "cache-size=0,l2-cache-size=0,refcount-cache-size=0",
		"l2-cache-entry-size=256", "l2-cache-entry-size=4242", "l2-cache-entry-size=128k",
		"cache-size=0", "l2-cache-size=0", "refcount-cache-size=0", "cache-size=2M", "cache-size=2M,l2-cache-size=1M",
		"cache-size=2M,refcount-cache-size=1M", "l2-cache-size=1M,refcount-cache-size=0.25M",
		"l2-cache-entry-size=512", "l2-cache-entry-size=16k", "l2-cache-entry-size=64k",
		"cache-clean-interval=-1", "cache-clean-interval=abc", "cache-clean-interval=5", "cache-size=abc",
		"l2-cache-size=-5", "l2-cache-size=256T", "refcount-cache-size=256T", "lazy-refcounts=42",
		"overlap-check=blubb", "overlap-check.template=blubb", "overlap-check=none,overlap-check.template=all",
		"overlap-check=all", "overlap-check.main-header=off", "pass-discard-other=on",
	} {
		cacheSteps = append(cacheSteps, ioStep("-c", "open -o "+o+" img.qcow2", "-c", "read -P 42 0 64k"))
	}
	snapImg := append(img64k, fqImg("snapshot", "-c", "foo", "img.qcow2"))

	reopenValid := []string{
		"reopen -o lazy-refcounts=on,pass-discard-request=on", "reopen -o lazy-refcounts=off,pass-discard-request=off",
		"reopen -o pass-discard-snapshot=on,pass-discard-other=on", "reopen -o overlap-check=all",
		"reopen -o overlap-check=none", "reopen -o overlap-check.template=cached", "reopen -o overlap-check.main-header=off",
		"reopen -o overlap-check.inactive-l2=on", "reopen -o cache-size=1M", "reopen -o l2-cache-size=512k",
		"reopen -o refcount-cache-size=128k", "reopen -o cache-clean-interval=5", "reopen -o cache-clean-interval=0",
		"write -P 55 0 4M", "read -P 55 0 4M", "discard 0 4M", "write -z 0 4M", "read -P 0 0 4M",
	}
	reopenInvalid := []string{
		"reopen -o lazy-refcounts=42", "reopen -o cache-size=1M,l2-cache-size=64k,refcount-cache-size=64k",
		"reopen -o cache-size=1M,l2-cache-size=2M", "reopen -o cache-size=1M,refcount-cache-size=2M",
		"reopen -o l2-cache-size=256T", "reopen -o refcount-cache-size=256T",
		"reopen -o overlap-check=constant,overlap-check.template=all", "reopen -o overlap-check=blubb",
		"reopen -o overlap-check.template=blubb", "reopen -o cache-clean-interval=-1", "reopen -o foo=bar",
		"reopen -o lazy-refcounts=on", "write 0 512", "reopen -r", "reopen -w", "write 0 512",
	}
	lazy := func(extra string) [][]string {
		return [][]string{fqImg("create", "-q", "-f", "qcow2", "-o", "lazy_refcounts=on"+extra, "img.qcow2", "16M")}
	}
	dirty := func(extra string, cs ...string) [][]string {
		return append(lazy(extra), killed("img.qcow2", cs...))
	}
	check := fqImg("check", "img.qcow2")
	// 137's transaction test: overlap checks stay on when the reopen
	// fails, so the write onto the header is caught.
	pokedRefblock := [][]string{
		fqImg("create", "-q", "-f", "qcow2", "img.qcow2", "64M"),
		fqIO("img.qcow2", "write 0 64k"),
		{"sh", "-c", `printf '\000\000' | dd of=img.qcow2 bs=1 seek=131072 conv=notrunc 2>/dev/null`},
	}
	return []featureCase{
		{name: "cache/open-options", setup: img64k, steps: cacheSteps},
		{name: "cache/minimal-cow", setup: snapImg, steps: [][]string{ioStep("-c", "open -o cache-size=0 img.qcow2", "-c", "write 0 64k")}},
		{name: "cache/small-l2-cache", setup: [][]string{fqImg("create", "-q", "-f", "qcow2", "-o", "cluster_size=512", "img.qcow2", "64M")},
			steps: [][]string{ioStep("-c", "open -o l2-cache-size=1k,refcount-cache-size=0 img.qcow2", "-c", "write -P 1 0 1M", "-c", "write -P 2 20M 1M", "-c", "write -P 3 40M 1M", "-c", "read -P 1 0 1M", "-c", "read -P 2 20M 1M", "-c", "map")}},
		{name: "reopen/valid", setup: [][]string{fqImg("create", "-q", "-f", "qcow2", "img.qcow2", "64M")}, steps: [][]string{ioStep(append(cmds(reopenValid...), "img.qcow2")...)}},
		{name: "reopen/invalid", setup: [][]string{fqImg("create", "-q", "-f", "qcow2", "img.qcow2", "64M")}, steps: [][]string{ioStep(append(cmds(reopenInvalid...), "img.qcow2")...)}},
		{name: "reopen/lazy-on-v2", setup: [][]string{fqImg("create", "-q", "-f", "qcow2", "-o", "compat=0.10", "img.qcow2", "1M")},
			steps: [][]string{ioStep("-c", "reopen -o lazy-refcounts=on", "img.qcow2"), ioStep("-c", "open -o lazy-refcounts=on img.qcow2")}},
		{name: "lazy/clean-on-close", setup: lazy(""), steps: [][]string{ioStep("-c", "write -P 0x5a 0 512", "img.qcow2"), dumpIncompat("img.qcow2"), check}},
		{name: "lazy/killed", setup: lazy(""), steps: [][]string{
			ioStep("-t", "writethrough", "-c", "write -P 0x5a 0 512", "-c", "write -P 1 1M 100k", "-c", "sigraise 9", "img.qcow2"),
			dumpIncompat("img.qcow2"), check}, corrupt: true},
		{name: "lazy/reopen-on-then-killed", setup: [][]string{fqImg("create", "-q", "-f", "qcow2", "img.qcow2", "16M")}, steps: [][]string{
			ioStep("-t", "writethrough", "-c", "reopen -o lazy-refcounts=on", "-c", "write -P 0x5a 0 512", "-c", "sigraise 9", "img.qcow2"),
			dumpIncompat("img.qcow2"), check}, corrupt: true},
		{name: "lazy/reopen-off-then-killed", setup: lazy(""), steps: [][]string{
			ioStep("-t", "writethrough", "-c", "reopen -o lazy-refcounts=off", "-c", "write -P 0x5a 0 512", "-c", "sigraise 9", "img.qcow2"),
			dumpIncompat("img.qcow2"), check}},
		{name: "lazy/transaction", setup: [][]string{fqImg("create", "-q", "-f", "qcow2", "img.qcow2", "16M")}, steps: [][]string{
			ioStep("-t", "writethrough", "-c", "reopen -o lazy-refcounts=on,overlap-check=blubb", "-c", "write -P 0x5a 0 512", "-c", "sigraise 9", "img.qcow2"),
			dumpIncompat("img.qcow2"), check}},
		{name: "lazy/reopen-read-only-marks-clean", setup: lazy(""), steps: [][]string{
			ioStep("-c", "write -P 1 0 64k", "-c", "reopen -r", "-c", "read -P 1 0 64k", "img.qcow2"), dumpIncompat("img.qcow2"), check}},
		{name: "dirty/read-only", setup: dirty("", "write -P 0x5a 0 512"), steps: [][]string{
			ioStep("-r", "-c", "read -P 0x5a 0 512", "img.qcow2"), dumpIncompat("img.qcow2")}, corrupt: true},
		{name: "dirty/repair-on-open", setup: dirty("", "write -P 0x5a 0 512"), steps: [][]string{
			ioStep("-c", "write 0 512", "-c", "read -P 0xcd 0 512", "img.qcow2"), dumpIncompat("img.qcow2"), check}},
		{name: "dirty/repair-4k-clusters", setup: dirty(",cluster_size=4096", "write 0 1M", "write 10M 300k", "write -P 3 15M 5k"), steps: [][]string{
			ioStep("-c", "read -P 3 15M 5k", "-c", "write -P 9 3M 70k", "img.qcow2"), check}},
		{name: "dirty/repair-refcount-bits-1", setup: dirty(",refcount_bits=1,cluster_size=512", "write 0 100k", "write 7M 4k"), steps: [][]string{
			ioStep("-c", "write -P 9 3M 70k", "-c", "read -P 9 3M 70k", "img.qcow2"), check}},
		{name: "dirty/repair-refcount-bits-64", setup: dirty(",refcount_bits=64", "write 0 64k", "write 8M 1M", "discard 0 64k"), steps: [][]string{
			ioStep("-c", "write -P 9 3M 70k", "img.qcow2"), check}},
		{name: "dirty/repair-compressed", setup: dirty("", "write -c 0 64k", "write -c 128k 64k", "write 1M 1k"), steps: [][]string{
			ioStep("-c", "read 0 64k", "-c", "write -P 9 3M 70k", "img.qcow2"), check}},
		{name: "dirty/repair-reftable-grows", setup: dirty(",cluster_size=512", "write 0 8M", "write 12M 2M"), steps: [][]string{
			ioStep("-c", "write -P 9 15M 70k", "img.qcow2"), check}},
		{name: "dirty/repair-with-snapshot", setup: [][]string{
			fqImg("create", "-q", "-f", "qcow2", "-o", "lazy_refcounts=on", "img.qcow2", "16M"),
			fqIO("img.qcow2", "write 0 256k"),
			fqImg("snapshot", "-c", "s1", "img.qcow2"),
			killed("img.qcow2", "write -P 7 64k 192k", "write 1M 64k"),
		}, steps: [][]string{ioStep("-c", "read -P 7 64k 192k", "-c", "write -P 9 3M 70k", "img.qcow2"), check}},
		{name: "corrupt/overlap-with-header", setup: pokedRefblock, corrupt: true, steps: [][]string{
			ioStep("-c", "reopen -o overlap-check=none,lazy-refcounts=42", "-c", "write 64k 64k", "-c", "read 0 512", "img.qcow2"),
			dumpIncompat("img.qcow2"), ioStep("-c", "read 0 512", "img.qcow2"), ioStep("-r", "-c", "read 0 512", "img.qcow2")}},
		{name: "corrupt/read-only-is-not-fatal", setup: append(pokedRefblock[:2:2],
			[]string{"sh", "-c", `printf '\000\000\000\000\000\003' | dd of=img.qcow2 bs=1 seek=196610 conv=notrunc 2>/dev/null`}), corrupt: true, steps: [][]string{
			ioStep("-r", "-c", "read 0 512", "-c", "read 0 512", "img.qcow2"), dumpIncompat("img.qcow2"),
			ioStep("-c", "read 0 512", "-c", "read 0 512", "img.qcow2"), dumpIncompat("img.qcow2")}},
		{name: "zstd/read-qemu-clusters", setup: [][]string{
			fqImg("create", "-q", "-f", "qcow2", "-o", "compression_type=zstd", "img.qcow2", "4M"),
			fqIO("img.qcow2", "write -c -P 0xab 0 64k", "write -c -P 0xac 64k 64k", "write -c 1M 1M", "write -c -P 7 3968k 128k"),
		}, steps: [][]string{ioStep("-c", "read -P 0xab 0 64k", "-c", "read -P 0xac 64k 64k", "-c", "read -P 0xcd 1M 1M",
			"-c", "read -v 131070 8", "-c", "read -P 7 3968k 128k", "-c", "map", "-c", "info", "img.qcow2")}},
		{name: "zstd/write", anyLayout: true, setup: [][]string{
			fqImg("create", "-q", "-f", "qcow2", "-o", "compression_type=zstd,cluster_size=4k", "img.qcow2", "4M"),
		}, steps: [][]string{
			ioStep("-c", "write -c -P 0xab 0 64k", "-c", "write -c -P 3 1M 12k", "-c", "write -c 2M 1M", "-c", "read -P 3 1M 12k", "img.qcow2"),
			{"qemu-io", "-c", "read -P 0xab 0 64k", "-c", "read -P 3 1M 12k", "-c", "read -P 0xcd 2M 1M", "-c", "read -P 0 3M 1M", "img.qcow2"},
			{"qemu-img", "check", "img.qcow2"}}},
		{name: "zstd/bad-bits", setup: [][]string{
			fqImg("create", "-q", "-f", "qcow2", "-o", "compression_type=zstd", "z.qcow2", "1M"),
			fqImg("create", "-q", "-f", "qcow2", "img.qcow2", "1M"),
			{"sh", "-c", `cp z.qcow2 z0.qcow2; printf '\000' | dd of=z0.qcow2 bs=1 seek=79 conv=notrunc 2>/dev/null; printf '\010' | dd of=img.qcow2 bs=1 seek=79 conv=notrunc 2>/dev/null; cp z.qcow2 z9.qcow2; printf '\011' | dd of=z9.qcow2 bs=1 seek=104 conv=notrunc 2>/dev/null`},
		}, corrupt: true, steps: [][]string{ioStep("-c", "read 0 512", "z0.qcow2"), ioStep("-c", "read 0 512", "img.qcow2"), ioStep("-c", "read 0 512", "z9.qcow2")}},
		{name: "bitmaps/info", setup: [][]string{
			fqImg("create", "-q", "-f", "qcow2", "img.qcow2", "10M"),
			fqImg("bitmap", "--add", "-g", "65536", "img.qcow2", "b1"),
			fqImg("bitmap", "--add", "--disable", "img.qcow2", "b2"),
			fqImg("bitmap", "--add", "-g", "512", "img.qcow2", "a-longer-bitmap-name"),
			fqIO("img.qcow2", "write 0 1M"),
		}, steps: [][]string{ioStep("-r", "-c", "info", "-c", "read 0 1M", "img.qcow2")}},
		{name: "bitmaps/in-use", setup: [][]string{
			fqImg("create", "-q", "-f", "qcow2", "img.qcow2", "10M"),
			fqImg("bitmap", "--add", "img.qcow2", "b1"),
			killed("img.qcow2", "write 0 64k"),
		}, steps: [][]string{ioStep("-r", "-c", "info", "img.qcow2")}},
		{name: "data-file/efficient", noCompare: true, setup: [][]string{fqImg("create", "-q", "-f", "qcow2", "-o", "data_file=img.data", "img.qcow2", "64M")}, steps: [][]string{
			ioStep("-c", "write -P 0x11 1M 4M", "-c", "discard 2M 2M", "-c", "write -z 3M 3M", "-c", "write -P 2 100k 3k", "-c", "read -P 0 0 1M",
				"-c", "read -P 0x11 1M 1M", "-c", "read -P 0 2M 4M", "-c", "map", "-c", "info", "-c", "write -c 8M 64k", "-c", "write -z -u 4M 64k", "img.qcow2"),
			{"qemu-io", "-f", "raw", "-c", "read -P 0x11 1M 1M", "-c", "read -P 0x11 4M 1M", "img.data"},
			fqImg("map", "--output=json", "img.qcow2")}},
		{name: "data-file/raw", noCompare: true, setup: [][]string{fqImg("create", "-q", "-f", "qcow2", "-o", "data_file=img.data,data_file_raw=on,cluster_size=4k", "img.qcow2", "16M")}, steps: [][]string{
			ioStep("-c", "write -P 0x11 1M 4M", "-c", "discard 2M 2M", "-c", "write -z 3M 3M", "-c", "write -P 5 7M 1000", "-c", "info", "img.qcow2"),
			{"qemu-io", "-f", "raw", "-c", "read -P 0 0 1M", "-c", "read -P 0x11 1M 1M", "-c", "read -P 0 3M 3M", "-c", "read -P 5 7M 1000", "img.data"},
			dumpIncompat("img.qcow2")}},
		{name: "data-file/options", noCompare: true, setup: [][]string{
			fqImg("create", "-q", "-f", "qcow2", "-o", "data_file=img.data", "img.qcow2", "1M"),
			fqImg("create", "-q", "-f", "qcow2", "plain.qcow2", "1M"),
			{"cp", "img.data", "other.data"},
		}, steps: [][]string{
			ioStep("-c", "write -P 3 0 64k", "img.qcow2"),
			ioStep("-c", "open -o data-file.filename=other.data img.qcow2", "-c", "read -P 0 0 64k"),
			ioStep("-c", "open -o data-file.filename=nonexistent img.qcow2"),
			ioStep("-c", "open -o data-file.filename=other.data plain.qcow2"),
			ioStep("-c", "open -o data-file.filename=nonexistent plain.qcow2"),
			{"sh", "-c", "mv img.data moved.data; true"},
			ioStep("-c", "read 0 512", "img.qcow2"),
			{"sh", "-c", "mv moved.data img.data; true"},
			ioStep("-c", "read -P 3 0 64k", "img.qcow2")}},
		{name: "data-file/dirty-repair", noCompare: true, setup: append(append([][]string(nil),
			fqImg("create", "-q", "-f", "qcow2", "-o", "data_file=img.data,lazy_refcounts=on", "img.qcow2", "16M")),
			killed("img.qcow2", "write -P 1 0 1M", "write -P 2 8M 64k")), steps: [][]string{
			ioStep("-c", "read -P 1 0 1M", "-c", "write -P 3 4M 64k", "img.qcow2"), dumpIncompat("img.qcow2")}},
		{name: "vmstate/basic", setup: [][]string{fqImg("create", "-q", "-f", "qcow2", "img.qcow2", "64M")}, steps: [][]string{
			ioStep("-c", "write -b -P 0x11 0 4k", "-c", "read -b -P 0x11 0 4k", "-c", "read -b -v 0 32", "-c", "write -b 513 5",
				"-c", "read -b 0 17", "-c", "write -b -z 0 512", "-c", "write -b -f 0 512", "-c", "read -b -P 0 64k 4k",
				"-c", "write -b -P 3 1T 4k", "-c", "read -b -P 3 1T 4k", "-c", "read -P 0 0 64M", "-c", "map", "img.qcow2"),
			ioStep("-r", "-c", "read -b -P 3 1T 4k", "-c", "write -b 0 512", "img.qcow2")}},
		{name: "vmstate/small-clusters", setup: [][]string{fqImg("create", "-q", "-f", "qcow2", "-o", "cluster_size=1024", "img.qcow2", "16M")}, steps: [][]string{
			ioStep("-c", "write -b -P 5 0 4M", "-c", "read -b -P 5 0 4M", "img.qcow2")}},
		{name: "vmstate/backing", setup: [][]string{
			fqImg("create", "-q", "-f", "qcow2", "base.qcow2", "1M"),
			fqIO("base.qcow2", "write -b -P 8 0 64k"),
			fqImg("create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", "img.qcow2", "1M"),
		}, steps: [][]string{ioStep("-c", "read -b -P 0 0 64k", "-c", "write -b -P 1 4k 4k", "-c", "read -b -P 1 4k 4k", "img.qcow2")}},
		{name: "vmstate/blkdebug-and-raw", setup: [][]string{fqImg("create", "-q", "-f", "qcow2", "img.qcow2", "1M")}, steps: [][]string{
			ioStep("-c", "write -b -P 2 0 512", "-c", "read -b -P 2 0 512", "blkdebug::img.qcow2"),
			ioStep("-f", "raw", "-c", "write -b 0 512", "-c", "read -b 0 512", "img.qcow2")}},
	}
}

func TestQcow2FeaturesDiff(t *testing.T) {
	for _, tool := range []string{"qemu-io", "qemu-img"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not on PATH", tool)
		}
	}
	seen := map[string]bool{}
	for _, c := range featureCases() {
		if seen[c.name] {
			t.Fatalf("duplicate case name %s", c.name)
		}
		seen[c.name] = true
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			src, qdir, gdir := t.TempDir(), t.TempDir(), t.TempDir()
			for _, argv := range c.setup {
				cmd := exec.Command(argv[0], argv[1:]...)
				cmd.Dir = src
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("setup %q: %v\n%s", argv, err, out)
				}
			}
			// One setup, copied: snapshot dates and killed processes
			// would otherwise make the two sources differ.
			copyDir(t, src, qdir)
			copyDir(t, src, gdir)
			var q, g result
			for _, step := range c.steps {
				qbin, gbin := step[0], step[0]
				if qbin == "IO" {
					qbin, gbin = "qemu-io", gioBin
				}
				q = runIn(t, qbin, qdir, step[1:], nil)
				g = runIn(t, gbin, gdir, step[1:], nil)
				qo, gout := filterQemuIO(q.out), filterQemuIO(g.out)
				if qo != gout {
					t.Errorf("step %q: output differs\n--- qemu-io\n%s\n--- gio\n%s\n--- diff\n%s", step, qo, gout, lineDiff(qo, gout))
				}
				if q.rc != g.rc {
					t.Errorf("step %q: exit status: qemu-io %d, gio %d", step, q.rc, g.rc)
				}
			}
			if c.anyLayout {
				delete(q.files, "img.qcow2")
				delete(g.files, "img.qcow2")
			}
			if d := compareFiles(q.files, g.files); d != "" {
				t.Errorf("files differ:\n%s", d)
			}
			if c.corrupt {
				return
			}
			image := c.image
			if image == "" {
				image = "img.qcow2"
			}
			check := exec.Command("qemu-img", "check", image)
			check.Dir = gdir
			if out, err := check.CombinedOutput(); err != nil {
				t.Errorf("qemu-img check on gio's image: %v\n%s", err, out)
			}
			if c.noCompare {
				return
			}
			cmp := exec.Command("qemu-img", "compare", qdir+"/"+image, gdir+"/"+image)
			if out, err := cmp.CombinedOutput(); err != nil {
				t.Errorf("qemu-img compare: %v\n%s", err, out)
			}
		})
	}
}

// copyDir copies the regular files of src into dst.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// fqImg and fqIO are qemu-img and qemu-io command lines for setups.
func fqImg(args ...string) []string { return append([]string{"qemu-img"}, args...) }
func fqIO(image string, cs ...string) []string {
	return append(append([]string{"qemu-io", "-f", "qcow2"}, cmds(cs...)...), image)
}
