package repl

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestStripComment(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"write -P 0xab 0 512", "write -P 0xab 0 512"},
		{"write -P 0xab 0 512   # the first update", "write -P 0xab 0 512"},
		{"write -P 0xab 0 512\t# tab", "write -P 0xab 0 512"},
		{"# whole line", ""},
		{"open -o a=b#c img", "open -o a=b#c img"}, // '#' inside a word stays
	} {
		if got := StripComment(c.in); got != c.want {
			t.Errorf("StripComment(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestRunScriptLocates: every failure of "gio run" names its line:
// failures qemu-io reports on stdout get a located stderr note, a
// trailing comment is not an argument, the implicit close at exit is
// not blamed on the last line, and a multi-line message is prefixed once.
func TestRunScriptLocates(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "img")
	if err := os.WriteFile(img, make([]byte, 65536), 0o644); err != nil {
		t.Fatal(err)
	}
	src := "write -P 0xab 0 512   # a comment\n" +
		"read -P 0xcd 0 512\n" +
		"# a comment line\n" +
		"break pwritev A\n" +
		"aio_write 0 512\n"
	var out, errw bytes.Buffer
	e := Env{NewRegistry: testRegistry}
	ok := e.RunScriptOpts("x.gio", src, &out, &errw, ScriptOptions{Image: "blkdebug::" + img, Prefix: true})
	if ok {
		t.Errorf("script succeeded")
	}
	stderr := errw.String()
	for _, re := range []string{
		`(?m)^x\.gio: WARNING: Image format was not specified .*\n {9}Automatically`,
		`(?m)^x\.gio:2: gio: command failed: read -P 0xcd 0 512$`,
		`(?m)^x\.gio: at exit: gio: image closed; dropped requests that can never complete: #\d+ aio_write 0 512 suspended at .A.$`,
	} {
		if !regexp.MustCompile(re).MatchString(stderr) {
			t.Errorf("stderr lacks %s:\n%s", re, stderr)
		}
	}
	if strings.Contains(stderr, ":0:") || strings.Contains(stderr, "x.gio:5:") {
		t.Errorf("stderr blames line 0 or the last line:\n%s", stderr)
	}
	if !strings.Contains(out.String(), "wrote 512/512 bytes at offset 0") {
		t.Errorf("the commented write did not run:\n%s", out.String())
	}
}

func TestRunScriptEcho(t *testing.T) {
	var out bytes.Buffer
	e := Env{NewRegistry: testRegistry}
	if !e.RunScriptOpts("e.gio", "create img 4k\nopen -o driver=raw img\nwrite -q 0 512\n", &out, &out, ScriptOptions{Echo: true}) {
		t.Fatalf("failed:\n%s", out.String())
	}
	want := "gio> create img 4k\ngio> open -o driver=raw img\ngio> write -q 0 512\n"
	if got := out.String(); got != want {
		t.Errorf("echo output %q, want %q", got, want)
	}
}

func TestUnifiedDiff(t *testing.T) {
	d := UnifiedDiff("want", "got", "a\nb\nc\n", "a\nB\nc\nd\n")
	want := "--- want\n+++ got\n@@ want:1 @@\n a\n-b\n+B\n c\n+d\n"
	if d != want {
		t.Errorf("diff:\n%s\nwant:\n%s", d, want)
	}
	d = UnifiedDiff("want", "got", "a\nb", "a\nc")
	if strings.Count(d, `\ No newline at end of file`) != 2 {
		t.Errorf("missing final newlines not marked:\n%s", d)
	}
}

func TestRunGoldenMissingOut(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "new.gio")
	os.WriteFile(p, []byte("create img 4k\n"), 0o644)
	r := Env{NewRegistry: testRegistry}.RunGolden([]string{p}, false)
	if len(r) != 1 || r[0].Passed || !strings.HasSuffix(r[0].Diff, "\n") || !strings.Contains(r[0].Diff, "gio test -update "+p) {
		t.Errorf("missing .out: %+v", r)
	}
}

// TestRecordAfterOpen: a recording started with an image open begins
// with the lines that make and open it, so that it replays.
func TestRecordAfterOpen(t *testing.T) {
	var out bytes.Buffer
	s := testSession(t)
	s.Out, s.Err = &out, &out
	for _, l := range []string{"create img 64k", "create other 4k", "open -t writeback -o driver=raw,file.align=4k blkdebug::img", "write -P 1 0 512"} {
		if !s.Execute(l) {
			t.Fatalf("%s failed:\n%s", l, out.String())
		}
	}
	path := filepath.Join(t.TempDir(), "rec.gio")
	r := newRecorder(s)
	if err := r.Start(path); err != nil {
		t.Fatal(err)
	}
	r.Line("read -P 0 512 512")
	r.Stop()
	got, _ := os.ReadFile(path)
	want := "create img 64k\ncreate other 4k\nopen -t writeback -o driver=raw,file.align=4k blkdebug::img\nread -P 0 512 512\n"
	if !strings.HasSuffix(string(got), want) {
		t.Errorf("recording:\n%s\nwant it to end with:\n%s", got, want)
	}
	var rb bytes.Buffer
	if !(Env{NewRegistry: testRegistry}).RunScript("rec.gio", string(got), "", &rb, &rb, true) {
		t.Errorf("replay failed:\n%s", rb.String())
	}
}
