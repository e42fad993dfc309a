package main

// What a person at a terminal meets: Ctrl-C in long commands, the help
// texts, escape codes and redirections. Same tmux harness as
// tmux_test.go; skipped without tmux.

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func tmuxEnv(t *testing.T) []string {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux not installed")
	}
	home := t.TempDir()
	return editEnv(os.Environ(), []string{"HOME=" + home, "XDG_STATE_HOME=" + filepath.Join(home, "state"),
		"TERM=xterm-256color", "NO_COLOR", "TMUX", "TMUX_PANE"})
}

// TestInterruptLongCommandsTmux: Ctrl-C brings the prompt back from a
// 1 GiB aio_write (which runs before the next prompt) and from a bench
// of 10^8 requests, and the shell goes on.
func TestInterruptLongCommandsTmux(t *testing.T) {
	env := tmuxEnv(t)
	p := startPane(t, t.TempDir(), env)
	p.run("create big 1G")
	p.run("open -o driver=raw big")

	p.typeLine("aio_write -P 2 0 1G", "Enter")
	time.Sleep(100 * time.Millisecond) // filling the 1 GiB buffer takes longer
	p.typeLine("", "C-c")
	p.waitText("aio_write failed: Interrupted system call")
	p.waitLast("gio>", "the prompt after Ctrl-C in aio_write 1G")

	p.typeLine("bench -c 100000000 -w", "Enter")
	p.waitText("Sending 100000000 write requests")
	p.typeLine("", "C-c")
	s := p.waitText("gio: bench interrupted: ")
	p.waitLast("gio>", "the prompt after Ctrl-C in bench")
	if strings.Contains(s, "Run completed") {
		t.Errorf("bench completed:\n%s", s)
	}
	// The lanes stopped: the next command is not held up by them.
	p.run("help quit")
	if s := p.screen(); !strings.Contains(s, "quit -- exit the program") {
		t.Errorf("the shell did not run a command after the interrupts:\n%s", s)
	}
	p.typeLine("", "C-d")
	p.waitExit()
}

// TestHelpPointsToGioTmux: at the prompt "help" ends with a pointer to
// "help gio", and "gio --help" at a terminal adds gio's section after
// qemu-io's text (piped, both stay qemu-io's: the diff suite checks).
func TestHelpPointsToGioTmux(t *testing.T) {
	env := tmuxEnv(t)
	p := startPane(t, t.TempDir(), env)
	s := p.run("help")
	if !strings.Contains(s, "Use 'help gio' for gio's own commands") {
		t.Errorf("help at the prompt does not mention help gio:\n%s", s)
	}
	p.typeLine("", "C-d")
	p.waitExit()

	q := &pane{t: t, sock: filepath.Join(t.TempDir(), "tmux.sock"), env: env}
	q.tmux("-f", "/dev/null", "new-session", "-d", "-s", "gio", "-x", "120", "-y", "80", strconv.Quote(gioBin)+" --help",
		";", "set-option", "-g", "remain-on-exit", "on")
	t.Cleanup(func() { exec.Command("tmux", "-S", q.sock, "kill-server").Run() })
	s = q.waitText("gio help")
	for _, w := range []string{"QEMU Disk exerciser", "gio adds to qemu-io:", "--clock=", "--record", "--color=", "gio run", "gio test", "gio fsx", "gio bench"} {
		if !strings.Contains(s, w) {
			t.Errorf("gio --help at a terminal lacks %q:\n%s", w, s)
		}
	}
}

// TestRedirectedStderrPlainTmux: at a terminal with stderr redirected to
// a file, the file gets no escape codes (the screen keeps its colours),
// and the shell suggests quit for exit and the event meant by a
// misspelt one.
func TestRedirectedStderrPlainTmux(t *testing.T) {
	env := tmuxEnv(t)
	dir := t.TempDir()
	p := &pane{t: t, sock: filepath.Join(t.TempDir(), "tmux.sock"), env: env}
	p.tmux("-f", "/dev/null", "new-session", "-d", "-s", "gio", "-x", "120", "-y", "60", "-c", dir,
		strconv.Quote(gioBin)+" 2>err.txt", ";", "set-option", "-g", "remain-on-exit", "on")
	t.Cleanup(func() { exec.Command("tmux", "-S", p.sock, "kill-server").Run() })
	p.waitLast("gio>", "the first prompt")
	p.run("create img 64k")
	p.run("open -o driver=raw,file.align=4k blkdebug::img")
	p.run("break pwritev_rmw_afterhead A")
	p.run("exit")
	p.run("read 64k 1") // "read failed" is painted on stdout
	p.typeLine("", "C-d")
	p.waitExit()
	errText, err := os.ReadFile(filepath.Join(dir, "err.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(errText), "\x1b") {
		t.Errorf("escape codes in the redirected stderr: %q", errText)
	}
	for _, w := range []string{`gio: did you mean "pwritev_rmw_after_head"?`, `command "exit" not found`, `gio: did you mean "quit"?`} {
		if !strings.Contains(string(errText), w) {
			t.Errorf("stderr lacks %q:\n%s", w, errText)
		}
	}
}
