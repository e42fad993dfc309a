// Package qcrypto is the disk encryption shared by the luks format
// driver and qcow2's encrypted images, after QEMU's crypto/ directory:
// the LUKS1 header and its key slots (block-luks.c), anti-forensic
// splitting (afsplit.c), PBKDF2 key derivation (pbkdf.c), sector ciphers
// with their IV generators (block.c, ivgen-*.c, xts.c) and qcow2's legacy
// AES-CBC scheme (block-qcow.c).
//
// It does no I/O of its own: callers hand it the bytes of a header and a
// function reading key material, and get back a [Cipher] that encrypts
// and decrypts whole 512-byte sectors in place. It imports only the
// standard library, so both drivers can share it.
package qcrypto

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"fmt"
	"hash"
	"runtime"
	"sync"
)

// SectorSize is the unit of encryption: every IV is computed per 512-byte
// sector, for LUKS and for qcow2's AES alike.
const SectorSize = 512

// Hash algorithms, with QEMU's names (QCryptoHashAlgorithm).
var hashes = []struct {
	name string
	new  func() hash.Hash
	size int
}{
	{"md5", md5.New, md5.Size},
	{"sha1", sha1.New, sha1.Size},
	{"sha224", sha256.New224, sha256.Size224},
	{"sha256", sha256.New, sha256.Size},
	{"sha384", sha512.New384, sha512.Size384},
	{"sha512", sha512.New, sha512.Size},
	{"ripemd160", nil, 20}, // known to QEMU; no implementation in Go's standard library
}

// Hash is a hash algorithm known to QEMU.
type Hash int

// HashByName looks up a hash algorithm by its QEMU name.
func HashByName(name string) (Hash, bool) {
	for i, h := range hashes {
		if h.name == name {
			return Hash(i), true
		}
	}
	return 0, false
}

func (h Hash) String() string { return hashes[h].name }

// Size is the digest length.
func (h Hash) Size() int { return hashes[h].size }

func (h Hash) newHash() (hash.Hash, error) {
	if hashes[h].new == nil {
		return nil, fmt.Errorf("Hash algorithm %s is not supported by gio", hashes[h].name)
	}
	return hashes[h].new(), nil
}

// Cipher modes (QCryptoCipherMode).
const (
	ModeECB = "ecb"
	ModeCBC = "cbc"
	ModeXTS = "xts"
	ModeCTR = "ctr"
)

var modes = []string{ModeECB, ModeCBC, ModeXTS, ModeCTR}

// IV generators (QCryptoIVGenAlgorithm).
const (
	IVPlain   = "plain"
	IVPlain64 = "plain64"
	IVEssiv   = "essiv"
)

var ivgens = []string{IVPlain, IVPlain64, IVEssiv}

// Alg is a block cipher algorithm with its key size (QCryptoCipherAlgorithm:
// "aes-256"). Name is the LUKS cipher name ("aes").
type Alg struct {
	Name    string
	KeySize int
}

func (a Alg) String() string {
	if a.Name == "cast5" {
		return "cast5-128"
	}
	return fmt.Sprintf("%s-%d", a.Name, a.KeySize*8)
}

// luksAlgs lists the algorithms QEMU knows for LUKS, by name and key size.
var luksAlgs = map[string][]int{
	"aes":     {16, 24, 32},
	"cast5":   {16},
	"serpent": {16, 24, 32},
	"twofish": {16, 24, 32},
}

// ParseAlg parses a QEMU cipher algorithm name such as "aes-256".
func ParseAlg(s string) (Alg, bool) {
	for name, sizes := range luksAlgs {
		for _, ks := range sizes {
			a := Alg{name, ks}
			if a.String() == s {
				return a, true
			}
		}
	}
	return Alg{}, false
}

func (a Alg) newBlock(key []byte) (cipher.Block, error) {
	if a.Name != "aes" {
		return nil, fmt.Errorf("Cipher algorithm %s is not supported by gio", a)
	}
	return aes.NewCipher(key)
}

// Spec describes a sector cipher: algorithm, mode and IV generator.
type Spec struct {
	Alg    Alg
	Mode   string
	IVGen  string
	IVHash Hash // for essiv
	// IVAlg is the cipher ESSIV encrypts the sector number with: the
	// algorithm whose key size is the hash's digest size (dm-crypt's
	// quirk, qcrypto_block_luks_essiv_cipher).
	IVAlg Alg
}

// Cipher encrypts and decrypts 512-byte sectors in place. It is safe for
// concurrent use: it holds only the expanded keys.
type Cipher struct {
	spec  Spec
	b1    cipher.Block // data key (XTS: first half)
	b2    cipher.Block // XTS tweak key (second half)
	essiv cipher.Block // ESSIV's salt cipher
}

// NewCipher builds the sector cipher for spec with key (the whole XTS key,
// both halves, as LUKS stores it).
func NewCipher(spec Spec, key []byte) (*Cipher, error) {
	c := &Cipher{spec: spec}
	var err error
	if spec.Mode == ModeXTS {
		half := len(key) / 2
		if c.b1, err = spec.Alg.newBlock(key[:half]); err != nil {
			return nil, err
		}
		if c.b2, err = spec.Alg.newBlock(key[half:]); err != nil {
			return nil, err
		}
	} else if c.b1, err = spec.Alg.newBlock(key); err != nil {
		return nil, err
	}
	if spec.IVGen == IVEssiv {
		h, err := spec.IVHash.newHash()
		if err != nil {
			return nil, err
		}
		h.Write(key)
		salt := h.Sum(nil)
		if c.essiv, err = spec.IVAlg.newBlock(salt[:min(len(salt), spec.IVAlg.KeySize)]); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// NewQcowAES is qcow2's legacy encryption (block-qcow.c): AES-128-CBC
// keyed with the first 16 bytes of the password (zero-padded), with the
// plain64 IV of each sector.
func NewQcowAES(password []byte) *Cipher {
	key := make([]byte, 16)
	copy(key, password)
	c, _ := NewCipher(Spec{Alg: Alg{"aes", 16}, Mode: ModeCBC, IVGen: IVPlain64}, key)
	return c
}

// iv fills iv for sector (qcrypto_ivgen_calculate).
func (c *Cipher) iv(sector uint64, iv []byte) {
	clear(iv)
	switch c.spec.IVGen {
	case IVPlain:
		binary.LittleEndian.PutUint32(iv, uint32(sector))
	case IVPlain64:
		binary.LittleEndian.PutUint64(iv, sector)
	case IVEssiv:
		var d [16]byte
		binary.LittleEndian.PutUint64(d[:], sector)
		c.essiv.Encrypt(d[:], d[:])
		copy(iv, d[:])
	}
}

// parallelMin is the size from which Encrypt and Decrypt split the work
// over the CPUs: QEMU's qcow2 likewise encrypts in a thread pool.
const parallelMin = 128 << 10

// Encrypt encrypts buf in place; off is the byte offset that numbers the
// sectors (a multiple of SectorSize). The length is a multiple of
// SectorSize, except for LUKS key material, whose last sector may be a
// shorter multiple of the block size (QEMU asserts there; gio copes).
func (c *Cipher) Encrypt(off int64, buf []byte) { c.run(off, buf, true) }

// Decrypt decrypts buf in place, as Encrypt.
func (c *Cipher) Decrypt(off int64, buf []byte) { c.run(off, buf, false) }

func (c *Cipher) run(off int64, buf []byte, enc bool) {
	if len(buf)%16 != 0 || off%SectorSize != 0 {
		panic("qcrypto: unaligned sector request")
	}
	n := runtime.GOMAXPROCS(0)
	if len(buf) < parallelMin || n < 2 {
		c.sectors(uint64(off/SectorSize), buf, enc)
		return
	}
	per := (len(buf)/n + SectorSize - 1) &^ (SectorSize - 1)
	var wg sync.WaitGroup
	for p := 0; p < len(buf); p += per {
		piece := buf[p:min(p+per, len(buf))]
		first := uint64((off + int64(p)) / SectorSize)
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.sectors(first, piece, enc)
		}()
	}
	wg.Wait()
}

// sectors is do_qcrypto_block_cipher_encdec: a fresh IV per sector.
func (c *Cipher) sectors(sector uint64, buf []byte, enc bool) {
	var iv [16]byte
	bs := c.b1.BlockSize()
	for ; len(buf) > 0; sector++ {
		s := buf[:min(len(buf), SectorSize)]
		buf = buf[len(s):]
		c.iv(sector, iv[:bs])
		switch c.spec.Mode {
		case ModeXTS:
			c.xts(iv, s, enc)
		case ModeCBC:
			if enc {
				cipher.NewCBCEncrypter(c.b1, iv[:bs]).CryptBlocks(s, s)
			} else {
				cipher.NewCBCDecrypter(c.b1, iv[:bs]).CryptBlocks(s, s)
			}
		case ModeCTR:
			cipher.NewCTR(c.b1, iv[:bs]).XORKeyStream(s, s)
		case ModeECB:
			for i := 0; i < len(s); i += bs {
				if enc {
					c.b1.Encrypt(s[i:i+bs], s[i:i+bs])
				} else {
					c.b1.Decrypt(s[i:i+bs], s[i:i+bs])
				}
			}
		}
	}
}

// xts is XTS (IEEE 1619) over one sector whose length is a multiple of
// the block size, so no ciphertext stealing is needed. golang.org/x/crypto
// has XTS too, but takes a sector number as the tweak; ESSIV and plain IVs
// need an arbitrary one, so one implementation serves all IV generators.
func (c *Cipher) xts(iv [16]byte, s []byte, enc bool) {
	var t [16]byte
	c.b2.Encrypt(t[:], iv[:])
	lo, hi := binary.LittleEndian.Uint64(t[:8]), binary.LittleEndian.Uint64(t[8:])
	for i := 0; i < len(s); i += 16 {
		b := s[i : i+16 : i+16]
		x0 := binary.LittleEndian.Uint64(b[:8]) ^ lo
		x1 := binary.LittleEndian.Uint64(b[8:]) ^ hi
		binary.LittleEndian.PutUint64(b[:8], x0)
		binary.LittleEndian.PutUint64(b[8:], x1)
		if enc {
			c.b1.Encrypt(b, b)
		} else {
			c.b1.Decrypt(b, b)
		}
		binary.LittleEndian.PutUint64(b[:8], binary.LittleEndian.Uint64(b[:8])^lo)
		binary.LittleEndian.PutUint64(b[8:], binary.LittleEndian.Uint64(b[8:])^hi)
		// Multiply the tweak by x in GF(2^128).
		carry := hi >> 63
		hi = hi<<1 | lo>>63
		lo = lo<<1 ^ carry*0x87
	}
}
