package qed_test

import (
	"bytes"
	"encoding/binary"
	"testing"

	"gio/blk"
	"gio/blk/blktest"
	"gio/blk/drivers/file"
	"gio/blk/drivers/qed"
	"gio/blk/qdict"
)

// maxInput bounds the images the target takes: small ones keep the
// fuzzer fast (blktest.CreateSeed keeps 64 KiB of a seed).
const maxInput = 64 << 10

// seedImages makes QED images with the driver's own create and a few
// writes, in several geometries.
func seedImages(f *testing.F) [][]byte {
	var out [][]byte
	for _, tables := range []string{"2", "4"} {
		opts := qdict.New()
		opts.Set("cluster_size", "4096")
		opts.Set("table_size", tables)
		reg := blk.NewRegistry(file.Driver, qed.Driver)
		out = append(out, blktest.CreateSeed(f, reg, "qed", 256<<10, opts, func(co *blk.Co, b *blk.Backend) error {
			if err := b.PWrite(co, 1000, bytes.Repeat([]byte{0xaa}, 5000), 0); err != nil {
				return err
			}
			if err := b.PWriteZeroes(co, 64<<10, 16<<10, 0); err != nil {
				return err
			}
			return b.PWrite(co, 200<<10, bytes.Repeat([]byte{0xbb}, 3000), 0)
		}))
	}
	return out
}

// FuzzOpen opens corrupted QED images and runs a few requests on them
// (blktest.FuzzFormat): open either fails with an errno or the image
// serves requests, never a panic, a hang or an access outside the file.
func FuzzOpen(f *testing.F) {
	for _, s := range seedImages(f) {
		f.Add(s, []byte{0, 1, 2, 3, 4, 5, 6})
		bad := append([]byte(nil), s...)
		binary.LittleEndian.PutUint64(bad[16:], 2) // need-check: repair on open
		f.Add(bad, []byte{1, 0})
	}
	f.Fuzz(func(t *testing.T, img []byte, ops []byte) {
		if len(img) <= maxInput {
			blktest.FuzzFormat(t, qed.Driver, img, ops)
		}
	})
}
