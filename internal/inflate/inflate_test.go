package inflate

import (
	"bytes"
	stdflate "compress/flate"
	stdzlib "compress/zlib"
	"io"
	"math/rand"
	"strings"
	"testing"
)

// stdRaw and stdZlib are what the drivers did before: a standard
// library reader per stream. Raw and Zlib must agree with them.
func stdRaw(dst, src []byte) (int, error) {
	return io.ReadFull(stdflate.NewReader(bytes.NewReader(src)), dst)
}

func stdZlib(dst, src []byte) (int, error) {
	r, err := stdzlib.NewReader(bytes.NewReader(src))
	if err != nil {
		return 0, err
	}
	return io.ReadFull(r, dst)
}

func deflated(t testing.TB, in []byte, level int) []byte {
	var b bytes.Buffer
	w, err := stdflate.NewWriter(&b, level)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(in)
	w.Close()
	return b.Bytes()
}

func zlibbed(t testing.TB, in []byte) []byte {
	var b bytes.Buffer
	w := stdzlib.NewWriter(&b)
	w.Write(in)
	w.Close()
	return b.Bytes()
}

// streams are inputs of every kind the drivers meet: whole clusters,
// short streams, truncated and corrupted ones, garbage.
func streams(t testing.TB) map[string][]byte {
	r := rand.New(rand.NewSource(1))
	random := make([]byte, 65536)
	r.Read(random)
	text := bytes.Repeat([]byte("the quick brown fox jumps over the lazy dog "), 1500)[:65536]
	m := map[string][]byte{
		"empty":   {},
		"garbage": random[:300],
	}
	for name, in := range map[string][]byte{"random": random, "text": text, "zeros": make([]byte, 65536)} {
		for _, level := range []int{stdflate.HuffmanOnly, stdflate.BestSpeed, stdflate.DefaultCompression} {
			d := deflated(t, in, level)
			key := name + "-" + string(rune('a'+level+2))
			m[key] = d
			m[key+"-truncated"] = d[:len(d)/2]
			bad := append([]byte(nil), d...)
			bad[len(bad)/3] ^= 0x5a
			m[key+"-corrupt"] = bad
			m[key+"-trailing"] = append(append([]byte(nil), d...), random[:100]...)
		}
		z := zlibbed(t, in)
		m["zlib-"+name] = z
		m["zlib-"+name+"-truncated"] = z[:len(z)/2]
		badsum := append([]byte(nil), z...)
		badsum[len(badsum)-1] ^= 1
		m["zlib-"+name+"-badsum"] = badsum
	}
	return m
}

func agree(t *testing.T, name string, size int, src []byte, got, want func(dst, src []byte) (int, error)) {
	t.Helper()
	g, w := make([]byte, size), make([]byte, size)
	gn, gerr := got(g, src)
	wn, werr := want(w, src)
	if gn != wn || (gerr == nil) != (werr == nil) || !bytes.Equal(g[:gn], w[:wn]) {
		t.Errorf("%s, %d bytes: got %d, %v; the standard library %d, %v", name, size, gn, gerr, wn, werr)
	}
}

// TestAgreesWithStandardLibrary runs every stream twice (the second time
// through a pooled, reset reader) for several output sizes.
func TestAgreesWithStandardLibrary(t *testing.T) {
	for name, src := range streams(t) {
		for _, size := range []int{0, 1, 512, 4096, 65536, 65537} {
			for range 2 {
				agree(t, name, size, src, Raw, stdRaw)
				agree(t, name, size, src, Zlib, stdZlib)
			}
		}
	}
}

func FuzzRaw(f *testing.F) {
	for _, src := range streams(f) {
		f.Add(src, uint16(4096))
	}
	f.Fuzz(func(t *testing.T, src []byte, size uint16) {
		agree(t, "fuzz", int(size), src, Raw, stdRaw)
		agree(t, "fuzz", int(size), src, Zlib, stdZlib)
	})
}

// BenchmarkCluster inflates a 64 KiB cluster of text (qcow2's default
// cluster size), pooled against a standard library reader per cluster.
func BenchmarkCluster(b *testing.B) {
	in := bytes.Repeat([]byte("the quick brown fox jumps over the lazy dog 0123456789"), 1300)[:65536]
	r := rand.New(rand.NewSource(2))
	for i := 0; i < len(in); i += 7 {
		in[i] = byte(r.Intn(256))
	}
	src := deflated(b, in, stdflate.DefaultCompression)
	dst := make([]byte, 65536)
	for _, c := range []struct {
		name string
		fn   func(dst, src []byte) (int, error)
	}{{"pooled", Raw}, {"stdlib", stdRaw}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(dst)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.fn(dst, src); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestFastPath checks that the fast path, not the fallback, inflates
// whole valid streams of every block type, and agrees with the standard
// library on its own.
func TestFastPath(t *testing.T) {
	var s fastState
	for name, src := range streams(t) {
		if strings.HasSuffix(name, "-truncated") || strings.HasSuffix(name, "-corrupt") || strings.HasPrefix(name, "zlib") || name == "garbage" || name == "empty" {
			continue
		}
		for _, size := range []int{1, 4096, 65536} {
			want := make([]byte, size)
			if _, err := stdRaw(want, src); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			got := make([]byte, size)
			if !s.fastRaw(got, src) {
				t.Errorf("%s, %d bytes: the fast path gave up", name, size)
			} else if !bytes.Equal(got, want) {
				t.Errorf("%s, %d bytes: the fast path's bytes differ", name, size)
			}
		}
	}
}

// TestMutations compares the fast path with the standard library on
// thousands of damaged small streams: bits flipped, bytes cut off.
func TestMutations(t *testing.T) {
	r := rand.New(rand.NewSource(3))
	text := []byte("qcow2 clusters compress well when they hold text; abcabcabc 0123456789 ")
	var inputs [][]byte
	for _, n := range []int{100, 1000, 5000} {
		in := bytes.Repeat(text, n/len(text)+1)[:n]
		for i := 0; i < n; i += 13 {
			in[i] = byte(r.Intn(256))
		}
		inputs = append(inputs, in)
	}
	var s fastState
	taken := 0
	for _, in := range inputs {
		for _, level := range []int{stdflate.NoCompression, stdflate.HuffmanOnly, stdflate.BestSpeed, stdflate.DefaultCompression} {
			d := deflated(t, in, level)
			for k := 0; k < 500; k++ {
				m := append([]byte(nil), d...)
				switch k % 3 {
				case 0:
					m[r.Intn(len(m))] ^= 1 << r.Intn(8)
				case 1:
					m = m[:r.Intn(len(m))]
				default:
					for range 1 + r.Intn(4) {
						m[r.Intn(len(m))] = byte(r.Intn(256))
					}
				}
				size := len(in) - r.Intn(len(in)/4+1)
				want := make([]byte, size)
				wn, werr := stdRaw(want, m)
				got := make([]byte, size)
				if s.fastRaw(got, m) {
					taken++
					if werr != nil || wn != size || !bytes.Equal(got, want) {
						t.Fatalf("level %d, mutation %d: fast path took a stream the standard library gives %d, %v", level, k, wn, werr)
					}
				}
				agree(t, "mutation", size, m, Raw, stdRaw)
			}
		}
	}
	if taken == 0 {
		t.Errorf("the fast path took none of the mutated streams")
	}
	t.Logf("fast path took %d mutated streams", taken)
}
