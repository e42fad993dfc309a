package luks_test

import (
	"os"
	"path/filepath"
	"testing"

	"gio/blk"
	"gio/blk/blktest"
	"gio/blk/drivers/luks"
	"gio/blk/qcrypto"
)

// FuzzOpen feeds corrupted LUKS images (the header, the key slots and
// their key material) to the driver with the right password, and runs a
// few requests on what opens (blktest.FuzzFormatWith).
func FuzzOpen(f *testing.F) {
	// A mutated iteration count must not stall the target for hours.
	qcrypto.MaxIterations = 1 << 16
	for _, kv := range [][]string{
		{"key-secret", "sec0", "iter-time", "1", "cipher-alg", "aes-128", "cipher-mode", "cbc", "ivgen-alg", "plain64"},
		{"key-secret", "sec0", "iter-time", "1", "cipher-alg", "aes-128", "cipher-mode", "cbc", "ivgen-alg", "essiv", "hash-alg", "sha1"},
	} {
		// The whole image (~650 KiB with AES-128's key material): slot 0
		// must unlock for the requests to run.
		path := filepath.Join(f.TempDir(), "seed")
		if err := os.WriteFile(path, nil, 0o644); err != nil {
			f.Fatal(err)
		}
		if err := registry().Create("luks", path, 64<<10, dict(kv...), blk.NewLoop(blk.NewVirtualClock())); err != nil {
			f.Fatal(err)
		}
		seed, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(seed, []byte{0, 1, 2, 3, 4, 5, 6})
	}
	extra := blktest.OpenOptions{Opts: map[string]string{"key-secret": "sec0"}, Secrets: secrets{"sec0": "123456"}}
	f.Fuzz(func(t *testing.T, img, ops []byte) { blktest.FuzzFormatWith(t, luks.Driver, img, ops, extra) })
}
