package vdi_test

import (
	"bytes"
	"testing"

	"gio/blk"
	"gio/blk/blktest"
	"gio/blk/drivers/file"
	"gio/blk/drivers/vdi"
	"gio/blk/qdict"
)

// FuzzOpen feeds corrupted VDI images (header fields, block map) to the
// driver and runs a few requests on each.
func FuzzOpen(f *testing.F) {
	reg := blk.NewRegistry(file.Driver, vdi.Driver)
	write := func(co *blk.Co, b *blk.Backend) error {
		if err := b.PWrite(co, 1000, bytes.Repeat([]byte{0xaa}, 5000), 0); err != nil {
			return err
		}
		return b.PWrite(co, 1<<20+7, bytes.Repeat([]byte{0xbb}, 3000), 0)
	}
	static := qdict.New()
	static.Set("static", "on")
	for _, s := range [][]byte{
		blktest.CreateSeed(f, reg, "vdi", 3<<20, nil, write),
		blktest.CreateSeed(f, reg, "vdi", 1000, nil, nil),
		blktest.CreateSeed(f, reg, "vdi", 2<<20, static, write),
	} {
		f.Add(s, []byte{0, 1, 2, 3, 4, 5, 6})
	}
	f.Fuzz(func(t *testing.T, img, ops []byte) { blktest.FuzzFormat(t, vdi.Driver, img, ops) })
}
