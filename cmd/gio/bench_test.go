package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// runCompleted is the timing line of qemu-img bench; only its number
// varies.
var runCompleted = regexp.MustCompile(`(?m)^Run completed in [0-9]+\.[0-9]{3} seconds\.$`)

func filterBench(s string) string {
	return runCompleted.ReplaceAllString(s, "Run completed in X seconds.")
}

// TestBenchDiff runs "gio bench" and "qemu-img bench" with the same
// arguments on the same kind of image and compares their output (stdout
// and stderr in one pipe, as C stdio buffers them) and exit status. No
// timing is compared: the run's duration is filtered out.
func TestBenchDiff(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not on PATH")
	}
	const flushErrCfg = "[inject-error]\nevent = \"flush_to_disk\"\nerrno = \"5\"\n"
	const writeErrCfg = "[inject-error]\nevent = \"write_aio\"\nerrno = \"28\"\nonce = \"on\"\n"
	cases := []struct {
		name string
		args []string
	}{
		{"null-default", []string{"-c", "1000", "-f", "raw", "null-co://"}},
		{"null-probed", []string{"-c", "10", "null-co://"}},
		{"null-depth1", []string{"-c", "100", "-d", "1", "-f", "raw", "null-co://"}},
		{"null-write-flush", []string{"-c", "100", "-d", "4", "-w", "--flush-interval=8", "-f", "raw", "null-co://"}},
		{"null-write-nodrain", []string{"-c", "100", "-d", "4", "-w", "--flush-interval=8", "--no-drain", "-f", "raw", "null-co://"}},
		{"null-sizes", []string{"-c", "10", "-s", "1.5k", "-S", "64k", "-o", "0x10k", "--pattern=0x10", "-f", "raw", "null-co://"}},
		{"null-zero-count", []string{"-c", "0", "-f", "raw", "null-co://"}},
		{"null-past-end", []string{"-c", "10", "-o", "2G", "-f", "raw", "null-co://"}},
		{"file-read", []string{"-c", "300", "-d", "8", "-f", "raw", "img.raw"}},
		{"file-write", []string{"-c", "300", "-d", "8", "-w", "--pattern=0xa5", "-S", "8k", "-f", "raw", "img.raw"}},
		{"file-write-wrap", []string{"-c", "300", "-w", "-o", "1m", "-s", "64k", "-f", "raw", "img.raw"}},
		{"file-direct-threads", []string{"-c", "300", "-d", "8", "-w", "-t", "none", "-i", "threads", "-f", "raw", "img.raw"}},
		{"file-direct-uring", []string{"-c", "300", "-d", "8", "-t", "none", "-i", "io_uring", "-f", "raw", "img.raw"}},
		{"file-writethrough", []string{"-c", "20", "-d", "2", "-w", "-t", "writethrough", "-f", "raw", "img.raw"}},
		{"file-past-end", []string{"-c", "10", "-w", "-o", "2047k", "-f", "raw", "img.raw"}},
		{"flush-error", []string{"-c", "20", "-d", "2", "-w", "--flush-interval=4", "-f", "raw", "blkdebug:flush.cfg:img.raw"}},
		{"write-error", []string{"-c", "20", "-d", "2", "-w", "-f", "raw", "blkdebug:write.cfg:img.raw"}},
		{"bad-count", []string{"-c", "x", "null-co://"}},
		{"count-too-large", []string{"-c", "2147483648", "null-co://"}},
		{"octal-count", []string{"-c", "010", "-f", "raw", "null-co://"}},
		{"bad-depth", []string{"-d", "-1", "null-co://"}},
		{"bad-offset", []string{"-o", "1x", "null-co://"}},
		{"huge-offset", []string{"-o", "99999999999999999999", "null-co://"}},
		{"bad-size", []string{"-s", "3G", "null-co://"}},
		{"bad-step", []string{"-S", "abc", "null-co://"}},
		{"bad-pattern", []string{"--pattern=300", "null-co://"}},
		{"bad-cache", []string{"-t", "bogus", "null-co://"}},
		{"bad-aio", []string{"-i", "bogus", "null-co://"}},
		{"flush-read", []string{"--flush-interval=10", "null-co://"}},
		{"flush-small", []string{"-w", "--flush-interval=10", "null-co://"}},
		{"no-file", []string{"-c", "10"}},
		{"two-files", []string{"-c", "10", "a", "b"}},
		{"missing-file", []string{"-c", "10", "nonexist.raw"}},
		{"bad-format", []string{"-c", "10", "-f", "bogus", "img.raw"}},
		{"share-write", []string{"-c", "10", "-w", "-U", "-f", "raw", "img.raw"}},
		{"native-buffered", []string{"-c", "10", "-n", "-f", "raw", "img.raw"}},
		{"missing-arg", []string{"-c"}},
		{"bad-option", []string{"--bogus", "img.raw"}},
	}
	setup := func(t *testing.T) string {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "img.raw"), make([]byte, 2<<20), 0o644); err != nil {
			t.Fatal(err)
		}
		for name, cfg := range map[string]string{"flush.cfg": flushErrCfg, "write.cfg": writeErrCfg} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(cfg), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			gdir, qdir := setup(t), setup(t)
			g := runIn(t, gioBin, gdir, append([]string{"bench"}, c.args...), nil)
			q := runIn(t, "qemu-img", qdir, append([]string{"bench"}, c.args...), nil)
			if gout, qout := filterBench(g.out), filterBench(q.out); gout != qout {
				t.Errorf("output differs (bench %q)\n--- qemu-img\n%s\n--- gio\n%s\n--- diff\n%s", c.args, qout, gout, lineDiff(qout, gout))
			}
			if g.rc != q.rc {
				t.Errorf("exit status: qemu-img %d, gio %d", q.rc, g.rc)
			}
			if off, err := firstDifference(g.files["img.raw"], q.files["img.raw"]); err != nil || off >= 0 {
				t.Errorf("img.raw differs at byte %d (%v)", off, err)
			}
		})
	}
}

// TestBenchCommand runs the shell's bench on the open image and on a
// file of its own.
func TestBenchCommand(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "img.raw"), make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runIn(t, gioBin, dir, []string{"-f", "raw",
		"-c", "bench -c 64 -d 4 -w --pattern=0x5c",
		"-c", "read -P 0x5c 0 256k",
		"-c", "bench -c 10 -t none img.raw",
		"-c", "bench -c 10 -t none",
		"img.raw"}, nil)
	// stdout is a pipe, so C-stdio-like buffering puts the stderr line
	// first.
	want := `gio: bench: -t: only with a file name, which bench then opens itself
Sending 64 write requests, 4096 bytes each, 4 in parallel (starting at offset 0, step size 4096)
Run completed in X seconds.
read 262144/262144 bytes at offset 0
256 KiB, X ops; XX:XX:XX.X (XXX YYY/sec and XXX ops/sec)
Sending 10 read requests, 4096 bytes each, 64 in parallel (starting at offset 0, step size 4096)
Run completed in X seconds.
`
	if got := filterBench(filterQemuIO(r.out)); got != want {
		t.Errorf("got:\n%s\nwant:\n%s\ndiff:\n%s", got, want, lineDiff(want, got))
	}
	if r.rc != 1 {
		t.Errorf("exit status %d, want 1 (the last bench failed)", r.rc)
	}
}

// TestStreamDiff: reads and writes large enough to be streamed through
// a small buffer must give qemu-io's output and image, whatever their
// alignment, cache mode and pattern result.
func TestStreamDiff(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("qemu-io"); err != nil {
		t.Skip("qemu-io not on PATH")
	}
	const size = 72 << 20
	cases := []struct {
		name string
		args []string
	}{
		{"aligned", rawc("write -P 0xab 0 40M", "read -P 0xab 0 40M", "read -P 0xab 1M 40M")},
		{"unaligned", rawc("write -P 0x11 1000 33M", "read -P 0x11 1000 33M", "read -P 0x11 999 33M", "read -P 0x11 -s 1 -l 33M 999 34M")},
		{"probed", withArgs(nil, "img.raw", "write -P 0x22 100 40M", "read -q -P 0x22 100 40M", "read -C -P 0x22 0 40M")},
		{"writeback", withArgs([]string{"-f", "raw", "-t", "writeback"}, "img.raw", "write -P 0x33 0 40M", "read -P 0x33 0 40M")},
		{"direct", withArgs([]string{"-f", "raw", "-t", "none"}, "img.raw", "write -P 0x44 4k 40M", "read -P 0x44 4k 40M")},
		{"past-end", rawc("write -P 0x55 40M 40M", "read -P 0x55 40M 40M", "read 40M 33M")},
		{"default-pattern", rawc("write 0 40M", "read -P 0xcd 0 40M", "read -q -P 0xcd 0 40M")},
		{"null", withArgs([]string{"-f", "raw"}, "null-co://", "read -P 0xab 0 40M", "write -P 1 0 40M")},
		{"read-only", withArgs([]string{"-f", "raw", "-r"}, "img.raw", "write -P 1 0 40M", "read -P 0 0 40M")},
	}
	setup := func(t *testing.T) string {
		dir := t.TempDir()
		f, err := os.Create(filepath.Join(dir, "img.raw"))
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(size); err != nil {
			t.Fatal(err)
		}
		f.Close()
		return dir
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			gdir, qdir := setup(t), setup(t)
			g := runIn(t, gioBin, gdir, c.args, nil)
			q := runIn(t, "qemu-io", qdir, c.args, nil)
			// The -C line's timing fields vary too.
			clean := func(s string) string {
				s = filterQemuIO(s)
				return regexp.MustCompile(`(?m)^(\d+),(\d+),.*$`).ReplaceAllString(s, "$1,$2,X")
			}
			if gout, qout := clean(g.out), clean(q.out); gout != qout {
				t.Errorf("output differs (args %q)\n--- qemu-io\n%s\n--- gio\n%s", c.args, qout, gout)
			}
			if g.rc != q.rc {
				t.Errorf("exit status: qemu-io %d, gio %d", q.rc, g.rc)
			}
			if off, err := firstDifference(g.files["img.raw"], q.files["img.raw"]); err != nil || off >= 0 {
				t.Errorf("img.raw differs at byte %d (%v)", off, err)
			}
			if strings.Contains(g.out, "panic") {
				t.Error(g.out)
			}
		})
	}
}
