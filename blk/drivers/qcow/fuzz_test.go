package qcow_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"gio/blk"
	"gio/blk/blktest"
	"gio/blk/drivers/file"
	"gio/blk/drivers/qcow"
	"gio/blk/drivers/raw"
	"gio/blk/qdict"
)

// maxInput bounds the images the target takes; the seeds fit.
const maxInput = 64 << 10

// seedImages makes qcow images with the driver's own create, normal and
// compressed clusters, with and without the 512-byte clusters of an
// image made with a backing file.
func seedImages(f *testing.F) [][]byte {
	var out [][]byte
	dir := f.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "base"), make([]byte, 64<<10), 0o644); err != nil {
		f.Fatal(err)
	}
	for i, backing := range []string{"", "base"} {
		path := filepath.Join(dir, strconv.Itoa(i))
		if err := os.WriteFile(path, nil, 0o644); err != nil {
			f.Fatal(err)
		}
		reg := blk.NewRegistry(file.Driver, raw.Driver, qcow.Driver)
		opts := qdict.New()
		if backing != "" {
			opts.Set("backing_file", backing)
			opts.Set("backing_fmt", "raw")
		}
		loop := blk.NewLoop(blk.NewVirtualClock())
		if err := reg.Create("qcow", path, 256<<10, opts, loop); err != nil {
			f.Fatal(err)
		}
		spec := blk.Spec{Filename: path, Format: "qcow", Opts: qdict.New()}
		spec.Opts.Set("backing", "")
		b, err := reg.Open(spec, loop)
		if err != nil {
			f.Fatal(err)
		}
		_ = blktest.Do(f, b, "seed", func(co *blk.Co) error {
			if err := b.PWrite(co, 1000, bytes.Repeat([]byte{0xaa}, 5000), 0); err != nil {
				return err
			}
			if err := b.PWriteCompressed(co, 64<<10, bytes.Repeat([]byte{0x33}, 4096)); err != nil && backing == "" {
				return err
			}
			return b.PWrite(co, 200<<10, bytes.Repeat([]byte{0xbb}, 3000), 0)
		})
		b.Close()
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		if len(data) > maxInput {
			f.Fatalf("seed %d is %d bytes, more than the target takes", i, len(data))
		}
		out = append(out, data)
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
