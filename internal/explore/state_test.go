package explore

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"gio/internal/cvt"
	"gio/internal/fsx"
)

// TestStateRecords: runs whose reads come as fsx's dump records have the
// same state exactly when their printed hex dumps would have had the
// same hashed lines, however the output is cut into writes.
func TestStateRecords(t *testing.T) {
	data := make([]byte, 70)
	for i := range data {
		data[i] = byte(i * 7)
	}
	other := append([]byte(nil), data...)
	other[69]++
	type item struct {
		text string // a line, or a dump of data at off
		off  int64
		data []byte
	}
	susp := item{text: "blkdebug: Suspended request 'A'"}
	runs := [][]item{
		{{text: "wrote 512/512 bytes at offset 0"}, susp, {off: 4096, data: data}, {text: "read 70/70 bytes at offset 4096"}},
		{susp, {off: 4096, data: data}},
		{susp, {off: 4096, data: other}},
		{{off: 4096, data: data}, susp},
		{susp, {off: 4096, data: data[:32]}, {off: 4096 + 32, data: data[32:]}}, // the same rows
		{susp, {off: 4096, data: data[:31]}, {off: 4096 + 31, data: data[31:]}},
		{susp, {off: 4095, data: data}},
		{susp, {off: 1<<32 + 16, data: data}}, // rows with no colon at 8
		{susp, {off: 1<<32 + 16, data: other}},
		{susp},
	}
	refs := make([]string, len(runs))
	hashes := make([]uint64, len(runs))
	for i, run := range runs {
		var text, recs bytes.Buffer
		for _, it := range run {
			if it.data == nil {
				text.WriteString(it.text + "\n")
				recs.WriteString(it.text + "\n")
				continue
			}
			cvt.HexDump(&text, it.off, it.data)
			fsx.WriteDump(&recs, it.off, it.data)
		}
		// What the state was a hash of when dumps were printed.
		for _, l := range strings.Split(text.String(), "\n") {
			if len(l) > 9 && l[8] == ':' {
				refs[i] += l + "\n"
			}
		}
		hashes[i] = hashOf(recs.Bytes(), 1)
		for cut := 2; cut <= recs.Len(); cut++ {
			if h := hashOf(recs.Bytes(), cut); h != hashes[i] {
				t.Fatalf("run %d: writes of %d bytes: hash %x, in bytes %x", i, cut, h, hashes[i])
			}
		}
	}
	for i := range runs {
		for j := range runs {
			if (refs[i] == refs[j]) != (hashes[i] == hashes[j]) {
				t.Errorf("runs %d and %d: same dump lines %v, same state %v", i, j, refs[i] == refs[j], hashes[i] == hashes[j])
			}
		}
	}
}

// hashOf writes out to a stateWriter in pieces of cut bytes.
func hashOf(out []byte, cut int) uint64 {
	sw := &stateWriter{w: io.Discard}
	for len(out) > 0 {
		n := min(cut, len(out))
		sw.Write(out[:n])
		out = out[n:]
	}
	return sw.h
}
