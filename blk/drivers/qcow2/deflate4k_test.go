package qcow2

import (
	"bytes"
	"compress/flate"
	"io"
	"math/rand"
	"testing"
)

func inflateAll(t testing.TB, b []byte) []byte {
	out, err := io.ReadAll(flate.NewReader(bytes.NewReader(b)))
	if err != nil {
		t.Fatalf("inflate: %v", err)
	}
	return out
}

// TestDeflate4kRoundTrip checks that the streams inflate to their input,
// and that a cluster of a repeated byte fits one sector (as zlib's does).
func TestDeflate4kRoundTrip(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	random := make([]byte, 70000)
	r.Read(random)
	text := bytes.Repeat([]byte("the quick brown fox jumps over the lazy dog "), 2000)
	mixed := append(append(append([]byte(nil), random[:5000]...), text[:9000]...), random[:5000]...)
	for name, in := range map[string][]byte{
		"empty": {}, "one": {7}, "two": {7, 7}, "constant-64k": bytes.Repeat([]byte{0x11}, 65536),
		"random": random, "text": text, "mixed": mixed, "zeros-2M": make([]byte, 2<<20),
	} {
		out := deflate4k(in)
		if got := inflateAll(t, out); !bytes.Equal(got, in) {
			t.Errorf("%s: round trip differs (%d bytes in, %d out)", name, len(in), len(got))
		}
		if name == "constant-64k" && len(out) >= 512 {
			t.Errorf("%s: %d bytes, want less than a sector", name, len(out))
		}
	}
}

func FuzzDeflate4k(f *testing.F) {
	f.Add([]byte("abcabcabcabcabc"))
	f.Add(bytes.Repeat([]byte{1, 2, 3, 4}, 3000))
	f.Fuzz(func(t *testing.T, in []byte) {
		if got := inflateAll(t, deflate4k(in)); !bytes.Equal(got, in) {
			t.Fatalf("round trip differs")
		}
	})
}
