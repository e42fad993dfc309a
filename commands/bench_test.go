package commands

// Benchmarks of a command's whole path (go test -bench . ./commands):
// parsing, the request through the loop, the pattern check. Timings
// only; nothing here passes or fails on speed.

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"gio/blk"
	"gio/blk/drivers/file"
	"gio/blk/drivers/null"
	"gio/blk/drivers/raw"
)

func benchSession(b *testing.B, image string, o OpenOptions) *Session {
	b.Helper()
	reg := blk.NewRegistry(file.Driver, raw.Driver, null.CoDriver)
	s := NewSession(io.Discard, io.Discard, reg, blk.NewLoop(blk.NewVirtualClock()))
	o.Format = "raw"
	if !s.OpenImage(image, o) {
		b.Fatal("open failed")
	}
	b.Cleanup(func() { s.CloseImage() })
	return s
}

func benchExecute(b *testing.B, s *Session, line string) {
	b.ReportAllocs()
	for b.Loop() {
		if !s.Execute(line) {
			b.Fatalf("%s failed", line)
		}
	}
}

// BenchmarkReadNull is one "read -q -P 0xab 0 4k" on null-co: the cost
// of a command without I/O.
func BenchmarkReadNull(b *testing.B) {
	benchExecute(b, benchSession(b, "null-co://", OpenOptions{}), "read -q -P 0xab 0 4k")
}

// BenchmarkWriteFile is one piped "write -q -P 0x5a 0 4k" on a file at
// cache=writeback: what bench/compare.sh's wb-write target repeats.
func BenchmarkWriteFile(b *testing.B) {
	img := filepath.Join(b.TempDir(), "img.raw")
	if err := os.WriteFile(img, make([]byte, 1<<20), 0o644); err != nil {
		b.Fatal(err)
	}
	benchExecute(b, benchSession(b, img, OpenOptions{Cache: "writeback"}), "write -q -P 0x5a 0 4k")
}

// BenchmarkMismatch is the pattern check of read -P over 1 MiB.
func BenchmarkMismatch(b *testing.B) {
	buf := make([]byte, 1<<20)
	fillBytes(buf, 0x5a)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		if mismatch(buf, 0x5a) {
			b.Fatal("mismatch")
		}
	}
}

// BenchmarkFill is the pattern fill of write -P over 1 MiB.
func BenchmarkFill(b *testing.B) {
	buf := make([]byte, 1<<20)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		fillBytes(buf, 0x5a)
	}
}
