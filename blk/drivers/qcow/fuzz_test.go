package qcow_test

import (
	"bytes"
	"testing"

	"gio/blk"
	"gio/blk/blktest"
	"gio/blk/drivers/file"
	"gio/blk/drivers/qcow"
	"gio/blk/drivers/raw"
	"gio/blk/qdict"
)

// maxInput bounds the images the target takes (blktest.CreateSeed keeps
// 64 KiB of a seed).
const maxInput = 64 << 10

// seedImages makes qcow images with the driver's own create, normal and
// compressed clusters, with and without the 512-byte clusters of an
// image made with a backing file (not opened: a compressed write fails
// there, as QEMU's does).
func seedImages(f *testing.F) [][]byte {
	var out [][]byte
	for _, backing := range []string{"", "base"} {
		opts := qdict.New()
		if backing != "" {
			opts.Set("backing_file", backing)
			opts.Set("backing_fmt", "raw")
		}
		reg := blk.NewRegistry(file.Driver, raw.Driver, qcow.Driver)
		out = append(out, blktest.CreateSeed(f, reg, "qcow", 256<<10, opts, func(co *blk.Co, b *blk.Backend) error {
			if err := b.PWrite(co, 1000, bytes.Repeat([]byte{0xaa}, 5000), 0); err != nil {
				return err
			}
			if err := b.PWriteCompressed(co, 64<<10, bytes.Repeat([]byte{0x33}, 4096)); err != nil && backing == "" {
				return err
			}
			return b.PWrite(co, 200<<10, bytes.Repeat([]byte{0xbb}, 3000), 0)
		}))
	}
	return out
}

// FuzzOpen opens corrupted qcow images and runs a few requests on them
// (blktest.FuzzFormat).
func FuzzOpen(f *testing.F) {
	for _, s := range seedImages(f) {
		f.Add(s, []byte{0, 1, 2, 3, 4, 5, 6, 0})
	}
	f.Fuzz(func(t *testing.T, img []byte, ops []byte) {
		if len(img) <= maxInput {
			blktest.FuzzFormat(t, qcow.Driver, img, ops)
		}
	})
}
