package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"gio/blk"
	"gio/commands"
	"gio/repl"
)

// Differential tests of "gio check" against "qemu-img check": the same
// image, the same options; stdout, stderr, the exit status and, after a
// repair, the image's bytes must be the same. They skip without qemu-img.

// checkModes are the qemu-img check command lines compared.
var checkModes = [][]string{
	nil,
	{"--output=json"},
	{"-r", "leaks"},
	{"-r", "all"},
	{"-r", "all", "--output=json"},
}

// diffCheck runs every check mode on a copy of img with both tools and
// reports the differences. It returns qemu-img check's exit status
// without options.
//
// The copies are sparse and compared by their data extents: a repair
// may grow an image to a refcount block far past its end (1 GiB for
// refblock-past-eof), which read whole cost seconds and gigabytes.
func diffCheck(t *testing.T, img string, modes [][]string) int {
	t.Helper()
	base := filepath.Base(img)
	status := -1
	for _, mode := range modes {
		type run struct {
			stdout, stderr string
			code           int
			image          string // the image afterwards
		}
		do := func(tool string, argv []string) run {
			dir := t.TempDir()
			if err := copySparse(img, filepath.Join(dir, base)); err != nil {
				t.Fatal(err)
			}
			o, e, code := runStatus(t, dir, tool, append(append(argv, mode...), base)...)
			return run{o, e, code, filepath.Join(dir, base)}
		}
		q := do("qemu-img", []string{"check"})
		g := do(gioBin, []string{"check"})
		if mode == nil {
			status = q.code
		}
		name := strings.Join(mode, " ")
		if g.stdout != q.stdout {
			t.Errorf("check %s: stdout differs\ngio:\n%s\nqemu-img:\n%s", name, g.stdout, q.stdout)
		}
		if g.stderr != q.stderr {
			t.Errorf("check %s: stderr differs\ngio:\n%s\nqemu-img:\n%s", name, g.stderr, q.stderr)
		}
		if g.code != q.code {
			t.Errorf("check %s: exit %d, qemu-img %d", name, g.code, q.code)
		}
		maskCheckImage(t, g.image)
		maskCheckImage(t, q.image)
		gsize, gsum, err1 := zeroHash(g.image)
		qsize, qsum, err2 := zeroHash(q.image)
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if gsize != qsize || gsum != qsum {
			off, err := firstDifference(g.image, q.image)
			t.Errorf("check %s: the image differs afterwards (gio %d bytes, qemu-img %d bytes; first difference at %#x, %v)",
				name, gsize, qsize, off, err)
		}
	}
	return status
}

// maskCheckImage clears, in the copy at path, what a repair writes at
// random: a vhdx image's two headers (64 KiB to 192 KiB: QEMU draws new
// file and data write GUIDs on a read/write open, gio derives its own).
func maskCheckImage(t *testing.T, path string) {
	t.Helper()
	if !strings.HasSuffix(path, ".vhdx") {
		return
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || st.Size() < 192<<10 {
		return
	}
	if _, err := f.WriteAt(make([]byte, 128<<10), 64<<10); err != nil {
		t.Fatal(err)
	}
}

// runStatus runs a program in dir and returns its stdout, stderr and exit
// status.
func runStatus(t *testing.T, dir, tool string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(tool, args...)
	cmd.Dir = dir
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatal(err)
		}
		code = ee.ExitCode()
	}
	return o.String(), e.String(), code
}

// qimage is a qcow2 image's layout, for corrupting it on purpose.
type qimage struct {
	f           *os.File
	clusterBits uint
	l1, reftab  int64
}

func openQimage(t *testing.T, path string) *qimage {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	q := &qimage{f: f}
	q.clusterBits = uint(q.u32(t, 20))
	q.l1 = int64(q.u64(t, 40))
	q.reftab = int64(q.u64(t, 48))
	return q
}

func (q *qimage) u64(t *testing.T, off int64) uint64 {
	var b [8]byte
	if _, err := q.f.ReadAt(b[:], off); err != nil {
		t.Fatal(err)
	}
	return binary.BigEndian.Uint64(b[:])
}

func (q *qimage) u32(t *testing.T, off int64) uint32 {
	var b [4]byte
	if _, err := q.f.ReadAt(b[:], off); err != nil {
		t.Fatal(err)
	}
	return binary.BigEndian.Uint32(b[:])
}

func (q *qimage) put64(t *testing.T, off int64, v uint64) {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	if _, err := q.f.WriteAt(b[:], off); err != nil {
		t.Fatal(err)
	}
}

func (q *qimage) put16(t *testing.T, off int64, v uint16) {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	if _, err := q.f.WriteAt(b[:], off); err != nil {
		t.Fatal(err)
	}
}

// l2 is the offset of the first L2 table; entry i of it is at l2+8*i.
func (q *qimage) l2(t *testing.T) int64 { return int64(q.u64(t, q.l1) & 0x00fffffffffffe00) }

// refblock is the offset of the first refcount block (16-bit entries).
func (q *qimage) refblock(t *testing.T) int64 { return int64(q.u64(t, q.reftab) &^ 0x1ff) }

// setRefcount sets the refcount of the cluster at off.
func (q *qimage) setRefcount(t *testing.T, off int64, v uint16) {
	q.put16(t, q.refblock(t)+2*(off>>q.clusterBits), v)
}

// dataOff is the host offset of L2 entry i.
func (q *qimage) dataOff(t *testing.T, i int64) int64 {
	return int64(q.u64(t, q.l2(t)+8*i) & 0x00fffffffffffe00)
}

func TestCheckCorrupted(t *testing.T) {
	t.Parallel() // subprocesses only
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not on PATH")
	}
	if _, err := exec.LookPath("qemu-io"); err != nil {
		t.Skip("qemu-io not on PATH")
	}
	const copied = 1 << 63
	cases := []struct {
		name    string
		opts    string // qemu-img create -o
		io      []string
		corrupt func(t *testing.T, q *qimage)
		// setup runs qemu-img commands on the image before corrupt.
		setup []string
		// modes replaces checkModes when not nil.
		modes [][]string
	}{
		{"clean", "", nil, nil, nil, nil},
		{"leak", "", nil, func(t *testing.T, q *qimage) {
			// Cluster 2 is data; drop its L2 entry: its refcount leaks.
			q.put64(t, q.l2(t)+8*1, 0)
		}, nil, nil},
		{"refcount-high", "", nil, func(t *testing.T, q *qimage) { q.setRefcount(t, q.dataOff(t, 0), 2) }, nil, nil},
		{"refcount-low", "", nil, func(t *testing.T, q *qimage) { q.setRefcount(t, q.dataOff(t, 0), 0) }, nil, nil},
		{"refcount-low-l2", "", nil, func(t *testing.T, q *qimage) { q.setRefcount(t, q.l2(t), 0) }, nil, nil},
		{"copied-cleared", "", nil, func(t *testing.T, q *qimage) {
			q.put64(t, q.l2(t), q.u64(t, q.l2(t))&^copied)
		}, nil, nil},
		{"copied-l1-cleared", "", nil, func(t *testing.T, q *qimage) { q.put64(t, q.l1, q.u64(t, q.l1)&^copied) }, nil, nil},
		{"l2-into-l1", "", nil, func(t *testing.T, q *qimage) {
			q.put64(t, q.l2(t)+8*1, uint64(q.l1)|copied)
		}, nil, nil},
		{"l2-unaligned-data", "", nil, func(t *testing.T, q *qimage) {
			q.put64(t, q.l2(t), q.u64(t, q.l2(t))+0x200)
		}, nil, nil},
		{"l2-unaligned-prealloc", "", []string{"write -z 0 64k"}, func(t *testing.T, q *qimage) {
			// A preallocated zero cluster, misaligned.
			q.put64(t, q.l2(t)+8*3, uint64(q.dataOff(t, 1))|0x200|copied|1)
		}, nil, nil},
		{"l2-past-eof", "", nil, func(t *testing.T, q *qimage) {
			q.put64(t, q.l2(t)+8*5, 1<<40|copied)
		}, nil, nil},
		{"l2-reserved", "", nil, func(t *testing.T, q *qimage) {
			q.put64(t, q.l2(t), q.u64(t, q.l2(t))|1<<60)
		}, nil, nil},
		{"l1-reserved", "", nil, func(t *testing.T, q *qimage) { q.put64(t, q.l1, q.u64(t, q.l1)|1<<58) }, nil, nil},
		{"l1-unaligned", "", nil, func(t *testing.T, q *qimage) { q.put64(t, q.l1, q.u64(t, q.l1)+0x200) }, nil, nil},
		{"refblock-past-eof", "", nil, func(t *testing.T, q *qimage) { q.put64(t, q.reftab+8, 1<<30) }, nil, nil},
		{"refblock-unaligned", "", nil, func(t *testing.T, q *qimage) { q.put64(t, q.reftab, q.u64(t, q.reftab)+0x1000) }, nil, nil},
		{"reftable-reserved", "", nil, func(t *testing.T, q *qimage) { q.put64(t, q.reftab, q.u64(t, q.reftab)|1) }, nil, nil},
		{"compressed-copied", "", []string{"write -c -P 7 128k 64k"}, func(t *testing.T, q *qimage) {
			q.put64(t, q.l2(t)+8*2, q.u64(t, q.l2(t)+8*2)|copied)
		}, nil, nil},
		{"corrupt-bit", "", nil, func(t *testing.T, q *qimage) {
			q.put64(t, 72, q.u64(t, 72)|2)
		}, nil, nil},
		{"two-refs", "", nil, func(t *testing.T, q *qimage) {
			// Two L2 entries share a cluster whose refcount is 1.
			q.put64(t, q.l2(t)+8*4, q.u64(t, q.l2(t)))
		}, nil, nil},
		{"extl2-bitmap", "extended_l2=on", nil, func(t *testing.T, q *qimage) {
			// Entry 0's bitmap: a subcluster both allocated and zero.
			e := q.u64(t, q.l2(t)+8)
			q.put64(t, q.l2(t)+8, e|1<<32|1)
		}, nil, nil},
		{name: "snapshot", setup: []string{"snapshot -c s1"}, io: []string{"write -P 9 0 64k"}},
		{name: "snapshot-unaligned-l1", setup: []string{"snapshot -c s1"}, corrupt: func(t *testing.T, q *qimage) {
			sn := int64(q.u64(t, 64))
			q.put64(t, sn, q.u64(t, sn)+0x200)
		}},
		{name: "snapshot-l1-too-large", setup: []string{"snapshot -c s1"}, corrupt: func(t *testing.T, q *qimage) {
			sn := int64(q.u64(t, 64))
			var b [4]byte
			binary.BigEndian.PutUint32(b[:], 0x4000000)
			q.f.WriteAt(b[:], sn+8)
		}},
		{name: "snapshot-incomplete", setup: []string{"snapshot -c s1"}, corrupt: func(t *testing.T, q *qimage) {
			sn := int64(q.u64(t, 64))
			var b [4]byte
			binary.BigEndian.PutUint32(b[:], 8)
			q.f.WriteAt(b[:], sn+36)
		}},
		{name: "snapshot-extra-too-big", setup: []string{"snapshot -c s1"}, corrupt: func(t *testing.T, q *qimage) {
			sn := int64(q.u64(t, 64))
			var b [4]byte
			binary.BigEndian.PutUint32(b[:], 2000)
			q.f.WriteAt(b[:], sn+36)
		}},
		{name: "snapshot-too-many", setup: []string{"snapshot -c s1"}, corrupt: func(t *testing.T, q *qimage) {
			var b [4]byte
			binary.BigEndian.PutUint32(b[:], 65536+3)
			q.f.WriteAt(b[:], 60)
		}},
		{name: "snapshot-two-one-incomplete", setup: []string{"snapshot -c s1", "snapshot -c s2"}, corrupt: func(t *testing.T, q *qimage) {
			sn := int64(q.u64(t, 64))
			var b [4]byte
			binary.BigEndian.PutUint32(b[:], 0)
			q.f.WriteAt(b[:], sn+36)
		}},
		{name: "snapshot-table-unaligned", setup: []string{"snapshot -c s1"}, corrupt: func(t *testing.T, q *qimage) {
			q.put64(t, 64, q.u64(t, 64)+8)
		}},
		{name: "snapshot-leaks", setup: []string{"snapshot -c s1", "snapshot -c s2"}, corrupt: func(t *testing.T, q *qimage) {
			q.setRefcount(t, q.dataOff(t, 1), 3)
		}},
		{name: "bitmaps", setup: []string{"bitmap --add img.qcow2 b0", "bitmap --add -g 64k img.qcow2 b1"}},
		{name: "bitmaps-leak", setup: []string{"bitmap --add img.qcow2 b0"}, corrupt: func(t *testing.T, q *qimage) {
			q.put64(t, q.l2(t)+8*1, 0)
		}},
		{name: "refcount-bits-1", opts: "refcount_bits=1"},
		{name: "refcount-bits-64", opts: "refcount_bits=64"},
		{name: "cluster-512", opts: "cluster_size=512", io: []string{"write -c -P 5 2M 4k"}},
		{name: "cluster-2M", opts: "cluster_size=2M", io: []string{"write -P 5 2M 4k"}},
		{name: "zstd", opts: "compression_type=zstd", io: []string{"write -c -P 5 2M 64k"}},
		{name: "extl2-compressed-bitmap", opts: "extended_l2=on", io: []string{"write -c -P 7 128k 64k"}, corrupt: func(t *testing.T, q *qimage) {
			// Entry 2 (16 bytes each) is compressed: give it a bitmap.
			q.put64(t, q.l2(t)+16*2+8, 1)
		}},
		{name: "extl2-unallocated-bitmap", opts: "extended_l2=on", corrupt: func(t *testing.T, q *qimage) {
			q.put64(t, q.l2(t)+16*7+8, 1)
		}},
		{name: "extl2-unaligned-zero", opts: "extended_l2=on", corrupt: func(t *testing.T, q *qimage) {
			// Entry 0 misaligned, its subclusters all zero: repairable.
			q.put64(t, q.l2(t), q.u64(t, q.l2(t))+0x200)
			q.put64(t, q.l2(t)+8, 0xffffffff<<32)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			img := filepath.Join(dir, "img.qcow2")
			args := []string{"create", "-q", "-f", "qcow2"}
			if c.opts != "" {
				args = append(args, "-o", c.opts)
			}
			mustRun(t, "qemu-img", append(args, img, "4M")...)
			io := append([]string{"write -P 1 0 64k", "write -P 2 64k 64k", "write -P 3 1M 4k"}, c.io...)
			var qargs []string
			for _, l := range io {
				qargs = append(qargs, "-c", l)
			}
			mustRun(t, "qemu-io", append(qargs, img)...)
			for _, l := range c.setup {
				argv := strings.Fields(l)
				if !strings.HasSuffix(l, "b0") && !strings.HasSuffix(l, "b1") {
					argv = append(argv, img)
				} else {
					argv[len(argv)-2] = img
				}
				mustRun(t, "qemu-img", argv...)
			}
			if c.corrupt != nil {
				c.corrupt(t, openQimage(t, img))
			}
			modes := checkModes
			if c.modes != nil {
				modes = c.modes
			}
			diffCheck(t, img, modes)
		})
	}
}

// TestCheckCrashLazy compares the checks on images left by SIGKILL in
// the middle of a workload with lazy refcounts: dirty images whose
// refcounts lag behind their L2 tables (leaks and refcount errors, which
// -r all repairs by rebuilding).
func TestCheckCrashLazy(t *testing.T) {
	t.Parallel() // subprocesses only
	if testing.Short() {
		t.Skip("crash test skipped in -short mode")
	}
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not on PATH")
	}
	rng := rand.New(rand.NewPCG(12, 2))
	dirty := 0
	for range 6 {
		dir := t.TempDir()
		img := filepath.Join(dir, "img.qcow2")
		mustRun(t, "qemu-img", "create", "-q", "-f", "qcow2", "-o", "lazy_refcounts=on,cluster_size=4k", img, "16M")
		cmd := exec.Command(gioBin, "-t", "writeback", img)
		cmd.Stdin = strings.NewReader(crashWorkload(rng, 16<<20, 400))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(20+rng.IntN(150)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		if code := diffCheck(t, img, checkModes); code != 0 {
			dirty++
		}
	}
	t.Logf("%d of 6 crash images were not clean", dirty)
}

// TestCheckCommandLine compares gio check's and qemu-img check's
// answers to their command lines: usage errors, formats without a check
// (63), files that cannot be opened, -q.
func TestCheckCommandLine(t *testing.T) {
	t.Parallel() // subprocesses only
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not on PATH")
	}
	dir := t.TempDir()
	mustRun(t, "qemu-img", "create", "-q", "-f", "qcow2", filepath.Join(dir, "a.qcow2"), "1M")
	mustRun(t, "qemu-img", "create", "-q", "-f", "raw", filepath.Join(dir, "r.raw"), "1M")
	for _, args := range [][]string{
		{"a.qcow2"}, {"-q", "a.qcow2"}, {"-f", "qcow2", "a.qcow2"}, {"-U", "a.qcow2"},
		{"r.raw"}, {"-f", "raw", "r.raw"}, {"-f", "raw", "a.qcow2"}, {"-f", "qcow2", "r.raw"},
		{"nonexistent.qcow2"}, {}, {"a.qcow2", "r.raw"},
		{"-r", "foo", "a.qcow2"}, {"-r"}, {"--output=xml", "a.qcow2"}, {"--output", "json", "a.qcow2"},
		{"-x", "a.qcow2"}, {"--bogus", "a.qcow2"}, {"-U", "-r", "all", "a.qcow2"},
	} {
		qo, qe, qc := runStatus(t, dir, "qemu-img", append([]string{"check"}, args...)...)
		gosOut, ge, gc := runStatus(t, dir, gioBin, append([]string{"check"}, args...)...)
		if qo != gosOut || qe != ge || qc != gc {
			t.Errorf("check %q:\ngio (exit %d):\n%s%s\nqemu-img (exit %d):\n%s%s", args, gc, gosOut, ge, qc, qo, qe)
		}
	}
}

// TestCheckShell runs the check command at gio's prompt on an image
// with a leak: the reports are qemu-img check's, the repair is the same.
func TestCheckShell(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not on PATH")
	}
	dir := t.TempDir()
	img := filepath.Join(dir, "img.qcow2")
	mustRun(t, "qemu-img", "create", "-q", "-f", "qcow2", img, "4M")
	mustRun(t, gioBin, "-c", "write -P 1 0 64k", "-c", "write -P 2 64k 64k", img)
	q := openQimage(t, img)
	q.put64(t, q.l2(t)+8, 0)
	q.f.Close()
	orig, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(gioBin, "-c", "check", "-c", "check --output=json", "-c", "check -q", "-c", "check -r leaks", "-c", "check", img)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("gio: %v\n%s", err, out)
	}
	repaired, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(img, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	qemu := func(args ...string) string {
		out, _ := exec.Command("qemu-img", append(append([]string{"check"}, args...), img)...).Output()
		return string(out)
	}
	want := qemu() + qemu("--output=json") + qemu("-r", "leaks") + qemu()
	if after, _ := os.ReadFile(img); !bytes.Equal(after, repaired) {
		t.Errorf("the image differs after check -r leaks at the prompt and qemu-img check -r leaks")
	}
	if string(out) != want {
		t.Errorf("check at the prompt:\n%s\nqemu-img check:\n%s", out, want)
	}
}

// TestCheckImageAPI exercises the calls gio explore and crash states
// use, without qemu-img: a leak found, repaired and gone; a format
// without a check.
func TestCheckImageAPI(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "img.qcow2")
	raw := filepath.Join(dir, "img.raw")
	mustRun(t, gioBin, "-c", "create -f qcow2 "+img+" 4M", "-c", "create -f raw "+raw+" 1M")
	mustRun(t, gioBin, "-c", "write -P 1 0 64k", "-c", "write -P 2 64k 64k", img)
	q := openQimage(t, img)
	q.put64(t, q.l2(t)+8, 0)
	var out, errw bytes.Buffer
	s := env.NewSession(repl.NewStdioWriter(&out, false), &errw, blk.NewVirtualClock())
	defer s.Cleanup()
	var msgs bytes.Buffer
	rep, err := commands.CheckImage(s, img, "", 0, &msgs)
	if err != nil || rep.Leaks != 1 || rep.Corruptions != 0 || commands.CheckStatus(rep, err) != 3 || rep.Format != "qcow2" {
		t.Errorf("leaked image: %+v, %v (status %d)", rep, err, commands.CheckStatus(rep, err))
	}
	if !strings.HasPrefix(msgs.String(), "Leaked cluster ") {
		t.Errorf("messages: %q", msgs.String())
	}
	rep, err = commands.CheckImage(s, img, "qcow2", blk.CheckFixLeaks, nil)
	if err != nil || rep.Leaks != 0 || rep.LeaksFixed != 1 || commands.CheckStatus(rep, err) != 0 {
		t.Errorf("-r leaks: %+v, %v", rep, err)
	}
	rep, err = commands.CheckImage(s, raw, "", 0, nil)
	if !errors.Is(err, commands.ErrNoCheck) || commands.CheckStatus(rep, err) != 63 {
		t.Errorf("raw: %+v, %v", rep, err)
	}
	if _, err = commands.CheckImage(s, filepath.Join(dir, "none"), "", 0, nil); err == nil || commands.CheckStatus(rep, err) != 1 {
		t.Errorf("missing file: %v", err)
	}
	if out.Len() != 0 {
		t.Errorf("the API printed %q", out.String())
	}
}
