package main

// TestFormatDiff is TestRandomDiff's stricter sibling for the formats
// other than raw and plain qcow2: per configuration and seed it runs one
// random command list through qemu-io and gio on copies of one image
// qemu-img made, and besides what TestRandomDiff compares (stdout,
// stderr, exit status, guest content, qemu-img check) it compares
//
//   - the bytes of every file the run leaves (images, extents, backing
//     files), with the fields QEMU fills at random masked (vmdk's CID,
//     vhdx's header GUIDs and log): the drivers must lay out metadata
//     and data as QEMU's do;
//   - qemu-img map --output=json of the two images;
//   - gio's reading of both images: gio check against qemu-img check,
//     and the guest content gio serves (gio nbd) against qemu-img's;
//   - each tool going on with the other's image: a second command list
//     runs with qemu-io on gio's image and gio on qemu-io's, and the
//     outputs and images are compared again.
//
// Skipped in -short and without qemu-io/qemu-img. A plain run takes one
// seed of ten configurations; GIO_FMT_N seeds per configuration (of all
// of them), GIO_FMT_SEED the first, GIO_FMT_CFG keeps the configurations
// whose name contains it, GIO_DIFF_KEEP=1 reports every differing seed
// of a configuration (not only the first).

import (
	"bytes"
	"compress/bzip2"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

// samplesDir is where iotests/run.sh unpacked QEMU 7.2's iotests.
func samplesDir() string {
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache/gio-iotests/src/tests/qemu-iotests/sample_images")
}

// unpackSample writes the iotests sample image name (bzip2'd) to dst.
func unpackSample(name, dst string) error {
	f, err := os.Open(filepath.Join(samplesDir(), name+".bz2"))
	if err != nil {
		return err
	}
	defer f.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, bzip2.NewReader(f)); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// fmtConfigs lists the configurations TestFormatDiff runs: every format
// but raw and qcow2 (TestRandomDiff's own), qcow2 over a backing file of
// each format, and the read-only formats from iotests' sample images.
func fmtConfigs() []diffConfig {
	var cs []diffConfig
	for _, c := range diffConfigs() {
		f := c.name
		if i := strings.IndexAny(f, "/"); i >= 0 {
			f = f[:i]
		}
		switch f {
		case "raw", "qcow2":
			continue
		}
		cs = append(cs, c)
	}
	add := func(name, f, opts string, resize bool) {
		cr := []string{"create", "-q", "-f", f}
		if opts != "" {
			cr = append(cr, "-o", opts)
		}
		cs = append(cs, diffConfig{name: name, create: cr, open: []string{"-f", f, "img"},
			check: []string{"-f", f, "img"}, resize: resize, cluster: clusterOf(f, opts)})
	}
	add("vhdx/fixed", "vhdx", "subformat=fixed", true)
	add("vhdx/block=8M", "vhdx", "block_size=8M", true)
	add("vhdx/block_state_zero=off", "vhdx", "block_state_zero=off", true)
	add("vpc/dynamic/force_size", "vpc", "force_size=on", false)
	add("parallels/cluster=64k", "parallels", "cluster_size=64k", false)
	add("vmdk/compat6", "vmdk", "compat6=on", false)
	add("vmdk/streamOptimized/big", "vmdk", "subformat=streamOptimized", false)
	add("qed/cluster=64k/table=4", "qed", "cluster_size=64k,table_size=4", true)
	add("vdi/static/odd", "vdi", "static=on", false)
	// Past 2 GiB: several extents, a second grain directory page, vpc's
	// CHS rounding, vhdx's bigger default block size.
	big := func(name, f, opts string, resize bool) {
		add(name, f, opts, resize)
		cs[len(cs)-1].size = 5<<30 + 3<<20
	}
	big("vmdk/twoGbMaxExtentSparse/5G", "vmdk", "subformat=twoGbMaxExtentSparse", false)
	big("vmdk/twoGbMaxExtentFlat/5G", "vmdk", "subformat=twoGbMaxExtentFlat", false)
	big("vmdk/monolithicSparse/5G", "vmdk", "", false)
	big("vpc/dynamic/5G", "vpc", "", false)
	big("vhdx/5G", "vhdx", "", true)
	big("qed/5G", "qed", "", true)
	big("vdi/5G", "vdi", "", false)
	big("parallels/5G", "parallels", "", false)
	big("qcow/5G", "qcow", "", false)

	// qcow2 over a backing file of each format, the base filled with a
	// pattern and a zero range by qemu-io.
	for _, b := range []struct{ f, opts string }{
		{"raw", ""}, {"qcow2", ""}, {"vmdk", ""}, {"vmdk", "subformat=monolithicFlat"},
		{"vmdk", "subformat=streamOptimized"}, {"vhdx", ""}, {"vpc", ""}, {"vpc", "subformat=fixed"},
		{"qed", ""}, {"vdi", ""}, {"vdi", "static=on"}, {"parallels", ""}, {"qcow", ""},
	} {
		name := "qcow2/backing=" + b.f
		base := []string{"create", "-q", "-f", b.f}
		if b.opts != "" {
			name += "/" + b.opts
			base = append(base, "-o", b.opts)
		}
		cs = append(cs, diffConfig{name: name,
			create: []string{"create", "-q", "-f", "qcow2", "-o", "cluster_size=4k", "-b", "base", "-F", b.f},
			open:   []string{"-f", "qcow2", "img"}, check: []string{"-f", "qcow2", "img"},
			backing: base, baseFmt: b.f, resize: true, compress: true, cluster: 4096})
	}
	// qcow2 over a LUKS base: the base's secret goes in as backing.key-secret.
	cs = append(cs, diffConfig{name: "qcow2/backing=luks",
		create:  []string{"create", "-q", "--object", diffSecret, "-f", "qcow2", "-o", "cluster_size=4k", "-b", "base", "-F", "luks"},
		open:    []string{"--object", diffSecret, "--image-opts", "driver=qcow2,backing.key-secret=sec0,file.filename=img"},
		check:   []string{"--object", diffSecret, "--image-opts", "driver=qcow2,backing.key-secret=sec0,file.filename=img"},
		backing: []string{"create", "-q", "--object", diffSecret, "-f", "luks", "-o", "key-secret=sec0,iter-time=10"}, baseFmt: "luks",
		baseOpen: []string{"--object", diffSecret, "--image-opts", "driver=luks,key-secret=sec0,file.filename=base"},
		resize:   true, compress: true, cluster: 4096})

	// The read-only formats: the image itself (opened -r), and as the
	// backing file of a qcow2 image.
	for _, s := range []struct {
		f, sample string
		size      int64
	}{
		{"bochs", "empty.bochs", 1032192},
		{"cloop", "simple-pattern.cloop", 1 << 20},
		{"dmg", "simple-dmg.dmg", 1799168},
		{"parallels", "parallels-v1", 2 << 20},
		{"vpc", "virtualpc-dynamic.vhd", 0},
		{"vhdx", "iotest-dynamic-1G.vhdx", 0},
		{"vmdk", "iotest-version3.vmdk", 0},
	} {
		if s.size > 0 {
			cs = append(cs, diffConfig{name: "sample/" + s.f, sample: s.sample, size: s.size,
				open: []string{"-f", s.f, "img"}, check: []string{"-f", s.f, "img"}, extra: []string{"-r"}})
		}
		size := s.size
		if size == 0 {
			size = 64 << 20 // a window at the start of a big base
		}
		cs = append(cs, diffConfig{name: "qcow2/backing=sample-" + s.f, baseSample: s.sample, size: size,
			create: []string{"create", "-q", "-f", "qcow2", "-o", "cluster_size=4k", "-b", "base", "-F", s.f},
			open:   []string{"-f", "qcow2", "img"}, check: []string{"-f", "qcow2", "img"},
			resize: true, compress: true, cluster: 4096})
	}
	// Compressed writes are TestRandomDiff's: gio's deflate stream is
	// not zlib's, so the bytes (and every allocation after them) differ.
	for i := range cs {
		cs[i].compress, cs[i].noCompress = false, true
	}
	return cs
}

// fmtMasks are the bytes of a configuration's files QEMU fills at random
// (so two qemu-io runs differ there too).
func fmtMasks(cfg diffConfig, name string) []recMask {
	var ms []recMask
	if strings.HasPrefix(cfg.name, "vmdk") || strings.Contains(cfg.name, "vmdk") || cfg.sample == "iotest-version3.vmdk" {
		// vmdk_write_cid draws a new CID on the first write.
		ms = append(ms, recMask{name: name, spec: "CID", re: regexp.MustCompile(`CID=[0-9a-f]+`)})
	}
	if strings.HasPrefix(cfg.name, "vhdx") || (name == "base" && cfg.baseFmt == "vhdx") {
		// vhdx_update_header draws file_write_guid, data_write_guid
		// (and the log GUID); the header checksum covers them. The log
		// entries carry the log GUID and their own checksums.
		for _, h := range []int64{64 << 10, 128 << 10} {
			ms = append(ms, recMask{name: name, off: h + 4, n: 4}, recMask{name: name, off: h + 16, n: 48})
		}
		// The log (1 MiB at 1 MiB, as qemu-img creates it), whole:
		// besides each entry's checksum and log GUID, one run in the
		// default test differed in a descriptor's sequence number
		// (TestFormatDiff/vhdx seed 1, not reproduced by hand). The
		// log's replay after a crash is vhdx_crash_test's.
		ms = append(ms, recMask{name: name, off: 1 << 20, n: 1 << 20})
	}
	return ms
}

// fileDiff finds where two files differ once masked: "" when they do not.
func fileDiff(a, b string, masks []recMask) string {
	sa, ha, err := zeroHash(a, masks...)
	if err != nil {
		return err.Error()
	}
	sb, hb, err := zeroHash(b, masks...)
	if err != nil {
		return err.Error()
	}
	if sa == sb && ha == hb {
		return ""
	}
	if sa > 256<<20 || sb > 256<<20 {
		return fmt.Sprintf("sizes %d/%d, hashes differ", sa, sb)
	}
	ba, _ := os.ReadFile(a)
	bb, _ := os.ReadFile(b)
	applyMasks(ba, 0, int64(len(ba)), masks)
	applyMasks(bb, 0, int64(len(bb)), masks)
	var where []string
	for off := 0; off < max(len(ba), len(bb)) && len(where) < 4; off += 4096 {
		x := ba[min(off, len(ba)):min(off+4096, len(ba))]
		y := bb[min(off, len(bb)):min(off+4096, len(bb))]
		if len(masks) > 0 {
			x, y = maskText(append([]byte(nil), x...), masks), maskText(append([]byte(nil), y...), masks)
		}
		x, y = bytes.TrimRight(x, "\x00"), bytes.TrimRight(y, "\x00")
		if !bytes.Equal(x, y) {
			i := 0
			for i < len(x) && i < len(y) && x[i] == y[i] {
				i++
			}
			where = append(where, fmt.Sprintf("0x%x", off+i))
		}
	}
	return fmt.Sprintf("sizes %d/%d, first differences at %s", len(ba), len(bb), strings.Join(where, " "))
}

// regularFiles lists the names of the regular files in dir.
func regularFiles(dir string) []string {
	es, _ := os.ReadDir(dir)
	var ns []string
	for _, e := range es {
		if e.Type().IsRegular() {
			ns = append(ns, e.Name())
		}
	}
	sort.Strings(ns)
	return ns
}

// compareImages compares what the run left in qd (qemu-io's) and gd
// (gio's): file bytes, qemu-img map, and gio's reading of both.
func (s diffSeq) compareImages(qd, gd string) []string {
	var diffs []string
	qn, gn := regularFiles(qd), regularFiles(gd)
	if strings.Join(qn, " ") != strings.Join(gn, " ") {
		diffs = append(diffs, fmt.Sprintf("files: qemu-io's %v, gio's %v", qn, gn))
	}
	for _, n := range qn {
		if !contains(gn, n) {
			continue
		}
		if n == "img" && strings.Contains(s.cfg.name, "streamOptimized") && !strings.Contains(s.cfg.name, "backing") {
			// Every grain is deflated: gio's stream is not zlib's
			// (the map and the content are still compared).
			continue
		}
		if d := fileDiff(filepath.Join(qd, n), filepath.Join(gd, n), fmtMasks(s.cfg, n)); d != "" {
			diffs = append(diffs, "bytes of "+n+": "+d)
		}
	}
	mapArgs := append([]string{"map", "--output=json"}, s.cfg.check...)
	qm := diffExec(qd, "qemu-img", mapArgs, "", time.Minute)
	gm := diffExec(gd, "qemu-img", mapArgs, "", time.Minute)
	if a, b := fmtFilter(qm.stdout+qm.stderr), fmtFilter(gm.stdout+gm.stderr); a != b {
		diffs = append(diffs, "qemu-img map --output=json:\n"+lineDiff(a, b))
	}
	// gio reads both images as qemu-img does. (Not a 5 GiB image:
	// qemu-img compare reads all of an NBD export, whose raw node
	// reports every byte allocated.)
	if s.cfg.check[len(s.cfg.check)-2] != "--image-opts" && s.size <= 256<<20 {
		for _, d := range []string{qd, gd} {
			chk := append([]string{"check"}, s.cfg.check...)
			q := diffExec(d, "qemu-img", chk, "", time.Minute)
			g := diffExec(d, gioBin, chk, "", time.Minute)
			if a, b := filterCheck(fmtFilter(q.stdout+q.stderr)), filterCheck(fmtFilter(g.stdout+g.stderr)); a != b || q.rc != g.rc {
				diffs = append(diffs, fmt.Sprintf("check of %s's image: qemu-img (rc %d), gio check (rc %d):\n%s", who(d, qd), q.rc, g.rc, lineDiff(a, b)))
			}
			if x := s.servedContent(d, "img", "img"); x != "" {
				diffs = append(diffs, fmt.Sprintf("content gio serves of %s's image: %s", who(d, qd), x))
			}
		}
		// An image qemu-img convert wrote (its own layout: zero
		// detection, sequential allocation) read by gio.
		if x := s.convertedContent(qd); x != "" {
			diffs = append(diffs, "qemu-img convert of qemu-io's image: "+x)
		}
	}
	return diffs
}

// createOpts is the -o value of the configuration's qemu-img create.
func (s diffSeq) createOpts() string {
	for i, a := range s.cfg.create {
		if a == "-o" && i+1 < len(s.cfg.create) {
			return s.cfg.create[i+1]
		}
	}
	return ""
}

// convertedContent has qemu-img convert the image in dir to a new image
// of the same format and options, then checks it with gio check and
// compares what gio serves of it with the original.
func (s diffSeq) convertedContent(dir string) string {
	f := s.cfg.check[1]
	if f == "dmg" || f == "cloop" || f == "bochs" {
		return "" // qemu-img cannot write them
	}
	cd, err := os.MkdirTemp(dir, "conv")
	if err != nil {
		return err.Error()
	}
	defer os.RemoveAll(cd)
	args := []string{"convert", "-f", f, "-O", f}
	if o := s.createOpts(); o != "" {
		args = append(args, "-o", o)
	}
	args = append(args, "img", filepath.Join(cd, "img"))
	if c := diffExec(dir, "qemu-img", args, "", time.Minute); c.rc != 0 {
		return fmt.Sprintf("qemu-img %s (rc %d): %s%s", strings.Join(args, " "), c.rc, c.stdout, c.stderr)
	}
	chk := []string{"check", "-f", f, "img"}
	q := diffExec(cd, "qemu-img", chk, "", time.Minute)
	g := diffExec(cd, gioBin, chk, "", time.Minute)
	if a, b := filterCheck(fmtFilter(q.stdout+q.stderr)), filterCheck(fmtFilter(g.stdout+g.stderr)); a != b || q.rc != g.rc {
		return fmt.Sprintf("qemu-img check (rc %d), gio check (rc %d):\n%s", q.rc, g.rc, lineDiff(a, b))
	}
	return s.servedContent(cd, "img", filepath.Join(dir, "img"))
}

func fmtFilter(s string) string {
	return fmtKnown.ReplaceAllString(diffFilter(s), "${1}X")
}

func who(d, qd string) string {
	if d == qd {
		return "qemu-io"
	}
	return "gio"
}

// servedContent exports the image name in dir read-only with gio nbd and
// has qemu-img compare the export with the image ref as qemu reads it.
func (s diffSeq) servedContent(dir, name, ref string) string {
	sock := filepath.Join(dir, "nbd.sock")
	defer os.Remove(sock)
	args := append([]string{"nbd", "-r", "-k", sock}, s.cfg.check[:len(s.cfg.check)-1]...)
	args = append(args, name)
	srv := make(chan diffRun, 1)
	go func() { srv <- diffExec(dir, gioBin, args, "", time.Minute) }()
	for i := 0; i < 400; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		select {
		case r := <-srv:
			return fmt.Sprintf("gio nbd exited (rc %d): %s%s", r.rc, r.stdout, r.stderr)
		case <-time.After(25 * time.Millisecond):
		}
	}
	f := s.cfg.check[1]
	// The socket file exists from bind on, before listen: a refused
	// connection is retried (a refused client is not gio nbd's one
	// client, so the server is still there).
	var c diffRun
	for i := 0; i < 50; i++ {
		c = diffExec(dir, "qemu-img", []string{"compare", "-f", "raw", "nbd+unix:///?socket=" + sock, "-F", f, ref}, "", 3*time.Minute)
		if !strings.Contains(c.stderr, "Connection refused") {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	r := <-srv
	if c.rc != 0 {
		return fmt.Sprintf("qemu-img compare (rc %d): %s%s (gio nbd: %s)", c.rc, c.stdout, c.stderr, r.stderr)
	}
	return ""
}

// runPair runs one command list through qemu-io in qd and gio in gd and
// compares what they print and leave.
func (s diffSeq) runPair(qd, gd string, cmds [][]string, strict bool) (diffs []string, qemuCrashed bool) {
	q, g, diffs, done, qemuCrashed := s.execBoth(qd, gd, cmds)
	if done {
		return diffs, qemuCrashed
	}
	qo, gout := fmtFilter(q.stdout), fmtFilter(g.stdout)
	if concurrentAIO(cmds) {
		qo, gout = sortLines(qo), sortLines(gout)
	}
	if qo != gout {
		diffs = append(diffs, "stdout:\n"+lineDiff(qo, gout))
	}
	if a, b := fmtFilter(q.stderr), fmtFilter(g.stderr); a != b {
		diffs = append(diffs, "stderr:\n"+lineDiff(a, b))
	}
	if q.rc != g.rc {
		diffs = append(diffs, fmt.Sprintf("exit: qemu-io %d, gio %d", q.rc, g.rc))
	}
	cmp := append([]string{"compare"}, s.compareArgs(filepath.Join(qd, "img"), filepath.Join(gd, "img"))...)
	if c := diffExec(qd, "qemu-img", cmp, "", time.Minute); c.rc != 0 {
		diffs = append(diffs, fmt.Sprintf("qemu-img compare (rc %d): %s%s", c.rc, c.stdout, c.stderr))
	}
	chk := append([]string{"check"}, s.cfg.check...)
	qc := diffExec(qd, "qemu-img", chk, "", time.Minute)
	gc := diffExec(gd, "qemu-img", chk, "", time.Minute)
	if a, b := filterCheck(fmtFilter(qc.stdout+qc.stderr)), filterCheck(fmtFilter(gc.stdout+gc.stderr)); a != b || qc.rc != gc.rc {
		diffs = append(diffs, fmt.Sprintf("qemu-img check: qemu-io's image (rc %d), gio's (rc %d):\n%s", qc.rc, gc.rc, lineDiff(a, b)))
	}
	if strict {
		diffs = append(diffs, s.compareImages(qd, gd)...)
	}
	return diffs, false
}

// fmtOutcome runs cmds on fresh copies of proto (the strict comparison),
// then more commands with the images swapped between the tools.
func (s diffSeq) fmtOutcome(t *testing.T, proto string, cmds, more [][]string) (diffs []string, qemuCrashed bool) {
	t.Helper()
	qd, gd := t.TempDir(), t.TempDir()
	for _, d := range []string{qd, gd} {
		if err := copyFiles(proto, d); err != nil {
			t.Fatal(err)
		}
	}
	diffs, qemuCrashed = s.runPair(qd, gd, cmds, true)
	if len(diffs) > 0 || qemuCrashed || more == nil {
		return diffs, qemuCrashed
	}
	// Each tool goes on with the other's image.
	d, crashed := s.runPair(gd, qd, more, true)
	for _, x := range d {
		diffs = append(diffs, "after swapping the images: "+x)
	}
	return diffs, crashed
}

// fmtSeed is the generator seed of a configuration's seed number.
func fmtSeed(name string, seed int64) int64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return int64(h.Sum64()>>2) + 2*seed
}

// fmtKnown are output differences that are QEMU's randomness: vmdk's
// CID (info), drawn again on the first write of each open.
var fmtKnown = regexp.MustCompile(`(?m)^(    (parent )?cid: )[0-9]+$`)

func TestFormatDiff(t *testing.T) {
	t.Parallel() // subprocesses only
	if testing.Short() {
		t.Skip("-short: the format differential tester runs qemu-io")
	}
	if !haveTool("qemu-io") || !haveTool("qemu-img") {
		t.Skip("needs qemu-io and qemu-img")
	}
	n, first := envInt("GIO_FMT_N", 1), envInt("GIO_FMT_SEED", 1)
	keep := os.Getenv("GIO_DIFF_KEEP") == "1"
	// A plain run takes one seed of one configuration per format (a
	// minute or so); GIO_FMT_N or GIO_FMT_CFG select from all of them.
	all := os.Getenv("GIO_FMT_N") != "" || os.Getenv("GIO_FMT_CFG") != ""
	quick := map[string]bool{"vmdk/monolithicSparse": true, "vhdx": true, "vpc/dynamic": true, "qed": true,
		"vdi": true, "parallels": true, "qcow": true, "luks": true, "qcow2/backing=vmdk": true, "sample/cloop": true}
	for _, cfg := range fmtConfigs() {
		if !strings.Contains(cfg.name, os.Getenv("GIO_FMT_CFG")) || (!all && !quick[cfg.name]) {
			continue
		}
		if cfg.sample != "" || cfg.baseSample != "" {
			if _, err := os.Stat(samplesDir()); err != nil {
				continue
			}
		}
		t.Run(cfg.name, func(t *testing.T) {
			t.Parallel()
			failed, crashes := 0, 0
			for seed := first; seed < first+n; seed++ {
				// Each configuration draws its own lists from a seed.
				s := drawSeq(fmtSeed(cfg.name, seed), []diffConfig{cfg})
				// The second list, for the swapped images.
				s2 := drawSeq(fmtSeed(cfg.name, seed)+1, []diffConfig{cfg})
				proto := t.TempDir()
				if err := s.makeImage(proto); err != nil {
					t.Errorf("seed %d: %v", seed, err)
					continue
				}
				diffs, crashed := s.fmtOutcome(t, proto, s.cmds, s2.cmds)
				if crashed && len(diffs) == 0 {
					crashes++
					t.Logf("seed %d: qemu-io crashed or hung: skipped\n  qemu-io %s", seed, s.text(s.cmds))
					continue
				}
				if len(diffs) == 0 {
					continue
				}
				// Shrink the first list alone when it differs by itself.
				cmds := s.cmds
				if d, _ := s.fmtOutcome(t, proto, s.cmds, nil); len(d) > 0 {
					for changed := true; changed; {
						changed = false
						for i := 0; i < len(cmds); i++ {
							try := append(append([][]string(nil), cmds[:i]...), cmds[i+1:]...)
							if d, _ := s.fmtOutcome(t, proto, try, nil); len(d) > 0 {
								cmds, diffs, changed = try, d, true
								i--
							}
						}
					}
				}
				then := ""
				if len(cmds) == len(s.cmds) {
					then = "\n  then on the swapped images: qemu-io " + s2.text(s2.cmds)
				}
				t.Errorf("seed %d (size %d): gio differs from qemu-io\n  qemu-img %s img %d\n  qemu-io %s%s\n%s",
					seed, s.size, strings.Join(s.cfg.create, " "), s.size, s.text(cmds), then, strings.Join(diffs, "\n"))
				failed++
				if !keep {
					break
				}
			}
			t.Logf("%d seeds from %d: %d differ, %d skipped (qemu-io crashed)", n, first, failed, crashes)
		})
	}
}
