package dmg_test

import (
	"bytes"
	"testing"

	"gio/blk"
	"gio/blk/blktest"
	"gio/blk/drivers/dmg"
)

// TestRead reads every sector of both table layouts, in pieces that
// cross chunks and go back to a chunk already decompressed.
func TestRead(t *testing.T) {
	for _, rsrc := range []bool{false, true} {
		img, plain := sample(t, rsrc, false)
		b := blktest.OpenImage(t, dmg.Driver, img, true)
		for _, r := range []struct{ off, n int64 }{{0, 14 * 512}, {3 * 512, 2048}, {0, 512}, {5 * 512, 4096}, {10 * 512, 512}, {13 * 512, 512}} {
			got := make([]byte, r.n)
			if err := blktest.Do(t, b, "read", func(co *blk.Co) error { return b.PRead(co, r.off, got) }); err != nil {
				t.Fatalf("rsrc %v: read %d+%d: %v", rsrc, r.off, r.n, err)
			}
			if !bytes.Equal(got, plain[r.off:r.off+r.n]) {
				t.Errorf("rsrc %v: read %d+%d: wrong data", rsrc, r.off, r.n)
			}
		}
	}
}

// FuzzOpen feeds corrupted trailers, chunk tables and chunks to the
// driver, opened read-only as it must be.
func FuzzOpen(f *testing.F) {
	for _, rsrc := range []bool{false, true} {
		img, _ := sample(f, rsrc, false)
		f.Add(img, []byte{0, 8, 16, 24, 4})
	}
	f.Fuzz(func(t *testing.T, img, ops []byte) { blktest.FuzzFormatReadOnly(t, dmg.Driver, img, ops) })
}
