package luks_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gio/blk"
	"gio/blk/blktest"
	"gio/blk/drivers/file"
	"gio/blk/drivers/luks"
	"gio/blk/drivers/qcow2"
	"gio/blk/drivers/raw"
	"gio/blk/qdict"
)

// secrets is a fixed secret store for the tests.
type secrets map[string]string

func (s secrets) Password(id string) ([]byte, error) {
	p, ok := s[id]
	if !ok {
		return nil, fmt.Errorf("No secret with id '%s'", id)
	}
	return []byte(p), nil
}

func registry() *blk.Registry {
	r := blk.NewRegistry(file.Driver, raw.Driver, qcow2.Driver, luks.Driver)
	r.SetSecrets(secrets{"sec0": "123456"})
	return r
}

func dict(kv ...string) *qdict.Dict {
	d := qdict.New()
	for i := 0; i+1 < len(kv); i += 2 {
		d.Set(kv[i], kv[i+1])
	}
	return d
}

func create(t *testing.T, format, path string, size int64, kv ...string) {
	t.Helper()
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := registry().Create(format, path, size, dict(kv...), blk.NewLoop(blk.NewVirtualClock())); err != nil {
		t.Fatalf("Create %s %v: %v", format, kv, err)
	}
}

func open(t *testing.T, path string, kv ...string) (*blk.Backend, error) {
	t.Helper()
	return registry().Open(blk.Spec{Filename: path, Opts: dict(kv...)}, blk.NewLoop(blk.NewVirtualClock()))
}

// images are the encrypted images gio creates, with how to open them.
var images = []struct {
	name, format string
	create       []string
	open         []string
	imageOpts    string
}{
	{"luks", "luks", []string{"key-secret", "sec0", "iter-time", "10"}, []string{"key-secret", "sec0"}, "driver=luks,key-secret=sec0"},
	{"luks-cbc-essiv", "luks", []string{"key-secret", "sec0", "iter-time", "10", "cipher-mode", "cbc", "ivgen-alg", "essiv", "cipher-alg", "aes-128"}, []string{"key-secret", "sec0"}, "driver=luks,key-secret=sec0"},
	{"qcow2-luks", "qcow2", []string{"encrypt.format", "luks", "encrypt.key-secret", "sec0", "encrypt.iter-time", "10"}, []string{"encrypt.key-secret", "sec0"}, "driver=qcow2,encrypt.key-secret=sec0"},
	{"qcow2-aes", "qcow2", []string{"encrypt.format", "aes", "encrypt.key-secret", "sec0"}, []string{"encrypt.key-secret", "sec0"}, "driver=qcow2,encrypt.key-secret=sec0"},
	{"qcow2-encrypt-on", "qcow2", []string{"encrypt", "on", "encrypt.key-secret", "sec0"}, []string{"encrypt.key-secret", "sec0"}, "driver=qcow2,encrypt.key-secret=sec0"},
}

// TestCreateWriteRead: gio creates, writes and reads back each kind of
// encrypted image; with qemu-img and qemu-io installed, QEMU then finds
// the image consistent and reads gio's data.
func TestCreateWriteRead(t *testing.T) {
	for _, img := range images {
		t.Run(img.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "img")
			create(t, img.format, path, 4<<20, img.create...)
			b, err := open(t, path, img.open...)
			if err != nil {
				t.Fatal(err)
			}
			data := bytes.Repeat([]byte{0x5a}, 200<<10)
			err = blktest.Do(t, b, "rw", func(co *blk.Co) error {
				if err := b.PWrite(co, 1536, data, 0); err != nil {
					return err
				}
				got := make([]byte, len(data)+1024)
				if err := b.PRead(co, 1024, got); err != nil {
					return err
				}
				want := append(append(make([]byte, 512), data...), make([]byte, 512)...)
				if img.format == "luks" {
					// A fresh LUKS payload holds decrypted zeroes: noise.
					got, want = got[512:len(got)-512], data
				}
				if !bytes.Equal(got, want) {
					return errors.New("read back differs from what was written")
				}
				return b.Flush(co)
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := exec.LookPath("qemu-io"); err != nil {
				t.Skip("qemu-io not installed")
			}
			iopts := img.imageOpts + ",file.filename=" + path
			args := []string{"--object", "secret,id=sec0,data=123456", "--image-opts", iopts, "-c", "read -P 0x5a 1536 200k"}
			if img.format == "qcow2" {
				args = append(args, "-c", "read -P 0 0 1536")
			}
			out, err := exec.Command("qemu-io", args...).CombinedOutput()
			if err != nil || strings.Contains(string(out), "fail") || strings.Contains(string(out), "Pattern verification") {
				t.Fatalf("qemu-io on gio's image: %v\n%s", err, out)
			}
			if img.format == "qcow2" {
				out, err := exec.Command("qemu-img", "check", "--object", "secret,id=sec0,data=123456", "--image-opts", iopts).CombinedOutput()
				if err != nil {
					t.Fatalf("qemu-img check: %v\n%s", err, out)
				}
			}
		})
	}
}

// TestOpenErrors: QEMU's messages for missing and wrong secrets.
func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	l := filepath.Join(dir, "l")
	create(t, "luks", l, 1<<20, "key-secret", "sec0", "iter-time", "10")
	q := filepath.Join(dir, "q")
	create(t, "qcow2", q, 1<<20, "encrypt.format", "luks", "encrypt.key-secret", "sec0", "encrypt.iter-time", "10")
	r := registry()
	r.SetSecrets(secrets{"sec0": "123456", "bad": "654321"})
	for _, tc := range []struct {
		path string
		kv   []string
		want string
	}{
		{l, []string{"driver", "luks"}, "Parameter 'key-secret' is required for cipher"},
		{l, []string{"driver", "luks", "key-secret", "nope"}, "No secret with id 'nope'"},
		{l, []string{"driver", "luks", "key-secret", "bad"}, "Invalid password, cannot unlock any keyslot"},
		{q, nil, "Parameter 'encrypt.key-secret' is required for cipher"},
		{q, []string{"encrypt.key-secret", "bad"}, "Invalid password, cannot unlock any keyslot"},
		{q, []string{"encrypt.key-secret", "sec0", "encrypt.format", "aes"}, "Header reported 'luks' encryption format but options specify 'aes'"},
	} {
		_, err := r.Open(blk.Spec{Filename: tc.path, Opts: dict(tc.kv...)}, blk.NewLoop(blk.NewVirtualClock()))
		if err == nil || err.Error() != tc.want {
			t.Errorf("open %s %v: %v, want %q", filepath.Base(tc.path), tc.kv, err, tc.want)
		}
	}
	// Probing finds luks.
	if _, err := r.Open(blk.Spec{Filename: l, Opts: dict("key-secret", "sec0")}, blk.NewLoop(blk.NewVirtualClock())); err != nil {
		t.Errorf("probed luks: %v", err)
	}
}

func TestCreateErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "img")
	for _, tc := range []struct {
		format string
		kv     []string
		want   string
	}{
		{"luks", nil, "Parameter 'key-secret' is required for cipher"},
		{"luks", []string{"key-secret", "nope"}, "No secret with id 'nope'"},
		{"luks", []string{"key-secret", "sec0", "cipher-alg", "des"}, "Parameter 'cipher-alg' does not accept value 'des'"},
		{"luks", []string{"key-secret", "sec0", "cipher-mode", "gcm"}, "Parameter 'cipher-mode' does not accept value 'gcm'"},
		{"luks", []string{"key-secret", "sec0", "iter-time", "x"}, "Parameter 'iter-time' expects a number"},
		{"qcow2", []string{"encrypt.format", "luks"}, "Parameter 'encrypt.key-secret' is required for cipher"},
		{"qcow2", []string{"encrypt.format", "foo"}, "Parameter 'encrypt.format' does not accept value 'foo'"},
	} {
		os.WriteFile(path, nil, 0o644)
		err := registry().Create(tc.format, path, 1<<20, dict(tc.kv...), blk.NewLoop(blk.NewVirtualClock()))
		if err == nil || err.Error() != tc.want {
			t.Errorf("create %s %v: %v, want %q", tc.format, tc.kv, err, tc.want)
		}
	}
}

// TestConformance runs blk's driver suite over luks and LUKS-encrypted
// qcow2, each subtest on a copy of one created image.
func TestConformance(t *testing.T) {
	for _, img := range images[:3] {
		t.Run(img.name, func(t *testing.T) {
			base := filepath.Join(t.TempDir(), "base")
			create(t, img.format, base, blktest.MinLength+(1<<20), img.create...)
			opts := []blktest.Option{blktest.SectorSizes()}
			if img.format == "luks" {
				opts = append(opts, blktest.GrowsNoise())
			}
			orig, err := os.ReadFile(base)
			if err != nil {
				t.Fatal(err)
			}
			blktest.Run(t, func(t *testing.T) *blk.Backend {
				path := filepath.Join(t.TempDir(), "img")
				if err := os.WriteFile(path, orig, 0o644); err != nil {
					t.Fatal(err)
				}
				b, err := open(t, path, img.open...)
				if err != nil {
					t.Fatal(err)
				}
				return b
			}, opts...)
		})
	}
}
