package cloop_test

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"testing"

	"gio/blk"
	"gio/blk/blktest"
	"gio/blk/drivers/cloop"
)

const preamble = "#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0 && mount -r -t iso9660 /dev/cloop $1\n"

// image builds a cloop image of n blocks of blockSize bytes, block i
// filled with byte i+1.
func image(t testing.TB, blockSize uint32, n int) ([]byte, []byte) {
	head := make([]byte, 128, 128+8+8*(n+1))
	copy(head, preamble)
	head = binary.BigEndian.AppendUint32(head, blockSize)
	head = binary.BigEndian.AppendUint32(head, uint32(n))
	var data, plain []byte
	offsets := []uint64{uint64(cap(head))}
	for i := range n {
		block := bytes.Repeat([]byte{byte(i + 1)}, int(blockSize))
		plain = append(plain, block...)
		var z bytes.Buffer
		w := zlib.NewWriter(&z)
		if _, err := w.Write(block); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		data = append(data, z.Bytes()...)
		offsets = append(offsets, offsets[0]+uint64(len(data)))
	}
	for _, o := range offsets {
		head = binary.BigEndian.AppendUint64(head, o)
	}
	return append(head, data...), plain
}

// TestRead reads across block boundaries, through the one-block cache.
func TestRead(t *testing.T) {
	img, plain := image(t, 4096, 5)
	b := blktest.OpenImage(t, cloop.Driver, img, true)
	for _, r := range []struct{ off, n int64 }{{0, 20480}, {4096 - 512, 1024}, {8192, 512}, {0, 512}, {16384, 4096}} {
		got := make([]byte, r.n)
		if err := blktest.Do(t, b, "read", func(co *blk.Co) error { return b.PRead(co, r.off, got) }); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, plain[r.off:r.off+r.n]) {
			t.Errorf("read %d+%d: wrong data", r.off, r.n)
		}
	}
}

// FuzzOpen feeds corrupted headers, offset tables and compressed blocks
// to the driver, opened read-only as it must be.
func FuzzOpen(f *testing.F) {
	img, _ := image(f, 4096, 5)
	f.Add(img, []byte{0, 8, 16, 4, 0})
	img, _ = image(f, 512, 3)
	f.Add(img, []byte{0, 0, 0})
	f.Fuzz(func(t *testing.T, img, ops []byte) { blktest.FuzzFormatReadOnly(t, cloop.Driver, img, ops) })
}
