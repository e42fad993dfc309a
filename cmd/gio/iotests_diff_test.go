package main

// Differential cases for what QEMU's own qemu-iotests need of gio beyond
// the commands (issue 10, iotests/run.sh): host devices, snapshot mode,
// filters and nested option trees. They run like TestDiff's cases.

import (
	"os/exec"
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
	return cs
}

func TestIotestsDiff(t *testing.T) {
	if _, err := exec.LookPath("qemu-io"); err != nil {
		t.Skip("qemu-io not on PATH")
	}
	for _, c := range iotestsDiffCases() {
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
