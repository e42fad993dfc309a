package qcrypto

import (
	"bytes"
	"testing"
)

// FuzzDecodeHeader: any bytes either decode to a header that encodes
// back to the same bytes and renders its info, or give an error; never a
// panic. A decoded header can also be asked to unlock: with stripes and
// key sizes checked, the key material it asks for stays small.
func FuzzDecodeHeader(f *testing.F) {
	for _, o := range []CreateOptions{{}, {Alg: Alg{"aes", 16}, Mode: ModeCBC, IVGen: IVEssiv}} {
		o.IterTime = 1
		h, _, _, err := Create(o, []byte("pw"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(h.Encode())
	}
	f.Add([]byte("LUKS\xba\xbe\x00\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := DecodeHeader(b)
		if err != nil {
			return
		}
		if !bytes.Equal(h.Encode(), b[:HeaderSize]) {
			t.Fatal("encode(decode(b)) != b")
		}
		_ = h.Info(4, true)
		if h.PayloadOffset() <= 0 {
			t.Fatalf("payload offset %d", h.PayloadOffset())
		}
		// Unlock with at most a cheap PBKDF2: skip huge iteration counts.
		for _, s := range h.raw.Slots {
			if s.Active == slotEnabled && s.Iterations > 2000 {
				return
			}
		}
		if h.raw.MKIterations > 2000 {
			return
		}
		var asked int64
		_, _ = h.Unlock([]byte("pw"), func(off int64, buf []byte) error {
			asked += int64(len(buf))
			if asked > 8*64*stripes {
				t.Fatalf("unlock asked for %d bytes of key material", asked)
			}
			return nil
		})
	})
}
