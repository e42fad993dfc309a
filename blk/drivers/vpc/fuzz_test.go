package vpc_test

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"gio/blk"
	"gio/blk/blktest"
	"gio/blk/drivers/file"
	"gio/blk/drivers/vpc"
	"gio/blk/qdict"
)

// smallBlocks turns a dynamic image made by create into one with 4 KiB
// blocks (QEMU takes any power of two from 512 on), so that a seed with
// allocated blocks stays small, and writes into two of its blocks.
func smallBlocks(f *testing.F, reg *blk.Registry, img []byte) []byte {
	h := img[512:]
	size := binary.BigEndian.Uint64(img[48:])
	binary.BigEndian.PutUint32(h[32:], 4096)
	binary.BigEndian.PutUint32(h[28:], uint32((size+4095)/4096))
	path := filepath.Join(f.TempDir(), "small")
	if err := os.WriteFile(path, img, 0o644); err != nil {
		f.Fatal(err)
	}
	b, err := reg.Open(blk.Spec{Filename: path, Format: "vpc"}, blk.NewLoop(blk.NewVirtualClock()))
	if err != nil {
		f.Fatal(err)
	}
	err = blktest.Do(f, b, "seed", func(co *blk.Co) error {
		if err := b.PWrite(co, 1000, bytes.Repeat([]byte{0xaa}, 5000), 0); err != nil {
			return err
		}
		return b.PWrite(co, 40<<10+7, bytes.Repeat([]byte{0xbb}, 300), 0)
	})
	b.Close()
	if err != nil {
		f.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	return data
}

// FuzzOpen feeds corrupted VHD images (footer, dynamic-disk header,
// BAT) to the driver and runs a few requests on each.
func FuzzOpen(f *testing.F) {
	reg := blk.NewRegistry(file.Driver, vpc.Driver)
	opts := func(k, v string) *qdict.Dict {
		d := qdict.New()
		d.Set(k, v)
		return d
	}
	for _, s := range [][]byte{
		blktest.CreateSeed(f, reg, "vpc", 5<<20, nil, nil),
		blktest.CreateSeed(f, reg, "vpc", 5<<20, opts("force_size", "on"), nil),
		blktest.CreateSeed(f, reg, "vpc", 32<<10, opts("subformat", "fixed"), nil),
		smallBlocks(f, reg, blktest.CreateSeed(f, reg, "vpc", 64<<10, nil, nil)),
	} {
		f.Add(s, []byte{0, 1, 2, 3, 4, 5, 6})
	}
	f.Fuzz(func(t *testing.T, img, ops []byte) { blktest.FuzzFormat(t, vpc.Driver, img, ops) })
}
