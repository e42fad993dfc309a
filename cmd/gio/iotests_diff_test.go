package main

// Differential cases for what QEMU's own qemu-iotests need of gio beyond
// the commands (issue 10, iotests/run.sh): host devices, snapshot mode,
// filters, quorum and nested option trees. Each case runs the real
// qemu-io and gio in fresh directories holding the same files and
// compares output (after _filter_qemu_io), exit status and the final
// bytes of every file. They need qemu-io and qemu-img, and skip without.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// liveCase is one comparison with the real qemu-io.
type liveCase struct {
	name string
	// size of img.raw, created sparse; -1 = no img.raw.
	size int64
	// prep are qemu-io commands run on img.raw (-f raw) first.
	prep []string
	// files are more files to create, by name.
	files map[string]string
	args  []string
	// stdin, when set, is fed to the program.
	stdin *string
}

// injectENOSPC is a blkdebug config failing reads with ENOSPC.
const injectENOSPC = `[inject-error]
event = "read_aio"
errno = "28"
`

func lines(l ...string) *string {
	s := strings.Join(l, "\n") + "\n"
	return &s
}

// setupLive lays out a case's files in dir.
func setupLive(t *testing.T, dir string, c liveCase) {
	t.Helper()
	if c.size >= 0 {
		p := filepath.Join(dir, "img.raw")
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(p, c.size); err != nil {
			t.Fatal(err)
		}
		if len(c.prep) > 0 {
			cmd := exec.Command("qemu-io", append(append([]string{"-f", "raw"}, cmds(c.prep...)...), "img.raw")...)
			cmd.Dir = dir
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("prep %q: %v\n%s", c.prep, err, out)
			}
		}
	}
	for name, content := range c.files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// compareLive runs qemu-io for c in a fresh directory and lists how
// gio's result g differs from it.
func compareLive(t *testing.T, c liveCase, g result) []string {
	t.Helper()
	qdir := t.TempDir()
	setupLive(t, qdir, c)
	q := runIn(t, "qemu-io", qdir, c.args, c.stdin)
	var problems []string
	if qo, gout := filterQemuIO(q.out), filterQemuIO(g.out); qo != gout {
		problems = append(problems, fmt.Sprintf("output differs (args %q)\n--- qemu-io\n%s\n--- gio\n%s\n--- diff\n%s", c.args, qo, gout, lineDiff(qo, gout)))
	}
	if q.rc != g.rc {
		problems = append(problems, fmt.Sprintf("exit status: qemu-io %d, gio %d", q.rc, g.rc))
	}
	if d := compareFiles(q.files, g.files); d != "" {
		problems = append(problems, "files differ:\n"+d)
	}
	return problems
}

func iotestsDiffCases() []liveCase {
	var cs []liveCase
	// 226: file-posix's drivers refuse what is not theirs; /dev/null is
	// a character device, "/" a directory.
	for _, drv := range []string{"file", "host_device", "host_cdrom"} {
		cs = append(cs,
			liveCase{name: "hostdev/" + drv + "/dir-ro", size: -1, args: cmds("open -r -o driver=" + drv + ",filename=/")},
			liveCase{name: "hostdev/" + drv + "/dir-rw", size: -1, args: cmds("open -o driver=" + drv + ",filename=/")},
			liveCase{name: "hostdev/" + drv + "/null-ro", size: -1, args: cmds("open -r -o driver="+drv+",filename=/dev/null,locking=off", "info", "length")},
			liveCase{name: "hostdev/" + drv + "/null-rw", size: -1, args: cmds("open -o driver="+drv+",filename=/dev/null,locking=off", "length", "truncate 0", "truncate 512", "read 0 512")},
			liveCase{name: "hostdev/" + drv + "/no-filename", size: -1, args: cmds("open -o driver=" + drv)},
		)
	}
	cs = append(cs,
		// A plain name that is a device probes as host_device.
		liveCase{name: "hostdev/probed", size: -1, args: cmds("info", "length", "map", "/dev/null")},
		liveCase{name: "hostdev/probed-raw", size: -1, args: withArgs([]string{"-f", "raw"}, "/dev/null", "truncate 0", "truncate 1k", "truncate -m falloc 0", "write 0 512")},
		liveCase{name: "hostdev/prefix", size: -1, args: withArgs([]string{"-f", "raw"}, "host_device:/dev/null", "info")},
		liveCase{name: "hostdev/cdrom-prefix", size: -1, args: withArgs([]string{"-f", "raw"}, "host_cdrom:/dev/null", "info")},
		liveCase{name: "hostdev/zero", size: -1, args: withArgs([]string{"-r", "-f", "raw"}, "/dev/zero", "length", "read 0 512")},
	)
	// 052: snapshot mode. Writes go to a temporary qcow2 overlay; the
	// image (compared afterwards) keeps its bytes.
	pat := []string{"write -P 0x11 0 4k", "write -P 0x22 192k 64k"}
	cs = append(cs,
		liveCase{name: "snapshot/write-read", size: 1 * mb, prep: pat, args: withArgs([]string{"-s"}, "img.raw",
			"write -P 0x33 0 512", "read -P 0x33 0 512", "read -P 0x11 512 3584", "read -P 0x22 192k 64k",
			"write -P 0x44 100k 200k", "read -P 0x44 100k 200k", "info", "map", "length", "alloc 0 1M")},
		liveCase{name: "snapshot/raw-format", size: 1 * mb, prep: pat, args: withArgs([]string{"-s", "-f", "raw"}, "img.raw",
			"write -z 0 64k", "read -P 0 0 64k", "discard 192k 64k", "read -P 0 192k 64k", "truncate 2M", "length", "write -P 0x55 1536k 4k", "read -P 0x55 1536k 4k", "flush")},
		liveCase{name: "snapshot/read-only", size: 1 * mb, prep: pat, args: withArgs([]string{"-r", "-s"}, "img.raw",
			"write -P 0x33 0 512", "read -P 0x11 0 4k", "info")},
		liveCase{name: "snapshot/open-close", size: 1 * mb, prep: pat, args: cmds(
			"open -s -o driver=raw img.raw", "write -P 0x66 0 4k", "read -P 0x66 0 4k", "close",
			"open -o driver=raw img.raw", "read -P 0x11 0 4k", "close",
			"open -s -r img.raw", "read -P 0x11 0 4k")},
		liveCase{name: "snapshot/stdin", size: 1 * mb, prep: pat, args: []string{"-s", "-f", "raw", "img.raw"},
			stdin: lines("write -P 0x77 4k 8k", "aio_write -P 0x78 64k 4k", "aio_flush", "read -P 0x77 4k 8k", "read -P 0x78 64k 4k")},
		liveCase{name: "snapshot/missing", size: -1, args: withArgs([]string{"-s"}, "nosuch.raw", "read 0 512")},
		liveCase{name: "snapshot/blkdebug", size: 1 * mb, prep: pat, files: map[string]string{"rules.cfg": injectENOSPC},
			args: withArgs([]string{"-s", "-f", "raw"}, "blkdebug:rules.cfg:img.raw", "write -P 0x33 0 512", "read 0 512", "read 64k 512")},
	)
	// 133: node-name at open, and reopen's generic options.
	cs = append(cs,
		liveCase{name: "nodename/open", size: 64 * k, args: cmds(
			"open -o driver=raw,node-name=top,file.node-name=proto img.raw", "reopen -o node-name=top", "reopen -o file.node-name=proto",
			"reopen -o node-name=other", "reopen -o file.node-name=other", "reopen -o driver=raw", "reopen -o file.driver=file",
			"reopen -o driver=qcow2", "reopen -o file.driver=null-co", "write -P 0x11 0 4k", "read -P 0x11 0 4k")},
		liveCase{name: "nodename/unnamed", size: 64 * k, args: rawc("reopen -o node-name=foo", "reopen -o file.node-name=foo", "reopen")},
		liveCase{name: "nodename/invalid", size: 64 * k, args: cmds("open -o driver=raw,node-name=1abc img.raw")},
		liveCase{name: "nodename/invalid-char", size: 64 * k, args: cmds("open -o driver=raw,file.node-name=a/b img.raw")},
		liveCase{name: "nodename/too-long", size: 64 * k, args: cmds("open -o driver=raw,node-name=a234567890123456789012345678901 img.raw")},
		liveCase{name: "nodename/max-length", size: 64 * k, args: cmds("open -o driver=raw,node-name=a23456789012345678901234567890 img.raw", "length")},
		liveCase{name: "nodename/duplicate", size: 64 * k, args: cmds("open -o driver=raw,node-name=a,file.node-name=a img.raw", "open -o driver=raw,node-name=a img.raw", "length")},
		liveCase{name: "nodename/reuse-after-close", size: 64 * k, args: cmds("open -o driver=raw,node-name=a img.raw", "close", "open -o driver=raw,node-name=a img.raw", "length")},
		liveCase{name: "reopen/generic-conflicts", size: 64 * k, args: rawc(
			"reopen -r -o read-only=on", "reopen -w -o read-only=on", "reopen -c none -o cache.direct=on",
			"reopen -c writeback -o cache.direct=on", "reopen -c directsync -o cache.no-flush=on")},
		liveCase{name: "reopen/generic-invalid", size: 64 * k, args: rawc(
			"reopen -o read-only=foo", "reopen -o cache.no-flush=bar", "reopen -o cache.direct=baz", "reopen -o auto-read-only=qux")},
		liveCase{name: "reopen/generic-unchanged", size: 64 * k, args: rawc(
			"reopen -o cache.direct=off", "reopen -o cache.no-flush=off", "reopen -o auto-read-only=on", "write -P 0x22 0 512", "read -P 0x22 0 512")},
		// 153: force-share as an option of any node, and its -U conflict.
		liveCase{name: "forceshare/options", size: 64 * k, args: cmds(
			"open -r -U -o driver=null-co,force-share=on", "info", "close",
			"open -r -U -o driver=null-co,force-share=off",
			"open -o driver=null-co,force-share=on",
			"open -r -o driver=null-co,force-share=on", "info", "close",
			"open -r -o driver=null-co,force-share=x",
			"open -r -o driver=raw,file.driver=null-co,file.force-share=on", "info", "close",
			"open -r -o driver=raw,force-share=on img.raw", "read 0 512", "close",
			"open -o driver=raw,file.force-share=on img.raw")},
		// 171: raw's offset/size window moved by reopen.
		liveCase{name: "reopen/raw-window", size: 4 * k, args: []string{`json:{"driver":"raw", "offset":"512", "size":"512", "file": {"driver":"file", "filename":"img.raw"}}`},
			stdin: lines("write -P 0x0a 0 512", "write -P 0x0a 511 1", "write -P 0x0a 512 1", "reopen -o driver=raw,offset=1536,size=1024",
				"write -P 0x0b 0 1024", "write -P 0x0b 1023 1", "write -P 0x0b 1024 1", "length", "reopen -o offset=4096", "reopen -o size=100", "length")},
		liveCase{name: "reopen/null-co-json", size: -1, args: withArgs([]string{"-f", "null-co"}, `json:{"driver": "null-co", "size": 65536}`, "reopen", "info")},
	)
	return cs
}

func TestIotestsDiff(t *testing.T) {
	if _, err := exec.LookPath("qemu-io"); err != nil {
		t.Skip("qemu-io not on PATH")
	}
	cases := iotestsDiffCases()
	if files, err := toolFiles(t,
		[]string{"qemu-img", "create", "-q", "-f", "qcow2", "img.qcow2", "1M"},
		[]string{"qemu-io", "-c", "write -P 0x11 0 64k", "img.qcow2"},
	); err == nil {
		// Snapshot mode over a qcow2 image: the overlay's backing node
		// is a qcow2 node.
		cases = append(cases, liveCase{name: "snapshot/qcow2-base", size: -1, files: files,
			args: withArgs([]string{"-s"}, "img.qcow2", "write -P 0x22 512 512", "read -P 0x11 0 512", "read -P 0x22 512 512", "map", "info")})
	} else {
		t.Logf("no qcow2 base image: %v", err)
	}
	// Nested option trees (020, 089, 177, 204): a format node named by
	// a file name under blkdebug, a json: backing file name with
	// blkdebug in it, "backing": null.
	jsonBacking := `json:{'driver': 'qcow2', 'file': {'driver': 'blkdebug', 'inject-error': [{'event': 'read_aio', 'errno': 28, 'once': true}], 'image': {'driver': 'file', 'filename': 'base.qcow2'}}}`
	if files, err := toolFiles(t,
		[]string{"qemu-img", "create", "-q", "-f", "qcow2", "base.qcow2", "1M"},
		[]string{"qemu-io", "-c", "write -P 0x11 0 64k", "base.qcow2"},
		[]string{"qemu-img", "create", "-q", "-f", "qcow2", "-b", jsonBacking, "-F", "qcow2", "img.qcow2"},
		[]string{"qemu-img", "create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", "plain.qcow2"},
	); err == nil {
		cases = append(cases,
			liveCase{name: "optree/blkdebug-image-driver", size: -1, files: files, args: cmds(
				"open -o driver=blkdebug,image.driver=qcow2,align=4096 blkdebug::base.qcow2",
				"read -P 0x11 0 4k", "write -P 0x22 1000 128k", "read -P 0x22 1000 128k", "map")},
			liveCase{name: "optree/blkdebug-image-dotted", size: -1, files: files, args: withArgs(nil,
				`json:{"driver": "qcow2", "file": {"driver": "blkdebug", "inject-error": [{"event": "l2_load"}], "image.filename": "base.qcow2"}}`,
				"read -P 0x11 0 512")},
			liveCase{name: "optree/json-backing-name", size: -1, files: files, args: withArgs(nil, "img.qcow2",
				"read 0 512", "read -P 0x11 0 512", "write -P 0x33 64k 4k", "read -P 0x33 64k 4k")},
			liveCase{name: "optree/backing-null", size: -1, files: files, args: withArgs(nil,
				"json:{'driver': 'qcow2', 'file': {'driver': 'file', 'filename': 'plain.qcow2'}, 'backing': null}", "read -P 0 0 512", "map")},
			liveCase{name: "optree/backing-null-raw", size: -1, files: files, args: withArgs(nil,
				"json:{'driver': 'raw', 'file': {'driver': 'file', 'filename': 'plain.qcow2'}, 'backing': null}", "length")},
			liveCase{name: "optree/qcow2-over-qcow2", size: -1, files: files, args: withArgs(nil,
				`json:{"driver": "qcow2", "file": {"driver": "qcow2", "file": {"filename": "base.qcow2"}}}`, "read 0 512")},
		)
	} else {
		t.Logf("no qcow2 images: %v", err)
	}
	// 197, 215: copy-on-read, as -C / open -C and as the copy-on-read
	// filter, into a qcow2 image over a raw backing file; the images are
	// compared afterwards.
	const corCfg = "[inject-error]\nevent = \"cor_write\"\nsector = \"2048\"\n"
	if files, err := toolFiles(t,
		[]string{"qemu-img", "create", "-q", "-f", "raw", "base.raw", "4M"},
		[]string{"qemu-io", "-f", "raw", "-c", "write -P 0x55 3M 1k", "-c", "write -P 0x66 200k 8k", "base.raw"},
		[]string{"qemu-img", "create", "-q", "-f", "qcow2", "-b", "base.raw", "-F", "raw", "img.qcow2"},
		[]string{"qemu-io", "-f", "qcow2", "-c", "write -z -u 1M 64k", "-c", "write -P 0x77 2M 4k", "img.qcow2"},
		[]string{"qemu-img", "create", "-q", "-f", "qcow2", "-o", "compat=1.1", "-b", "base.raw", "-F", "raw", "small.qcow2", "1024"},
	); err == nil {
		files["cor.cfg"] = corCfg
		cases = append(cases,
			liveCase{name: "cor/flag", size: -1, files: files, args: withArgs([]string{"-C", "-f", "qcow2"}, "img.qcow2",
				"read -P 0 0 4k", "read -P 0x66 200k 8k", "read -P 0x55 3M 1k", "read -P 0x77 2M 4k", "read 0 0", "map",
				"read -P 0 1M 128k", "map")},
			liveCase{name: "cor/flag-large", size: -1, files: files, args: withArgs([]string{"-C", "-f", "qcow2"}, "img.qcow2",
				"read 1k 4000000", "map")},
			liveCase{name: "cor/open-blkdebug", size: -1, files: files, args: cmds(
				"open -C -o driver=blkdebug,config=cor.cfg,image.driver=qcow2 img.qcow2", "read -P 0 1M 128k", "read -P 0 1088k 4k", "map")},
			liveCase{name: "cor/read-only", size: -1, files: files, args: withArgs([]string{"-C", "-r", "-f", "qcow2"}, "img.qcow2", "read 0 512")},
			liveCase{name: "cor/partial-cluster", size: -1, files: files, args: withArgs([]string{"-C", "-f", "qcow2"}, "small.qcow2", "read 0 1024", "map")},
			liveCase{name: "cor/raw", size: 64 * k, args: withArgs([]string{"-C", "-f", "raw"}, "img.raw", "read 0 4k", "write -P 1 0 512", "read -P 1 0 512")},
			liveCase{name: "cor/filter", size: -1, files: files, args: cmds(
				"open -o driver=copy-on-read,file.driver=qcow2 img.qcow2", "read -P 0x55 3M 1k", "read -P 0x66 200k 8k", "map", "info",
				"write -P 0x88 0 4k", "read -P 0x88 0 4k", "write -z 64k 64k", "discard 128k 64k", "length")},
			liveCase{name: "cor/filter-blkdebug", size: -1, files: files, args: cmds(
				"open -o driver=copy-on-read,file.driver=blkdebug,file.config=cor.cfg,file.image.driver=qcow2 img.qcow2",
				"read -P 0 1M 128k", "read -P 0 1088k 4k", "map")},
			liveCase{name: "cor/filter-errors", size: -1, files: files, args: cmds(
				"open -r -o driver=copy-on-read,file.driver=qcow2 img.qcow2",
				"open -o driver=copy-on-read,file.driver=qcow2,bottom=x img.qcow2",
				"open -o driver=copy-on-read,file.driver=qcow2,foo=x img.qcow2",
				"open -o driver=copy-on-read")},
		)
	} else {
		t.Logf("no copy-on-read images: %v", err)
	}
	cases = append(cases, quorumCases(t)...)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			gdir := t.TempDir()
			setupLive(t, gdir, c)
			g := runIn(t, gioBin, gdir, c.args, c.stdin)
			for _, p := range compareLive(t, c, g) {
				t.Error(p)
			}
		})
	}
}

// toolFiles runs the given commands (qemu-img, qemu-io) in a scratch
// directory and returns the files they left there, by name.
func toolFiles(t *testing.T, commands ...[]string) (map[string]string, error) {
	dir := t.TempDir()
	for _, c := range commands {
		cmd := exec.Command(c[0], c[1:]...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("%q: %v: %s", c, err, out)
		}
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	files := map[string]string{}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		files[e.Name()] = string(b)
	}
	return files, nil
}

// TestCompressFilterDiff runs the compress filter (214) through qemu-io
// and gio. gio's deflate stream is not zlib's, so the images are held
// to the same guest data (qemu-img compare) and a clean qemu-img check
// rather than to the same bytes.
func TestCompressFilterDiff(t *testing.T) {
	for _, tool := range []string{"qemu-io", "qemu-img"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skip(tool + " not on PATH")
		}
	}
	files, err := toolFiles(t,
		[]string{"qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=64k", "img.qcow2", "2M"},
		[]string{"qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=4k", "small.qcow2", "1M"},
	)
	if err != nil {
		t.Fatal(err)
	}
	imageOpts := "driver=compress,file.driver=qcow2,file.file.driver=file,file.file.filename=img.qcow2"
	jsonName := "json:{'driver': 'compress', 'file': {'driver': 'qcow2', 'file': {'driver': 'file', 'filename': 'img.qcow2'}}}"
	cases := []liveCase{
		{name: "image-opts", args: append(cmds("write -P 0xbb 0 229376", "read -P 0xbb 0 229376", "read -P 0 229376 32768", "map", "info", "length"), "--image-opts", imageOpts)},
		{name: "json-unaligned", args: withArgs(nil, jsonName, "write -P 0xcc 278528 229376", "read -P 0 262144 16384", "read -P 0xcc 278528 229376", "map")},
		{name: "overwrite", args: withArgs(nil, jsonName, "write -P 1 0 64k", "write -P 2 0 64k", "read -P 1 0 64k")},
		{name: "zero-discard", args: withArgs(nil, jsonName, "write -P 1 0 128k", "write -z 0 64k", "discard 64k 64k", "read -P 0 0 128k", "map")},
		{name: "small-clusters", args: withArgs(nil, "json:{'driver': 'compress', 'file': {'driver': 'qcow2', 'file': {'driver': 'file', 'filename': 'small.qcow2'}}}",
			"write -P 5 1000 10000", "read -P 5 1000 10000", "map")},
		{name: "raw-child", size: 64 * k, args: withArgs(nil, "json:{'driver': 'compress', 'file': {'driver': 'raw', 'file': {'driver': 'file', 'filename': 'img.raw'}}}", "read 0 512")},
		{name: "no-child", size: -1, args: cmds("open -o driver=compress")},
		{name: "unknown-option", args: withArgs(nil, "json:{'driver': 'compress', 'foo': 1, 'file': {'driver': 'qcow2', 'file': {'driver': 'file', 'filename': 'img.qcow2'}}}", "read 0 512")},
	}
	for _, c := range cases {
		if c.size == 0 {
			c.size = -1
		}
		c.files = files
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			gdir, qdir := t.TempDir(), t.TempDir()
			setupLive(t, gdir, c)
			setupLive(t, qdir, c)
			g := runIn(t, gioBin, gdir, c.args, nil)
			q := runIn(t, "qemu-io", qdir, c.args, nil)
			if qo, gout := filterQemuIO(q.out), filterQemuIO(g.out); qo != gout {
				t.Errorf("output differs (args %q)\n--- qemu-io\n%s\n--- gio\n%s", c.args, qo, gout)
			}
			if q.rc != g.rc {
				t.Errorf("exit status: qemu-io %d, gio %d", q.rc, g.rc)
			}
			for _, img := range []string{"img.qcow2", "small.qcow2"} {
				gi, qi := filepath.Join(gdir, img), filepath.Join(qdir, img)
				if out, err := exec.Command("qemu-img", "check", "-q", gi).CombinedOutput(); err != nil {
					t.Errorf("qemu-img check %s: %v\n%s", img, err, out)
				}
				if out, err := exec.Command("qemu-img", "compare", "-q", qi, gi).CombinedOutput(); err != nil {
					t.Errorf("qemu-img compare %s: %v\n%s", img, err, out)
				}
			}
		})
	}
}

// quorumCases are 081's quorum uses: three raw children voting, a broken
// quorum, rewrite-corrupted, blkverify, fifo and the option checks.
func quorumCases(t *testing.T) []liveCase {
	files, err := toolFiles(t,
		[]string{"qemu-img", "create", "-q", "-f", "raw", "1.raw", "1M"},
		[]string{"qemu-img", "create", "-q", "-f", "raw", "2.raw", "1M"},
		[]string{"qemu-img", "create", "-q", "-f", "raw", "3.raw", "1M"},
		[]string{"qemu-img", "create", "-q", "-f", "raw", "short.raw", "512k"},
		[]string{"qemu-io", "-f", "raw", "-c", "write -P 0x32 0 1M", "1.raw"},
		[]string{"qemu-io", "-f", "raw", "-c", "write -P 0x32 0 1M", "-c", "write -P 0x42 64k 64k", "2.raw"},
		[]string{"qemu-io", "-f", "raw", "-c", "write -P 0x32 0 1M", "-c", "write -P 0x43 64k 4k", "-c", "write -P 0x44 512k 4k", "3.raw"},
	)
	if err != nil {
		t.Logf("no quorum images: %v", err)
		return nil
	}
	q := func(extra string, children ...string) string {
		s := "driver=raw,file.driver=quorum" + extra
		for i, c := range children {
			s += fmt.Sprintf(",file.children.%d.driver=raw,file.children.%d.file.filename=%s", i, i, c)
		}
		return s
	}
	three := []string{"1.raw", "2.raw", "3.raw"}
	return []liveCase{
		{name: "quorum/vote", size: -1, files: files, args: cmds("open -o "+q(",file.vote-threshold=2", three...),
			"read -P 0x32 0 64k", "read -P 0x32 64k 64k", "read -P 0x32 512k 4k", "read -P 0x32 64k 4k", "map", "info", "length")},
		{name: "quorum/write", size: -1, files: files, args: cmds("open -o "+q(",file.vote-threshold=3", three...),
			"write -P 0x55 4k 8k", "read -P 0x55 4k 8k", "write -z 64k 64k", "read -P 0 64k 64k", "aio_write -P 0x56 0 512", "aio_flush", "flush", "discard 0 64k", "truncate 2M")},
		{name: "quorum/broken", size: -1, files: files, args: cmds("open -o "+q(",file.vote-threshold=3", three...), "read 64k 4k", "read -P 0x32 0 4k")},
		{name: "quorum/rewrite", size: -1, files: files, args: cmds("open -o "+q(",file.vote-threshold=2,file.rewrite-corrupted=on", three...),
			"read -P 0x32 0 1M", "close", "open -o "+q(",file.vote-threshold=3", three...), "read -P 0x32 0 1M")},
		{name: "quorum/fifo", size: -1, files: files, args: cmds("open -o "+q(",file.vote-threshold=1,file.read-pattern=fifo", "2.raw", "1.raw"), "read -P 0x42 64k 4k")},
		{name: "quorum/threshold-one-tie", size: -1, files: files, args: cmds("open -o "+q(",file.vote-threshold=1", "2.raw", "3.raw"), "read -v 64k 16")},
		{name: "quorum/blkverify-same", size: -1, files: files, args: cmds("open -o "+q(",file.vote-threshold=2,file.blkverify=on", "1.raw", "3.raw"), "read -P 0x32 0 4k", "read -P 0x32 128k 4k")},
		{name: "quorum/blkverify-mismatch", size: -1, files: files, args: cmds("open -o "+q(",file.vote-threshold=2,file.blkverify=on", "1.raw", "2.raw"), "read -P 0x32 0 4k", "read 0 1M", "read 0 4k")},
		{name: "quorum/lengths", size: -1, files: files, args: cmds("open -o "+q(",file.vote-threshold=1", "1.raw", "short.raw"), "length", "read 0 512")},
		{name: "quorum/errors", size: -1, files: files, args: cmds(
			"open -o "+q(",file.vote-threshold=2,file.blkverify=on", three...),
			"open -o "+q(",file.vote-threshold=4", three...),
			"open -o "+q(",file.vote-threshold=0", three...),
			"open -o "+q("", three...),
			"open -o "+q(",file.vote-threshold=2,file.read-pattern=lifo", three...),
			"open -o "+q(",file.vote-threshold=2,file.rewrite-corrupted=on,file.blkverify=on", "1.raw", "2.raw"),
			"open -o "+q(",file.vote-threshold=1,file.rewrite-corrupted=on,file.blkverify=on,file.read-pattern=fifo", "1.raw", "2.raw"),
			"open -o driver=raw,file.driver=quorum,file.vote-threshold=1",
			"open -o "+q(",file.vote-threshold=x", three...),
			"open -o "+q(",file.vote-threshold=1,file.bogus=1", three...))},
	}
}
