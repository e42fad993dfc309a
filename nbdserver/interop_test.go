package nbdserver_test

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gio/blk"
	"gio/nbdserver"

	"golang.org/x/sys/unix"
)

// Interoperability: real NBD clients against gio's server. Each test
// skips when its tool is missing.

func need(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
}

func runTool(t testing.TB, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// qemuNBD exports img with the real qemu-nbd until the test ends.
func qemuNBD(t testing.TB, args ...string) string {
	t.Helper()
	need(t, "qemu-nbd")
	sock := filepath.Join(t.TempDir(), "q.sock")
	cmd := exec.Command("qemu-nbd", append([]string{"-t", "-k", sock}, args...)...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(unix.SIGTERM)
		cmd.Wait()
	})
	for i := 0; i < 300; i++ {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return sock
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("qemu-nbd did not start")
	return ""
}

// sparseRaw makes a raw image with data, holes and an unaligned tail.
func sparseRaw(t testing.TB) string {
	img := rawImage(t, 8<<20)
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt(bytes.Repeat([]byte{1}, 64<<10), 1<<20)
	f.WriteAt(bytes.Repeat([]byte{2}, 4096), 5<<20)
	f.WriteAt([]byte{3}, 8<<20-1)
	f.Close()
	return img
}

// backedQcow2 makes a qcow2 image over a qcow2 backing file with data,
// zero clusters and discarded ranges in both.
func backedQcow2(t testing.TB) string {
	need(t, "qemu-img", "qemu-io")
	dir := t.TempDir()
	base, top := filepath.Join(dir, "base.qcow2"), filepath.Join(dir, "top.qcow2")
	runTool(t, "qemu-img", "create", "-f", "qcow2", base, "4M")
	runTool(t, "qemu-io", "-c", "write -P 1 0 1M", "-c", "write -z 2M 512k", base)
	runTool(t, "qemu-img", "create", "-f", "qcow2", "-b", base, "-F", "qcow2", top, "4M")
	runTool(t, "qemu-io", "-c", "write -P 2 512k 1M", "-c", "write -z 3M 64k", "-c", "discard 0 64k", top)
	return top
}

func maps(t testing.TB, sock string) string {
	u := uri(sock)
	return runTool(t, "nbdinfo", "--map", u) +
		runTool(t, "nbdinfo", "--map=qemu:allocation-depth", u) +
		runTool(t, "qemu-img", "map", "--output=json", "-f", "raw", u) +
		runTool(t, "qemu-img", "map", "--output=json", "--image-opts",
			"driver=raw,file.driver=nbd,file.server.type=unix,file.server.path="+sock+",file.x-dirty-bitmap=qemu:allocation-depth")
}

// TestMapsEqualQemuNBD: nbdinfo --map and qemu-img map of a gio export
// equal what they print for qemu-nbd's export of the same image.
func TestMapsEqualQemuNBD(t *testing.T) {
	need(t, "nbdinfo", "qemu-img")
	for _, tc := range []struct{ name, img, format string }{
		{"sparse raw", sparseRaw(t), "raw"},
		{"qcow2 with backing", backedQcow2(t), "qcow2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := maps(t, qemuNBD(t, "-r", "-A", "-f", tc.format, tc.img))
			s := serve(t, blk.Spec{Filename: tc.img, Format: tc.format, Flags: blk.OpenFlags{ReadOnly: true}},
				nbdserver.Options{Persistent: true, ReadOnly: true, AllocDepth: true})
			if got := maps(t, s.sock); got != want {
				t.Errorf("gio export:\n%s\nqemu-nbd export:\n%s", got, want)
			}
		})
	}
}

func TestQemuIO(t *testing.T) {
	need(t, "qemu-io")
	s := serve(t, blk.Spec{Filename: rawImage(t, 1<<20), Format: "raw"}, nbdserver.Options{Persistent: true})
	out := runTool(t, "qemu-io", "-f", "raw", "-c", "write -P 7 1000 5000", "-c", "read -P 7 1000 5000",
		"-c", "write -z 0 512", "-c", "discard 64k 64k", "-c", "flush", "-c", "alloc 0 1M", uri(s.sock))
	for _, want := range []string{"wrote 5000/5000 bytes at offset 1000", "read 5000/5000 bytes at offset 1000", "discard 65536/65536"} {
		if !strings.Contains(out, want) {
			t.Errorf("qemu-io output lacks %q:\n%s", want, out)
		}
	}
}

func TestQemuImg(t *testing.T) {
	need(t, "qemu-img")
	img := sparseRaw(t)
	s := serve(t, blk.Spec{Filename: img, Format: "raw", Flags: blk.OpenFlags{ReadOnly: true}}, nbdserver.Options{Persistent: true, ReadOnly: true, MaxClients: 0})
	info := runTool(t, "qemu-img", "info", uri(s.sock))
	if !strings.Contains(info, "virtual size: 8 MiB (8388608 bytes)") {
		t.Errorf("qemu-img info:\n%s", info)
	}
	dst := filepath.Join(t.TempDir(), "copy.qcow2")
	runTool(t, "qemu-img", "convert", "-f", "raw", "-O", "qcow2", uri(s.sock), dst)
	runTool(t, "qemu-img", "compare", "-f", "raw", "-F", "qcow2", uri(s.sock), dst)
	runTool(t, "qemu-img", "compare", "-f", "raw", "-F", "raw", img, uri(s.sock))
}

func TestNbdinfoList(t *testing.T) {
	need(t, "nbdinfo")
	s := serve(t, blk.Spec{Filename: rawImage(t, 1<<20), Format: "raw"},
		nbdserver.Options{Persistent: true, Name: "disk0", Description: "gio test disk"})
	out := runTool(t, "nbdinfo", "--list", "nbd+unix:///?socket="+s.sock)
	for _, want := range []string{`export="disk0":`, "description: gio test disk", "export-size: 1048576"} {
		if !strings.Contains(out, want) {
			t.Errorf("nbdinfo --list lacks %q:\n%s", want, out)
		}
	}
}

func TestNbdcopy(t *testing.T) {
	need(t, "nbdcopy")
	src := sparseRaw(t)
	s := serve(t, blk.Spec{Filename: src, Format: "raw", Flags: blk.OpenFlags{ReadOnly: true}}, nbdserver.Options{Persistent: true, ReadOnly: true})
	dst := rawImage(t, 8<<20)
	d := serve(t, blk.Spec{Filename: dst, Format: "raw"}, nbdserver.Options{Persistent: true})
	runTool(t, "nbdcopy", uri(s.sock), uri(d.sock))
	d.stop(t)
	a, _ := os.ReadFile(src)
	b, _ := os.ReadFile(dst)
	if !bytes.Equal(a, b) {
		t.Error("nbdcopy: copy differs")
	}
}

func TestNbdsh(t *testing.T) {
	need(t, "nbdsh")
	s := serve(t, blk.Spec{Filename: rawImage(t, 1<<20), Format: "raw"}, nbdserver.Options{Persistent: true})
	script := `
h.pwrite(b"hello", 4096, nbd.CMD_FLAG_FUA)
assert h.pread(5, 4096) == b"hello"
h.zero(4096, 4096)
assert h.pread(5, 4096) == bytes(5)
h.trim(65536, 0)
h.flush()
assert h.can_fua() and h.can_zero() and h.can_trim() and h.can_fast_zero() and h.can_df() and h.can_cache()
try:
    h.pread(512, 1048576 - 100)
    assert False
except nbd.Error as e:
    assert e.errnum == errno.EINVAL, e
h.cache(4096, 0)
print("ok")
`
	// nbdsh runs "python3" from PATH, which must be the one with the
	// nbd module (the system's, when a pyenv comes first).
	env := append(os.Environ(), "PATH=/usr/bin:"+os.Getenv("PATH"))
	if err := exec.Command("nbdsh", "-c", "pass").Run(); err != nil {
		probe := exec.Command("nbdsh", "-c", "pass")
		probe.Env = env
		if probe.Run() != nil {
			t.Skip("nbdsh cannot import its python module")
		}
	}
	cmd := exec.Command("nbdsh", "-u", uri(s.sock), "-c", "import errno", "-c", script)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Errorf("nbdsh: %v\n%s", err, out)
	}
}

func TestFio(t *testing.T) {
	need(t, "fio")
	if out, _ := exec.Command("fio", "--enghelp=nbd").CombinedOutput(); !strings.Contains(string(out), "uri") {
		t.Skip("fio has no nbd engine")
	}
	s := serve(t, blk.Spec{Filename: rawImage(t, 16<<20), Format: "raw"}, nbdserver.Options{Persistent: true, MaxClients: 0})
	out := runTool(t, "fio", "--name=t", "--ioengine=nbd", "--uri="+uri(s.sock), "--rw=randrw", "--bs=4k",
		"--size=16M", "--io_size=4M", "--iodepth=8", "--verify=crc32c", "--do_verify=1")
	if !strings.Contains(out, "err= 0") {
		t.Errorf("fio:\n%s", out)
	}
}
