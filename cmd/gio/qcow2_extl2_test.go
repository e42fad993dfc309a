package main

// Differential tests of qcow2 extended L2 entries (subclusters): the
// same qemu-io commands on copies of images qemu-img made with
// extended_l2=on, compared as TestQcow2FeaturesDiff compares (outputs,
// exit status, image bytes, qemu-img check and compare).

import (
	"strconv"
	"testing"
)

// patchStep overwrites bytes of a file at off with the octal-escaped
// printf string data (both directories get the same patch).
func patchStep(file string, off int, data string) []string {
	return []string{"sh", "-c", `printf "$1" | dd of="$2" bs=1 seek="$3" conv=notrunc status=none`, "sh", data, file, strconv.Itoa(off)}
}

func extL2Cases() []featureCase {
	// base: 1M of 0x11; img: an empty overlay; both extended_l2=on.
	withBase := func(cs string) [][]string {
		o := "extended_l2=on,cluster_size=" + cs
		return [][]string{
			fqImg("create", "-q", "-f", "qcow2", "-o", o, "base.qcow2", "1M"),
			fqIO("base.qcow2", "write -P 0x11 0 1M"),
			fqImg("create", "-q", "-f", "qcow2", "-o", o, "-b", "base.qcow2", "-F", "qcow2", "img.qcow2", "1M"),
		}
	}
	alone := func(cs string) [][]string {
		return [][]string{fqImg("create", "-q", "-f", "qcow2", "-o", "extended_l2=on,cluster_size="+cs, "img.qcow2", "1M")}
	}
	io := func(cs ...string) []string {
		return ioStep(append(append([]string{"-f", "qcow2"}, cmds(cs...)...), "img.qcow2")...)
	}
	mapStep := io("map")
	info := fqImg("map", "--output=json", "img.qcow2")
	return []featureCase{
		{name: "info", setup: alone("64k"), steps: [][]string{io("info")}},
		{name: "write-subclusters", setup: alone("64k"), steps: [][]string{
			io("write -P 0x22 4k 4k", "write -P 0x33 70k 10k", "write -P 0x44 130k 1", "write -P 0x55 190k 200k"),
			mapStep, info,
			io("read -P 0 0 4k", "read -P 0x22 4k 4k", "read -P 0 8k 62k", "read -P 0x33 70k 10k",
				"read -P 0 80k 50k", "read -P 0x44 130k 1", "read -P 0 130k1 59k", "read -P 0x55 190k 200k", "read -P 0 390k 634k"),
		}},
		{name: "backing-cow", setup: withBase("64k"), steps: [][]string{
			io("write -P 0x22 4k 4k", "write -P 0x33 70k 10k", "write -P 0x44 1000 3000", "write -P 0x55 250k 100k"),
			mapStep, info,
			io("read -P 0x44 1000 3000", "read -P 0x11 0 1000", "read -P 0x11 4000 96", "read -P 0x22 4k 4k",
				"read -P 0x11 8k 62k", "read -P 0x33 70k 10k", "read -P 0x55 250k 100k", "read -P 0x11 350k 674k"),
		}},
		{name: "in-place", setup: withBase("64k"), steps: [][]string{
			// The cluster is allocated with some subclusters; later
			// writes fill others in place (COW from the backing file
			// at subcluster granularity).
			io("write -P 0x22 0 2k", "write -P 0x33 10k 100", "write -P 0x44 60k 8k", "write -P 0x55 30k 1k"),
			mapStep, info,
			io("read -P 0x22 0 2k", "read -P 0x11 2k 8k", "read -P 0x33 10k 100", "read -P 0x11 10340 20380",
				"read -P 0x55 30k 1k", "read -P 0x11 31k 29k", "read -P 0x44 60k 8k", "read -P 0x11 68k 956k"),
		}},
		{name: "zero", setup: withBase("64k"), steps: [][]string{
			io("write -P 0x22 0 64k", "write -z 4k 4k", "write -z 64k 64k", "write -z -u 128k 64k",
				"write -z 200k 2k", "write -z 256k 10k", "write -P 0x33 300k 4k", "write -z -u 300k 4k", "write -z 512k 130k"),
			mapStep, info,
			io("read -P 0x22 0 4k", "read -P 0 4k 4k", "read -P 0x22 8k 56k", "read -P 0 64k 128k",
				"read -P 0x11 192k 8k", "read -P 0 200k 2k", "read -P 0x11 202k 54k", "read -P 0 256k 10k", "read -P 0 512k 130k"),
		}},
		{name: "zero-no-backing", setup: alone("64k"), steps: [][]string{
			io("write -P 0x22 0 128k", "write -z 1k 1k", "write -z 4k 8k", "write -z -u 64k 64k", "write -z 200k 100"),
			mapStep, info, io("read -P 0x22 0 1k", "read -P 0 1k 1k", "read -P 0x22 2k 2k", "read -P 0 4k 8k", "read -P 0x22 12k 52k", "read -P 0 64k 960k"),
		}},
		{name: "discard", setup: withBase("64k"), steps: [][]string{
			io("write -P 0x22 0 256k", "discard 0 64k", "discard 70k 4k", "discard 128k 128k"),
			mapStep, info,
			io("read -P 0 0 64k", "read -P 0x22 64k 64k", "read -P 0 128k 128k", "read -P 0x11 256k 768k"),
		}},
		// gio's deflate output is not zlib's: compressed clusters match
		// in content, not bytes.
		{name: "compressed", anyLayout: true, setup: withBase("64k"), steps: [][]string{
			io("write -c -P 0x22 0 64k", "write -c -P 0x23 64k 64k", "write -P 0x33 4k 4k", "write -z 72k 4k"),
			mapStep, info,
			io("read -P 0x22 0 4k", "read -P 0x33 4k 4k", "read -P 0x22 8k 56k", "read -P 0x23 64k 8k", "read -P 0 72k 4k", "read -P 0x23 76k 52k"),
		}},
		{name: "16k-clusters", setup: withBase("16k"), steps: [][]string{
			io("write -P 0x22 100 1000", "write -P 0x33 15k 2k", "write -z 40k 512", "write -P 0x44 500k 33k", "discard 64k 16k"),
			mapStep, info,
			io("read -P 0x11 0 100", "read -P 0x22 100 1000", "read -P 0x11 1100 14260", "read -P 0x33 15k 2k",
				"read -P 0 40k 512", "read -P 0 64k 16k", "read -P 0x44 500k 33k"),
		}},
		{name: "aio-overlap", setup: withBase("64k"), steps: [][]string{
			io("aio_write -P 0x22 1k 2k", "aio_write -P 0x33 5k 2k", "aio_write -P 0x44 66k 70k", "aio_flush"),
			mapStep, info,
			io("read -P 0x11 0 1k", "read -P 0x22 1k 2k", "read -P 0x11 3k 2k", "read -P 0x33 5k 2k", "read -P 0x44 66k 70k"),
		}},
		{name: "invalid-bitmap", corrupt: true, setup: append(alone("64k"),
			fqIO("img.qcow2", "write -P 0x22 0 4k")), steps: [][]string{
			// Entry 0 of the L2 table at 0x40000: allocation and zero
			// bit of subcluster 0 at the same time.
			patchStep("img.qcow2", 0x40008, `\000\000\000\001\000\000\000\001`),
			io("read -P 0x22 0 4k"),
			ioStep("-r", "-f", "qcow2", "-c", "read 0 4k", "-c", "map", "img.qcow2"),
			dumpIncompat("img.qcow2"),
		}},
		{name: "invalid-bitmap-write", corrupt: true, setup: append(alone("64k"),
			fqIO("img.qcow2", "write -P 0x22 0 4k")), steps: [][]string{
			patchStep("img.qcow2", 0x40008, `\000\000\000\001\000\000\000\001`),
			io("write -P 0x33 8k 4k"),
			dumpIncompat("img.qcow2"),
		}},
		{name: "unallocated-with-alloc-bits", corrupt: true, setup: alone("64k"), steps: [][]string{
			// An L2 table whose first entry has no cluster but
			// allocation bits.
			io("write -P 0x22 64k 4k"),
			patchStep("img.qcow2", 0x40008, `\000\000\000\000\000\000\000\003`),
			io("read 0 4k"),
		}},
		{name: "subcluster-size-too-small", corrupt: true, setup: [][]string{
			fqImg("create", "-q", "-f", "qcow2", "-o", "cluster_size=4k", "img.qcow2", "1M")}, steps: [][]string{
			patchStep("img.qcow2", 79, `\020`),
			io("read 0 4k"),
		}},
	}
}

func TestQcow2ExtL2Diff(t *testing.T) { runFeatureCases(t, extL2Cases()) }
