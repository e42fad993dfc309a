package cvt

import (
	"io"
	"testing"
	"time"
)

var benchNums = []string{"0", "512", "1k", "0x200", "1.5M", "9223372036854775807", "0.1k", "bogus"}

func BenchmarkParseNum(b *testing.B) {
	for i := 0; b.Loop(); i++ {
		_, _ = ParseNum(benchNums[i%len(benchNums)])
	}
}

var benchSizes = []float64{512, 1539, 1048064, 2147483136, 340.783438, 454288785.5}

func BenchmarkSize(b *testing.B) {
	for i := 0; b.Loop(); i++ {
		_ = Size(benchSizes[i%len(benchSizes)])
	}
}

func BenchmarkReport(b *testing.B) {
	b.Run("human", func(b *testing.B) {
		for b.Loop() {
			_ = Report("read", 65536, 1048576, 123456*time.Nanosecond, 1, false)
		}
	})
	b.Run("machine", func(b *testing.B) {
		for b.Loop() {
			_ = Report("wrote", 65536, 1048576, 123456*time.Nanosecond, 1, true)
		}
	})
}

func BenchmarkHexDump(b *testing.B) {
	buf := make([]byte, 64<<10)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		_ = HexDump(io.Discard, 0, buf)
	}
}
