package bochs_test

import (
	"bytes"
	"encoding/binary"
	"testing"

	"gio/blk"
	"gio/blk/blktest"
	"gio/blk/drivers/bochs"
)

// image builds a growing image: a 16 KiB disk of 4 KiB extents, extent
// 1 allocated with sectors 0, 2, 5 and 7 written, and extent 3 with
// sectors 4 to 7 ('A'+n and 'I'+n), as the recorded differential cases
// in cmd/gio/testdata/diff/roformats.txt have it.
func image(version uint32) []byte {
	h := make([]byte, 512)
	copy(h, "Bochs Virtual HD Image")
	copy(h[32:], "Redolog")
	copy(h[48:], "Growing")
	le := binary.LittleEndian
	le.PutUint32(h[64:], version)
	le.PutUint32(h[68:], 512)  // header size: the catalog follows it
	le.PutUint32(h[72:], 4)    // catalog entries
	le.PutUint32(h[76:], 512)  // bitmap bytes per extent
	le.PutUint32(h[80:], 4096) // extent size
	if version == 0x00010000 {
		le.PutUint64(h[84:], 16384)
	} else {
		le.PutUint64(h[88:], 16384)
	}
	img := h
	for _, e := range []uint32{0xffffffff, 0, 0xffffffff, 1} {
		img = le.AppendUint32(img, e)
	}
	for e, bits := range []byte{0b10100101, 0b11110000} {
		bm := make([]byte, 512)
		bm[0] = bits
		img = append(img, bm...)
		for s := range 8 {
			img = append(img, bytes.Repeat([]byte{byte('A' + 8*e + s)}, 512)...)
		}
	}
	return img
}

// TestRead checks the sector map: written sectors read from their
// extent, the others (and unallocated extents) as zeroes.
func TestRead(t *testing.T) {
	for _, v := range []uint32{0x00020000, 0x00010000} {
		b := blktest.OpenImage(t, bochs.Driver, image(v), true)
		got := make([]byte, 16384)
		blktest.Do(t, b, "read", func(co *blk.Co) error { return b.PRead(co, 0, got) })
		want := make([]byte, 16384)
		for _, s := range []int{0, 2, 5, 7} {
			copy(want[4096+512*s:], bytes.Repeat([]byte{byte('A' + s)}, 512))
		}
		for s := 4; s < 8; s++ {
			copy(want[12288+512*s:], bytes.Repeat([]byte{byte('I' + s)}, 512))
		}
		if !bytes.Equal(got, want) {
			t.Errorf("version %#x: image reads wrong", v)
		}
	}
}

// FuzzOpen feeds corrupted headers and catalogs to the driver, opened
// read-only as it must be.
func FuzzOpen(f *testing.F) {
	f.Add(image(0x00020000), []byte{0, 1, 2, 3, 4, 5})
	f.Add(image(0x00010000), []byte{4, 0, 8})
	f.Fuzz(func(t *testing.T, img, ops []byte) { blktest.FuzzFormatReadOnly(t, bochs.Driver, img, ops) })
}
