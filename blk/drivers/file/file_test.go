package file_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"unsafe"

	"gio/blk"
	"gio/blk/blktest"
	"gio/blk/drivers/file"
	"gio/blk/qdict"

	"golang.org/x/sys/unix"
)

// openFile opens path with the file driver as the top node.
func openFile(t testing.TB, path string, flags blk.OpenFlags, kv ...string) (*blk.Backend, error) {
	t.Helper()
	opts := qdict.New()
	for i := 0; i+1 < len(kv); i += 2 {
		opts.Set(kv[i], kv[i+1])
	}
	reg := blk.NewRegistry(file.Driver)
	return reg.Open(blk.Spec{Filename: path, Format: "file", Opts: opts, Flags: flags}, blk.NewLoop(blk.NewVirtualClock()))
}

func mustOpen(t testing.TB, path string, flags blk.OpenFlags, kv ...string) *blk.Backend {
	t.Helper()
	b, err := openFile(t, path, flags, kv...)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	return b
}

// newImage creates a file of size bytes, sparse, under dir.
func newImage(t testing.TB, dir string, size int64) string {
	t.Helper()
	f, err := os.CreateTemp(dir, "gio-file-test-*.raw")
	if err != nil {
		t.Fatal(err)
	}
	path := f.Name()
	t.Cleanup(func() { os.Remove(path) })
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return path
}

func do(t testing.TB, b *blk.Backend, fn func(co *blk.Co) error) error {
	t.Helper()
	return blktest.Do(t, b, "test", fn)
}

// directSupported reports whether dir's filesystem takes O_DIRECT.
func directSupported(t *testing.T, dir string) bool {
	path := newImage(t, dir, 4096)
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECT, 0)
	if err != nil {
		return false
	}
	unix.Close(fd)
	return true
}

func TestConformance(t *testing.T) {
	dirs := []string{t.TempDir()}
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		// tmpfs: no FALLOC_FL_ZERO_RANGE, so zero writes take the
		// punch-and-allocate fallback.
		shm, err := os.MkdirTemp("/dev/shm", "gio-test-")
		if err == nil {
			t.Cleanup(func() { os.RemoveAll(shm) })
			dirs = append(dirs, shm)
		}
	}
	for _, dir := range dirs {
		for _, direct := range []bool{false, true} {
			name := filepath.Base(dir)
			if strings.HasPrefix(dir, "/dev/shm") {
				name = "tmpfs"
			}
			if direct {
				name += "/direct"
			}
			t.Run(name, func(t *testing.T) {
				if direct && !directSupported(t, dir) {
					t.Skip("O_DIRECT not supported")
				}
				for _, size := range []int64{1 << 20, 1048000} {
					if direct && size%4096 != 0 {
						// QEMU refuses write permission on a device whose
						// length is not a multiple of its alignment.
						continue
					}
					blktest.Run(t, func(t *testing.T) *blk.Backend {
						return mustOpen(t, newImage(t, dir, size), blk.OpenFlags{Direct: direct})
					})
				}
			})
		}
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	img := newImage(t, dir, 4096)
	t.Chdir(dir)
	os.Mkdir(filepath.Join(dir, "d"), 0o755)
	tests := []struct {
		name  string
		path  string
		ro    bool
		flags blk.OpenFlags
		kv    []string
		want  string
		errno unix.Errno
	}{
		{"missing", "nonexist.raw", false, blk.OpenFlags{}, nil, "Could not open 'nonexist.raw': No such file or directory", unix.ENOENT},
		{"missing ro", "nonexist.raw", true, blk.OpenFlags{}, nil, "Could not open 'nonexist.raw': No such file or directory", unix.ENOENT},
		{"directory", "d", false, blk.OpenFlags{}, nil, "Could not open 'd': Is a directory", unix.EISDIR},
		{"directory ro", "d", true, blk.OpenFlags{}, nil, "'file' driver requires 'd' to be a regular file", unix.EINVAL},
		{"char device", "/dev/null", true, blk.OpenFlags{}, nil, "'file' driver requires '/dev/null' to be a regular file", unix.EINVAL},
		{"bad aio", img, false, blk.OpenFlags{}, []string{"aio", "bogus"}, "invalid parameter value: bogus", unix.EINVAL},
		{"empty aio", img, false, blk.OpenFlags{}, []string{"aio", ""}, "invalid parameter value: ", unix.EINVAL},
		{"bad locking", img, false, blk.OpenFlags{}, []string{"locking", "bogus"}, "invalid parameter value: bogus", unix.EINVAL},
		{"native without direct", img, false, blk.OpenFlags{}, []string{"aio", "native"}, "aio=native was specified, but it requires cache.direct=on, which was not specified.", unix.EINVAL},
		{"native flag without direct", img, false, blk.OpenFlags{AIO: "native"}, nil, "aio=native was specified, but it requires cache.direct=on, which was not specified.", unix.EINVAL},
		{"pr-manager", img, false, blk.OpenFlags{}, []string{"pr-manager", "x"}, "No persistent reservation manager with id 'x'", unix.EINVAL},
		{"bad aio-max-batch", img, false, blk.OpenFlags{}, []string{"aio-max-batch", "x"}, "Parameter 'aio-max-batch' expects a number", 0},
		{"bad drop-cache", img, false, blk.OpenFlags{}, []string{"drop-cache", "x"}, "Parameter 'drop-cache' expects 'on' or 'off'", 0},
		{"unknown option", img, false, blk.OpenFlags{}, []string{"bogus", "1"}, "Block protocol 'file' doesn't support the option 'bogus'", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			flags := tc.flags
			flags.ReadOnly = tc.ro
			b, err := openFile(t, tc.path, flags, tc.kv...)
			if err == nil {
				b.Close()
				t.Fatalf("open succeeded, want %q", tc.want)
			}
			// TODO: exact once blk prints glibc's strerror wording.
			if !strings.EqualFold(err.Error(), tc.want) {
				t.Errorf("open error = %q, want %q", err, tc.want)
			}
			if tc.errno != 0 && !errors.Is(err, tc.errno) {
				t.Errorf("open error %v does not match errno %v", err, tc.errno)
			}
		})
	}
}

func TestOpenNoFilename(t *testing.T) {
	reg := blk.NewRegistry(file.Driver)
	opts := qdict.New()
	opts.Set("driver", "file")
	_, err := reg.Open(blk.Spec{Opts: opts}, blk.NewLoop(nil))
	if err == nil || err.Error() != "The 'file' block driver requires a file name" {
		t.Errorf("open without filename: %v", err)
	}
}

func TestOpenOptions(t *testing.T) {
	img := newImage(t, t.TempDir(), 1<<20)
	for _, kv := range [][]string{
		{"aio", "threads"}, {"aio", "io_uring"}, {"locking", "on"}, {"locking", "off"}, {"locking", "auto"},
		{"aio-max-batch", "4"}, {"drop-cache", "off"}, {"x-check-cache-dropped", "on"},
	} {
		b, err := openFile(t, img, blk.OpenFlags{}, kv...)
		if err != nil {
			t.Errorf("open with %s=%s: %v", kv[0], kv[1], err)
			continue
		}
		b.Close()
	}
	if directSupported(t, filepath.Dir(img)) {
		b, err := openFile(t, img, blk.OpenFlags{Direct: true}, "aio", "native")
		if err != nil {
			t.Errorf("aio=native with O_DIRECT: %v", err)
		} else {
			b.Close()
		}
	}
}

func TestPermissionDenied(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root ignores file permissions")
	}
	img := newImage(t, t.TempDir(), 4096)
	os.Chmod(img, 0o444)
	_, err := openFile(t, img, blk.OpenFlags{})
	if want := "Could not open '" + img + "': Permission denied"; err == nil || err.Error() != want {
		t.Errorf("open read-only file for writing: %v, want %q", err, want)
	}
	b, err := openFile(t, img, blk.OpenFlags{ReadOnly: true})
	if err != nil {
		t.Fatalf("open read-only: %v", err)
	}
	b.Close()
}

func TestReadOnly(t *testing.T) {
	img := newImage(t, t.TempDir(), 1<<20)
	b := mustOpen(t, img, blk.OpenFlags{ReadOnly: true})
	defer b.Close()
	buf := make([]byte, 512)
	if err := do(t, b, func(co *blk.Co) error { return b.PRead(co, 0, buf) }); err != nil {
		t.Errorf("read: %v", err)
	}
	if err := do(t, b, func(co *blk.Co) error { return b.PWrite(co, 0, buf, 0) }); err == nil {
		t.Errorf("write to read-only image succeeded")
	}
	// The driver itself refuses writes on a read-only node, before it
	// would take the write permission's lock (and its descriptor is
	// O_RDONLY anyway).
	impl := b.Root.Impl()
	err := do(t, b, func(co *blk.Co) error { return impl.PWrite(co, 0, buf, 0) })
	if !errors.Is(err, unix.EPERM) {
		t.Errorf("driver write on read-only node = %v, want EPERM", err)
	}
	if got := lockedBytes(t, img); len(got) != 1 || got[0] != 100 {
		t.Errorf("read-only node after a refused write holds lock bytes %v, want [100]", got)
	}
}

func TestParseFilename(t *testing.T) {
	tests := []struct{ in, want string }{
		{"a.raw", "a.raw"},
		{"file:a.raw", "a.raw"},
		{"file:/abs/a.raw", "/abs/a.raw"},
		{"file:a:b", "./a:b"},
		{"file:a/b:c", "a/b:c"},
		{"file:", ""},
		{"file:file:x", "./file:x"},
		{"/x/file:y", "/x/file:y"},
	}
	for _, tc := range tests {
		opts := qdict.New()
		if err := file.Driver.ParseFilename(tc.in, opts); err != nil {
			t.Errorf("ParseFilename(%q) = %v", tc.in, err)
			continue
		}
		if got, _ := opts.Get("filename"); got != tc.want {
			t.Errorf("ParseFilename(%q) sets filename %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestShortFile: bytes between the physical end and the 512-rounded
// length read as zeroes, and writing there extends the file (§8.1).
func TestShortFile(t *testing.T) {
	img := newImage(t, t.TempDir(), 0)
	os.WriteFile(img, bytes.Repeat([]byte{0xaa}, 1000), 0o644)
	b := mustOpen(t, img, blk.OpenFlags{})
	defer b.Close()
	var l int64
	do(t, b, func(co *blk.Co) (err error) { l, err = b.Length(co); return err })
	if l != 1024 {
		t.Fatalf("Length = %d, want 1024", l)
	}
	buf := make([]byte, 74)
	if err := do(t, b, func(co *blk.Co) error { return b.PRead(co, 950, buf) }); err != nil {
		t.Fatal(err)
	}
	want := append(bytes.Repeat([]byte{0xaa}, 50), make([]byte, 24)...)
	if !bytes.Equal(buf, want) {
		t.Errorf("read across the physical end = %x, want %x", buf, want)
	}
	if err := do(t, b, func(co *blk.Co) error { return b.PWrite(co, 1020, []byte{1, 2, 3, 4}, 0) }); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(img); st.Size() != 1024 {
		t.Errorf("file size after write 1020+4 = %d, want 1024", st.Size())
	}
}

// TestZeroWritePastEOF: like QEMU, a plain zero write past the physical
// end extends the file (ZERO_RANGE), an unmapping one does not (the punched
// range reads as zeroes anyway).
func TestZeroWritePastEOF(t *testing.T) {
	for _, tc := range []struct {
		flags blk.ReqFlags
		size  int64
	}{{0, 1024}, {blk.MayUnmap, 1000}} {
		img := newImage(t, t.TempDir(), 0)
		os.WriteFile(img, bytes.Repeat([]byte{0xaa}, 1000), 0o644)
		b := mustOpen(t, img, blk.OpenFlags{})
		if err := do(t, b, func(co *blk.Co) error { return b.PWriteZeroes(co, 512, 512, tc.flags) }); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1024)
		do(t, b, func(co *blk.Co) error { return b.PRead(co, 0, buf) })
		b.Close()
		if i := bytes.IndexFunc(buf[512:], func(r rune) bool { return r != 0 }); i >= 0 {
			t.Errorf("flags %v: byte %d not zero", tc.flags, 512+i)
		}
		if st, _ := os.Stat(img); st.Size() != tc.size {
			t.Errorf("flags %v: file size %d, want %d", tc.flags, st.Size(), tc.size)
		}
	}
}

// extent is one line of qemu-img map --output=json.
type extent struct {
	Start  int64 `json:"start"`
	Length int64 `json:"length"`
	Zero   bool  `json:"zero"`
	Data   bool  `json:"data"`
	Offset int64 `json:"offset"`
}

// mapImage walks the image with block status (want_zero) and merges
// neighbours the way qemu-img map does.
func mapImage(t *testing.T, b *blk.Backend) []extent {
	t.Helper()
	var out []extent
	err := do(t, b, func(co *blk.Co) error {
		l, err := b.Length(co)
		if err != nil {
			return err
		}
		for off := int64(0); off < l; {
			st, err := b.BlockStatus(co, off, l-off)
			if err != nil {
				return err
			}
			if st.Pnum <= 0 {
				t.Fatalf("BlockStatus(%d, %d): pnum %d", off, l-off, st.Pnum)
			}
			if st.Flags&blk.StatusOffsetValid == 0 || st.Map != off || st.File != b.Root {
				t.Errorf("BlockStatus(%d): map %d file %v flags %#x, want offset-valid identity map on the node", off, st.Map, st.File, st.Flags)
			}
			e := extent{Start: off, Length: st.Pnum, Zero: st.Flags&blk.StatusZero != 0, Data: st.Flags&blk.StatusData != 0, Offset: st.Map}
			if n := len(out); n > 0 && out[n-1].Zero == e.Zero && out[n-1].Data == e.Data && out[n-1].Offset+out[n-1].Length == e.Offset {
				out[n-1].Length += e.Length
			} else {
				out = append(out, e)
			}
			off += st.Pnum
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// qemuImgMap runs the oracle, if it is installed.
func qemuImgMap(t *testing.T, args ...string) ([]extent, bool) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		return nil, false
	}
	out, err := exec.Command("qemu-img", append([]string{"map", "--output=json"}, args...)...).Output()
	if err != nil {
		t.Logf("qemu-img map: %v", err)
		return nil, false
	}
	var ext []extent
	if err := json.Unmarshal(out, &ext); err != nil {
		t.Fatalf("qemu-img map output %q: %v", out, err)
	}
	return ext, true
}

func TestBlockStatusSparse(t *testing.T) {
	type write struct {
		off int64
		n   int
	}
	const M = 1 << 20
	tests := []struct {
		name   string
		size   int64
		writes []write
		want   []extent
	}{
		{"all hole", M, nil, []extent{{0, M, true, false, 0}}},
		{"hole data hole", M, []write{{65536, 4096}}, []extent{
			{0, 65536, true, false, 0}, {65536, 4096, false, true, 65536}, {69632, 978944, true, false, 69632}}},
		{"data at start", M, []write{{0, 4096}}, []extent{{0, 4096, false, true, 0}, {4096, M - 4096, true, false, 4096}}},
		{"data at end", M, []write{{M - 4096, 4096}}, []extent{{0, M - 4096, true, false, 0}, {M - 4096, 4096, false, true, M - 4096}}},
		{"odd size data near end", 1048000, []write{{1047990, 3}}, []extent{
			{0, 1044480, true, false, 0}, {1044480, 3520, false, true, 1044480}, {1048000, 64, true, false, 1048000}}},
		{"odd size all data", 6000, []write{{0, 6000}}, []extent{{0, 6000, false, true, 0}, {6000, 144, true, false, 6000}}},
		{"two extents", 4 * M, []write{{100, 1}, {2*M + 5000, 10000}}, []extent{
			{0, 4096, false, true, 0}, {4096, 2 * M, true, false, 4096},
			{2*M + 4096, 12288, false, true, 2*M + 4096}, {2*M + 16384, 2*M - 16384, true, false, 2*M + 16384}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			img := newImage(t, t.TempDir(), tc.size)
			f, _ := os.OpenFile(img, os.O_WRONLY, 0)
			for _, w := range tc.writes {
				f.WriteAt(bytes.Repeat([]byte{0x5a}, w.n), w.off)
			}
			f.Close()
			b := mustOpen(t, img, blk.OpenFlags{ReadOnly: true})
			got := mapImage(t, b)
			b.Close()
			if !equalExtents(got, tc.want) {
				t.Errorf("map = %v, want %v", got, tc.want)
			}
			if oracle, ok := qemuImgMap(t, "-f", "file", img); ok && !equalExtents(got, oracle) {
				t.Errorf("map = %v, qemu-img map says %v", got, oracle)
			}
			// O_DIRECT: data extents ending in a partial block are rounded
			// up to the request alignment.
			if directSupported(t, filepath.Dir(img)) {
				b := mustOpen(t, img, blk.OpenFlags{ReadOnly: true, Direct: true})
				got := mapImage(t, b)
				b.Close()
				if oracle, ok := qemuImgMap(t, "--image-opts", "driver=file,cache.direct=on,filename="+img); ok && !equalExtents(got, oracle) {
					t.Errorf("O_DIRECT map = %v, qemu-img map says %v", got, oracle)
				}
			}
		})
	}
}

func equalExtents(a, b []extent) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestBlockStatusNoWantZero: without want_zero everything is data
// (qemu-io's map and alloc see a raw file as allocated everywhere).
func TestBlockStatusNoWantZero(t *testing.T) {
	img := newImage(t, t.TempDir(), 1<<20)
	b := mustOpen(t, img, blk.OpenFlags{})
	defer b.Close()
	err := do(t, b, func(co *blk.Co) error {
		alloc, pnum, err := b.IsAllocated(co, 0, 1<<20)
		if err != nil || !alloc || pnum != 1<<20 {
			t.Errorf("IsAllocated = %v, %d, %v; want true, 1 MiB", alloc, pnum, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestDirectAlignment(t *testing.T) {
	dir := t.TempDir()
	if !directSupported(t, dir) {
		t.Skip("O_DIRECT not supported")
	}
	img := newImage(t, dir, 1<<20)
	b := mustOpen(t, img, blk.OpenFlags{Direct: true})
	defer b.Close()
	l := b.Root.Limits()
	if l.RequestAlignment < 512 || l.RequestAlignment&(l.RequestAlignment-1) != 0 {
		t.Errorf("RequestAlignment = %d, want a power of two >= 512", l.RequestAlignment)
	}
	if l.MemAlignment < 512 || l.MemAlignment&(l.MemAlignment-1) != 0 {
		t.Errorf("MemAlignment = %d, want a power of two >= 512", l.MemAlignment)
	}
	if l.SupportedZeroFlags != blk.MayUnmap|blk.NoFallback || l.SupportedWriteFlags != 0 {
		t.Errorf("flags = write %v zero %v, want write 0 zero MayUnmap|NoFallback", l.SupportedWriteFlags, l.SupportedZeroFlags)
	}
	// Buffers at every misalignment go through the bounce buffer.
	data := bytes.Repeat([]byte("0123456789abcdef"), 4096/16*3)
	raw := file.AlignedBuffer(len(data)+1024, 4096)
	for _, shift := range []int{0, 1, 8, 511, 512} {
		buf := raw[shift : shift+len(data)]
		copy(buf, data)
		if err := do(t, b, func(co *blk.Co) error { return b.Root.Impl().PWrite(co, 8192, buf, 0) }); err != nil {
			t.Fatalf("shift %d: driver write: %v", shift, err)
		}
		clear(buf)
		if err := do(t, b, func(co *blk.Co) error { return b.Root.Impl().PRead(co, 8192, buf, 0) }); err != nil {
			t.Fatalf("shift %d: driver read: %v", shift, err)
		}
		if !bytes.Equal(buf, data) {
			t.Errorf("shift %d: read back differs", shift)
		}
	}
}

func uintptrOf(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }

func TestAlignedBuffer(t *testing.T) {
	for _, align := range []int{1, 2, 512, 4096, 65536} {
		for _, n := range []int{0, 1, 4096, 100000} {
			b := file.AlignedBuffer(n, align)
			if len(b) != n || cap(b) != n {
				t.Errorf("AlignedBuffer(%d, %d): len %d cap %d", n, align, len(b), cap(b))
			}
			if n > 0 && uintptrOf(b)%uintptr(align) != 0 {
				t.Errorf("AlignedBuffer(%d, %d) at %#x", n, align, uintptrOf(b))
			}
		}
	}
}

// TestHugeSparseZeroWrite: zeroing 100 GiB of a sparse file punches holes
// and needs no memory in proportion to its size.
func TestHugeSparseZeroWrite(t *testing.T) {
	const size = 100 << 30
	img := newImage(t, t.TempDir(), size)
	b := mustOpen(t, img, blk.OpenFlags{})
	defer b.Close()
	if err := do(t, b, func(co *blk.Co) error { return b.PWrite(co, size/2, []byte("data"), 0) }); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	err := do(t, b, func(co *blk.Co) error { return b.PWriteZeroes(co, 0, size, blk.MayUnmap) })
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatalf("PWriteZeroes(100 GiB) = %v", err)
	}
	if d := after.TotalAlloc - before.TotalAlloc; d > 16<<20 {
		t.Errorf("zero write of 100 GiB allocated %d bytes", d)
	}
	var st unix.Stat_t
	unix.Stat(img, &st)
	if st.Size != size || st.Blocks > 64 {
		t.Errorf("after zeroing: size %d, %d blocks; want %d bytes, no blocks", st.Size, st.Blocks, int64(size))
	}
	buf := make([]byte, 4)
	do(t, b, func(co *blk.Co) error { return b.PRead(co, size/2, buf) })
	if !bytes.Equal(buf, make([]byte, 4)) {
		t.Errorf("read after zeroing = %x", buf)
	}
	if ext := mapImage(t, b); len(ext) != 1 || !ext[0].Zero {
		t.Errorf("map after zeroing = %v, want one zero extent", ext)
	}
}

func TestTruncate(t *testing.T) {
	tests := []struct {
		name     string
		from, to int64
		prealloc blk.Prealloc
		want     string // error text, "" for success
		size     int64  // file size afterwards
		minAlloc int64  // minimum allocated bytes afterwards
	}{
		{"grow off", 1 << 20, 2 << 20, blk.PreallocOff, "", 2 << 20, 0},
		{"shrink off", 1 << 20, 100000, blk.PreallocOff, "", 100000, 0},
		{"grow falloc", 1 << 20, 2 << 20, blk.PreallocFalloc, "", 2 << 20, 1 << 20},
		{"grow full", 1 << 20, 3 << 20, blk.PreallocFull, "", 3 << 20, 2 << 20},
		{"same falloc", 1 << 20, 1 << 20, blk.PreallocFalloc, "", 1 << 20, 0},
		{"metadata", 1 << 20, 2 << 20, blk.PreallocMetadata, "Unsupported preallocation mode: metadata", 1 << 20, 0},
		{"shrink full", 1 << 20, 1000, blk.PreallocFull, "Cannot use preallocation for shrinking files", 1 << 20, 0},
		{"shrink falloc", 1 << 20, 500, blk.PreallocFalloc, "Cannot use preallocation for shrinking files", 1 << 20, 0},
		{"shrink metadata", 1 << 20, 500, blk.PreallocMetadata, "Cannot use preallocation for shrinking files", 1 << 20, 0},
		{"too large", 1 << 20, 7 << 60, blk.PreallocOff, "Could not resize file: File too large", 1 << 20, 0},
		{"too large full", 1 << 20, 7 << 60, blk.PreallocFull, "Could not resize file: File too large", 1 << 20, 0},
		// From an empty file the first block is written (QEMU's
		// allocate_first_block), which makes a tiny file 512 bytes.
		{"empty to 100", 0, 100, blk.PreallocOff, "", 512, 512},
		{"empty to 10000", 0, 10000, blk.PreallocOff, "", 10000, 4096},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			img := newImage(t, t.TempDir(), tc.from)
			b := mustOpen(t, img, blk.OpenFlags{})
			err := do(t, b, func(co *blk.Co) error { return b.Truncate(co, tc.to, tc.prealloc) })
			b.Close()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Truncate = %v", err)
			case tc.want != "" && (err == nil || !strings.EqualFold(err.Error(), tc.want)):
				t.Errorf("Truncate = %v, want %q", err, tc.want)
			}
			if tc.want != "" && err != nil && blk.ErrnoOf(err) == unix.EIO {
				t.Errorf("error %v carries no specific errno", err)
			}
			var st unix.Stat_t
			unix.Stat(img, &st)
			if st.Size != tc.size {
				t.Errorf("size = %d, want %d", st.Size, tc.size)
			}
			if st.Blocks*512 < tc.minAlloc {
				t.Errorf("allocated %d bytes, want at least %d", st.Blocks*512, tc.minAlloc)
			}
		})
	}
}

// TestYieldIO: each request the driver performs yields once, so its
// completion arrives at the next loop point (QEMU's thread pool); the
// data are transferred before the yield.
func TestYieldIO(t *testing.T) {
	img := newImage(t, t.TempDir(), 1<<20)
	b := mustOpen(t, img, blk.OpenFlags{})
	defer b.Close()
	loop := b.Loop()
	ops := []struct {
		name string
		fn   func(co *blk.Co) error
	}{
		{"read", func(co *blk.Co) error { return b.Root.Impl().PRead(co, 0, make([]byte, 512), 0) }},
		{"write", func(co *blk.Co) error { return b.Root.Impl().PWrite(co, 0, make([]byte, 512), 0) }},
		{"zero", func(co *blk.Co) error { return b.Root.Impl().(blk.ZeroWriter).PWriteZeroes(co, 0, 512, 0) }},
		{"discard", func(co *blk.Co) error { return b.Root.Impl().(blk.Discarder).PDiscard(co, 0, 512) }},
		{"flush", func(co *blk.Co) error { return b.Root.Impl().(blk.DiskFlusher).FlushToDisk(co) }},
		{"truncate", func(co *blk.Co) error {
			return b.Root.Impl().(blk.Truncater).Truncate(co, 1<<20, true, blk.PreallocOff)
		}},
	}
	for _, op := range ops {
		var err error
		co := loop.Spawn(op.name, func(co *blk.Co) { err = op.fn(co) })
		loop.RunReady()
		if co.Done() {
			t.Errorf("%s finished without yielding", op.name)
		}
		if e := loop.RunUntil(op.name, co.Done); e != nil {
			t.Fatal(e)
		}
		if err != nil {
			t.Errorf("%s: %v", op.name, err)
		}
	}
	// Block status and length answer at once.
	co := loop.Spawn("status", func(co *blk.Co) {
		b.Root.Impl().(blk.BlockStatuser).BlockStatus(co, true, 0, 512)
		b.Root.Impl().Length(co)
	})
	loop.RunReady()
	if !co.Done() || co.Yielded() {
		t.Errorf("block status or length yielded")
	}
}
