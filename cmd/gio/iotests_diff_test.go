package main

// Differential cases for what QEMU's own qemu-iotests need of gio beyond
// the commands (issue 10, iotests/run.sh): host devices, snapshot mode,
// filters and nested option trees. They run like TestDiff's cases.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func iotestsDiffCases() []diffCase {
	var cs []diffCase
	// 226: file-posix's drivers refuse what is not theirs; /dev/null is
	// a character device, "/" a directory.
	for _, drv := range []string{"file", "host_device", "host_cdrom"} {
		cs = append(cs,
			diffCase{name: "hostdev/" + drv + "/dir-ro", size: -1, args: cmds("open -r -o driver=" + drv + ",filename=/")},
			diffCase{name: "hostdev/" + drv + "/dir-rw", size: -1, args: cmds("open -o driver=" + drv + ",filename=/")},
			diffCase{name: "hostdev/" + drv + "/null-ro", size: -1, args: cmds("open -r -o driver="+drv+",filename=/dev/null,locking=off", "info", "length")},
			diffCase{name: "hostdev/" + drv + "/null-rw", size: -1, args: cmds("open -o driver="+drv+",filename=/dev/null,locking=off", "length", "truncate 0", "truncate 512", "read 0 512")},
			diffCase{name: "hostdev/" + drv + "/no-filename", size: -1, args: cmds("open -o driver=" + drv)},
		)
	}
	cs = append(cs,
		// A plain name that is a device probes as host_device.
		diffCase{name: "hostdev/probed", size: -1, args: cmds("info", "length", "map", "/dev/null")},
		diffCase{name: "hostdev/probed-raw", size: -1, args: withArgs([]string{"-f", "raw"}, "/dev/null", "truncate 0", "truncate 1k", "truncate -m falloc 0", "write 0 512")},
		diffCase{name: "hostdev/prefix", size: -1, args: withArgs([]string{"-f", "raw"}, "host_device:/dev/null", "info")},
		diffCase{name: "hostdev/cdrom-prefix", size: -1, args: withArgs([]string{"-f", "raw"}, "host_cdrom:/dev/null", "info")},
		diffCase{name: "hostdev/zero", size: -1, args: withArgs([]string{"-r", "-f", "raw"}, "/dev/zero", "length", "read 0 512")},
	)
	// 052: snapshot mode. Writes go to a temporary qcow2 overlay; the
	// image (compared afterwards) keeps its bytes.
	pat := []string{"write -P 0x11 0 4k", "write -P 0x22 192k 64k"}
	cs = append(cs,
		diffCase{name: "snapshot/write-read", size: 1 * mb, prep: pat, args: withArgs([]string{"-s"}, "img.raw",
			"write -P 0x33 0 512", "read -P 0x33 0 512", "read -P 0x11 512 3584", "read -P 0x22 192k 64k",
			"write -P 0x44 100k 200k", "read -P 0x44 100k 200k", "info", "map", "length", "alloc 0 1M")},
		diffCase{name: "snapshot/raw-format", size: 1 * mb, prep: pat, args: withArgs([]string{"-s", "-f", "raw"}, "img.raw",
			"write -z 0 64k", "read -P 0 0 64k", "discard 192k 64k", "read -P 0 192k 64k", "truncate 2M", "length", "write -P 0x55 1536k 4k", "read -P 0x55 1536k 4k", "flush")},
		diffCase{name: "snapshot/read-only", size: 1 * mb, prep: pat, args: withArgs([]string{"-r", "-s"}, "img.raw",
			"write -P 0x33 0 512", "read -P 0x11 0 4k", "info")},
		diffCase{name: "snapshot/open-close", size: 1 * mb, prep: pat, args: cmds(
			"open -s -o driver=raw img.raw", "write -P 0x66 0 4k", "read -P 0x66 0 4k", "close",
			"open -o driver=raw img.raw", "read -P 0x11 0 4k", "close",
			"open -s -r img.raw", "read -P 0x11 0 4k")},
		diffCase{name: "snapshot/stdin", size: 1 * mb, prep: pat, args: []string{"-s", "-f", "raw", "img.raw"},
			stdin: script("write -P 0x77 4k 8k", "aio_write -P 0x78 64k 4k", "aio_flush", "read -P 0x77 4k 8k", "read -P 0x78 64k 4k")},
		diffCase{name: "snapshot/missing", size: -1, args: withArgs([]string{"-s"}, "nosuch.raw", "read 0 512")},
		diffCase{name: "snapshot/blkdebug", size: 1 * mb, prep: pat, files: map[string]string{"rules.cfg": rulesCfg},
			args: withArgs([]string{"-s", "-f", "raw"}, "blkdebug:rules.cfg:img.raw", "write -P 0x33 0 512", "read 0 512", "read 64k 512")},
	)
	return cs
}

func TestIotestsDiff(t *testing.T) {
	if _, err := exec.LookPath("qemu-io"); err != nil {
		t.Skip("qemu-io not on PATH")
	}
	cases := iotestsDiffCases()
	if base, err := qcow2Bytes(t, "write -P 0x11 0 64k"); err == nil {
		// Snapshot mode over a qcow2 image: the overlay's backing node
		// is a qcow2 node.
		cases = append(cases, diffCase{name: "snapshot/qcow2-base", size: -1, files: map[string]string{"img.qcow2": base},
			args: withArgs([]string{"-s"}, "img.qcow2", "write -P 0x22 512 512", "read -P 0x11 0 512", "read -P 0x22 512 512", "map", "info")})
	} else {
		t.Logf("no qcow2 base image: %v", err)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			gdir := t.TempDir()
			setupDir(t, gdir, c)
			g := runIn(t, gioBin, gdir, c.args, c.stdin)
			for _, p := range compareWithQemu(t, c, g) {
				t.Error(p)
			}
		})
	}
}

// qcow2Bytes returns a 1 MiB qcow2 image made by qemu-img, after the
// given qemu-io commands.
func qcow2Bytes(t *testing.T, cmds ...string) (string, error) {
	p := filepath.Join(t.TempDir(), "base.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", p, "1M").CombinedOutput(); err != nil {
		return "", fmt.Errorf("%v: %s", err, out)
	}
	for _, c := range cmds {
		if out, err := exec.Command("qemu-io", "-c", c, p).CombinedOutput(); err != nil {
			return "", fmt.Errorf("%v: %s", err, out)
		}
	}
	b, err := os.ReadFile(p)
	return string(b), err
}
