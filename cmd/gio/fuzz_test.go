package main

import (
	"bytes"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"gio/blk"
	"gio/commands"
	"gio/internal/cvt"
	"gio/internal/watchdog"
	"gio/repl"
)

var lengthLine = regexp.MustCompile(`^[0-9.]+ (bytes|KiB|MiB|GiB|TiB|PiB|EiB)$`)

// fuzzImageSize is the size of the raw image FuzzCommandLine works on.
const fuzzImageSize = 64 << 10

// maxFuzzBytes bounds the bytes one fuzzed line may ask for (the sum of
// every number in it), so that "read 0 2G" on a null-co image does not
// make the fuzzer allocate gigabytes.
const maxFuzzBytes = 4 << 20

// fuzzSafe reports whether a fuzzed line (or argument list) can run in
// the test process: it must not kill the process (abort, sigraise), must
// not reach files outside the current directory (no path separators but
// null-co://, no "..", no backslash that JSON could turn into a slash),
// must not switch to the real clock (so sleep stays virtual), and must not
// ask for more than maxFuzzBytes.
func fuzzSafe(s string) bool {
	if strings.Contains(s, "abort") || strings.Contains(s, "sigraise") || strings.Contains(s, "--cl") {
		return false
	}
	t := strings.ReplaceAll(s, "null-co://", "")
	t = strings.ReplaceAll(t, "null-aio://", "")
	if strings.ContainsAny(t, "/\\") || strings.Contains(t, "..") {
		return false
	}
	var sum int64
	for _, w := range strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '\n' || r == 0 }) {
		for _, cand := range []string{w, strings.TrimLeft(w, "-")} {
			for i := 0; i <= min(len(cand), 2); i++ {
				if v, err := cvt.ParseNum(cand[i:]); err == nil {
					if v > maxFuzzBytes || sum+v > maxFuzzBytes {
						return false
					}
					sum += v
				}
			}
		}
	}
	return true
}

// freshImage (re)creates the fuzz image in the current directory, so that
// each input starts from the same state.
func freshImage(t testing.TB) {
	if err := os.WriteFile("img", make([]byte, fuzzImageSize), 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkOutput fails on a crash trace or a Go formatting accident that
// the input itself does not explain.
func checkOutput(t *testing.T, input, out string) {
	t.Helper()
	for _, bad := range []string{"panic:", "goroutine ", "runtime error", "%!", "(MISSING)", "<nil>"} {
		if strings.Contains(out, bad) && !strings.Contains(input, bad) {
			t.Fatalf("input %q: output contains %q:\n%s", input, bad, out)
		}
	}
}

// FuzzCommandLine runs fuzzed command lines through a session over a small
// raw image (as qemu-io's stdin mode does, polling the loop between lines)
// and a fuzzed argument list through the program's command-line parser
// with the same lines on stdin. Nothing may panic, hang or leave the
// session unusable: afterwards "length" (after reopening the image if the
// lines closed it) must still work.
func FuzzCommandLine(f *testing.F) {
	// Only the fuzz function runs in the scratch directory: the fuzzing
	// coordinator writes failing inputs relative to the working directory.
	dir := f.TempDir()
	for _, s := range []struct{ args, lines string }{
		{"-f raw img", "read 0 512\nwrite -P 0xab 100 1000\nread -P 0xab 100 1000"},
		{"-f\x00raw\x00img", "read 1M 1\nread -1 1\nread 0x 1\nread 8E 1\nread 0 1 2"},
		{"-c\x00length\x00-f\x00raw\x00img", ""},
		{"--image-opts\x00driver=raw,file.driver=blkdebug,file.image.filename=img,file.align=4096", "discard 512 512\nwrite -z 100 5000\nmap\nalloc 0 64k"},
		{"-r\x00img", "write 0 512\ndiscard 0 512\ntruncate 0"},
		{"-t\x00bogus\x00img", "length"},
		{"null-co://", "read 0 4k\nwrite -z -u 0 1M\nread -v 0 32"},
		{"", "open -o driver=raw,file.align=4k blkdebug::img\nbreak write_aio A\naio_write 0 512\nwait_break A\nresume A\naio_flush"},
		{"", "break read_aio A\nread 0 512\nwait_break B\nclose"},
		{"", "truncate -m full\ntruncate -m bogus 16k\ntruncate 128k\nlength"},
		{"", "readv 0 1 2 3 4\nwritev -P 5 0 512 512\nreadv -P 5 0 1024"},
		{"", "aio_read -P 1 0 512\naio_write -i 0 1\nsleep 100\nhelp\nhelp r\nhelp nosuch\nnosuch"},
		{"", "open -o driver=null-co,size=1E\nopen null-co://\nclose\nopen -r img\nreopen -w\nreopen -c none\ninfo"},
		{"", "write -s img 0 512\nwrite -c 0 512\nwrite -b 1 512\nwrite -n 0 1\nread -b 0 1\nread -P 300 0 1"},
		{"", "create scratch 64k\nclose\nopen -o driver=raw scratch\nwrite 0 64k\nquit"},
		{"", "length\r\nread\t0 512\nread -- 0 16\nread 0 512 -v -q"},
	} {
		f.Add(s.args, s.lines)
	}
	f.Fuzz(func(t *testing.T, args, lines string) {
		if len(lines) > 8192 || len(args) > 1024 || !fuzzSafe(args) {
			t.Skip()
		}
		defer watchdog.Start("gio fuzz", 30*time.Second)() // before fuzzRun swaps os.Stderr
		t.Chdir(dir)
		var safe []string
		for _, l := range strings.Split(lines, "\n") {
			if fuzzSafe(l) {
				safe = append(safe, l)
			}
		}
		fuzzSession(t, safe)
		fuzzRun(t, args, safe)
	})
}

// fuzzSession feeds lines to a session over the image.
func fuzzSession(t *testing.T, lines []string) {
	freshImage(t)
	var outBuf, errBuf bytes.Buffer
	out := repl.NewStdioWriter(&outBuf, false)
	s := env.NewSession(out, &errBuf, blk.NewVirtualClock())
	defer s.Cleanup()
	if !s.OpenImage("img", commands.OpenOptions{Format: "raw"}) {
		t.Fatalf("open: %s", errBuf.String())
	}
	input := strings.Join(lines, "\n")
	for _, l := range lines {
		if s.Quit {
			break
		}
		out.Flush()
		s.Loop.RunPending()
		s.Execute(l)
		if outBuf.Len()+errBuf.Len() > 1<<20 {
			outBuf.Reset()
			errBuf.Reset()
		}
	}
	// The session goes on: an image can be (re)opened and measured.
	if s.Img == nil && !s.Execute("open -o driver=raw img") {
		out.Flush()
		t.Fatalf("reopening the image failed after %q:\n%s%s", input, outBuf.String(), errBuf.String())
	}
	outBuf.Reset()
	if !s.Execute("length") {
		out.Flush()
		t.Fatalf("length failed after %q:\n%s%s", input, outBuf.String(), errBuf.String())
	}
	out.Flush()
	// Completions may print first; the last line is the length.
	got := strings.Split(strings.TrimSuffix(outBuf.String(), "\n"), "\n")
	if !strings.HasSuffix(outBuf.String(), "\n") || !lengthLine.MatchString(got[len(got)-1]) {
		t.Fatalf("length printed %q after %q", outBuf.String(), input)
	}
	s.CloseImage()
	out.Flush()
	checkOutput(t, input, outBuf.String()+errBuf.String())
}

// fuzzRun runs the program's main path with args (NUL-separated) and the
// lines on stdin, with the standard streams redirected to files.
func fuzzRun(t *testing.T, args string, lines []string) {
	var argv []string
	if args != "" {
		argv = strings.Split(args, "\x00")
	}
	if len(argv) > 0 && (argv[0] == "run" || argv[0] == "test" || strings.HasSuffix(argv[0], ".gio")) {
		return
	}
	freshImage(t)
	input := strings.Join(lines, "\n")
	stdin, err := os.CreateTemp(t.TempDir(), "stdin")
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	if _, err := stdin.WriteString(input); err != nil {
		t.Fatal(err)
	}
	if _, err := stdin.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	outf, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer outf.Close()
	oldIn, oldOut, oldErr := os.Stdin, os.Stdout, os.Stderr
	os.Stdin, os.Stdout, os.Stderr = stdin, outf, outf
	rc := run(argv)
	os.Stdin, os.Stdout, os.Stderr = oldIn, oldOut, oldErr
	if rc != 0 && rc != 1 {
		t.Fatalf("args %q: exit status %d", argv, rc)
	}
	out, err := os.ReadFile(outf.Name())
	if err != nil {
		t.Fatal(err)
	}
	checkOutput(t, args+"\n"+input, string(out))
}
