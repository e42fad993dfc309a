package main

// Tests of the shell's promises about non-interactive output: no colour
// escape ever reaches a pipe, the terminal type changes nothing, and the
// interactive extras ("did you mean", record) stay out of qemu-io's modes.

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// shellScript exercises every kind of line the interactive shell paints:
// blkdebug's Suspended/Resuming lines, a report line, failures on stdout,
// errors and a warning on stderr, and an unknown command.
const shellScript = `create img 64k
open -o driver=raw,file.align=4k blkdebug::img
break pwritev_rmw_head A
aio_write -P 0x11 512 512
wait_break A
resume A
aio_flush
read -P 0x11 512 512
read -P 0x22 512 512
read 64k 1
wiat_break A
close
open plain.img
close
`

// runGio runs the built gio in dir with stdin and extra environment
// settings ("NAME=value" sets, "NAME" alone unsets), returning stdout and
// stderr separately and as they interleave.
func runGio(t *testing.T, dir, stdin string, env []string, args ...string) (stdout, stderr, both string) {
	t.Helper()
	cmd := exec.Command(gioBin, args...)
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Env = editEnv(os.Environ(), env)
	var o, e, b bytes.Buffer
	var mu sync.Mutex
	cmd.Stdout = &teeWriter{&mu, &o, &b}
	cmd.Stderr = &teeWriter{&mu, &e, &b}
	_ = cmd.Run() // a failed command makes the exit status 1
	return o.String(), e.String(), b.String()
}

// teeWriter copies to its own buffer and the shared one.
type teeWriter struct {
	mu   *sync.Mutex
	a, b *bytes.Buffer
}

func (w *teeWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.a.Write(p)
	return w.b.Write(p)
}

// editEnv applies "NAME=value" and "NAME" (unset) edits to an environment.
func editEnv(base, edits []string) []string {
	out := append([]string(nil), base...)
	for _, e := range edits {
		name, _, _ := strings.Cut(e, "=")
		kept := out[:0]
		for _, kv := range out {
			if !strings.HasPrefix(kv, name+"=") {
				kept = append(kept, kv)
			}
		}
		out = kept
		if strings.Contains(e, "=") {
			out = append(out, e)
		}
	}
	return out
}

func TestPipedOutputHasNoColour(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "s.gio")
	if err := os.WriteFile(script, []byte(shellScript), 0o644); err != nil {
		t.Fatal(err)
	}
	// A real file for the probe warning: a scratch image's path varies.
	if err := os.WriteFile(filepath.Join(dir, "plain.img"), make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	var cmdArgs []string
	for _, l := range strings.Split(strings.TrimSpace(shellScript), "\n") {
		cmdArgs = append(cmdArgs, "-c", l)
	}
	modes := []struct {
		name  string
		stdin string
		args  []string
	}{
		{"stdin", shellScript, nil},
		{"-c", "", cmdArgs},
		{"run", "", []string{"run", script}},
	}
	terms := [][]string{
		{"TERM", "NO_COLOR", "COLORTERM"},
		{"TERM=xterm-256color", "NO_COLOR", "COLORTERM=truecolor"},
		{"TERM=dumb", "NO_COLOR=1"},
		{"TERM=xterm-256color", "NO_COLOR", "--color=auto"},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			var first string
			for i, env := range terms {
				args := m.args
				if last := env[len(env)-1]; strings.HasPrefix(last, "--") {
					env = env[:len(env)-1]
					args = append([]string{last}, args...)
					if m.name == "run" {
						continue // gio run takes no shell options
					}
				}
				stdout, stderr, both := runGio(t, dir, m.stdin, env, args...)
				// stdout and stderr are separate pipes here, so only each
				// stream's own bytes are comparable.
				norm := filterQemuIO(stdout) + "\n--- stderr ---\n" + stderr
				for name, s := range map[string]string{"stdout": stdout, "stderr": stderr} {
					if strings.Contains(s, "\x1b") {
						t.Errorf("%v: %s has an escape sequence:\n%q", env, name, s)
					}
				}
				if strings.Contains(both, "did you mean") {
					t.Errorf("%v: \"did you mean\" outside interactive mode:\n%s", env, both)
				}
				for _, want := range []string{"blkdebug: Suspended request 'A'", "blkdebug: Resuming request 'A'",
					"Pattern verification failed", "command \"wiat_break\" not found", "WARNING: Image format was not specified"} {
					if !strings.Contains(both, want) {
						t.Errorf("%v: output lacks %q:\n%s", env, want, both)
					}
				}
				if i == 0 {
					first = norm
				} else if norm != first {
					t.Errorf("output with %v differs from output with TERM unset:\n%s", env, lineDiff(first, norm))
				}
			}
		})
	}
}

// TestColourFlag: --color=always paints even a pipe (for "| less -R"),
// --color=never and a bad value behave.
func TestColourFlag(t *testing.T) {
	dir := t.TempDir()
	stdout, stderr, _ := runGio(t, dir, "", nil, "--color=always", "-c", "create img 64k",
		"-c", "open -o driver=raw blkdebug::img", "-c", "break pwritev A", "-c", "aio_write 0 512",
		"-c", "resume A", "-c", "nosuch", "-c", "read 64k 1")
	for _, want := range []string{"\x1b[35mblkdebug: Suspended request 'A'\x1b[0m\n", "\x1b[36mblkdebug: Resuming request 'A'\x1b[0m\n",
		"\x1b[31mread failed: Input/output error\x1b[0m\n"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("--color=always stdout lacks %q:\n%q", want, stdout)
		}
	}
	if want := "\x1b[31mcommand \"nosuch\" not found\x1b[0m\n"; stderr != want {
		t.Errorf("--color=always stderr = %q, want %q", stderr, want)
	}
	stdout, stderr, _ = runGio(t, dir, "", []string{"TERM=xterm-256color"}, "--color=never", "-c", "nosuch", "-c", "help quit")
	if strings.Contains(stdout+stderr, "\x1b") {
		t.Errorf("--color=never output has escapes: %q %q", stdout, stderr)
	}
	_, stderr, _ = runGio(t, dir, "", nil, "--color=sometimes", "-c", "quit")
	if !strings.Contains(stderr, "invalid colour mode 'sometimes'") {
		t.Errorf("--color=sometimes: stderr = %q", stderr)
	}
}

// TestHelpGio: plain help stays qemu-io's (no gio-only command), help gio
// and help -g group everything by family.
func TestHelpGio(t *testing.T) {
	dir := t.TempDir()
	plain, _, _ := runGio(t, dir, "", nil, "-c", "help")
	for _, gioOnly := range []string{"create ", "record "} {
		if strings.Contains(plain, "\n"+gioOnly) || strings.HasPrefix(plain, gioOnly) {
			t.Errorf("plain help lists gio-only %q:\n%s", gioOnly, plain)
		}
	}
	for _, arg := range []string{"gio", "-g"} {
		out, _, _ := runGio(t, dir, "", nil, "-c", "help "+arg)
		for _, want := range []string{"I/O:\n  read ", "blkdebug:\n  break event tag", "gio (not in qemu-io):\n  create ", "\n  record [file|off]", "(alias r)"} {
			if !strings.Contains(out, want) {
				t.Errorf("help %s lacks %q:\n%s", arg, want, out)
			}
		}
	}
}

// TestRecordOutsideInteractive: record and --record have nothing to
// record without a terminal, and say so.
func TestRecordOutsideInteractive(t *testing.T) {
	dir := t.TempDir()
	_, stderr, _ := runGio(t, dir, "", nil, "-c", "record x.gio")
	if !strings.Contains(stderr, "gio: record: only commands typed at an interactive prompt are recorded") {
		t.Errorf("record in -c mode: stderr = %q", stderr)
	}
	_, stderr, _ = runGio(t, dir, "quit\n", nil, "--record", "x.gio")
	if !strings.Contains(stderr, "--record records interactive sessions only") {
		t.Errorf("--record with piped stdin: stderr = %q", stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "x.gio")); err == nil {
		t.Error("x.gio was created")
	}
}
