package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Image locking against the real QEMU tools: gio and qemu-io, qemu-img,
// qemu-nbd and qemu-system-x86_64 each hold an image while the other
// side tries to use it. Holders are driven through a pipe: a command is
// done when the holder prints its next prompt, so no test sleeps.

// lockTool returns the path of a QEMU tool or skips the test.
func lockTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed", name)
	}
	return p
}

// procLocks lists the lock bytes (QEMU's 100+ and 200+ ranges) that
// some descriptor holds on the file at path. Each byte is asked with
// F_OFD_GETLK on a descriptor of our own, which answers atomically;
// reading /proc/locks instead can miss lines when other tests' locks
// come and go during the read (seq_file walks a changing list).
func procLocks(t *testing.T, path string) []int {
	t.Helper()
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	out := []int{}
	for _, base := range []int{100, 200} {
		for b := base; b < base+8; b++ {
			lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: int64(b), Len: 1}
			if err := unix.FcntlFlock(uintptr(fd), unix.F_OFD_GETLK, &lk); err != nil {
				t.Skipf("no OFD locks: %v", err)
			}
			if lk.Type != unix.F_UNLCK {
				out = append(out, b)
			}
		}
	}
	return out
}

// holder is a process holding an image open.
type holder struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    *bufio.Reader
	prompt string
	stderr bytes.Buffer
	done   chan error
}

// hold starts a program that keeps the image open and reads commands
// from a pipe (qemu-io, gio, or qemu-system with -monitor stdio), runs
// cmds one by one, waiting for the prompt after each, and returns once
// the last one is done. The process ends at the end of the test.
func hold(t *testing.T, dir, prompt, bin string, args []string, cmds ...string) *holder {
	t.Helper()
	h := &holder{t: t, prompt: prompt, done: make(chan error, 1)}
	h.cmd = exec.Command(bin, args...)
	h.cmd.Dir = dir
	h.cmd.Stderr = &h.stderr
	var err error
	if h.stdin, err = h.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := h.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	h.out = bufio.NewReader(stdout)
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.stop)
	h.waitPrompt()
	for _, c := range cmds {
		fmt.Fprintln(h.stdin, c)
		h.waitPrompt()
	}
	// Whatever it prints later must not block it.
	go func() { _, _ = io.Copy(io.Discard, h.out) }()
	return h
}

// waitPrompt reads the holder's output up to its next prompt.
func (h *holder) waitPrompt() {
	h.t.Helper()
	var got []byte
	timeout := time.AfterFunc(20*time.Second, func() { _ = h.cmd.Process.Kill() })
	defer timeout.Stop()
	for !bytes.HasSuffix(got, []byte(h.prompt)) {
		b, err := h.out.ReadByte()
		if err != nil {
			h.t.Fatalf("%s exited before its prompt: output %q, stderr %q", filepath.Base(h.cmd.Path), got, h.stderr.String())
		}
		got = append(got, b)
	}
}

func (h *holder) stop() {
	h.stdin.Close()
	timer := time.AfterFunc(10*time.Second, func() { _ = h.cmd.Process.Kill() })
	_ = h.cmd.Wait()
	timer.Stop()
}

// holdDaemon starts a program without a command prompt (qemu-nbd) and
// waits until the image has the lock bytes want.
func holdDaemon(t *testing.T, dir, img string, want []int, bin string, args ...string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(20 * time.Second)
	for fmt.Sprint(procLocks(t, filepath.Join(dir, img))) != fmt.Sprint(want) {
		if time.Now().After(deadline) {
			t.Fatalf("%s never locked %v (locks: %v)", bin, want, procLocks(t, filepath.Join(dir, img)))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// lockRun runs a program to completion: combined, filtered output and
// exit status.
func lockRun(t *testing.T, dir, bin string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Stdin = strings.NewReader("quit\n")
	err := cmd.Run()
	rc := 0
	if ee, ok := err.(*exec.ExitError); ok {
		rc = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return filterQemuIO(out.String()), rc
}

// lockImage creates dir/name as a 1 MiB raw image.
func lockImage(t *testing.T, dir, name string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
}

const lockHint = "\nIs another process using the image [img.raw]?\n"

// TestLockBytesMatchQemuIO compares the bytes gio locks with those
// qemu-io locks, for the same options and commands.
func TestLockBytesMatchQemuIO(t *testing.T) {
	t.Parallel()
	qemuIO := lockTool(t, "qemu-io")
	for _, tc := range []struct {
		name string
		args []string
		cmds []string
		want string
	}{
		{"read-write", []string{"-f", "raw", "img.raw"}, nil, "[100 101]"},
		{"read-only", []string{"-r", "-f", "raw", "img.raw"}, nil, "[100]"},
		{"force-share", []string{"-U", "-r", "-f", "raw", "img.raw"}, nil, "[100]"},
		{"probed", []string{"img.raw"}, nil, "[100 101]"},
		{"blkdebug", []string{"-f", "raw", "blkdebug::img.raw"}, nil, "[100 101]"},
		{"locking=off", []string{"--image-opts", "driver=raw,file.filename=img.raw,file.locking=off"}, nil, "[]"},
		{"unshare write", []string{"--image-opts", "driver=raw,file.driver=blkdebug,file.image.filename=img.raw,file.unshare-child-perms.0=write"}, nil, "[100 101 201]"},
		{"take resize, unshare consistent read", []string{"--image-opts", "driver=raw,file.driver=blkdebug,file.image.filename=img.raw," +
			"file.take-child-perms.0=resize,file.unshare-child-perms.0=consistent-read"}, nil, "[100 101 103 200]"},
		{"truncate", []string{"-f", "raw", "img.raw"}, []string{"truncate 2M"}, "[100 101 103]"},
		{"reopen -r", []string{"-f", "raw", "img.raw"}, []string{"reopen -r"}, "[100]"},
		{"truncate, reopen -r", []string{"-f", "raw", "img.raw"}, []string{"truncate 2M", "reopen -r"}, "[100 103]"},
		{"reopen -w", []string{"-r", "-f", "raw", "img.raw"}, []string{"reopen -w"}, "[100]"},
		{"reopen -w, write", []string{"-r", "-f", "raw", "img.raw"}, []string{"reopen -w", "write 0 512"}, "[100 101]"},
		{"close", []string{"-f", "raw", "img.raw"}, []string{"close"}, "[]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, p := range []struct{ name, bin string }{{"qemu-io", qemuIO}, {"gio", gioBin}} {
				dir := t.TempDir()
				lockImage(t, dir, "img.raw")
				h := hold(t, dir, "qemu-io> ", p.bin, tc.args, tc.cmds...)
				if got := fmt.Sprint(procLocks(t, filepath.Join(dir, "img.raw"))); got != tc.want {
					t.Errorf("%s: locked bytes %s, want %s", p.name, got, tc.want)
				}
				h.stop()
				if got := procLocks(t, filepath.Join(dir, "img.raw")); len(got) != 0 {
					t.Errorf("%s: locked bytes %v after exit", p.name, got)
				}
			}
		})
	}
}

// TestLockQemuHoldsGioOpens: a QEMU program holds the image; gio and
// qemu-io try the same commands and must say the same.
func TestLockQemuHoldsGioOpens(t *testing.T) {
	t.Parallel()
	qemuIO := lockTool(t, "qemu-io")
	unshare := func(perms ...string) []string {
		o := "driver=raw,file.driver=blkdebug,file.image.filename=img.raw"
		for i, p := range perms {
			o += fmt.Sprintf(",file.unshare-child-perms.%d=%s", i, p)
		}
		return []string{"--image-opts", o}
	}
	type opener struct {
		args []string
		want string // gio's and qemu-io's output, filtered
		rc   int
	}
	wrote := "wrote 512/512 bytes at offset 0\n512 bytes, X ops; XX:XX:XX.X (XXX YYY/sec and XXX ops/sec)\n"
	read := "read 512/512 bytes at offset 0\n512 bytes, X ops; XX:XX:XX.X (XXX YYY/sec and XXX ops/sec)\n"
	for _, tc := range []struct {
		name    string
		holder  func(t *testing.T, dir string)
		openers []opener
	}{
		{"qemu-io read-write (shares everything)", func(t *testing.T, dir string) {
			hold(t, dir, "qemu-io> ", qemuIO, []string{"-f", "raw", "img.raw"})
		}, []opener{
			{[]string{"-f", "raw", "-c", "write 0 512", "img.raw"}, wrote, 0},
			{[]string{"-f", "raw", "-c", "truncate 2M", "img.raw"}, "", 0},
		}},
		{"qemu-io not sharing write", func(t *testing.T, dir string) {
			hold(t, dir, "qemu-io> ", qemuIO, unshare("write"))
		}, []opener{
			{[]string{"-f", "raw", "-c", "read 0 512", "img.raw"}, "qemu-io: can't open device img.raw: Failed to get \"write\" lock" + lockHint, 1},
			{[]string{"-r", "-f", "raw", "-c", "read 0 512", "img.raw"}, read, 0},
			{[]string{"-U", "-r", "-f", "raw", "-c", "read 0 512", "img.raw"}, read, 0},
			// (stderr is unbuffered, stdout leaves at exit)
			{[]string{"-r", "-f", "raw", "-c", "reopen -w", "-c", "read 0 512", "-c", "write 0 512", "-c", "discard 0 512", "-c", "truncate 2M", "img.raw"},
				strings.Repeat("qemu-io: Failed to get \"write\" lock"+lockHint, 3) + read, 1},
		}},
		{"qemu-io not sharing consistent read", func(t *testing.T, dir string) {
			hold(t, dir, "qemu-io> ", qemuIO, unshare("consistent-read"))
		}, []opener{
			{[]string{"-r", "-f", "raw", "-c", "read 0 512", "img.raw"}, "qemu-io: can't open device img.raw: Failed to get \"consistent read\" lock" + lockHint, 1},
			{[]string{"-U", "-r", "-f", "raw", "-c", "read 0 512", "img.raw"}, "qemu-io: can't open device img.raw: Failed to get \"consistent read\" lock" + lockHint, 1},
		}},
		{"qemu-nbd (does not share resize)", func(t *testing.T, dir string) {
			nbd := lockTool(t, "qemu-nbd")
			holdDaemon(t, dir, "img.raw", []int{100, 101, 203}, nbd, "-k", filepath.Join(dir, "nbd.sock"), "-f", "raw", "img.raw")
		}, []opener{
			{[]string{"-f", "raw", "-c", "write 0 512", "img.raw"}, wrote, 0},
			{[]string{"-f", "raw", "-c", "truncate 2M", "-c", "length", "img.raw"}, "qemu-io: Failed to get \"resize\" lock" + lockHint + "1 MiB\n", 1},
		}},
		{"qemu-system-x86_64 guest disk", func(t *testing.T, dir string) {
			qs := lockTool(t, "qemu-system-x86_64")
			// The monitor prompts before the machine is built; its
			// answer to "info block" comes once the drive is open.
			hold(t, dir, "(qemu) ", qs, []string{"-S", "-nodefaults", "-display", "none", "-monitor", "stdio", "-drive", "file=img.raw,format=raw"}, "info block")
		}, []opener{
			{[]string{"-f", "raw", "-c", "write 0 512", "img.raw"}, "qemu-io: can't open device img.raw: Failed to get \"write\" lock" + lockHint, 1},
			{[]string{"-r", "-f", "raw", "-c", "read 0 512", "img.raw"}, read, 0},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			lockImage(t, dir, "img.raw")
			tc.holder(t, dir)
			for _, o := range tc.openers {
				for _, p := range []struct{ name, bin string }{{"qemu-io", qemuIO}, {"gio", gioBin}} {
					got, rc := lockRun(t, dir, p.bin, o.args...)
					if got != o.want || rc != o.rc {
						t.Errorf("%s %q: rc %d, output\n%s\nwant rc %d, output\n%s", p.name, o.args, rc, got, o.rc, o.want)
					}
				}
			}
		})
	}
}

// TestLockGioHoldsQemuOpens: gio holds the image; the QEMU tools see its
// locks exactly as they see qemu-io's.
func TestLockGioHoldsQemuOpens(t *testing.T) {
	t.Parallel()
	qemuIO := lockTool(t, "qemu-io")
	qemuImg := lockTool(t, "qemu-img")
	type opener struct {
		tool string
		args []string
		want string // "" means: the same as with qemu-io as the holder
		rc   int
		// contains: want is a line of the output (qemu-system prints
		// its monitor banner first)
		contains bool
	}
	convertFails := "qemu-img: Could not open 'img.raw': Failed to get shared \"write\" lock" + lockHint
	for _, tc := range []struct {
		name    string
		args    []string
		cmds    []string
		openers []opener
	}{
		{"read-write", []string{"-f", "raw", "img.raw"}, nil, []opener{
			{"qemu-io", []string{"-f", "raw", "-c", "write -q 0 512", "img.raw"}, "", 0, false},
			{"qemu-img", []string{"convert", "-O", "raw", "img.raw", "copy.raw"}, convertFails, 1, false},
			{"qemu-img", []string{"convert", "-U", "-O", "raw", "img.raw", "copy.raw"}, "", 0, false},
			{"qemu-img", []string{"check", "-f", "qcow2", "q.qcow2"}, "qemu-img: Could not open 'q.qcow2': Failed to get shared \"write\" lock\nIs another process using the image [q.qcow2]?\n", 1, false},
			{"qemu-system-x86_64", []string{"-S", "-nodefaults", "-display", "none", "-monitor", "stdio", "-drive", "file=img.raw,format=raw"},
				"qemu-system-x86_64: Failed to get shared \"write\" lock" + lockHint, 1, true},
		}},
		{"read-only", []string{"-r", "-f", "raw", "img.raw"}, nil, []opener{
			{"qemu-io", []string{"-f", "raw", "-c", "write -q 0 512", "img.raw"}, "", 0, false},
			{"qemu-img", []string{"convert", "-O", "raw", "img.raw", "copy.raw"}, "", 0, false},
			{"qemu-img", []string{"check", "-f", "qcow2", "q.qcow2"}, "", 0, false},
			{"qemu-system-x86_64", []string{"-S", "-nodefaults", "-display", "none", "-monitor", "stdio", "-drive", "file=img.raw,format=raw"}, "", 0, false},
		}},
		{"read-only, reopened read-write and written", []string{"-r", "-f", "raw", "img.raw"}, []string{"reopen -w", "write -q 0 512"}, []opener{
			{"qemu-img", []string{"convert", "-O", "raw", "img.raw", "copy.raw"}, convertFails, 1, false},
		}},
		{"not sharing write", []string{"--image-opts", "driver=raw,file.driver=blkdebug,file.image.filename=img.raw,file.unshare-child-perms.0=write"}, nil, []opener{
			{"qemu-io", []string{"-f", "raw", "-c", "write 0 512", "img.raw"}, "qemu-io: can't open device img.raw: Failed to get \"write\" lock" + lockHint, 1, false},
			{"qemu-io", []string{"-r", "-f", "raw", "-c", "read -q 0 512", "img.raw"}, "", 0, false},
		}},
		{"locking=off", []string{"--image-opts", "driver=raw,file.filename=img.raw,file.locking=off"}, nil, []opener{
			{"qemu-img", []string{"convert", "-O", "raw", "img.raw", "copy.raw"}, "", 0, false},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, o := range tc.openers {
				bin, err := exec.LookPath(o.tool)
				if err != nil {
					t.Logf("%s not installed: skipped", o.tool)
					continue
				}
				// The same opener against qemu-io and against gio as the
				// holder: the results must agree.
				var results [2]string
				var rcs [2]int
				for i, p := range []string{qemuIO, gioBin} {
					dir := t.TempDir()
					lockImage(t, dir, "img.raw")
					if out, rc := lockRun(t, dir, qemuImg, "create", "-q", "-f", "qcow2", "q.qcow2", "1M"); rc != 0 {
						t.Fatalf("qemu-img create: %s", out)
					}
					args := tc.args
					if o.args[len(o.args)-1] == "q.qcow2" {
						args = []string{"-f", "raw", "q.qcow2"}
						if tc.args[0] == "-r" {
							args = []string{"-r", "-f", "raw", "q.qcow2"}
						}
					}
					h := hold(t, dir, "qemu-io> ", p, args, tc.cmds...)
					results[i], rcs[i] = lockRun(t, dir, bin, o.args...)
					h.stop()
				}
				want, wantRC := o.want, o.rc
				if want == "" {
					want = results[0]
				}
				match := results[1] == want
				if o.contains {
					match = strings.Contains(results[1], want)
				}
				if !match || rcs[1] != wantRC {
					t.Errorf("gio holds, %s %q: rc %d, output\n%s\nwant rc %d, output\n%s", o.tool, o.args, rcs[1], results[1], wantRC, want)
				}
				if results[0] != results[1] || rcs[0] != rcs[1] {
					t.Errorf("%s %q: with qemu-io holding: rc %d, output\n%s\nwith gio holding: rc %d, output\n%s",
						o.tool, o.args, rcs[0], results[0], rcs[1], results[1])
				}
			}
		})
	}
}

// TestLockBytesVmdk compares the bytes gio and qemu-io lock on a vmdk's
// files: QEMU's vmdk takes bdrv_default_perms_for_storage on its
// descriptor (metadata) and extents, so resize is taken and not shared
// there, and write is shared only on a flat extent (data alone).
func TestLockBytesVmdk(t *testing.T) {
	t.Parallel()
	qemuIO := lockTool(t, "qemu-io")
	qemuImg := lockTool(t, "qemu-img")
	for _, tc := range []struct {
		subformat string
		args      []string
		want      map[string]string // file -> locked bytes
	}{
		{"monolithicFlat", []string{"img.vmdk"}, map[string]string{"img.vmdk": "[100 101 103 201 203]", "img-flat.vmdk": "[100 101 103 203]"}},
		{"monolithicFlat", []string{"-r", "img.vmdk"}, map[string]string{"img.vmdk": "[100 201 203]", "img-flat.vmdk": "[100 203]"}},
		{"twoGbMaxExtentSparse", []string{"img.vmdk"}, map[string]string{"img.vmdk": "[100 101 103 201 203]", "img-s001.vmdk": "[100 101 103 201 203]"}},
		{"monolithicSparse", []string{"img.vmdk"}, map[string]string{"img.vmdk": "[100 101 103 201 203]"}},
	} {
		t.Run(tc.subformat+strings.Join(tc.args, ""), func(t *testing.T) {
			t.Parallel()
			for _, p := range []struct{ name, bin string }{{"qemu-io", qemuIO}, {"gio", gioBin}} {
				dir := t.TempDir()
				if out, err := exec.Command(qemuImg, "create", "-q", "-f", "vmdk", "-o", "subformat="+tc.subformat, filepath.Join(dir, "img.vmdk"), "1M").CombinedOutput(); err != nil {
					t.Fatalf("qemu-img create: %v: %s", err, out)
				}
				h := hold(t, dir, "qemu-io> ", p.bin, tc.args)
				for f, want := range tc.want {
					if got := fmt.Sprint(procLocks(t, filepath.Join(dir, f))); got != want {
						t.Errorf("%s: %s: locked bytes %s, want %s", p.name, f, got, want)
					}
				}
				h.stop()
			}
		})
	}
}
