package qcrypto

import (
	"bytes"
	"crypto/aes"
	"crypto/pbkdf2"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// TestXTSVectors checks the XTS core against IEEE 1619's test vectors 1
// and 4 (AES-128, 32 and 512 bytes).
func TestXTSVectors(t *testing.T) {
	for _, tc := range []struct {
		name         string
		key1, key2   string
		sector       uint64
		ptx, wantCtx string
	}{
		{"vector1", strings.Repeat("00", 16), strings.Repeat("00", 16), 0,
			strings.Repeat("00", 32),
			"917cf69ebd68b2ec9b9fe9a3eadda692cd43d2f59598ed858c02c2652fbf922e"},
		{"vector2", strings.Repeat("11", 16), strings.Repeat("22", 16), 0x3333333333,
			strings.Repeat("44", 32),
			"c454185e6a16936e39334038acef838bfb186fff7480adc4289382ecd6d394f0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k1, _ := hex.DecodeString(tc.key1)
			k2, _ := hex.DecodeString(tc.key2)
			c, err := NewCipher(Spec{Alg: Alg{"aes", 16}, Mode: ModeXTS, IVGen: IVPlain64}, append(k1, k2...))
			if err != nil {
				t.Fatal(err)
			}
			buf, _ := hex.DecodeString(tc.ptx)
			var iv [16]byte
			binary.LittleEndian.PutUint64(iv[:], tc.sector)
			c.xts(iv, buf, true)
			if got := hex.EncodeToString(buf); got != tc.wantCtx {
				t.Fatalf("xts = %s, want %s", got, tc.wantCtx)
			}
			c.xts(iv, buf, false)
			if got := hex.EncodeToString(buf); got != tc.ptx {
				t.Fatalf("decrypt = %s, want %s", got, tc.ptx)
			}
		})
	}
}

// TestCipherRoundTrip: every mode and IV generator decrypts what it
// encrypted, sector by sector, and in parallel pieces the same as in one.
func TestCipherRoundTrip(t *testing.T) {
	sha256, _ := HashByName("sha256")
	for _, spec := range []Spec{
		{Alg: Alg{"aes", 32}, Mode: ModeXTS, IVGen: IVPlain64},
		{Alg: Alg{"aes", 16}, Mode: ModeXTS, IVGen: IVPlain},
		{Alg: Alg{"aes", 16}, Mode: ModeCBC, IVGen: IVEssiv, IVHash: sha256, IVAlg: Alg{"aes", 32}},
		{Alg: Alg{"aes", 24}, Mode: ModeCBC, IVGen: IVPlain64},
		{Alg: Alg{"aes", 16}, Mode: ModeCTR, IVGen: IVPlain64},
		{Alg: Alg{"aes", 16}, Mode: ModeECB, IVGen: IVPlain64},
	} {
		t.Run(spec.Alg.String()+"-"+spec.Mode+"-"+spec.IVGen, func(t *testing.T) {
			n := spec.Alg.KeySize
			if spec.Mode == ModeXTS {
				n *= 2
			}
			key := bytes.Repeat([]byte{7}, n)
			c, err := NewCipher(spec, key)
			if err != nil {
				t.Fatal(err)
			}
			plain := make([]byte, 1<<20)
			for i := range plain {
				plain[i] = byte(i * 7 / 3)
			}
			big := bytes.Clone(plain)
			c.Encrypt(4096, big) // parallel pieces
			small := bytes.Clone(plain)
			for off := 0; off < len(small); off += SectorSize {
				c.Encrypt(int64(4096+off), small[off:off+SectorSize])
			}
			if !bytes.Equal(big, small) {
				t.Fatal("parallel and sector-wise encryption differ")
			}
			if bytes.Equal(big[:SectorSize], big[SectorSize:2*SectorSize]) && spec.Mode != ModeECB {
				t.Fatal("two sectors encrypt alike: the IV does not change")
			}
			c.Decrypt(4096, big)
			if !bytes.Equal(big, plain) {
				t.Fatal("decrypt(encrypt(x)) != x")
			}
		})
	}
}

// TestQcowAES checks the legacy scheme against AES-128-CBC computed by
// hand: key is the zero-padded password, IV the little-endian sector.
func TestQcowAES(t *testing.T) {
	c := NewQcowAES([]byte("123456"))
	buf := bytes.Repeat([]byte{0xab}, SectorSize)
	c.Encrypt(3*SectorSize, buf)
	key := make([]byte, 16)
	copy(key, "123456")
	b, _ := aes.NewCipher(key)
	want := bytes.Repeat([]byte{0xab}, SectorSize)
	prev := make([]byte, 16)
	prev[0] = 3
	for i := 0; i < SectorSize; i += 16 {
		for j := 0; j < 16; j++ {
			want[i+j] ^= prev[j]
		}
		b.Encrypt(want[i:i+16], want[i:i+16])
		prev = want[i : i+16]
	}
	if !bytes.Equal(buf, want) {
		t.Fatal("qcow AES differs from AES-128-CBC with the plain64 IV")
	}
}

func TestAFSplitMerge(t *testing.T) {
	for _, name := range []string{"sha1", "sha256", "sha512", "md5"} {
		h, _ := HashByName(name)
		for _, n := range []int{16, 32, 64, 20} {
			key := bytes.Repeat([]byte{byte(n)}, n)
			split, err := afSplit(h, key, 50)
			if err != nil {
				t.Fatal(err)
			}
			got, err := afMerge(h, n, 50, split)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, key) {
				t.Fatalf("%s/%d: merge(split(key)) != key", name, n)
			}
			split[3] ^= 1
			if got, _ := afMerge(h, n, 50, split); bytes.Equal(got, key) {
				t.Fatalf("%s/%d: a damaged stripe still merges to the key", name, n)
			}
		}
	}
}

// testVolume is a LUKS volume in memory.
type testVolume struct {
	hdr  *Header
	data []byte
}

func newVolume(t *testing.T, o CreateOptions, password string) *testVolume {
	t.Helper()
	o.IterTime = 1
	hdr, material, _, err := Create(o, []byte(password))
	if err != nil {
		t.Fatal(err)
	}
	v := &testVolume{hdr: hdr, data: make([]byte, hdr.PayloadOffset())}
	copy(v.data, hdr.Encode())
	copy(v.data[hdr.KeyMaterialOffset():], material)
	return v
}

func (v *testVolume) read(off int64, buf []byte) error {
	if off < 0 || off+int64(len(buf)) > int64(len(v.data)) {
		return errors.New("read beyond the volume")
	}
	copy(buf, v.data[off:])
	return nil
}

func TestCreateUnlock(t *testing.T) {
	for _, o := range []CreateOptions{
		{},
		{Alg: Alg{"aes", 16}, Mode: ModeCBC, IVGen: IVEssiv},
		{Alg: Alg{"aes", 24}, Mode: ModeCBC, IVGen: IVPlain, Hash: "sha1"},
		{Mode: ModeXTS, IVGen: IVEssiv, IVHash: "sha256", Hash: "sha512"},
	} {
		t.Run(o.Mode+o.IVGen+o.Hash, func(t *testing.T) {
			v := newVolume(t, o, "secret pass")
			h, err := DecodeHeader(v.data)
			if err != nil {
				t.Fatalf("decode a created header: %v", err)
			}
			if !bytes.Equal(h.Encode(), v.hdr.Encode()) {
				t.Fatal("encode(decode(header)) != header")
			}
			c, err := h.Unlock([]byte("secret pass"), v.read)
			if err != nil {
				t.Fatalf("unlock: %v", err)
			}
			buf := bytes.Repeat([]byte{1}, SectorSize)
			c.Encrypt(0, buf)
			c.Decrypt(0, buf)
			if !bytes.Equal(buf, bytes.Repeat([]byte{1}, SectorSize)) {
				t.Fatal("round trip failed")
			}
			if _, err := h.Unlock([]byte("secret pasS"), v.read); !errors.Is(err, ErrBadPassword) {
				t.Fatalf("wrong password: %v, want %v", err, ErrBadPassword)
			}
			info := strings.Join(h.Info(0, false), "\n")
			if strings.Count(info, "active: true") != 1 || !strings.Contains(info, "\n    [7]:\n        active: false\n        key offset: ") {
				t.Fatalf("info:\n%s", info)
			}
		})
	}
}

// TestCreateMatchesUnlock: the payload cipher Create returns is the one
// Unlock recovers (same master key).
func TestCreateMatchesUnlock(t *testing.T) {
	hdr, material, payload, err := Create(CreateOptions{IterTime: 1}, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	v := &testVolume{data: make([]byte, hdr.PayloadOffset())}
	copy(v.data, hdr.Encode())
	copy(v.data[hdr.KeyMaterialOffset():], material)
	c, err := hdr.Unlock([]byte("pw"), v.read)
	if err != nil {
		t.Fatal(err)
	}
	a, b := make([]byte, SectorSize), make([]byte, SectorSize)
	payload.Encrypt(512, a)
	c.Encrypt(512, b)
	if !bytes.Equal(a, b) {
		t.Fatal("unlocked master key differs from the created one")
	}
}

// TestHeaderErrors: each corruption gets QEMU's message.
func TestHeaderErrors(t *testing.T) {
	v := newVolume(t, CreateOptions{}, "pw")
	good := v.hdr.Encode()
	be32 := func(x uint32) []byte { return binary.BigEndian.AppendUint32(nil, x) }
	for _, tc := range []struct {
		off  int
		data []byte
		want string
	}{
		{0, []byte("X"), "Volume is not in LUKS format"},
		{6, []byte{0, 2}, "LUKS version 2 is not supported"},
		{8, bytes.Repeat([]byte("a"), 32), "LUKS header cipher name is not NUL terminated"},
		{40, bytes.Repeat([]byte("a"), 32), "LUKS header cipher mode is not NUL terminated"},
		{72, bytes.Repeat([]byte("a"), 32), "LUKS header hash spec is not NUL terminated"},
		{104, be32(7), "LUKS payload is overlapping with the header"},
		{164, be32(0), "LUKS key iteration count is zero"},
		{208 + 44, be32(3), "Keyslot 0 is corrupted (stripes 3 != 4000)"},
		{208 + 48, be32(1), "Keyslot 1 state (active/disable) is corrupted"},
		{208 + 4, be32(0), "Keyslot 0 iteration count is zero"},
		{208 + 40, be32(7), "Keyslot 0 is overlapping with the LUKS header"},
		{208 + 48*7 + 40, be32(4000), "Keyslot 7 is overlapping with the encrypted payload"},
		{208 + 48 + 40, be32(100), "Keyslots 0 and 1 are overlapping in the header"},
		{40, []byte("xts\x00"), "Unexpected cipher mode string format 'xts'"},
		{40, []byte("foo-plain64\x00"), "Cipher mode 'foo' not supported"},
		{40, []byte("xts-plain64:bad\x00"), "Hash algorithm 'bad' not supported"},
		{40, []byte("xts-plain65\x00"), "IV generator 'plain65' not supported"},
		{40, []byte("xts-essiv\x00"), "Missing IV generator hash specification"},
		{40, []byte("xts-essiv:sha1\x00"), "No AES cipher with key size 20 available"},
		{8, []byte("des\x00"), "Algorithm 'des' with key size 32 bytes not supported"},
		{72, []byte("sha3\x00"), "Hash algorithm 'sha3' not supported"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			b := bytes.Clone(good)
			copy(b[tc.off:], tc.data)
			_, err := DecodeHeader(b)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("DecodeHeader = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestPBKDF2: the parallel PBKDF2 is the standard library's.
func TestPBKDF2(t *testing.T) {
	for _, name := range []string{"sha1", "sha256", "sha512", "md5", "sha224", "sha384"} {
		h, _ := HashByName(name)
		for _, n := range []int{16, 20, 32, 64, 100} {
			for _, iter := range []int{1, 2, 1000} {
				got := pbkdf2Key(hashes[h].new, []byte("password"), []byte("saltsaltsalt"), iter, n)
				if serial := pbkdf2Serial(hashes[h].new, []byte("password"), []byte("saltsaltsalt"), iter, n); !bytes.Equal(got, serial) {
					t.Fatalf("%s n=%d iter=%d: parallel and serial differ", name, n, iter)
				}
				want, err := pbkdf2.Key(hashes[h].new, "password", []byte("saltsaltsalt"), iter, n)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("%s n=%d iter=%d: %x, want %x", name, n, iter, got, want)
				}
			}
		}
	}
}
