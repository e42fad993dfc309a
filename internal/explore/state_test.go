package explore

import (
	"bytes"
	"io"
	"testing"

	"gio/internal/cvt"
	"gio/internal/fsx"
)

// TestStateRecords: a run whose reads come as fsx's dump records hashes
// to the state its printed hex dumps hashed to, however the output is
// cut into writes, and other data hashes otherwise.
func TestStateRecords(t *testing.T) {
	data := make([]byte, 70)
	for i := range data {
		data[i] = byte(i * 7)
	}
	var text, recs bytes.Buffer
	for _, w := range []*bytes.Buffer{&text, &recs} {
		w.WriteString("wrote 512/512 bytes at offset 0\nblkdebug: Suspended request 'A'\n")
	}
	cvt.HexDump(&text, 4096, data)
	fsx.WriteDump(&recs, 4096, data)
	for _, w := range []*bytes.Buffer{&text, &recs} {
		w.WriteString("read 70/70 bytes at offset 4096\n")
	}
	cvt.HexDump(&text, 0x10, data[:3])
	fsx.WriteDump(&recs, 0x10, data[:3])
	want := hashOf(text.Bytes(), 1)
	for cut := 1; cut <= recs.Len(); cut++ {
		if got := hashOf(recs.Bytes(), cut); got != want {
			t.Fatalf("writes of %d bytes: hash %x, the hex dumps' %x", cut, got, want)
		}
	}
	data[69]++
	var other bytes.Buffer
	fsx.WriteDump(&other, 4096, data)
	if hashOf(other.Bytes(), 7) == hashOf(recs.Bytes(), 7) {
		t.Fatal("other data, same state")
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
