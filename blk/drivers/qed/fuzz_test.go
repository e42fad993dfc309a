package qed_test

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"gio/blk"
	"gio/blk/blktest"
	"gio/blk/drivers/file"
	"gio/blk/drivers/qed"
	"gio/blk/qdict"
)

// maxInput bounds the images the target takes: small ones keep the
// fuzzer fast, and the seeds (4 KiB clusters) fit.
const maxInput = 64 << 10

// seedImages makes QED images with the driver's own create and a few
// writes, in several geometries.
func seedImages(f *testing.F) [][]byte {
	var out [][]byte
	dir := f.TempDir()
	for i, o := range []map[string]string{
		{"cluster_size": "4096", "table_size": "2"},
		{"cluster_size": "4096", "table_size": "4"},
	} {
		path := filepath.Join(dir, strconv.Itoa(i))
		if err := os.WriteFile(path, nil, 0o644); err != nil {
			f.Fatal(err)
		}
		reg := blk.NewRegistry(file.Driver, qed.Driver)
		opts := qdict.New()
		for k, v := range o {
			opts.Set(k, v)
		}
		loop := blk.NewLoop(blk.NewVirtualClock())
		if err := reg.Create("qed", path, 256<<10, opts, loop); err != nil {
			f.Fatal(err)
		}
		b, err := reg.Open(blk.Spec{Filename: path, Format: "qed"}, loop)
		if err != nil {
			f.Fatal(err)
		}
		_ = blktest.Do(f, b, "seed", func(co *blk.Co) error {
			if err := b.PWrite(co, 1000, bytes.Repeat([]byte{0xaa}, 5000), 0); err != nil {
				return err
			}
			if err := b.PWriteZeroes(co, 64<<10, 16<<10, 0); err != nil {
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
