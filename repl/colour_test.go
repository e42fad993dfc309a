package repl

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

const (
	red     = "\x1b[31m"
	yellow  = "\x1b[33m"
	magenta = "\x1b[35m"
	cyan    = "\x1b[36m"
	bold    = "\x1b[1m"
	reset   = "\x1b[0m"
)

func TestColourWriter(t *testing.T) {
	tests := []struct {
		name     string
		classify func(string, lineKind) lineKind
		writes   []string
		want     string
	}{
		{"stdout plain passes unchanged", classifyStdout,
			[]string{"wrote 512/512 bytes at offset 0\n512 bytes, 1 ops; 00.00 sec\n"},
			"wrote 512/512 bytes at offset 0\n512 bytes, 1 ops; 00.00 sec\n"},
		{"blkdebug lines", classifyStdout,
			[]string{"blkdebug: Suspended request 'A'\n", "blkdebug: Resuming request 'A'\n", "x\n"},
			magenta + "blkdebug: Suspended request 'A'" + reset + "\n" + cyan + "blkdebug: Resuming request 'A'" + reset + "\nx\n"},
		{"stdout failures", classifyStdout,
			[]string{"read failed: Input/output error\nPattern verification failed at offset 0, 1 bytes\n"},
			red + "read failed: Input/output error" + reset + "\n" + red + "Pattern verification failed at offset 0, 1 bytes" + reset + "\n"},
		{"stderr errors", classifyStderr,
			[]string{"command \"x\" not found\n"},
			red + "command \"x\" not found" + reset + "\n"},
		{"stderr hint", classifyStderr,
			[]string{"gio: did you mean \"read\"?\n"},
			bold + "gio: did you mean \"read\"?" + "\x1b[22m\n"},
		{"warning with continuation lines", classifyStderr,
			[]string{"WARNING: Image format was not specified\n         Automatically detecting\nqemu-io: oops\n"},
			yellow + "WARNING: Image format was not specified" + reset + "\n" + yellow + "         Automatically detecting" + reset + "\n" + red + "qemu-io: oops" + reset + "\n"},
		{"a line in pieces keeps its kind", classifyStdout,
			[]string{"blkdebug: Suspended", " request 'A'\nplain", " text\n"},
			magenta + "blkdebug: Suspended" + reset + magenta + " request 'A'" + reset + "\nplain text\n"},
		{"empty lines", classifyStderr, []string{"\n\n"}, "\n\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			w := newColourWriter(&b, tc.classify)
			for _, s := range tc.writes {
				if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
					t.Fatalf("Write(%q) = %d, %v", s, n, err)
				}
			}
			if got := b.String(); got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestUseColour(t *testing.T) {
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	tests := []struct {
		name             string
		mode             ColourMode
		interactive, tty bool
		getenv           func(string) string
		want             bool
	}{
		{"interactive terminal", ColourAuto, true, true, env("TERM", "xterm-256color"), true},
		{"not a terminal", ColourAuto, true, false, env("TERM", "xterm-256color"), false},
		{"-c on a terminal", ColourAuto, false, true, env("TERM", "xterm-256color"), false},
		{"NO_COLOR", ColourAuto, true, true, env("NO_COLOR", "1"), false},
		{"empty NO_COLOR", ColourAuto, true, true, env("NO_COLOR", ""), true},
		{"TERM=dumb", ColourAuto, true, true, env("TERM", "dumb"), false},
		{"never", ColourNever, true, true, env(), false},
		{"always beats a pipe", ColourAlways, false, false, env(), true},
		{"always beats NO_COLOR", ColourAlways, true, true, env("NO_COLOR", "1"), true},
	}
	for _, tc := range tests {
		if got := UseColour(tc.mode, tc.interactive, tc.tty, tc.getenv); got != tc.want {
			t.Errorf("%s: UseColour = %v, want %v", tc.name, got, tc.want)
		}
	}
	for in, want := range map[string]ColourMode{"auto": ColourAuto, "always": ColourAlways, "never": ColourNever} {
		if got, err := ParseColourMode(in); got != want || err != nil {
			t.Errorf("ParseColourMode(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseColourMode("sometimes"); err == nil {
		t.Error("ParseColourMode(sometimes) succeeded")
	}
}

func TestEnableColour(t *testing.T) {
	s := testSession(t)
	var stdout, stderr bytes.Buffer
	out := NewStdioWriter(&stdout, true)
	s.Out, s.Err = out, &stderr
	EnableColour(s, out, true)
	s.Execute("length")
	s.Execute("nosuch")
	out.Flush()
	want := red + "no file open, try 'help open'" + reset + "\n" + red + "command \"nosuch\" not found" + reset + "\n"
	if got := stderr.String(); got != want {
		t.Errorf("stderr = %q, want %q", got, want)
	}
}

func TestHistoryPath(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	tests := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"XDG_STATE_HOME": "/s", "HOME": "/h"}, "/s/gio/history"},
		{map[string]string{"XDG_STATE_HOME": "relative", "HOME": "/h"}, "/h/.local/state/gio/history"},
		{map[string]string{"HOME": "/h"}, "/h/.local/state/gio/history"},
		{map[string]string{}, ""},
	}
	for _, tc := range tests {
		if got := HistoryPath(env(tc.env)); got != tc.want {
			t.Errorf("HistoryPath(%v) = %q, want %q", tc.env, got, tc.want)
		}
	}
}

func TestRecorder(t *testing.T) {
	s := testSession(t)
	path := filepath.Join(t.TempDir(), "rec.gio")
	r := newRecorder(s)
	r.now = func() time.Time { return time.Date(2025, 1, 2, 3, 4, 0, 0, time.UTC) }
	r.Line("not yet")
	if err := r.Start(path); err != nil {
		t.Fatal(err)
	}
	if r.Path() != path {
		t.Errorf("Path = %q", r.Path())
	}
	for _, l := range []string{"create img 64k", "", "   ", "record", "record off", "open -o driver=raw blkdebug::img", "read 0 512"} {
		r.Line(l)
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	r.Line("after stop")
	if err := r.Start(path); err != nil {
		t.Fatal(err)
	}
	r.Line("quit")
	r.Stop()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := "# Recorded by gio from an interactive session on 2025-01-02 03:04.\n" +
		"# Replay it with \"gio run " + path + "\"; make it a regression test with\n" +
		"# \"gio test -update " + path + "\", which writes the expected output beside it.\n" +
		"create img 64k\nopen -o driver=raw blkdebug::img\nread 0 512\n" +
		"\n# Recording continued on 2025-01-02 03:04.\nquit\n"
	if string(got) != want {
		t.Errorf("recording:\n%s\nwant:\n%s", got, want)
	}
	// The recording replays as a script.
	var buf bytes.Buffer
	e := Env{NewRegistry: testRegistry}
	if !e.RunScript("rec.gio", string(got), "", &buf, &buf, true) {
		t.Errorf("replay failed:\n%s", buf.String())
	}
}
