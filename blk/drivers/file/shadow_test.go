package file_test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"math/rand"
	"os"
	"testing"

	"gio/blk"
	"gio/blk/drivers/file"

	"golang.org/x/sys/unix"
)

// shmDir is a directory on tmpfs, where rewinding uses a shadow, or
// skips the test.
func shmDir(t *testing.T) string {
	t.Helper()
	var fs unix.Statfs_t
	if unix.Statfs("/dev/shm", &fs) != nil || fs.Type != 0x01021994 {
		t.Skip("no tmpfs at /dev/shm")
	}
	d, err := os.MkdirTemp("/dev/shm", "gio-shadow-test-")
	if err != nil {
		t.Skip(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

type testExtent struct {
	off  int64
	data []byte
}

// sparseCopy makes a file of size bytes with the extents of data.
func sparseCopy(t *testing.T, dir string, size int64, exts []testExtent) string {
	t.Helper()
	path := newImage(t, dir, size)
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, e := range exts {
		if _, err := f.WriteAt(e.data, e.off); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// state is everything a node answers about its file: length, bytes
// and block status; without block status, when withMap is false (which
// leaves a shadow's file alone).
func state(t *testing.T, b *blk.Backend, withMap bool) string {
	t.Helper()
	var l int64
	var data []byte
	err := do(t, b, func(co *blk.Co) error {
		var err error
		if l, err = b.Length(co); err != nil {
			return err
		}
		data = make([]byte, l)
		return b.PRead(co, 0, data)
	})
	var m []extent
	if withMap {
		m = mapImage(t, b)
	}
	return fmt.Sprintf("len %d err %v map %v sum %x", l, err, m, sha256.Sum256(data))
}

// TestShadow: a marked file on tmpfs runs on a shadow, and answers
// every request (reads, writes, zero writes, discards, truncations,
// flushes, block status) as a plain node on a copy of the file does,
// run after run with a rewind in between; the file itself is right
// whenever the descriptor is used and after the last run.
func TestShadow(t *testing.T) {
	dir := shmDir(t)
	for seed := int64(1); seed <= 12; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewSource(seed))
			size := int64(16<<10 + rng.Intn(64<<10))
			var exts []testExtent
			for i := rng.Intn(4); i > 0; i-- {
				off := rng.Int63n(size)
				exts = append(exts, testExtent{off, bytes.Repeat([]byte{byte(rng.Intn(255) + 1)}, int(min(size-off, int64(1+rng.Intn(9000)))))})
			}
			img := sparseCopy(t, dir, size, exts)
			a := mustOpen(t, img, blk.OpenFlags{})
			defer a.Close()
			mark, err := a.Mark()
			if err != nil {
				t.Fatal(err)
			}
			initial := state(t, a, true)
			for run := 0; run < 6; run++ {
				if !file.Shadowed(a.Root) {
					t.Fatalf("run %d: no shadow", run)
				}
				ref := mustOpen(t, sparseCopy(t, dir, size, exts), blk.OpenFlags{})
				// blk caches the length the first time it is asked,
				// as it was asked of the marked node.
				state(t, ref, false)
				for step := 0; step < 12; step++ {
					// Even runs only read, write and flush, as
					// explore's do: the file is never touched.
					op := randomOp(rng, size, run%2 == 0)
					if op.kind == "truncate" && rng.Intn(2) == 0 {
						// Shrink more often: pages past the end go.
						op.off /= 4
					}
					ga, gr := op.apply(t, a), op.apply(t, ref)
					if ga != gr {
						t.Fatalf("run %d step %d %s: shadow %s, file %s", run, step, op, ga, gr)
					}
				}
				pure := run%2 == 0
				if sa, sr := state(t, a, !pure), state(t, ref, !pure); sa != sr {
					t.Fatalf("run %d: shadow ends %s, file %s", run, sa, sr)
				}
				ref.Close()
				if err := mark.Rewind(); err != nil {
					t.Fatal(err)
				}
				if got := state(t, a, true); got != initial {
					t.Fatalf("run %d: rewound to %s, want %s", run, got, initial)
				}
			}
			// A last run's writes reach the file when it closes.
			ref := mustOpen(t, sparseCopy(t, dir, size, exts), blk.OpenFlags{})
			op := shadowOp{kind: "write", off: 100, n: 5000, fill: 7}
			op.apply(t, a)
			op.apply(t, ref)
			a.Close()
			ref.Close()
			back := mustOpen(t, img, blk.OpenFlags{})
			defer back.Close()
			if file.Shadowed(back.Root) {
				t.Fatal("a node that was not marked has a shadow")
			}
			ref = mustOpen(t, sparseCopy(t, dir, size, exts), blk.OpenFlags{})
			defer ref.Close()
			op.apply(t, ref)
			if sa, sr := state(t, back, true), state(t, ref, true); sa != sr {
				t.Fatalf("file after close: %s, want %s", sa, sr)
			}
		})
	}
}

type shadowOp struct {
	kind   string
	off, n int64
	fill   byte
	unmap  bool
}

func (o shadowOp) String() string { return fmt.Sprintf("%s %d+%d", o.kind, o.off, o.n) }

func randomOp(rng *rand.Rand, size int64, rw bool) shadowOp {
	kinds := []string{"write", "write", "write", "read", "flush", "zero", "discard", "truncate", "map"}
	if rw {
		kinds = kinds[:5]
	}
	o := shadowOp{kind: kinds[rng.Intn(len(kinds))], off: rng.Int63n(size + 8192), n: 1 + rng.Int63n(12000),
		fill: byte(rng.Intn(256)), unmap: rng.Intn(2) == 0}
	if rng.Intn(4) == 0 {
		o.off = o.off / 4096 * 4096
		o.n = (o.n + 4095) / 4096 * 4096
	}
	return o
}

// apply runs the operation on b and says what it answered.
func (o shadowOp) apply(t *testing.T, b *blk.Backend) string {
	t.Helper()
	var out string
	// Requests go to the node, as a format's do: past the end, writes
	// grow the file and reads see zeroes.
	n := b.Root
	err := do(t, b, func(co *blk.Co) error {
		switch o.kind {
		case "write":
			return n.PWrite(co, o.off, bytes.Repeat([]byte{o.fill}, int(o.n)), 0)
		case "read":
			buf := make([]byte, o.n)
			err := n.PRead(co, o.off, buf, 0)
			out = fmt.Sprintf("%x", sha256.Sum256(buf))
			return err
		case "zero":
			var f blk.ReqFlags
			if o.unmap {
				f = blk.MayUnmap
			}
			return n.PWriteZeroes(co, o.off, o.n, f)
		case "discard":
			return n.PDiscard(co, o.off, o.n)
		case "truncate":
			return b.Truncate(co, o.off, blk.PreallocOff)
		case "flush":
			return b.Flush(co)
		}
		return nil
	})
	if o.kind == "map" {
		out = fmt.Sprint(mapImage(t, b))
	}
	return fmt.Sprintf("%v %s", err, out)
}

// TestShadowSharedFile: a file open on two nodes gets no shadow (the
// other node would read the file behind it), and a shadow is written
// back and dropped when another node opens its file.
func TestShadowSharedFile(t *testing.T) {
	dir := shmDir(t)
	img := newImage(t, dir, 64<<10)
	a := mustOpen(t, img, blk.OpenFlags{})
	b := mustOpen(t, img, blk.OpenFlags{}, "locking", "off")
	if _, err := a.Mark(); err != nil {
		t.Fatal(err)
	}
	if file.Shadowed(a.Root) {
		t.Error("a file open twice has a shadow")
	}
	b.Close()
	if _, err := a.Mark(); err != nil {
		t.Fatal(err)
	}
	if !file.Shadowed(a.Root) {
		t.Fatal("no shadow once the other node closed")
	}
	if err := do(t, a, func(co *blk.Co) error { return a.PWrite(co, 512, []byte("shadowed"), 0) }); err != nil {
		t.Fatal(err)
	}
	c := mustOpen(t, img, blk.OpenFlags{}, "locking", "off")
	defer c.Close()
	if file.Shadowed(a.Root) {
		t.Error("the shadow stays while another node has the file open")
	}
	buf := make([]byte, 8)
	if err := do(t, c, func(co *blk.Co) error { return c.PRead(co, 512, buf) }); err != nil || string(buf) != "shadowed" {
		t.Errorf("the other node reads %q, %v; want the shadow's write", buf, err)
	}
	a.Close()
}
