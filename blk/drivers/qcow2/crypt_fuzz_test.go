package qcow2_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"gio/blk"
	"gio/blk/blktest"
	"gio/blk/drivers/qcow2"
	"gio/blk/qcrypto"
	"gio/blk/qdict"
	"gio/internal/watchdog"
)

// fuzzSecrets answers every secret id with one password.
type fuzzSecrets struct{}

func (fuzzSecrets) Password(id string) ([]byte, error) { return []byte("123456"), nil }

// cryptRegistry is registry() with the secret store encrypted images need.
func cryptRegistry() *blk.Registry {
	r := registry()
	r.SetSecrets(fuzzSecrets{})
	return r
}

// encryptedSeeds are small encrypted images (LUKS and AES) with data.
func encryptedSeeds(f *testing.F) [][]byte {
	var out [][]byte
	dir := f.TempDir()
	for i, kv := range [][]string{
		{"cluster_size", "4096", "encrypt.format", "luks", "encrypt.key-secret", "s", "encrypt.iter-time", "1"},
		{"cluster_size", "1024", "encrypt.format", "aes", "encrypt.key-secret", "s"},
		{"cluster_size", "512", "compat", "0.10", "encrypt.format", "aes", "encrypt.key-secret", "s"},
	} {
		path := filepath.Join(dir, strconv.Itoa(i))
		os.WriteFile(path, nil, 0o644)
		opts := qdict.New()
		for j := 0; j+1 < len(kv); j += 2 {
			opts.Set(kv[j], kv[j+1])
		}
		if err := cryptRegistry().Create("qcow2", path, 256<<10, opts, blk.NewLoop(blk.NewVirtualClock())); err != nil {
			f.Fatal(err)
		}
		eo := qdict.New()
		eo.Set("encrypt.key-secret", "s")
		b, err := cryptRegistry().Open(blk.Spec{Filename: path, Opts: eo}, blk.NewLoop(blk.NewVirtualClock()))
		if err != nil {
			f.Fatal(err)
		}
		_ = do(f, b, func(co *blk.Co) error {
			return b.PWrite(co, 1024, bytes.Repeat([]byte{0xaa}, 5120), 0)
		})
		b.Close()
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, data)
	}
	return out
}

// FuzzOpenEncrypted is FuzzOpen for encrypted images: corrupted crypt
// methods, crypto header extensions and LUKS headers inside the image,
// opened with a key secret; then reads and writes. Errors are fine,
// panics and accesses outside the file are not.
func FuzzOpenEncrypted(f *testing.F) {
	qcrypto.MaxIterations = 20000
	for _, s := range encryptedSeeds(f) {
		f.Add(s, []byte{0, 1, 2, 3})
	}
	f.Fuzz(func(t *testing.T, img []byte, ops []byte) {
		if len(img) > 2<<20 {
			return
		}
		defer watchdog.Start("qcow2 crypt fuzz", 20*time.Second)()
		id := t.Name()
		mf := &blktest.Bounded{Data: append([]byte(nil), img...)}
		blktest.AddBounded(t, map[string]*blktest.Bounded{id: mf})
		reg := blk.NewRegistry(blktest.BoundedDriver, qcow2.Driver)
		reg.SetSecrets(fuzzSecrets{})
		opts := qdict.New()
		opts.Set("file.driver", "bounded")
		opts.Set("file.id", id)
		opts.Set("backing", "")
		opts.Set("encrypt.key-secret", "s")
		b, err := reg.Open(blk.Spec{Format: "qcow2", Opts: opts}, blk.NewLoop(blk.NewVirtualClock()))
		if mf.Violation != "" {
			t.Fatalf("open: %s", mf.Violation)
		}
		if err != nil {
			return
		}
		defer b.Close()
		var size int64
		_ = blktest_do(t, b, func(co *blk.Co) (err error) { size, err = b.Length(co); return })
		window := min(size, 256<<10)
		for i, op := range ops {
			if i >= 8 || window == 0 {
				break
			}
			off := int64(op) * 509 % window
			n := min(window-off, int64(op)*97+1)
			_ = blktest_do(t, b, func(co *blk.Co) error {
				switch op % 3 {
				case 0:
					return b.PRead(co, off, make([]byte, n))
				case 1:
					return b.PWrite(co, off, bytes.Repeat([]byte{op}, int(n)), 0)
				default:
					return b.PWriteZeroes(co, off, n, blk.MayUnmap)
				}
			})
			if mf.Violation != "" {
				t.Fatalf("op %d: %s", op%3, mf.Violation)
			}
		}
	})
}
