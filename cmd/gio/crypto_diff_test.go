package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Differential tests of encrypted images (luks, and qcow2 with AES or
// LUKS encryption): images made by qemu-img, the same commands through
// qemu-io and gio on two copies, then the outputs compared, qemu-img
// check clean and qemu-img compare (decrypting both) identical. qcow2
// allocates deterministically and the keys are in the image, so those
// copies must also end byte-identical.

const cryptoSecret = "secret,id=sec0,data=123456"

// cryptoImage is how one test image is made.
type cryptoImage struct {
	name   string
	format string // luks or qcow2
	opts   string // qemu-img create -o
	size   string
}

func cryptoImages() []cryptoImage {
	return []cryptoImage{
		{"qcow2-luks", "qcow2", "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10", "4M"},
		{"qcow2-luks-4k", "qcow2", "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10,cluster_size=4k", "4M"},
		{"qcow2-aes", "qcow2", "encrypt.format=aes,encrypt.key-secret=sec0", "4M"},
		{"qcow2-aes-v2", "qcow2", "encrypt.format=aes,encrypt.key-secret=sec0,compat=0.10", "4M"},
		{"luks", "luks", "key-secret=sec0,iter-time=10", "4M"},
		{"luks-cbc-essiv", "luks", "key-secret=sec0,iter-time=10,cipher-mode=cbc,ivgen-alg=essiv,cipher-alg=aes-128", "4M"},
		{"luks-cbc-plain-sha1", "luks", "key-secret=sec0,iter-time=10,cipher-mode=cbc,ivgen-alg=plain,hash-alg=sha1,cipher-alg=aes-128", "4M"},
		{"luks-xts-essiv-hash-sha512", "luks", "key-secret=sec0,iter-time=10,ivgen-alg=essiv,ivgen-hash-alg=sha256,hash-alg=sha512", "4M"},
		{"luks-ctr", "luks", "key-secret=sec0,iter-time=10,cipher-mode=ctr,ivgen-alg=plain64,cipher-alg=aes-128", "4M"},
	}
}

// imageOpts is the --image-opts string that opens img with the secret.
func (c cryptoImage) imageOpts(img string) string {
	if c.format == "luks" {
		return "driver=luks,file.filename=" + img + ",key-secret=sec0"
	}
	return "driver=qcow2,file.filename=" + img + ",encrypt.key-secret=sec0"
}

// cryptoCommands are the command sequences run on every image.
var cryptoCommands = map[string][]string{
	"data": {"write -P 0x11 0 64k", "write -P 0x22 4k 512", "write -P 0x33 70k 130k",
		"read -P 0x11 0 4k", "read -P 0x22 4k 512", "read -P 0x33 70k 130k",
		"read -v 4000 200", "map", "alloc 0 4M", "info"},
	"unaligned": {"write -P 0x44 100 1000", "read -P 0x44 100 1000", "read -P 0 0 100",
		"write -P 0x55 65500 100", "read -v 65500 100", "aio_write -P 0x66 1m 70k",
		"aio_flush", "read -P 0x66 1m 70k", "map"},
	"zero-discard": {"write -P 0x77 0 256k", "write -z 64k 64k", "write -z 1000 3000",
		"discard 128k 64k", "read -P 0x77 0 1000", "read -P 0 1000 3000",
		"read -P 0 64k 64k", "read -v 128k 32", "map", "flush"},
	"large": {"write -P 0x99 512k 3m", "read -P 0x99 512k 3m", "write -P 0x98 3m 1m",
		"read -P 0x99 512k 2560k", "read -P 0x98 3m 1m", "map"},
}

func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
}

func runTool(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%q: %v\n%s", args, err, out)
	}
	return string(out)
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCryptoDiff(t *testing.T) {
	needTools(t, "qemu-io", "qemu-img")
	base := t.TempDir()
	for _, img := range cryptoImages() {
		orig := filepath.Join(base, img.name)
		runTool(t, base, "qemu-img", "create", "-q", "--object", cryptoSecret, "-f", img.format, "-o", img.opts, orig, img.size)
		for cname, cs := range cryptoCommands {
			t.Run(img.name+"/"+cname, func(t *testing.T) {
				dir := t.TempDir()
				qi, gi := filepath.Join(dir, "q.img"), filepath.Join(dir, "g.img")
				copyFile(t, orig, qi)
				copyFile(t, orig, gi)
				args := func(p string) []string {
					return append([]string{"--object", cryptoSecret, "--image-opts", img.imageOpts(p)}, cmds(cs...)...)
				}
				q := runIn(t, "qemu-io", dir, args("q.img"), nil)
				g := runIn(t, gioBin, dir, args("g.img"), nil)
				qo := strings.ReplaceAll(filterQemuIO(q.out), "q.img", "IMG")
				gout := strings.ReplaceAll(filterQemuIO(g.out), "g.img", "IMG")
				if qo != gout || q.rc != g.rc {
					t.Fatalf("output differs (qemu-io rc %d, gio rc %d):\n%s", q.rc, g.rc, lineDiff(qo, gout))
				}
				compareDecrypted(t, dir, img, "q.img", "g.img")
				if img.format == "qcow2" {
					qb, _ := os.ReadFile(qi)
					gb, _ := os.ReadFile(gi)
					if string(qb) != string(gb) {
						t.Errorf("images differ at byte %d", firstMismatch(qb, gb))
					}
				}
			})
		}
	}
}

// compareDecrypted runs qemu-img check on b (qcow2) and qemu-img compare
// on the decrypted contents of a and b.
func compareDecrypted(t *testing.T, dir string, img cryptoImage, a, b string) {
	t.Helper()
	if img.format == "qcow2" {
		cmd := exec.Command("qemu-img", "check", "--object", cryptoSecret, "--image-opts", img.imageOpts(b))
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("qemu-img check: %v\n%s", err, out)
		}
	}
	cmd := exec.Command("qemu-img", "compare", "--object", cryptoSecret, "--image-opts", img.imageOpts(a), img.imageOpts(b))
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("qemu-img compare: %v\n%s", err, out)
	}
}

// TestCryptoBadInput: wrong secrets, missing ones and corrupted LUKS
// headers give qemu-io's messages and exit status, without a panic.
func TestCryptoBadInput(t *testing.T) {
	needTools(t, "qemu-io", "qemu-img")
	base := t.TempDir()
	runTool(t, base, "qemu-img", "create", "-q", "--object", cryptoSecret, "-f", "luks", "-o", "key-secret=sec0,iter-time=10", "l.img", "1M")
	runTool(t, base, "qemu-img", "create", "-q", "--object", cryptoSecret, "-f", "qcow2", "-o", "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10", "q.img", "1M")
	runTool(t, base, "qemu-img", "create", "-q", "--object", cryptoSecret, "-f", "qcow2", "-o", "encrypt.format=aes,encrypt.key-secret=sec0", "a.img", "1M")
	runTool(t, base, "qemu-img", "create", "-q", "-f", "qcow2", "plain.img", "1M")
	// The LUKS header of q.img is where its crypto header extension
	// points: after the header, refcount table and block and L1 table.
	const qLUKS = 4 * 65536
	type patch struct {
		off  int64
		data []byte
	}
	be32 := func(v uint32) []byte { return []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)} }
	rows := []struct {
		name    string
		image   string
		patches []patch
		args    []string
	}{
		{"wrong-password", "l.img", nil, []string{"--object", "secret,id=sec0,data=654321", "--image-opts", "driver=luks,file.filename=IMG,key-secret=sec0"}},
		{"no-key-secret", "l.img", nil, []string{"--object", cryptoSecret, "-f", "luks", "IMG"}},
		{"unknown-secret", "l.img", nil, []string{"--image-opts", "driver=luks,file.filename=IMG,key-secret=sec1"}},
		{"bad-magic", "l.img", []patch{{0, []byte("XUKS")}}, []string{"--object", cryptoSecret, "--image-opts", "driver=luks,file.filename=IMG,key-secret=sec0"}},
		{"bad-version", "l.img", []patch{{6, []byte{0, 2}}}, []string{"--object", cryptoSecret, "--image-opts", "driver=luks,file.filename=IMG,key-secret=sec0"}},
		{"bad-cipher-mode", "l.img", []patch{{40, []byte("zzz")}}, []string{"--object", cryptoSecret, "--image-opts", "driver=luks,file.filename=IMG,key-secret=sec0"}},
		{"no-dash-mode", "l.img", []patch{{40, []byte("xtsxplain64")}}, []string{"--object", cryptoSecret, "--image-opts", "driver=luks,file.filename=IMG,key-secret=sec0"}},
		{"bad-cipher-name", "l.img", []patch{{8, []byte("foo\x00")}}, []string{"--object", cryptoSecret, "--image-opts", "driver=luks,file.filename=IMG,key-secret=sec0"}},
		{"bad-hash", "l.img", []patch{{72, []byte("sha9\x00")}}, []string{"--object", cryptoSecret, "--image-opts", "driver=luks,file.filename=IMG,key-secret=sec0"}},
		{"bad-key-bytes", "l.img", []patch{{108, be32(40)}}, []string{"--object", cryptoSecret, "--image-opts", "driver=luks,file.filename=IMG,key-secret=sec0"}},
		{"payload-in-header", "l.img", []patch{{104, be32(2)}}, []string{"--object", cryptoSecret, "--image-opts", "driver=luks,file.filename=IMG,key-secret=sec0"}},
		{"mk-iters-zero", "l.img", []patch{{164, be32(0)}}, []string{"--object", cryptoSecret, "--image-opts", "driver=luks,file.filename=IMG,key-secret=sec0"}},
		{"slot-stripes", "l.img", []patch{{208 + 48*2 + 44, be32(4001)}}, []string{"--object", cryptoSecret, "--image-opts", "driver=luks,file.filename=IMG,key-secret=sec0"}},
		{"slot-state", "l.img", []patch{{208 + 48*3, be32(7)}}, []string{"--object", cryptoSecret, "--image-opts", "driver=luks,file.filename=IMG,key-secret=sec0"}},
		{"slot-iters-zero", "l.img", []patch{{208 + 4, be32(0)}}, []string{"--object", cryptoSecret, "--image-opts", "driver=luks,file.filename=IMG,key-secret=sec0"}},
		{"slot-overlaps-header", "l.img", []patch{{208 + 48*1 + 40, be32(1)}}, []string{"--object", cryptoSecret, "--image-opts", "driver=luks,file.filename=IMG,key-secret=sec0"}},
		{"slots-overlap", "l.img", []patch{{208 + 48*1 + 40, be32(9)}}, []string{"--object", cryptoSecret, "--image-opts", "driver=luks,file.filename=IMG,key-secret=sec0"}},
		{"slot-into-payload", "l.img", []patch{{208 + 48*7 + 40, be32(4000)}}, []string{"--object", cryptoSecret, "--image-opts", "driver=luks,file.filename=IMG,key-secret=sec0"}},
		{"key-material-damaged", "l.img", []patch{{4096, make([]byte, 4096)}}, []string{"--object", cryptoSecret, "--image-opts", "driver=luks,file.filename=IMG,key-secret=sec0"}},
		{"qcow2-wrong-password", "q.img", nil, []string{"--object", "secret,id=sec0,data=x", "--image-opts", "driver=qcow2,file.filename=IMG,encrypt.key-secret=sec0"}},
		{"qcow2-no-key-secret", "q.img", nil, []string{"--object", cryptoSecret, "IMG"}},
		{"qcow2-format-mismatch", "q.img", nil, []string{"--object", cryptoSecret, "--image-opts", "driver=qcow2,file.filename=IMG,encrypt.key-secret=sec0,encrypt.format=aes"}},
		{"qcow2-bad-format", "a.img", nil, []string{"--object", cryptoSecret, "--image-opts", "driver=qcow2,file.filename=IMG,encrypt.key-secret=sec0,encrypt.format=luks"}},
		{"qcow2-unexpected", "a.img", nil, []string{"--object", cryptoSecret, "--image-opts", "driver=qcow2,file.filename=IMG,encrypt.key-secret=sec0,encrypt.foo=1"}},
		{"qcow2-plain-with-format", "plain.img", nil, []string{"--object", cryptoSecret, "--image-opts", "driver=qcow2,file.filename=IMG,encrypt.format=luks"}},
		{"qcow2-plain-with-key", "plain.img", nil, []string{"--object", cryptoSecret, "--image-opts", "driver=qcow2,file.filename=IMG,encrypt.key-secret=sec0"}},
		{"qcow2-luks-header-magic", "q.img", []patch{{qLUKS, []byte("XX")}}, []string{"--object", cryptoSecret, "--image-opts", "driver=qcow2,file.filename=IMG,encrypt.key-secret=sec0"}},
		{"qcow2-luks-slot", "q.img", []patch{{qLUKS + 208 + 44, be32(1)}}, []string{"--object", cryptoSecret, "--image-opts", "driver=qcow2,file.filename=IMG,encrypt.key-secret=sec0"}},
		{"qcow2-crypto-ext-unaligned", "q.img", []patch{{120 + 6, []byte{0x10}}}, []string{"--object", cryptoSecret, "--image-opts", "driver=qcow2,file.filename=IMG,encrypt.key-secret=sec0"}},
		{"qcow2-crypto-ext-short", "q.img", []patch{{120 + 12, be32(0x100)}}, []string{"--object", cryptoSecret, "--image-opts", "driver=qcow2,file.filename=IMG,encrypt.key-secret=sec0"}},
		{"qcow2-crypt-method-3", "q.img", []patch{{32, be32(3)}}, []string{"--object", cryptoSecret, "--image-opts", "driver=qcow2,file.filename=IMG,encrypt.key-secret=sec0"}},
		{"qcow2-aes-with-ext", "q.img", []patch{{32, be32(1)}}, []string{"--object", cryptoSecret, "--image-opts", "driver=qcow2,file.filename=IMG,encrypt.key-secret=sec0"}},
		{"qcow2-aes-wrong-password", "a.img", nil, []string{"--object", "secret,id=sec0,data=x", "--image-opts", "driver=qcow2,file.filename=IMG,encrypt.key-secret=sec0", "-c", "read -P 0 0 4k"}},
		{"secret-not-utf8", "l.img", nil, []string{"--object", "secret,id=sec0,data=/w==,format=base64", "--image-opts", "driver=luks,file.filename=IMG,key-secret=sec0"}},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			dir := t.TempDir()
			b, err := os.ReadFile(filepath.Join(base, r.image))
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range r.patches {
				copy(b[p.off:], p.data)
			}
			if err := os.WriteFile(filepath.Join(dir, "img"), b, 0o644); err != nil {
				t.Fatal(err)
			}
			args := make([]string, len(r.args))
			for i, a := range r.args {
				args[i] = strings.ReplaceAll(a, "IMG", "img")
			}
			if !hasCmd(args) {
				args = append(args, "-c", "read 0 512")
			}
			q := runIn(t, "qemu-io", dir, args, nil)
			g := runIn(t, gioBin, dir, args, nil)
			qo, gout := filterQemuIO(q.out), filterQemuIO(g.out)
			if qo != gout || q.rc != g.rc {
				t.Fatalf("qemu-io (rc %d):\n%s\ngio (rc %d):\n%s", q.rc, qo, g.rc, gout)
			}
		})
	}
}

func hasCmd(args []string) bool {
	for _, a := range args {
		if a == "-c" {
			return true
		}
	}
	return false
}

// TestObjectOption: --object parsing and its messages, as qemu-io's.
func TestObjectOption(t *testing.T) {
	needTools(t, "qemu-io")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "pw"), []byte("123456"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "img"), make([]byte, 1<<16), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, o := range []string{"secret", "secret,id=s", "secret,data=x", "secret,id=s,data=x,file=pw",
		"secret,id=s,file=nonexist", "secret,id=s,file=.", "secret,id=s,file=pw", "secret,id=s,data=x,format=foo",
		"secret,id=s,data=x,foo=bar", "foo,id=s", "", "id=s", "secret,id=s,data=x,keyid=k",
		"secret,id=1s,data=x", "help", "secret,help", "secret,id=s,data=x,help", "secret,id=s,data=x,loaded=on",
		"secret,id=s,data=@@@@,format=base64", "secret,id=s,data=MTIzNDU2,format=base64",
		"secret,id=s,data,x", "secret,id=s,=x", "iothread,id=t", "secret,id=s,data=a,,b",
		"secret,id=s,data=x,id=t", "secret,id=s,data=x,iv=abc"} {
		t.Run(o, func(t *testing.T) {
			args := []string{"--object", o, "-f", "raw", "-c", "read 0 512", "img"}
			q := runIn(t, "qemu-io", dir, args, nil)
			g := runIn(t, gioBin, dir, args, nil)
			qo, gout := filterQemuIO(q.out), filterQemuIO(g.out)
			if qo != gout || q.rc != g.rc {
				t.Fatalf("qemu-io (rc %d):\n%s\ngio (rc %d):\n%s", q.rc, qo, g.rc, gout)
			}
		})
	}
	// Two objects: a duplicate id, and a secret encrypted with another.
	for _, pair := range [][2]string{
		{"secret,id=s,data=x", "secret,id=s,data=y"},
		{"secret,id=k,data=x", "secret,id=s,data=y,keyid=k"},
		{"secret,id=k,data=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=,format=base64", "secret,id=s,data=y,keyid=k"},
		{"secret,id=k,data=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=,format=base64", "secret,id=s,data=y,keyid=k,iv=AAAA"},
		{"secret,id=k,data=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=,format=base64", "secret,id=s,data=AAAAAAAAAAAAAAAAAAAAAA==,format=base64,keyid=k,iv=AAAAAAAAAAAAAAAAAAAAAA=="},
	} {
		t.Run(pair[0]+"+"+pair[1], func(t *testing.T) {
			args := []string{"--object", pair[0], "--object", pair[1], "-f", "raw", "-c", "read 0 512", "img"}
			q := runIn(t, "qemu-io", dir, args, nil)
			g := runIn(t, gioBin, dir, args, nil)
			qo, gout := filterQemuIO(q.out), filterQemuIO(g.out)
			if qo != gout || q.rc != g.rc {
				t.Fatalf("qemu-io (rc %d):\n%s\ngio (rc %d):\n%s", q.rc, qo, g.rc, gout)
			}
		})
	}
}

// diffSession runs the same arguments through qemu-io and gio in dir and
// fails on any difference of output or exit status; image names in the
// arguments may use %s for a per-tool copy suffix.
func diffSession(t *testing.T, dir string, args []string) {
	t.Helper()
	q := runIn(t, "qemu-io", dir, args, nil)
	g := runIn(t, gioBin, dir, args, nil)
	qo, gout := filterQemuIO(q.out), filterQemuIO(g.out)
	if qo != gout || q.rc != g.rc {
		t.Fatalf("%q:\nqemu-io (rc %d):\n%s\ngio (rc %d):\n%s", args, q.rc, qo, g.rc, gout)
	}
}

// TestCryptoKeySlots is iotest 293's shape: passwords added to and
// removed from key slots by qemu-img amend; every password opens the
// image in gio as in qemu-io, and removed ones are refused alike.
func TestCryptoKeySlots(t *testing.T) {
	needTools(t, "qemu-io", "qemu-img")
	if testing.Short() {
		t.Skip("qemu-img amend calibrates PBKDF2 for a second per key: slow")
	}
	for _, fmtc := range []struct{ format, pr, extra string }{{"luks", "", ""}, {"qcow2", "encrypt.", "encrypt.format=luks,"}} {
		t.Run(fmtc.format, func(t *testing.T) {
			dir := t.TempDir()
			var secrets []string
			for i := 0; i < 5; i++ {
				secrets = append(secrets, "--object", "secret,id=sec"+string(rune('0'+i))+",data=hunter"+string(rune('0'+i)))
			}
			imgs := func(i int) []string {
				return []string{"--image-opts", "driver=" + fmtc.format + ",file.filename=img," + fmtc.pr + "key-secret=sec" + string(rune('0'+i))}
			}
			pr := fmtc.pr
			runTool(t, dir, append(append([]string{"qemu-img", "create", "-q"}, secrets[:2]...), "-f", fmtc.format, "-o", fmtc.extra+pr+"key-secret=sec0,"+pr+"iter-time=10", "img", "4M")...)
			amend := func(via int, o string) {
				runTool(t, dir, append(append(append([]string{"qemu-img", "amend"}, secrets...), imgs(via)...), "-o", o)...)
			}
			amend(0, pr+"state=active,"+pr+"new-secret=sec4,"+pr+"iter-time=10,"+pr+"keyslot=4")
			amend(0, pr+"state=active,"+pr+"new-secret=sec1,"+pr+"iter-time=10")
			amend(1, pr+"state=active,"+pr+"new-secret=sec3,"+pr+"iter-time=10,"+pr+"keyslot=3")
			amend(3, pr+"state=active,"+pr+"new-secret=sec2,"+pr+"iter-time=10")
			for i := 0; i < 5; i++ {
				diffSession(t, dir, append(append(append([]string{}, secrets...), imgs(i)...), "-c", "read 0 4096", "-c", "info"))
			}
			amend(1, pr+"state=inactive,"+pr+"keyslot=4")
			amend(1, pr+"state=inactive,"+pr+"old-secret=sec0")
			for i := 0; i < 5; i++ {
				diffSession(t, dir, append(append(append([]string{}, secrets...), imgs(i)...), "-c", "read 0 4096", "-c", "info"))
			}
		})
	}
}

// TestCryptoBackingChain is iotests 158 and 189: an encrypted overlay on
// an encrypted backing file with its own secret; a partial-cluster write
// copies the backing data (decrypted, re-encrypted) into the overlay.
func TestCryptoBackingChain(t *testing.T) {
	needTools(t, "qemu-io", "qemu-img")
	for _, tc := range []struct{ name, base, top string }{
		{"luks", "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10", "encrypt.format=luks,encrypt.key-secret=sec1,encrypt.iter-time=10"},
		{"aes", "encryption=on,encrypt.key-secret=sec0", "encryption=on,encrypt.key-secret=sec1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s0, s1 := "secret,id=sec0,data=astrochicken", "secret,id=sec1,data=furby"
			runTool(t, dir, "qemu-img", "create", "-q", "--object", s0, "-f", "qcow2", "-o", tc.base, "base", "4M")
			runTool(t, dir, "qemu-io", "--object", s0, "--image-opts", "driver=qcow2,file.filename=base,encrypt.key-secret=sec0", "-c", "write -P 0xa 0 4M")
			runTool(t, dir, "qemu-img", "create", "-q", "--object", s1, "-f", "qcow2", "-o", tc.top, "-b", "base", "-F", "qcow2", "top", "4M")
			copyFile(t, filepath.Join(dir, "top"), filepath.Join(dir, "top2"))
			spec := func(top string) string {
				return "driver=qcow2,file.filename=" + top + ",backing.driver=qcow2,backing.file.filename=base,backing.encrypt.key-secret=sec0,encrypt.key-secret=sec1"
			}
			cs := cmds("write -P 0xe 0 1024", "read -P 0xe 0 1024", "read -P 0xa 1024 64512", "write -P 0xf 100k 3k", "read -P 0xa 64k 36k", "map")
			q := runIn(t, "qemu-io", dir, append([]string{"--object", s0, "--object", s1, "--image-opts", spec("top")}, cs...), nil)
			g := runIn(t, gioBin, dir, append([]string{"--object", s0, "--object", s1, "--image-opts", spec("top2")}, cs...), nil)
			if qo, gout := filterQemuIO(q.out), filterQemuIO(g.out); qo != gout || q.rc != g.rc {
				t.Fatalf("qemu-io (rc %d):\n%s\ngio (rc %d):\n%s", q.rc, qo, g.rc, gout)
			}
			a, _ := os.ReadFile(filepath.Join(dir, "top"))
			b, _ := os.ReadFile(filepath.Join(dir, "top2"))
			if string(a) != string(b) {
				t.Errorf("overlays differ at byte %d", firstMismatch(a, b))
			}
		})
	}
}
