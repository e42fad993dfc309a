package qcrypto

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// LUKS1 on-disk constants (the LUKS 1.2.1 specification).
const (
	HeaderSize     = 592 // sizeof(QCryptoBlockLUKSHeader)
	numKeySlots    = 8
	stripes        = 4000
	saltLen        = 32
	digestLen      = 20
	keySlotOffset  = 4096
	slotEnabled    = 0x00AC71F3
	slotDisabled   = 0x0000DEAD
	minSlotIters   = 1000
	minMasterIters = 1000
	// DefaultIterTime is the PBKDF time QEMU spends per key (ms).
	DefaultIterTime = 2000
)

var luksMagic = []byte{'L', 'U', 'K', 'S', 0xba, 0xbe}

// KeySlot is one key slot of the header, as on disk.
type KeySlot struct {
	Active     uint32
	Iterations uint32
	Salt       [saltLen]byte
	KeyOffset  uint32 // in sectors
	Stripes    uint32
}

// rawHeader is the LUKS1 header field by field (big-endian).
type rawHeader struct {
	Magic         [6]byte
	Version       uint16
	CipherName    [32]byte
	CipherMode    [32]byte
	HashSpec      [32]byte
	PayloadOffset uint32 // in sectors
	KeyBytes      uint32
	MKDigest      [digestLen]byte
	MKSalt        [saltLen]byte
	MKIterations  uint32
	UUID          [40]byte
	Slots         [numKeySlots]KeySlot
}

// Header is a decoded, checked LUKS1 header.
type Header struct {
	raw  rawHeader
	spec Spec
	hash Hash // the PBKDF2 and AF-split hash
}

// ErrNotLUKS is matched by the error for a volume without the LUKS magic.
var ErrNotLUKS = errors.New("Volume is not in LUKS format")

// Probe reports whether head starts with a LUKS1 header
// (qcrypto_block_luks_has_format).
func Probe(head []byte) bool {
	return len(head) >= 8 && bytes.Equal(head[:6], luksMagic) && binary.BigEndian.Uint16(head[6:]) == 1
}

// DecodeHeader decodes and checks the first HeaderSize bytes of a LUKS
// volume, with QEMU's messages (qcrypto_block_luks_check_header and
// qcrypto_block_luks_parse_header).
func DecodeHeader(buf []byte) (*Header, error) {
	if len(buf) < HeaderSize {
		return nil, ErrNotLUKS
	}
	h := &Header{}
	if _, err := binary.Decode(buf[:HeaderSize], binary.BigEndian, &h.raw); err != nil {
		return nil, err
	}
	if err := h.check(); err != nil {
		return nil, err
	}
	if err := h.parse(); err != nil {
		return nil, err
	}
	return h, nil
}

func cstr(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return string(b[:i])
	}
	return string(b)
}

// splitKeySectors is qcrypto_block_luks_splitkeylen_sectors: the key
// material of a slot in sectors, rounded up to the header's size.
func (h *Header) splitKeySectors(stripes uint32) int64 {
	n := (int64(h.raw.KeyBytes)*int64(stripes) + SectorSize - 1) / SectorSize
	hs := int64(keySlotOffset / SectorSize)
	return (n + hs - 1) / hs * hs
}

func (h *Header) check() error {
	r := &h.raw
	if !bytes.Equal(r.Magic[:], luksMagic) {
		return ErrNotLUKS
	}
	if r.Version != 1 {
		return fmt.Errorf("LUKS version %d is not supported", r.Version)
	}
	for _, f := range []struct {
		b    []byte
		what string
	}{{r.CipherName[:], "cipher name"}, {r.CipherMode[:], "cipher mode"}, {r.HashSpec[:], "hash spec"}} {
		if bytes.IndexByte(f.b, 0) < 0 {
			return fmt.Errorf("LUKS header %s is not NUL terminated", f.what)
		}
	}
	hs := int64(keySlotOffset / SectorSize)
	if int64(r.PayloadOffset) < hs {
		return fmt.Errorf("LUKS payload is overlapping with the header")
	}
	if r.MKIterations == 0 {
		return fmt.Errorf("LUKS key iteration count is zero")
	}
	for i := range r.Slots {
		s1 := &r.Slots[i]
		start1, len1 := int64(s1.KeyOffset), h.splitKeySectors(s1.Stripes)
		if s1.Stripes != stripes {
			return fmt.Errorf("Keyslot %d is corrupted (stripes %d != %d)", i, int32(s1.Stripes), stripes)
		}
		if s1.Active != slotDisabled && s1.Active != slotEnabled {
			return fmt.Errorf("Keyslot %d state (active/disable) is corrupted", i)
		}
		if s1.Active == slotEnabled && s1.Iterations == 0 {
			return fmt.Errorf("Keyslot %d iteration count is zero", i)
		}
		if start1 < hs {
			return fmt.Errorf("Keyslot %d is overlapping with the LUKS header", i)
		}
		if start1+len1 > int64(r.PayloadOffset) {
			return fmt.Errorf("Keyslot %d is overlapping with the encrypted payload", i)
		}
		for j := i + 1; j < numKeySlots; j++ {
			s2 := &r.Slots[j]
			start2, len2 := int64(s2.KeyOffset), h.splitKeySectors(s2.Stripes)
			if start1+len1 > start2 && start2+len2 > start1 {
				return fmt.Errorf("Keyslots %d and %d are overlapping in the header", i, j)
			}
		}
	}
	return nil
}

func lookup(list []string, name, what string) error {
	for _, n := range list {
		if n == name {
			return nil
		}
	}
	return fmt.Errorf("%s '%s' not supported", what, name)
}

func hashLookup(name string) (Hash, error) {
	h, ok := HashByName(name)
	if !ok {
		return 0, fmt.Errorf("Hash algorithm '%s' not supported", name)
	}
	return h, nil
}

// parse is qcrypto_block_luks_parse_header: the cipher mode string
// "<mode>-<ivgen>[:<ivhash>]", the cipher and the hash.
func (h *Header) parse() error {
	r := &h.raw
	modeSpec := cstr(r.CipherMode[:])
	mode, ivgen, ok := strings.Cut(modeSpec, "-")
	if !ok {
		return fmt.Errorf("Unexpected cipher mode string format '%s'", modeSpec)
	}
	ivgen, ivhash, hasIVHash := strings.Cut(ivgen, ":")
	var err error
	if hasIVHash {
		if h.spec.IVHash, err = hashLookup(ivhash); err != nil {
			return err
		}
	}
	if err := lookup(modes, mode, "Cipher mode"); err != nil {
		return err
	}
	h.spec.Mode = mode
	name := cstr(r.CipherName[:])
	kb := int(r.KeyBytes)
	if mode == ModeXTS {
		kb /= 2
	}
	found := false
	for _, ks := range luksAlgs[name] {
		if ks == kb {
			h.spec.Alg, found = Alg{name, ks}, true
		}
	}
	if !found {
		return fmt.Errorf("Algorithm '%s' with key size %d bytes not supported", name, kb)
	}
	if h.hash, err = hashLookup(cstr(r.HashSpec[:])); err != nil {
		return err
	}
	if err := lookup(ivgens, ivgen, "IV generator"); err != nil {
		return err
	}
	h.spec.IVGen = ivgen
	h.spec.IVAlg = h.spec.Alg
	if ivgen == IVEssiv {
		if !hasIVHash {
			return fmt.Errorf("Missing IV generator hash specification")
		}
		if h.spec.IVAlg, err = essivAlg(h.spec.Alg, h.spec.IVHash); err != nil {
			return err
		}
	}
	return nil
}

// essivAlg is qcrypto_block_luks_essiv_cipher.
func essivAlg(a Alg, h Hash) (Alg, error) {
	d := h.Size()
	if d == a.KeySize {
		return a, nil
	}
	for _, ks := range luksAlgs[a.Name] {
		if ks == d && a.Name != "cast5" {
			return Alg{a.Name, ks}, nil
		}
	}
	switch a.Name {
	case "aes":
		return a, fmt.Errorf("No AES cipher with key size %d available", d)
	case "serpent":
		return a, fmt.Errorf("No Serpent cipher with key size %d available", d)
	case "twofish":
		return a, fmt.Errorf("No Twofish cipher with key size %d available", d)
	}
	return a, fmt.Errorf("Cipher %s not supported with essiv", a)
}

// PayloadOffset is where the encrypted data starts, in bytes.
func (h *Header) PayloadOffset() int64 { return int64(h.raw.PayloadOffset) * SectorSize }

// Encode returns the header's HeaderSize bytes.
func (h *Header) Encode() []byte {
	b, err := binary.Append(nil, binary.BigEndian, &h.raw)
	if err != nil {
		panic(err) // fixed-size struct
	}
	return b
}

func pbkdf(h Hash, password, salt []byte, iter uint32, n int) ([]byte, error) {
	if _, err := h.newHash(); err != nil {
		return nil, err
	}
	return pbkdf2Key(hashes[h].new, password, salt, int(iter), n), nil
}

// ReadFunc reads key material at a byte offset of the LUKS volume.
type ReadFunc func(off int64, buf []byte) error

// ErrBadPassword is matched by the error for a password no slot takes.
var ErrBadPassword = errors.New("Invalid password, cannot unlock any keyslot")

// MaxIterations, when nonzero, makes Unlock refuse a header asking for
// more PBKDF2 iterations than this. Fuzz targets set it, so that a
// mutated count cannot stall them for hours; programs leave it zero.
var MaxIterations uint32

// Unlock finds the key slot password opens and returns the payload
// cipher (qcrypto_block_luks_find_key).
func (h *Header) Unlock(password []byte, read ReadFunc) (*Cipher, error) {
	if MaxIterations != 0 {
		for _, s := range h.raw.Slots {
			if s.Active == slotEnabled && s.Iterations > MaxIterations || h.raw.MKIterations > MaxIterations {
				return nil, fmt.Errorf("PBKDF2 iteration count above the limit of %d", MaxIterations)
			}
		}
	}
	for i := range h.raw.Slots {
		mk, err := h.loadKey(&h.raw.Slots[i], password, read)
		if err != nil {
			return nil, err
		}
		if mk != nil {
			return NewCipher(h.spec, mk)
		}
	}
	return nil, ErrBadPassword
}

// loadKey is qcrypto_block_luks_load_key: nil, nil when the slot is
// inactive or the password does not open it.
func (h *Header) loadKey(s *KeySlot, password []byte, read ReadFunc) ([]byte, error) {
	if s.Active != slotEnabled {
		return nil, nil
	}
	n := int(h.raw.KeyBytes)
	slotKey, err := pbkdf(h.hash, password, s.Salt[:], s.Iterations, n)
	if err != nil {
		return nil, err
	}
	split := make([]byte, n*int(s.Stripes))
	if err := read(int64(s.KeyOffset)*SectorSize, split); err != nil {
		return nil, err
	}
	c, err := NewCipher(h.spec, slotKey)
	if err != nil {
		return nil, err
	}
	c.Decrypt(0, split)
	mk, err := afMerge(h.hash, n, int(s.Stripes), split)
	if err != nil {
		return nil, err
	}
	digest, err := pbkdf(h.hash, mk, h.raw.MKSalt[:], h.raw.MKIterations, digestLen)
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare(digest, h.raw.MKDigest[:]) == 1 {
		return mk, nil
	}
	return nil, nil
}

// afHash is qcrypto_afsplit_hash: diffuse block with the hash, one digest
// at a time, each prefixed by its big-endian index.
func afHash(h Hash, block []byte) error {
	d := h.Size()
	for i := 0; i*d < len(block); i++ {
		hh, err := h.newHash()
		if err != nil {
			return err
		}
		var idx [4]byte
		binary.BigEndian.PutUint32(idx[:], uint32(i))
		piece := block[i*d : min((i+1)*d, len(block))]
		hh.Write(idx[:])
		hh.Write(piece)
		copy(piece, hh.Sum(nil))
	}
	return nil
}

func xorInto(dst, a, b []byte) {
	for i := range dst {
		dst[i] = a[i] ^ b[i]
	}
}

// afMerge is qcrypto_afsplit_decode.
func afMerge(h Hash, n, stripes int, in []byte) ([]byte, error) {
	block := make([]byte, n)
	for i := 0; i < stripes-1; i++ {
		xorInto(block, in[i*n:(i+1)*n], block)
		if err := afHash(h, block); err != nil {
			return nil, err
		}
	}
	out := make([]byte, n)
	xorInto(out, in[(stripes-1)*n:stripes*n], block)
	return out, nil
}

// afSplit is qcrypto_afsplit_encode.
func afSplit(h Hash, key []byte, stripes int) ([]byte, error) {
	n := len(key)
	out := make([]byte, n*stripes)
	rand.Read(out[:n*(stripes-1)])
	block := make([]byte, n)
	for i := 0; i < stripes-1; i++ {
		xorInto(block, out[i*n:(i+1)*n], block)
		if err := afHash(h, block); err != nil {
			return nil, err
		}
	}
	xorInto(out[(stripes-1)*n:], key, block)
	return out, nil
}

// CreateOptions are the LUKS creation options (QCryptoBlockCreateOptionsLUKS).
type CreateOptions struct {
	Alg      Alg    // default aes-256
	Mode     string // default xts
	IVGen    string // default plain64
	IVHash   string // default sha256 with essiv, else none
	Hash     string // default sha256
	IterTime int64  // ms, default DefaultIterTime
}

// Create builds a new LUKS header with a random master key stored in key
// slot 0 under password (qcrypto_block_luks_create). It returns the
// header, the slot's key material (to be written at KeyMaterialOffset)
// and the payload cipher.
func Create(o CreateOptions, password []byte) (*Header, []byte, *Cipher, error) {
	if o.Alg == (Alg{}) {
		o.Alg = Alg{"aes", 32}
	}
	if o.Mode == "" {
		o.Mode = ModeXTS
	}
	if o.IVGen == "" {
		o.IVGen = IVPlain64
	}
	if o.Hash == "" {
		o.Hash = "sha256"
	}
	if o.IVGen == IVEssiv && o.IVHash == "" {
		o.IVHash = "sha256"
	}
	if o.IterTime == 0 {
		o.IterTime = DefaultIterTime
	}
	h := &Header{}
	var err error
	if h.hash, err = hashLookup(o.Hash); err != nil {
		return nil, nil, nil, err
	}
	h.spec = Spec{Alg: o.Alg, Mode: o.Mode, IVGen: o.IVGen, IVAlg: o.Alg}
	modeSpec := o.Mode + "-" + o.IVGen
	if o.IVHash != "" {
		if h.spec.IVHash, err = hashLookup(o.IVHash); err != nil {
			return nil, nil, nil, err
		}
		modeSpec += ":" + o.IVHash
	}
	if o.IVGen == IVEssiv {
		if h.spec.IVAlg, err = essivAlg(o.Alg, h.spec.IVHash); err != nil {
			return nil, nil, nil, err
		}
	}
	r := &h.raw
	copy(r.Magic[:], luksMagic)
	r.Version = 1
	copy(r.UUID[:], newUUID())
	copy(r.CipherName[:], o.Alg.Name)
	copy(r.CipherMode[:], modeSpec)
	copy(r.HashSpec[:], o.Hash)
	kb := o.Alg.KeySize
	if o.Mode == ModeXTS {
		kb *= 2
	}
	r.KeyBytes = uint32(kb)
	rand.Read(r.MKSalt[:])
	mk := make([]byte, kb)
	rand.Read(mk)
	payload, err := NewCipher(h.spec, mk)
	if err != nil {
		return nil, nil, nil, err
	}
	iters, err := countIters(h.hash, mk, digestLen)
	if err != nil {
		return nil, nil, nil, err
	}
	r.MKIterations = uint32(max(iters*uint64(o.IterTime)/1000/8, minMasterIters))
	digest, err := pbkdf(h.hash, mk, r.MKSalt[:], r.MKIterations, digestLen)
	if err != nil {
		return nil, nil, nil, err
	}
	copy(r.MKDigest[:], digest)
	hs := uint32(keySlotOffset / SectorSize)
	sks := uint32(h.splitKeySectors(stripes))
	for i := range r.Slots {
		r.Slots[i] = KeySlot{Active: slotDisabled, KeyOffset: hs + uint32(i)*sks, Stripes: stripes}
	}
	r.PayloadOffset = hs + numKeySlots*sks

	// Key slot 0 (qcrypto_block_luks_store_key).
	s := &r.Slots[0]
	rand.Read(s.Salt[:])
	iters, err = countIters(h.hash, password, kb)
	if err != nil {
		return nil, nil, nil, err
	}
	s.Iterations = uint32(max(iters*uint64(o.IterTime)/1000, minSlotIters))
	slotKey, err := pbkdf(h.hash, password, s.Salt[:], s.Iterations, kb)
	if err != nil {
		return nil, nil, nil, err
	}
	sc, err := NewCipher(h.spec, slotKey)
	if err != nil {
		return nil, nil, nil, err
	}
	material, err := afSplit(h.hash, mk, stripes)
	if err != nil {
		return nil, nil, nil, err
	}
	sc.Encrypt(0, material)
	s.Active = slotEnabled
	return h, material, payload, nil
}

// KeyMaterialOffset is where slot 0's key material goes, in bytes.
func (h *Header) KeyMaterialOffset() int64 { return int64(h.raw.Slots[0].KeyOffset) * SectorSize }

// countIters is qcrypto_pbkdf2_count_iters: PBKDF2 iterations per second
// of this machine's CPU time (the thread's, as QEMU measures, so that a
// busy machine does not make the count small). QEMU measures for over
// half a second; a tenth is enough for a count that only needs to be of
// the right size.
func countIters(h Hash, key []byte, n int) (uint64, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	salt := make([]byte, saltLen)
	iter := uint32(1 << 10)
	for {
		if _, err := h.newHash(); err != nil {
			return 0, err
		}
		start := threadCPU()
		pbkdf2Serial(hashes[h].new, key, salt, int(iter), n)
		d := threadCPU() - start
		if d >= 100*time.Millisecond || iter >= 1<<30 {
			return uint64(float64(iter) / d.Seconds()), nil
		}
		if d < 10*time.Millisecond {
			iter *= 10
		} else {
			iter = uint32(float64(iter) * float64(110*time.Millisecond) / float64(d))
		}
	}
}

var processStart = time.Now()

// threadCPU is the CPU time the calling thread has used (wall time where
// the system cannot say).
func threadCPU() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru); err != nil {
		return time.Since(processStart)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func newUUID() string {
	var u [16]byte
	rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:])
}
