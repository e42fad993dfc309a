package qcow2_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gio/blk"
	"gio/blk/blktest"
	"gio/blk/drivers/file"
	"gio/blk/drivers/qcow2"
	"gio/blk/drivers/raw"
	"gio/blk/qdict"

	"golang.org/x/sys/unix"
)

func registry() *blk.Registry { return blk.NewRegistry(file.Driver, raw.Driver, qcow2.Driver) }

// create makes a qcow2 image with gio's Create.
func create(t testing.TB, path string, size int64, kv ...string) {
	t.Helper()
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	opts := qdict.New()
	for i := 0; i+1 < len(kv); i += 2 {
		opts.Set(kv[i], kv[i+1])
	}
	if err := registry().Create("qcow2", path, size, opts, blk.NewLoop(blk.NewVirtualClock())); err != nil {
		t.Fatalf("Create(%s, %d, %v): %v", path, size, kv, err)
	}
}

func open(t testing.TB, path string, readOnly bool, kv ...string) (*blk.Backend, error) {
	t.Helper()
	opts := qdict.New()
	for i := 0; i+1 < len(kv); i += 2 {
		opts.Set(kv[i], kv[i+1])
	}
	spec := blk.Spec{Filename: path, Opts: opts, Flags: blk.OpenFlags{ReadOnly: readOnly, Unmap: true}}
	return registry().Open(spec, blk.NewLoop(blk.NewVirtualClock()))
}

func mustOpen(t testing.TB, path string, kv ...string) *blk.Backend {
	t.Helper()
	b, err := open(t, path, false, kv...)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	return b
}

func do(t testing.TB, b *blk.Backend, fn func(co *blk.Co) error) error {
	t.Helper()
	return blktest.Do(t, b, "test", fn)
}

func haveQemuImg(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not on PATH")
	}
}

func run(t *testing.T, dir string, argv ...string) string {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%q: %v\n%s", argv, err, out)
	}
	return string(out)
}

// TestConformance runs blk's driver suite on qcow2 images of several
// geometries, with and without a backing file.
func TestConformance(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cluster string
		backing bool
		extra   []string
	}{
		{"64k", "65536", false, nil},
		{"512", "512", false, nil},
		// The image ends on a cluster boundary: shrinking keeps the
		// tail of a partial last cluster, which growing shows again,
		// in gio as in QEMU.
		{"2M", "2097152", false, nil},
		{"64k-backing", "65536", true, nil},
		{"4k-v2", "4096", false, []string{"compat", "0.10"}},
		{"4k-refcount-bits-1", "4096", false, []string{"refcount_bits", "1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			blktest.Run(t, func(t *testing.T) *blk.Backend {
				dir := t.TempDir()
				kv := append([]string{"cluster_size", tc.cluster}, tc.extra...)
				if tc.backing {
					create(t, filepath.Join(dir, "base.qcow2"), 1<<20, "cluster_size", tc.cluster)
					kv = append(kv, "backing_file", "base.qcow2")
				}
				size := int64(1 << 20)
				if tc.name == "2M" {
					size = 2 << 20
				}
				create(t, filepath.Join(dir, "img.qcow2"), size, kv...)
				return mustOpen(t, filepath.Join(dir, "img.qcow2"))
			}, blktest.SectorSizes())
		})
	}
}

// TestCreateMatchesQemuImg checks that gio's create writes exactly the
// bytes qemu-img create writes.
func TestCreateMatchesQemuImg(t *testing.T) {
	haveQemuImg(t)
	for _, tc := range []struct {
		name string
		size string
		opts []string // key, value
	}{
		{"default", "1M", nil},
		{"512", "3M", []string{"cluster_size", "512"}},
		{"2M", "3M", []string{"cluster_size", "2097152"}},
		{"4k-big", "10G", []string{"cluster_size", "4096"}},
		{"v2", "1M", []string{"compat", "0.10"}},
		{"refcount-bits-1", "1M", []string{"refcount_bits", "1"}},
		{"refcount-bits-64", "1M", []string{"refcount_bits", "64"}},
		{"zero-size", "0", nil},
		{"odd-size", "1000", nil},
		{"backing", "1M", []string{"backing_file", "base.qcow2", "backing_fmt", "qcow2"}},
		{"backing-probed", "1M", []string{"backing_file", "base.qcow2"}},
		{"backing-512", "1M", []string{"cluster_size", "512", "backing_file", "base.qcow2", "backing_fmt", "qcow2"}},
		{"lazy-refcounts", "1M", []string{"lazy_refcounts", "on"}},
		{"zstd", "1M", []string{"compression_type", "zstd"}},
		{"zstd-lazy-4k", "64M", []string{"compression_type", "zstd", "lazy_refcounts", "on", "cluster_size", "4096"}},
		{"zlib-explicit", "1M", []string{"compression_type", "zlib"}},
		{"extended-l2", "1M", []string{"extended_l2", "on"}},
		{"extended-l2-16k-big", "10G", []string{"extended_l2", "on", "cluster_size", "16384"}},
		{"extended-l2-2M", "3M", []string{"extended_l2", "on", "cluster_size", "2097152"}},
		{"extended-l2-backing", "1M", []string{"extended_l2", "on", "backing_file", "base.qcow2", "backing_fmt", "qcow2"}},
		{"extended-l2-off", "1M", []string{"extended_l2", "off"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			run(t, dir, "qemu-img", "create", "-q", "-f", "qcow2", "base.qcow2", "1M")
			var qo []string
			for i := 0; i < len(tc.opts); i += 2 {
				qo = append(qo, tc.opts[i]+"="+tc.opts[i+1])
			}
			if tc.name == "backing-probed" {
				qo = append(qo, "backing_fmt=qcow2") // qemu-img insists on a format
			}
			args := []string{"qemu-img", "create", "-q", "-f", "qcow2"}
			if len(qo) > 0 {
				args = append(args, "-o", strings.Join(qo, ","))
			}
			run(t, dir, append(args, "q.qcow2", tc.size)...)
			size, _, err := qdict.ParseSize("size", tc.size)
			if err != nil {
				t.Fatal(err)
			}
			create(t, filepath.Join(dir, "g.qcow2"), int64(size), tc.opts...)
			q, _ := os.ReadFile(filepath.Join(dir, "q.qcow2"))
			g, _ := os.ReadFile(filepath.Join(dir, "g.qcow2"))
			if !bytes.Equal(q, g) {
				i := 0
				for i < min(len(q), len(g)) && q[i] == g[i] {
					i++
				}
				t.Errorf("image differs from qemu-img's: lengths %d and %d, first difference at %#x", len(q), len(g), i)
			}
			run(t, dir, "qemu-img", "check", "-q", "g.qcow2")
		})
	}
}

func TestCreateErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		opts []string
		want string
	}{
		{[]string{"cluster_size", "1000"}, "Cluster size must be a power of two between 512 and 2048k"},
		{[]string{"cluster_size", "4M"}, "Cluster size must be a power of two between 512 and 2048k"},
		{[]string{"refcount_bits", "3"}, "Refcount width must be a power of two and may not exceed 64 bits"},
		{[]string{"compat", "0.10", "refcount_bits", "8"}, "Different refcount widths than 16 bits require compatibility level 1.1 or above (use version=v3 or greater)"},
		{[]string{"backing_fmt", "raw"}, "Backing format cannot be used without backing file"},
		{[]string{"compat", "xx"}, "Parameter 'version' does not accept value 'xx'"},
		{[]string{"backing_file", "nonexistent"}, "Could not open backing file: Could not open '" + dir + "/nonexistent': No such file or directory"},
		{[]string{"lazy_refcounts", "on", "compat", "0.10"}, "Lazy refcounts only supported with compatibility level 1.1 and above (use version=v3 or greater)"},
		{[]string{"lazy_refcounts", "bad"}, "Parameter 'lazy_refcounts' expects 'on' or 'off'"},
		{[]string{"compression_type", "zstd", "compat", "0.10"}, "Non-zlib compression type is only supported with compatibility level 1.1 and above (use version=v3 or greater)"},
		{[]string{"compression_type", "foo"}, "Parameter 'compression-type' does not accept value 'foo'"},
		{[]string{"bogus", "1"}, "Invalid parameter 'bogus'"},
		{[]string{"extended_l2", "bad"}, "Parameter 'extended_l2' expects 'on' or 'off'"},
		{[]string{"extended_l2", "on", "cluster_size", "8192"}, "Extended L2 entries are only supported with cluster sizes of at least 16384 bytes"},
		{[]string{"extended_l2", "on", "cluster_size", "1000"}, "Cluster size must be a power of two between 512 and 2048k"},
		{[]string{"extended_l2", "on", "cluster_size", "1000", "compat", "0.10"}, "Extended L2 entries are only supported with compatibility level 1.1 and above (use version=v3 or greater)"},
	} {
		path := filepath.Join(dir, "x.qcow2")
		os.WriteFile(path, nil, 0o644)
		opts := qdict.New()
		for i := 0; i+1 < len(tc.opts); i += 2 {
			opts.Set(tc.opts[i], tc.opts[i+1])
		}
		err := registry().Create("qcow2", path, 1<<20, opts, blk.NewLoop(blk.NewVirtualClock()))
		if err == nil || strerror(err) != tc.want {
			t.Errorf("Create(%v) = %v, want %q", tc.opts, err, tc.want)
		}
	}
}

// strerror renders err as qemu-io prints it (glibc's capitalised errno
// text).
func strerror(err error) string {
	s := err.Error()
	var e unix.Errno
	if errors.As(err, &e) {
		g := e.Error()
		s = strings.Replace(s, g, strings.ToUpper(g[:1])+g[1:], 1)
	}
	return s
}

// patch overwrites bytes of a file.
func patch(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
func be64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// TestOpenErrors corrupts headers and tables: every image is refused with
// QEMU's message (or gio's own, for what gio does not support).
func TestOpenErrors(t *testing.T) {
	for _, tc := range []struct {
		name     string
		off      int64
		data     []byte
		readOnly bool
		want     string
	}{
		{"magic", 0, be32(0x12345678), false, "Image is not in qcow2 format"},
		{"version-1", 4, be32(1), false, "Unsupported qcow2 version 1"},
		{"version-4", 4, be32(4), false, "Unsupported qcow2 version 4"},
		{"cluster-bits-8", 20, be32(8), false, "Unsupported cluster size: 2^8"},
		{"cluster-bits-22", 20, be32(22), false, "Unsupported cluster size: 2^22"},
		{"header-too-short", 100, be32(100), false, "qcow2 header too short"},
		{"header-exceeds-cluster", 100, be32(70000), false, "qcow2 header exceeds cluster size"},
		{"backing-offset", 8, be64(1 << 20), false, "Invalid backing file offset"},
		{"unknown-incompat", 72, be64(1 << 7), false, "Unsupported qcow2 feature(s): Unknown incompatible feature: 80"},
		{"named-incompat", 72, be64(1<<5 | 1<<6), false, "Unsupported qcow2 feature(s): Unknown incompatible feature: 60"},
		{"corrupt-rw", 72, be64(2), false, "qcow2: Image is corrupt; cannot be opened read/write"},
		{"data-file", 72, be64(4), false, "'data-file' is required for this image"},
		{"compression-bit-zlib", 72, be64(8), false, "qcow2: Compression type incompatible feature bit must not be set"},
		{"refcount-order-7", 96, be32(7), false, "Reference count entry width too large; may not exceed 64 bits"},
		{"encrypted", 32, be32(1), false, "Parameter 'encrypt.key-secret' is required for cipher"},
		{"encrypted-luks-no-header", 32, be32(2), false, "Missing CRYPTO header for crypt method 2"},
		{"encrypted-unknown", 32, be32(3), false, "Unsupported encryption method 3"},
		{"no-reftable", 56, be32(0), false, "Image does not contain a reference count table"},
		{"reftable-too-large", 56, be32(1 << 20), false, "Reference count table too large"},
		{"reftable-unaligned", 48, be64(0x10001), false, "Reference count table offset invalid"},
		{"reftable-past-eof", 48, be64(0x100000), false, "qcow2: refcount table at 0x100000: beyond end of file"},
		{"l1-too-small", 36, be32(0), false, "L1 table is too small"},
		{"l1-too-large", 36, be32(1 << 30), false, "Active L1 table too large"},
		{"l1-unaligned", 40, be64(0x30008), false, "Active L1 table offset invalid"},
		{"l1-past-eof", 40, be64(0x7fff0000), false, "qcow2: L1 table at 0x7fff0000: beyond end of file"},
		{"snapshots-too-many", 60, be32(70000), false, "Snapshot table too large"},
		{"snapshots-unaligned", 64, be64(3), false, "Snapshot table offset invalid"},
		{"size-too-big", 24, be64(1 << 62), false, "Image is too big"},
		{"size-l1-too-small", 24, be64(1 << 30), false, "L1 table is too small"},
		{"ext-too-large", 0x70, append(be32(0x12345678), be32(0x100000)...), false, "Header extension too large"},
		{"backing-fmt-too-long", 0x70, append(be32(0xe2792aca), be32(20)...), false, "ERROR: ext_backing_format: len=20 too large (>=16)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "img.qcow2")
			create(t, path, 1<<20)
			patch(t, path, tc.off, tc.data)
			b, err := open(t, path, tc.readOnly, "driver", "qcow2")
			if err == nil {
				b.Close()
				t.Fatalf("open succeeded, want %q", tc.want)
			}
			if got := strerror(err); got != tc.want {
				t.Errorf("open: %q, want %q", got, tc.want)
			}
			var e *blk.Error
			if !errors.As(err, &e) || e.Errno == 0 {
				t.Errorf("open error %v carries no errno", err)
			}
		})
	}
}

// TestReadOnlyDirty: a dirty image opens read-only (reads need no
// refcounts), but not writable.
func TestReadOnlyDirty(t *testing.T) {
	path := filepath.Join(t.TempDir(), "img.qcow2")
	create(t, path, 1<<20)
	b := mustOpen(t, path)
	if err := do(t, b, func(co *blk.Co) error { return b.PWrite(co, 0, []byte("hello"), 0) }); err != nil {
		t.Fatal(err)
	}
	b.Close()
	patch(t, path, 72, be64(1))
	b, err := open(t, path, true)
	if err != nil {
		t.Fatalf("read-only open of a dirty image: %v", err)
	}
	defer b.Close()
	buf := make([]byte, 5)
	if err := do(t, b, func(co *blk.Co) error { return b.PRead(co, 0, buf) }); err != nil || string(buf) != "hello" {
		t.Errorf("read = %q, %v", buf, err)
	}
	if err := b.SetReadOnly(false); err == nil {
		t.Errorf("reopen read-write of a dirty image succeeded")
	}
}

// TestCorruptL2 points an L1 entry at garbage: requests fail with EIO,
// then the image is treated as broken; nothing is written.
func TestCorruptL2(t *testing.T) {
	path := filepath.Join(t.TempDir(), "img.qcow2")
	create(t, path, 1<<20)
	b := mustOpen(t, path)
	if err := do(t, b, func(co *blk.Co) error { return b.PWrite(co, 0, bytes.Repeat([]byte{1}, 4096), 0) }); err != nil {
		t.Fatal(err)
	}
	b.Close()
	before, _ := os.ReadFile(path)
	patch(t, path, 0x30000, be64(1<<63|0x12345)) // unaligned L2 offset
	b = mustOpen(t, path)
	err := do(t, b, func(co *blk.Co) error { return b.PRead(co, 0, make([]byte, 512)) })
	if !errors.Is(err, unix.EIO) || !errors.Is(err, qcow2.ErrCorrupt) {
		t.Errorf("read through a corrupt L1 entry = %v, want EIO and ErrCorrupt", err)
	}
	err = do(t, b, func(co *blk.Co) error { return b.PWrite(co, 0, make([]byte, 512), 0) })
	if !errors.Is(err, unix.ENOMEDIUM) {
		t.Errorf("write after corruption = %v, want ENOMEDIUM", err)
	}
	b.Close()
	after, _ := os.ReadFile(path)
	patch(t, path, 0x30000, before[0x30000:0x30008])
	if len(after) != len(before) {
		t.Errorf("image length changed from %d to %d", len(before), len(after))
	}
}

// TestOverlapRefused makes a data cluster's refcount 0 so that the next
// allocation would put an L2 table over it... and instead points an L2
// entry at the L1 table: writing there must be refused, not done.
func TestOverlapRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "img.qcow2")
	create(t, path, 1<<20)
	b := mustOpen(t, path)
	if err := do(t, b, func(co *blk.Co) error { return b.PWrite(co, 0, bytes.Repeat([]byte{1}, 65536), 0) }); err != nil {
		t.Fatal(err)
	}
	b.Close()
	// L2 table at 0x40000; make entry 0 point at the L1 table's cluster.
	patch(t, path, 0x40000, be64(1<<63|0x30000))
	l1Before := make([]byte, 8)
	f, _ := os.Open(path)
	f.ReadAt(l1Before, 0x30000)
	f.Close()
	b = mustOpen(t, path)
	err := do(t, b, func(co *blk.Co) error { return b.PWrite(co, 0, make([]byte, 512), 0) })
	if !errors.Is(err, unix.EIO) {
		t.Errorf("write over the L1 table = %v, want EIO", err)
	}
	b.Close()
	l1After := make([]byte, 8)
	f, _ = os.Open(path)
	f.ReadAt(l1After, 0x30000)
	f.Close()
	if !bytes.Equal(l1Before, l1After) {
		t.Errorf("L1 table overwritten: %x, was %x", l1After, l1Before)
	}
}

// TestProbe: the magic picks qcow2, anything else is left to others.
func TestProbe(t *testing.T) {
	path := filepath.Join(t.TempDir(), "img.qcow2")
	create(t, path, 1<<20)
	b, err := open(t, path, false)
	if err != nil {
		t.Fatal(err)
	}
	if b.Probed() || b.Root.Driver().Name != "qcow2" {
		t.Errorf("probed %v, driver %s; want qcow2 without the raw warning", b.Probed(), b.Root.Driver().Name)
	}
	b.Close()
	head, _ := os.ReadFile(path)
	if qcow2.Driver.Probe(head[:2048]) != 100 || qcow2.Driver.Probe(head[:100]) != 0 || qcow2.Driver.Probe(make([]byte, 2048)) != 0 {
		t.Errorf("Probe scores wrong")
	}
}

// TestInfo: cluster size, VM state offset and the format specific lines.
func TestInfo(t *testing.T) {
	path := filepath.Join(t.TempDir(), "img.qcow2")
	create(t, path, 3<<20, "cluster_size", "512")
	b := mustOpen(t, path)
	defer b.Close()
	info, err := b.Info()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"compat: 1.1", "compression type: zlib", "lazy refcounts: false", "refcount bits: 16", "corrupt: false", "extended l2: false"}
	if info.ClusterSize != 512 || info.VMStateOffset != 3<<20 || strings.Join(info.Specific, "|") != strings.Join(want, "|") {
		t.Errorf("Info = %+v", info)
	}
}

// TestBackingChain: three layers, reads fall through to the layer that
// has the data, the top layer's map says what it holds itself.
func TestBackingChain(t *testing.T) {
	dir := t.TempDir()
	base, mid, top := filepath.Join(dir, "base.qcow2"), filepath.Join(dir, "mid.qcow2"), filepath.Join(dir, "top.qcow2")
	create(t, base, 1<<20, "cluster_size", "4096")
	create(t, mid, 1<<20, "cluster_size", "4096", "backing_file", "base.qcow2")
	create(t, top, 1<<20, "cluster_size", "512", "backing_file", "mid.qcow2", "backing_fmt", "qcow2")
	write := func(path string, off int64, c byte, n int) {
		var kv []string
		if path != top {
			kv = []string{"backing", ""} // the layer alone
		}
		b, err := open(t, path, false, kv...)
		if err != nil {
			t.Fatal(err)
		}
		if err := do(t, b, func(co *blk.Co) error { return b.PWrite(co, off, bytes.Repeat([]byte{c}, n), 0) }); err != nil {
			t.Fatal(err)
		}
		b.Close()
	}
	write(base, 0, 'b', 1<<20)
	write(mid, 8192, 'm', 8192)
	write(top, 10000, 't', 100)
	b := mustOpen(t, top)
	defer b.Close()
	buf := make([]byte, 1<<20)
	if err := do(t, b, func(co *blk.Co) error { return b.PRead(co, 0, buf) }); err != nil {
		t.Fatal(err)
	}
	want := bytes.Repeat([]byte{'b'}, 1<<20)
	copy(want[8192:], bytes.Repeat([]byte{'m'}, 8192))
	copy(want[10000:], bytes.Repeat([]byte{'t'}, 100))
	if i := firstDiff(buf, want); i >= 0 {
		t.Errorf("byte %d = %q, want %q", i, buf[i], want[i])
	}
	var st blk.Status
	for _, tc := range []struct {
		off, pnum int64
		depth     int
	}{{9216, 512, 1}, {9728, 512, 0}, {10240, 6144, 1}, {16384, 8192, 2}} {
		if err := do(t, b, func(co *blk.Co) (err error) { st, err = b.BlockStatus(co, tc.off, 4096*2); return }); err != nil {
			t.Fatal(err)
		}
		if st.Depth != tc.depth || st.Flags&blk.StatusData == 0 || st.Pnum != tc.pnum {
			t.Errorf("BlockStatus(%d) = %+v, want data at depth %d for %d bytes", tc.off, st, tc.depth, tc.pnum)
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

// TestCreatePreallocationAndDataFile compares qemu-img create with
// preallocation and external data file options: the image and the data
// file must be byte for byte what qemu-img writes. The names recorded in
// the header are relative, so both tools run in the same directory, one
// after the other.
// mapped is the bytes of file path, mapped read-only until the test
// ends (nil if it is empty or missing). Images of hundreds of MiB,
// mostly holes, compare in place: read into the heap, every byte of
// them was copied and, under -race, annotated by bytes.Equal.
func mapped(t *testing.T, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Size() == 0 {
		return nil
	}
	b, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatalf("mmap %s: %v", path, err)
	}
	t.Cleanup(func() { unix.Munmap(b) })
	return b
}

func TestCreatePreallocationAndDataFile(t *testing.T) {
	haveQemuImg(t)
	for _, tc := range []struct {
		name string
		size string
		opts []string // key, value
	}{
		{"prealloc-off", "3M", []string{"preallocation", "off"}},
		{"prealloc-metadata", "3M", []string{"preallocation", "metadata"}},
		{"prealloc-metadata-odd", "1000", []string{"preallocation", "metadata"}},
		{"prealloc-metadata-4k-big", "300M", []string{"preallocation", "metadata", "cluster_size", "4096"}},
		{"prealloc-falloc", "5M", []string{"preallocation", "falloc"}},
		{"prealloc-full", "5M", []string{"preallocation", "full"}},
		{"prealloc-full-512", "2M", []string{"preallocation", "full", "cluster_size", "512"}},
		{"prealloc-full-refcount-1", "2M", []string{"preallocation", "full", "refcount_bits", "1"}},
		{"prealloc-metadata-extl2", "3M", []string{"preallocation", "metadata", "extended_l2", "on"}},
		{"prealloc-falloc-extl2-backing", "3M", []string{"preallocation", "falloc", "extended_l2", "on", "backing_file", "base.qcow2", "backing_fmt", "qcow2"}},
		{"data-file", "3M", []string{"data_file", "img.data"}},
		{"data-file-raw", "3M", []string{"data_file", "img.data", "data_file_raw", "on"}},
		{"data-file-metadata", "3M", []string{"data_file", "img.data", "preallocation", "metadata"}},
		{"data-file-full", "3M", []string{"data_file", "img.data", "preallocation", "full"}},
		{"data-file-raw-falloc", "3M", []string{"data_file", "img.data", "data_file_raw", "on", "preallocation", "falloc"}},
		{"data-file-backing", "3M", []string{"data_file", "img.data", "backing_file", "base.qcow2", "backing_fmt", "qcow2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			t.Chdir(dir)
			run(t, dir, "qemu-img", "create", "-q", "-f", "qcow2", "base.qcow2", "1M")
			var qo []string
			for i := 0; i < len(tc.opts); i += 2 {
				qo = append(qo, tc.opts[i]+"="+tc.opts[i+1])
			}
			run(t, dir, "qemu-img", "create", "-q", "-f", "qcow2", "-o", strings.Join(qo, ","), "img.qcow2", tc.size)
			files := []string{"img.qcow2"}
			if _, err := os.Stat("img.data"); err == nil {
				files = append(files, "img.data")
			}
			want := map[string][]byte{}
			for _, f := range files {
				want[f] = mapped(t, f) // the mapping outlives the name
				os.Remove(f)
			}
			size, _, err := qdict.ParseSize("size", tc.size)
			if err != nil {
				t.Fatal(err)
			}
			create(t, "img.qcow2", int64(size), tc.opts...)
			for _, f := range files {
				got := mapped(t, f)
				if !bytes.Equal(got, want[f]) {
					i := 0
					for i < min(len(got), len(want[f])) && got[i] == want[f][i] {
						i++
					}
					t.Errorf("%s differs from qemu-img's: lengths %d and %d, first difference at %#x", f, len(got), len(want[f]), i)
				}
			}
			run(t, dir, "qemu-img", "check", "-q", "img.qcow2")
		})
	}
}

func TestCreatePreallocationErrors(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	run(t, dir, "qemu-img", "create", "-q", "-f", "qcow2", "base.qcow2", "1M")
	for _, tc := range []struct {
		opts []string
		want string
	}{
		{[]string{"preallocation", "bogus"}, "Parameter 'preallocation' does not accept value 'bogus'"},
		{[]string{"data_file_raw", "on"}, "data-file-raw requires data-file"},
		{[]string{"data_file", "d.data", "compat", "0.10"}, "External data files are only supported with compatibility level 1.1 and above (use version=v3 or greater)"},
		{[]string{"backing_file", "base.qcow2", "backing_fmt", "qcow2", "preallocation", "metadata"}, "Backing file and preallocation can only be used at the same time if extended_l2 is on"},
		{[]string{"data_file", "d.data", "data_file_raw", "on", "backing_file", "base.qcow2", "backing_fmt", "qcow2"}, "Backing file and data-file-raw cannot be used at the same time"},
		{[]string{"data_file_raw", "maybe"}, "Parameter 'data_file_raw' expects 'on' or 'off'"},
	} {
		os.WriteFile("x.qcow2", nil, 0o644)
		opts := qdict.New()
		for i := 0; i+1 < len(tc.opts); i += 2 {
			opts.Set(tc.opts[i], tc.opts[i+1])
		}
		err := registry().Create("qcow2", "x.qcow2", 1<<20, opts, blk.NewLoop(blk.NewVirtualClock()))
		if err == nil || err.Error() != tc.want {
			t.Errorf("%v: got %v, want %q", tc.opts, err, tc.want)
		}
		var qo []string
		for i := 0; i < len(tc.opts); i += 2 {
			qo = append(qo, tc.opts[i]+"="+tc.opts[i+1])
		}
		out, _ := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-o", strings.Join(qo, ","), "q.qcow2", "1M").CombinedOutput()
		if !strings.Contains(string(out), tc.want) {
			t.Errorf("%v: qemu-img says %q, not %q", tc.opts, out, tc.want)
		}
	}
}
