package qcow2_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"gio/blk"
	"gio/blk/drivers/qcow2"
)

// TestRewind: after requests that allocate clusters and L2 tables,
// discard, write zeroes and flush, a rewind brings the node's memory
// (header fields, tables, allocation hints, both caches with the tables
// they held) and the image's data back to the mark, run after run.
func TestRewind(t *testing.T) {
	dir := t.TempDir()
	if d, err := os.MkdirTemp("/dev/shm", "gio-qcow2-rewind-"); err == nil {
		// On tmpfs the file below runs on a shadow (file/shadow.go).
		dir = d
		defer os.RemoveAll(d)
	}
	img := filepath.Join(dir, "img.qcow2")
	create(t, img, 64<<20, "cluster_size", "4096")
	b := mustOpen(t, img)
	defer b.Close()
	write := func(off int64, n int, v byte) {
		t.Helper()
		if err := do(t, b, func(co *blk.Co) error { return b.PWrite(co, off, bytes.Repeat([]byte{v}, n), 0) }); err != nil {
			t.Fatal(err)
		}
	}
	flush := func() {
		t.Helper()
		if err := do(t, b, func(co *blk.Co) error { return b.Flush(co) }); err != nil {
			t.Fatal(err)
		}
	}
	read := func() []byte {
		t.Helper()
		buf := make([]byte, 4<<20)
		if err := do(t, b, func(co *blk.Co) error { return b.PRead(co, 0, buf) }); err != nil {
			t.Fatal(err)
		}
		return buf
	}
	write(0, 8192, 1)
	write(3<<20, 512, 2)
	flush()
	mark, err := b.Mark()
	if err != nil {
		t.Fatal(err)
	}
	marked, data := qcow2.Describe(b.Root), read()
	for run := 0; run < 3; run++ {
		// New clusters in new L2 tables and in old ones, an
		// overwrite, a discard and a zero write, enough tables to
		// evict cache entries.
		for i := range 40 {
			write(int64(i)<<20+int64(run)*4096, 4096, byte(10+run))
		}
		write(0, 512, 9)
		// More than a refcount block covers: new refcount blocks and
		// reftable entries.
		write(48<<20, 9<<20, 3)
		if err := do(t, b, func(co *blk.Co) error { return b.PDiscard(co, 4096, 4096) }); err != nil {
			t.Fatal(err)
		}
		if err := do(t, b, func(co *blk.Co) error { return b.PWriteZeroes(co, 3<<20, 4096, blk.MayUnmap) }); err != nil {
			t.Fatal(err)
		}
		flush()
		if qcow2.Describe(b.Root) == marked {
			t.Fatalf("run %d changed nothing to rewind", run)
		}
		if err := mark.Rewind(); err != nil {
			t.Fatal(err)
		}
		if got := qcow2.Describe(b.Root); got != marked {
			t.Fatalf("run %d: rewound to\n%s\nmarked\n%s", run, got, marked)
		}
		if !bytes.Equal(read(), data) {
			t.Fatalf("run %d: data not rewound", run)
		}
	}
}
