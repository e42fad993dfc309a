package nbd_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gio/blk"
	"gio/blk/blktest"
	"gio/blk/drivers/file"
	"gio/blk/drivers/nbd"
	"gio/blk/drivers/qcow2"
	"gio/blk/drivers/raw"
	"gio/blk/qdict"
	"gio/blkdebug"

	"golang.org/x/sys/unix"
)

func registry() *blk.Registry {
	return blk.NewRegistry(append([]*blk.Driver{file.Driver, raw.Driver, qcow2.Driver, blkdebug.NewDriver(func() io.Writer { return io.Discard })}, nbd.Drivers...)...)
}

func TestParseFilename(t *testing.T) {
	tests := []struct {
		in, opts, err string
	}{
		{in: "nbd://localhost/exp", opts: "export=exp server.type=inet server.host=localhost server.port=10809"},
		{in: "nbd://localhost:99/", opts: "server.type=inet server.host=localhost server.port=99"},
		{in: "nbd+tcp://[::1]:99/e", opts: "export=e server.type=inet server.host=::1 server.port=99"},
		{in: "nbd+unix:///e?socket=/s", opts: "export=e server.type=unix server.path=/s"},
		{in: "nbd+unix:///?socket=/s", opts: "server.type=unix server.path=/s"},
		{in: "nbd:unix:/s", opts: "server.type=unix server.path=/s"},
		{in: "nbd:unix:/s:exportname=x", opts: "export=x server.type=unix server.path=/s"},
		{in: "nbd:h:1", opts: "server.type=inet server.host=h server.port=1"},
		{in: "nbd:h:1:exportname=a:b", opts: "export=a:b server.type=inet server.host=h server.port=1"},
		{in: "nbd:h:1:exportname=", opts: ""},
		{in: "nbd:", opts: ""},
		{in: "nbd:localhost", err: "error parsing address 'localhost'"},
		{in: "nbd+unix:///", err: "No valid URL specified"},
		{in: "nbd+unix://h/?socket=x", err: "No valid URL specified"},
		{in: "nbd://", err: "No valid URL specified"},
		{in: "nbd://h/?socket=x", err: "No valid URL specified"},
		{in: "nbd+unix:///?socket=a&socket=b", err: "No valid URL specified"},
	}
	for _, tc := range tests {
		opts := qdict.New()
		err := nbd.Driver.ParseFilename(tc.in, opts)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("%s: got %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		var got []string
		for _, k := range opts.Keys() {
			v, _ := opts.Get(k)
			got = append(got, k+"="+v)
		}
		if g := strings.Join(got, " "); g != tc.opts {
			t.Errorf("%s: options %q, want %q", tc.in, g, tc.opts)
		}
	}
	opts := qdict.FromPairs("server.host", "x")
	if err := nbd.Driver.ParseFilename("nbd:unix:/s", opts); err == nil || err.Error() != "Option 'server.host' cannot be used with a file name" {
		t.Errorf("conflict: %v", err)
	}
}

func open(t testing.TB, spec blk.Spec) (*blk.Backend, error) {
	t.Helper()
	return registry().Open(spec, blk.NewLoop(blk.NewVirtualClock()))
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "none.sock")
	tests := []struct{ in, err string }{
		{"nbd+unix:///?socket=" + sock, "Failed to connect to '" + sock + "': No such file or directory"},
		{"nbd:unix:" + sock, "Failed to connect to '" + sock + "': No such file or directory"},
		{`json:{"driver":"nbd"}`, "NBD server address missing"},
		{`json:{"driver":"nbd","server":{"type":"foo"}}`, "Parameter 'type' does not accept value 'foo'"},
		{`json:{"driver":"nbd","server":{"type":"unix"}}`, "Parameter 'path' is missing"},
		{`json:{"driver":"nbd","server":{"type":"inet","host":"x"}}`, "Parameter 'port' is missing"},
		{`json:{"driver":"nbd","server":{"type":"unix","path":"/x"},"reconnect-delay":"x"}`, "Parameter 'reconnect-delay' expects a number"},
		{`json:{"driver":"nbd","server":{"type":"unix","path":"/x"},"open-timeout":"x"}`, "Parameter 'open-timeout' expects a number"},
		{`json:{"driver":"nbd","server":{"type":"unix","path":"` + sock + `"},"open-timeout":"1"}`, "Failed to connect to '" + sock + "': No such file or directory"},
		{`json:{"driver":"nbd","path":"/x","host":"y"}`, "path and host may not be used at the same time"},
		{`json:{"driver":"nbd","path":"/x","port":"1"}`, "port may not be used without host"},
		{`json:{"driver":"nbd","path":"/x","server.type":"unix"}`, "Cannot use 'server' and path/host/port at the same time"},
		{`json:{"driver":"nbd","server.type":"unix","server.path":"/x","tls-creds":"x"}`, "No TLS credentials with id 'x'"},
	}
	for _, tc := range tests {
		spec := blk.Spec{Filename: tc.in}
		if !strings.HasPrefix(tc.in, "json:") {
			spec.Format = "raw"
		}
		_, err := open(t, spec)
		if err == nil || !strings.EqualFold(err.Error(), tc.err) {
			t.Errorf("%s: got %v, want %q", tc.in, err, tc.err)
		}
	}
}

// TestOpenTimeout: with open-timeout, a server that comes up after the
// first attempt is still reached (nbd-reconnect-on-open); without it,
// the open fails at once.
func TestOpenTimeout(t *testing.T) {
	if _, err := exec.LookPath("qemu-nbd"); err != nil {
		t.Skip("qemu-nbd not installed")
	}
	img := image(t, 1<<20)
	sock := filepath.Join(t.TempDir(), "late.sock")
	spec := func(timeout int) blk.Spec {
		return blk.Spec{Filename: fmt.Sprintf(`json:{"driver":"raw","file":{"driver":"nbd","open-timeout":"%d","server":{"type":"unix","path":"%s"}}}`, timeout, sock)}
	}
	if _, err := open(t, spec(0)); err == nil {
		t.Fatal("open-timeout=0 without a server: opened")
	}
	cmd := exec.Command("qemu-nbd", "-k", sock, "-f", "raw", img)
	started := make(chan error, 1)
	go func() {
		time.Sleep(300 * time.Millisecond) // after the first attempt
		started <- cmd.Start()
	}()
	t.Cleanup(func() {
		if <-started == nil {
			cmd.Process.Signal(unix.SIGTERM)
			cmd.Wait()
		}
	})
	b, err := open(t, spec(10))
	if err != nil {
		t.Fatalf("open-timeout=10 with a server starting late: %v", err)
	}
	buf := make([]byte, 4096)
	if err := run(t, b, func(co *blk.Co) error { return b.PRead(co, 0, buf) }); err != nil {
		t.Fatal(err)
	}
	b.Close()
}

// server runs an external NBD server on a unix socket until the test
// ends; it skips the test when the tool is missing.
func server(t testing.TB, name string, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s not installed", name)
	}
	sock := filepath.Join(t.TempDir(), "s.sock")
	for i, a := range args {
		args[i] = strings.ReplaceAll(a, "SOCK", sock)
	}
	cmd := exec.Command(name, args...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(unix.SIGTERM)
		cmd.Wait()
	})
	for i := 0; i < 200; i++ {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return sock
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s did not create its socket", name)
	return ""
}

func image(t testing.TB, size int64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "img")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, size); err != nil {
		t.Fatal(err)
	}
	return p
}

func uri(sock string) string { return "nbd+unix:///?socket=" + sock }

func mustOpen(t testing.TB, spec blk.Spec) *blk.Backend {
	t.Helper()
	b, err := open(t, spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// run runs fn as one request on b's loop.
func run(t testing.TB, b *blk.Backend, fn func(co *blk.Co) error) error {
	t.Helper()
	var err error
	co := b.Loop().Spawn("test", func(co *blk.Co) { err = fn(co) })
	if rerr := b.Loop().RunUntil("test", co.Done); rerr != nil {
		t.Fatal(rerr)
	}
	return err
}

func TestConformanceQemuNBD(t *testing.T) {
	blktest.Run(t, func(t *testing.T) *blk.Backend {
		sock := server(t, "qemu-nbd", "-t", "-f", "raw", "-k", "SOCK", image(t, blktest.MinLength*4))
		b, err := open(t, blk.Spec{Filename: uri(sock), Format: "raw"})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}, blktest.FixedLength())
}

func TestConformanceNbdkitMemory(t *testing.T) {
	blktest.Run(t, func(t *testing.T) *blk.Backend {
		sock := server(t, "nbdkit", "-f", "-U", "SOCK", "memory", fmt.Sprint(blktest.MinLength*4))
		b, err := open(t, blk.Spec{Filename: uri(sock), Format: "raw"})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}, blktest.FixedLength())
}

func TestNbdkitFile(t *testing.T) {
	img := image(t, 1<<20)
	sock := server(t, "nbdkit", "-f", "-U", "SOCK", "file", img)
	b := mustOpen(t, blk.Spec{Filename: uri(sock), Format: "raw"})
	data := bytes.Repeat([]byte{7}, 4096)
	if err := run(t, b, func(co *blk.Co) error { return b.PWrite(co, 8192, data, 0) }); err != nil {
		t.Fatal(err)
	}
	if err := run(t, b, func(co *blk.Co) error { return b.Flush(co) }); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(img)
	if !bytes.Equal(got[8192:8192+4096], data) {
		t.Fatal("data did not reach the file")
	}
}

// TestBlockSizeRMW: a server with a 4 KiB minimum block size refuses
// unaligned requests, so gio must read-modify-write.
func TestBlockSizeRMW(t *testing.T) {
	sock := server(t, "nbdkit", "-f", "-U", "SOCK", "--filter=blocksize-policy", "memory", "1M",
		"blocksize-minimum=4096", "blocksize-error-policy=error")
	b := mustOpen(t, blk.Spec{Filename: uri(sock), Format: "raw"})
	if a := b.Root.File().Node.Limits().RequestAlignment; a != 4096 {
		t.Fatalf("request alignment %d, want 4096", a)
	}
	if err := run(t, b, func(co *blk.Co) error { return b.PWrite(co, 100, []byte("hello"), 0) }); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 7)
	if err := run(t, b, func(co *blk.Co) error { return b.PRead(co, 99, buf) }); err != nil {
		t.Fatal(err)
	}
	if string(buf) != "\x00hello\x00" {
		t.Fatalf("read %q", buf)
	}
}

// TestServerErrno: server errors reach the caller as QEMU maps them.
func TestServerErrno(t *testing.T) {
	sock := server(t, "nbdkit", "-f", "-U", "SOCK", "--filter=error", "memory", "1M",
		"error-pwrite=ENOSPC", "error-pwrite-rate=100%", "error-pread=EPERM", "error-pread-rate=100%")
	b := mustOpen(t, blk.Spec{Filename: uri(sock), Format: "raw"})
	err := run(t, b, func(co *blk.Co) error { return b.PWrite(co, 0, make([]byte, 512), 0) })
	if !errors.Is(err, unix.ENOSPC) {
		t.Errorf("write: %v, want ENOSPC", err)
	}
	err = run(t, b, func(co *blk.Co) error { return b.PRead(co, 0, make([]byte, 512)) })
	if !errors.Is(err, unix.EPERM) {
		t.Errorf("read: %v, want EPERM", err)
	}
}

func TestExportErrors(t *testing.T) {
	sock := server(t, "qemu-nbd", "-t", "-r", "-x", "foo", "-f", "raw", "-k", "SOCK", image(t, 1<<20))
	_, err := open(t, blk.Spec{Filename: "nbd+unix:///bar?socket=" + sock, Format: "raw"})
	if want := "Requested export not available\nserver reported: export 'bar' not present"; err == nil || err.Error() != want {
		t.Errorf("unknown export: %v", err)
	}
	_, err = open(t, blk.Spec{Filename: "nbd+unix:///foo?socket=" + sock, Format: "raw"})
	if want := "Could not open image: Permission denied"; err == nil || !strings.EqualFold(err.Error(), want) {
		t.Errorf("read-only export opened writable: %v", err)
	}
	spec := blk.Spec{Filename: "nbd+unix:///foo?socket=" + sock, Format: "raw"}
	spec.Flags.ReadOnly = true
	mustOpen(t, spec)
}

// TestQcow2OverNBD: a qcow2 image whose file child is an NBD export,
// with blkdebug in between.
func TestQcow2OverNBD(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed")
	}
	img := filepath.Join(t.TempDir(), "q.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-f", "qcow2", img, "4M").CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	// An export cannot grow: give the image room for its clusters.
	if err := os.Truncate(img, 8<<20); err != nil {
		t.Fatal(err)
	}
	sock := server(t, "qemu-nbd", "-t", "-f", "raw", "-k", "SOCK", img)
	for _, name := range []string{uri(sock), "blkdebug::" + uri(sock)} {
		b := mustOpen(t, blk.Spec{Filename: name, Format: "qcow2"})
		data := bytes.Repeat([]byte{9}, 65536)
		if err := run(t, b, func(co *blk.Co) error { return b.PWrite(co, 1<<20, data, 0) }); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(data))
		if err := run(t, b, func(co *blk.Co) error { return b.PRead(co, 1<<20, got) }); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) {
			t.Fatal("qcow2 over nbd: data mismatch")
		}
		b.Close()
	}
	if out, err := exec.Command("qemu-img", "check", "-U", img).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img check: %v: %s", err, out)
	}
}

func TestConformanceQemuStorageDaemon(t *testing.T) {
	blktest.Run(t, func(t *testing.T) *blk.Backend {
		img := image(t, blktest.MinLength*4)
		sock := server(t, "qemu-storage-daemon",
			"--blockdev", "driver=file,node-name=f,filename="+img,
			"--nbd-server", "addr.type=unix,addr.path=SOCK",
			"--export", "type=nbd,id=e,node-name=f,name=exp,writable=on")
		b, err := open(t, blk.Spec{Filename: "nbd+unix:///exp?socket=" + sock, Format: "raw"})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}, blktest.FixedLength())
}
