package main

// The command line a new user meets: subcommand flags, honest refusals,
// create's files, scratch images that go away on every signal.

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// gio runs the gio binary in dir with stdin and returns its combined
// output and exit status (-1 when killed by a signal).
func gio(t *testing.T, dir, stdin string, extraEnv []string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(gioBin, args...)
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Env = append(os.Environ(), extraEnv...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatalf("gio %q: %v", args, err)
		}
	}
	return buf.String(), cmd.ProcessState.ExitCode()
}

func TestSubcommandFlags(t *testing.T) {
	dir := t.TempDir()
	script := "create s 64k\nopen -o driver=raw s\nwrite -P 0xab 0 512   # a trailing comment\nread -P 0xab 0 512\n"
	os.WriteFile(filepath.Join(dir, "x.gio"), []byte(script), 0o644)
	os.WriteFile(filepath.Join(dir, "img.raw"), make([]byte, 65536), 0o644)
	os.WriteFile(filepath.Join(dir, "r.gio"), []byte("read -P 0 0 512\nwrite -P 1 0 512\n"), 0o644)
	for _, c := range []struct {
		args []string
		rc   int
		want []string
	}{
		{[]string{"run", "-h"}, 0, []string{"usage: gio run", "-x, --echo"}},
		{[]string{"run", "--help"}, 0, []string{"usage: gio run"}},
		{[]string{"test", "-h"}, 0, []string{"usage: gio test"}},
		{[]string{"fsx", "-h"}, 0, []string{"usage: gio fsx"}},
		{[]string{"help"}, 0, []string{"gio run", "gio test", "gio fsx", "gio bench", "--clock=", "--record", "--color="}},
		{[]string{"run", "--clock=real", "x.gio"}, 0, []string{"read 512/512 bytes at offset 0"}},
		{[]string{"--clock=real", "run", "x.gio"}, 0, []string{"read 512/512 bytes at offset 0"}},
		{[]string{"run", "x.gio", "--clock=bogus"}, 2, []string{"invalid clock option: bogus"}},
		{[]string{"run", "-x", "x.gio"}, 0, []string{"gio> create s 64k\ngio> open -o driver=raw s\ngio> write -P 0xab 0 512   # a trailing comment\nwrote 512/512", "gio: the read-back check passed\n"}},
		{[]string{"run", "-f", "raw", "r.gio", "img.raw"}, 0, []string{"wrote 512/512 bytes at offset 0"}},
		{[]string{"run", "-r", "-f", "raw", "r.gio", "img.raw"}, 1, []string{"r.gio:2: qemu-io: Block node is read-only"}},
		{[]string{"run", "-f", "raw", "r.gio"}, 2, []string{"there is none"}},
		{[]string{"run", "-t", "bogus", "r.gio", "img.raw"}, 2, []string{"Invalid cache option: bogus"}},
		{[]string{"test", "-run", "nomatch", "."}, 1, []string{"nothing ran"}},
	} {
		out, rc := gio(t, dir, "", nil, c.args...)
		if rc != c.rc {
			t.Errorf("gio %q: exit status %d, want %d\n%s", c.args, rc, c.rc, out)
		}
		for _, w := range c.want {
			if !strings.Contains(out, w) {
				t.Errorf("gio %q: output lacks %q:\n%s", c.args, w, out)
			}
		}
		if strings.Contains(out, "WARNING: Image format") && c.args[1] == "-f" {
			t.Errorf("gio %q: -f raw did not reach the image:\n%s", c.args, out)
		}
	}
}

func TestHonestRefusals(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		rc   int
		want string
	}{
		{[]string{"-T", "no_such_event", "-c", "quit"}, 0, "qemu-io: warning: trace event 'no_such_event' does not exist"},
		{[]string{"--object", "throttle-group,id=t0", "-c", "quit"}, 1, "gio: --object throttle-group: gio has no 'throttle-group' objects yet"},
		{[]string{"--object", "qom-type=secret,id=sec0", "-c", "quit"}, 1, "qemu-io: Either 'file' or 'data' must be provided"},
		{[]string{"-c", "open ssh://localhost/x"}, 1, "qemu-io: can't open device ssh://localhost/x: Unknown protocol 'ssh'"},
		{[]string{"-c", "open -o driver=raw http://x/y"}, 1, "Unknown protocol 'http'"},
		// NBD is there now, with QEMU's messages.
		{[]string{"-c", "open nbd://localhost:1/x"}, 1, "qemu-io: can't open device nbd://localhost:1/x: Failed to connect to 'localhost:1': Connection refused"},
		{[]string{"-c", "open -o driver=raw nbd+unix:///x"}, 1, "qemu-io: can't open device nbd+unix:///x: No valid URL specified"},
		{[]string{"-c", "create -f vdmk x 1M"}, 1, "gio: create: unsupported format 'vdmk'"},
		{[]string{"-c", "create a:b 1M"}, 1, "gio: create: 'a:b': scratch image names cannot contain"},
		{[]string{"-c", "create -f qcow2 -o ,, x 1M"}, 1, "gio: warning: short-form boolean option"},
		{[]string{"-c", "create -f qcow2 -o cluster_size=3 x 1M"}, 1, "gio: create: x: Cluster size must be"},
	} {
		out, rc := gio(t, dir, "", nil, c.args...)
		if strings.HasPrefix(c.args[1], "create ") && strings.Contains(out, "qemu-io:") {
			t.Errorf("gio %q: a create message says qemu-io:\n%s", c.args, out)
		}
		if rc != c.rc || !strings.Contains(out, c.want) {
			t.Errorf("gio %q: status %d, output:\n%s\nwant status %d and %q", c.args, rc, out, c.rc, c.want)
		}
	}
}

func TestCreateFiles(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "images"), 0o755)
	// A path makes a real file that stays, as qemu-img create does.
	out, rc := gio(t, dir, "", nil, "-c", "create images/x.img 1M", "-c", "create -f qcow2 ./q.qcow2 1M",
		"-c", "open -o driver=raw images/x.img", "-c", "write -q -P 7 0 512")
	if rc != 0 || out != "" {
		t.Fatalf("status %d:\n%s", rc, out)
	}
	if st, err := os.Stat(filepath.Join(dir, "images/x.img")); err != nil || st.Size() != 1<<20 {
		t.Fatalf("images/x.img: %v %v", st, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "images/x.img")); b[0] != 7 {
		t.Errorf("the write did not reach images/x.img")
	}
	if out, err := exec.Command("qemu-img", "info", filepath.Join(dir, "q.qcow2")).CombinedOutput(); err == nil && !strings.Contains(string(out), "file format: qcow2") {
		t.Errorf("q.qcow2:\n%s", out)
	}
	// The open image is not wiped.
	out, rc = gio(t, dir, "", nil, "-c", "open -o driver=raw images/x.img", "-c", "create images/x.img 1M",
		"-c", "close", "-c", "create s 64k", "-c", "open -o driver=raw s", "-c", "create s 64k")
	if rc != 1 || strings.Count(out, "is the open image") != 2 {
		t.Errorf("create over the open image: status %d:\n%s", rc, out)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "images/x.img")); b[0] != 7 {
		t.Errorf("create over the open image wiped it")
	}
	// A scratch name that hides a file in the working directory says so.
	os.WriteFile(filepath.Join(dir, "img"), []byte("mine"), 0o644)
	out, rc = gio(t, dir, "", nil, "-c", "create img 64k")
	if rc != 0 || !strings.Contains(out, "gio: create: scratch image 'img' hides the file ./img") {
		t.Errorf("status %d:\n%s", rc, out)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "img")); string(b) != "mine" {
		t.Errorf("./img changed: %q", b)
	}
}

// TestScratchRemovedOnSignals: scratch images go when gio is ended by
// any signal it can catch, and by sigraise and abort.
func TestScratchRemovedOnSignals(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGINT, syscall.SIGUSR2} {
		t.Run(sig.String(), func(t *testing.T) {
			scratch := t.TempDir()
			cmd := exec.Command(gioBin, "--clock=real")
			cmd.Dir = t.TempDir()
			cmd.Env = append(os.Environ(), "GIO_SCRATCH_DIR="+scratch)
			cmd.Stdin = strings.NewReader("create img 64k\nsleep 100000\n")
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			waitScratch(t, scratch, true)
			cmd.Process.Signal(sig)
			err := cmd.Wait()
			ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
			if err == nil || !ws.Signaled() || ws.Signal() != sig {
				t.Errorf("gio did not die of %v: %v", sig, err)
			}
			waitScratch(t, scratch, false)
		})
	}
	for _, c := range [][]string{{"-c", "create img 64k", "-c", "sigraise 15"}, {"-c", "create img 64k", "-c", "sigraise 3"}, {"-c", "create img 64k", "-c", "abort"}} {
		scratch := t.TempDir()
		gio(t, t.TempDir(), "", []string{"GIO_SCRATCH_DIR=" + scratch}, c...)
		waitScratch(t, scratch, false)
	}
}

// waitScratch waits until dir holds a scratch directory with an image
// (present) or nothing at all (!present).
func waitScratch(t *testing.T, dir string, present bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		m, _ := filepath.Glob(filepath.Join(dir, "gio-scratch-*", "img"))
		all, _ := os.ReadDir(dir)
		if present && len(m) == 1 || !present && len(all) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("scratch dir %s: %d images, %d entries; want present=%v", dir, len(m), len(all), present)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestReadmeDemo: the README's first command is the demo, and the demo
// tells its story in one screen: the lost update without serialisation,
// and a verdict on the read-back checks with it.
func TestReadmeDemo(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, block, _ := strings.Cut(string(readme), "```sh\n")
	first, _, _ := strings.Cut(block, "\n")
	const prefix = "go run ./cmd/gio "
	if !strings.HasPrefix(first, prefix) {
		t.Fatalf("README's first command is %q", first)
	}
	args := strings.Fields(strings.TrimPrefix(strings.SplitN(first, "#", 2)[0], prefix))
	out, rc := gio(t, "../..", "", nil, args...)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if rc != 0 || len(lines) > 60 {
		t.Errorf("demo: status %d, %d lines (one screen: 60 at most)", rc, len(lines))
	}
	if last := lines[len(lines)-1]; !regexp.MustCompile(`^gio: all [0-9]+ read-back checks passed$`).MatchString(last) {
		t.Errorf("demo ends with %q", last)
	}
	for _, w := range []string{"gio> ", "serialise=off", "lost update", "00001400:  00 00 00 00"} {
		if !strings.Contains(out, w) {
			t.Errorf("demo output lacks %q:\n%s", w, out)
		}
	}
}
