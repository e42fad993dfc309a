package qcrypto

import (
	"crypto/hmac"
	"encoding/binary"
	"hash"
	"sync"
)

// pbkdf2Key is PBKDF2 (RFC 8018) with HMAC over newHash. It computes the
// output blocks in parallel: each block is its own chain of iter HMACs,
// and a LUKS slot key (64 bytes for AES-256-XTS, 2 SHA-256 blocks) is the
// longest PBKDF2 QEMU asks for when opening an image, so two cores halve
// the wait. The result is crypto/pbkdf2.Key's (TestPBKDF2 checks).
func pbkdf2Key(newHash func() hash.Hash, password, salt []byte, iter, keyLen int) []byte {
	size := newHash().Size()
	blocks := (keyLen + size - 1) / size
	out := make([]byte, blocks*size)
	if blocks == 1 {
		pbkdf2Block(newHash, password, salt, iter, 1, out)
		return out[:keyLen]
	}
	var wg sync.WaitGroup
	for b := 1; b <= blocks; b++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pbkdf2Block(newHash, password, salt, iter, uint32(b), out[(b-1)*size:b*size])
		}()
	}
	wg.Wait()
	return out[:keyLen]
}

// pbkdf2Serial is pbkdf2Key on the calling goroutine only: what QEMU
// times to calibrate iteration counts (countIters measures this thread's
// CPU time).
func pbkdf2Serial(newHash func() hash.Hash, password, salt []byte, iter, keyLen int) []byte {
	size := newHash().Size()
	blocks := (keyLen + size - 1) / size
	out := make([]byte, blocks*size)
	for b := 1; b <= blocks; b++ {
		pbkdf2Block(newHash, password, salt, iter, uint32(b), out[(b-1)*size:b*size])
	}
	return out[:keyLen]
}

// pbkdf2Block computes block number i into t: U1 = PRF(P, S || INT(i)),
// Uj = PRF(P, Uj-1), T = U1 ^ ... ^ Uc.
func pbkdf2Block(newHash func() hash.Hash, password, salt []byte, iter int, i uint32, t []byte) {
	prf := hmac.New(newHash, password)
	prf.Write(salt)
	var idx [4]byte
	binary.BigEndian.PutUint32(idx[:], i)
	prf.Write(idx[:])
	u := prf.Sum(nil)
	copy(t, u)
	for n := 1; n < iter; n++ {
		prf.Reset()
		prf.Write(u)
		u = prf.Sum(u[:0])
		for j := range t {
			t[j] ^= u[j]
		}
	}
}
