package dmg_test

import (
	"bytes"
	"compress/zlib"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"testing"
)

// bzip2Sectors is two sectors, of 'B' then 'C', as bzip2 compresses
// them (Go has no bzip2 encoder).
const bzip2Sectors = "\x42\x5a\x68\x39\x31\x41\x59\x26\x53\x59\x18\x4b\x8f\x19\x00\x00\x00\x04\x00\x98\x00\x00\x08\x20\x00\x30\xcc\x09\x32\x34\x2e\x28\xa3\x22\x71\x77\x24\x53\x85\x09\x01\x84\xb8\xf1\x90"

// Chunk types, as in dmg.go.
const (
	udze = 0
	udrw = 1
	udig = 2
	udzo = 0x80000005
	udbz = 0x80000006
	ulfo = 0x80000007
	udcm = 0x7ffffffe
	udle = 0xffffffff
)

type entry struct {
	typ                           uint32
	sector, count, offset, length uint64
}

// sample builds a 14-sector image: sectors 0-3 zlib ('0'+n), 4-5 raw
// ('4', '5'), 6-9 zeroes, 10-11 bzip2 ('B', 'C'; raw when noBzip2),
// 12-13 ignored, then a comment and the last-entry marker. The chunk
// table is a mish block in an XML property list, or in a resource fork
// when rsrc is set. It returns the image and the 14 sectors it holds.
// (cmd/gio/testdata/diff/roformats.txt holds images built by it.)
func sample(t testing.TB, rsrc, noBzip2 bool) ([]byte, []byte) {
	sec := func(c byte) []byte { return bytes.Repeat([]byte{c}, 512) }
	var plain, fork []byte
	var entries []entry
	add := func(typ uint32, count uint64, stored, content []byte) {
		entries = append(entries, entry{typ, uint64(len(plain) / 512), count, uint64(len(fork)), uint64(len(stored))})
		fork = append(fork, stored...)
		plain = append(plain, content...)
	}
	var zl []byte
	for c := byte('0'); c < '4'; c++ {
		zl = append(zl, sec(c)...)
	}
	var z bytes.Buffer
	w := zlib.NewWriter(&z)
	w.Write(zl)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	add(udzo, 4, z.Bytes(), zl)
	rw := append(sec('4'), sec('5')...)
	add(udrw, 2, rw, rw)
	add(udze, 4, nil, make([]byte, 4*512))
	if bc := append(sec('B'), sec('C')...); noBzip2 {
		add(udrw, 2, bc, bc)
	} else {
		add(udbz, 2, []byte(bzip2Sectors), bc)
	}
	add(udig, 2, nil, make([]byte, 2*512))
	entries = append(entries, entry{typ: udcm}, entry{typ: udle})
	mish := make([]byte, 204, 204+40*len(entries))
	binary.BigEndian.PutUint32(mish, 0x6d697368)
	for _, e := range entries {
		var b [40]byte
		binary.BigEndian.PutUint32(b[0:], e.typ)
		binary.BigEndian.PutUint64(b[8:], e.sector)
		binary.BigEndian.PutUint64(b[0x10:], e.count)
		binary.BigEndian.PutUint64(b[0x18:], e.offset)
		binary.BigEndian.PutUint64(b[0x20:], e.length)
		mish = append(mish, b[:]...)
	}
	img := fork
	koly := make([]byte, 512)
	copy(koly, "koly")
	if rsrc {
		// Resource fork: data offset 16, data length; then one resource.
		begin := uint64(len(img))
		res := binary.BigEndian.AppendUint32(nil, uint32(len(mish)))
		res = append(res, mish...)
		hdr := make([]byte, 16)
		binary.BigEndian.PutUint32(hdr[0:], 16)
		binary.BigEndian.PutUint32(hdr[8:], uint32(len(res)))
		img = append(append(img, hdr...), res...)
		binary.BigEndian.PutUint64(koly[0x28:], begin)
		binary.BigEndian.PutUint64(koly[0x30:], uint64(16+len(res)))
	} else {
		xml := fmt.Sprintf("<?xml version=\"1.0\"?>\n<plist><dict><key>blkx</key><array><dict>\n\t<data>\n\t%s\n\t</data>\n</dict></array></dict></plist>\n",
			base64.StdEncoding.EncodeToString(mish))
		binary.BigEndian.PutUint64(koly[0xd8:], uint64(len(img)))
		binary.BigEndian.PutUint64(koly[0xe0:], uint64(len(xml)))
		img = append(img, xml...)
	}
	binary.BigEndian.PutUint64(koly[0x1ec:], uint64(len(plain)/512))
	return append(img, koly...), plain
}
